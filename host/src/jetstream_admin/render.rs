//! What the `jetstream` subcommands print: the human-readable text and
//! `info --json`.
use super::{ConsumerReport, SetupChange, StreamReport, StreamState};
use serde::Serialize;
use std::fmt::Write as _;

/// What `setup` changed, then the streams as `info` shows them.
pub(super) fn render_setup(done: &[(StreamReport, SetupChange)]) -> String {
    let mut out = String::new();
    for (r, change) in done {
        let change = match change {
            SetupChange::Created => "created",
            SetupChange::Updated => "updated",
            SetupChange::Unchanged => "unchanged",
        };
        writeln!(out, "stream {} ({}): {change}", r.name, r.kind.label()).ok();
    }
    out.push('\n');
    out + &render_info(&done.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>())
}

/// The human-readable `info`.
pub fn render_info(reports: &[StreamReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let Some(s) = &r.state else {
            writeln!(out, "stream {} ({}): not created", r.name, r.kind.label()).ok();
            continue;
        };
        writeln!(out, "stream {} ({})", r.name, r.kind.label()).ok();
        for (field, value) in state_lines(s) {
            writeln!(out, "  {field:<17} {value}").ok();
        }
        for c in &s.consumers {
            writeln!(
                out,
                "    {}  pending {}  ack pending {}",
                c.name, c.pending, c.ack_pending
            )
            .ok();
        }
    }
    out
}

fn state_lines(s: &StreamState) -> [(&'static str, String); 9] {
    [
        ("subjects", s.subjects.join(", ")),
        ("messages", s.messages.to_string()),
        ("bytes", format!("{} ({})", s.bytes, human_bytes(s.bytes))),
        ("max bytes", max_bytes(s.max_bytes)),
        (
            "fill",
            s.fill_percent.map_or("-".into(), |p| format!("{p:.2} %")),
        ),
        ("duplicate window", format!("{} s", s.duplicate_window_secs)),
        ("max age", max_age(s.max_age_secs)),
        ("replicas", s.replicas.to_string()),
        ("consumers", s.consumers.len().to_string()),
    ]
}

/// `info --json`: one object, `{"streams": [...]}`.
pub fn render_json(reports: &[StreamReport]) -> String {
    #[derive(Serialize)]
    struct Info<'a> {
        streams: &'a [StreamReport],
    }
    let json = serde_json::to_string(&Info { streams: reports }).unwrap_or_default();
    json + "\n"
}

/// What `delete --yes` did to each stream.
pub(super) fn render_deleted(deleted: &[(String, bool)]) -> String {
    let mut out = String::new();
    for (name, existed) in deleted {
        let what = if *existed {
            "deleted"
        } else {
            "not created, nothing to delete"
        };
        writeln!(out, "stream {name}: {what}").ok();
    }
    out
}

pub(super) fn consumer_names(consumers: &[ConsumerReport]) -> String {
    if consumers.is_empty() {
        return "none".into();
    }
    let names: Vec<&str> = consumers.iter().map(|c| c.name.as_str()).collect();
    names.join(", ")
}

fn max_bytes(max: i64) -> String {
    if max < 0 {
        "unlimited".into()
    } else {
        format!("{max} ({})", human_bytes(max as u64))
    }
}

fn max_age(secs: u64) -> String {
    if secs == 0 {
        "unlimited".into()
    } else {
        format!("{secs} s")
    }
}

pub(super) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream_admin::StreamKind;

    #[test]
    fn sizes_and_limits_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(8 << 30), "8.0 GiB");
        assert_eq!(max_bytes(-1), "unlimited");
        assert_eq!(max_age(0), "unlimited");
    }

    #[test]
    fn a_missing_stream_reads_not_created() {
        let r = StreamReport {
            name: "X".into(),
            kind: StreamKind::DeadLetters,
            exists: false,
            state: None,
        };
        assert_eq!(
            render_info(std::slice::from_ref(&r)),
            "stream X (dead letters): not created\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render_json(&[r])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"streams": [{"name": "X", "kind": "dead_letters", "exists": false}]})
        );
    }
}
