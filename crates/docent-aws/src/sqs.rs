//! [`SqsDelivery`]: Amazon SQS as the transport of the ledger-backed task queue
//! (`docent_queue::DeliveryQueue`): SQS carries deliveries, the database keeps task state.
//!
//! Each delivery is one message whose body names a task (the queue writes it). The
//! [`Delivery`] verbs map onto SQS calls:
//!
//! - **receive** = `ReceiveMessage` (long poll of `wait_time` on the first round, visibility =
//!   the lease, whole seconds); the receipt is the message's receive count and receipt handle
//!   (`count|handle`). The message's visibility timeout *is* the lease: both end at the same
//!   instant, so a worker that dies (kill -9) has its task delivered again when it lapses.
//! - **claim** = nothing for a message just received; a message that waited (in the buffer, or
//!   behind earlier messages of its batch for over a second) gets a whole visibility again
//!   (`ChangeMessageVisibility`), so the lease is never too short to reach its first heartbeat.
//! - **extend** (heartbeat) = `ChangeMessageVisibility`. A lost lease holds a stale receipt
//!   handle, which SQS refuses.
//! - **ack** = `DeleteMessage`. **requeue** = a fresh message, then the old one deleted (so a
//!   released attempt counts nowhere, SQS's receive count included); if the send fails the old
//!   message is made visible at once instead.
//! - **defer** = `ChangeMessageVisibility` for the delay — or, when SQS would redrive the
//!   message at its next receive (its receive count at the redrive policy's limit) or refuses
//!   the change, a fresh message delayed as long (at most 15 minutes: a message back early is
//!   deferred again) and the old one deleted.
//! - **dead_letter** = a copy in the dead-letter queue (with a `reason` message attribute),
//!   then deleted here.
//!
//! The queue's redrive policy (`max_attempts + 1` receives) is only a backstop: normally the
//! ledger gets there first (the receive after a task's last attempt lapsed dead-letters it and
//! moves the message). SQS's own redrive catches deliveries nobody handled (a process killed
//! between the receive and the database); the queue's sweep sends a task whose message was
//! lost that way again.
//!
//! SQS counts in whole seconds ([`Delivery::tick`] is 1 s) and caps a visibility at 12 hours
//! and a send's delay at 15 minutes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use docent_domain::ports::{Delivery, Received};
use docent_domain::{Error, Result};
use serde::Deserialize;

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
/// The message attribute of a dead letter saying why it is there.
pub const REASON_ATTRIBUTE: &str = "reason";

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
    /// Create missing queues and set the redrive policy in [`SqsDelivery::connect`].
    pub create_queues: bool,
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
    /// batches of 10, and calls bounded by 3 s to connect, 5 s an attempt and 15 s in all,
    /// three attempts.
    pub fn new(queue_name: impl Into<String>, dlq_name: impl Into<String>) -> Self {
        Self {
            queue_name: queue_name.into(),
            dlq_name: dlq_name.into(),
            endpoint: None,
            region: None,
            wait_time: Duration::from_secs(MAX_WAIT_SECS),
            create_queues: false,
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
            ..Self::new(c.queue_name.clone(), c.dlq_name.clone())
        }
    }
}

impl From<&SqsQueueSettings> for SqsQueueSettings {
    fn from(s: &SqsQueueSettings) -> Self {
        s.clone()
    }
}

/// The two queues as [`SqsDelivery::connect`] resolved them.
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

/// The SQS transport of the task queue (see the module docs).
pub struct SqsDelivery {
    client: Client,
    queues: SqsQueues,
    wait_secs: u64,
    receive_batch: u32,
    operation_timeout: Duration,
    attempt_timeout: Duration,
}

impl std::fmt::Debug for SqsDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsDelivery")
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

/// A message this process received and still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Receipt {
    handle: String,
    /// `ApproximateReceiveCount` when it was received (this receive included).
    receive_count: u32,
}

impl Receipt {
    /// As the queue carries it: `count|handle`.
    fn encode(&self) -> String {
        format!("{}|{}", self.receive_count, self.handle)
    }

    fn decode(receipt: &str) -> Self {
        match receipt.split_once('|') {
            Some((count, handle)) => Self {
                handle: handle.to_owned(),
                receive_count: count.parse().unwrap_or(u32::MAX),
            },
            None => Self {
                handle: receipt.to_owned(),
                receive_count: u32::MAX,
            },
        }
    }
}

