//! The environment every service gets, and the documented env files.

use std::collections::BTreeSet;

use deploy_tests::{get, repo_root, service_ports, strings};

use super::{compose, env_of, service, services, APP_PORTS, HOST_SERVICES};

#[test]
fn every_service_gets_the_environment_it_needs() {
    let c = compose();
    let all = services(&c);
    let postgres_env = env_of(&all, "postgres");
    let db_name = postgres_env.get("POSTGRES_DB").cloned().unwrap_or_default();
    assert_eq!(db_name, "events", "postgres: POSTGRES_DB");

    let host_vars = [
        "APP_ENV",
        "LOG_LEVEL",
        "PORT",
        "NATS_URL",
        "DATABASE_URL",
        "PLUGINS_DIR",
        "CORRELATION_ID_HEADER",
    ];
    for (name, port) in APP_PORTS {
        let env = env_of(&all, name);
        let required: &[&str] = if *name == "reporter" {
            &[
                "APP_ENV",
                "LOG_LEVEL",
                "PORT",
                "DATABASE_URL",
                "CORRELATION_ID_HEADER",
            ]
        } else {
            &host_vars
        };
        for var in required {
            let v = env.get(*var).map(String::as_str).unwrap_or_default();
            assert!(
                !v.trim().is_empty(),
                "{name}: {var} is not set (env: {env:?})"
            );
        }
        assert_eq!(env["PORT"], port.to_string(), "{name}: PORT");
        assert!(
            ["development", "staging", "production"].contains(&env["APP_ENV"].as_str()),
            "{name}: APP_ENV={}",
            env["APP_ENV"]
        );
        let db = &env["DATABASE_URL"];
        assert_eq!(
            db, "postgres://postgres@postgres:5432/events",
            "{name}: DATABASE_URL points at the postgres service, without a password"
        );
        // The password PostgreSQL was given, not a copy pasted into a URL.
        assert_eq!(
            env.get("DATABASE_PASSWORD").map(String::as_str),
            Some("${POSTGRES_PASSWORD:-postgres}"),
            "{name}: DATABASE_PASSWORD"
        );
        if *name != "reporter" {
            assert_eq!(env["NATS_URL"], "nats://nats:4222", "{name}: NATS_URL");
            assert_eq!(env["PLUGINS_DIR"], "/plugins", "{name}: PLUGINS_DIR");
        }
        // published on the same port
        let ports = service_ports(service(&all, name));
        assert!(
            ports
                .iter()
                .any(|p| p.container == *port && p.host == Some(*port)),
            "{name}: should publish {port}:{port}, has {ports:?}"
        );
    }
    assert_eq!(env_of(&all, "fb-collector")["COLLECTOR_TYPE"], "facebook");
    assert_eq!(env_of(&all, "ttk-collector")["COLLECTOR_TYPE"], "tiktok");
    // One collector takes every source the dedicated ones do not.
    let rest = env_of(&all, "collector");
    assert_eq!(rest["COLLECTOR_TYPE"], "all");
    assert_eq!(rest["COLLECTOR_EXCLUDE"], "facebook,tiktok");
    let names: BTreeSet<String> = HOST_SERVICES
        .iter()
        .map(|n| {
            env_of(&all, n)
                .get("NATS_NAME")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        names.len(),
        HOST_SERVICES.len(),
        "each host role has its own NATS_NAME: {names:?}"
    );

    for name in ["publisher", "simulator"] {
        assert_eq!(
            env_of(&all, name).get("EVENT_ENDPOINT").map(String::as_str),
            Some("http://gateway:3000/webhook"),
            "{name}: EVENT_ENDPOINT"
        );
    }

    let grafana = env_of(&all, "grafana");
    assert_eq!(
        grafana.get("GF_SERVER_HTTP_PORT").map(String::as_str),
        Some("3004")
    );
    assert!(grafana["GF_SECURITY_ADMIN_USER"].contains("admin"));
    assert!(grafana["GF_SECURITY_ADMIN_PASSWORD"].contains("admin"));
}

#[test]
fn env_files_are_the_documented_ones() {
    let c = compose();
    let all = services(&c);
    let want = [
        ("gateway", "deploy/gateway/env.example"),
        ("fb-collector", "deploy/collectors/env.example"),
        ("ttk-collector", "deploy/collectors/env.example"),
        ("collector", "deploy/collectors/env.example"),
        ("reporter", "deploy/reporter/env.example"),
        ("publisher", "deploy/publisher/env.example"),
        ("simulator", "deploy/publisher/env.example"),
    ];
    for (name, file) in want {
        assert_eq!(
            strings(get(service(&all, name), "env_file")),
            vec![file.to_string()],
            "{name}: env_file"
        );
        assert!(repo_root().join(file).is_file(), "{file} missing");
    }
}
