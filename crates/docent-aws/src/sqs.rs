//! [`SqsQueue`]: the [`TaskQueue`] port on Amazon SQS, with task state kept in the database.
//!
//! SQS carries *deliveries*: one message per runnable task, its body the task id and tenant
//! (`{"task_id": .., "tenant_id": ..}`). The `tasks` table, through a [`TaskLedger`] (the SQLite
//! or PostgreSQL queue), is the record: it decides whether a delivery may run, holds the lease,
//! attempts, progress and errors, and answers `get`, `list` and `depth`, so status queries never
//! touch SQS and keep working while it is unreachable.
//!
//! # Deliveries
//!
//! - **Lease** = `ReceiveMessage` (long poll of `wait_time`, visibility = the lease rounded up
//!   to whole seconds) → [`TaskLedger::lease_task`] of the task the message names. The message's
//!   visibility timeout *is* the lease: both end at the same instant (the ledger's lease is
//!   taken for the seconds SQS was asked for, less the time since the receive returned), so a
//!   worker that dies (kill -9) has its task delivered again when its lease lapses.
//!   The lease token handed to the worker is the ledger's token, the message's receive count and
//!   its receipt handle (`token|count|receipt`); only the ledger part guards state changes.
//! - A message the ledger refuses is settled by the task's state: finished, cancelled or
//!   unknown → deleted; dead-lettered → moved to the dead-letter queue; still leased or backing
//!   off (a duplicate, or a delivery come back a little early) → hidden again until the ledger
//!   says the task may run; refused while due (its tenant at its fair-share cap while another
//!   tenant waits) → hidden for a second, no attempt counted. SQS is at-least-once, and the ledger lets exactly one delivery lease
//!   a task, so duplicates are harmless.
//! - **Heartbeat** = `ChangeMessageVisibility`, then the ledger's heartbeat (so the message
//!   never outlives the lease). **Complete**, **cancelled** and non-retryable **fail** = the
//!   ledger, then `DeleteMessage`. A retryable **fail** picks the backoff itself (rounded up to
//!   whole seconds) and has the ledger use exactly it ([`TaskLedger::fail_after`]); the message
//!   is hidden for as long. Out of attempts → dead-lettered in the ledger and the message moved
//!   to the dead-letter queue. **Release** (graceful shutdown) sends a fresh message and deletes
//!   the old one, so the released attempt counts neither in the ledger nor towards SQS's receive
//!   count. An operator **retry** sends a new message. A call that ends or re-times a delivery
//!   comes after the ledger's change and only when the ledger accepted it, so a lease that
//!   lapsed never touches the message its successor holds (a heartbeat's extension of a lost
//!   lease carries a stale receipt handle, which SQS refuses).
//! - **Batches.** A receive asks for as many messages as there are `lease` calls waiting in this
//!   process (one receive at a time per process, at most `receive_batch`); the extra messages are
//!   handed to those callers from a local buffer, none is over-fetched and held back.
//! - **Dead letters.** The queue's redrive policy sends a message to the dead-letter queue after
//!   `max_attempts + 1` receives. Normally the ledger gets there first: the receive after the
//!   last attempt's lease lapsed finds the task out of attempts, dead-letters it (`worker_lost`)
//!   and moves the message. SQS's own redrive is the backstop for deliveries nobody handled (a
//!   process killed between the receive and the database). A message the ledger still wants
//!   that has reached the receive limit is replaced by a fresh one instead of being hidden again,
//!   so SQS never redrives a live task.
//!
//! # Lost messages
//!
//! SQS and the database are not one transaction. When `SendMessage` fails after the database
//! write (SQS down during an upload, say), `enqueue` still succeeds — the task exists, pending —
//! and logs a warning; a message redriven or deleted while the ledger still wanted it is lost
//! the same way. The **sweep** repairs both: after a receive finds the queue empty (at most every
//! `republish_after / 4`), a process settles lapsed leases in the ledger and sends a fresh
//! message for every task that has been runnable for `republish_after` or longer. A backlog
//! never triggers it (the queue is not empty then), and a duplicate it might send is harmless.
//!
//! # Time
//!
//! SQS counts visibility in whole seconds, the ledger in milliseconds: visibilities and
//! backoffs are rounded *up* to whole seconds and the ledger is given the rounded value, so the
//! two agree to within a call's latency. SQS caps a message's visibility at 12 hours and a
//! send's delay at 15 minutes; longer waits are covered by hiding the message again when it
//! comes back early.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use chrono::Utc;
use docent_domain::ports::{Backoff, FailOutcome, Heartbeat, Lease, TaskLedger, TaskQueue};
use docent_domain::{
    Code, CollectionId, Error, ErrorInfo, NewTask, Page, PageRequest, Progress, QueueDepth, Result,
    Task, TaskFilter, TaskId, TaskStatus, TenantId,
};
use serde::{Deserialize, Serialize};

