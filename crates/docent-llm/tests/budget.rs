//! Budgeted access against the fake server: shared rate limits under injected faults,
//! `Retry-After`, bounded retries and the circuit breaker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use docent_domain::Code;
use docent_fake_openai::{
    CHAT_MODEL, EMBED_MODEL, FakeConfig, FakeServer, Fault, Faults, RateCheck, RetryAfter,
};
use docent_llm::{
    Budget, BudgetConfig, Budgeted, ChatConfig, ChatMessage, ChatModel, ChatRequest, Embedder,
    EmbeddingConfig, OpenAiChat, OpenAiEmbedder, ProviderConfig,
};

/// A budget name no other test uses (budgets and breakers are shared per name in the process).
fn unique(name: &str, fake_port: u16) -> String {
    format!("{name}-{fake_port}")
}

fn quick_budget() -> BudgetConfig {
    BudgetConfig {
        requests_per_second: 100.0,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..BudgetConfig::default()
    }
}

fn question() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user("[1] Cats purr.\n\nDo cats purr?")])
}

fn budgeted_chat(base_url: String, name: &str, budget: BudgetConfig) -> Budgeted<OpenAiChat> {
    let client =
        OpenAiChat::new(&ChatConfig::new(ProviderConfig::new(base_url, CHAT_MODEL))).unwrap();
    Budgeted::new(client, Budget::new(name, budget))
}

