//! AWS backends, behind the binary's `aws` cargo feature (the AWS SDK is the heaviest part of
//! the build):
//!
//! - [`sqs`]: SQS as a [`Delivery`](docent_domain::ports::Delivery), the transport of
//!   `docent_queue::DeliveryQueue`: SQS delivers task ids, the database keeps task state, so
//!   status queries never touch SQS.
//! - [`dynamo`]: the DynamoDB [`Cache`](docent_domain::ports::Cache) (TTL attribute).
//! - [`secrets`]: `secretsmanager:NAME#key` references in config, resolved at start and on
//!   SIGHUP.
//!
//! Every client is built by [`sdk_config`]: the standard AWS environment (region, credentials
//! chain), with an endpoint override for S3-compatible or local servers (moto in tests).

pub mod dynamo;
pub mod secrets;
pub mod sqs;

/// The shared SDK configuration: the default credentials chain and region from the
/// environment, `endpoint` (e.g. `http://127.0.0.1:5000` for moto) and `region` when given.
pub async fn sdk_config(endpoint: Option<&str>, region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    loader.load().await
}

/// The timeouts and retries an SDK client's calls run under, so an outage fails a call within
/// `operation` instead of after the SDK's defaults: `attempts` tries (at least one), backing
/// off from 50 ms up to `max_backoff`.
pub(crate) fn call_limits(
    connect: std::time::Duration,
    attempt: std::time::Duration,
    operation: std::time::Duration,
    attempts: u32,
    max_backoff: std::time::Duration,
) -> (
    aws_config::timeout::TimeoutConfig,
    aws_config::retry::RetryConfig,
) {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(connect)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build();
    let retries = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(attempts.max(1))
        .with_initial_backoff(std::time::Duration::from_millis(50))
        .with_max_backoff(max_backoff);
    (timeouts, retries)
}
