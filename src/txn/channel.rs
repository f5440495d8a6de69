//! Markers to partition leaders on other brokers: the network half of Kafka's
//! `TransactionMarkerChannelManager`. Each shard keeps one queue per destination broker; a
//! task per destination drains it, sends every queued transaction's markers as one
//! WriteTxnMarkers request (v1, Kafka's inter-broker form) over its own connection to the
//! broker's endpoint in the metadata image, and answers each transaction with the leader's
//! error code per partition. Retrying (after re-reading the leader from the image) is the
//! caller's (`markers::write_missing`), as Kafka's completion handler re-enqueues.
//!
//! Invariants: a queue holds at most `transaction.marker.queue.max.entries` transactions (a
//! full queue refuses, the completion retries after its backoff); one request in flight per
//! destination; every queued transaction gets exactly one answer, one code per partition in
//! its order (a connection failure or a missing answer is NETWORK_EXCEPTION / the leader's
//! absence BROKER_NOT_AVAILABLE, both retried); a response frame over `RESPONSE_BYTES_MAX`
//! drops the connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_util::lock::Mutex;
use futures_util::StreamExt;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use crate::cluster::inter_broker::BrokerStream;
use crate::partition::TopicPartition;

/// The WriteTxnMarkers version sent (the one Kafka 4.x brokers accept from a coordinator).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// The client id on the coordinator's requests.
const CLIENT_ID: &str = "sluice-txn-marker-channel";
/// Kafka's `request.timeout.ms` default: an unanswered request drops the connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A WriteTxnMarkers answer is a few bytes per partition; anything larger is not one.
const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// One transaction's markers for the partitions one broker leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
}

/// The leader's Kafka error code per partition of a [`RemoteMarker`], in its order.
pub type RemoteCodes = Vec<i16>;

struct Pending {
    marker: RemoteMarker,
    reply: oneshot::Sender<RemoteCodes>,
}

/// A broker id to its inter-broker address, from the current metadata image (`None`: not
/// registered or no endpoint).
pub type Resolver = Rc<dyn Fn(i32) -> Option<SocketAddr>>;

/// A destination's queue was full (the caller retries later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("transaction marker queue for broker {0} is full")]
pub struct QueueFull(pub i32);

/// The shard's queues, one per destination broker (see the module documentation).
pub struct MarkerChannels {
    queue_max: usize,
    destinations: RefCell<HashMap<i32, mpsc::Sender<Pending>>>,
}

impl MarkerChannels {
    pub fn new(queue_max: usize) -> Self {
        Self {
            queue_max: queue_max.max(1),
            destinations: RefCell::new(HashMap::new()),
        }
    }

    /// Queues `marker` for `broker` (starting its sender task on first use); the receiver
    /// gets the leader's codes.
    /// `resolve` names a broker's inter-broker address from the current metadata image
    /// (read again for every request, so a moved endpoint is followed).
    pub fn enqueue(
        &self,
        resolve: &Resolver,
        broker: i32,
        marker: RemoteMarker,
    ) -> Result<oneshot::Receiver<RemoteCodes>, QueueFull> {
        let channels = self;
        let (reply, answer) = oneshot::channel();
        let mut pending = Pending { marker, reply };
        let mut destinations = channels.destinations.borrow_mut();
        for _restart in 0..2 {
            // The bound is the channel's buffer (the map's sender is never cloned, so the
            // channel's one guaranteed slot per sender adds just one).
            let sender = destinations.entry(broker).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(channels.queue_max.saturating_sub(1));
                let task = drain(resolve.clone(), broker, rx, channels.queue_max);
                compio::runtime::spawn(task).detach();
                tx
            });
            match sender.try_send(pending) {
                Ok(()) => return Ok(answer),
                Err(e) if e.is_full() => return Err(QueueFull(broker)),
                Err(e) => {
                    // The task ended (it never does before shutdown): start a new one.
                    pending = e.into_inner();
                    destinations.remove(&broker);
                }
            }
        }
        Err(QueueFull(broker))
    }
}