/// SQS's longest visibility timeout (12 hours), in seconds.
pub const MAX_VISIBILITY_SECS: u64 = 12 * 3600;
/// SQS's longest delivery delay of a sent message (15 minutes), in seconds.
pub const MAX_DELAY_SECS: u64 = 15 * 60;
/// SQS's largest receive and send batch.
pub const MAX_BATCH: u32 = 10;
/// SQS's longest long poll, in seconds.
pub const MAX_WAIT_SECS: u64 = 20;
/// How long messages stay in either queue (14 days, SQS's longest) when `connect` creates them.
const RETENTION_SECS: u64 = 14 * 24 * 3600;
/// Receives per `lease` call while every message received was spent (finished tasks,
/// duplicates); only the first one long-polls.
const RECEIVE_ROUNDS: usize = 3;
/// Most overdue tasks one sweep sends again.
const SWEEP_LIMIT: u32 = 500;
/// A buffered message this close to the end of its visibility is not claimed any more.
const BUFFER_MARGIN: Duration = Duration::from_secs(1);

/// Where the queues live and how calls behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsQueueSettings {
    /// Name of the queue carrying deliveries.
    pub queue_name: String,
    /// Name of its dead-letter queue.
    pub dlq_name: String,
    /// Endpoint override (moto, ElasticMQ); `None`: AWS, or `AWS_ENDPOINT_URL*`.
    pub endpoint: Option<String>,
    /// Region; `None`: the AWS environment's.
    pub region: Option<String>,
    /// Long-poll time of a receive (whole seconds, at most 20; zero: short polling).
    pub wait_time: Duration,
    /// Create missing queues and set the redrive policy in [`SqsQueue::connect`].
    pub create_queues: bool,
    /// How long a task may stay runnable, with the queue empty, before the sweep sends its
    /// message again (see the module docs).
    pub republish_after: Duration,
    /// Most messages per receive (1 to 10).
    pub receive_batch: u32,
    /// Longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// Longest one attempt of a call may take (a receive adds its long poll).
    pub attempt_timeout: Duration,
    /// Longest a whole call may take, retries included (a receive adds its long poll).
    pub operation_timeout: Duration,
    /// Attempts per call (1: no retry).
    pub max_sdk_attempts: u32,
}

impl SqsQueueSettings {
    /// Settings for the two queues with the defaults: a 20 s long poll, no queue creation,
    /// re-publishing after 2 minutes, batches of 10, and calls bounded by 3 s to connect, 5 s an
    /// attempt and 15 s in all, three attempts.
    pub fn new(queue_name: impl Into<String>, dlq_name: impl Into<String>) -> Self {
        Self {
            queue_name: queue_name.into(),
            dlq_name: dlq_name.into(),
            endpoint: None,
            region: None,
            wait_time: Duration::from_secs(MAX_WAIT_SECS),
            create_queues: false,
            republish_after: Duration::from_secs(120),
            receive_batch: MAX_BATCH,
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
            max_sdk_attempts: 3,
        }
    }
}

impl From<&docent_config::SqsQueueConfig> for SqsQueueSettings {
    fn from(c: &docent_config::SqsQueueConfig) -> Self {
        Self {
            endpoint: c.endpoint.clone(),
            region: c.region.clone(),
            wait_time: c.wait_time,
            create_queues: c.create_queues,
            republish_after: c.republish_after,
            ..Self::new(c.queue_name.clone(), c.dlq_name.clone())
        }
    }
}

impl From<&SqsQueueSettings> for SqsQueueSettings {
    fn from(s: &SqsQueueSettings) -> Self {
        s.clone()
    }
}

/// The two queues as [`SqsQueue::connect`] resolved them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsQueues {
    /// URL of the queue carrying deliveries.
    pub queue_url: String,
    /// URL of the dead-letter queue.
    pub dlq_url: String,
    /// The redrive policy's `maxReceiveCount` (`u32::MAX` when the queue has none): a message
    /// received this many times is replaced rather than hidden again while its task is live.
    pub max_receive_count: u32,
}

/// An SQS client with the timeouts and retries of `settings`.
pub async fn client(settings: &SqsQueueSettings) -> Client {
    let sdk = crate::sdk_config(settings.endpoint.as_deref(), settings.region.as_deref()).await;
    let (timeouts, retries) = crate::call_limits(
        settings.connect_timeout,
        settings.attempt_timeout,
        settings.operation_timeout,
        settings.max_sdk_attempts,
        Duration::from_secs(1),
    );
    let config = aws_sdk_sqs::config::Builder::from(&sdk)
        .timeout_config(timeouts)
        .retry_config(retries)
        .build();
    Client::from_conf(config)
}

/// The SQS task queue (see the module docs).
pub struct SqsQueue {
    ledger: Arc<dyn TaskLedger>,
    client: Client,
    queues: SqsQueues,
    backoff: Backoff,
    wait_secs: u64,
    receive_batch: u32,
    republish_after: Duration,
    sweep_every: Duration,
    operation_timeout: Duration,
    attempt_timeout: Duration,
    /// Received messages not claimed yet, for `lease` calls that waited on the receive; its
    /// lock makes receives one at a time per process.
    inbox: tokio::sync::Mutex<VecDeque<Delivery>>,
    /// `lease` calls waiting for the inbox.
    waiting: AtomicUsize,
    /// Receives that came back empty, so callers that waited on one return at once.
    empty_receives: AtomicU64,
    /// When this process last swept.
    last_sweep: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsQueue")
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

/// The body of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct TaskRef {
    task_id: TaskId,
    tenant_id: TenantId,
}

