//! AWS Lambda hosts of docent: `docent lambda api` and `docent lambda worker`.
//!
//! - **api**: the same axum router `docent serve` runs ([`crate::app::http_router`]), under the
//!   Lambda runtime through `lambda_http` — API Gateway REST (v1) and HTTP (v2) APIs, function
//!   URLs and ALB target groups. Each request carries the client's address from the event
//!   (`requestContext…sourceIp`) as axum's `ConnectInfo`, so per-client rate limits and sign-in
//!   lockout key on the caller, as behind a socket. With `--streaming`
//!   (`DOCENT_LAMBDA_STREAMING=true`: a function URL with invoke mode `RESPONSE_STREAM`)
//!   responses stream as they are written — chat answers' server-sent events included; buffered,
//!   a response is sent whole when it ends. No workers run in the API function.
//! - **worker**: an SQS event source. Each record is a delivery of the SQS task queue
//!   (`docent_queue::DeliveryQueue` over `docent_aws::sqs::SqsDelivery`, the same queue the
//!   API enqueues into): it is leased through the ledger
//!   ([`DeliveryQueue::lease_delivery`](docent_queue::DeliveryQueue::lease_delivery)) with
//!   the rules of `docent worker` — a duplicate or a delivery of a finished task is settled
//!   without running anything twice, a body that names no task goes to the dead-letter queue —
//!   and run by the worker's own per-task code
//!   ([`run_leased_within`](docent_core::worker::run_leased_within): heartbeats, cancel,
//!   progress, outcome through the lease), under time limits that end `--deadline-margin`
//!   before the invocation's deadline (a hard limit there fails the attempt as retryable, a
//!   record file pauses at a safe point before it), so the lease is given back and the message
//!   settled before Lambda stops the function. The queue itself ends (deletes, dead-letters,
//!   replaces) the messages it is done with; every record whose message lives on — deferred
//!   for a retry's backoff or until another lease ends, or not reached before the deadline, or
//!   met with an error — is reported in `batchItemFailures`, so Lambda leaves it in the queue
//!   (the event source mapping needs `ReportBatchItemFailures`). An EventBridge scheduled event
//!   sent to the worker runs the queue's sweep (lapsed leases settled, lost deliveries sent
//!   again), which `docent worker` runs whenever its queue looks empty.
//!
//! Initialisation (configuration, backends, the embedding model) happens before the runtime
//! asks for its first event; a failure there is reported to the runtime API's `/init/error`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use axum::extract::ConnectInfo;
use docent_config::{AuthMode, Config, QueueBackend};
use docent_core::Services;
use docent_core::worker::{RunLimits, run_leased_within};
use docent_domain::TaskStatus;
use docent_queue::{Claim, DeliveryQueue};
use futures::StreamExt;
use lambda_http::request::RequestContext;
use lambda_http::{RequestExt, Service};
use lambda_runtime::{LambdaEvent, service_fn};
use tokio_util::sync::CancellationToken;

/// The environment variable the Lambda runtime API's address is read from.
pub const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";

/// Opens what the API function serves: the services (the embedding model loaded) and the
/// router over them. No workers run beside it.
pub async fn open_api(config: Config) -> anyhow::Result<(Services, axum::Router)> {
    if config.auth.mode == AuthMode::None {
        tracing::warn!(
            "auth.mode = \"none\": every request through this function acts as the owner of the \
             default workspace, with no authentication"
        );
    }
    let (services, db) = crate::app::open_services(config).await?;
    let auth = crate::app::open_auth(&services.config, &db)?;
    if let Some(auth) = &auth
        && auth
            .ensure_setup_token()
            .await
            .map_err(|e| anyhow::anyhow!(e.chain()))?
            .is_some()
    {
        // The token is a credential: it stays out of the function's logs.
        tracing::warn!(
            "no user exists yet: create the first one with `docent users create` against the \
             same database, or run `docent serve` once and use its printed setup link"
        );
    }
    let router = crate::app::http_router(&services, auth);
    Ok((services, router))
}

/// The client's address of a Lambda HTTP event: `requestContext.identity.sourceIp` (REST API)
/// or `requestContext.http.sourceIp` (HTTP API, function URL). ALB events carry none.
fn source_ip(request: &lambda_http::Request) -> Option<IpAddr> {
    let ip = match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => c.identity.source_ip.as_deref(),
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.as_deref(),
        // ALB events carry none (only `X-Forwarded-For`, which a client can write).
        _ => None,
    }?;
    ip.parse().ok()
}

/// The stage of an API Gateway event that is not `$default`: `lambda_http` puts it in front of
/// the path (`/prod/api/v1/…`), where docent's routes do not expect it.
fn strip_stage(request: &mut lambda_http::Request) {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => c.stage.clone(),
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return;
    };
    let uri = request.uri();
    let Some(rest) = uri.path().strip_prefix(&format!("/{stage}")) else {
        return;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    let Ok(pq) = path_and_query.parse() else {
        return;
    };
    parts.path_and_query = Some(pq);
    if let Ok(stripped) = axum::http::Uri::from_parts(parts) {
        *request.uri_mut() = stripped;
    }
}