/// The sender task of one destination: batches whatever is queued into one request.
async fn drain(resolve: Resolver, broker: i32, mut queue: mpsc::Receiver<Pending>, max: usize) {
    let mut conn = Connection::default();
    while let Some(first) = queue.next().await {
        let mut batch = vec![first];
        while batch.len() < max {
            match queue.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let markers: Vec<&RemoteMarker> = batch.iter().map(|p| &p.marker).collect();
        let codes = send(&resolve, broker, &mut conn, &markers).await;
        for (pending, codes) in batch.into_iter().zip(codes) {
            let _gone_is_fine = pending.reply.send(codes);
        }
    }
}

/// Sends one request for `markers`; one code list per marker whatever happens.
async fn send(
    resolve: &Resolver,
    broker: i32,
    conn: &mut Connection,
    markers: &[&RemoteMarker],
) -> Vec<RemoteCodes> {
    let every = |code: ResponseError| {
        markers
            .iter()
            .map(|m| vec![code.code(); m.partitions.len()])
            .collect()
    };
    let Some(addr) = resolve(broker) else {
        return every(ResponseError::BrokerNotAvailable);
    };
    let request = request(markers);
    match conn.call(addr, &request).await {
        Ok(response) => answers(markers, &response),
        Err(e) => {
            tracing::debug!(broker, %addr, error = %e, "WriteTxnMarkers not answered");
            every(ResponseError::NetworkException)
        }
    }
}

/// Kafka's WriteTxnMarkers request for `markers` (topics grouped per marker, in order).
pub fn request(markers: &[&RemoteMarker]) -> WriteTxnMarkersRequest {
    let markers = markers
        .iter()
        .map(|m| {
            let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
            for tp in &m.partitions {
                let index = i32::try_from(tp.partition).unwrap_or(i32::MAX);
                match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                    Some(topic) => topic.partition_indexes.push(index),
                    None => topics.push(
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                            .with_partition_indexes(vec![index]),
                    ),
                }
            }
            WritableTxnMarker::default()
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_transaction_result(m.commit)
                .with_coordinator_epoch(m.coordinator_epoch)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersRequest::default().with_markers(markers)
}

/// Each marker's codes from `response` (answers in request order, matched by producer id
/// and partition; a partition without an answer is NETWORK_EXCEPTION, retried).
pub fn answers(markers: &[&RemoteMarker], response: &WriteTxnMarkersResponse) -> Vec<RemoteCodes> {
    let missing = ResponseError::NetworkException.code();
    markers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let result = response
                .markers
                .get(i)
                .filter(|r| r.producer_id.0 == m.producer_id);
            m.partitions
                .iter()
                .map(|tp| {
                    let index = i32::try_from(tp.partition).unwrap_or(i32::MAX);
                    result
                        .and_then(|r| r.topics.iter().find(|t| t.name.0.as_str() == tp.topic))
                        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == index))
                        .map_or(missing, |p| p.error_code)
                })
                .collect()
        })
        .collect()
}

/// One connection per destination broker (per shard), used one request at a time.
#[derive(Default)]
pub struct VerifyConnections {
    by_broker: RefCell<HashMap<i32, Rc<Mutex<Connection>>>>,
}

impl VerifyConnections {
    pub fn to(&self, broker: i32) -> Rc<Mutex<Connection>> {
        self.by_broker
            .borrow_mut()
            .entry(broker)
            .or_default()
            .clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
}

/// A connection to one broker's inter-broker listener: dialled on demand, dropped on any
/// error. Also used by the partition leader's transaction verification (`verify`).
#[derive(Default)]
pub struct Connection {
    stream: Option<(SocketAddr, BrokerStream)>,
    correlation_id: i32,
}

impl Connection {
    async fn call(
        &mut self,
        addr: SocketAddr,
        request: &WriteTxnMarkersRequest,
    ) -> Result<WriteTxnMarkersResponse, ChannelError> {
        self.request(
            addr,
            ApiKey::WriteTxnMarkers,
            WRITE_TXN_MARKERS_VERSION,
            request,
        )
        .await
    }

    /// One request and its answer (bounded by Kafka's default `request.timeout.ms`).
    pub async fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        addr: SocketAddr,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, ChannelError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame =
            crate::cli::client::encode_frame(key, version, self.correlation_id, CLIENT_ID, request)
                .map_err(|e| ChannelError::Protocol(e.to_string()))?;
        let reused = self.stream.as_ref().is_some_and(|(a, _)| *a == addr);
        let mut result = self.timed_round_trip(addr, frame.clone()).await;
        if reused && matches!(result, Err(ChannelError::Io(_))) {
            // A kept connection the other broker closed meanwhile (its
            // `connections.max.idle.ms`, a restart): once more on a fresh one, as Kafka's
            // NetworkClient reconnects, instead of failing the caller's request.
            self.stream = None;
            result = self.timed_round_trip(addr, frame).await;
        }
        let decoded = result.and_then(|body| {
            crate::cli::client::decode_frame(key, version, self.correlation_id, body)
                .map_err(|e| ChannelError::Protocol(e.to_string()))
        });
        if decoded.is_err() {
            self.stream = None;
        }
        decoded
    }