/// 40 embedding calls from 8 tasks, each task with its own wrapper on the same provider name,
/// against a fake failing 30% of requests (15% 429 with `retry-after-ms`, 15% 500): all
/// succeed, and the fake never sees more than 5 requests start within any window shorter than
/// 1 s less 50 ms of scheduling jitter. (Burst 1: requests start at least 200 ms apart.)
#[tokio::test]
async fn shared_budget_holds_five_per_second_under_faults() {
    let fake = FakeServer::start(FakeConfig {
        faults: Faults {
            rate_limit_share: 0.15,
            retry_after: RetryAfter::Millis(200),
            server_error_share: 0.15,
            ..Faults::default()
        },
        rate_check: Some(RateCheck {
            max_requests: 5,
            window: Duration::from_secs(1),
            tolerance: Duration::from_millis(50),
        }),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let name = unique("shared-budget", fake.addr().port());
    let budget = BudgetConfig {
        requests_per_second: 5.0,
        request_burst: 1,
        // Which global request a call's retry lands on depends on how the 8 tasks interleave,
        // so on a busy machine a call can meet six faults in a row (seen once in CI); the claim
        // under test is pacing, not the attempt budget.
        max_attempts: 12,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..BudgetConfig::default()
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let cfg = EmbeddingConfig::new(ProviderConfig::new(fake.base_url(), EMBED_MODEL), Some(64));
        let embedder = Budgeted::new(
            OpenAiEmbedder::new(&cfg).unwrap(),
            Budget::new(name.clone(), budget.clone()),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let v = embedder.embed(&[format!("task {t} text {i}")]).await?;
                assert_eq!(v.len(), 1);
            }
            Ok::<_, docent_domain::Error>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let log = fake.log();
    let ok = log.iter().filter(|l| l.status == 200).count();
    let limited = log.iter().filter(|l| l.status == 429).count();
    let failed = log.iter().filter(|l| l.status == 500).count();
    assert_eq!(ok, 40, "every call succeeded once");
    assert!(
        limited > 0 && failed > 0,
        "faults were injected: {limited} 429s, {failed} 500s"
    );
    assert_eq!(log.len(), ok + limited + failed);
    let busiest = fake.max_requests_in(Duration::from_millis(950));
    assert!(busiest <= 5, "{busiest} requests within 950 ms");
    assert_eq!(fake.rate_violations(), 0);
    let min_span = Duration::from_millis(200 * (log.len() as u64 - 1));
    assert!(started.elapsed() >= min_span, "paced, not bursted");
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let fake = FakeServer::start(FakeConfig {
        faults: Faults {
            script: vec![Fault::RateLimited(RetryAfter::Seconds(1))],
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let model = budgeted_chat(
        fake.base_url(),
        &unique("retry-after-s", fake.addr().port()),
        quick_budget(),
    );
    model.chat(&question()).await.unwrap();
    let log = fake.log();
    assert_eq!(
        log.iter().map(|l| l.status).collect::<Vec<_>>(),
        vec![429, 200]
    );
    let gap = log[1].t_ms - log[0].t_ms;
    assert!(gap >= 1000.0, "waited {gap} ms");
    assert!(gap < 1500.0, "waited {gap} ms");
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let fake = FakeServer::start(FakeConfig {
        faults: Faults {
            script: vec![Fault::RateLimited(RetryAfter::Date(Duration::from_secs(2)))],
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let model = budgeted_chat(
        fake.base_url(),
        &unique("retry-after-date", fake.addr().port()),
        quick_budget(),
    );
    model.chat(&question()).await.unwrap();
    let log = fake.log();
    assert_eq!(log.len(), 2);
    // The date has whole seconds: 2 s ahead, truncated, is 1 to 2 s.
    let gap = log[1].t_ms - log[0].t_ms;
    assert!((900.0..2600.0).contains(&gap), "waited {gap} ms");
}

#[tokio::test]
async fn a_long_retry_after_fails_at_once_with_the_delay() {
    let fake = FakeServer::start(FakeConfig {
        faults: Faults {
            script: vec![Fault::RateLimited(RetryAfter::Seconds(120))],
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let model = budgeted_chat(
        fake.base_url(),
        &unique("retry-after-long", fake.addr().port()),
        quick_budget(),
    );
    let err = model.chat(&question()).await.unwrap_err();
    assert_eq!(err.code, Code::ModelRateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(120)));
    assert_eq!(fake.log().len(), 1);
}

#[tokio::test]
async fn retries_are_bounded() {
    let fake = FakeServer::start(FakeConfig {
        faults: Faults {
            server_error_share: 1.0,
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let model = budgeted_chat(
        fake.base_url(),
        &unique("bounded", fake.addr().port()),
        BudgetConfig {
            max_attempts: 3,
            breaker_failures: 100,
            ..quick_budget()
        },
    );
    let err = model.chat(&question()).await.unwrap_err();
    assert_eq!(err.code, Code::ModelUnavailable);
    assert!(
        err.message.contains("gave up after 3 attempts"),
        "{}",
        err.message
    );
    assert_eq!(fake.log().len(), 3);
    // Refusals are not retried at all.
    let refused = budgeted_chat(
        fake.base_url().replace("/v1", "/nope"),
        &unique("refused", fake.addr().port()),
        quick_budget(),
    );
    let err = refused.chat(&question()).await.unwrap_err();
    assert_eq!(err.code, Code::ModelError);
    assert_eq!(fake.log().len(), 4);
}

#[tokio::test]
async fn circuit_opens_when_the_provider_is_down_and_fails_fast() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let name = unique("down", port);
    let budget = BudgetConfig {
        max_attempts: 2,
        breaker_failures: 3,
        breaker_cool_down: Duration::from_secs(60),
        ..quick_budget()
    };
    let model = budgeted_chat(base_url.clone(), &name, budget.clone());
    for _ in 0..2 {
        let err = model.chat(&question()).await.unwrap_err();
        assert_eq!(err.code, Code::ModelUnavailable);
    }
    assert!(model.budget().breaker().is_open());
    // Another wrapper on the same provider shares the breaker: it fails fast, sending nothing.
    let other = budgeted_chat(base_url, &name, budget);
    let started = Instant::now();
    let err = other.chat(&question()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(err.code, Code::ModelUnavailable);
    assert!(err.message.contains("circuit open"), "{}", err.message);
    assert!(err.retry_after.unwrap() > Duration::from_secs(50));
}

#[tokio::test]
async fn an_open_circuit_probes_after_cool_down_and_closes() {
    let fake = FakeServer::start(FakeConfig {
        faults: Faults {
            server_error_share: 1.0,
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let model = Arc::new(budgeted_chat(
        fake.base_url(),
        &unique("half-open", fake.addr().port()),
        BudgetConfig {
            max_attempts: 1,
            breaker_failures: 2,
            breaker_cool_down: Duration::from_millis(300),
            ..quick_budget()
        },
    ));
    for _ in 0..3 {
        assert!(model.chat(&question()).await.is_err());
    }
    assert_eq!(fake.log().len(), 2, "the third call never left the process");
    fake.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(350)).await;
    model.chat(&question()).await.unwrap();
    model.chat(&question()).await.unwrap();
    assert_eq!(fake.log().len(), 4);
    assert!(!model.budget().breaker().is_open());
}

#[tokio::test]
async fn streams_are_retried_until_accepted() {
    let fake = FakeServer::start(FakeConfig {
        faults: Faults {
            script: vec![Fault::ServerError, Fault::RateLimited(RetryAfter::None)],
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let model = budgeted_chat(
        fake.base_url(),
        &unique("stream-retry", fake.addr().port()),
        quick_budget(),
    );
    let answer = docent_llm::collect_stream(model.chat_stream(&question()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(answer.content, "Cats purr. [1]");
    assert_eq!(
        fake.log().iter().map(|l| l.status).collect::<Vec<_>>(),
        vec![500, 429, 200]
    );
}

/// Calls of a budget split by tenant (`tenant_share` 0.5 of a 4-deep, 2/s provider budget: 2
/// deep per tenant), failing at once when a bucket is empty instead of waiting.
fn per_tenant_budget(
    name: &str,
    store: Arc<dyn docent_domain::budget::BudgetStore>,
) -> Arc<Budget> {
    Budget::with_store(
        name,
        BudgetConfig {
            requests_per_second: 0.01,
            request_burst: 4,
            tenant_share: 0.5,
            max_queue_wait: Duration::from_millis(20),
            ..BudgetConfig::default()
        },
        store,
    )
}

async fn call_as(
    budget: &Budget,
    tenant: Option<docent_domain::TenantId>,
) -> docent_domain::Result<()> {
    let call = budget.run("chat", 10, |_: &()| None, || async { Ok(()) });
    match tenant {
        Some(t) => docent_domain::llm::caller::for_tenant(t, call).await,
        None => call.await,
    }
}

/// One tenant spending its share of the model budget is refused (`model_rate_limited`) while
/// another tenant's calls still go through: the provider's budget is not drained by one tenant.
#[tokio::test]
async fn a_tenant_spending_its_share_leaves_the_rest_to_others() {
    let budget = per_tenant_budget(
        "per-tenant-share",
        Arc::new(docent_llm::InProcessBudgetStore::new()),
    );
    let (a, b) = (
        docent_domain::TenantId::new(),
        docent_domain::TenantId::new(),
    );
    call_as(&budget, Some(a)).await.unwrap();
    call_as(&budget, Some(a)).await.unwrap();
    let err = call_as(&budget, Some(a)).await.unwrap_err();
    assert_eq!(err.code, Code::ModelRateLimited, "{err:?}");
    assert!(err.message.contains("share"), "{}", err.message);
    // A's refusals took nothing from the provider: B gets its whole share.
    call_as(&budget, Some(b)).await.unwrap();
    call_as(&budget, Some(b)).await.unwrap();
    assert_eq!(
        call_as(&budget, Some(b)).await.unwrap_err().code,
        Code::ModelRateLimited
    );
    // The provider's budget (4 deep) is now spent too: a call outside any tenant waits.
    assert_eq!(
        call_as(&budget, None).await.unwrap_err().code,
        Code::ModelRateLimited
    );
}
