//! The host's configuration, parsed once from the environment.
use crate::plugins::{Limits, RuntimeConfig};
use events_common::config::{CommonConfig, ConfigError, DatabaseConfig, Secret, Vars};
use std::{path::PathBuf, time::Duration};

/// Which parts of the host this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Gateway,
    Collector,
    All,
}

/// `COLLECTOR_TYPE` (and `COLLECTOR_EXCLUDE`): the sources this process
/// collects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// Every plugin present, including plugins dropped in later, except
    /// the sources other collectors serve.
    All {
        except: Vec<String>,
    },
    List(Vec<String>),
}

impl Sources {
    pub fn includes(&self, source: &str) -> bool {
        match self {
            Self::All { except } => !except.iter().any(|s| s == source),
            Self::List(l) => l.iter().any(|s| s == source),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `NATS_URL` as given (one server or a comma-separated list).
    pub url: String,
    /// The servers in `NATS_URL`: the client tries each, so a dead first
    /// address does not prevent connecting to a cluster.
    pub servers: Vec<async_nats::ServerAddr>,
    /// `JETSTREAM_REPLICAS`: copies of each stream in a cluster (1 on a
    /// single server); consumers inherit it.
    pub replicas: usize,
    pub name: String,
    /// `None`: reconnect forever.
    pub max_reconnect_attempts: Option<usize>,
    pub reconnect_time_wait: Duration,
    /// JetStream stream of accepted events (subjects `<subject_prefix>.>`).
    pub stream: String,
    pub subject_prefix: String,
    /// Stream of rejected events on their way to the dead-letter table.
    pub dlq_stream: String,
    pub duplicate_window: Duration,
    pub max_bytes: i64,
    pub max_age: Duration,
}

impl NatsConfig {
    fn from_vars(role: Role, vars: &Vars) -> Result<Self, ConfigError> {
        let max_reconnect = vars.parse::<i64>("NATS_MAX_RECONNECT_ATTEMPTS", -1)?;
        Ok(Self {
            url: vars.string("NATS_URL", "nats://127.0.0.1:4222"),
            servers: nats_servers(&vars.string("NATS_URL", "nats://127.0.0.1:4222"))?,
            replicas: vars.ranged("JETSTREAM_REPLICAS", 1, 1..=5)?,
            name: vars.string("NATS_NAME", &format!("events-host-{}", role_name(role))),
            max_reconnect_attempts: (max_reconnect > 0).then_some(max_reconnect as usize),
            reconnect_time_wait: vars.millis("NATS_RECONNECT_TIME_WAIT", 2000)?,
            stream: stream_name(vars, "JETSTREAM_STREAM", "EVENTS")?,
            dlq_stream: stream_name(vars, "JETSTREAM_DLQ_STREAM", "DEADLETTERS")?,
            subject_prefix: subject_prefix(vars)?,
            duplicate_window: Duration::from_secs(vars.ranged(
                "JETSTREAM_DUPLICATE_WINDOW_SECS",
                120,
                120..=86_400,
            )?),
            max_bytes: vars.ranged("JETSTREAM_MAX_BYTES", 8 << 30, 1 << 20..=i64::MAX)?,
            // 0 = no age limit (the default): unprocessed events are
            // never expired; a full stream answers 503 instead.
            max_age: Duration::from_secs(vars.ranged(
                "JETSTREAM_MAX_AGE_SECS",
                0,
                0..=365 * 86_400,
            )?),
        })
    }

    /// Subjects of the dead-letter stream: `<prefix>_dlq.<stage>`.
    pub fn dlq_subject(&self, stage: &str) -> String {
        format!("{}_dlq.{stage}", self.subject_prefix)
    }
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub body_limit_bytes: usize,
    /// In-flight JetStream publishes per request.
    pub publish_concurrency: usize,
    /// Events per JetStream message (slice), at most.
    pub slice_events: usize,
    /// `GATEWAY_REQUEST_TIMEOUT_MS`: a request is answered within this of
    /// its body having arrived; unacked publishes are retried until then.
    pub request_timeout: Duration,
    /// Error entries returned in a response (counts stay exact).
    pub max_errors: usize,
    /// Elements a request may carry (413 above): bounds per-element state,
    /// which a body of tiny elements would make far larger than its bytes.
    pub max_events: usize,
    pub webhook_secret: Option<Secret>,
    /// `GATEWAY_MIN_BODY_RATE`: bytes/s an upload must keep while the
    /// gateway reads it (averaged over 3 s; 0 disables); slower is 408.
    pub min_body_rate: u64,
    /// `GATEWAY_HEADER_TIMEOUT_MS`: a request's headers must arrive within
    /// this, or the connection is closed.
    pub header_timeout: Duration,
    /// Request bodies held at once (read, parsed or publishing); requests
    /// beyond it wait before their body is read, bounding memory under
    /// overlapping 25 MB POSTs.
    pub max_inflight_bytes: usize,
}

impl GatewayConfig {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            body_limit_bytes: vars.ranged("GATEWAY_BODY_LIMIT_BYTES", 64 << 20, 1024..=1 << 30)?,
            publish_concurrency: vars.ranged("GATEWAY_PUBLISH_CONCURRENCY", 4096, 1..=65_536)?,
            slice_events: vars.ranged("GATEWAY_SLICE_EVENTS", 1000, 1..=100_000)?,
            request_timeout: request_timeout(vars)?,
            max_errors: vars.ranged("GATEWAY_MAX_ERRORS", 100, 0..=100_000)?,
            max_events: vars.ranged("GATEWAY_MAX_EVENTS", 100_000, 1..=10_000_000)?,
            webhook_secret: vars.secret("WEBHOOK_SECRET")?,
            min_body_rate: vars.ranged("GATEWAY_MIN_BODY_RATE", 16 << 10, 0..=1 << 30)?,
            header_timeout: Duration::from_millis(vars.ranged(
                "GATEWAY_HEADER_TIMEOUT_MS",
                10_000,
                100..=600_000,
            )?),
            max_inflight_bytes: vars.ranged(
                "GATEWAY_MAX_INFLIGHT_BYTES",
                128 << 20,
                1 << 20..=16 << 30,
            )?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub sources: Sources,
    pub batch_size: usize,
    pub fetch_wait: Duration,
    pub ack_wait: Duration,
    pub max_deliver: i64,
    pub max_ack_pending: i64,
    /// Batches processed at once per source.
    pub concurrency: usize,
    /// `EVENTS_RETENTION_MONTHS`: raw event partitions entirely older than
    /// this many months are dropped (rollups kept); `None` = off (default).
    pub retention_months: Option<u32>,
}

impl CollectorConfig {
    fn from_vars(sources: Sources, vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            sources,
            batch_size: vars.ranged("COLLECTOR_BATCH_SIZE", 1000, 1..=10_000)?,
            fetch_wait: vars.millis("COLLECTOR_FETCH_WAIT_MS", 200)?,
            ack_wait: Duration::from_millis(vars.ranged(
                "COLLECTOR_ACK_WAIT_MS",
                30_000,
                1000..=3_600_000,
            )?),
            max_deliver: vars.ranged("COLLECTOR_MAX_DELIVER", 10, 2..=1000)?,
            max_ack_pending: vars.ranged("COLLECTOR_MAX_ACK_PENDING", 20_000, 1..=1_000_000)?,
            concurrency: vars.ranged("COLLECTOR_CONCURRENCY", 2, 1..=64)?,
            retention_months: crate::db::retention_months(vars)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub role: Role,
    pub common: CommonConfig,
    pub port: u16,
    pub metrics_port: Option<u16>,
    /// `DATABASE_URL` + `DATABASE_PASSWORD`.
    pub database: DatabaseConfig,
    pub db_max_connections: u32,
    pub nats: NatsConfig,
    pub plugins: RuntimeConfig,
    pub gateway: GatewayConfig,
    pub collector: CollectorConfig,
}

impl HostConfig {
    pub fn from_vars(role: Role, vars: &Vars) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_vars(vars)?;
        let sources = parse_sources(vars)?;
        let default_port = match (role, &sources) {
            (Role::Collector, Sources::List(l)) if l == &["tiktok"] => 3002,
            (Role::Collector, _) => 3001,
            _ => 3000,
        };
        Ok(Self {
            role,
            port: vars.parse("PORT", default_port)?,
            metrics_port: vars.optional("METRICS_PORT")?,
            database: DatabaseConfig::from_vars(vars, "postgres://postgres@127.0.0.1:5432/events")?,
            db_max_connections: vars.ranged("DB_MAX_CONNECTIONS", 8, 1..=200)?,
            nats: NatsConfig::from_vars(role, vars)?,
            plugins: plugin_runtime(vars)?,
            gateway: GatewayConfig::from_vars(vars)?,
            collector: CollectorConfig::from_vars(sources, vars)?,
            common,
        })
    }

    pub fn runs_gateway(&self) -> bool {
        matches!(self.role, Role::Gateway | Role::All)
    }

    pub fn runs_collector(&self) -> bool {
        matches!(self.role, Role::Collector | Role::All)
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Gateway => "gateway",
        Role::Collector => "collector",
        Role::All => "all",
    }
}

fn parse_sources(vars: &Vars) -> Result<Sources, ConfigError> {
    let except = vars
        .raw("COLLECTOR_EXCLUDE")
        .map(|v| source_list("COLLECTOR_EXCLUDE", &v))
        .transpose()?;
    let value = vars.string("COLLECTOR_TYPE", "all");
    match (value.as_str(), except) {
        ("all", except) => Ok(Sources::All {
            except: except.unwrap_or_default(),
        }),
        (_, Some(_)) => Err(ConfigError::new(
            "COLLECTOR_EXCLUDE",
            "only applies to COLLECTOR_TYPE=all",
        )),
        (list, None) => Ok(Sources::List(source_list("COLLECTOR_TYPE", list)?)),
    }
}

fn source_list(var: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
    match list
        .iter()
        .find(|s| !crate::plugins::is_valid_source_name(s))
    {
        Some(bad) => Err(ConfigError::new(
            var,
            format!("{bad:?} is not a source name (^[a-z0-9_-]{{1,32}}$), a comma list of them, or `all`"),
        )),
        None => Ok(list),
    }
}

/// `PLUGINS_*` and `PLUGIN_*`: where plugins come from and what a call may use.
fn plugin_runtime(vars: &Vars) -> Result<RuntimeConfig, ConfigError> {
    let cache = vars
        .raw("PLUGINS_CACHE_DIR")
        .unwrap_or_else(|| default_cache_dir(vars));
    Ok(RuntimeConfig {
        dir: PathBuf::from(vars.string("PLUGINS_DIR", "./dist/plugins")),
        cache_dir: (cache != "off").then(|| PathBuf::from(cache)),
        poll_interval: vars.millis("PLUGINS_POLL_INTERVAL_MS", 1000)?,
        remove_grace: vars.millis("PLUGINS_REMOVE_GRACE_MS", 5000)?,
        limits: Limits {
            max_memory_bytes: vars.ranged::<usize>("PLUGIN_MAX_MEMORY_MB", 256, 16..=4096)? << 20,
            call_timeout: Duration::from_millis(vars.ranged(
                "PLUGIN_CALL_TIMEOUT_MS",
                5000,
                10..=600_000,
            )?),
            epoch_tick: Duration::from_millis(10),
        },
    })
}

fn subject_prefix(vars: &Vars) -> Result<String, ConfigError> {
    let prefix = vars.string("JETSTREAM_SUBJECT_PREFIX", "events");
    let valid_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if prefix.is_empty() || !prefix.split('.').all(valid_token) {
        return Err(ConfigError::new(
            "JETSTREAM_SUBJECT_PREFIX",
            "must be dot-separated tokens of letters, digits, '_' or '-'",
        ));
    }
    Ok(prefix)
}

/// Not under world-writable `/tmp`: `$XDG_CACHE_HOME/events-host/plugins`,
/// else `$HOME/.cache/events-host/plugins`, else no cache.
fn default_cache_dir(vars: &Vars) -> String {
    let base = vars
        .raw("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| vars.raw("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match base {
        Some(b) => b.join("events-host/plugins").display().to_string(),
        None => "off".to_string(),
    }
}

/// `GATEWAY_REQUEST_TIMEOUT_MS` (default 20 s: a JetStream leader election
/// plus a reconnect fit in it, and it stays under a typical 30 s client
/// timeout). It replaced `GATEWAY_PUBLISH_TIMEOUT_MS`, which is refused
/// rather than silently ignored.
fn request_timeout(vars: &Vars) -> Result<Duration, ConfigError> {
    if vars.raw("GATEWAY_PUBLISH_TIMEOUT_MS").is_some() {
        return Err(ConfigError::new(
            "GATEWAY_PUBLISH_TIMEOUT_MS",
            "no longer used: set GATEWAY_REQUEST_TIMEOUT_MS, the deadline of the whole request (publishes are retried within it)",
        ));
    }
    let ms: u64 = vars.ranged("GATEWAY_REQUEST_TIMEOUT_MS", 20_000, 1_000..=600_000)?;
    Ok(Duration::from_millis(ms))
}

fn nats_servers(list: &str) -> Result<Vec<async_nats::ServerAddr>, ConfigError> {
    let servers = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<async_nats::ServerAddr>().map_err(|e| {
                ConfigError::new("NATS_URL", format!("{s:?} is not a NATS server URL: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(ConfigError::new("NATS_URL", "lists no server"));
    }
    Ok(servers)
}

fn stream_name(vars: &Vars, name: &str, default: &str) -> Result<String, ConfigError> {
    let v = vars.string(name, default);
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(v)
    } else {
        Err(ConfigError::new(
            name,
            "must contain only letters, digits, '_' or '-'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(role: Role, pairs: &[(&str, &str)]) -> Result<HostConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HostConfig::from_vars(role, &Vars::new(&map))
    }

    #[test]
    fn ports_follow_the_role_and_source() {
        assert_eq!(config(Role::Gateway, &[]).unwrap().port, 3000);
        assert_eq!(
            config(Role::Collector, &[("COLLECTOR_TYPE", "facebook")])
                .unwrap()
                .port,
            3001
        );
        assert_eq!(
            config(Role::Collector, &[("COLLECTOR_TYPE", "tiktok")])
                .unwrap()
                .port,
            3002
        );
        assert_eq!(
            config(
                Role::Collector,
                &[("COLLECTOR_TYPE", "tiktok"), ("PORT", "9")]
            )
            .unwrap()
            .port,
            9
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("COLLECTOR_TYPE", "Face book"),
            ("PORT", "-1"),
            ("DATABASE_URL", "mysql://x"),
            ("JETSTREAM_DUPLICATE_WINDOW_SECS", "10"),
            ("JETSTREAM_SUBJECT_PREFIX", "a..b"),
            ("APP_ENV", "qa"),
            ("LOG_LEVEL", "[[["),
        ] {
            let e = config(Role::All, &[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{e}");
        }
    }

    #[test]
    fn collector_type_lists() {
        let c = config(Role::Collector, &[("COLLECTOR_TYPE", "facebook, tiktok")]).unwrap();
        assert_eq!(
            c.collector.sources,
            Sources::List(vec!["facebook".into(), "tiktok".into()])
        );
        assert!(config(Role::All, &[])
            .unwrap()
            .collector
            .sources
            .includes("anything"));
    }

    #[test]
    fn nats_url_lists_servers_and_replicas_are_bounded() {
        let c = config(
            Role::Gateway,
            &[
                (
                    "NATS_URL",
                    "nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://10.0.0.3:4222",
                ),
                ("JETSTREAM_REPLICAS", "3"),
            ],
        )
        .unwrap();
        let hosts: Vec<_> = c
            .nats
            .servers
            .iter()
            .map(|s| s.host().to_string())
            .collect();
        assert_eq!(hosts, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(c.nats.replicas, 3);
        assert_eq!(config(Role::Gateway, &[]).unwrap().nats.replicas, 1);
        for (var, value) in [
            ("JETSTREAM_REPLICAS", "0"),
            ("JETSTREAM_REPLICAS", "6"),
            ("NATS_URL", ",,"),
            ("NATS_URL", "nats://a:4222,http://[bad"),
        ] {
            let e = config(Role::Gateway, &[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{value}: {e}");
        }
    }

    #[test]
    fn collector_all_except() {
        let c = config(
            Role::Collector,
            &[
                ("COLLECTOR_TYPE", "all"),
                ("COLLECTOR_EXCLUDE", "facebook,tiktok"),
            ],
        )
        .unwrap();
        let s = &c.collector.sources;
        assert!(!s.includes("facebook") && !s.includes("tiktok") && s.includes("shopify"));
        for bad in [
            &[
                ("COLLECTOR_TYPE", "facebook"),
                ("COLLECTOR_EXCLUDE", "tiktok"),
            ][..],
            &[("COLLECTOR_EXCLUDE", "Bad Name")][..],
        ] {
            let e = config(Role::Collector, bad).unwrap_err();
            assert_eq!(e.variable, "COLLECTOR_EXCLUDE", "{e}");
        }
    }
}
