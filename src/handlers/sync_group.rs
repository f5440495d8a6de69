//! SyncGroup: members wait on the coordinator shard for the leader's assignment.

use std::rc::Rc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::group_common::{error_of, owned, owned_opt, str_opt};
use super::{HandlerFuture, Outcome, Request};
use crate::groups::state::{SyncArgs, SyncReply};
use crate::groups::{GroupAnswer, GroupOp};
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: SyncGroupRequest = request.decode()?;
        let args = SyncArgs {
            member_id: owned(&body.member_id),
            instance_id: owned_opt(&body.group_instance_id),
            generation: body.generation_id,
            protocol_type: owned_opt(&body.protocol_type),
            protocol_name: owned_opt(&body.protocol_name),
            assignments: body
                .assignments
                .iter()
                .map(|a| (owned(&a.member_id), a.assignment.clone()))
                .collect(),
        };
        let op = GroupOp::Sync {
            group: body.group_id.0.to_string(),
            args,
        };
        let reply = match super::authz::route_group(&shard, &request, op).await {
            GroupAnswer::Sync(reply) => reply,
            other => SyncReply {
                error: error_of(&other),
                ..SyncReply::default()
            },
        };
        let mut response = SyncGroupResponse::default()
            .with_error_code(reply.error.kafka_code())
            .with_assignment(reply.assignment);
        if version >= 5 {
            response.protocol_type = str_opt(reply.protocol_type.as_deref());
            response.protocol_name = str_opt(reply.protocol_name.as_deref());
        }
        Outcome::encoded(&response, version)
    })
}
