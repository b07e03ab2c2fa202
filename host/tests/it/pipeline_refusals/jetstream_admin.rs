//! `events-host jetstream setup|info|delete`, through the library and the
//! CLI: created, updated, reported and deleted (never without `--yes`), with
//! its exit codes. Against the shared NATS with stream names and a subject
//! prefix of their own.

use crate::support::pipeline::{Streams, SHARED_NATS};
use async_nats::jetstream::{
    consumer,
    stream::{DiscardPolicy, RetentionPolicy},
};
use events_common::config::Vars;
use events_host::{
    config::{HostConfig, NatsConfig, Role},
    jetstream_admin::{self, render_info, JetstreamCommand, SetupChange, StreamReport},
};
use serde_json::Value;
use std::{collections::HashMap, time::Duration};

fn admin_vars(s: &Streams, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("NATS_URL", s.nats_url.as_str()),
        ("JETSTREAM_STREAM", &s.stream),
        ("JETSTREAM_DLQ_STREAM", &s.dlq),
        ("JETSTREAM_SUBJECT_PREFIX", &s.prefix),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    vars
}

fn admin_config(vars: &HashMap<String, String>) -> NatsConfig {
    HostConfig::from_vars(Role::Gateway, &Vars::new(vars))
        .expect("valid configuration")
        .nats
}

fn changes(done: &[(StreamReport, SetupChange)]) -> Vec<SetupChange> {
    done.iter().map(|(_, c)| *c).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_setup_creates_updates_reports_and_deletes_the_streams() {
    let s = Streams::new(SHARED_NATS, "admin_lib");
    let cfg = admin_config(&admin_vars(&s, &[("JETSTREAM_MAX_BYTES", "3000000")]));
    let js = jetstream_admin::connect(&cfg).await.unwrap();
    let before = jetstream_admin::info(&js, &cfg).await.unwrap();
    assert!(before.iter().all(|r| !r.exists), "{before:?}");
    assert!(render_info(&before).contains(&format!("stream {} (events): not created", s.stream)));

    // setup: both streams, with the gateway's settings.
    let done = jetstream_admin::setup(&js, &cfg).await.unwrap();
    assert_eq!(changes(&done), [SetupChange::Created; 2]);
    let raw = s.js().await;
    for (name, subject) in [
        (&s.stream, &s.prefix),
        (&s.dlq, &format!("{}_dlq", s.prefix)),
    ] {
        let mut stream = raw.get_stream(name).await.unwrap();
        let c = stream.info().await.unwrap().config.clone();
        assert_eq!(c.subjects, [format!("{subject}.>")]);
        assert_eq!(c.max_bytes, 3_000_000);
        assert_eq!(c.duplicate_window, Duration::from_secs(120));
        assert_eq!(c.retention, RetentionPolicy::WorkQueue);
        assert_eq!(c.discard, DiscardPolicy::New);
    }

    // Idempotent; a changed setting is applied.
    let again = jetstream_admin::setup(&js, &cfg).await.unwrap();
    assert_eq!(changes(&again), [SetupChange::Unchanged; 2]);
    let bigger = admin_config(&admin_vars(&s, &[("JETSTREAM_MAX_BYTES", "4000000")]));
    let updated = jetstream_admin::setup(&js, &bigger).await.unwrap();
    assert_eq!(changes(&updated), [SetupChange::Updated; 2]);

    // info: messages, limits and consumers.
    raw.publish(format!("{}.facebook.batch", s.prefix), "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    raw.get_stream(&s.stream)
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("collector-facebook".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let reports = jetstream_admin::info(&js, &bigger).await.unwrap();
    let events = reports[0].state.as_ref().expect("events stream reported");
    assert_eq!((events.messages, events.max_bytes), (1, 4_000_000));
    assert!(events.fill_percent.is_some_and(|p| p > 0.0), "{events:?}");
    assert_eq!(events.consumers.len(), 1);
    assert_eq!(events.consumers[0].name, "collector-facebook");
    assert_eq!(events.consumers[0].pending, 1);
    assert!(reports[1].state.as_ref().is_some_and(|d| d.messages == 0));
    let text = render_info(&reports);
    for line in ["max bytes         4000000", "collector-facebook  pending 1"] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }

    // delete: refused without --yes, then both streams go; missing is fine.
    let refused = jetstream_admin::execute_on(&js, &cfg, &JetstreamCommand::Delete { yes: false })
        .await
        .unwrap();
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused
        .stdout
        .contains(&format!("would delete stream {}", s.stream)));
    assert!(jetstream_admin::info(&js, &cfg)
        .await
        .unwrap()
        .iter()
        .all(|r| r.exists));
    let deleted = jetstream_admin::delete(&js, &cfg).await.unwrap();
    assert_eq!(deleted, [(s.stream.clone(), true), (s.dlq.clone(), true)]);
    assert!(jetstream_admin::info(&js, &cfg)
        .await
        .unwrap()
        .iter()
        .all(|r| !r.exists));
    let none = jetstream_admin::delete(&js, &cfg).await.unwrap();
    assert!(none.iter().all(|(_, existed)| !existed), "{none:?}");
}

/// Runs `events-host jetstream <args>` with only `vars` in its environment.
fn jetstream_cli(vars: &HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_events-host"))
        .arg("jetstream")
        .args(args)
        .env_clear()
        .envs(vars)
        .output()
        .expect("run events-host");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_cli_exit_codes() {
    let s = Streams::new(SHARED_NATS, "admin_cli");
    let vars = admin_vars(&s, &[]);
    let (code, out, _) = jetstream_cli(&vars, &["info", "--json"]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(json["streams"][0]["name"], s.stream.as_str());
    assert_eq!(json["streams"][0]["exists"], false);

    let (code, out, err) = jetstream_cli(&vars, &["setup"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("stream {} (events): created", s.stream)),
        "{out}"
    );
    let (code, out, err) = jetstream_cli(&vars, &["delete"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(s.backlog().await.is_some(), "both streams are still there");
    let (code, out, _) = jetstream_cli(&vars, &["delete", "--yes"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("stream {}: deleted", s.dlq)), "{out}");
    assert!(s.backlog().await.is_none(), "the streams are gone");

    // Errors: one line; 2 for the configuration, 1 at run time.
    let bad = admin_vars(&s, &[("JETSTREAM_MAX_BYTES", "5")]);
    let (code, _, err) = jetstream_cli(&bad, &["info"]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");
    assert!(err.contains("JETSTREAM_MAX_BYTES"), "{err}");
    let down = format!("nats://127.0.0.1:{}", crate::support::pipeline::free_port());
    let (code, _, err) = jetstream_cli(&admin_vars(&s, &[("NATS_URL", &down)]), &["setup"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("cannot connect to NATS"), "{err}");
}