/// The router as the Lambda adapters call it: a Lambda request (its body as the event carried
/// it, base64 decoded; an API Gateway stage taken off its path) with the client's address as
/// `ConnectInfo`.
pub fn api_service(
    router: axum::Router,
) -> impl Service<
    lambda_http::Request,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    lambda_http::tower::ServiceBuilder::new()
        .map_request(|mut request: lambda_http::Request| {
            strip_stage(&mut request);
            if let Some(ip) = source_ip(&request) {
                request
                    .extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(ip, 0)));
            }
            request
        })
        .service(router)
}

/// One buffered invocation of the API function, as the runtime makes it: the event's JSON in,
/// the response's JSON out (REST/HTTP API, function URL or ALB shape, as the event's).
pub async fn invoke_api(
    router: &axum::Router,
    event: serde_json::Value,
    context: lambda_runtime::Context,
) -> anyhow::Result<serde_json::Value> {
    let request: lambda_http::request::LambdaRequest =
        serde_json::from_value(event).context("not an HTTP event")?;
    let mut adapter = lambda_http::Adapter::from(api_service(router.clone()));
    let response = adapter
        .call(LambdaEvent::new(request, context))
        .await
        .unwrap_or_else(|never| match never {});
    serde_json::to_value(response).context("serializing the response")
}

/// One streamed invocation of the API function: the response's status, headers and cookies
/// (the prelude the runtime sends first) and its body as a stream of chunks.
pub async fn invoke_api_streaming(
    router: &axum::Router,
    event: serde_json::Value,
    context: lambda_runtime::Context,
) -> anyhow::Result<
    lambda_runtime::StreamResponse<impl futures::Stream<Item = Result<bytes::Bytes, axum::Error>>>,
> {
    let request: lambda_http::request::LambdaRequest =
        serde_json::from_value(event).context("not an HTTP event")?;
    let mut adapter = lambda_http::StreamAdapter::from(api_service(router.clone()));
    Ok(adapter
        .call(LambdaEvent::new(request, context))
        .await
        .unwrap_or_else(|never| match never {}))
}

/// The variables the Lambda runtime sets for a function (the runtime client panics without
/// them).
const LAMBDA_ENV: [&str; 4] = [
    RUNTIME_API_ENV,
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Refuses to start outside the Lambda runtime, naming what is missing.
fn check_lambda_env() -> anyhow::Result<()> {
    let missing: Vec<&str> = LAMBDA_ENV
        .into_iter()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "docent lambda runs under the AWS Lambda runtime, which sets {}; missing here: {} \
             (outside Lambda, run `docent serve` or `docent worker`)",
            LAMBDA_ENV.join(", "),
            missing.join(", ")
        );
    }
    Ok(())
}

/// `docent lambda api`: opens the router, then serves the runtime API's events until the
/// process is stopped.
pub async fn run_api(config: Config, streaming: bool) -> anyhow::Result<()> {
    check_lambda_env()?;
    let router = match open_api(config).await {
        Ok((_, r)) => r,
        Err(e) => return Err(report_init_error(e).await),
    };
    tracing::info!(streaming, "docent Lambda API function ready");
    let service = api_service(router);
    let served = if streaming {
        lambda_http::run_with_streaming_response(service).await
    } else {
        lambda_http::run(service).await
    };
    served.map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}

/// The SQS worker of a Lambda function (see the module docs).
pub struct LambdaWorker {
    services: Services,
    deliveries: Arc<DeliveryQueue>,
    margin: Duration,
    name: String,
}

/// What one record came to.
enum Outcome {
    /// Its message is ended (deleted, dead-lettered or replaced): nothing to report.
    Settled,
    /// Its message lives on: reported in `batchItemFailures` so Lambda leaves it in the queue.
    Kept,
}

impl LambdaWorker {
    /// A worker over services whose queue is `deliveries` (the SQS queue of `queue.backend`);
    /// tasks end `margin` before each invocation's deadline.
    pub fn new(services: Services, deliveries: Arc<DeliveryQueue>, margin: Duration) -> Self {
        let function = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME")
            .or_else(|_| std::env::var("AWS_LAMBDA_FUNCTION_NAME"))
            .unwrap_or_else(|_| "lambda".into());
        Self {
            services,
            deliveries,
            margin,
            name: format!("{function}-{}", std::process::id()),
        }
    }

    /// Opens the services of `config`, whose `queue.backend` must be SQS.
    pub async fn open(config: Config, margin: Duration) -> anyhow::Result<Self> {
        if !matches!(config.queue.backend, QueueBackend::Sqs(_)) {
            anyhow::bail!(
                "docent lambda worker takes its tasks from SQS: set [queue.backend] kind = \"sqs\" \
                 (or SQS_QUEUE_URL) to the queue its event source mapping reads"
            );
        }
        let (services, _db, deliveries) = crate::app::open_services_with_deliveries(config).await?;
        let deliveries = deliveries.context("the SQS task queue was not opened")?;
        Ok(Self::new(services, deliveries, margin))
    }

