//! SaslAuthenticate v0-2: one step of the SASL exchange chosen by SaslHandshake v1. A failure
//! answers SASL_AUTHENTICATION_FAILED with Kafka's generic message; the connection then
//! closes after `connection.failed.authentication.delay.ms` (`net::conn`). v1+ answers the
//! session lifetime (`connections.max.reauth.ms`, KIP-368).

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::ResponseError as K;

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::security::session::AuthStep;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: SaslAuthenticateRequest = request.decode()?;
        let step = request
            .session
            .authenticate(&body.auth_bytes, &|user, m| shard.scram_credential(user, m))
            .await;
        let response = SaslAuthenticateResponse::default();
        let response = match step {
            AuthStep::Challenge(bytes) => response.with_auth_bytes(Bytes::from(bytes)),
            AuthStep::Done(bytes) => {
                let mut response = response.with_auth_bytes(Bytes::from(bytes));
                if version >= 1 {
                    // KIP-368: the client re-authenticates before this lifetime ends.
                    response.session_lifetime_ms = request.session.session_lifetime_ms();
                }
                response
            }
            AuthStep::Failed(failure) => response
                .with_error_code(K::SaslAuthenticationFailed.code())
                .with_error_message(Some(str_bytes(&failure.message))),
            AuthStep::IllegalState(why) => response
                .with_error_code(K::IllegalSaslState.code())
                .with_error_message(Some(str_bytes(why))),
        };
        Outcome::encoded(&response, version)
    })
}
