//! ApiVersions: the supported API list, generated from `handlers::REGISTRY`.
//!
//! An ApiVersions request at a version we do not know is answered at v0 with
//! UNSUPPORTED_VERSION and the full list, exactly as Kafka does, so the client can retry with a
//! version in range.

use std::rc::Rc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::ResponseError;

use super::{HandlerFuture, Outcome, Request, REGISTRY};
use crate::shard::Shard;

pub fn handle(_shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        // The body (client software name/version) is informational; a v3+ body that does not
        // decode is still answered, as Kafka answers with INVALID_REQUEST only for bad names.
        let version = request.version();
        Outcome::encoded(&response(0), version)
    })
}

/// The response body for the unsupported-version fallback (always encoded at v0).
pub fn unsupported_version_body() -> Result<Outcome, super::HandlerError> {
    Outcome::encoded(&response(ResponseError::UnsupportedVersion.code()), 0)
}

pub fn api_keys() -> Vec<ApiVersion> {
    REGISTRY
        .iter()
        .map(|entry| {
            ApiVersion::default()
                .with_api_key(entry.key as i16)
                .with_min_version(entry.min_version)
                .with_max_version(entry.max_version)
        })
        .collect()
}

fn response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, Encodable};

    #[test]
    fn list_is_the_registry() {
        let keys = api_keys();
        assert_eq!(keys.len(), REGISTRY.len());
        let produce = keys.iter().find(|k| k.api_key == 0).unwrap();
        assert_eq!((produce.min_version, produce.max_version), (3, 12));
    }

    #[test]
    fn fallback_decodes_as_v0_with_error_35() {
        let mut buf = bytes::BytesMut::new();
        response(35).encode(&mut buf, 0).unwrap();
        let decoded = ApiVersionsResponse::decode(&mut buf.freeze(), 0).unwrap();
        assert_eq!(decoded.error_code, 35);
        assert_eq!(decoded.api_keys.len(), REGISTRY.len());
    }
}
