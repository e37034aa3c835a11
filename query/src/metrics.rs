//! The query service's metrics for `GET /metrics`: per user, the queries running,
//! those waiting for a place and those refused (see [`crate::admission`]).

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Debug, Clone)]
pub struct Metrics {
    pub(crate) running: IntGaugeVec,
    pub(crate) queued: IntGaugeVec,
    pub(crate) refused: IntCounterVec,
}

impl Metrics {
    /// The metrics, registered in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            running: IntGaugeVec::new(
                Opts::new("techmon_query_running", "queries running, per user"),
                &["user"],
            )?,
            queued: IntGaugeVec::new(
                Opts::new(
                    "techmon_query_queued",
                    "queries waiting for a place, per user",
                ),
                &["user"],
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "techmon_query_refused_total",
                    "queries refused for want of a place, per user and reason (too_many_queries: the user's own limit; busy: the service's)",
                ),
                &["user", "reason"],
            )?,
        };
        registry.register(Box::new(metrics.running.clone()))?;
        registry.register(Box::new(metrics.queued.clone()))?;
        registry.register(Box::new(metrics.refused.clone()))?;
        Ok(metrics)
    }
}
