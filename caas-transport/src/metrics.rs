//! Prometheus metrics: requests, latency and errors per route, served at `/metrics`.
//!
//! The `metrics` facade has one global recorder per process; [`install`] sets it
//! once and every gateway in the process (tests start several) shares it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::problem::ErrorCode;

/// Latency buckets in seconds, from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// How often pending histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("caas_ws_frames_per_write".into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by the host application;
            // then ours renders nothing, which is its choice.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            // Histogram samples wait in the recorder until a render or an upkeep
            // folds them into buckets. Without a Prometheus scraping `/metrics`
            // nothing renders, so they would pile up (8 bytes per store call and
            // per socket write) for the life of the process.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("caas-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep not started; scrape /metrics to bound its memory");
            }
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "caas_http_requests_total",
        "HTTP requests by method, route and status"
    );
    metrics::describe_histogram!(
        "caas_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route"
    );
    metrics::describe_counter!(
        "caas_http_errors_total",
        "HTTP error responses by api.md code"
    );
    metrics::describe_counter!(
        "caas_messages_sent_total",
        "messages stored through the gateway (retries excluded)"
    );
    metrics::describe_gauge!("caas_ws_connections", "open WebSocket connections");
    metrics::describe_counter!("caas_ws_frames_in_total", "WebSocket frames received");
    metrics::describe_counter!("caas_ws_frames_out_total", "WebSocket frames written");
    metrics::describe_histogram!(
        "caas_ws_frames_per_write",
        "frames coalesced into one socket write"
    );
    metrics::describe_counter!(
        "caas_ws_deliveries_total",
        "events handed to connections by fan-out"
    );
    metrics::describe_counter!(
        "caas_ws_slow_consumer_closes_total",
        "connections closed because their queue was full"
    );
}

/// Records every routed request (added as a route layer, so the route template,
/// not the raw path, is the label).
pub(crate) async fn record(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::histogram!("caas_http_request_duration_seconds", "route" => route.clone())
        .record(start.elapsed().as_secs_f64());
    if let Some(ErrorCode(code)) = res.extensions().get::<ErrorCode>() {
        metrics::counter!("caas_http_errors_total", "code" => *code).increment(1);
    }
    metrics::counter!("caas_http_requests_total", "method" => method, "route" => route, "status" => status).increment(1);
    res
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn render(
    axum::extract::State(state): axum::extract::State<crate::gateway::AppState>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
