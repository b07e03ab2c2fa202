//! Published ports: the infrastructure's, and the README's ports table.

use std::collections::BTreeSet;

use deploy_tests::{all_ports, repo_root};

use super::{compose, env_of, service, services, APP_PORTS};

#[test]
fn infrastructure_ports() {
    let c = compose();
    let all = services(&c);
    let want = [
        ("prometheus", 9090u16),
        ("grafana", 3004),
        ("postgres", 5432),
        ("nats", 4222),
    ];
    for (name, port) in want {
        let svc = service(&all, name);
        let ports = all_ports(svc, &env_of(&all, name));
        assert!(
            ports.contains(&port),
            "{name}: port {port} not in {ports:?}"
        );
    }
}

/// The README's ports table (`| service | port | ... |`, service names as in
/// docker-compose.yml) must agree with docker-compose.yml.
#[test]
fn ports_match_the_readme_table() {
    let readme = repo_root().join("README.md");
    if !readme.is_file() {
        println!("SKIPPED: README.md not found; ports table not checked");
        return;
    }
    let text = std::fs::read_to_string(&readme).expect("read README.md");
    let c = compose();
    let all = services(&c);
    let names: BTreeSet<String> = all.keys().cloned().collect();
    let rows = deploy_tests::readme_ports(&text, &names);
    assert!(
        !rows.is_empty(),
        "README.md has no ports table: expected rows like `| gateway | 3000 | ... |` \
         with docker-compose service names in the first column"
    );
    for (name, port) in &rows {
        let ports = all_ports(service(&all, name), &env_of(&all, name));
        assert!(
            ports.contains(port),
            "README.md says {name} uses port {port}; docker-compose.yml has {ports:?}"
        );
    }
    let listed: BTreeSet<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    for (name, _) in APP_PORTS {
        assert!(listed.contains(name), "README.md ports table lacks {name}");
    }
}