/// A delivery of the queue that reached this process another way than
/// [`Delivery::receive`]: a record of an AWS Lambda SQS event, with its receipt handle and
/// `ApproximateReceiveCount` (so [`Delivery::defer`] knows when SQS would redrive it), received
/// now with the visibility `visible_for` (the queue's visibility timeout, which Lambda's
/// poller used). `DeliveryQueue::lease_delivery` leases its task.
pub fn received(handle: &str, receive_count: u32, body: &str, visible_for: Duration) -> Received {
    Received {
        receipt: Receipt {
            handle: handle.to_owned(),
            receive_count,
        }
        .encode(),
        body: body.to_owned(),
        received_at: Instant::now(),
        visible_for,
    }
}

/// `d` in whole seconds, rounded up, within SQS's visibility limit.
fn secs(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    to_i32(secs.min(MAX_VISIBILITY_SECS))
}

fn to_i32(secs: u64) -> i32 {
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn counted(outcome: &'static str) {
    metrics::counter!("docent_queue_deliveries_total", "broker" => "sqs", "outcome" => outcome)
        .increment(1);
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

impl SqsDelivery {
    /// Connects to the queues of `settings` — `&docent_config::SqsQueueConfig` works too —
    /// creating them first when `settings.create_queues` is set (see [`resolve_queues`]).
    /// `max_attempts` is `queue.max_attempts` (the redrive policy allows one receive more).
    pub async fn connect(settings: impl Into<SqsQueueSettings>, max_attempts: u32) -> Result<Self> {
        let settings = settings.into();
        let client = client(&settings).await;
        let queues = resolve_queues(&client, &settings, max_attempts).await?;
        tracing::info!(queue = %queues.queue_url, dlq = %queues.dlq_url, "SQS task queue ready");
        Ok(Self::with_client(client, queues, &settings))
    }

    /// A transport over resolved queues and an existing client; makes no call.
    pub fn with_client(client: Client, queues: SqsQueues, settings: &SqsQueueSettings) -> Self {
        Self {
            client,
            queues,
            wait_secs: settings.wait_time.as_secs().min(MAX_WAIT_SECS),
            receive_batch: settings.receive_batch.clamp(1, MAX_BATCH),
            operation_timeout: settings.operation_timeout,
            attempt_timeout: settings.attempt_timeout,
        }
    }

    /// The queues in use.
    pub fn queues(&self) -> &SqsQueues {
        &self.queues
    }

    /// Sends `body` to the queue, delivered after `delay_secs`.
    async fn send_one(&self, body: &str, delay_secs: i32) -> Result<()> {
        self.client
            .send_message()
            .queue_url(&self.queues.queue_url)
            .message_body(body)
            .delay_seconds(delay_secs.clamp(0, to_i32(MAX_DELAY_SECS)))
            .send()
            .await
            .map_err(|e| sqs_err("SendMessage", e))?;
        Ok(())
    }

    async fn delete(&self, handle: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.queues.queue_url)
            .receipt_handle(handle)
            .send()
            .await
            .map_err(|e| sqs_err("DeleteMessage", e))?;
        Ok(())
    }

    async fn set_visibility(&self, handle: &str, secs: i32) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queues.queue_url)
            .receipt_handle(handle)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|e| sqs_err("ChangeMessageVisibility", e))?;
        Ok(())
    }

    /// Replaces a message by a fresh one (receive count 0) delivered after `delay_secs`. A
    /// failed delete leaves a duplicate, which is harmless.
    async fn replace(&self, handle: &str, body: &str, delay_secs: i32) -> Result<()> {
        self.send_one(body, delay_secs).await?;
        if let Err(e) = self.delete(handle).await {
            tracing::warn!(error = %e.chain(), "could not delete a replaced SQS message");
        }
        counted("replaced");
        Ok(())
    }
}

