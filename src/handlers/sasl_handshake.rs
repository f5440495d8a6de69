//! SaslHandshake v0-1: picks the SASL mechanism of the connection (`security::session`). v0
//! means the tokens that follow come as raw frames, v1 as SaslAuthenticate requests. On a
//! listener without SASL, or once authenticated, Kafka answers ILLEGAL_SASL_STATE.

use std::rc::Rc;

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::ResponseError as K;

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::security::session::HandshakeOutcome;
use crate::shard::Shard;

pub fn handle(_shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: SaslHandshakeRequest = request.decode()?;
        // The listener's mechanisms (`listener.name.<l>.sasl.enabled.mechanisms` or the broker's).
        let enabled = request.session.listener.sasl_mechanisms.clone();
        let outcome = request
            .session
            .handshake(&body.mechanism, version, &enabled);
        let error_code = match outcome {
            HandshakeOutcome::Ok => 0,
            HandshakeOutcome::UnsupportedMechanism => K::UnsupportedSaslMechanism.code(),
            HandshakeOutcome::IllegalState => K::IllegalSaslState.code(),
        };
        let response = SaslHandshakeResponse::default()
            .with_error_code(error_code)
            .with_mechanisms(enabled.iter().map(|m| str_bytes(m.name())).collect());
        Outcome::encoded(&response, version)
    })
}
