//! A small blocking Kafka client over `std::net`: one TCP connection per broker, one request
//! at a time, kafka-protocol codecs for every message. It serves the admin CLI and the tests;
//! it is not on the broker's hot path and imports nothing from the broker.
//!
//! Invariants: a request is sent at the highest version both this client ([`Wanted`]) and the
//! broker (its ApiVersions answer) support, or not at all; a response frame larger than
//! [`RESPONSE_BYTES_MAX`] closes the connection with an error; every read and connect has a
//! timeout, so no call blocks forever.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use super::error::CliError;

/// Largest response frame accepted (Kafka's default `fetch.max.bytes` is 50 MiB).
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than any broker-side timeout the CLI asks for (fetch max wait, produce timeout).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
const CLIENT_ID: &str = "sluice-cli";

/// The version range this client can encode for one API.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub min: i16,
    pub max: i16,
}

/// A whole request frame (size, header, body) for `request` at `version`.
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<Vec<u8>, CliError> {
    let key = ApiKey::try_from(R::KEY)
        .map_err(|_| CliError::Protocol(format!("unknown api key {}", R::KEY)))?;
    encode_frame(key, version, correlation_id, client_id, request)
}

/// [`encode_request`] for any encodable body under `key` (the tests send odd pairings).
pub fn encode_frame<E: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &E,
) -> Result<Vec<u8>, CliError> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(&mut buf, key.request_header_version(version))
        .map_err(|e| CliError::Protocol(format!("encode request header: {e}")))?;
    body.encode(&mut buf, version)
        .map_err(|e| CliError::Protocol(format!("encode {key:?} v{version}: {e}")))?;
    let size = i32::try_from(buf.len() - 4)
        .map_err(|_| CliError::Protocol("request larger than 2 GiB".into()))?;
    if let Some(prefix) = buf.get_mut(..4) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
    Ok(buf.to_vec())
}

/// Decodes a response body (after the size prefix), checking the correlation id.
pub fn decode_response<R: Request>(
    body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, CliError> {
    let key = ApiKey::try_from(R::KEY)
        .map_err(|_| CliError::Protocol(format!("unknown api key {}", R::KEY)))?;
    decode_frame(key, version, correlation_id, body)
}

/// [`decode_response`] for any decodable body under `key`.
pub fn decode_frame<D: Decodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: Bytes,
) -> Result<D, CliError> {
    let mut body = body;
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
        .map_err(|e| CliError::Protocol(format!("decode response header: {e}")))?;
    if header.correlation_id != correlation_id {
        return Err(CliError::Protocol(format!(
            "correlation id {} answered, {correlation_id} expected",
            header.correlation_id
        )));
    }
    D::decode(&mut body, version)
        .map_err(|e| CliError::Protocol(format!("decode {key:?} v{version}: {e}")))
}

pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("api {key}"))
}