#[async_trait]
impl Delivery for SqsDelivery {
    fn name(&self) -> &'static str {
        "sqs"
    }

    fn tick(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn batch(&self) -> u32 {
        self.receive_batch
    }

    async fn ping(&self) -> Result<()> {
        queue_attributes(
            &self.client,
            &self.queues.queue_url,
            &[QueueAttributeName::ApproximateNumberOfMessages],
        )
        .await?;
        Ok(())
    }

    async fn send(&self, bodies: &[String]) -> Result<usize> {
        let mut sent = 0;
        for batch in bodies.chunks(MAX_BATCH as usize) {
            let mut request = self
                .client
                .send_message_batch()
                .queue_url(&self.queues.queue_url);
            for (i, body) in batch.iter().enumerate() {
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
                tracing::warn!(code = %failed.code(), message = ?failed.message(), "SQS refused a message");
            }
            sent += out.successful().len();
        }
        Ok(sent)
    }

    async fn receive(&self, max: u32, visibility: Duration, wait: bool) -> Result<Vec<Received>> {
        let wait = if wait { self.wait_secs } else { 0 };
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queues.queue_url)
            .max_number_of_messages(to_i32(u64::from(max.min(MAX_BATCH))))
            .visibility_timeout(secs(visibility))
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
                let receipt = Receipt {
                    handle: m.receipt_handle()?.to_owned(),
                    receive_count: m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1),
                };
                Some(Received {
                    receipt: receipt.encode(),
                    body: m.body().unwrap_or_default().to_owned(),
                    received_at,
                    visible_for: visibility,
                })
            })
            .collect())
    }

    async fn claim(
        &self,
        delivery: &Received,
        _worker: &str,
        visibility: Duration,
        buffered: bool,
    ) -> Result<Option<Instant>> {
        // A fresh message's visibility started when the receive returned; one that waited gets
        // a whole visibility again.
        if !buffered && delivery.received_at.elapsed() <= Duration::from_secs(1) {
            return Ok(Some(delivery.received_at));
        }
        let receipt = Receipt::decode(&delivery.receipt);
        match self.set_visibility(&receipt.handle, secs(visibility)).await {
            Ok(()) => Ok(Some(Instant::now())),
            Err(e) => {
                tracing::warn!(error = %e.chain(), "could not extend a waiting SQS message");
                Ok(Some(delivery.received_at))
            }
        }
    }

    async fn extend(&self, receipt: &str, _worker: &str, visibility: Duration) -> Result<()> {
        let receipt = Receipt::decode(receipt);
        self.set_visibility(&receipt.handle, secs(visibility)).await
    }

    async fn ack(&self, receipt: &str) -> Result<()> {
        self.delete(&Receipt::decode(receipt).handle).await
    }

    async fn defer(&self, receipt: &str, body: &str, delay: Duration) -> Result<()> {
        let receipt = Receipt::decode(receipt);
        let delay = secs(delay);
        if receipt.receive_count < self.queues.max_receive_count {
            match self.set_visibility(&receipt.handle, delay).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(error = %e.chain(), "changing the visibility failed; replacing the message")
                }
            }
        }
        // SQS would redrive it at its next receive, or refused the change.
        self.replace(&receipt.handle, body, delay).await
    }

    async fn requeue(&self, receipt: &str, body: &str) -> Result<()> {
        let receipt = Receipt::decode(receipt);
        if let Err(e) = self.replace(&receipt.handle, body, 0).await {
            tracing::warn!(error = %e.chain(), "could not send a released task again; making its message visible");
            return self.set_visibility(&receipt.handle, 0).await;
        }
        Ok(())
    }

    async fn dead_letter(&self, receipt: &str, body: &str, reason: &str) -> Result<()> {
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(Error::internal)?;
        self.client
            .send_message()
            .queue_url(&self.queues.dlq_url)
            .message_body(body)
            .message_attributes(REASON_ATTRIBUTE, reason)
            .send()
            .await
            .map_err(|e| sqs_err("SendMessage", e))?;
        self.delete(&Receipt::decode(receipt).handle).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibilities_round_up_to_whole_seconds_within_sqs_limits() {
        assert_eq!(secs(Duration::ZERO), 0);
        assert_eq!(secs(Duration::from_millis(300)), 1);
        assert_eq!(secs(Duration::from_millis(1000)), 1);
        assert_eq!(secs(Duration::from_millis(1001)), 2);
        assert_eq!(
            secs(Duration::from_secs(13 * 3600)),
            to_i32(MAX_VISIBILITY_SECS)
        );
    }

    #[test]
    fn receipts_carry_the_receive_count_and_handle() {
        let receipt = Receipt {
            handle: "AQEB+x/y|z==".into(),
            receive_count: 2,
        };
        assert_eq!(Receipt::decode(&receipt.encode()), receipt);
        let lambda = received("AQEB+x/y|z==", 2, "{}", Duration::from_secs(30));
        assert_eq!(Receipt::decode(&lambda.receipt), receipt);
    }
}
