//! DeleteGroups: an Empty group is removed with its offsets (tombstones written to
//! `__consumer_offsets`); a group with members is NON_EMPTY_GROUP.

use std::rc::Rc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::group_common::error_of;
use super::{HandlerFuture, Outcome, Request};
use crate::groups::GroupOp;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DeleteGroupsRequest = request.decode()?;
        // Kafka deletes the set of named groups: a repeated name is answered once.
        let names = super::dedup::first_wins(body.groups_names, Clone::clone);
        let deletes = names.iter().map(|g| {
            super::authz::route_group(
                &shard,
                &request,
                GroupOp::Delete {
                    group: g.0.to_string(),
                },
            )
        });
        let answers = super::dedup::in_order(deletes).await;
        let results = names
            .iter()
            .zip(answers)
            .map(|(id, answer)| {
                DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(error_of(&answer).kafka_code())
            })
            .collect();
        Outcome::encoded(
            &DeleteGroupsResponse::default().with_results(results),
            version,
        )
    })
}
