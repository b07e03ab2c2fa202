//! The slice framing between gateway and collectors: one JetStream message
//! carries a run of one source's events, each as its exact bytes.
//!
//! Payload: for each event, its length as a 4-byte big-endian integer, then
//! its bytes. The collector splits a slice by these lengths alone — the
//! events are never re-parsed on the way. Headers: [`COUNT_HEADER`] (the
//! number of events) and the correlation id. A message without
//! [`COUNT_HEADER`] was written by a version that published one event per
//! message; its payload is that one event.
use bytes::Bytes;
use std::ops::Range;

/// Header carrying the number of events in a slice.
pub const COUNT_HEADER: &str = "Events-Count";
/// Framing bytes added per event.
pub const FRAME_OVERHEAD: usize = 4;

/// Why a slice cannot be split into its events.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("the {COUNT_HEADER} header {0:?} is not a number")]
    BadCount(String),
    #[error("record {index} is cut short: it declares {declared} bytes, {left} are left")]
    Truncated {
        index: usize,
        declared: usize,
        left: usize,
    },
    #[error("the slice holds {found} records, its {COUNT_HEADER} header says {declared}")]
    CountMismatch { declared: usize, found: usize },
}

/// Builds one slice's payload.
#[derive(Debug, Default)]
pub struct SliceBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl SliceBuilder {
    /// Bytes the payload would have with `event` added.
    pub fn len_with(&self, event: &[u8]) -> usize {
        self.buf.len() + FRAME_OVERHEAD + event.len()
    }

    pub fn push(&mut self, event: &[u8]) {
        // Events are bounded far below 4 GiB by the body limit.
        let len = u32::try_from(event.len()).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(event);
        self.count += 1;
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The payload and its event count.
    pub fn finish(self) -> (Bytes, usize) {
        (Bytes::from(self.buf), self.count)
    }
}

/// Splits a message into the byte ranges of its events. `count` is the
/// [`COUNT_HEADER`] value; `None` means a one-event message of the previous
/// format (the whole payload is the event).
pub fn split(payload: &[u8], count: Option<&str>) -> Result<Vec<Range<usize>>, FramingError> {
    let Some(count) = count else {
        return Ok(std::iter::once(0..payload.len()).collect());
    };
    let declared: usize = count
        .trim()
        .parse()
        .map_err(|_| FramingError::BadCount(count.chars().take(32).collect()))?;
    // Never trust the header for an allocation: each record takes ≥ 4 bytes.
    let mut ranges = Vec::with_capacity(declared.min(payload.len() / FRAME_OVERHEAD));
    let mut at = 0;
    while at < payload.len() {
        let left = payload.len() - at;
        let Some(head) = payload.get(at..at + FRAME_OVERHEAD) else {
            return Err(FramingError::Truncated {
                index: ranges.len(),
                declared: FRAME_OVERHEAD,
                left,
            });
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let start = at + FRAME_OVERHEAD;
        if len > payload.len() - start {
            return Err(FramingError::Truncated {
                index: ranges.len(),
                declared: len,
                left: payload.len() - start,
            });
        }
        ranges.push(start..start + len);
        at = start + len;
    }
    if ranges.len() != declared {
        return Err(FramingError::CountMismatch {
            declared,
            found: ranges.len(),
        });
    }
    Ok(ranges)
}

/// `Nats-Msg-Id` of a slice: the source plus a hash of the exact payload, so
/// a gateway retry or an identical re-sent request is dropped by JetStream's
/// duplicate window. Semantic dedup (by event id) stays in PostgreSQL.
pub fn slice_id(source: &str, payload: &[u8]) -> String {
    let hash = xxhash_rust::xxh3::xxh3_128(payload);
    format!("{source}:{hash:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(events: &[&[u8]]) -> (Bytes, usize) {
        let mut b = SliceBuilder::default();
        for e in events {
            assert_eq!(b.len_with(e), b.buf.len() + 4 + e.len());
            b.push(e);
        }
        b.finish()
    }

    #[test]
    fn round_trips_exact_bytes() {
        let events: [&[u8]; 4] = [
            br#"{"a":1}"#,
            b"",
            b" {\"x\" : [1,\n2]} ",
            "é\u{0}".as_bytes(),
        ];
        let (payload, n) = slice(&events);
        assert_eq!(n, 4);
        let ranges = split(&payload, Some("4")).unwrap();
        let got: Vec<&[u8]> = ranges.iter().map(|r| &payload[r.clone()]).collect();
        assert_eq!(got, events);
    }

    #[test]
    fn old_format_is_one_event() {
        let whole = split(b"{\"a\":1}", None).unwrap();
        assert_eq!((whole.len(), whole[0].clone()), (1, 0..7));
    }

    #[test]
    fn corrupt_framing_is_an_error_never_a_panic() {
        let (payload, _) = slice(&[b"abc", b"defg"]);
        assert!(matches!(
            split(&payload, Some("3")),
            Err(FramingError::CountMismatch { .. })
        ));
        assert!(matches!(
            split(&payload, Some("x")),
            Err(FramingError::BadCount(_))
        ));
        for cut in 0..payload.len() {
            let r = split(&payload[..cut], Some("2"));
            assert!(r.is_err(), "cut at {cut}");
        }
        assert!(matches!(
            split(&[0xff, 0xff, 0xff, 0xff, 1], Some("1")),
            Err(FramingError::Truncated { .. })
        ));
        // A huge declared count allocates nothing up front.
        assert!(split(b"", Some("18446744073709551615")).is_err());
        assert!(split(b"", Some("0")).unwrap().is_empty());
    }

    #[test]
    fn slice_ids_depend_on_source_and_bytes() {
        let a = slice_id("facebook", b"xyz");
        assert_eq!(a, slice_id("facebook", b"xyz"));
        assert_ne!(a, slice_id("tiktok", b"xyz"));
        assert_ne!(a, slice_id("facebook", b"xyz "));
        assert!(a.starts_with("facebook:"));
    }
}