impl TaskRef {
    fn of(task: &Task) -> Self {
        Self {
            task_id: task.id,
            tenant_id: task.tenant_id,
        }
    }

    fn body(&self) -> String {
        serde_json::json!({"task_id": self.task_id, "tenant_id": self.tenant_id}).to_string()
    }
}

/// A message this process received and still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Receipt {
    handle: String,
    /// `ApproximateReceiveCount` when it was received (this receive included).
    receive_count: u32,
}

/// A received message.
#[derive(Debug)]
struct Delivery {
    /// What the body names; `None` for a body that is not a task reference.
    task: Option<TaskRef>,
    body: String,
    receipt: Receipt,
    received_at: Instant,
    /// The visibility timeout it was received with.
    visible_for: Duration,
}

/// Counts a caller waiting for the inbox while it lives (also when its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::AcqRel);
        Self(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `d` in whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A lease's visibility as SQS takes it: whole seconds, 1 to 12 hours.
fn visibility_secs(d: Duration) -> u64 {
    ceil_secs(d).clamp(1, MAX_VISIBILITY_SECS)
}

fn to_i32(secs: u64) -> i32 {
    i32::try_from(secs).unwrap_or(i32::MAX)
}

const TOKEN_SEP: char = '|';

/// The worker's lease: the ledger's, with the message's receive count and receipt handle
/// appended to the token.
fn wrap(lease: Lease, receipt: &Receipt) -> Lease {
    Lease {
        token: format!(
            "{}{TOKEN_SEP}{}{TOKEN_SEP}{}",
            lease.token, receipt.receive_count, receipt.handle
        ),
        ..lease
    }
}

/// The ledger's lease and the message receipt inside a worker's lease.
fn unwrap(lease: &Lease) -> (Lease, Option<Receipt>) {
    let mut parts = lease.token.splitn(3, TOKEN_SEP);
    let ledger_token = parts.next().unwrap_or_default().to_owned();
    let receipt = match (parts.next(), parts.next()) {
        (Some(count), Some(handle)) => Some(Receipt {
            handle: handle.to_owned(),
            receive_count: count.parse().unwrap_or(u32::MAX),
        }),
        _ => None,
    };
    let inner = Lease {
        task: lease.task.clone(),
        token: ledger_token,
        expires_at: lease.expires_at,
    };
    (inner, receipt)
}

/// Every SQS failure is a retryable `service_unavailable` (the cause goes to the logs only).
fn sqs_err<E, R>(op: &str, e: SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Error::unavailable(
        "the SQS queue",
        format!("SQS {op}: {}", DisplayErrorContext(&e)),
    )
}

/// Whether a failed call said the queue does not exist.
fn is_missing_queue<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|c| c.contains("QueueDoesNotExist") || c.contains("NonExistentQueue"))
}

/// The URL of queue `name`; created (with `attributes`) when missing and `create` is set.
async fn resolve_queue(
    client: &Client,
    name: &str,
    create: bool,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String> {
    let found = client.get_queue_url().queue_name(name).send().await;
    let missing = match found {
        Ok(out) => {
            return out
                .queue_url()
                .map(str::to_owned)
                .ok_or_else(|| no_url(name));
        }
        Err(e) if is_missing_queue(&e) => e,
        Err(e) => return Err(sqs_err("GetQueueUrl", e)),
    };
    if !create {
        return Err(Error::unavailable(
            "the SQS queue",
            format!(
                "queue {name} does not exist (create it, or set queue.backend.create_queues): {}",
                DisplayErrorContext(&missing)
            ),
        ));
    }
    let mut request = client.create_queue().queue_name(name);
    for (key, value) in attributes {
        request = request.attributes(key.clone(), value.clone());
    }
    match request.send().await {
        Ok(out) => {
            tracing::info!(queue = %name, "SQS queue created");
            out.queue_url()
                .map(str::to_owned)
                .ok_or_else(|| no_url(name))
        }
        // Created meanwhile by another process, with other attributes.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_name_exists()) =>
        {
            let out = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| sqs_err("GetQueueUrl", e))?;
            out.queue_url()
                .map(str::to_owned)
                .ok_or_else(|| no_url(name))
        }
        Err(e) => Err(sqs_err("CreateQueue", e)),
    }
}

fn no_url(name: &str) -> Error {
    Error::unavailable(
        "the SQS queue",
        format!("SQS answered no URL for queue {name}"),
    )
}

async fn queue_attributes(
    client: &Client,
    url: &str,
    names: &[QueueAttributeName],
) -> Result<HashMap<QueueAttributeName, String>> {
    let mut request = client.get_queue_attributes().queue_url(url);
    for name in names {
        request = request.attribute_names(name.clone());
    }
    let out = request
        .send()
        .await
        .map_err(|e| sqs_err("GetQueueAttributes", e))?;
    Ok(out.attributes().cloned().unwrap_or_default())
}

