//! Reading a webhook body so that slow clients cannot hold the gateway.
//!
//! A request takes its share of the in-flight budget only once its first
//! 64 KiB (or its whole body, if smaller) have arrived: a connection that
//! sends headers and then stalls costs nothing. While the gateway is reading,
//! the upload must keep `GATEWAY_MIN_BODY_RATE` bytes per second, averaged
//! over windows of [`RATE_WINDOW`]; a slower one is answered 408 and its
//! reservation released. Time spent waiting for the budget is not counted.
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::time::Instant;

/// Read before a request takes any of the in-flight budget.
pub const FIRST_BYTES: usize = 64 << 10;
/// The window the minimum body rate is averaged over.
pub const RATE_WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body exceeds the {0}-byte limit")]
    TooLarge(usize),
    #[error("upload slower than GATEWAY_MIN_BODY_RATE ({0} bytes/s over {window} s)", window = RATE_WINDOW.as_secs())]
    TooSlow(u64),
    #[error("cannot read body: {0}")]
    Read(#[source] axum::Error),
}

/// A body being read, with its rate measured over the time spent reading.
pub struct Reader {
    body: Body,
    buf: BytesMut,
    limit: usize,
    /// Bytes per second; 0 disables the check.
    min_rate: u64,
    window_start: Instant,
    window_bytes: u64,
    ended: bool,
    expected: Option<usize>,
}

impl Reader {
    /// `expected`: the declared length, if any (only a capacity hint).
    pub fn new(body: Body, limit: usize, min_rate: u64, expected: Option<usize>) -> Self {
        Self {
            body,
            buf: BytesMut::with_capacity(expected.unwrap_or(0).min(limit).min(FIRST_BYTES)),
            limit,
            min_rate,
            window_start: Instant::now(),
            window_bytes: 0,
            ended: false,
            expected,
        }
    }

    /// Reads until at least `n` bytes are held or the body has ended.
    pub async fn fill(&mut self, n: usize) -> Result<(), BodyError> {
        while !self.ended && self.buf.len() < n {
            self.next_frame().await?;
        }
        Ok(())
    }

    /// Starts a new rate window: the time since the last read (waiting for
    /// the in-flight budget) is not the client's.
    pub fn resume(&mut self) {
        self.window_start = Instant::now();
        self.window_bytes = 0;
    }

    /// Reads the rest of the body.
    pub async fn finish(mut self) -> Result<Bytes, BodyError> {
        // Now that the budget is taken, room for the declared rest at once.
        if let Some(n) = self.expected {
            self.buf
                .reserve(n.min(self.limit).saturating_sub(self.buf.len()));
        }
        self.fill(usize::MAX).await?;
        Ok(self.buf.freeze())
    }

    async fn next_frame(&mut self) -> Result<(), BodyError> {
        let frame = if self.min_rate == 0 {
            Some(self.body.frame().await)
        } else {
            let left = RATE_WINDOW.saturating_sub(self.window_start.elapsed());
            tokio::time::timeout(left, self.body.frame()).await.ok()
        };
        match frame {
            // Timed out: the window is over, judged below.
            None => {}
            Some(None) => self.ended = true,
            Some(Some(Err(e))) => return Err(BodyError::Read(e)),
            Some(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if self.buf.len() + data.len() > self.limit {
                        return Err(BodyError::TooLarge(self.limit));
                    }
                    self.window_bytes += data.len() as u64;
                    self.buf.extend_from_slice(&data);
                }
            }
        }
        if self.min_rate > 0 && !self.ended && self.window_start.elapsed() >= RATE_WINDOW {
            if self.window_bytes < self.min_rate * RATE_WINDOW.as_secs() {
                return Err(BodyError::TooSlow(self.min_rate));
            }
            self.resume();
        }
        Ok(())
    }
}

/// Reads and discards up to `max` bytes of `body`, so a client refused
/// before its upload gets the answer rather than a connection reset halfway
/// through.
pub async fn discard(mut body: Body, max: usize) {
    let mut seen = 0usize;
    while seen <= max {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}
