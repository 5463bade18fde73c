//! One model-call budget shared by processes through Redis: `docent_llm::Budget`s on separate
//! `docent_redis::RedisBudgetStore` connections (as separate processes have) pace one provider
//! together, tenant shares included. The binary is where the two crates meet, so the test
//! lives here; the store's own bucket semantics are tested in `docent-redis`.
//!
//! The Redis server is a throwaway one (`common::servers`); without `DOCENT_TEST_REDIS_SERVER`
//! (`scripts/test-services`) the tests skip, saying so.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::servers::RedisServer;
use docent_fake_openai::{EMBED_MODEL, FakeConfig, FakeServer, RateCheck};
use docent_llm::{
    Budget, BudgetConfig, Budgeted, Embedder, EmbeddingConfig, OpenAiEmbedder, ProviderConfig,
};
use docent_redis::{Redis, RedisBudgetStore, RedisOptions};

const OPTIONS: RedisOptions = RedisOptions {
    connect_timeout: Duration::from_millis(500),
    command_timeout: Duration::from_secs(2),
};

/// A store with its own connection, as another process would have.
fn store(server: &RedisServer) -> Arc<RedisBudgetStore> {
    let redis = Redis::open(&server.url(), OPTIONS).expect("open redis");
    Arc::new(RedisBudgetStore::new(redis, "budget:"))
}

/// A store on the Redis Cluster of `DOCENT_TEST_REDIS_CLUSTER_URL` with its own connection.
fn cluster_store(seed: &str, prefix: &str) -> Arc<RedisBudgetStore> {
    let redis = Redis::open_cluster(&[seed], OPTIONS, &Default::default()).expect("open cluster");
    Arc::new(RedisBudgetStore::new(redis, prefix))
}
/// Two processes — two `Budget`s, each on its own `RedisBudgetStore` connection — calling the
/// same provider at 5 requests/s with burst 1: together they never start more than 5 requests
/// within any 1 s window (less 50 ms of scheduling jitter), so they really share one budget
/// (apart, they would reach 10/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_one_budget() {
    let Some(redis) = RedisServer::start_new("two_processes_share_one_budget") else {
        return;
    };
    share_one_budget(|| store(&redis)).await;
}

/// The same on a Redis Cluster (ElastiCache cluster mode): the budget's key lives on one node,
/// which every process's cluster connection finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_one_budget_on_a_cluster() {
    let seed = match std::env::var("DOCENT_TEST_REDIS_CLUSTER_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!("skipped: DOCENT_TEST_REDIS_CLUSTER_URL not set (run scripts/test-services)");
            return;
        }
    };
    let prefix = format!("docent-test-budget:{}:", uuid::Uuid::new_v4().simple());
    share_one_budget(|| cluster_store(&seed, &prefix)).await;
}

/// Two `Budget`s on stores from `store` (two processes), four embedders each, against a fake
/// provider that checks the 5 requests/s limit.
async fn share_one_budget(store: impl Fn() -> Arc<RedisBudgetStore>) {
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
        let budget = Budget::with_store(name.clone(), config.clone(), store());
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
    let Some(redis) = RedisServer::start_new("a_tenant_spending_its_share") else {
        return;
    };
    let config = BudgetConfig {
        requests_per_second: 0.01,
        request_burst: 4,
        tenant_share: 0.5,
        max_queue_wait: Duration::from_millis(20),
        ..BudgetConfig::default()
    };
    let one = Budget::with_store("tenants", config.clone(), store(&redis));
    let two = Budget::with_store("tenants", config, store(&redis));
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