/// The redrive policy's target and count.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedrivePolicy {
    dead_letter_target_arn: String,
    /// A number or a string of one, depending on who wrote it.
    max_receive_count: serde_json::Value,
}

/// Resolves (and with `settings.create_queues`, creates) both queues and sets the redrive
/// policy to `max_attempts + 1` receives.
#[tracing::instrument(skip_all, fields(queue = %settings.queue_name, dlq = %settings.dlq_name))]
pub async fn resolve_queues(
    client: &Client,
    settings: &SqsQueueSettings,
    max_attempts: u32,
) -> Result<SqsQueues> {
    let create = settings.create_queues;
    let retention = [(
        QueueAttributeName::MessageRetentionPeriod,
        RETENTION_SECS.to_string(),
    )];
    let dlq_url = resolve_queue(client, &settings.dlq_name, create, &retention).await?;
    let queue_url = resolve_queue(client, &settings.queue_name, create, &retention).await?;
    let dlq_arn = queue_attributes(client, &dlq_url, &[QueueAttributeName::QueueArn])
        .await?
        .remove(&QueueAttributeName::QueueArn)
        .ok_or_else(|| {
            Error::unavailable(
                "the SQS queue",
                "SQS answered no ARN for the dead-letter queue",
            )
        })?;
    let wanted = max_attempts.saturating_add(1);
    if create {
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": wanted.to_string(),
        });
        client
            .set_queue_attributes()
            .queue_url(&queue_url)
            .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
            .send()
            .await
            .map_err(|e| sqs_err("SetQueueAttributes", e))?;
        return Ok(SqsQueues {
            queue_url,
            dlq_url,
            max_receive_count: wanted,
        });
    }
    let current = queue_attributes(client, &queue_url, &[QueueAttributeName::RedrivePolicy])
        .await?
        .remove(&QueueAttributeName::RedrivePolicy);
    let policy = current
        .as_deref()
        .and_then(|p| serde_json::from_str::<RedrivePolicy>(p).ok());
    let count = policy.as_ref().and_then(|p| match &p.max_receive_count {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    });
    match (&policy, count) {
        (Some(p), Some(count)) if p.dead_letter_target_arn == dlq_arn => {
            if count != wanted {
                tracing::warn!(
                    max_receive_count = count,
                    expected = wanted,
                    "the SQS queue's redrive policy differs from queue.max_attempts + 1"
                );
            }
        }
        _ => tracing::warn!(
            policy = ?current,
            dlq_arn = %dlq_arn,
            "the SQS queue has no redrive policy to the dead-letter queue: dead-lettered tasks \
             still reach it, but messages nobody handles are never redriven"
        ),
    }
    Ok(SqsQueues {
        queue_url,
        dlq_url,
        max_receive_count: count.unwrap_or(u32::MAX),
    })
}

impl SqsQueue {
    /// Connects to the queues of `settings` — `&docent_config::SqsQueueConfig` works too —
    /// creating them first when `settings.create_queues` is set (see [`resolve_queues`]), with
    /// `ledger` as the record of task state. `max_attempts` is `queue.max_attempts` (the ledger's
    /// default; the redrive policy allows one receive more) and `backoff` the retry delays.
    pub async fn connect(
        ledger: Arc<dyn TaskLedger>,
        settings: impl Into<SqsQueueSettings>,
        max_attempts: u32,
        backoff: Backoff,
    ) -> Result<Self> {
        let settings = settings.into();
        let client = client(&settings).await;
        let queues = resolve_queues(&client, &settings, max_attempts).await?;
        tracing::info!(queue = %queues.queue_url, dlq = %queues.dlq_url, "SQS task queue ready");
        Ok(Self::with_client(
            ledger, client, queues, &settings, backoff,
        ))
    }

    /// A queue over resolved queues and an existing client; makes no call.
    pub fn with_client(
        ledger: Arc<dyn TaskLedger>,
        client: Client,
        queues: SqsQueues,
        settings: &SqsQueueSettings,
        backoff: Backoff,
    ) -> Self {
        Self {
            ledger,
            client,
            queues,
            backoff,
            wait_secs: settings.wait_time.as_secs().min(MAX_WAIT_SECS),
            receive_batch: settings.receive_batch.clamp(1, MAX_BATCH),
            republish_after: settings.republish_after,
            sweep_every: (settings.republish_after / 4)
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
            operation_timeout: settings.operation_timeout,
            attempt_timeout: settings.attempt_timeout,
            inbox: tokio::sync::Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            empty_receives: AtomicU64::new(0),
            last_sweep: std::sync::Mutex::new(None),
        }
    }

