//! `RedisBudgetStore` against a real Redis (`DOCENT_TEST_REDIS_URL`): the same bucket
//! semantics as the in-process store, and one budget shared by two "processes".

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use docent_fake_openai::{EMBED_MODEL, FakeConfig, FakeServer, RateCheck};
use docent_llm::budget::{BudgetStore, Grant, Limits, Rate};
use docent_llm::{
    Budget, BudgetConfig, Budgeted, Embedder, EmbeddingConfig, OpenAiEmbedder, ProviderConfig,
};
use docent_redis::RedisBudgetStore;

use common::{Cleanup, connect, fresh_prefix, redis_url};

fn limits(rps: f64, burst: f64, tpm: Option<f64>) -> Limits {
    Limits {
        requests: Rate {
            per_second: rps,
            burst,
        },
        tokens: tpm.map(|t| Rate {
            per_second: t / 60.0,
            burst: t,
        }),
    }
}

struct Fixture {
    url: String,
    prefix: String,
    _cleanup: Cleanup,
}

impl Fixture {
    fn new() -> Option<Self> {
        let url = redis_url()?;
        let prefix = fresh_prefix("budget");
        Some(Self {
            _cleanup: Cleanup {
                url: url.clone(),
                pattern_prefix: prefix.clone(),
            },
            url,
            prefix,
        })
    }

    /// A store with its own connection, as another process would have.
    fn store(&self) -> RedisBudgetStore {
        RedisBudgetStore::new(connect(&self.url), format!("{}:", self.prefix))
    }
}

#[tokio::test]
async fn buckets_start_full_and_refill_at_their_rate() {
    let Some(fx) = Fixture::new() else { return };
    let s = fx.store();
    let l = limits(5.0, 2.0, None);
    assert_eq!(s.try_take("k", &l, 0).await.unwrap(), Grant::Granted);
    assert_eq!(s.try_take("k", &l, 0).await.unwrap(), Grant::Granted);
    let Grant::Wait(w) = s.try_take("k", &l, 0).await.unwrap() else {
        panic!("burst is 2");
    };
    assert!(
        w > Duration::from_millis(150) && w <= Duration::from_millis(200),
        "{w:?}"
    );
    assert_eq!(s.try_take("other", &l, 0).await.unwrap(), Grant::Granted);
    tokio::time::sleep(w).await;
    assert_eq!(
        s.try_take("k", &l, 0).await.unwrap(),
        Grant::Granted,
        "waiting the hinted time is enough"
    );
}

#[tokio::test]
async fn tokens_are_taken_with_the_request_and_adjusted() {
    let Some(fx) = Fixture::new() else { return };
    let s = fx.store();
    let l = limits(1000.0, 1000.0, Some(600.0)); // 10 tokens/s, 600 deep
    assert_eq!(s.try_take("k", &l, 500).await.unwrap(), Grant::Granted);
    let Grant::Wait(w) = s.try_take("k", &l, 200).await.unwrap() else {
        panic!("only 100 tokens left");
    };
    assert!(
        w > Duration::from_secs(9) && w <= Duration::from_secs(10),
        "{w:?}"
    );
    s.adjust_tokens("k", &l, -400).await.unwrap();
    assert_eq!(s.try_take("k", &l, 200).await.unwrap(), Grant::Granted);
    // Debt: taking more than is left after the fact delays the next caller.
    s.adjust_tokens("k", &l, 700).await.unwrap();
    let Grant::Wait(w) = s.try_take("k", &l, 1).await.unwrap() else {
        panic!("in debt");
    };
    assert!(w > Duration::from_secs(30), "{w:?}");
    // More than the bucket holds is charged the whole bucket, not refused forever.
    assert_eq!(s.try_take("k2", &l, 10_000).await.unwrap(), Grant::Granted);
}

#[tokio::test]
async fn pauses_stop_grants_and_never_shorten() {
    let Some(fx) = Fixture::new() else { return };
    let s = fx.store();
    let l = limits(100.0, 10.0, None);
    s.pause("k", Duration::from_secs(2)).await.unwrap();
    s.pause("k", Duration::from_millis(10)).await.unwrap();
    let Grant::Wait(w) = fx.store().try_take("k", &l, 0).await.unwrap() else {
        panic!("paused, seen from another store");
    };
    assert!(
        w > Duration::from_secs(1),
        "a shorter pause does not shorten: {w:?}"
    );
    s.pause("short", Duration::from_millis(100)).await.unwrap();
    assert!(matches!(
        s.try_take("short", &l, 0).await.unwrap(),
        Grant::Wait(_)
    ));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(s.try_take("short", &l, 0).await.unwrap(), Grant::Granted);
}

