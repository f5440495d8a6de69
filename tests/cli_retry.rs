//! `sluice topic` retries what Kafka's AdminClient retries: an answer that carries
//! NOT_CONTROLLER (the controller moved) is sent again, after Metadata names the controller
//! anew, with a growing backoff (`retry.backoff.ms`), until `default.api.timeout.ms`; an
//! answer with another error is final. The broker here is a scripted stand-in on a loopback
//! port, so that the test decides exactly which answers carry NOT_CONTROLLER.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DeleteTopicsRequest, DeleteTopicsResponse,
    MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const NOT_CONTROLLER: i16 = 41;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// A stand-in broker: answers ApiVersions, Metadata (itself as node 1 and controller) and
/// DeleteTopics, whose first `refusals` answers carry `refusal` for every topic.
struct Scripted {
    port: u16,
    deletes: Arc<AtomicUsize>,
}

impl Scripted {
    fn start(refusals: usize, refusal: i16) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let deletes = Arc::new(AtomicUsize::new(0));
        let counted = deletes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let counted = counted.clone();
                std::thread::spawn(move || serve(stream, port, &counted, refusals, refusal));
            }
        });
        Scripted { port, deletes }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn serve(mut stream: TcpStream, port: u16, deletes: &AtomicUsize, refusals: usize, refusal: i16) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    loop {
        let mut size = [0_u8; 4];
        if stream.read_exact(&mut size).is_err() {
            return;
        }
        let mut body = vec![0_u8; usize::try_from(i32::from_be_bytes(size)).unwrap()];
        stream.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).unwrap();
        let version = i16::from_be_bytes([body[2], body[3]]);
        let header = RequestHeader::decode(&mut body, key.request_header_version(version)).unwrap();
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, key.response_header_version(version))
            .unwrap();
        match key {
            ApiKey::ApiVersions => ApiVersionsResponse::default()
                .with_api_keys(vec![
                    api(ApiKey::ApiVersions, 0, 3),
                    api(ApiKey::Metadata, 1, 12),
                    api(ApiKey::DeleteTopics, 1, 5),
                ])
                .encode(&mut out, version),
            ApiKey::Metadata => MetadataResponse::default()
                .with_brokers(vec![MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(i32::from(port))])
                .with_controller_id(BrokerId(1))
                .encode(&mut out, version),
            ApiKey::DeleteTopics => {
                let request = DeleteTopicsRequest::decode(&mut body, version).unwrap();
                let seen = deletes.fetch_add(1, Ordering::SeqCst);
                let code = if seen < refusals { refusal } else { 0 };
                DeleteTopicsResponse::default()
                    .with_responses(
                        request
                            .topic_names
                            .into_iter()
                            .map(|name| {
                                DeletableTopicResult::default()
                                    .with_name(Some(name))
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
                    .encode(&mut out, version)
            }
            other => panic!("unexpected {other:?}"),
        }
        .unwrap();
        let mut frame = i32::try_from(out.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&out);
        if stream.write_all(&frame).is_err() {
            return;
        }
    }
}

fn api(key: ApiKey, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(key as i16)
        .with_min_version(min)
        .with_max_version(max)
}

fn delete(broker: &Scripted) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["topic", "delete", "t1", "t2", "--brokers", &broker.addr()])
        .output()
        .unwrap()
}

#[test]
fn topic_delete_retries_not_controller_until_the_controller_answers() {
    let broker = Scripted::start(2, NOT_CONTROLLER);
    let out = delete(&broker);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("deleted").count(), 2, "{stdout}");
    assert_eq!(broker.deletes.load(Ordering::SeqCst), 3);
}

#[test]
fn topic_delete_does_not_retry_other_errors() {
    let broker = Scripted::start(1, TOPIC_AUTHORIZATION_FAILED);
    let out = delete(&broker);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TOPIC_AUTHORIZATION_FAILED (29)"),
        "{stderr}"
    );
    assert_eq!(broker.deletes.load(Ordering::SeqCst), 1);
}