/// One broker connection with its negotiated API versions.
pub struct Conn {
    addr: String,
    stream: TcpStream,
    next_correlation_id: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn, CliError> {
        let unreachable = |source: std::io::Error| CliError::Connect {
            addr: addr.to_owned(),
            source,
        };
        let mut last = None;
        for sock in addr.to_socket_addrs().map_err(unreachable)? {
            match TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(unreachable)?;
                    stream
                        .set_read_timeout(Some(RESPONSE_TIMEOUT))
                        .map_err(unreachable)?;
                    let mut conn = Conn {
                        addr: addr.to_owned(),
                        stream,
                        next_correlation_id: 1,
                        versions: HashMap::new(),
                    };
                    conn.negotiate()?;
                    return Ok(conn);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(unreachable(last.unwrap_or_else(|| {
            std::io::Error::other("the name resolves to no address")
        })))
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// (api key, min, max) the broker offers, by key.
    pub fn api_versions(&self) -> Vec<(i16, i16, i16)> {
        let mut out: Vec<_> = self
            .versions
            .iter()
            .map(|(k, (min, max))| (*k, *min, *max))
            .collect();
        out.sort_unstable();
        out
    }

    /// ApiVersions v3, falling back to v0 when the broker answers UNSUPPORTED_VERSION.
    fn negotiate(&mut self) -> Result<(), CliError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = match self.send(&request, 3) {
            Ok(r) => r,
            // A broker without v3 answers at v0, which does not decode as v3.
            Err(CliError::Protocol(_)) => {
                *self = Conn::connect_raw(&self.addr)?;
                self.send(&ApiVersionsRequest::default(), 0)?
            }
            Err(e) => return Err(e),
        };
        if response.error_code == 35 {
            response = self.send(&ApiVersionsRequest::default(), 0)?;
        }
        super::error::check(response.error_code, "ApiVersions", "")?;
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    fn connect_raw(addr: &str) -> Result<Conn, CliError> {
        let stream = TcpStream::connect(addr).map_err(|source| CliError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT)).ok();
        Ok(Conn {
            addr: addr.to_owned(),
            stream,
            next_correlation_id: 1,
            versions: HashMap::new(),
        })
    }

    /// The version to send `R` at: the highest in both ranges.
    pub fn version<R: Request>(&self, wanted: Wanted) -> Result<i16, CliError> {
        let (broker_min, broker_max) =
            self.versions
                .get(&R::KEY)
                .copied()
                .ok_or_else(|| CliError::Unsupported {
                    api: api_name(R::KEY),
                    detail: "the broker does not offer this API".into(),
                })?;
        let version = wanted.max.min(broker_max);
        if version < wanted.min.max(broker_min) {
            return Err(CliError::Unsupported {
                api: api_name(R::KEY),
                detail: format!(
                    "the broker offers v{broker_min}-v{broker_max}, this CLI speaks v{}-v{}",
                    wanted.min, wanted.max
                ),
            });
        }
        Ok(version)
    }

    /// How long the next answers may take (at least 1 ms).
    pub fn set_response_timeout(&mut self, timeout: Duration) -> Result<(), CliError> {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|e| self.broken(e))
    }

    /// Sends `request` at the negotiated version; returns the response and the version.
    pub fn call<R: Request>(
        &mut self,
        request: &R,
        wanted: Wanted,
    ) -> Result<(R::Response, i16), CliError> {
        let version = self.version::<R>(wanted)?;
        Ok((self.send(request, version)?, version))
    }

    /// Sends `request` at exactly `version`.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, CliError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, correlation_id, CLIENT_ID)?;
        self.stream.write_all(&frame).map_err(|e| self.broken(e))?;
        let body = self.read_frame()?;
        decode_response::<R>(body, version, correlation_id)
    }

    /// Sends `request` and reads nothing back (Produce with acks=0 has no response).
    pub fn send_without_response<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<(), CliError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, correlation_id, CLIENT_ID)?;
        self.stream.write_all(&frame).map_err(|e| self.broken(e))
    }

    fn read_frame(&mut self) -> Result<Bytes, CliError> {
        let mut size = [0_u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| self.broken(e))?;
        let len = usize::try_from(i32::from_be_bytes(size))
            .ok()
            .filter(|&n| n <= RESPONSE_BYTES_MAX)
            .ok_or_else(|| {
                CliError::Protocol(format!(
                    "response frame of {} bytes (at most {RESPONSE_BYTES_MAX})",
                    i32::from_be_bytes(size)
                ))
            })?;
        let mut body = vec![0_u8; len];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| self.broken(e))?;
        Ok(Bytes::from(body))
    }

    fn broken(&self, source: std::io::Error) -> CliError {
        CliError::Connection {
            addr: self.addr.clone(),
            source,
        }
    }
}

/// Kafka's AdminClient `default.api.timeout.ms`: how long a call to the controller is retried.
const API_TIMEOUT: Duration = Duration::from_secs(60);
/// Kafka's AdminClient `request.timeout.ms`: how long one attempt waits for its answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Kafka's `retry.backoff.ms`: the first wait before a retry; it doubles.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Kafka's `retry.backoff.max.ms`: the longest wait before a retry.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Kafka's NOT_CONTROLLER.
pub const NOT_CONTROLLER: i16 = 41;

/// Connections to a cluster: the bootstrap broker plus one per node id, opened on first use.
pub struct Client {
    /// The `--brokers` list, to bootstrap again after a lost connection.
    brokers: String,
    bootstrap: Conn,
    nodes: HashMap<i32, Conn>,
    /// node id -> host:port, from the last Metadata answer.
    addrs: HashMap<i32, String>,
}

