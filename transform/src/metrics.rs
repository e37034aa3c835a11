//! Prometheus metrics of the transform: lag per partition, events and rows, dead
//! letters by reason, duplicates, unregistered participant references, commit
//! latency.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub events_read: IntCounter,
    pub rows_written: IntCounter,
    pub dead_letters: IntCounterVec,
    pub duplicates: IntCounter,
    pub unregistered_references: IntCounter,
    pub lag: IntGaugeVec,
    pub commit_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("metric");
        Self {
            events_read: counter(
                "techmon_transform_events_read_total",
                "Events read from the log",
            ),
            rows_written: counter(
                "techmon_transform_rows_written_total",
                "Rows committed to the lake",
            ),
            dead_letters: IntCounterVec::new(
                Opts::new(
                    "techmon_transform_dead_letters_total",
                    "Events sent to the dead letters, by reason",
                ),
                &["reason"],
            )
            .expect("metric"),
            duplicates: counter(
                "techmon_transform_duplicates_total",
                "Second copies of an event id, dropped",
            ),
            unregistered_references: counter(
                "techmon_transform_unregistered_references_total",
                "Participant references named by an event before their registration (their rows are relinked when it comes)",
            ),
            lag: IntGaugeVec::new(
                Opts::new(
                    "techmon_transform_lag_events",
                    "Events in the log not yet transformed, per partition",
                ),
                &["partition"],
            )
            .expect("metric"),
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "techmon_transform_commit_duration_seconds",
                    "Time of one lake table commit",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 14).expect("buckets")),
            )
            .expect("metric"),
        }
    }

    /// Adds these metrics to `registry` (e.g. the one `GET /metrics` shows).
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.events_read.clone()))?;
        registry.register(Box::new(self.rows_written.clone()))?;
        registry.register(Box::new(self.dead_letters.clone()))?;
        registry.register(Box::new(self.duplicates.clone()))?;
        registry.register(Box::new(self.unregistered_references.clone()))?;
        registry.register(Box::new(self.lag.clone()))?;
        registry.register(Box::new(self.commit_seconds.clone()))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
