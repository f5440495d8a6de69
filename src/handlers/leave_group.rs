//! LeaveGroup: one member (v0-2) or a batch of members by member or instance id (v3+).

use std::rc::Rc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::group_common::{error_of, owned, owned_opt};
use super::{HandlerFuture, Outcome, Request};
use crate::groups::{GroupAnswer, GroupOp};
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: LeaveGroupRequest = request.decode()?;
        let members: Vec<(String, Option<String>)> = if version >= 3 {
            body.members
                .iter()
                .map(|m| (owned(&m.member_id), owned_opt(&m.group_instance_id)))
                .collect()
        } else {
            vec![(owned(&body.member_id), None)]
        };
        let op = GroupOp::Leave {
            group: body.group_id.0.to_string(),
            members: members.clone(),
        };
        let response = match super::authz::route_group(&shard, &request, op).await {
            GroupAnswer::Leave(codes) if version >= 3 => {
                let members = members
                    .into_iter()
                    .zip(codes)
                    .map(|((member_id, instance_id), code)| {
                        MemberResponse::default()
                            .with_member_id(super::str_bytes(&member_id))
                            .with_group_instance_id(instance_id.as_deref().map(super::str_bytes))
                            .with_error_code(code.kafka_code())
                    })
                    .collect();
                LeaveGroupResponse::default().with_members(members)
            }
            GroupAnswer::Leave(codes) => LeaveGroupResponse::default()
                .with_error_code(codes.first().map_or(0, |c| c.kafka_code())),
            other => LeaveGroupResponse::default().with_error_code(error_of(&other).kafka_code()),
        };
        Outcome::encoded(&response, version)
    })
}
