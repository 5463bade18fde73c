//! The [`Delivery`] port: a message broker reduced to the verbs a ledger-backed task queue needs
//! (send, receive with a visibility, claim, extend, ack, defer, re-queue, dead-letter).
//!
//! A broker only *delivers*: it carries opaque bodies (the queue writes the task id and tenant
//! in them) and hides a received delivery from every other receiver for a visibility, after
//! which it is delivered again. Task state — whether a delivery may run, attempts, leases,
//! errors — is the database's, through [`TaskLedger`](crate::ports::TaskLedger); one queue
//! (`docent-queue`) joins the two, so each broker (SQS, a Redis Stream) is a transport of a few
//! hundred lines and the state machine exists once.
//!
//! Every time a transport is given is already a whole number of its [`tick`](Delivery::tick)s,
//! at least one, and at most [`MAX_VISIBILITY`].

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::Result;

/// The longest visibility any transport is asked for (12 hours: SQS's limit, and the reclaim
/// horizon of the Redis Stream transport).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// A delivery a transport received and this process holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The transport's handle of this delivery (SQS: receive count and receipt handle; Redis:
    /// the entry id), what [`Delivery::ack`] and the other verbs take.
    pub receipt: String,
    /// The body as sent (or as someone else wrote it: it may name no task).
    pub body: String,
    /// When the receive returned.
    pub received_at: Instant,
    /// The visibility it was received with.
    pub visible_for: Duration,
}

/// A message broker as a ledger-backed task queue uses it. Failures are retryable
/// `service_unavailable` errors; the queue logs those of calls it can do without (a lost
/// `ack` only means the delivery comes back later and is dropped then).
#[async_trait]
pub trait Delivery: Send + Sync + 'static {
    /// A short name for logs and metrics (`sqs`, `redis`).
    fn name(&self) -> &'static str;

    /// The broker's unit of time: every visibility and delay it is given is a whole number of
    /// ticks (SQS: 1 s; Redis: 1 ms).
    fn tick(&self) -> Duration;

    /// Most deliveries one [`receive`](Delivery::receive) may return.
    fn batch(&self) -> u32;

    /// Checks the broker answers.
    async fn ping(&self) -> Result<()>;

    /// Sends one delivery per body, deliverable at once; how many were sent.
    async fn send(&self, bodies: &[String]) -> Result<usize>;

    /// Up to `max` deliveries, each hidden from every other receiver for `visibility` from now
    /// (including deliveries whose earlier visibility lapsed). `wait`: the call may wait for a
    /// delivery to arrive (a long poll, a blocking read) for as long as the transport's settings
    /// say; otherwise it answers at once.
    async fn receive(&self, max: u32, visibility: Duration, wait: bool) -> Result<Vec<Received>>;

    /// Makes a received delivery `worker`'s for `visibility`, just before the ledger leases its
    /// task. `buffered`: it waited in this process's buffer since it was received. Returns the
    /// instant its visibility now runs from (the ledger's lease must not outlast it), or `None`
    /// when it is no longer this process's to hand out (another receiver took it over).
    async fn claim(
        &self,
        delivery: &Received,
        worker: &str,
        visibility: Duration,
        buffered: bool,
    ) -> Result<Option<Instant>>;

    /// Keeps `worker`'s delivery hidden for `visibility` from now (a heartbeat). A delivery
    /// another receiver took over is left alone.
    async fn extend(&self, receipt: &str, worker: &str, visibility: Duration) -> Result<()>;

    /// Ends a delivery for good (its task finished, or it names a task that does not exist).
    async fn ack(&self, receipt: &str) -> Result<()>;

    /// Hides a delivery of a live task until `delay` from now, when it is delivered again (a
    /// retry's backoff, or a task the ledger lets run only later). The transport may do so by
    /// ending it and sending `body` afresh.
    async fn defer(&self, receipt: &str, body: &str, delay: Duration) -> Result<()>;

    /// Ends this delivery and delivers `body` again at once as a fresh delivery (a released
    /// task: the attempt that ended counts nowhere).
    async fn requeue(&self, receipt: &str, body: &str) -> Result<()>;

    /// Moves a delivery to the dead-letter queue, with why (`dead_lettered`, `not_a_task`).
    async fn dead_letter(&self, receipt: &str, body: &str, reason: &str) -> Result<()>;

    /// Housekeeping the queue's sweep runs after re-sending lost deliveries (the Redis
    /// transport forgets idle consumers); nothing by default.
    async fn tidy(&self) -> Result<()> {
        Ok(())
    }
}
