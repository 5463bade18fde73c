//! `RedisBudgetStore` against a real Redis (`DOCENT_TEST_REDIS_URL`) and a real Redis Cluster
//! (`DOCENT_TEST_REDIS_CLUSTER_URL`): the same bucket semantics as the in-process store, seen
//! from several connections; in a cluster, budgets spread over the nodes. Budgets shared through it
//! by two "processes" are tested where `docent-llm` and this crate meet, in the binary
//! (`crates/docent/tests/redis_budget.rs`).

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use docent_domain::budget::{BudgetStore, Grant, Limits, Rate};
use docent_redis::RedisBudgetStore;

use common::{Cleanup, Server, fresh_prefix};

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
    server: Server,
    prefix: String,
    _cleanup: Cleanup,
}

impl Fixture {
    fn new(server: Server) -> Self {
        let prefix = fresh_prefix("budget");
        Self {
            _cleanup: server.cleanup(&prefix),
            server,
            prefix,
        }
    }

    /// A store with its own connection, as another process would have.
    fn store(&self) -> RedisBudgetStore {
        RedisBudgetStore::new(self.server.connect(), format!("{}:", self.prefix))
    }
}

on_both! {
    async fn buckets_start_full_and_refill_at_their_rate(server) {
        let fx = Fixture::new(server);
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
}

on_both! {
    async fn tokens_are_taken_with_the_request_and_adjusted(server) {
        let fx = Fixture::new(server);
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
}

on_both! {
    async fn pauses_stop_grants_and_never_shorten(server) {
        let fx = Fixture::new(server);
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
}

on_both! {
    /// Many concurrent takers on several stores get exactly the burst, never more.
    async fn concurrent_takes_never_overdraw(server) {
        let fx = Fixture::new(server);
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
}

/// In a cluster, each budget key lives on the node owning its slot: twenty budgets land on
/// every node, and each still grants exactly its burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_budgets_spread_over_the_nodes() {
    let Some(server) = Server::cluster() else {
        return;
    };
    let fx = Fixture::new(server);
    let s = fx.store();
    let l = limits(0.001, 1.0, None);
    for i in 0..20 {
        let key = format!("provider-{i}");
        assert_eq!(s.try_take(&key, &l, 0).await.unwrap(), Grant::Granted);
        assert!(matches!(
            s.try_take(&key, &l, 0).await.unwrap(),
            Grant::Wait(_)
        ));
    }
    let per_node: Vec<usize> = fx
        .server
        .keys_per_node(&fx.prefix)
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(per_node.iter().sum::<usize>(), 20, "{per_node:?}");
    assert!(
        per_node.len() == 3 && per_node.iter().all(|n| *n > 0),
        "spread over every node: {per_node:?}"
    );
}
