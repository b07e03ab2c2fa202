//! `events-host jetstream setup|info|delete`: the operator's view of this
//! deployment's two streams (`JETSTREAM_STREAM`, `JETSTREAM_DLQ_STREAM`),
//! configured by the same environment variables as the services.
//!
//! `setup` runs exactly what the gateway runs at startup
//! ([`nats::ensure_streams`]), so streams can be created or updated before
//! anything starts. `delete` needs `--yes`. Exit codes: 0 done, 1 runtime
//! error (or `delete` without `--yes`), 2 configuration error.
use crate::{
    config::{HostConfig, NatsConfig, Role},
    nats::{self, NatsError},
};
use async_nats::jetstream::{self, context::GetStreamErrorKind, stream, ErrorCode};
use events_common::config::{ConfigError, Vars};
use futures::TryStreamExt;
use serde::Serialize;
use std::{fmt::Write as _, time::Duration};

mod render;
use render::{consumer_names, human_bytes, render_deleted, render_setup};
pub use render::{render_info, render_json};

/// The `jetstream` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum JetstreamCommand {
    /// Create both streams, or update their settings, exactly as the gateway
    /// does at startup.
    Setup,
    /// Show both streams: subjects, size, limits, replicas and consumers.
    Info {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete both streams and their consumers: events still in them are
    /// lost. Without --yes, only shows what would be deleted (exit 1).
    Delete {
        /// Really delete.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

impl AdminError {
    /// 2 for configuration errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            _ => 1,
        }
    }

    fn stream(stream: &str, e: impl std::fmt::Display) -> Self {
        Self::Stream {
            stream: stream.to_string(),
            message: e.to_string(),
        }
    }
}

/// Which of the deployment's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Events,
    DeadLetters,
}

impl StreamKind {
    fn label(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::DeadLetters => "dead letters",
        }
    }
}

/// One stream as `info` shows it; `state` is `None` when it does not exist.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub name: String,
    pub kind: StreamKind,
    pub exists: bool,
    #[serde(flatten)]
    pub state: Option<StreamState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamState {
    pub subjects: Vec<String>,
    pub messages: u64,
    pub bytes: u64,
    /// -1: unlimited.
    pub max_bytes: i64,
    /// `bytes` over `max_bytes` in percent; `None` when unlimited.
    pub fill_percent: Option<f64>,
    pub duplicate_window_secs: u64,
    /// 0: no age limit.
    pub max_age_secs: u64,
    pub replicas: usize,
    pub consumers: Vec<ConsumerReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerReport {
    pub name: String,
    /// Messages not yet delivered to it.
    pub pending: u64,
    /// Messages delivered but not yet acked.
    pub ack_pending: usize,
}

/// What `setup` did to one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupChange {
    Created,
    Updated,
    Unchanged,
}

/// Runs `command` with the configuration in `vars`, prints its output and
/// returns the exit code.
pub fn run(command: &JetstreamCommand, vars: &Vars) -> u8 {
    match execute(command, vars) {
        Ok(out) => {
            print!("{}", out.stdout);
            eprint!("{}", out.stderr);
            out.code
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            e.exit_code()
        }
    }
}

/// A command's output and exit code.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

/// Parses the configuration (as the gateway does) and runs `command`.
pub fn execute(command: &JetstreamCommand, vars: &Vars) -> Result<Output, AdminError> {
    let cfg = HostConfig::from_vars(Role::Gateway, vars)?.nats;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let js = connect(&cfg).await?;
            execute_on(&js, &cfg, command).await
        })
}

/// Runs `command` on an open JetStream context.
pub async fn execute_on(
    js: &jetstream::Context,
    cfg: &NatsConfig,
    command: &JetstreamCommand,
) -> Result<Output, AdminError> {
    let stdout = match command {
        JetstreamCommand::Setup => render_setup(&setup(js, cfg).await?),
        JetstreamCommand::Info { json: false } => render_info(&info(js, cfg).await?),
        JetstreamCommand::Info { json: true } => render_json(&info(js, cfg).await?),
        JetstreamCommand::Delete { yes: true } => render_deleted(&delete(js, cfg).await?),
        JetstreamCommand::Delete { yes: false } => return delete_plan(js, cfg).await,
    };
    Ok(Output {
        stdout,
        ..Output::default()
    })
}

/// Connects once, without the services' retrying: an operator wants an
/// answer, not a wait. Requests time out after 10 s.
pub async fn connect(cfg: &NatsConfig) -> Result<jetstream::Context, AdminError> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("{}-admin", cfg.name))
        .connection_timeout(Duration::from_secs(5))
        .connect(cfg.servers.as_slice())
        .await
        .map_err(|e| AdminError::Connect {
            url: redact_url(&cfg.url),
            message: e.to_string(),
        })?;
    Ok(nats::jetstream(client, 16))
}

/// The deployment's streams, events first.
fn streams(cfg: &NatsConfig) -> [(&str, StreamKind); 2] {
    [
        (&cfg.stream, StreamKind::Events),
        (&cfg.dlq_stream, StreamKind::DeadLetters),
    ]
}