    /// The queues in use.
    pub fn queues(&self) -> &SqsQueues {
        &self.queues
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<dyn TaskLedger> {
        &self.ledger
    }

    /// Settles lapsed leases in the ledger and sends a fresh message for every task runnable
    /// for `republish_after` or longer (see "Lost messages" in the module docs). Returns how
    /// many were sent. `lease` runs it after a receive finds the queue empty.
    #[tracing::instrument(skip_all)]
    pub async fn sweep(&self) -> Result<usize> {
        *self.last_sweep.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.sweep_now().await
    }

    async fn sweep_now(&self) -> Result<usize> {
        self.ledger.settle_lapsed().await?;
        let overdue = self
            .ledger
            .runnable_for(self.republish_after, SWEEP_LIMIT)
            .await?;
        let mut sent = 0;
        for batch in overdue.chunks(MAX_BATCH as usize) {
            let mut request = self
                .client
                .send_message_batch()
                .queue_url(&self.queues.queue_url);
            for (i, (tenant, id)) in batch.iter().enumerate() {
                let body = TaskRef {
                    task_id: *id,
                    tenant_id: *tenant,
                }
                .body();
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(Error::internal)?;
                request = request.entries(entry);
            }
            let out = request
                .send()
                .await
                .map_err(|e| sqs_err("SendMessageBatch", e))?;
            for failed in out.failed() {
                tracing::warn!(code = %failed.code(), message = ?failed.message(), "could not re-publish a task");
            }
            sent += out.successful().len();
        }
        if sent > 0 {
            metrics::counter!("docent_sqs_republished_total").increment(sent as u64);
            tracing::warn!(
                tasks = sent,
                "re-published tasks runnable for {:?} with no delivery",
                self.republish_after
            );
        }
        Ok(sent)
    }

    /// Sweeps when the last sweep of this process is old enough (one at a time); failures are
    /// logged.
    async fn sweep_if_due(&self) {
        let due = {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= self.sweep_every);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due && let Err(e) = self.sweep_now().await {
            tracing::warn!(error = %e.chain(), "SQS queue sweep failed");
        }
    }

    /// One `ReceiveMessage`.
    async fn receive(&self, max: u32, visibility: u64, wait: u64) -> Result<VecDeque<Delivery>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queues.queue_url)
            .max_number_of_messages(to_i32(u64::from(max)))
            .visibility_timeout(to_i32(visibility))
            .wait_time_seconds(to_i32(wait))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default().timeout_config(
                    TimeoutConfig::builder()
                        .operation_attempt_timeout(self.attempt_timeout + Duration::from_secs(wait))
                        .operation_timeout(self.operation_timeout + Duration::from_secs(wait))
                        .build(),
                ),
            )
            .send()
            .await
            .map_err(|e| sqs_err("ReceiveMessage", e))?;
        let received_at = Instant::now();
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let handle = m.receipt_handle()?.to_owned();
                let body = m.body().unwrap_or_default().to_owned();
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Some(Delivery {
                    task: serde_json::from_str(&body).ok(),
                    body,
                    receipt: Receipt {
                        handle,
                        receive_count,
                    },
                    received_at,
                    visible_for: Duration::from_secs(visibility),
                })
            })
            .collect())
    }

    /// Sends a message for `task` to the queue, delivered after `delay`.
    async fn send(&self, task: TaskRef, delay: u64) -> Result<()> {
        self.client
            .send_message()
            .queue_url(&self.queues.queue_url)
            .message_body(task.body())
            .delay_seconds(to_i32(delay.min(MAX_DELAY_SECS)))
            .send()
            .await
            .map_err(|e| sqs_err("SendMessage", e))?;
        Ok(())
    }

    /// Sends a new delivery for a task the ledger just made runnable; a failure is logged, not
    /// returned: the task is recorded, and the sweep sends it later.
    async fn publish(&self, task: &Task, what: &str) {
        if let Err(e) = self.send(TaskRef::of(task), 0).await {
            metrics::counter!("docent_sqs_send_failures_total").increment(1);
            tracing::warn!(
                task = %task.id,
                error = %e.chain(),
                "{what}: the task is recorded but its SQS message could not be sent; the sweep \
                 will send it once it has waited {:?}",
                self.republish_after
            );
        }
    }

    async fn delete(&self, receipt: &Receipt) {
        let done = self
            .client
            .delete_message()
            .queue_url(&self.queues.queue_url)
            .receipt_handle(&receipt.handle)
            .send()
            .await;
        if let Err(e) = done {
            // It comes back when its visibility ends and is deleted then.
            tracing::warn!(error = %DisplayErrorContext(&e), "could not delete an SQS message");
        }
    }

    async fn set_visibility(&self, receipt: &Receipt, secs: u64) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queues.queue_url)
            .receipt_handle(&receipt.handle)
            .visibility_timeout(to_i32(secs.min(MAX_VISIBILITY_SECS)))
            .send()
            .await
            .map_err(|e| sqs_err("ChangeMessageVisibility", e))?;
        Ok(())
    }

    /// Replaces a message by a fresh one (receive count 0) delivered after `delay`.
    async fn replace(&self, task: TaskRef, receipt: &Receipt, delay: u64) -> Result<()> {
        self.send(task, delay).await?;
        self.delete(receipt).await;
        metrics::counter!("docent_sqs_messages_total", "outcome" => "replaced").increment(1);
        Ok(())
    }

    /// Hides a message of a live task until `secs` from now: its visibility is changed, or —
    /// when SQS would redrive it at its next receive, or refuses the change — it is replaced.
    async fn hide(&self, task: TaskRef, receipt: &Receipt, secs: u64) {
        let changed = if receipt.receive_count >= self.queues.max_receive_count {
            None
        } else {
            Some(self.set_visibility(receipt, secs).await)
        };
        let outcome = match changed {
            Some(Ok(())) => return,
            Some(Err(e)) => {
                tracing::debug!(error = %e.chain(), "changing the visibility failed; replacing the message");
                self.replace(task, receipt, secs).await
            }
            None => self.replace(task, receipt, secs).await,
        };
        if let Err(e) = outcome {
            // Left as is, it comes back when its visibility ends.
            tracing::warn!(task = %task.task_id, error = %e.chain(), "could not re-time an SQS message");
        }
    }

    /// Moves a message to the dead-letter queue (a copy there, then deleted here).
    async fn dead_letter(&self, body: &str, receipt: &Receipt) {
        let sent = self
            .client
            .send_message()
            .queue_url(&self.queues.dlq_url)
            .message_body(body)
            .send()
            .await;
        match sent {
            Ok(_) => {
                self.delete(receipt).await;
                metrics::counter!("docent_sqs_messages_total", "outcome" => "dead_lettered")
                    .increment(1);
            }
            // Left in the queue, it comes back and is moved then (or SQS redrives it).
            Err(e) => {
                tracing::warn!(error = %DisplayErrorContext(&e), "could not move an SQS message to the dead-letter queue")
            }
        }
    }

    /// Tries to lease the task a delivery names. `buffered`: it waited in the inbox, so its
    /// visibility is set again to match the new lease.
    async fn claim(
        &self,
        delivery: Delivery,
        worker: &str,
        visibility: u64,
        buffered: bool,
    ) -> Result<Option<Lease>> {
        let Some(task) = delivery.task else {
            tracing::warn!(body = %delivery.body, "a message in the SQS task queue names no task; moving it to the dead-letter queue");
            self.dead_letter(&delivery.body, &delivery.receipt).await;
            return Ok(None);
        };
        // The message's visibility ends first, the lease right after: a fresh delivery's
        // visibility started when the receive returned; a buffered one gets a new one.
        // A delivery that waited (in the inbox, or behind earlier messages of its batch whose
        // settling took SQS and database calls) gets a whole visibility again, so the lease is
        // never too short to reach its first heartbeat.
        let mut since = delivery.received_at;
        if buffered || since.elapsed() > Duration::from_secs(1) {
            match self.set_visibility(&delivery.receipt, visibility).await {
                Ok(()) => since = Instant::now(),
                Err(e) => {
                    tracing::warn!(task = %task.task_id, error = %e.chain(), "could not extend a waiting SQS message")
                }
            }
        }
        let ledger_visibility = Duration::from_secs(visibility).saturating_sub(since.elapsed());
        if ledger_visibility < Duration::from_secs(visibility) / 3 {
            // Too little left to reach a heartbeat: the message comes back when it ends, and
            // the task is leased then.
            tracing::debug!(task = %task.task_id, "too little visibility left to lease; left for redelivery");
            return Ok(None);
        }
        let leased = self
            .ledger
            .lease_task(task.tenant_id, task.task_id, worker, ledger_visibility)
            .await?;
        if let Some(lease) = leased {
            metrics::counter!("docent_sqs_messages_total", "outcome" => "leased").increment(1);
            tracing::debug!(task = %task.task_id, attempt = lease.task.attempts, "leased");
            return Ok(Some(wrap(lease, &delivery.receipt)));
        }
        self.settle(task, &delivery).await?;
        Ok(None)
    }

    /// Deals with a delivery the ledger refused, by the task's state.
    async fn settle(&self, task: TaskRef, delivery: &Delivery) -> Result<()> {
        let current = match self.ledger.get(task.tenant_id, task.task_id).await {
            Ok(t) => t,
            Err(e) if e.code == Code::TaskNotFound => {
                tracing::debug!(task = %task.task_id, "message for an unknown task; deleted");
                metrics::counter!("docent_sqs_messages_total", "outcome" => "spent").increment(1);
                self.delete(&delivery.receipt).await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let now = Utc::now();
        let secs_until =
            |at: chrono::DateTime<Utc>| ceil_secs((at - now).to_std().unwrap_or_default()).max(1);
        match current.status {
            TaskStatus::Completed
            | TaskStatus::PartiallyCompleted
            | TaskStatus::Failed
            | TaskStatus::Cancelled => {
                if current.dead_lettered {
                    tracing::warn!(task = %task.task_id, error = ?current.error, "task dead-lettered; message moved to the dead-letter queue");
                    self.dead_letter(&delivery.body, &delivery.receipt).await;
                } else {
                    metrics::counter!("docent_sqs_messages_total", "outcome" => "spent")
                        .increment(1);
                    self.delete(&delivery.receipt).await;
                }
            }
            // Backing off: back when it is due. Refused while due: its tenant is at its fair
            // share while another waits (or it was just made runnable under us): back in a
            // second, after the waiting tenant's message had its turn. Hiding counts no attempt
            // in the ledger, and a message near the receive limit is replaced by a fresh one.
            TaskStatus::Pending => {
                metrics::counter!("docent_sqs_messages_total", "outcome" => "deferred")
                    .increment(1);
                self.hide(task, &delivery.receipt, secs_until(current.run_after))
                    .await;
            }
            // Leased by another delivery (a duplicate, or this one back a little early): back
            // when that lease ends.
            TaskStatus::Processing | TaskStatus::ProcessingChunks => {
                metrics::counter!("docent_sqs_messages_total", "outcome" => "deferred")
                    .increment(1);
                let until = current.lease_expires_at.unwrap_or(now);
                self.hide(task, &delivery.receipt, secs_until(until)).await;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl TaskQueue for SqsQueue {
    async fn ping(&self) -> Result<()> {
        self.ledger.ping().await?;
        queue_attributes(
            &self.client,
            &self.queues.queue_url,
            &[QueueAttributeName::ApproximateNumberOfMessages],
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, kind = %new.kind))]
    async fn enqueue(&self, tenant: TenantId, new: NewTask) -> Result<Task> {
        let task = self.ledger.enqueue(tenant, new).await?;
        self.publish(&task, "enqueue").await;
        Ok(task)
    }

    #[tracing::instrument(skip_all, fields(worker = %worker))]
    async fn lease(&self, worker: &str, visibility: Duration) -> Result<Option<Lease>> {
        let visibility = visibility_secs(visibility);
        let empty_before = self.empty_receives.load(Ordering::Acquire);
        let mut inbox = {
            let _waiting = Waiting::new(&self.waiting);
            self.inbox.lock().await
        };
        while let Some(delivery) = inbox.pop_front() {
            if delivery.received_at.elapsed() + BUFFER_MARGIN >= delivery.visible_for {
                continue; // SQS delivers it again shortly.
            }
            if let Some(lease) = self.claim(delivery, worker, visibility, true).await? {
                return Ok(Some(lease));
            }
        }
        // A receive that came back empty while this call waited answers it too.
        if self.empty_receives.load(Ordering::Acquire) != empty_before {
            return Ok(None);
        }
        for round in 0..RECEIVE_ROUNDS {
            let wait = if round == 0 { self.wait_secs } else { 0 };
            let wanted = u32::try_from(self.waiting.load(Ordering::Acquire))
                .unwrap_or(u32::MAX)
                .saturating_add(1)
                .min(self.receive_batch);
            let mut received = self.receive(wanted, visibility, wait).await?;
            if received.is_empty() {
                if round == 0 {
                    self.empty_receives.fetch_add(1, Ordering::AcqRel);
                    drop(inbox);
                    self.sweep_if_due().await;
                }
                return Ok(None);
            }
            while let Some(delivery) = received.pop_front() {
                match self.claim(delivery, worker, visibility, false).await {
                    Ok(Some(lease)) => {
                        inbox.extend(received);
                        return Ok(Some(lease));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        inbox.extend(received);
                        return Err(e);
                    }
                }
            }
        }
        Ok(None)
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn heartbeat(&self, lease: &Lease, visibility: Duration) -> Result<Heartbeat> {
        let secs = visibility_secs(visibility);
        let (inner, receipt) = unwrap(lease);
        // The message first, so it never outlives the lease. A lease that is gone holds a stale
        // receipt handle, which SQS refuses.
        if let Some(receipt) = receipt
            && let Err(e) = self.set_visibility(&receipt, secs).await
        {
            // The ledger's lease is what counts: a delivery arriving early is hidden again
            // until it ends.
            tracing::warn!(error = %e.chain(), "could not extend the SQS message's visibility");
        }
        self.ledger
            .heartbeat(&inner, Duration::from_secs(secs))
            .await
    }

    async fn progress(
        &self,
        lease: &Lease,
        status: TaskStatus,
        progress: Progress,
    ) -> Result<bool> {
        self.ledger
            .progress(&unwrap(lease).0, status, progress)
            .await
    }

    async fn should_yield(&self, lease: &Lease) -> Result<bool> {
        self.ledger.should_yield(&unwrap(lease).0).await
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id, status = %status))]
    async fn complete(
        &self,
        lease: &Lease,
        status: TaskStatus,
        progress: Progress,
    ) -> Result<bool> {
        let (inner, receipt) = unwrap(lease);
        let done = self.ledger.complete(&inner, status, progress).await?;
        if done && let Some(receipt) = receipt {
            self.delete(&receipt).await;
        }
        Ok(done)
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id, code = %error.code, retryable))]
    async fn fail(
        &self,
        lease: &Lease,
        error: ErrorInfo,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> Result<FailOutcome> {
        let (inner, receipt) = unwrap(lease);
        let delay = ceil_secs(
            self.backoff
                .delay(lease.task.attempts)
                .max(retry_after.unwrap_or_default()),
        );
        let outcome = self
            .ledger
            .fail_after(&inner, error, retryable, Duration::from_secs(delay))
            .await?;
        let task = TaskRef::of(&lease.task);
        if let Some(receipt) = receipt {
            match outcome {
                FailOutcome::Retrying { .. } => self.hide(task, &receipt, delay).await,
                FailOutcome::Failed => self.delete(&receipt).await,
                FailOutcome::DeadLettered => {
                    tracing::warn!(task = %task.task_id, "task dead-lettered; message moved to the dead-letter queue");
                    self.dead_letter(&task.body(), &receipt).await;
                }
                FailOutcome::LeaseLost => {}
            }
        }
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn cancelled(&self, lease: &Lease) -> Result<bool> {
        let (inner, receipt) = unwrap(lease);
        let done = self.ledger.cancelled(&inner).await?;
        if done && let Some(receipt) = receipt {
            self.delete(&receipt).await;
        }
        Ok(done)
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn release(&self, lease: &Lease) -> Result<bool> {
        let (inner, receipt) = unwrap(lease);
        if !self.ledger.release(&inner).await? {
            return Ok(false);
        }
        let Some(receipt) = receipt else {
            return Ok(true);
        };
        let task = TaskRef::of(&lease.task);
        // Pending again unless a cancel was waiting (then it is cancelled).
        let pending = self
            .ledger
            .get(task.tenant_id, task.task_id)
            .await
            .map(|t| t.status == TaskStatus::Pending)
            .unwrap_or(true);
        if !pending {
            self.delete(&receipt).await;
        } else if let Err(e) = self.replace(task, &receipt, 0).await {
            tracing::warn!(task = %task.task_id, error = %e.chain(), "could not send a released task again; making its message visible");
            if let Err(e) = self.set_visibility(&receipt, 0).await {
                tracing::warn!(task = %task.task_id, error = %e.chain(), "could not make a released task's message visible; it comes back when its visibility ends");
            }
        }
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, task = %id))]
    async fn cancel(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        // A pending task's message is deleted when it is next received.
        self.ledger.cancel(tenant, id).await
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, task = %id))]
    async fn retry(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let task = self.ledger.retry(tenant, id).await?;
        self.publish(&task, "retry").await;
        Ok(task)
    }

    async fn get(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        self.ledger.get(tenant, id).await
    }

    async fn list(
        &self,
        tenant: TenantId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>> {
        self.ledger.list(tenant, filter, page).await
    }

    async fn depth(&self) -> Result<QueueDepth> {
        self.ledger.depth().await
    }

    async fn tenant_depth(
        &self,
        tenant: TenantId,
        collections: Option<&[CollectionId]>,
    ) -> Result<QueueDepth> {
        self.ledger.tenant_depth(tenant, collections).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibilities_round_up_to_whole_seconds_within_sqs_limits() {
        assert_eq!(visibility_secs(Duration::ZERO), 1);
        assert_eq!(visibility_secs(Duration::from_millis(300)), 1);
        assert_eq!(visibility_secs(Duration::from_millis(1000)), 1);
        assert_eq!(visibility_secs(Duration::from_millis(1001)), 2);
        assert_eq!(
            visibility_secs(Duration::from_secs(13 * 3600)),
            MAX_VISIBILITY_SECS
        );
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }

    #[test]
    fn lease_tokens_carry_the_receipt_and_give_back_the_ledgers() {
        let task = Task {
            id: TaskId::new(),
            tenant_id: TenantId::new(),
            kind: docent_domain::TaskKind::IngestDocument,
            status: TaskStatus::Processing,
            document_id: None,
            collection_id: None,
            attempts: 1,
            max_attempts: 3,
            lease_owner: Some("w".into()),
            lease_expires_at: None,
            run_after: Utc::now(),
            progress: Progress::default(),
            error: None,
            dead_lettered: false,
            cancel_requested: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            started_at: None,
            finished_at: None,
            payload: serde_json::Value::Null,
        };
        let ledger = Lease {
            task,
            token: "0b9c-token".into(),
            expires_at: Utc::now(),
        };
        let receipt = Receipt {
            handle: "AQEB+x/y|z==".into(),
            receive_count: 2,
        };
        let wrapped = wrap(ledger.clone(), &receipt);
        assert_ne!(wrapped.token, ledger.token);
        let (inner, back) = unwrap(&wrapped);
        assert_eq!(inner, ledger);
        assert_eq!(back, Some(receipt));
        // A lease that never went through SQS is the ledger's as is.
        assert_eq!(unwrap(&ledger), (ledger.clone(), None));
    }

    #[test]
    fn bodies_name_the_task_and_tenant() {
        let r = TaskRef {
            task_id: TaskId::new(),
            tenant_id: TenantId::new(),
        };
        assert_eq!(serde_json::from_str::<TaskRef>(&r.body()).unwrap(), r);
        assert!(serde_json::from_str::<TaskRef>("{\"task_id\": \"nope\"}").is_err());
    }
}
