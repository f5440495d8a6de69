//! Forwarding of admin requests to the active controller (KIP-590, Kafka's
//! `ForwardingManager` and `KafkaApis.maybeForwardToController` / `handleEnvelopeRequest`).
//!
//! A KRaft node with the broker role that is not the active controller does not answer the
//! APIs Kafka forwards ([`FORWARDED_APIS`]): it wraps the client's request (header and body
//! as the client sent them), its principal (Kafka's `DefaultPrincipalData`) and its address in
//! an `EnvelopeRequest` v0 and sends it to the active controller over the controller channel
//! (`cluster::forwarding`). The active controller's shard 0 ([`serve_forwarded`]) runs the
//! request with the registry's handler, as the client's principal (so ACLs are checked against
//! the client, never the broker), and answers an `EnvelopeResponse` carrying the response
//! body; the broker sends it to the client under the client's correlation id.
//!
//! A controller change while a request is forwarded does not reach the client: the forwarder
//! retries against the new controller until `request.timeout.ms` (`cluster::forwarding`), and
//! the controller answers an Envelope whose response carries NOT_CONTROLLER (it lost its
//! leadership while running it) with the envelope error NOT_CONTROLLER, as Kafka's
//! `RequestChannel` does, so that the broker retries it. The active controller's own broker
//! side runs such a request itself (no envelope to itself), but an answer with NOT_CONTROLLER
//! anywhere in it (the leadership moved while it ran) is not the client's either: the request
//! is then forwarded to the next controller, under the same `request.timeout.ms` counted from
//! its arrival, for every API of [`FORWARDED_APIS`] alike (Kafka's broker forwards to its own
//! node's controller through the same channel, which retries the NOT_CONTROLLER answer).
//!
//! Invariants: a request is run by the controller's handler, never by this module's entry
//! point there. When forwarding fails the broker runs the handler itself (validation and
//! authorization as usual, NOT_CONTROLLER for what it would commit) and answers that, with
//! NOT_CONTROLLER turned into Kafka's answer for the failure: REQUEST_TIMED_OUT once
//! `request.timeout.ms` passed (Kafka's `ForwardingManager.onTimeout`), UNKNOWN_SERVER_ERROR
//! for an envelope error; NOT_CONTROLLER (retriable) stays when `forwarded.requests.max.in.flight`
//! requests wait already. Nothing here trusts the envelope's bytes: what does not decode is
//! an error answer, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use kafka_protocol::messages::{
    ApiKey, DefaultPrincipalData, EnvelopeRequest, EnvelopeResponse, RequestHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::{
    forward_errors, BodyPart, Handler, HandlerError, HandlerFuture, Outcome, Request, Route,
};
use crate::cluster::forwarding::ForwardError;
use crate::cluster::quorum::lifecycle::{EnvelopeAnswer, ForwardedCall};
use crate::security::session::{ListenerContext, Session};
use crate::shard::Shard;

/// The APIs a broker forwards to the active controller (Kafka's `forwardable` ApiKeys that
/// Sluice commits through the controller). AlterClientQuotas is not among them while client
/// quotas are each broker's own (not image records).
pub const FORWARDED_APIS: &[ApiKey] = &[
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::AlterUserScramCredentials,
    ApiKey::AlterClientQuotas,
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
];

/// Kafka's error codes an EnvelopeResponse carries.
const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;

