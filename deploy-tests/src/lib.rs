//! Helpers for the deployment tests in `tests/`: locating the repository,
//! reading compose / env / YAML files ([`compose`]), walking Grafana
//! dashboards ([`grafana`]), pulling metric names out of PromQL
//! ([`promql`]) and reading the README ([`readme`]).
//!
//! The tests themselves are one binary, `tests/deploy/`, with the modules
//! `compose/`, `dashboards/`, `prometheus_e2e/`, `dev_script` and `cluster/`;
//! [`local`] and [`script`] serve the ones that run the services natively.

pub mod compose;
pub mod grafana;
pub mod local;
pub mod promql;
pub mod readme;
pub mod script;

pub use compose::{
    all_ports, get, keys, load_yaml, parse_env_file, parse_yaml, scalar, service_env,
    service_ports, strings, PortMapping,
};
pub use grafana::{all_exprs, dashboards, panel_exprs, panels, title};
pub use local::{
    accepts, bin_dir, block_on_thread, create_database, delete_streams, drop_database, env_or,
    free_port, free_ports, kill, lacks_tool, missing_binaries, ready, running, scratch_dir, skip,
    unique_id,
};
pub use promql::{metric_names, prometheus_expr, GRAFANA_INTERVALS};
pub use readme::{readme_commands, readme_ports};
pub use script::{assert_names_missing_binaries, ScriptRun};

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The repository root: `DEPLOY_REPO_ROOT` if set, else the parent of this
/// crate's directory (symlinks resolved).
pub fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("DEPLOY_REPO_ROOT") {
        return PathBuf::from(root);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = std::fs::canonicalize(here).unwrap_or_else(|_| here.to_path_buf());
    here.parent()
        .expect("deploy-tests lives inside the repository")
        .to_path_buf()
}

/// Reads a file under the repository root, panicking with its path.
pub fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// True when `name` is an executable on `PATH` (or a path that exists).
pub fn command_exists(name: &str) -> bool {
    if name.contains('/') {
        return Path::new(name).is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// Runs a command, returning (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
