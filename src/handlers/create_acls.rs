//! CreateAcls (API 30): adds ACL bindings, with Kafka's per-creation errors: SECURITY_DISABLED
//! without an authorizer, CLUSTER_AUTHORIZATION_FAILED without CLUSTER ALTER, INVALID_REQUEST
//! for a binding Kafka would refuse (AclControlManager.validateNewAcl). An existing binding is
//! a success (creation is idempotent).
//!
//! Invariant: the request's valid bindings are persisted together before it is answered.

use std::rc::Rc;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::ResponseError as K;

use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::{AclBinding, InvalidAcl, Operation};
use crate::shard::Shard;

/// The message of SECURITY_DISABLED, as Kafka words it.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

fn binding(c: &AclCreation) -> Result<AclBinding, InvalidAcl> {
    AclBinding::from_wire(
        c.resource_type,
        c.resource_name.as_str(),
        c.resource_pattern_type,
        c.principal.as_str(),
        c.host.as_str(),
        c.operation,
        c.permission_type,
    )
}

fn result(code: i16, message: Option<&str>) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code)
        .with_error_message(message.map(str_bytes))
}

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: CreateAclsRequest = request.decode()?;
        let refused = if !shard.authorizer.enabled() {
            Some((K::SecurityDisabled.code(), NO_AUTHORIZER))
        } else if !authz::cluster_allowed(&shard, &request, Operation::Alter) {
            Some((
                K::ClusterAuthorizationFailed.code(),
                "Cluster authorization failed.",
            ))
        } else {
            None
        };
        let results = match refused {
            Some((code, message)) => body
                .creations
                .iter()
                .map(|_| result(code, Some(message)))
                .collect(),
            None => create(&shard, &body.creations).await,
        };
        let response = CreateAclsResponse::default().with_results(results);
        Outcome::encoded(&response, version)
    })
}

async fn create(shard: &Shard, creations: &[AclCreation]) -> Vec<AclCreationResult> {
    let checked: Vec<Result<AclBinding, InvalidAcl>> = creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let stored =
        crate::cluster::security_control::modify_acls(&shard.controller_context(), move |acls| {
            let mut changed = false;
            for b in valid {
                changed |= acls.insert(b);
            }
            ((), changed)
        })
        .await;
    if let Err(e) = &stored {
        tracing::error!(error = %e, "CreateAcls");
    }
    checked
        .iter()
        .map(|c| match (c, &stored) {
            (Err(e), _) => result(K::InvalidRequest.code(), Some(&e.0)),
            (Ok(_), Ok(())) => result(0, None),
            (Ok(_), Err(e)) => result(K::UnknownServerError.code(), Some(&e.to_string())),
        })
        .collect()
}