/// The connection's entry point for `handler`: forwards the request when this node must (see
/// the module documentation), else runs the handler here.
pub fn handle(handler: Handler, shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let arrived = Instant::now();
        let node = match &shard.cluster {
            Some(node)
                if node.settings.roles.broker
                    && FORWARDED_APIS.contains(&request.api_key)
                    && !super::alter_configs::names_another_broker(&shard, &request) =>
            {
                node.clone()
            }
            _ => return handler(shard, request).await,
        };
        let (api_key, version) = (request.api_key, request.version());
        if node.is_active_controller() {
            // The active controller runs it here, as it would run it forwarded; when it lost
            // its leadership meanwhile (NOT_CONTROLLER in the answer) the request goes to the
            // next controller as a forwarded one would (Kafka's broker side forwards to its
            // own node's controller too, and retries that answer).
            let outcome = handler(shard.clone(), request.clone()).await?;
            if !outcome_carries(&outcome, api_key, version, forward_errors::NOT_CONTROLLER) {
                return Ok(outcome);
            }
            tracing::debug!(api = ?api_key, "the controller changed while running it; forwarding");
        }
        let envelope = match envelope_of(&request) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::debug!(api = ?api_key, error = %e, "not forwarded; answering here");
                return handler(shard, request).await;
            }
        };
        let not_controller = |body: &Bytes| {
            forward_errors::carries(api_key, version, body, forward_errors::NOT_CONTROLLER)
        };
        let forwarded =
            crate::cluster::forwarding::forward(&node, envelope, arrived, &not_controller).await;
        let why = match forwarded {
            Ok(body) => return Ok(Outcome::Body(vec![BodyPart::Bytes(body)])),
            Err(why) => why,
        };
        tracing::debug!(api = ?request.api_key, %why, "not forwarded; answering here");
        let instead = match why {
            ForwardError::TooManyInFlight(_) => None,
            ForwardError::TimedOut { .. } => Some(forward_errors::REQUEST_TIMED_OUT),
            ForwardError::Envelope(_) | ForwardError::Malformed(_) => {
                Some(forward_errors::UNKNOWN_SERVER_ERROR)
            }
        };
        let outcome = handler(shard, request).await?;
        Ok(match instead {
            Some(code) => not_controller_as(outcome, api_key, version, code),
            None => outcome,
        })
    })
}

/// Whether a handler's answer carries `code` anywhere (a file part is never an admin answer).
fn outcome_carries(outcome: &Outcome, api_key: ApiKey, version: i16, code: i16) -> bool {
    match outcome {
        Outcome::Body(parts) => parts.iter().any(|part| match part {
            BodyPart::Bytes(body) => forward_errors::carries(api_key, version, body, code),
            BodyPart::File(_) => false,
        }),
        Outcome::Silent => false,
    }
}

/// `outcome` (the broker's own answer, when forwarding failed) with NOT_CONTROLLER replaced by
/// `code`, Kafka's answer for the failure.
fn not_controller_as(outcome: Outcome, api_key: ApiKey, version: i16, code: i16) -> Outcome {
    let Outcome::Body(parts) = outcome else {
        return outcome;
    };
    let not_controller = forward_errors::NOT_CONTROLLER;
    Outcome::Body(
        parts
            .into_iter()
            .map(|part| match part {
                BodyPart::Bytes(body) => BodyPart::Bytes(
                    forward_errors::replace(api_key, version, &body, not_controller, code)
                        .unwrap_or(body),
                ),
                file => file,
            })
            .collect(),
    )
}

/// The `EnvelopeRequest` v0 of a client's request: its header and body, principal, address.
fn envelope_of(request: &Request) -> Result<Vec<u8>, HandlerError> {
    let header_version = request.api_key.request_header_version(request.version());
    let mut data = BytesMut::new();
    request
        .header
        .encode(&mut data, header_version)
        .map_err(|e| HandlerError::Encode(format!("{e:#}")))?;
    data.extend_from_slice(&request.body);
    let principal = request.session.principal();
    let (kind, name) = principal.split_once(':').unwrap_or(("User", &principal));
    let principal = DefaultPrincipalData::default()
        .with_type(super::str_bytes(kind))
        .with_name(super::str_bytes(name))
        .with_token_authenticated(false);
    let mut principal_bytes = BytesMut::new();
    principal
        .encode(&mut principal_bytes, 0)
        .map_err(|e| HandlerError::Encode(format!("{e:#}")))?;
    let address = match request.peer.ip() {
        IpAddr::V4(ip) => Bytes::copy_from_slice(&ip.octets()),
        IpAddr::V6(ip) => Bytes::copy_from_slice(&ip.octets()),
    };
    let envelope = EnvelopeRequest::default()
        .with_request_data(data.freeze())
        .with_request_principal(Some(principal_bytes.freeze()))
        .with_client_host_address(address);
    let mut out = BytesMut::new();
    envelope
        .encode(&mut out, 0)
        .map_err(|e| HandlerError::Encode(format!("{e:#}")))?;
    Ok(out.to_vec())
}

