//! Names shared by every service.

/// True when `s` is a valid source name, `^[a-z0-9_-]{1,32}$`: the rule a
/// plugin's declared source, `COLLECTOR_TYPE` and the reports' `source`
/// parameter all follow.
pub fn is_valid_source_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
