//! Memory for queries: each query has a pool of its own (`query.memory_limit_mib`),
//! and all the queries running together draw on the service's
//! (`query.total_memory_mib`), so that a few large queries at once are refused or
//! spill rather than take the process's memory, and with it ingest and the transform.
//! Operators that can spill do when either runs out; one that cannot ends its query.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltalake::datafusion::common::{DataFusionError, Result};
use deltalake::datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryLimit, MemoryPool, MemoryReservation,
};

/// The service's memory for queries: what all running queries hold.
#[derive(Debug)]
pub struct ServiceMemory {
    used: AtomicUsize,
    limit: usize,
}

/// Marks the error of the service's memory running out (the query's own is
/// DataFusion's message).
pub const SERVICE_MEMORY_FULL: &str =
    "the queries running together hold the service's memory for queries";

impl ServiceMemory {
    pub fn new(limit_mib: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit: limit_mib.saturating_mul(1 << 20),
        })
    }

    /// Bytes the running queries hold.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One query's pool, drawing on the service's.
#[derive(Debug)]
pub struct QueryPool {
    own: GreedyMemoryPool,
    service: Arc<ServiceMemory>,
}

impl QueryPool {
    pub fn new(limit_mib: usize, service: &Arc<ServiceMemory>) -> Self {
        Self {
            own: GreedyMemoryPool::new(limit_mib.saturating_mul(1 << 20)),
            service: Arc::clone(service),
        }
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of the service's {} used by queries",
            self.own, self.service.limit
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "techmon query"
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.own.grow(reservation, additional);
        self.service.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.own.shrink(reservation, shrink);
        self.service.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let limit = self.service.limit;
        self.service
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                let new_used = used.saturating_add(additional);
                (new_used <= limit).then_some(new_used)
            })
            .map_err(|_| {
                DataFusionError::ResourcesExhausted(format!(
                    "{SERVICE_MEMORY_FULL} ({} MiB, query.total_memory_mib)",
                    limit >> 20
                ))
            })?;
        self.own.try_grow(reservation, additional).inspect_err(|_| {
            self.service.used.fetch_sub(additional, Ordering::Relaxed);
        })
    }

    fn reserved(&self) -> usize {
        self.own.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.own.memory_limit()
    }
}

/// What a query still held when it ended goes back to the service.
impl Drop for QueryPool {
    fn drop(&mut self) {
        self.service
            .used
            .fetch_sub(self.own.reserved(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::datafusion::execution::memory_pool::MemoryConsumer;

    #[test]
    fn queries_draw_on_the_service_and_give_back_when_they_end() {
        let service = ServiceMemory::new(3);
        let first: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(2, &service));
        let second: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(2, &service));
        let a = MemoryConsumer::new("a").register(&first);
        let b = MemoryConsumer::new("b").register(&second);
        a.try_grow(2 << 20).expect("within both");
        let own = a.try_grow(1).expect_err("past the query's own");
        assert!(!own.to_string().contains(SERVICE_MEMORY_FULL), "{own}");
        let full = b.try_grow(2 << 20).expect_err("past the service's");
        assert!(full.to_string().contains(SERVICE_MEMORY_FULL), "{full}");
        assert_eq!(service.used(), 2 << 20);
        b.try_grow(1 << 20).expect("what is left");
        drop(a);
        drop(first);
        assert_eq!(service.used(), 1 << 20);
        b.try_grow(2 << 20).expect_err("the second's own limit");
        drop(b);
        drop(second);
        assert_eq!(service.used(), 0);
    }
}