/// Shard 0 of a controller node: runs the Envelopes its quorum member accepted, at most
/// `in_flight` at once, until the process stops. `listener` is the context the forwarded
/// sessions report (the node's first listener).
pub async fn serve_forwarded(
    shard: Rc<Shard>,
    listener: Arc<ListenerContext>,
    calls: flume::Receiver<ForwardedCall>,
    in_flight: usize,
) {
    calls
        .into_stream()
        .for_each_concurrent(in_flight.max(1), |call| {
            let (shard, listener) = (shard.clone(), listener.clone());
            async move {
                let response = run_envelope(shard.clone(), listener, &call.envelope).await;
                let metadata_offset = shard.cluster.as_ref().map_or(0, |node| node.image.offset());
                let mut bytes = BytesMut::new();
                if let Err(e) = response.encode(&mut bytes, 0) {
                    tracing::warn!(error = %e, "EnvelopeResponse did not encode");
                }
                let _ = call.reply.send(EnvelopeAnswer {
                    response: bytes.to_vec(),
                    metadata_offset,
                });
            }
        })
        .await;
}

fn envelope_error(code: i16) -> EnvelopeResponse {
    EnvelopeResponse::default().with_error_code(code)
}

/// Runs one Envelope's request as its principal; the response body, or the envelope's error.
async fn run_envelope(
    shard: Rc<Shard>,
    listener: Arc<ListenerContext>,
    envelope: &[u8],
) -> EnvelopeResponse {
    let request = match decode_envelope(envelope) {
        Ok(forwarded) => Request {
            api_key: forwarded.api_key,
            header: forwarded.header,
            body: forwarded.body,
            peer: forwarded.peer,
            session: Rc::new(Session::forwarded(
                listener,
                forwarded.peer,
                forwarded.principal,
            )),
        },
        Err(code) => return envelope_error(code),
    };
    let handler = match super::route(request.api_key, request.version()) {
        Route::Handle(handler) => handler,
        _ => return envelope_error(UNSUPPORTED_VERSION),
    };
    let (api_key, version) = (request.api_key, request.version());
    match handler(shard, request).await {
        Ok(Outcome::Body(parts)) => {
            let mut body = BytesMut::new();
            for part in parts {
                match part {
                    BodyPart::Bytes(bytes) => body.extend_from_slice(&bytes),
                    BodyPart::File(_) => return envelope_error(INVALID_REQUEST),
                }
            }
            let body = body.freeze();
            // This controller lost its leadership while it ran the request: the forwarding
            // broker retries it against the new one (Kafka's `shouldReturnNotController`).
            if forward_errors::carries(api_key, version, &body, forward_errors::NOT_CONTROLLER) {
                return envelope_error(forward_errors::NOT_CONTROLLER);
            }
            EnvelopeResponse::default().with_response_data(Some(body))
        }
        Ok(Outcome::Silent) | Err(_) => envelope_error(INVALID_REQUEST),
    }
}

/// A request an Envelope carries.
#[derive(Debug)]
struct Forwarded {
    api_key: ApiKey,
    header: RequestHeader,
    body: Bytes,
    /// `User:alice`.
    principal: String,
    peer: SocketAddr,
}

