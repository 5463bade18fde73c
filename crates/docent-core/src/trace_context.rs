//! W3C trace context across the task queue. An enqueue runs in an `enqueue` span whose
//! `traceparent` is stored with the task ([`NewTask::traceparent`], an opaque string to the
//! domain and every queue backend); the worker's `task` span continues that trace
//! ([`continue_trace`]), so one upload is one trace from its HTTP request to the worker's stages
//! and model calls. Without an exporter (`[telemetry.otlp]` unset) spans carry no OpenTelemetry
//! context: nothing is stored and nothing is continued.

use std::collections::HashMap;

use docent_domain::ports::TaskQueue;
use docent_domain::{NewTask, Result, Task, TenantId};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The W3C `traceparent` of `span`, when it belongs to an exported trace (sampled or not: an
/// unsampled one carries its decision on).
pub fn traceparent(span: &Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` (not entered yet) a child of the span `traceparent` names. A malformed value,
/// or no exporter, leaves it as it was.
pub fn continue_trace(span: &Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid()
        && let Err(e) = span.set_parent(cx)
    {
        tracing::debug!(error = %e, "could not continue the enqueuer's trace");
    }
}

/// Enqueues `new` in an `enqueue` span, the task carrying that span's trace context.
pub async fn enqueue(queue: &dyn TaskQueue, tenant: TenantId, mut new: NewTask) -> Result<Task> {
    let span = tracing::info_span!("enqueue", kind = %new.kind);
    new.traceparent = traceparent(&span);
    queue.enqueue(tenant, new).instrument(span).await
}