    async fn timed_round_trip(
        &mut self,
        addr: SocketAddr,
        frame: Vec<u8>,
    ) -> Result<Bytes, ChannelError> {
        match compio::time::timeout(REQUEST_TIMEOUT, self.round_trip(addr, frame)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ChannelError::Protocol("no answer in time".into())),
        }
    }

    async fn round_trip(
        &mut self,
        addr: SocketAddr,
        frame: Vec<u8>,
    ) -> Result<Bytes, ChannelError> {
        if self.stream.as_ref().is_some_and(|(a, _)| *a != addr) {
            self.stream = None;
        }
        if self.stream.is_none() {
            // The inter-broker listener's security (TLS when it is SSL), as replica fetches.
            self.stream = Some((addr, BrokerStream::connect(addr).await?));
        }
        let Some((_, stream)) = self.stream.as_mut() else {
            return Err(ChannelError::Protocol("no connection".into()));
        };
        stream.write_all(frame).await?;
        let head = stream.read_exact(4).await?;
        let len = <[u8; 4]>::try_from(head.as_slice())
            .map(i32::from_be_bytes)
            .map_err(|_| ChannelError::Protocol("short frame size".into()))?;
        let len = usize::try_from(len)
            .map_err(|_| ChannelError::Protocol("negative frame size".into()))?;
        if len > RESPONSE_BYTES_MAX {
            return Err(ChannelError::Protocol(format!("response of {len} bytes")));
        }
        Ok(Bytes::from(stream.read_exact(len).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };

    /// Serves one ApiVersions v0 request on `stream` (an empty answer) and closes it.
    fn answer_once(mut stream: std::net::TcpStream) {
        use std::io::{Read, Write};
        let mut size = [0_u8; 4];
        stream.read_exact(&mut size).unwrap();
        let mut request = vec![0_u8; usize::try_from(i32::from_be_bytes(size)).unwrap()];
        stream.read_exact(&mut request).unwrap();
        let correlation_id = &request[4..8];
        let mut answer = 10_i32.to_be_bytes().to_vec();
        answer.extend_from_slice(correlation_id);
        answer.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // error 0, no api keys
        stream.write_all(&answer).unwrap();
    }

    /// The other broker closed the kept connection between two requests (idle expiry): the
    /// second request is sent again on a fresh connection instead of failing.
    #[test]
    fn a_kept_connection_closed_by_the_other_broker_is_redialled_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (stream, _) = listener.accept().unwrap();
                answer_once(stream);
            }
        });
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let mut connection = Connection::default();
            let request = kafka_protocol::messages::ApiVersionsRequest::default();
            for _ in 0..2 {
                let answer: kafka_protocol::messages::ApiVersionsResponse = connection
                    .request(addr, ApiKey::ApiVersions, 0, &request)
                    .await
                    .unwrap();
                assert_eq!(answer.error_code, 0);
            }
        });
        server.join().unwrap();
    }

    fn marker(producer_id: i64, partitions: &[(&str, u32)]) -> RemoteMarker {
        RemoteMarker {
            producer_id,
            producer_epoch: 3,
            coordinator_epoch: 7,
            commit: true,
            partitions: partitions
                .iter()
                .map(|(t, p)| TopicPartition::new(*t, *p))
                .collect(),
        }
    }

    /// Partitions of one topic share a topic entry; each transaction is its own marker.
    #[test]
    fn request_groups_partitions_per_topic_and_marker() {
        let a = marker(1, &[("x", 0), ("y", 2), ("x", 1)]);
        let b = marker(2, &[("x", 5)]);
        let req = request(&[&a, &b]);
        assert_eq!(req.markers.len(), 2);
        let first = &req.markers[0];
        assert_eq!(
            (
                first.producer_id.0,
                first.producer_epoch,
                first.coordinator_epoch
            ),
            (1, 3, 7)
        );
        assert!(first.transaction_result);
        let topics: Vec<(&str, Vec<i32>)> = first
            .topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partition_indexes.clone()))
            .collect();
        assert_eq!(topics, vec![("x", vec![0, 1]), ("y", vec![2])]);
        assert_eq!(req.markers[1].producer_id.0, 2);
    }

    /// Codes come back per partition in the marker's order; a partition or marker the
    /// response lacks (or a marker answered for another producer) is NETWORK_EXCEPTION.
    #[test]
    fn answers_match_partitions_and_fill_gaps() {
        let a = marker(1, &[("x", 0), ("y", 2), ("x", 1)]);
        let b = marker(2, &[("x", 5)]);
        let partition = |index, code| {
            WritableTxnMarkerPartitionResult::default()
                .with_partition_index(index)
                .with_error_code(code)
        };
        let topic = |name: &str, partitions| {
            WritableTxnMarkerTopicResult::default()
                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_partitions(partitions)
        };
        let response = WriteTxnMarkersResponse::default().with_markers(vec![
            WritableTxnMarkerResult::default()
                .with_producer_id(ProducerId(1))
                .with_topics(vec![
                    topic("x", vec![partition(1, 6), partition(0, 0)]),
                    topic("y", vec![]),
                ]),
            WritableTxnMarkerResult::default()
                .with_producer_id(ProducerId(9))
                .with_topics(vec![topic("x", vec![partition(5, 0)])]),
        ]);
        let missing = ResponseError::NetworkException.code();
        assert_eq!(
            answers(&[&a, &b], &response),
            vec![vec![0, missing, 6], vec![missing]]
        );
    }
}
