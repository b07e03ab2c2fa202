//! The Dockerfile: one image for every role, not run as root.

use std::collections::BTreeSet;

use deploy_tests::{read, repo_root};

#[test]
fn dockerfile_builds_one_image_for_every_role() {
    let df = read("Dockerfile");
    let must = [
        "rust:1.95-bookworm",
        "rustup target add wasm32-wasip2",
        "cargo-chef",
        "scripts/build-plugins.sh",
        "debian:bookworm-slim",
        "/plugins",
        "/usr/local/bin",
        "HEALTHCHECK",
        "curl",
        "events-host",
        "events-reporter",
        "events-publisher",
    ];
    for m in must {
        assert!(df.contains(m), "Dockerfile lacks {m:?}");
    }
    let users: Vec<&str> = df
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .collect();
    let last_user = users.last().expect("Dockerfile sets USER").trim();
    assert!(
        !last_user.starts_with("root") && !last_user.starts_with('0'),
        "runtime user must not be root: {last_user}"
    );
    let ignore = read(".dockerignore");
    let lines: BTreeSet<&str> = ignore.lines().map(str::trim).collect();
    for entry in [".git", "target", "dist"] {
        assert!(lines.contains(entry), ".dockerignore lacks {entry}");
    }
    if !repo_root().join("scripts/build-plugins.sh").is_file() {
        println!("WARNING: scripts/build-plugins.sh is missing; the image build needs it");
    }
}
