//! Exponential backoff for retry loops that must end promptly on shutdown.
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waits that double from a first one up to [`Backoff::MAX`].
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The longest wait: a retry loop still notices recovery within it.
    pub const MAX: Duration = Duration::from_secs(5);

    pub fn new(first: Duration) -> Self {
        Self { next: first }
    }

    /// The wait the next [`Backoff::sleep`] takes.
    pub fn current(&self) -> Duration {
        self.next
    }

    /// Sleeps the current wait, then doubles it. `false` at once when
    /// `stop` fires first: the caller gives up.
    pub async fn sleep(&mut self, stop: &CancellationToken) -> bool {
        let wait = self.advance();
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// Like [`Backoff::sleep`], for loops bounded by a deadline instead of a
    /// stop token (startup).
    pub async fn sleep_uninterrupted(&mut self) {
        tokio::time::sleep(self.advance()).await;
    }

    fn advance(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let waits: Vec<u64> = (0..5).map(|_| b.advance().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
    }

    #[tokio::test]
    async fn sleeps_and_stops_at_once() {
        let mut b = Backoff::new(Duration::from_millis(5));
        let stop = CancellationToken::new();
        assert!(b.sleep(&stop).await);
        assert_eq!(b.current(), Duration::from_millis(10));
        stop.cancel();
        let mut long = Backoff::new(Duration::from_secs(3600));
        assert!(!long.sleep(&stop).await);
    }
}
