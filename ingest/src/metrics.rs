//! Prometheus metrics of the ingest service, in a registry of its own (so several
//! services can run in one process, and tests in parallel).

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub accepted: IntCounter,
    pub rejected: IntCounterVec,
    pub duplicates: IntCounter,
    pub request_seconds: Histogram,
    pub append_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("techmon_ingest".into()), None).expect("valid prefix");
        let accepted = IntCounter::new("records_accepted_total", "Records stored in the event log")
            .expect("metric");
        let rejected = IntCounterVec::new(
            Opts::new("records_rejected_total", "Records refused, by reason"),
            &["reason"],
        )
        .expect("metric");
        let duplicates = IntCounter::new(
            "records_duplicate_total",
            "Records whose event id had been stored before",
        )
        .expect("metric");
        let buckets = prometheus::exponential_buckets(0.0005, 2.0, 16).expect("buckets");
        let request_seconds = Histogram::with_opts(
            HistogramOpts::new("request_duration_seconds", "Time to answer a push request")
                .buckets(buckets.clone()),
        )
        .expect("metric");
        let append_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "log_append_duration_seconds",
                "Time until the event log made a batch durable",
            )
            .buckets(buckets),
        )
        .expect("metric");
        for c in [
            Box::new(accepted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rejected.clone()),
            Box::new(duplicates.clone()),
            Box::new(request_seconds.clone()),
            Box::new(append_seconds.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            accepted,
            rejected,
            duplicates,
            request_seconds,
            append_seconds,
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
