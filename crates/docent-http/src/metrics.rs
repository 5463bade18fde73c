//! The Prometheus recorder, installed once per process, and the gauges refreshed on scrape.

use std::sync::OnceLock;

use docent_core::Services;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the global recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("valid buckets")
                .install_recorder()
                .unwrap_or_else(|_| {
                    // Another recorder is installed (tests embedding several apps): render ours
                    // from a private one.
                    PrometheusBuilder::new().build_recorder().handle()
                })
        })
        .clone()
}

/// Refreshes the queue gauges from the task table.
pub async fn refresh(services: &Services) {
    match services.queue.depth().await {
        Ok(depth) => {
            for &status in docent_domain::TaskStatus::ALL {
                let n = depth
                    .by_status
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("docent_tasks", "status" => status.as_str()).set(n as f64);
            }
            let pending = depth
                .by_status
                .iter()
                .filter(|(s, _)| *s == docent_domain::TaskStatus::Pending)
                .map(|(_, n)| *n)
                .sum::<u64>();
            metrics::gauge!("docent_queue_depth").set(pending as f64);
            metrics::gauge!("docent_tasks_dead_lettered").set(depth.dead_lettered as f64);
            // How long the oldest runnable task has waited (0 when none waits).
            let age = depth.oldest_runnable_since.map_or(0.0, |since| {
                (chrono::Utc::now() - since).num_milliseconds().max(0) as f64 / 1000.0
            });
            metrics::gauge!("docent_queue_oldest_task_age_seconds").set(age);
        }
        Err(e) => tracing::warn!(error = %e.chain(), "could not read queue depth for metrics"),
    }
}
