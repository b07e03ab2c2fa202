//! Check: the README's API examples, run literally, return data.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use deploy_tests::{read, readme_commands};
use serde_json::Value as Json;

/// Whether a report answer holds data: events counted, transactions, or a
/// demographics section; other answers (the OpenAPI document) just parse.
fn has_data(url: &str, body: &Json) -> bool {
    let positive = |key: &str| {
        body.get(key)
            .and_then(Json::as_f64)
            .is_some_and(|n| n > 0.0)
    };
    if url.contains("/reports/events") {
        positive("totalEvents")
    } else if url.contains("/reports/revenue") {
        positive("transactions")
    } else if url.contains("/reports/demographics") {
        body.as_object()
            .is_some_and(|o| o.keys().any(|k| k != "from" && k != "to"))
    } else {
        body.is_object()
    }
}

/// Runs the README's "API examples" literally (sh + curl), pointed at this
/// test's ports, after the simulator's traffic: the webhook example is
/// accepted and every report example returns data, the dated one included
/// once the example event is stored.
pub(super) async fn readme_api_examples_return_data(gateway: u16, reporter: u16) {
    let since_midnight = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() % 86_400)
        .unwrap_or_default();
    if since_midnight < 600 {
        println!("SKIPPED: README examples query today's date; the traffic may be from yesterday");
        return;
    }
    let commands = readme_commands(&read("README.md"), "## API examples");
    assert!(commands.len() >= 5, "README API examples: {commands:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = commands.len();
    for cmd in commands {
        let local = cmd
            .replace("localhost:3000", &format!("127.0.0.1:{gateway}"))
            .replace("localhost:3003", &format!("127.0.0.1:{reporter}"));
        loop {
            let out = Command::new("sh")
                .args(["-c", &local])
                .output()
                .expect("sh");
            let body: Json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
            let ok = if cmd.contains("/webhook") {
                body.get("accepted").and_then(Json::as_u64) == Some(1)
            } else {
                has_data(&cmd, &body)
            };
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "README example returned no data: {cmd}\n-> {}",
                String::from_utf8_lossy(&out.stdout)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    eprintln!("prometheus_e2e: all {count} README API examples returned data");
}