/// Creates or updates both streams with [`nats::ensure_streams`] and says
/// what changed.
pub async fn setup(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Result<Vec<(StreamReport, SetupChange)>, AdminError> {
    let mut before = Vec::new();
    for (name, _) in streams(cfg) {
        before.push(
            find(js, name)
                .await?
                .map(|s| s.cached_info().config.clone()),
        );
    }
    nats::ensure_streams(js, cfg).await?;
    let mut done = Vec::new();
    for ((name, kind), before) in streams(cfg).into_iter().zip(before) {
        let stream = find(js, name).await?;
        let after = stream.as_ref().map(|s| s.cached_info().config.clone());
        let change = match (before, after) {
            (None, _) => SetupChange::Created,
            (b, a) if b == a => SetupChange::Unchanged,
            _ => SetupChange::Updated,
        };
        done.push((report(name, kind, stream).await?, change));
    }
    Ok(done)
}

/// Both streams, with their consumers.
pub async fn info(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Result<Vec<StreamReport>, AdminError> {
    let mut reports = Vec::new();
    for (name, kind) in streams(cfg) {
        reports.push(report(name, kind, find(js, name).await?).await?);
    }
    Ok(reports)
}

/// Deletes both streams (and thus their consumers). Returns each name and
/// whether it existed; a missing stream is not an error.
pub async fn delete(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Result<Vec<(String, bool)>, AdminError> {
    let mut deleted = Vec::new();
    for (name, _) in streams(cfg) {
        let existed = match js.delete_stream(name).await {
            Ok(_) => true,
            Err(e) if is_not_found(e.kind()) => false,
            Err(e) => return Err(AdminError::stream(name, e)),
        };
        deleted.push((name.to_string(), existed));
    }
    Ok(deleted)
}

/// `delete` without `--yes`: what would be deleted; exit 1 if anything.
async fn delete_plan(js: &jetstream::Context, cfg: &NatsConfig) -> Result<Output, AdminError> {
    let reports = info(js, cfg).await?;
    let mut out = Output::default();
    for r in &reports {
        match &r.state {
            Some(s) => writeln!(
                out.stdout,
                "would delete stream {} ({}): {} messages, {}; consumers: {}",
                r.name,
                r.kind.label(),
                s.messages,
                human_bytes(s.bytes),
                consumer_names(&s.consumers)
            ),
            None => writeln!(
                out.stdout,
                "stream {}: not created, nothing to delete",
                r.name
            ),
        }
        .ok();
    }
    if reports.iter().any(|r| r.exists) {
        out.stderr = "not deleted: add --yes to delete (events still in the streams are lost; \
                      a running gateway re-creates the streams, stop it first)\n"
            .into();
        out.code = 1;
    }
    Ok(out)
}

async fn find(js: &jetstream::Context, name: &str) -> Result<Option<stream::Stream>, AdminError> {
    match js.get_stream(name).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_not_found(e.kind()) => Ok(None),
        Err(e) => Err(AdminError::stream(name, e)),
    }
}

fn is_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

async fn report(
    name: &str,
    kind: StreamKind,
    stream: Option<stream::Stream>,
) -> Result<StreamReport, AdminError> {
    let state = match stream {
        Some(s) => Some(stream_state(name, &s).await?),
        None => None,
    };
    Ok(StreamReport {
        name: name.to_string(),
        kind,
        exists: state.is_some(),
        state,
    })
}

async fn stream_state(name: &str, s: &stream::Stream) -> Result<StreamState, AdminError> {
    let info = s.cached_info();
    let mut consumers: Vec<ConsumerReport> = s
        .consumers()
        .map_ok(|c| ConsumerReport {
            name: c.name,
            pending: c.num_pending,
            ack_pending: c.num_ack_pending,
        })
        .try_collect()
        .await
        .map_err(|e| AdminError::stream(name, e))?;
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    let (bytes, max_bytes) = (info.state.bytes, info.config.max_bytes);
    Ok(StreamState {
        subjects: info.config.subjects.clone(),
        messages: info.state.messages,
        bytes,
        max_bytes,
        fill_percent: (max_bytes > 0).then(|| bytes as f64 * 100.0 / max_bytes as f64),
        duplicate_window_secs: info.config.duplicate_window.as_secs(),
        max_age_secs: info.config.max_age.as_secs(),
        replicas: info.config.num_replicas.max(1),
        consumers,
    })
}

/// `nats://user:secret@host` → `nats://***@host` (each of a comma list):
/// errors never show secrets.
fn redact_url(url: &str) -> String {
    let servers: Vec<String> = url.split(',').map(redact_server).collect();
    servers.join(",")
}

fn redact_server(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redact_url("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("nats://h:4222"), "nats://h:4222");
        assert_eq!(
            redact_url("nats://a:1,tls://u:p@b:2"),
            "nats://a:1,tls://***@b:2"
        );
    }
}
