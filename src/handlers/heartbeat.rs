//! Heartbeat: keeps a member alive; REBALANCE_IN_PROGRESS tells it to rejoin.

use std::rc::Rc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::group_common::{error_of, owned, owned_opt};
use super::{HandlerFuture, Outcome, Request};
use crate::groups::GroupOp;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: HeartbeatRequest = request.decode()?;
        let op = GroupOp::Heartbeat {
            group: body.group_id.0.to_string(),
            member_id: owned(&body.member_id),
            instance_id: owned_opt(&body.group_instance_id),
            generation: body.generation_id,
        };
        let code = error_of(&super::authz::route_group(&shard, &request, op).await).kafka_code();
        Outcome::encoded(&HeartbeatResponse::default().with_error_code(code), version)
    })
}