pub const METADATA: Wanted = Wanted { min: 1, max: 12 };

impl Client {
    /// Connects to the first reachable broker of a comma-separated list.
    pub fn connect(brokers: &str) -> Result<Client, CliError> {
        let mut last = None;
        for addr in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Conn::connect(addr) {
                Ok(bootstrap) => {
                    return Ok(Client {
                        brokers: brokers.to_owned(),
                        bootstrap,
                        nodes: HashMap::new(),
                        addrs: HashMap::new(),
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| CliError::Usage("--brokers lists no address".into())))
    }

    pub fn bootstrap(&mut self) -> &mut Conn {
        &mut self.bootstrap
    }

    /// Metadata for `topics` (None = every topic); remembers the brokers' addresses.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse, CliError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(TopicName(n.clone().into())))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let (response, _) = self.bootstrap.call(&request, METADATA)?;
        for b in &response.brokers {
            self.addrs
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        Ok(response)
    }

    /// The connection to broker `node_id` (learnt from a previous [`Client::metadata`]).
    pub fn node(&mut self, node_id: i32) -> Result<&mut Conn, CliError> {
        if !self.nodes.contains_key(&node_id) {
            if self.addrs.is_empty() {
                self.metadata(Some(&[]))?;
            }
            let addr = self.addrs.get(&node_id).cloned().ok_or_else(|| {
                CliError::Protocol(format!("broker {node_id} is not in the metadata"))
            })?;
            let conn = if addr == self.bootstrap.addr {
                Conn::connect(&addr)?
            } else {
                Conn::connect(&addr).or_else(|_| Conn::connect(&self.bootstrap.addr))?
            };
            self.nodes.insert(node_id, conn);
        }
        self.nodes
            .get_mut(&node_id)
            .ok_or_else(|| CliError::Protocol(format!("no connection to broker {node_id}")))
    }

    /// The connection to the controller Metadata names (where Kafka's AdminClient sends
    /// CreateTopics, DeleteTopics and configs: in a KRaft cluster the other brokers answer
    /// NOT_CONTROLLER); the bootstrap broker when Metadata names none.
    pub fn controller(&mut self) -> Result<&mut Conn, CliError> {
        let controller = self.metadata(Some(&[]))?.controller_id.0;
        if controller < 0 || !self.addrs.contains_key(&controller) {
            return Ok(&mut self.bootstrap);
        }
        self.node(controller)
    }

    /// Sends `request` to the controller as Kafka's AdminClient does: an answer that carries
    /// NOT_CONTROLLER (`not_controller`) or a lost connection is retried with a growing
    /// backoff, bootstrapping again so that Metadata names the controller anew, until
    /// [`API_TIMEOUT`]; the last answer or error then.
    pub fn call_controller<R: Request>(
        &mut self,
        request: &R,
        wanted: Wanted,
        not_controller: impl Fn(&R::Response) -> bool,
    ) -> Result<(R::Response, i16), CliError> {
        let deadline = std::time::Instant::now() + API_TIMEOUT;
        let mut backoff = RETRY_BACKOFF_MIN;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let result = self.controller().and_then(|conn| {
                conn.set_response_timeout(ATTEMPT_TIMEOUT.min(left))?;
                conn.call(request, wanted)
            });
            let retriable = match &result {
                Ok((response, _)) => not_controller(response),
                Err(CliError::Connect { .. } | CliError::Connection { .. }) => true,
                Err(_) => false,
            };
            if !retriable || std::time::Instant::now() + backoff >= deadline {
                return result;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            // When no broker answers now, the next attempt fails on the old bootstrap
            // connection and comes back here.
            match Client::connect(&self.brokers) {
                Ok(fresh) => *self = fresh,
                Err(_) => self.nodes.clear(),
            }
        }
    }

    /// Remembers `node_id`'s address (e.g. a group coordinator's, from FindCoordinator).
    pub fn learn_address(&mut self, node_id: i32, addr: String) {
        self.addrs.entry(node_id).or_insert(addr);
    }

    /// Every known node id (after [`Client::metadata`]).
    pub fn node_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.addrs.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}
