//! ListGroups: every shard's groups, filtered by state (v4+) and type (v5+; all are
//! "classic").

use std::rc::Rc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::groups;
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;

const GROUP_TYPE: &str = "classic";

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: ListGroupsRequest = request.decode()?;
        let states: Vec<String> = body
            .states_filter
            .iter()
            .map(|s| s.to_lowercase())
            .collect();
        let types: Vec<String> = body.types_filter.iter().map(|s| s.to_lowercase()).collect();
        let see_all = super::authz::cluster_allowed_quietly(&shard, &request, Operation::Describe);
        let response = match groups::list_all(&shard.group_routing_context()).await {
            Err(code) => ListGroupsResponse::default().with_error_code(code.kafka_code()),
            Ok(all) => {
                let listed = all
                    .into_iter()
                    .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
                    .filter(|_| types.is_empty() || types.iter().any(|t| t == GROUP_TYPE))
                    // Kafka: CLUSTER DESCRIBE lists every group, else only the groups the
                    // principal may DESCRIBE.
                    .filter(|g| {
                        see_all
                            || super::authz::allowed_quietly(
                                &shard,
                                &request,
                                Operation::Describe,
                                ResourceType::Group,
                                &g.group,
                            )
                    })
                    .map(|g| {
                        let mut entry = ListedGroup::default()
                            .with_group_id(GroupId(str_bytes(&g.group)))
                            .with_protocol_type(str_bytes(&g.protocol_type));
                        if version >= 4 {
                            entry.group_state = str_bytes(g.state);
                        }
                        if version >= 5 {
                            entry.group_type = str_bytes(GROUP_TYPE);
                        }
                        entry
                    })
                    .collect();
                ListGroupsResponse::default().with_groups(listed)
            }
        };
        Outcome::encoded(&response, version)
    })
}
