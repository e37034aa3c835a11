//! Admission control: at most `query.max_concurrent` queries run at once in the
//! service, and `query.max_concurrent_per_user` of one user; the rest wait up to
//! `query.queue_seconds` for a place, then are refused (429 for the user's own
//! limit, 503 for the service's) with `Retry-After`. One user's burst cannot take
//! every place, and no burst can take the process's memory with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use techmon_ingest::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The places, and how long a query waits for one.
#[derive(Debug)]
pub struct Admission {
    service: Arc<Semaphore>,
    per_user: usize,
    users: Mutex<HashMap<String, Arc<Semaphore>>>,
    queue: Duration,
}

/// A query's places, given back when it ends.
#[derive(Debug)]
pub struct Admitted {
    _user: OwnedSemaphorePermit,
    _service: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(max_concurrent: usize, per_user: usize, queue: Duration) -> Self {
        Self {
            service: Arc::new(Semaphore::new(max_concurrent.max(1))),
            per_user: per_user.max(1),
            users: Mutex::new(HashMap::new()),
            queue,
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
        let user_place = tokio::time::timeout(self.queue, mine.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_queries",
                    format!(
                        "you have {} queries running, as many as one user may; try again when one ends",
                        self.per_user
                    ),
                )
            })?;
        let service_place =
            tokio::time::timeout(self.queue, Arc::clone(&self.service).acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| ApiError {
                    retry_after: Some(retry_after),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        "the query service runs as many queries as it may; try again shortly",
                    )
                })?;
        Ok(Admitted {
            _user: user_place,
            _service: service_place,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_waits_then_is_refused_and_others_go_on() {
        let admission = Admission::new(2, 1, Duration::from_millis(50));
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
        drop(first);
        admission.admit("rita").await.expect("a place again");
        drop(other);
    }
}
