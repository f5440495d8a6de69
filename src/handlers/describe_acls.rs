//! DescribeAcls (API 29): the bindings matching one filter, grouped by resource pattern, as
//! Kafka answers: SECURITY_DISABLED without an authorizer, CLUSTER_AUTHORIZATION_FAILED without
//! CLUSTER DESCRIBE, INVALID_REQUEST for a filter with an UNKNOWN field.

use std::rc::Rc;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::ResponseError as K;

use super::create_acls::NO_AUTHORIZER;
use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::security::acl::{AclBinding, AclFilter, Operation};
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeAclsRequest = request.decode()?;
        let filter = AclFilter::from_wire(
            body.resource_type_filter,
            body.resource_name_filter.as_deref(),
            body.pattern_type_filter,
            body.principal_filter.as_deref(),
            body.host_filter.as_deref(),
            body.operation,
            body.permission_type,
        );
        let error = |code: i16, message: &str| {
            DescribeAclsResponse::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message)))
        };
        let response = if !shard.authorizer.enabled() {
            error(K::SecurityDisabled.code(), NO_AUTHORIZER)
        } else if !authz::cluster_allowed(&shard, &request, Operation::Describe) {
            error(
                K::ClusterAuthorizationFailed.code(),
                "Cluster authorization failed.",
            )
        } else {
            match filter {
                Err(e) => error(K::InvalidRequest.code(), &e.0),
                Ok(filter) => {
                    let image = shard.topics.borrow();
                    let matching = image.security().acls().iter().filter(|a| filter.matches(a));
                    DescribeAclsResponse::default().with_resources(group(matching))
                }
            }
        };
        Outcome::encoded(&response, version)
    })
}

/// Groups bindings (sorted by resource pattern first, as the store keeps them) per resource.
fn group<'a>(acls: impl Iterator<Item = &'a AclBinding>) -> Vec<DescribeAclsResource> {
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for a in acls {
        let same = resources.last().is_some_and(|r| {
            r.resource_type == a.resource_type.code()
                && r.resource_name.as_str() == a.resource_name
                && r.pattern_type == a.pattern_type.code()
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(a.resource_type.code())
                    .with_resource_name(str_bytes(&a.resource_name))
                    .with_pattern_type(a.pattern_type.code()),
            );
        }
        if let Some(r) = resources.last_mut() {
            r.acls.push(
                AclDescription::default()
                    .with_principal(str_bytes(&a.principal))
                    .with_host(str_bytes(&a.host))
                    .with_operation(a.operation.code())
                    .with_permission_type(a.permission.code()),
            );
        }
    }
    resources
}
