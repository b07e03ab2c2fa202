//! The README's `docker-compose … up` commands start the pipeline and one
//! load source.

use std::collections::BTreeSet;

use deploy_tests::{get, parse_yaml, read, strings};

use super::{compose_config, services, COMPOSE, SERVICES};

/// Every `docker-compose … up` command in the README starts the pipeline and
/// a load source. docker-compose 1.29's `config --services` ignores
/// profiles, so compose's rule is applied here to the merged config: a
/// service with `profiles:` starts only when one of them is passed.
#[test]
fn readme_compose_commands_start_the_pipeline_and_a_load_source() {
    let readme = read("README.md");
    // Lines that are (or quote) a compose `up` command; comments dropped.
    let lines: Vec<String> = readme
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").replace('`', ""))
        .filter(|l| l.trim_start().starts_with("docker-compose") && l.contains("up -d"))
        .collect();
    assert!(lines.len() >= 2, "README compose commands: {lines:?}");
    for cmd in lines {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let (mut files, mut profiles) = (Vec::new(), BTreeSet::new());
        for w in words.windows(2) {
            match w[0] {
                "-f" => files.push(w[1]),
                "--profile" => {
                    profiles.insert(w[1].to_string());
                }
                _ => {}
            }
        }
        if files.is_empty() {
            files.push(COMPOSE);
        }
        let Some((ok, out, err)) = compose_config(&files, &[], false) else {
            println!("SKIPPED: docker-compose not installed; {cmd} not checked");
            return;
        };
        assert!(ok, "{cmd}: docker-compose config failed: {err}");
        let merged = parse_yaml(&out, "merged compose config");
        let started: BTreeSet<String> = services(&merged)
            .into_iter()
            .filter(|(_, s)| {
                let own = strings(get(s, "profiles"));
                own.is_empty() || own.iter().any(|p| profiles.contains(p))
            })
            .map(|(name, _)| name)
            .collect();
        let load_sources = ["publisher", "simulator"];
        for core in SERVICES.iter().filter(|s| !load_sources.contains(*s)) {
            assert!(
                started.contains(*core),
                "{cmd}: does not start {core}: {started:?}"
            );
        }
        let sources: Vec<_> = load_sources
            .into_iter()
            .filter(|s| started.contains(*s))
            .collect();
        assert_eq!(sources.len(), 1, "{cmd}: load sources started: {sources:?}");
    }
}
