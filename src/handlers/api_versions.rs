//! ApiVersions: the supported API list, generated from `handlers::REGISTRY`.
//!
//! An ApiVersions request at a version we do not know is answered at v0 with
//! UNSUPPORTED_VERSION and the full list, exactly as Kafka does, so the client can retry with a
//! version in range.

use std::rc::Rc;

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::ResponseError;

use super::{HandlerFuture, Outcome, Request, REGISTRY};
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        // The body (client software name/version) is informational; a v3+ body that does not
        // decode is still answered, as Kafka answers with INVALID_REQUEST only for bad names.
        let version = request.version();
        let body = with_features(response(0), shard.config.transaction.transaction_version);
        Outcome::encoded(&body, version)
    })
}

/// Kafka's `transaction.version` feature (server-common's `TransactionVersion`): levels 0-2.
pub const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
const TRANSACTION_VERSION_MAX: i16 = 2;
/// The epoch of the finalized features: they never change while a broker runs (set by
/// configuration), so one fixed epoch above the clients' initial -1.
const FINALIZED_FEATURES_EPOCH: i64 = 1;

/// ApiVersions v3+: the features this broker supports and the finalized `transaction.version`
/// (Kafka 4.x clients use transaction version 2, KIP-890, when it is finalized at 2). A level
/// of 0 is not listed as finalized, as Kafka omits features at level 0.
fn with_features(body: ApiVersionsResponse, transaction_version: i16) -> ApiVersionsResponse {
    let name = || kafka_protocol::protocol::StrBytes::from_static_str(TRANSACTION_VERSION_FEATURE);
    let finalized = if transaction_version > 0 {
        vec![FinalizedFeatureKey::default()
            .with_name(name())
            .with_min_version_level(transaction_version)
            .with_max_version_level(transaction_version)]
    } else {
        Vec::new()
    };
    body.with_supported_features(vec![SupportedFeatureKey::default()
        .with_name(name())
        .with_min_version(0)
        .with_max_version(TRANSACTION_VERSION_MAX)])
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(finalized)
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

    /// v3+ carries the finalized transaction.version (the Java client's switch to TV2); v0
    /// has no feature fields and still encodes.
    #[test]
    fn transaction_version_feature_is_finalized_as_configured() {
        let mut buf = bytes::BytesMut::new();
        with_features(response(0), 2).encode(&mut buf, 3).unwrap();
        let decoded = ApiVersionsResponse::decode(&mut buf.freeze(), 3).unwrap();
        let finalized = &decoded.finalized_features[0];
        assert_eq!(finalized.name.as_str(), TRANSACTION_VERSION_FEATURE);
        assert_eq!(finalized.max_version_level, 2);
        assert_eq!(decoded.supported_features[0].max_version, 2);
        assert!(decoded.finalized_features_epoch >= 0);
        assert!(with_features(response(0), 0).finalized_features.is_empty());
        let mut v0 = bytes::BytesMut::new();
        with_features(response(0), 2).encode(&mut v0, 0).unwrap();
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
