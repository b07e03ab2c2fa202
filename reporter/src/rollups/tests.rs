use super::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn w(from: Option<&str>, to: Option<&str>) -> Window {
    Window {
        from: from.map(t),
        to: to.map(t),
    }
}

/// Checks that `pieces` cover `window` exactly, without overlap, and that
/// every rollup piece is whole aligned buckets.
fn assert_partition(window: Window, widths: &[i64], pieces: &[Piece]) {
    let mut cursor = window.from;
    for p in pieces {
        let span = match *p {
            Piece::Rollup { width, span } => {
                assert!(widths.contains(&width));
                for b in [span.from, span.to].into_iter().flatten() {
                    assert_eq!(b.timestamp_micros() % (width * 1_000_000), 0, "{p:?}");
                }
                span
            }
            Piece::Raw(span) => span,
        };
        assert_eq!(
            span.from, cursor,
            "gap or overlap before {p:?} in {pieces:?}"
        );
        assert!(!span.is_empty(), "{p:?}");
        cursor = span.to;
    }
    if pieces.is_empty() {
        assert!(window.is_empty());
    } else {
        assert_eq!(cursor, window.to, "{pieces:?}");
    }
}

#[test]
fn a_ragged_window_uses_days_hours_minutes_and_raw_edges() {
    let window = w(Some("2024-01-01T10:17:23.5Z"), Some("2024-01-04T02:03:04Z"));
    let pieces = plan(window, EVENTS.widths);
    assert_partition(window, EVENTS.widths, &pieces);
    assert_eq!(
        pieces,
        vec![
            Piece::Raw(w(
                Some("2024-01-01T10:17:23.5Z"),
                Some("2024-01-01T10:18:00Z")
            )),
            Piece::Rollup {
                width: 60,
                span: w(Some("2024-01-01T10:18:00Z"), Some("2024-01-01T11:00:00Z"))
            },
            Piece::Rollup {
                width: 3600,
                span: w(Some("2024-01-01T11:00:00Z"), Some("2024-01-02T00:00:00Z"))
            },
            Piece::Rollup {
                width: 86400,
                span: w(Some("2024-01-02T00:00:00Z"), Some("2024-01-04T00:00:00Z"))
            },
            Piece::Rollup {
                width: 3600,
                span: w(Some("2024-01-04T00:00:00Z"), Some("2024-01-04T02:00:00Z"))
            },
            Piece::Rollup {
                width: 60,
                span: w(Some("2024-01-04T02:00:00Z"), Some("2024-01-04T02:03:00Z"))
            },
            Piece::Raw(w(
                Some("2024-01-04T02:03:00Z"),
                Some("2024-01-04T02:03:04Z")
            )),
        ]
    );
}

#[test]
fn open_and_empty_windows() {
    assert_eq!(
        plan(Window::ALL, EVENTS.widths),
        vec![Piece::Rollup {
            width: 86400,
            span: Window::ALL
        }]
    );
    let window = w(None, Some("2024-01-01T10:00:30Z"));
    assert_partition(window, EVENTS.widths, &plan(window, EVENTS.widths));
    let window = w(Some("2024-01-01T10:00:30Z"), None);
    assert_partition(window, EVENTS.widths, &plan(window, EVENTS.widths));
    assert!(plan(
        w(Some("2024-01-01T10:00:30Z"), Some("2024-01-01T10:00:30Z")),
        EVENTS.widths
    )
    .is_empty());
    // Within one minute: raw only.
    let window = w(Some("2024-01-01T10:00:01Z"), Some("2024-01-01T10:00:59Z"));
    assert_eq!(plan(window, EVENTS.widths), vec![Piece::Raw(window)]);
}

#[test]
fn timelines_only_use_widths_dividing_the_granularity() {
    assert_eq!(EVENTS.widths_for(Some(60)), vec![60]);
    assert_eq!(EVENTS.widths_for(Some(3600)), vec![3600, 60]);
    assert_eq!(CAMPAIGNS.widths_for(Some(60)), Vec::<i64>::new());
    assert_eq!(CAMPAIGNS.widths_for(Some(3600)), vec![3600, 600]);
    assert_eq!(DEMOGRAPHICS.widths_for(None), vec![86400, 3600, 600]);
}

#[test]
fn random_windows_are_partitioned_exactly() {
    let mut rng = StdRng::seed_from_u64(42);
    let base = t("2024-01-01T00:00:00Z").timestamp_micros();
    let bound = |rng: &mut StdRng| -> Option<DateTime<Utc>> {
        if rng.gen_bool(0.1) {
            return None;
        }
        let mut us =
            base + rng.gen_range(-5i64..40) * 86_400_000_000 + rng.gen_range(0..86_400_000_000);
        // Often aligned to some width, where edge cases live.
        if rng.gen_bool(0.5) {
            let width = [60, 600, 3600, 86400][rng.gen_range(0..4)] * 1_000_000;
            us = us.div_euclid(width) * width;
        }
        DateTime::from_timestamp_micros(us)
    };
    for _ in 0..20_000 {
        let (a, b) = (bound(&mut rng), bound(&mut rng));
        let window = match (a, b) {
            (Some(x), Some(y)) if x > y => Window {
                from: Some(y),
                to: Some(x),
            },
            _ => Window { from: a, to: b },
        };
        for family in [EVENTS, CAMPAIGNS] {
            for g in [None, Some(60), Some(3600), Some(86400)] {
                let widths = family.widths_for(g);
                assert_partition(window, &widths, &plan(window, &widths));
            }
        }
    }
}
