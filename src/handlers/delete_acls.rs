//! DeleteAcls (API 31): removes every binding matching each filter and reports them, with
//! Kafka's per-filter errors: SECURITY_DISABLED without an authorizer,
//! CLUSTER_AUTHORIZATION_FAILED without CLUSTER ALTER, INVALID_REQUEST for a filter with an
//! UNKNOWN field.
//!
//! Invariant: the request's deletions are persisted together before it is answered.

use std::rc::Rc;

use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::ResponseError as K;

use super::create_acls::NO_AUTHORIZER;
use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::{AclBinding, AclFilter, InvalidAcl, Operation};
use crate::shard::Shard;

fn filter(f: &DeleteAclsFilter) -> Result<AclFilter, InvalidAcl> {
    AclFilter::from_wire(
        f.resource_type_filter,
        f.resource_name_filter.as_deref(),
        f.pattern_type_filter,
        f.principal_filter.as_deref(),
        f.host_filter.as_deref(),
        f.operation,
        f.permission_type,
    )
}

fn failed(code: i16, message: &str) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code)
        .with_error_message(Some(str_bytes(message)))
}

fn matching(a: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(a.resource_type.code())
        .with_resource_name(str_bytes(&a.resource_name))
        .with_pattern_type(a.pattern_type.code())
        .with_principal(str_bytes(&a.principal))
        .with_host(str_bytes(&a.host))
        .with_operation(a.operation.code())
        .with_permission_type(a.permission.code())
}

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DeleteAclsRequest = request.decode()?;
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
            Some((code, message)) => body.filters.iter().map(|_| failed(code, message)).collect(),
            None => delete(&shard, &body.filters).await,
        };
        let response = DeleteAclsResponse::default().with_filter_results(results);
        Outcome::encoded(&response, version)
    })
}

async fn delete(shard: &Shard, filters: &[DeleteAclsFilter]) -> Vec<DeleteAclsFilterResult> {
    let checked: Vec<Result<AclFilter, InvalidAcl>> = filters.iter().map(filter).collect();
    let valid: Vec<Option<AclFilter>> = checked.iter().map(|c| c.clone().ok()).collect();
    let stored =
        crate::cluster::security_control::modify_acls(&shard.controller_context(), move |acls| {
            // Per filter, the bindings it removes (each binding is reported under every filter
            // that matches it, as Kafka does).
            let removed: Vec<Vec<AclBinding>> = valid
                .iter()
                .map(|f| match f {
                    Some(f) => acls.iter().filter(|a| f.matches(a)).cloned().collect(),
                    None => Vec::new(),
                })
                .collect();
            let mut changed = false;
            for b in removed.iter().flatten() {
                changed |= acls.remove(b);
            }
            (removed, changed)
        })
        .await;
    match stored {
        Ok(removed) => checked
            .iter()
            .zip(removed)
            .map(|(c, removed)| match c {
                Err(e) => failed(K::InvalidRequest.code(), &e.0),
                Ok(_) => DeleteAclsFilterResult::default()
                    .with_matching_acls(removed.iter().map(matching).collect()),
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "DeleteAcls");
            checked
                .iter()
                .map(|_| failed(K::UnknownServerError.code(), &e.to_string()))
                .collect()
        }
    }
}
