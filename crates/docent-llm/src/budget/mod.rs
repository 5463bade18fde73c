//! Budgeted model access: [`Budgeted`] wraps any [`ChatModel`] or [`Embedder`] and runs every
//! call through the provider's [`Budget`]:
//!
//! 1. **Circuit breaker** ([`CircuitBreaker`]): while the provider is down, fail fast with
//!    `model_unavailable` and the remaining cool-down as `retry_after`.
//! 2. **Rate limit**: take one request (and the estimated tokens) from the provider's token
//!    buckets in the [`BudgetStore`], sleeping until they allow it; waiting longer than
//!    `max_queue_wait` fails with `model_rate_limited`.
//! 3. **Call** the inner model, timing it.
//! 4. **Retry** `model_rate_limited` and retryable `model_unavailable` (and other `Unavailable`
//!    / `RateLimited` class errors) up to `max_attempts` tries in all. A `Retry-After` is
//!    honoured exactly and pauses the whole provider key in the store (every worker waits); a
//!    `Retry-After` over `max_retry_after` is not waited for: the call fails at once with it.
//!    Without one, the delay is exponential backoff with full jitter: uniform in
//!    `[0, min(backoff_max, backoff_base × 2^(attempt-1))]`. Other errors return at once.
//!
//! **Per tenant.** With `tenant_share` below 1, a call made for a tenant (inside
//! [`for_tenant`](docent_domain::llm::caller::for_tenant): the worker runs every task so, the
//! services every request) first takes from that tenant's own buckets — the share of the
//! provider's rates, at least one request deep, under the key `<provider>/tenant/<id>` in the
//! same store — then from the provider's. A tenant that spent its share waits on its own
//! buckets without draining the provider's, so other tenants keep the rest. Calls outside any
//! tenant (the CLI) take from the provider's buckets only.
//!
//! Budgets are keyed by provider name: every `Budget` made with [`Budget::new`] for the same
//! name in a process shares the global [`InProcessBudgetStore`] buckets and one breaker, so
//! two wrappers (chat and ingest workers, say) with the same name share one budget. The first
//! `Budget` made for a name fixes its breaker settings; bucket rates come from each caller's
//! config, so wrappers sharing a name should share the config too.
//!
//! Metrics (`metrics` facade), labelled by `provider` and `op` (`chat`, `chat_stream`, `embed`):
//! `docent_llm_requests_total` (with `outcome`: `ok`, `rate_limited`, `unavailable`,
//! `error`), `docent_llm_rate_limited_total`, `docent_llm_retries_total`,
//! `docent_llm_tokens_total`, `docent_llm_request_duration_seconds` (histogram),
//! `docent_llm_budget_wait_seconds` (histogram), `docent_llm_circuit_opened_total` and
//! `docent_llm_circuit_rejected_total`.

mod breaker;
mod store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use docent_domain::TenantId;
use docent_domain::budget::{BudgetStore, Grant, Limits, Rate};
use docent_domain::llm::caller::calling_tenant;
use docent_domain::llm::{ChatModel, ChatRequest, ChatResponse, ChatStream};
use docent_domain::ports::Embedder;
use docent_domain::{Code, Error, ErrorType, Result};
use futures::StreamExt;
use rand::Rng;

pub use breaker::{CircuitBreaker, Health, Permit};
pub use store::InProcessBudgetStore;

use crate::config::BudgetConfig;
use crate::embed::estimate_tokens;

/// Completion tokens charged up front for a chat request without `max_tokens`.
const ASSUMED_COMPLETION_TOKENS: u64 = 256;

static BREAKERS: LazyLock<Mutex<HashMap<String, Arc<CircuitBreaker>>>> =
    LazyLock::new(Default::default);

/// One provider's budget: its name, settings, bucket store and circuit breaker.
pub struct Budget {
    name: String,
    config: BudgetConfig,
    limits: Limits,
    /// Each tenant's buckets, when `tenant_share` is below 1.
    tenant_limits: Option<Limits>,
    store: Arc<dyn BudgetStore>,
    breaker: Arc<CircuitBreaker>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How a failed call is treated.
enum Class {
    RateLimited,
    Transient,
    Final,
}

fn classify(e: &Error) -> Class {
    match e.code.error_type() {
        ErrorType::RateLimited => Class::RateLimited,
        ErrorType::Unavailable if e.is_retryable() => Class::Transient,
        ErrorType::Unavailable
        | ErrorType::InvalidRequest
        | ErrorType::Auth
        | ErrorType::NotFound
        | ErrorType::Internal => Class::Final,
    }
}

impl Budget {
    /// The process-shared budget of provider `name`: the global bucket store and the
    /// provider's breaker (made on first use).
    pub fn new(name: impl Into<String>, config: BudgetConfig) -> Arc<Budget> {
        Self::with_store(name, config, InProcessBudgetStore::global())
    }

