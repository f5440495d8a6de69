//! Checks every raft RPC that arrives on the controller listener before openraft sees it.
//!
//! openraft trusts its peers: it asserts (some asserts only in debug builds) that what a
//! leader sends is well formed, so one malformed frame could stop a node's raft core (debug) or
//! be stored as given and corrupt the metadata log (release). A peer that follows the protocol
//! never fails these checks, so a request that does is answered with an error and not passed on.
//!
//! Checked, per RPC kind:
//! - AppendEntries: the leader is a voter and its vote committed (granted by a quorum); the
//!   entries are consecutive, the first right after `prev_log_id` (index 0 without one); the
//!   entries' leader ids never decrease, start at or after `prev_log_id`'s and never pass the
//!   leader's vote (a leader sends no entry of a later term than its own); every log id names a
//!   voter; a membership entry names only voters; `leader_commit` does not pass the vote.
//! - Vote / PreVote: the candidate is a voter, its vote not committed, its last log id no later
//!   than its vote.
//! - Full snapshot: the leader is a voter and its vote committed; the snapshot has a last log id,
//!   no later than the vote, names a voter, and its membership (at or before the last log id)
//!   names only voters; a snapshot newer than what this node committed is at a greater index
//!   (openraft asserts that, in release builds too); the data decodes (`snapshot_check`).
//!   Snapshots travel whole in one frame, bounded by `controller.quorum.request.max.bytes`.
//!
//! The voters are `controller.quorum.voters`: the membership is static (every voter initializes
//! the same one), so a membership entry or snapshot naming another node is not from a peer.

use std::collections::BTreeSet;

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{BasicNode, EntryPayload, Membership};

use super::{LogIdOf, QuorumTypes, SnapshotMetaOf, VoteOf};
use crate::cluster::quorum::records::RecordError;

/// Decodes a snapshot's data as the state machine will, without applying it.
pub type SnapshotCheck = fn(&[u8]) -> Result<(), RecordError>;

