//! The delayed-produce purgatory of one partition (Kafka's `DelayedProduce` in the produce
//! purgatory): acks=all appends wait here until the high watermark reaches the end of their
//! batch, the request timeout passes, or the partition stops being led here.
//!
//! Bounded: at most `waiters_max` waiters (`produce.purgatory.waiters.max`, a Sluice limit;
//! Kafka bounds it only through `queued.max.requests`); a produce that finds it full is
//! answered REQUEST_TIMED_OUT at once, after its append, like one that timed out (an
//! idempotent producer's retry is then found in the log and answered from it).
//!
//! Invariants: every waiter is answered exactly once (completed, expired, or failed when
//! leadership moves); a waiter whose caller went away is dropped at the next pass.

use futures_channel::oneshot;

use super::isr::{ack_outcome, AckError, AckResult};

struct Waiter {
    /// The appended batch's last offset + 1: the high watermark that acknowledges it.
    required_offset: i64,
    deadline_ms: i64,
    min_isr: usize,
    reply: oneshot::Sender<AckResult>,
}

/// The purgatory is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the produce purgatory holds its maximum of {0} waiters")]
pub struct PurgatoryFull(pub usize);

/// See the module documentation.
pub struct ProducePurgatory {
    waiters: Vec<Waiter>,
    waiters_max: usize,
}

impl ProducePurgatory {
    pub fn new(waiters_max: usize) -> Self {
        Self {
            waiters: Vec::new(),
            waiters_max,
        }
    }

    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Parks an acks=all produce until the high watermark reaches `required_offset`.
    pub fn park(
        &mut self,
        required_offset: i64,
        min_isr: usize,
        deadline_ms: i64,
    ) -> Result<oneshot::Receiver<AckResult>, PurgatoryFull> {
        self.waiters.retain(|w| !w.reply.is_canceled());
        if self.waiters.len() >= self.waiters_max {
            return Err(PurgatoryFull(self.waiters_max));
        }
        let (reply, rx) = oneshot::channel();
        self.waiters.push(Waiter {
            required_offset,
            deadline_ms,
            min_isr,
            reply,
        });
        Ok(rx)
    }

    /// Answers every waiter the high watermark now covers (Kafka's `tryComplete` on a high
    /// watermark move or an ISR change); returns how many were answered.
    pub fn complete(&mut self, high_watermark: i64, isr_len: usize) -> usize {
        let mut answered = 0;
        let mut kept = Vec::with_capacity(self.waiters.len());
        for waiter in self.waiters.drain(..) {
            match ack_outcome(
                high_watermark,
                isr_len,
                waiter.required_offset,
                waiter.min_isr,
            ) {
                Some(outcome) => {
                    let _gone_is_fine = waiter.reply.send(outcome);
                    answered += 1;
                }
                None => kept.push(waiter),
            }
        }
        self.waiters = kept;
        answered
    }

    /// Answers REQUEST_TIMED_OUT to every waiter past its deadline; returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        self.answer_where(|w| now_ms >= w.deadline_ms, AckError::RequestTimedOut)
    }

    /// Leadership moved away (or the partition is closing): every waiter is answered
    /// NOT_LEADER_OR_FOLLOWER, so the producer refreshes its metadata and retries.
    pub fn fail_all(&mut self) -> usize {
        self.answer_where(|_| true, AckError::NotLeaderOrFollower)
    }

    /// The earliest deadline among the waiters (when to run `expire` next).
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.waiters.iter().map(|w| w.deadline_ms).min()
    }

    fn answer_where(&mut self, pred: impl Fn(&Waiter) -> bool, error: AckError) -> usize {
        let (due, kept): (Vec<_>, Vec<_>) = self.waiters.drain(..).partition(|w| pred(w));
        self.waiters = kept;
        let count = due.len();
        for waiter in due {
            let _gone_is_fine = waiter.reply.send(Err(error));
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(rx: &mut oneshot::Receiver<AckResult>) -> Option<AckResult> {
        rx.try_recv().unwrap()
    }

    /// A waiter is answered once the high watermark reaches its batch end: OK with enough
    /// ISR, NOT_ENOUGH_REPLICAS_AFTER_APPEND with too few; the others keep waiting.
    #[test]
    fn completes_when_the_high_watermark_passes() {
        let mut p = ProducePurgatory::new(8);
        let mut a = p.park(5, 2, 10_000).unwrap();
        let mut b = p.park(9, 2, 10_000).unwrap();
        let mut c = p.park(7, 3, 10_000).unwrap();
        assert_eq!(p.complete(4, 2), 0);
        assert_eq!(answer(&mut a), None);
        assert_eq!(p.complete(7, 2), 2);
        assert_eq!(answer(&mut a), Some(Ok(())));
        assert_eq!(
            answer(&mut c),
            Some(Err(AckError::NotEnoughReplicasAfterAppend {
                isr: 2,
                min_isr: 3
            }))
        );
        assert_eq!(answer(&mut b), None);
        assert_eq!(p.len(), 1);
        assert_eq!(p.complete(9, 2), 1);
        assert_eq!(answer(&mut b), Some(Ok(())));
        assert!(p.is_empty());
    }

    /// The request timeout answers REQUEST_TIMED_OUT; leadership loss NOT_LEADER_OR_FOLLOWER.
    #[test]
    fn expires_and_fails() {
        let mut p = ProducePurgatory::new(8);
        let mut early = p.park(5, 1, 1_000).unwrap();
        let mut late = p.park(5, 1, 2_000).unwrap();
        assert_eq!(p.next_deadline_ms(), Some(1_000));
        assert_eq!(p.expire(999), 0);
        assert_eq!(p.expire(1_000), 1);
        assert_eq!(answer(&mut early), Some(Err(AckError::RequestTimedOut)));
        assert_eq!(answer(&mut late), None);
        assert_eq!(p.fail_all(), 1);
        assert_eq!(answer(&mut late), Some(Err(AckError::NotLeaderOrFollower)));
        assert_eq!(p.next_deadline_ms(), None);
    }

    /// Bounded: a full purgatory refuses; a waiter whose caller went away frees its place.
    #[test]
    fn bounded_and_drops_abandoned_waiters() {
        let mut p = ProducePurgatory::new(2);
        let _a = p.park(1, 1, 1_000).unwrap();
        let b = p.park(2, 1, 1_000).unwrap();
        assert_eq!(p.park(3, 1, 1_000).err(), Some(PurgatoryFull(2)));
        drop(b);
        assert!(p.park(3, 1, 1_000).is_ok());
        assert_eq!(p.len(), 2);
    }
}