    /// Like [`Budget::new`] with another bucket store (one shared across processes, say).
    pub fn with_store(
        name: impl Into<String>,
        config: BudgetConfig,
        store: Arc<dyn BudgetStore>,
    ) -> Arc<Budget> {
        let name = name.into();
        let breaker = BREAKERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(CircuitBreaker::new(
                    config.breaker_failures,
                    config.breaker_cool_down,
                ))
            })
            .clone();
        let limits = Limits {
            requests: Rate {
                per_second: config.requests_per_second,
                burst: f64::from(config.request_burst.max(1)),
            },
            tokens: config.tokens_per_minute.map(|t| Rate {
                per_second: t as f64 / 60.0,
                burst: t as f64,
            }),
        };
        let share = config.tenant_share;
        let tenant_limits = (share.is_finite() && share > 0.0 && share < 1.0).then(|| Limits {
            requests: Rate {
                per_second: limits.requests.per_second * share,
                burst: (limits.requests.burst * share).max(1.0),
            },
            tokens: limits.tokens.map(|t| Rate {
                per_second: t.per_second * share,
                burst: (t.burst * share).max(1.0),
            }),
        });
        Arc::new(Budget {
            name,
            config,
            limits,
            tenant_limits,
            store,
            breaker,
        })
    }

    /// The provider name (budget key and metrics label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The provider's circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The key and buckets of `tenant`'s share, when the budget splits by tenant.
    fn tenant_budget(&self, tenant: Option<TenantId>) -> Option<(String, &Limits)> {
        let limits = self.tenant_limits.as_ref()?;
        Some((format!("{}/tenant/{}", self.name, tenant?), limits))
    }

    /// Waits for one request and `tokens` tokens: from the calling tenant's share first (see
    /// the module docs), then from the provider's buckets.
    async fn acquire(&self, tokens: u64, tenant: Option<TenantId>) -> Result<()> {
        let started = Instant::now();
        let deadline = started + self.config.max_queue_wait;
        if let Some((key, limits)) = self.tenant_budget(tenant) {
            self.take(
                &key,
                limits,
                tokens,
                deadline,
                "this workspace's share of the model provider's budget is spent for now",
            )
            .await?;
        }
        self.take(
            &self.name,
            &self.limits,
            tokens,
            deadline,
            "the model provider's request budget is spent for now",
        )
        .await?;
        metrics::histogram!("docent_llm_budget_wait_seconds", "provider" => self.name.clone())
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Takes from one key's buckets, sleeping until they allow it or `deadline` would pass.
    async fn take(
        &self,
        key: &str,
        limits: &Limits,
        tokens: u64,
        deadline: Instant,
        spent: &str,
    ) -> Result<()> {
        loop {
            match self.store.try_take(key, limits, tokens).await? {
                Grant::Granted => return Ok(()),
                Grant::Wait(d) => {
                    if Instant::now() + d > deadline {
                        return Err(Error::new(Code::ModelRateLimited, spent.to_owned())
                            .with_retry_after(d));
                    }
                    // A little jitter so waiters woken together do not collide forever.
                    let jitter = rand::rng().random_range(0..=d.as_micros().min(2_000) as u64);
                    tokio::time::sleep(d + Duration::from_micros(jitter)).await;
                }
            }
        }
    }

    /// Corrects the token buckets charged for a call (the tenant's share and the provider's).
    async fn adjust_tokens(&self, tenant: Option<TenantId>, delta: i64) -> Result<()> {
        if let Some((key, limits)) = self.tenant_budget(tenant) {
            self.store.adjust_tokens(&key, limits, delta).await?;
        }
        self.store
            .adjust_tokens(&self.name, &self.limits, delta)
            .await
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.config.backoff_max);
        let micros = exp.as_micros().min(u128::from(u64::MAX)) as u64;
        Duration::from_micros(rand::rng().random_range(0..=micros))
    }

    /// Runs `call` under the budget with retries (see the module docs). `tokens` is the
    /// up-front estimate; `used` reads the real count from a result, to correct the bucket.
    pub async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        tokens: u64,
        used: impl Fn(&T) -> Option<u64>,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let provider = self.name.clone();
        let tenant = calling_tenant();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let permit = match self.breaker.allow() {
                Ok(p) => p,
                Err(wait) => {
                    metrics::counter!("docent_llm_circuit_rejected_total", "provider" => provider.clone())
                        .increment(1);
                    return Err(Error::new(
                        Code::ModelUnavailable,
                        format!(
                            "the model provider {provider} is failing; calls are paused (circuit open)"
                        ),
                    )
                    .with_retry_after(wait));
                }
            };
            self.acquire(tokens, tenant).await?;
            let started = Instant::now();
            let result = call().await;
            metrics::histogram!("docent_llm_request_duration_seconds", "provider" => provider.clone(), "op" => op)
                .record(started.elapsed().as_secs_f64());
            let err = match result {
                Ok(value) => {
                    permit.report(Health::Up);
                    let real = used(&value);
                    let spent = real.unwrap_or(tokens);
                    metrics::counter!("docent_llm_requests_total", "provider" => provider.clone(), "op" => op, "outcome" => "ok")
                        .increment(1);
                    metrics::counter!("docent_llm_tokens_total", "provider" => provider.clone(), "op" => op)
                        .increment(spent);
                    if let Some(real) = real
                        && self.limits.tokens.is_some()
                    {
                        let delta = real as i64 - tokens as i64;
                        self.adjust_tokens(tenant, delta).await?;
                    }
                    return Ok(value);
                }
                Err(e) => e,
            };
            let class = classify(&err);
            let outcome = match class {
                Class::RateLimited => "rate_limited",
                Class::Transient => "unavailable",
                Class::Final => "error",
            };
            metrics::counter!("docent_llm_requests_total", "provider" => provider.clone(), "op" => op, "outcome" => outcome)
                .increment(1);
            let delay = match class {
                Class::Final => {
                    permit.report(Health::Up);
                    return Err(err);
                }
                Class::RateLimited => {
                    permit.report(Health::Up);
                    metrics::counter!("docent_llm_rate_limited_total", "provider" => provider.clone(), "op" => op)
                        .increment(1);
                    err.retry_after
                }
                Class::Transient => {
                    if permit.report(Health::Down) {
                        metrics::counter!("docent_llm_circuit_opened_total", "provider" => provider.clone())
                            .increment(1);
                        tracing::warn!(provider = %provider, "model provider failing: circuit open");
                    }
                    err.retry_after
                }
            };
            if let Some(after) = delay
                && after > self.config.max_retry_after
            {
                return Err(err);
            }
            if attempt >= self.config.max_attempts {
                let message = format!("{} (gave up after {attempt} attempts)", err.message);
                let retry_after = err.retry_after;
                let mut e = Error::new(err.code, message).with_source(err);
                e.retry_after = retry_after;
                return Err(e);
            }
            let wait = match delay {
                Some(after) => {
                    // Everyone waits for the provider, not just this caller.
                    self.store.pause(&self.name, after).await?;
                    after
                }
                None => self.backoff(attempt),
            };
            tracing::debug!(provider = %provider, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying model call");
            metrics::counter!("docent_llm_retries_total", "provider" => provider.clone(), "op" => op)
                .increment(1);
            tokio::time::sleep(wait).await;
        }
    }
}