/// Why a raft RPC was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidRpc {
    #[error("node {0} is not a voter of controller.quorum.voters")]
    NotVoter(u64),
    #[error("the sender's vote must {0}be committed")]
    VoteState(&'static str),
    #[error("entry {at} has index {index}, expected {expected}")]
    NotConsecutive {
        at: usize,
        index: u64,
        expected: u64,
    },
    #[error("log id {what} goes back or past the leader's vote")]
    LeaderOrder { what: &'static str },
    #[error("membership names node {0}, not a voter")]
    MembershipNotVoter(u64),
    #[error("snapshot {0}")]
    Snapshot(String),
}

/// The checks, with what they check against.
#[derive(Clone, Debug)]
pub struct Validator {
    voters: BTreeSet<u64>,
    snapshot_check: Option<SnapshotCheck>,
}

impl Validator {
    pub fn new(
        voters: impl IntoIterator<Item = u64>,
        snapshot_check: Option<SnapshotCheck>,
    ) -> Self {
        Validator {
            voters: voters.into_iter().collect(),
            snapshot_check,
        }
    }

    fn voter(&self, node_id: u64) -> Result<(), InvalidRpc> {
        if self.voters.contains(&node_id) {
            Ok(())
        } else {
            Err(InvalidRpc::NotVoter(node_id))
        }
    }

    /// A log id: names a voter and does not pass `vote`.
    fn log_id(
        &self,
        log_id: &LogIdOf,
        vote: &VoteOf,
        what: &'static str,
    ) -> Result<(), InvalidRpc> {
        self.voter(log_id.leader_id.node_id)?;
        if log_id.leader_id > vote.leader_id {
            return Err(InvalidRpc::LeaderOrder { what });
        }
        Ok(())
    }

    fn membership(&self, membership: &Membership<u64, BasicNode>) -> Result<(), InvalidRpc> {
        let named = membership
            .voter_ids()
            .chain(membership.nodes().map(|(id, _)| *id));
        for id in named {
            if !self.voters.contains(&id) {
                return Err(InvalidRpc::MembershipNotVoter(id));
            }
        }
        Ok(())
    }

    /// A leader's vote: a voter's, granted by a quorum.
    fn leader_vote(&self, vote: &VoteOf) -> Result<(), InvalidRpc> {
        self.voter(vote.leader_id.node_id)?;
        if !vote.is_committed() {
            return Err(InvalidRpc::VoteState(""));
        }
        Ok(())
    }

    pub fn append_entries(
        &self,
        req: &AppendEntriesRequest<QuorumTypes>,
    ) -> Result<(), InvalidRpc> {
        self.leader_vote(&req.vote)?;
        if let Some(prev) = &req.prev_log_id {
            self.log_id(prev, &req.vote, "prev_log_id")?;
        }
        if let Some(commit) = &req.leader_commit {
            self.log_id(commit, &req.vote, "leader_commit")?;
        }
        let mut expected = req
            .prev_log_id
            .as_ref()
            .map_or(Some(0), |p| p.index.checked_add(1));
        let mut previous = req.prev_log_id.as_ref().map(|p| p.leader_id);
        for (at, entry) in req.entries.iter().enumerate() {
            let index = entry.log_id.index;
            if Some(index) != expected {
                return Err(InvalidRpc::NotConsecutive {
                    at,
                    index,
                    expected: expected.unwrap_or(u64::MAX),
                });
            }
            self.log_id(&entry.log_id, &req.vote, "of an entry")?;
            if previous.is_some_and(|p| entry.log_id.leader_id < p) {
                return Err(InvalidRpc::LeaderOrder {
                    what: "of an entry",
                });
            }
            if let EntryPayload::Membership(m) = &entry.payload {
                self.membership(m)?;
            }
            previous = Some(entry.log_id.leader_id);
            expected = index.checked_add(1);
        }
        Ok(())
    }

    /// Vote and PreVote requests.
    pub fn vote(&self, req: &VoteRequest<QuorumTypes>) -> Result<(), InvalidRpc> {
        self.voter(req.vote.leader_id.node_id)?;
        if req.vote.is_committed() {
            return Err(InvalidRpc::VoteState("not "));
        }
        if let Some(last) = &req.last_log_id {
            self.log_id(last, &req.vote, "last_log_id")?;
        }
        Ok(())
    }

    /// A full snapshot; `local_committed` is what this node has committed (from its metrics).
    pub fn full_snapshot(
        &self,
        vote: &VoteOf,
        meta: &SnapshotMetaOf,
        data: &[u8],
        local_committed: Option<&LogIdOf>,
    ) -> Result<(), InvalidRpc> {
        self.leader_vote(vote)?;
        let Some(last) = &meta.last_log_id else {
            return Err(InvalidRpc::Snapshot("without a last log id".into()));
        };
        self.log_id(last, vote, "of the snapshot")?;
        if let Some(at) = meta.last_membership.log_id() {
            self.log_id(at, vote, "of the snapshot's membership")?;
            if at > last {
                return Err(InvalidRpc::Snapshot(
                    "membership after its last log id".into(),
                ));
            }
        }
        self.membership(meta.last_membership.membership())?;
        if let Some(committed) = local_committed {
            if last > committed && last.index <= committed.index {
                return Err(InvalidRpc::Snapshot(format!(
                    "last log id {last} contradicts the committed {committed}"
                )));
            }
        }
        if let Some(check) = self.snapshot_check {
            check(data).map_err(|e| InvalidRpc::Snapshot(format!("data: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::cluster::quorum::{EntryOf, RecordBatch, StoredMembershipOf};
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::impls::Vote;
    use openraft::LogId;

    fn log_id(term: u64, node: u64, index: u64) -> LogIdOf {
        LogId {
            leader_id: LeaderId {
                term,
                node_id: node,
            },
            index,
        }
    }

    fn vote(term: u64, node: u64, committed: bool) -> VoteOf {
        Vote {
            leader_id: LeaderId {
                term,
                node_id: node,
            },
            committed,
        }
    }

    fn entry(term: u64, node: u64, index: u64) -> EntryOf {
        EntryOf {
            log_id: log_id(term, node, index),
            payload: EntryPayload::Normal(RecordBatch(Vec::new())),
        }
    }

    fn membership(ids: &[u64]) -> Membership<u64, BasicNode> {
        let set: BTreeSet<u64> = ids.iter().copied().collect();
        let nodes = ids
            .iter()
            .map(|id| (*id, BasicNode::new(format!("127.0.0.1:{id}"))));
        Membership::new(
            vec![set],
            nodes.collect::<std::collections::BTreeMap<_, _>>(),
        )
        .unwrap()
    }

    fn append(
        v: VoteOf,
        prev: Option<LogIdOf>,
        entries: Vec<EntryOf>,
        commit: Option<LogIdOf>,
    ) -> AppendEntriesRequest<QuorumTypes> {
        AppendEntriesRequest {
            vote: v,
            prev_log_id: prev,
            entries,
            leader_commit: commit,
        }
    }

    fn validator() -> Validator {
        Validator::new([1, 2, 3], None)
    }

    #[test]
    fn well_formed_append_entries_pass() {
        let v = validator();
        let leader = vote(3, 1, true);
        // Heartbeat, first entries, a batch after prev spanning terms.
        v.append_entries(&append(
            leader,
            Some(log_id(2, 2, 9)),
            vec![],
            Some(log_id(2, 2, 9)),
        ))
        .unwrap();
        v.append_entries(&append(
            leader,
            None,
            vec![entry(0, 1, 0), entry(1, 2, 1)],
            None,
        ))
        .unwrap();
        let batch = vec![entry(2, 2, 10), entry(3, 1, 11), entry(3, 1, 12)];
        v.append_entries(&append(leader, Some(log_id(2, 2, 9)), batch, None))
            .unwrap();
        let member = EntryOf {
            log_id: log_id(3, 1, 10),
            payload: EntryPayload::Membership(membership(&[1, 2, 3])),
        };
        v.append_entries(&append(leader, Some(log_id(2, 2, 9)), vec![member], None))
            .unwrap();
    }

    #[test]
    fn malformed_append_entries_are_refused() {
        let v = validator();
        let leader = vote(3, 1, true);
        let prev = Some(log_id(2, 2, 9));
        let refused = |req| v.append_entries(&req).unwrap_err();
        // The breaker's frame: the first entry does not follow prev_log_id.
        assert!(matches!(
            refused(append(leader, prev, vec![entry(2, 2, 12)], None)),
            InvalidRpc::NotConsecutive { at: 0, .. }
        ));
        assert!(matches!(
            refused(append(leader, None, vec![entry(1, 1, 5)], None)),
            InvalidRpc::NotConsecutive { at: 0, .. }
        ));
        // A gap, a repeat, a wrapped index.
        let gap = vec![entry(3, 1, 10), entry(3, 1, 12)];
        assert!(matches!(
            refused(append(leader, prev, gap, None)),
            InvalidRpc::NotConsecutive { at: 1, .. }
        ));
        let max = Some(log_id(2, 2, u64::MAX));
        assert!(matches!(
            refused(append(leader, max, vec![entry(3, 1, 0)], None)),
            InvalidRpc::NotConsecutive { .. }
        ));
        // Terms going back, or past the leader's vote.
        let back = vec![entry(3, 1, 10), entry(2, 2, 11)];
        assert!(matches!(
            refused(append(leader, prev, back, None)),
            InvalidRpc::LeaderOrder { .. }
        ));
        let before_prev = vec![entry(1, 1, 10)];
        assert!(matches!(
            refused(append(leader, prev, before_prev, None)),
            InvalidRpc::LeaderOrder { .. }
        ));
        let future = vec![entry(4, 1, 10)];
        assert!(matches!(
            refused(append(leader, prev, future, None)),
            InvalidRpc::LeaderOrder { .. }
        ));
        let commit = Some(log_id(5, 1, 3));
        assert!(matches!(
            refused(append(leader, prev, vec![], commit)),
            InvalidRpc::LeaderOrder { .. }
        ));
        // Senders and ids that are no voters, an uncommitted leader vote.
        assert_eq!(
            refused(append(vote(3, 7, true), prev, vec![], None)),
            InvalidRpc::NotVoter(7)
        );
        assert_eq!(
            refused(append(leader, Some(log_id(2, 9, 9)), vec![], None)),
            InvalidRpc::NotVoter(9)
        );
        assert!(matches!(
            refused(append(vote(3, 1, false), prev, vec![], None)),
            InvalidRpc::VoteState(_)
        ));
        // A membership entry that adds a node.
        let member = EntryOf {
            log_id: log_id(3, 1, 10),
            payload: EntryPayload::Membership(membership(&[1, 2, 3, 4])),
        };
        assert_eq!(
            refused(append(leader, prev, vec![member], None)),
            InvalidRpc::MembershipNotVoter(4)
        );
    }

    #[test]
    fn votes_are_checked() {
        let v = validator();
        let req = |vote, last_log_id| VoteRequest {
            vote,
            last_log_id,
            leadership_transfer: false,
        };
        v.vote(&req(vote(4, 2, false), Some(log_id(3, 1, 20))))
            .unwrap();
        v.vote(&req(vote(1, 3, false), None)).unwrap();
        assert_eq!(
            v.vote(&req(vote(4, 8, false), None)).unwrap_err(),
            InvalidRpc::NotVoter(8)
        );
        assert!(v.vote(&req(vote(4, 2, true), None)).is_err());
        assert!(v
            .vote(&req(vote(4, 2, false), Some(log_id(5, 1, 20))))
            .is_err());
        assert!(v
            .vote(&req(vote(4, 2, false), Some(log_id(3, 6, 20))))
            .is_err());
    }

    fn bad_data(bytes: &[u8]) -> Result<(), RecordError> {
        match bytes {
            b"ok" => Ok(()),
            _ => Err(RecordError::Invalid("not a snapshot")),
        }
    }

    #[test]
    fn snapshots_are_checked() {
        let v = Validator::new([1, 2, 3], Some(bad_data));
        let leader = vote(3, 1, true);
        let meta = |last: Option<LogIdOf>, at: Option<LogIdOf>, ids: &[u64]| SnapshotMetaOf {
            last_log_id: last,
            last_membership: StoredMembershipOf::new(at, membership(ids)),
        };
        let good = meta(Some(log_id(3, 1, 50)), Some(log_id(0, 1, 0)), &[1, 2, 3]);
        v.full_snapshot(&leader, &good, b"ok", None).unwrap();
        v.full_snapshot(&leader, &good, b"ok", Some(&log_id(2, 2, 40)))
            .unwrap();
        // Data that does not decode, a missing or future last log id, a foreign membership.
        assert!(v.full_snapshot(&leader, &good, b"garbage", None).is_err());
        assert!(v
            .full_snapshot(&leader, &meta(None, None, &[1, 2, 3]), b"ok", None)
            .is_err());
        let future = meta(Some(log_id(4, 1, 50)), None, &[1, 2, 3]);
        assert!(v.full_snapshot(&leader, &future, b"ok", None).is_err());
        let foreign = meta(Some(log_id(3, 1, 50)), Some(log_id(0, 1, 0)), &[1, 5]);
        assert!(v.full_snapshot(&leader, &foreign, b"ok", None).is_err());
        let late_membership = meta(Some(log_id(3, 1, 50)), Some(log_id(3, 1, 51)), &[1, 2, 3]);
        assert!(v
            .full_snapshot(&leader, &late_membership, b"ok", None)
            .is_err());
        // Newer than the committed log id by term but not by index: openraft would assert.
        let behind = meta(Some(log_id(3, 1, 30)), None, &[1, 2, 3]);
        assert!(v
            .full_snapshot(&leader, &behind, b"ok", Some(&log_id(2, 2, 40)))
            .is_err());
        assert!(v
            .full_snapshot(&vote(3, 1, false), &good, b"ok", None)
            .is_err());
        assert!(v
            .full_snapshot(&vote(3, 4, true), &good, b"ok", None)
            .is_err());
    }
}
