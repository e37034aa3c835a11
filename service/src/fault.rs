//! Whose fault an error is, and so what helps.

use std::time::Duration;

/// Whose fault an error is: the user mends the request or the configuration; a
/// service outside techmon (the log's broker, the object store, a disk) comes back,
/// so trying again after a pause helps; a fault in techmon itself needs a fix, and
/// trying again would only repeat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    User,
    External,
    Internal,
}

/// The pauses between tries after external faults: doubling from the first to a cap,
/// so that a short outage costs little and a long one does not hammer the service
/// that is down.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap,
            next: first,
        }
    }

    /// The pause before the next try.
    pub fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.cap);
        pause
    }

    /// After a success: the next fault starts from the first pause again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_start_again_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let pauses: Vec<u64> = (0..6).map(|_| backoff.pause().as_secs()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 60, 60]);
        backoff.reset();
        assert_eq!(backoff.pause(), Duration::from_secs(5));
    }
}
