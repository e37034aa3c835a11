//! Admission control: at most `query.max_concurrent` queries run at once in the
//! service, and `query.max_concurrent_per_user` of one user; the rest wait up to
//! `query.queue_seconds` for a place, then are refused (429 for the user's own
//! limit, 503 for the service's) with `Retry-After`. One user's burst cannot take
//! every place, and no burst can take the process's memory with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use prometheus::IntGauge;
use techmon_service::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// The places, and how long a query waits for one.
#[derive(Debug)]
pub struct Admission {
    service: Arc<Semaphore>,
    per_user: usize,
    users: Mutex<HashMap<String, Arc<Semaphore>>>,
    queue: Duration,
    metrics: Metrics,
}

/// A query's places, given back when it ends.
#[derive(Debug)]
pub struct Admitted {
    _user: OwnedSemaphorePermit,
    _service: OwnedSemaphorePermit,
    _running: Counted,
}

/// One in a gauge while it lives (also when its query is cancelled).
#[derive(Debug)]
struct Counted(IntGauge);

impl Counted {
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Admission {
    pub fn new(max_concurrent: usize, per_user: usize, queue: Duration, metrics: Metrics) -> Self {
        Self {
            service: Arc::new(Semaphore::new(max_concurrent.max(1))),
            per_user: per_user.max(1),
            users: Mutex::new(HashMap::new()),
            queue,
            metrics,
        }
    }

    /// Waits for a place of `user`'s and one of the service's.
    pub async fn admit(&self, user: &str) -> Result<Admitted, ApiError> {
        let mine = {
            let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(
                users
                    .entry(user.to_string())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_user))),
            )
        };
        let retry_after = self.queue.as_secs().max(1);
        let waiting = Counted::new(self.metrics.queued.with_label_values(&[user]));
        let refused = |reason: &str| {
            self.metrics
                .refused
                .with_label_values(&[user, reason])
                .inc()
        };
        let user_place = tokio::time::timeout(self.queue, mine.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                refused("too_many_queries");
                ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_queries",
                    format!(
                        "you have {} queries running, as many as one user may; try again when one ends",
                        self.per_user
                    ),
                )
            }})?;
        let service_place =
            tokio::time::timeout(self.queue, Arc::clone(&self.service).acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| {
                    refused("busy");
                    ApiError {
                        retry_after: Some(retry_after),
                        ..ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "busy",
                            "the query service runs as many queries as it may; try again shortly",
                        )
                    }
                })?;
        drop(waiting);
        Ok(Admitted {
            _user: user_place,
            _service: service_place,
            _running: Counted::new(self.metrics.running.with_label_values(&[user])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_waits_then_is_refused_and_others_go_on() {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry).expect("metrics");
        let admission = Admission::new(2, 1, Duration::from_millis(50), metrics.clone());
        let first = admission.admit("rita").await.expect("a place");
        let refused = admission
            .admit("rita")
            .await
            .expect_err("rita's one place is taken");
        assert_eq!(
            (refused.status.as_u16(), refused.code),
            (429, "too_many_queries")
        );
        assert_eq!(refused.retry_after, Some(1));
        let other = admission.admit("anna").await.expect("another user's place");
        // Both service places taken: a third user waits, then is refused.
        let busy = admission.admit("ada").await.expect_err("service full");
        assert_eq!((busy.status.as_u16(), busy.code), (503, "busy"));
        let gauge = |g: &prometheus::IntGaugeVec, user: &str| g.with_label_values(&[user]).get();
        let refusals =
            |user: &str, reason: &str| metrics.refused.with_label_values(&[user, reason]).get();
        assert_eq!(
            (
                gauge(&metrics.running, "rita"),
                gauge(&metrics.running, "anna")
            ),
            (1, 1)
        );
        assert_eq!(
            (
                refusals("rita", "too_many_queries"),
                refusals("ada", "busy")
            ),
            (1, 1)
        );
        assert_eq!(gauge(&metrics.queued, "ada"), 0, "no longer waiting");
        drop(first);
        assert_eq!(gauge(&metrics.running, "rita"), 0);
        let again = admission.admit("rita").await.expect("a place again");
        assert_eq!(gauge(&metrics.running, "rita"), 1);
        drop((again, other));
        assert_eq!(gauge(&metrics.running, "anna"), 0);
    }
}