    /// The services the tasks run with.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Handles one invocation: an SQS batch (records run at once, up to
    /// `worker.concurrency`), or an EventBridge scheduled event (the queue's sweep).
    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let LambdaEvent { payload, context } = event;
        if payload.get("detail-type").and_then(|v| v.as_str()) == Some("Scheduled Event") {
            let sent = self
                .deliveries
                .sweep()
                .await
                .map_err(|e| anyhow::anyhow!(e.chain()))?;
            return Ok(serde_json::json!({ "republished": sent }));
        }
        let batch: SqsEvent = serde_json::from_value(payload)
            .context("the worker takes SQS events and EventBridge scheduled events")?;
        let response = self.handle_sqs(batch, context.deadline()).await;
        serde_json::to_value(response).context("serializing the batch response")
    }

    /// Runs an SQS batch's records; those whose messages live on are the batch's failures.
    pub async fn handle_sqs(&self, batch: SqsEvent, deadline: SystemTime) -> SqsBatchResponse {
        // The deadline on this process's monotonic clock.
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let deadline = Instant::now() + left;
        let concurrency = self.services.config.worker.concurrency.max(1);
        let outcomes: Vec<(Option<String>, Outcome)> = futures::stream::iter(batch.records)
            .map(|record| async move {
                let outcome = self.record(&record, deadline).await;
                (record.message_id, outcome)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        for (id, outcome) in outcomes {
            if let (Outcome::Kept, Some(id)) = (outcome, id) {
                response.add_failure(id);
            }
        }
        response
    }

    async fn record(&self, record: &SqsMessage, deadline: Instant) -> Outcome {
        let config = &self.services.config;
        let left = deadline.saturating_duration_since(Instant::now());
        if left <= self.margin * 2 {
            tracing::warn!(message = ?record.message_id, left_ms = left.as_millis() as u64, "too little time left in this invocation; the record is left for redelivery");
            return Outcome::Kept;
        }
        let Some(handle) = record.receipt_handle.as_deref() else {
            tracing::warn!(message = ?record.message_id, "an SQS record without a receipt handle");
            return Outcome::Kept;
        };
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let visibility = config.queue.visibility_timeout;
        let delivery = docent_aws::sqs::received(
            handle,
            receive_count,
            record.body.as_deref().unwrap_or_default(),
            visibility,
        );
        let lease = match self
            .deliveries
            .lease_delivery(delivery, &self.name, visibility)
            .await
        {
            Ok(Claim::Leased(lease)) => *lease,
            Ok(Claim::Ended) => return Outcome::Settled,
            Ok(Claim::Kept) => return Outcome::Kept,
            Err(e) => {
                tracing::warn!(message = ?record.message_id, error = %e.chain(), "could not lease an SQS record's task; it comes back when its visibility ends");
                return Outcome::Kept;
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let limits = RunLimits::of(&config.worker).within(left, self.margin);
        // Nothing interrupts a run: the limits end it before the deadline.
        let never = CancellationToken::new();
        match run_leased_within(&self.services, lease, &never, limits).await {
            // The queue deleted the message, or moved it to the dead-letter queue.
            Some(
                TaskStatus::Completed
                | TaskStatus::PartiallyCompleted
                | TaskStatus::Failed
                | TaskStatus::Cancelled,
            ) => Outcome::Settled,
            // Deferred for a retry's backoff (or replaced by a fresh message when released),
            // or the outcome could not be recorded: the message must stay.
            Some(TaskStatus::Pending | TaskStatus::Processing | TaskStatus::ProcessingChunks)
            | None => Outcome::Kept,
        }
    }
}

/// `docent lambda worker`: opens the services, then runs the runtime API's events until the
/// process is stopped.
pub async fn run_worker(config: Config, margin: Duration) -> anyhow::Result<()> {
    check_lambda_env()?;
    let worker = match LambdaWorker::open(config, margin).await {
        Ok(w) => Arc::new(w),
        Err(e) => return Err(report_init_error(e).await),
    };
    tracing::info!("docent Lambda worker function ready");
    let handler = service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let worker = worker.clone();
        async move {
            let handled = worker.handle(event).await;
            // The runtime freezes the process between invocations: export this batch's spans
            // now (nothing to do when trace export is off).
            crate::telemetry::flush().await;
            handled.map_err(|e| lambda_runtime::Error::from(format!("{e:#}")))
        }
    });
    lambda_runtime::run(handler)
        .await
        .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}

/// Reports a failed initialisation to the runtime API (`POST …/runtime/init/error`, so Lambda
/// shows the cause instead of a bare exit), then returns the error.
async fn report_init_error(error: anyhow::Error) -> anyhow::Error {
    let Ok(api) = std::env::var(RUNTIME_API_ENV) else {
        return error;
    };
    let body = serde_json::json!({
        "errorMessage": format!("{error:#}"),
        "errorType": "Runtime.InitError",
        "stackTrace": [],
    });
    let sent = reqwest::Client::new()
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
        .json(&body)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not report the failed initialisation to the Lambda runtime API");
    }
    error
}
