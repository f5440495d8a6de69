//! The controller mutation quota of CreateTopics, CreatePartitions and DeleteTopics (KIP-599):
//! each topic's partitions (created, added or deleted) are recorded against the request's
//! `controller_mutation_rate` before the change is sent to the controller. Strict versions
//! (CreateTopics v6+, CreatePartitions v3+, DeleteTopics v5+) refuse a topic with
//! THROTTLING_QUOTA_EXCEEDED once the quota is exhausted; older ones are recorded and only
//! throttled. The response carries the largest throttle time and the connection is muted for
//! it, as Kafka's `sendResponseMaybeThrottleWithControllerQuota`.

use super::Request;
use crate::quotas::mutation::Mutation;
use crate::shard::Shard;

/// Kafka's message of THROTTLING_QUOTA_EXCEEDED.
pub const THROTTLED_MESSAGE: &str = "The throttling quota has been exceeded.";

/// One request's mutation quota.
pub struct MutationQuota {
    /// False when no quota can apply (none configured, or not authenticated yet).
    active: bool,
    strict: bool,
    user: String,
    client_id: String,
    throttle_ms: u64,
}

impl MutationQuota {
    /// `strict_from`: the first strict version of the request's API.
    pub fn new(shard: &Shard, request: &Request, strict_from: i16) -> Self {
        Self {
            active: shard.quotas.active() && request.session.is_authenticated(),
            strict: request.version() >= strict_from,
            user: request.session.principal_name(),
            client_id: request
                .header
                .client_id
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
            throttle_ms: 0,
        }
    }

    /// Records `partitions`; false: refused (THROTTLING_QUOTA_EXCEEDED), nothing recorded.
    pub fn record(&mut self, shard: &Shard, partitions: u32) -> bool {
        if !self.active || partitions == 0 {
            return true;
        }
        let outcome =
            shard
                .quotas
                .record_mutation(&self.user, &self.client_id, partitions, self.strict);
        let (Mutation::Recorded { throttle_ms } | Mutation::Refused { throttle_ms }) = outcome;
        self.throttle_ms = self.throttle_ms.max(throttle_ms);
        matches!(outcome, Mutation::Recorded { .. })
    }

    /// The response's `throttle_time_ms` (0 before `field_from`, the first version with the
    /// field); mutes the connection for it in every version.
    pub fn finish(&self, request: &Request, field_from: i16) -> i32 {
        if self.throttle_ms > 0 {
            request.session.throttle(self.throttle_ms);
        }
        if request.version() < field_from {
            return 0;
        }
        i32::try_from(self.throttle_ms).unwrap_or(i32::MAX)
    }
}
