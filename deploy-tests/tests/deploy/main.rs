//! The deployment's checks, one test binary for the crate: one module per
//! area, each with its own helpers (the shared ones are the crate's library).
//!
//! [`compose`] docker-compose.yml, its overrides and the files they mount;
//! [`dashboards`] the Grafana dashboards' structure; [`prometheus_e2e`] every
//! dashboard query against the real services and Prometheus; [`dev_script`]
//! `scripts/dev.sh`; [`cluster`] the cluster setup and
//! `scripts/cluster-local.sh`.

mod cluster;
mod compose;
mod dashboards;
mod dev_script;
mod prometheus_e2e;
