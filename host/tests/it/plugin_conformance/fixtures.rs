//! `events-host plugin test`: the fixture sets shipped with the plugins pass
//! and cover every rule; failing and malformed fixtures are reported.

use crate::support::plugins::{facebook_wasm, fb_top, test_wasm, tiktok_wasm, with};
use serde_json::{json, Value};

/// Runs `events-host plugin test COMPONENT FIXTURES...`: (exit code, stdout, stderr).
fn plugin_test(
    component: &std::path::Path,
    fixtures: &[&std::path::Path],
) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_events-host"))
        .args(["plugin", "test"])
        .arg(component)
        .args(fixtures)
        .output()
        .expect("run events-host plugin test");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8 output");
    (
        out.status.code().expect("exit code"),
        text(out.stdout),
        text(out.stderr),
    )
}

fn fixtures_of(plugin: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/{plugin}/fixtures"))
}

/// Every shipped fixture passes; the summary counts them all.
fn shipped_fixtures_pass(component: &std::path::Path, plugin: &str, at_least: usize) {
    let dir = fixtures_of(plugin);
    let count = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert!(count >= at_least, "{plugin}: {count} fixtures");
    let (code, out, err) = plugin_test(component, &[&dir]);
    assert_eq!(code, 0, "{plugin}:\n{out}\n{err}");
    assert!(
        out.contains(&format!("{count} fixtures: {count} passed, 0 failed")),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok    ")).count(),
        count
    );
}

#[test]
fn facebook_fixtures_pass() {
    shipped_fixtures_pass(&facebook_wasm(), "facebook", 100);
}

#[test]
fn tiktok_fixtures_pass() {
    shipped_fixtures_pass(&tiktok_wasm(), "tiktok", 100);
}

#[test]
fn template_fixtures_pass() {
    shipped_fixtures_pass(&test_wasm("template"), "template", 5);
}

/// The shipped fixture sets name every field the validation rules of
/// plugins/README.md cover, accepted and rejected.
#[test]
fn fixture_sets_cover_every_field() {
    #[rustfmt::skip]
    let rules: &[(&str, &[&str])] = &[
        ("facebook", &[
            "data.user.userId", "data.user.name", "data.user.age", "data.user.gender",
            "data.user.location", "data.user.location.country", "data.user.location.city",
            "data.engagement.actionTime", "data.engagement.referrer", "data.engagement.videoId",
            "data.engagement.adId", "data.engagement.campaignId", "data.engagement.clickPosition",
            "data.engagement.device", "data.engagement.browser", "data.engagement.purchaseAmount",
        ]),
        ("tiktok", &[
            "data.user.userId", "data.user.username", "data.user.followers",
            "data.engagement.watchTime", "data.engagement.percentageWatched",
            "data.engagement.device", "data.engagement.country", "data.engagement.videoId",
            "data.engagement.actionTime", "data.engagement.profileId",
            "data.engagement.purchasedItem", "data.engagement.purchaseAmount",
        ]),
    ];
    let envelope = [
        "$",
        "eventId",
        "timestamp",
        "source",
        "funnelStage",
        "eventType",
        "data",
        "data.user",
        "data.engagement",
    ];
    for (plugin, fields) in rules {
        let mut rejected = std::collections::BTreeSet::new();
        let mut accepted_types = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(fixtures_of(plugin)).unwrap() {
            let f: Value =
                serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap())
                    .unwrap();
            match f["expect"]["verdict"].as_str() {
                Some("rejected") => rejected.extend(
                    f["expect"]["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_owned()),
                ),
                Some("accepted") => {
                    if let Some(t) = f["expect"]["fields"]["event_type"].as_str() {
                        accepted_types.insert(t.to_owned());
                    }
                }
                other => panic!("verdict {other:?}"),
            }
        }
        for field in envelope.iter().chain(fields.iter()) {
            assert!(
                rejected.contains(*field),
                "{plugin}: no fixture rejects {field}"
            );
        }
        let types: &[&str] = if *plugin == "facebook" {
            &[
                "ad.view",
                "page.like",
                "comment",
                "video.view",
                "ad.click",
                "form.submission",
                "checkout.complete",
            ]
        } else {
            &[
                "video.view",
                "like",
                "share",
                "comment",
                "profile.visit",
                "purchase",
                "follow",
            ]
        };
        for t in types {
            assert!(
                accepted_types.contains(*t),
                "{plugin}: no accepted fixture of {t}"
            );
        }
    }
}

/// Wrong expectations: exit 1, a FAIL line per fixture and a diff naming the field.
#[test]
fn failing_fixtures_print_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, doc: Value| {
        std::fs::write(dir.path().join(name), doc.to_string()).unwrap();
    };
    write(
        "a-wrong-age.json",
        json!({"name": "age is 30", "input": fb_top("ad.view"),
               "expect": {"verdict": "accepted", "fields": {"age": 31, "revenue": null}}}),
    );
    write(
        "b-wrong-rejection.json",
        json!({"input": with(fb_top("ad.view"), "/data/user/age", Some(json!(151))),
               "expect": {"verdict": "rejected", "fields": ["data.user.gender"]}}),
    );
    write(
        "c-not-rejected.json",
        json!({"input": fb_top("ad.view"),
               "expect": {"verdict": "rejected", "fields": ["eventId"]}}),
    );
    write(
        "d-passes.json",
        json!({"input": fb_top("ad.view"), "expect": {"verdict": "accepted"}}),
    );
    let (code, out, _) = plugin_test(&facebook_wasm(), &[dir.path()]);
    assert_eq!(code, 1, "{out}");
    for want in [
        "FAIL  ",
        "a-wrong-age.json (age is 30)",
        "age: expected 31, got 30",
        "missing rejection field: data.user.gender",
        "extra rejection field: data.user.age: must be between 0 and 150, got 151",
        "expected rejected on [eventId], got accepted:",
        "ok    ",
        "4 fixtures: 1 passed, 3 failed",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    assert!(!out.contains("revenue: expected"), "{out}");
}

/// A malformed fixture is a usage error (exit 2) naming the file; nothing runs.
#[test]
fn malformed_fixture_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = json!({"input": fb_top("ad.view"), "expect": {"verdict": "accepted"}});
    std::fs::write(dir.path().join("good.json"), good.to_string()).unwrap();
    for (file, text, why) in [
        ("broken.json", "{\"input\": {", "bad fixture"),
        (
            "verdict.json",
            r#"{"input": {}, "expect": {"verdict": "maybe"}}"#,
            "unknown variant",
        ),
        (
            "field.json",
            r#"{"input": {}, "expect": {"verdict": "accepted", "fields": {"ages": 3}}}"#,
            "unknown normalized field \"ages\"",
        ),
        (
            "both.json",
            r#"{"input": {}, "raw": "{}", "expect": {"verdict": "accepted"}}"#,
            "exactly one of",
        ),
    ] {
        let bad = dir.path().join(file);
        std::fs::write(&bad, text).unwrap();
        let (code, out, err) = plugin_test(&facebook_wasm(), &[dir.path()]);
        assert_eq!(code, 2, "{file}: {out}\n{err}");
        assert!(err.contains(&bad.display().to_string()), "{file}: {err}");
        assert!(err.contains(why), "{file}: {why:?} not in {err}");
        assert!(!out.contains("ok    "), "{out}");
        std::fs::remove_file(&bad).unwrap();
    }
    // an empty directory and a missing component are errors too
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = plugin_test(&facebook_wasm(), &[empty.path()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no fixtures"), "{err}");
    let (code, _, err) = plugin_test(&dir.path().join("nope.wasm"), &[dir.path()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.wasm"), "{err}");
}
