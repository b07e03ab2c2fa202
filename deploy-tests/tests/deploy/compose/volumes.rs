//! Named volumes: declared, mounted where each service keeps its data, and
//! one plugins volume shared by every host service.

use std::collections::BTreeSet;

use deploy_tests::{get, keys, strings};

use super::{compose, env_of, service, services, HOST_SERVICES};

#[test]
fn named_volumes_are_declared_and_mounted() {
    let c = compose();
    let all = services(&c);
    let declared: BTreeSet<String> = keys(get(&c, "volumes")).into_iter().collect();
    let want = [
        ("postgres", "/var/lib/postgresql/data"),
        ("nats", "/data"),
        ("prometheus", "/prometheus"),
        ("grafana", "/var/lib/grafana"),
    ];
    for (name, target) in want {
        let mounts = strings(get(service(&all, name), "volumes"));
        let named = mounts.iter().find_map(|m| {
            let mut parts = m.split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            (dst == target && !src.starts_with('.') && !src.starts_with('/')).then_some(src)
        });
        let named = named.unwrap_or_else(|| {
            panic!("{name}: no named volume mounted on {target} (volumes: {mounts:?})")
        });
        assert!(
            declared.contains(named),
            "{name}: volume {named} is not declared under top-level volumes: {declared:?}"
        );
    }
    // One plugins volume for the gateway and every collector: a .wasm
    // copied in is seen by all of them.
    assert!(
        declared.contains("plugins"),
        "no plugins volume: {declared:?}"
    );
    for name in HOST_SERVICES {
        let mounts = strings(get(service(&all, name), "volumes"));
        assert!(
            mounts.iter().any(|m| m == "plugins:/plugins"),
            "{name}: does not mount the plugins volume on /plugins: {mounts:?}"
        );
        assert_eq!(env_of(&all, name)["PLUGINS_DIR"], "/plugins", "{name}");
    }
    // NATS must keep JetStream on the volume.
    let cmd = strings(get(service(&all, "nats"), "command")).join(" ");
    for flag in ["-js", "-sd /data", "-m 8222"] {
        assert!(cmd.contains(flag), "nats command lacks {flag}: {cmd}");
    }
}
