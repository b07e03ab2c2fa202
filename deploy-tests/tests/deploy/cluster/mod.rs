//! The cluster setup: `deploy/compose/docker-compose.cluster.yml` (3 NATS
//! nodes, 2 gateways behind HAProxy, 2 collectors per source, a PostgreSQL
//! primary and its streaming replica, the reporter on the replica), the
//! files it mounts (`deploy/haproxy/haproxy.cfg`, `deploy/nats/cluster/`,
//! `deploy/postgres/`, `deploy/prometheus/prometheus.cluster.yml`), and
//! `scripts/cluster-local.sh`, which starts the same topology natively.
//!
//! The structural checks always run; `docker-compose`, `haproxy`,
//! `nats-server` and `promtool`, where installed, validate the files too.
//! The end-to-end test runs the script with the debug binaries
//! (EVENTS_BIN_DIR, default /var/cache/events-target/debug) on free ports,
//! posts a batch through HAProxy and reads it back from the reporter on the
//! replica. Without the binaries, the plugins, haproxy, nats-server or
//! PostgreSQL 15 it prints `SKIPPED:` and passes, unless DEPLOY_E2E_REQUIRED=1
//! (CI) makes that a failure.
//!
//! The checks are grouped by what they read: [`compose`] the topology of
//! the compose file, [`configs`] the files it mounts and the tools that
//! validate them, [`postgres`] the primary / replica scripts (run natively
//! too), [`local`] `scripts/cluster-local.sh`.

mod compose;
mod configs;
mod local;
mod postgres;

use std::path::PathBuf;

const CLUSTER: &str = "deploy/compose/docker-compose.cluster.yml";
const HAPROXY_CFG: &str = "deploy/haproxy/haproxy.cfg";
const NATS_CONF: &str = "deploy/nats/cluster/nats.conf";
const PRIMARY_INIT: &str = "deploy/postgres/primary-init.sh";
const REPLICA_ENTRYPOINT: &str = "deploy/postgres/replica-entrypoint.sh";
const PROMETHEUS: &str = "deploy/prometheus/prometheus.cluster.yml";
const SCRIPT: &str = "scripts/cluster-local.sh";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

const NATS_NODES: [&str; 3] = ["nats-1", "nats-2", "nats-3"];
const GATEWAYS: [&str; 2] = ["gateway-1", "gateway-2"];
/// Two collectors per source with a plugin, one for the others.
const COLLECTORS: [&str; 5] = ["fb-1", "fb-2", "ttk-1", "ttk-2", "collector"];

/// A fresh directory under the temp dir (mode 0755: PostgreSQL's user must
/// enter it).
fn temp_dir(what: &str) -> PathBuf {
    deploy_tests::scratch_dir(&format!("cluster-{what}-{}", deploy_tests::unique_id()))
}
