//! Prometheus metrics of the ingest service, in the registry it is given (`techmon
//! serve` shares one between its services; each test server has its own).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub accepted: IntCounter,
    pub corrected: IntCounter,
    pub rejected: IntCounterVec,
    pub duplicates: IntCounter,
    pub request_seconds: Histogram,
    pub append_seconds: Histogram,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Self {
        let accepted = IntCounter::new(
            "techmon_ingest_records_accepted_total",
            "Records stored in the event log",
        )
        .expect("metric");
        let corrected = IntCounter::new(
            "techmon_ingest_records_corrected_total",
            "Rows of plain sheets stored as a correction of their earlier version (also among the accepted)",
        )
        .expect("metric");
        let rejected = IntCounterVec::new(
            Opts::new(
                "techmon_ingest_records_rejected_total",
                "Records refused, by reason",
            ),
            &["reason"],
        )
        .expect("metric");
        let duplicates = IntCounter::new(
            "techmon_ingest_records_duplicate_total",
            "Records whose event id had been stored before",
        )
        .expect("metric");
        let buckets = prometheus::exponential_buckets(0.0005, 2.0, 16).expect("buckets");
        let request_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "techmon_ingest_request_duration_seconds",
                "Time to answer a push request",
            )
            .buckets(buckets.clone()),
        )
        .expect("metric");
        let append_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "techmon_ingest_log_append_duration_seconds",
                "Time until the event log made a batch durable",
            )
            .buckets(buckets),
        )
        .expect("metric");
        for c in [
            Box::new(accepted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(corrected.clone()),
            Box::new(rejected.clone()),
            Box::new(duplicates.clone()),
            Box::new(request_seconds.clone()),
            Box::new(append_seconds.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            accepted,
            corrected,
            rejected,
            duplicates,
            request_seconds,
            append_seconds,
        }
    }
}
