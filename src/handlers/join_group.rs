//! JoinGroup: decoded into `JoinArgs` and run on the group's coordinator shard; the answer
//! arrives when the rebalance completes (or at once for errors and MEMBER_ID_REQUIRED).

use std::rc::Rc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::group_common::{error_of, owned, owned_opt, str_opt};
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::groups::state::{JoinArgs, JoinReply};
use crate::groups::{GroupAnswer, GroupOp};
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: JoinGroupRequest = request.decode()?;
        let args = JoinArgs {
            member_id: owned(&body.member_id),
            instance_id: owned_opt(&body.group_instance_id),
            client_id: request
                .header
                .client_id
                .as_ref()
                .map(owned)
                .unwrap_or_default(),
            client_host: format!("/{}", request.peer.ip()),
            session_timeout_ms: body.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                body.rebalance_timeout_ms
            } else {
                body.session_timeout_ms
            },
            protocol_type: owned(&body.protocol_type),
            protocols: body
                .protocols
                .iter()
                .map(|p| (owned(&p.name), p.metadata.clone()))
                .collect(),
            require_known_member: version >= 4,
            supports_skip_assignment: version >= 9,
            fresh_member_id: String::new(),
        };
        let op = GroupOp::Join {
            group: body.group_id.0.to_string(),
            args,
        };
        let reply = match super::authz::route_group(&shard, &request, op).await {
            GroupAnswer::Join(reply) => reply,
            other => JoinReply {
                error: error_of(&other),
                generation: -1,
                member_id: owned(&body.member_id),
                ..JoinReply::default()
            },
        };
        Outcome::encoded(&response(reply, version), version)
    })
}

fn response(reply: JoinReply, version: i16) -> JoinGroupResponse {
    let members = reply
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_group_instance_id(str_opt(m.instance_id.as_deref()))
                .with_metadata(m.metadata)
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(reply.error.kafka_code())
        .with_generation_id(reply.generation)
        .with_leader(str_bytes(&reply.leader))
        .with_member_id(str_bytes(&reply.member_id))
        .with_members(members);
    if version >= 7 {
        response.protocol_type = str_opt(reply.protocol_type.as_deref());
        response.protocol_name = str_opt(reply.protocol_name.as_deref());
    } else {
        // Not nullable before v7.
        response.protocol_name = Some(str_bytes(reply.protocol_name.as_deref().unwrap_or("")));
    }
    if version >= 9 {
        response.skip_assignment = reply.skip_assignment;
    }
    response
}