/// A model whose calls go through a [`Budget`] (see the module docs).
pub struct Budgeted<T> {
    inner: T,
    budget: Arc<Budget>,
}

impl<T> Budgeted<T> {
    /// Wraps `inner` with `budget`.
    pub fn new(inner: T, budget: Arc<Budget>) -> Self {
        Self { inner, budget }
    }

    /// The wrapped model.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The budget.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }
}

/// Estimated tokens of a chat request: its messages plus the completion it may produce.
pub fn estimate_chat_tokens(req: &ChatRequest) -> u64 {
    let prompt: usize = req
        .messages
        .iter()
        .map(|m| estimate_tokens(&m.content) + 4)
        .sum();
    prompt as u64 + req.max_tokens.map_or(ASSUMED_COMPLETION_TOKENS, u64::from)
}

#[async_trait]
impl<T: ChatModel> ChatModel for Budgeted<T> {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        self.budget
            .run(
                "chat",
                estimate_chat_tokens(request),
                |r: &ChatResponse| r.usage.map(|u| u64::from(u.total())),
                || self.inner.chat(request),
            )
            .await
    }

    /// Retries until the stream is accepted; failures after that arrive as stream items and
    /// are not retried (the caller may have shown part of the answer).
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let estimate = estimate_chat_tokens(request);
        let stream = self
            .budget
            .run(
                "chat_stream",
                estimate,
                |_| None,
                || self.inner.chat_stream(request),
            )
            .await?;
        let budget = self.budget.clone();
        let tenant = calling_tenant();
        Ok(stream
            .inspect(move |item| {
                if let Ok(delta) = item
                    && let Some(usage) = delta.usage
                {
                    let real = u64::from(usage.total());
                    let budget = budget.clone();
                    metrics::counter!("docent_llm_tokens_total", "provider" => budget.name.clone(), "op" => "chat_stream")
                        .increment(real);
                    if budget.limits.tokens.is_some() {
                        tokio::spawn(async move {
                            let delta = real as i64 - estimate as i64;
                            let _ = budget.adjust_tokens(tenant, delta).await;
                        });
                    }
                }
            })
            .boxed())
    }
}

#[async_trait]
impl<T: Embedder> Embedder for Budgeted<T> {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    /// One budgeted call: put batching outside ([`Batched`](crate::Batched)) so that this is
    /// one request.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let tokens: usize = texts.iter().map(|t| estimate_tokens(t)).sum();
        self.budget
            .run("embed", tokens as u64, |_| None, || self.inner.embed(texts))
            .await
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.inner.count_tokens(text)
    }
}