/// Many concurrent takers on several stores get exactly the burst, never more.
#[tokio::test]
async fn concurrent_takes_never_overdraw() {
    let Some(fx) = Fixture::new() else { return };
    let stores: Vec<Arc<RedisBudgetStore>> = (0..4).map(|_| Arc::new(fx.store())).collect();
    let l = limits(0.001, 10.0, None);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let s = stores[i % stores.len()].clone();
        set.spawn(async move { s.try_take("k", &l, 0).await.unwrap() });
    }
    let mut granted = 0;
    while let Some(g) = set.join_next().await {
        if g.unwrap() == Grant::Granted {
            granted += 1;
        }
    }
    assert_eq!(granted, 10);
}

/// Two processes — two `Budget`s, each on its own `RedisBudgetStore` connection — calling the
/// same provider at 5 requests/s with burst 1: together they never start more than 5 requests
/// within any 1 s window (less 50 ms of scheduling jitter), so they really share one budget
/// (apart, they would reach 10/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_one_budget() {
    let Some(fx) = Fixture::new() else { return };
    let fake = FakeServer::start(FakeConfig {
        rate_check: Some(RateCheck {
            max_requests: 5,
            window: Duration::from_secs(1),
            tolerance: Duration::from_millis(50),
        }),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let name = format!("shared-{}", fake.addr().port());
    let config = BudgetConfig {
        requests_per_second: 5.0,
        request_burst: 1,
        ..BudgetConfig::default()
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for process in 0..2 {
        let budget = Budget::with_store(name.clone(), config.clone(), Arc::new(fx.store()));
        for t in 0..2 {
            let cfg =
                EmbeddingConfig::new(ProviderConfig::new(fake.base_url(), EMBED_MODEL), Some(64));
            let embedder = Budgeted::new(OpenAiEmbedder::new(&cfg).unwrap(), budget.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..4 {
                    let v = embedder
                        .embed(&[format!("process {process} task {t} text {i}")])
                        .await?;
                    assert_eq!(v.len(), 1);
                }
                Ok::<_, docent_domain::Error>(())
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let log = fake.log();
    assert_eq!(log.len(), 16);
    assert!(log.iter().all(|l| l.status == 200));
    let busiest = fake.max_requests_in(Duration::from_millis(950));
    assert!(busiest <= 5, "{busiest} requests within 950 ms");
    assert_eq!(fake.rate_violations(), 0);
    // Burst 1 at 5/s: starts are 200 ms apart, whichever process makes them.
    let min_span = Duration::from_millis(200 * (log.len() as u64 - 1));
    assert!(
        started.elapsed() >= min_span - Duration::from_millis(50),
        "paced across both processes: {:?}",
        started.elapsed()
    );
}

/// Per-tenant shares in the shared store: tenant A spending its share (2 of the provider's 4)
/// through one "process" leaves tenant B able to call through another.
#[tokio::test]
async fn a_tenant_spending_its_share_leaves_the_rest_to_others() {
    let Some(fx) = Fixture::new() else { return };
    let config = BudgetConfig {
        requests_per_second: 0.01,
        request_burst: 4,
        tenant_share: 0.5,
        max_queue_wait: Duration::from_millis(20),
        ..BudgetConfig::default()
    };
    let one = Budget::with_store("tenants", config.clone(), Arc::new(fx.store()));
    let two = Budget::with_store("tenants", config, Arc::new(fx.store()));
    let (a, b) = (
        docent_domain::TenantId::new(),
        docent_domain::TenantId::new(),
    );
    let call = |budget: Arc<Budget>, tenant| async move {
        docent_domain::llm::caller::for_tenant(
            tenant,
            budget.run("chat", 10, |_: &()| None, || async { Ok(()) }),
        )
        .await
    };
    call(one.clone(), a).await.unwrap();
    call(two.clone(), a).await.unwrap();
    let err = call(one.clone(), a).await.unwrap_err();
    assert_eq!(err.code, docent_domain::Code::ModelRateLimited, "{err:?}");
    call(two.clone(), b).await.unwrap();
    call(one, b).await.unwrap();
    assert_eq!(
        call(two, b).await.unwrap_err().code,
        docent_domain::Code::ModelRateLimited
    );
}
