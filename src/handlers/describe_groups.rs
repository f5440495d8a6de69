//! DescribeGroups: each group described by its coordinator shard. An unknown group is
//! "Dead" (v0-5) or GROUP_ID_NOT_FOUND (v6+), as Kafka answers.

use std::rc::Rc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::ResponseError as K;

use super::group_common::error_of;
use super::{str_bytes, HandlerFuture, Outcome, Request, AUTHORIZED_OPERATIONS_OMITTED};
use crate::groups::{GroupAnswer, GroupOp};
use crate::security::acl::ResourceType;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeGroupsRequest = request.decode()?;
        let lookups = body.groups.iter().map(|g| {
            super::authz::route_group(
                &shard,
                &request,
                GroupOp::Describe {
                    group: g.0.to_string(),
                },
            )
        });
        let answers = super::dedup::in_order(lookups).await;
        let described = body
            .groups
            .iter()
            .zip(answers)
            .map(|(id, answer)| {
                let mut group = DescribedGroup::default().with_group_id(id.clone());
                if version >= 3 {
                    group.authorized_operations = if body.include_authorized_operations {
                        super::authz::authorized_operations(
                            &shard,
                            &request,
                            ResourceType::Group,
                            id.0.as_str(),
                        )
                    } else {
                        AUTHORIZED_OPERATIONS_OMITTED
                    };
                }
                let d = match answer {
                    GroupAnswer::Described(d) => d,
                    other => {
                        return group
                            .with_error_code(error_of(&other).kafka_code())
                            .with_group_state(str_bytes("Dead"))
                    }
                };
                if !d.found && version >= 6 {
                    let error = K::GroupIdNotFound;
                    return group
                        .with_error_code(error.code())
                        .with_error_message(Some(str_bytes(&error.to_string())))
                        .with_group_state(str_bytes("Dead"));
                }
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment)
                    })
                    .collect();
                group
                    .with_group_state(str_bytes(d.state))
                    .with_protocol_type(str_bytes(&d.protocol_type))
                    .with_protocol_data(str_bytes(&d.protocol))
                    .with_members(members)
            })
            .collect();
        Outcome::encoded(
            &DescribeGroupsResponse::default().with_groups(described),
            version,
        )
    })
}