/// The forwarded request inside an `EnvelopeRequest` v0, with the client's principal and
/// address; only the [`FORWARDED_APIS`] are taken.
fn decode_envelope(envelope: &[u8]) -> Result<Forwarded, i16> {
    let mut bytes = Bytes::copy_from_slice(envelope);
    let envelope = EnvelopeRequest::decode(&mut bytes, 0).map_err(|_| INVALID_REQUEST)?;
    let mut data = envelope.request_data;
    let (key, version) = match data.get(..4) {
        Some([k0, k1, v0, v1]) => (
            i16::from_be_bytes([*k0, *k1]),
            i16::from_be_bytes([*v0, *v1]),
        ),
        _ => return Err(INVALID_REQUEST),
    };
    let api_key = ApiKey::try_from(key).map_err(|()| INVALID_REQUEST)?;
    if !FORWARDED_APIS.contains(&api_key) {
        return Err(INVALID_REQUEST);
    }
    let header = RequestHeader::decode(&mut data, api_key.request_header_version(version))
        .map_err(|_| INVALID_REQUEST)?;
    let principal = match envelope.request_principal {
        Some(mut bytes) => {
            let p = DefaultPrincipalData::decode(&mut bytes, 0).map_err(|_| INVALID_REQUEST)?;
            format!("{}:{}", p._type.as_str(), p.name.as_str())
        }
        None => return Err(INVALID_REQUEST),
    };
    let ip = match envelope.client_host_address.as_ref() {
        [a, b, c, d] => IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
        octets => match <[u8; 16]>::try_from(octets) {
            Ok(v6) => IpAddr::V6(Ipv6Addr::from(v6)),
            Err(_) => return Err(INVALID_REQUEST),
        },
    };
    Ok(Forwarded {
        api_key,
        header,
        body: data,
        principal,
        peer: SocketAddr::new(ip, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::CreateTopicsRequest;

    fn envelope(key: ApiKey, principal: Option<&DefaultPrincipalData>, address: &[u8]) -> Vec<u8> {
        let version = 5;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(super::super::str_bytes("cli")));
        let mut data = BytesMut::new();
        header
            .encode(&mut data, key.request_header_version(version))
            .unwrap();
        CreateTopicsRequest::default()
            .with_timeout_ms(1234)
            .encode(&mut data, version)
            .unwrap();
        let principal = principal.map(|p| {
            let mut bytes = BytesMut::new();
            p.encode(&mut bytes, 0).unwrap();
            bytes.freeze()
        });
        let mut out = BytesMut::new();
        EnvelopeRequest::default()
            .with_request_data(data.freeze())
            .with_request_principal(principal)
            .with_client_host_address(Bytes::copy_from_slice(address))
            .encode(&mut out, 0)
            .unwrap();
        out.to_vec()
    }

    #[test]
    fn an_envelope_carries_the_request_its_principal_and_address() {
        let alice = DefaultPrincipalData::default()
            .with_type(super::super::str_bytes("User"))
            .with_name(super::super::str_bytes("alice"));
        let bytes = envelope(ApiKey::CreateTopics, Some(&alice), &[10, 0, 0, 9]);
        let forwarded = decode_envelope(&bytes).unwrap();
        assert_eq!(forwarded.api_key, ApiKey::CreateTopics);
        assert_eq!(forwarded.header.correlation_id, 7);
        assert_eq!(forwarded.principal, "User:alice");
        assert_eq!(forwarded.peer.ip(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));
        let body = CreateTopicsRequest::decode(&mut forwarded.body.clone(), 5).unwrap();
        assert_eq!(body.timeout_ms, 1234);
    }

    #[test]
    fn garbage_and_unforwarded_apis_are_invalid_requests_not_panics() {
        let alice = DefaultPrincipalData::default();
        let refused = [
            envelope(ApiKey::Produce, Some(&alice), &[127, 0, 0, 1]),
            envelope(ApiKey::CreateTopics, None, &[127, 0, 0, 1]),
            envelope(ApiKey::CreateTopics, Some(&alice), &[1, 2, 3]),
            Vec::new(),
            vec![0, 1, 2],
            vec![0xFF; 64],
        ];
        for bytes in refused {
            assert_eq!(decode_envelope(&bytes).err(), Some(INVALID_REQUEST));
        }
    }
}
