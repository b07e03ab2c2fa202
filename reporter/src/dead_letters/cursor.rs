//! The list's opaque pagination cursor: `<received_at micros>.<id>` in
//! base64url.
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::{DateTime, Utc};

/// A position in the list: the last item of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cursor {
    pub(super) received_at: DateTime<Utc>,
    pub(super) id: i64,
}

impl Cursor {
    pub(super) fn encode(self) -> String {
        let text = format!("{}.{}", self.received_at.timestamp_micros(), self.id);
        URL_SAFE_NO_PAD.encode(text)
    }

    pub(super) fn decode(value: &str) -> Result<Self, String> {
        let message = || "not a cursor returned by this endpoint".to_string();
        // Canonical base64url only: padding or stray bits are refused.
        let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| message())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| message())?;
        let (micros, id) = text.split_once('.').ok_or_else(message)?;
        let micros: i64 = micros.parse().map_err(|_| message())?;
        let id: i64 = id.parse().map_err(|_| message())?;
        let received_at = DateTime::from_timestamp_micros(micros).ok_or_else(message)?;
        Ok(Self { received_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            received_at: DateTime::from_timestamp_micros(1_704_067_200_123_456).unwrap(),
            id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        for bad in [
            "",
            "x",
            "MTIz",
            "aGVsbG9=",
            &URL_SAFE_NO_PAD.encode(b"1.x"),
            &URL_SAFE_NO_PAD.encode(b"a.1"),
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
