//! Typed configuration, parsed once at startup from the environment.
use events_common::config::{CommonConfig, ConfigError, DatabaseConfig, Env, Secret, Source, Vars};

/// Everything the reporter reads from its environment. `Debug` is safe to
/// log: secrets print as `<redacted>`.
#[derive(Clone, Debug)]
pub struct Config {
    /// `PORT` (default 3003).
    pub port: u16,
    /// `REPORTER_DATABASE_URL` (default: `DATABASE_URL`) +
    /// `DATABASE_PASSWORD`: where reports are read, a primary or a
    /// streaming replica.
    pub database: DatabaseConfig,
    /// `DB_MAX_CONNECTIONS` (default 10): reports hold a connection for one
    /// query at a time, so this caps concurrent report queries.
    pub db_max_connections: u32,
    /// `REPORTER_API_TOKEN`: when set, report endpoints require
    /// `Authorization: Bearer <token>`.
    pub api_token: Option<Secret>,
    /// `MIGRATION_TIMEOUT_MS` (default 60000): how long startup keeps retrying
    /// migrations while the database is unreachable, or, on a replica, waits
    /// for it to replay the migrations this build needs.
    pub migration_timeout: std::time::Duration,
    /// `REPORTER_MAX_REPLICA_LAG_MS` (default 30000): readiness fails while
    /// the replica's replay lag exceeds this.
    pub max_replica_lag: std::time::Duration,
    pub common: CommonConfig,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/events";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Env)
    }

    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let vars = Vars::new(source);
        let api_token = vars.secret("REPORTER_API_TOKEN")?;
        if let Some(token) = api_token.as_ref().map(Secret::expose) {
            // Bearer tokens travel in a header: keep them to visible ASCII so
            // a typo (a pasted newline, say) fails at startup, not per request.
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    "REPORTER_API_TOKEN",
                    "must be printable ASCII without spaces",
                ));
            }
        }
        Ok(Self {
            port: vars.parse("PORT", 3003)?,
            database: DatabaseConfig::from_url_vars(
                &vars,
                &["REPORTER_DATABASE_URL", "DATABASE_URL"],
                DEFAULT_DATABASE_URL,
            )?,
            db_max_connections: vars.ranged("DB_MAX_CONNECTIONS", 10, 1..=200)?,
            api_token,
            migration_timeout: vars.millis("MIGRATION_TIMEOUT_MS", 60_000)?,
            max_replica_lag: vars.millis("REPORTER_MAX_REPLICA_LAG_MS", 30_000)?,
            common: CommonConfig::from_vars(&vars)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn source(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::from_source(&source(&[])).unwrap();
        assert_eq!(c.port, 3003);
        assert_eq!(
            format!("{:?}", c.database),
            "postgres://postgres@127.0.0.1:5432/events"
        );
        assert_eq!(c.db_max_connections, 10);
        assert!(c.api_token.is_none());
        assert_eq!(c.max_replica_lag, std::time::Duration::from_secs(30));
    }

    #[test]
    fn reporter_database_url_wins_over_database_url() {
        let c = Config::from_source(&source(&[
            ("DATABASE_URL", "postgres://app@primary/events"),
            ("REPORTER_DATABASE_URL", "postgres://ro@replica:5433/events"),
            ("REPORTER_MAX_REPLICA_LAG_MS", "5000"),
        ]))
        .unwrap();
        assert_eq!(
            format!("{:?}", c.database),
            "postgres://ro@replica:5433/events"
        );
        assert_eq!(c.max_replica_lag, std::time::Duration::from_secs(5));
        let c = Config::from_source(&source(&[(
            "DATABASE_URL",
            "postgres://app@primary/events",
        )]))
        .unwrap();
        assert_eq!(
            format!("{:?}", c.database),
            "postgres://app@primary:5432/events"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Config::from_source(&source(&[("PORT", "x")])).unwrap_err();
        assert_eq!(e.variable, "PORT");
        let e = Config::from_source(&source(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
        let e = Config::from_source(&source(&[("REPORTER_DATABASE_URL", "x")])).unwrap_err();
        assert_eq!(e.variable, "REPORTER_DATABASE_URL");
        let e = Config::from_source(&source(&[("REPORTER_MAX_REPLICA_LAG_MS", "-1")])).unwrap_err();
        assert_eq!(e.variable, "REPORTER_MAX_REPLICA_LAG_MS");
        let e = Config::from_source(&source(&[("DB_MAX_CONNECTIONS", "0")])).unwrap_err();
        assert_eq!(e.variable, "DB_MAX_CONNECTIONS");
        let e = Config::from_source(&source(&[("REPORTER_API_TOKEN", "a b")])).unwrap_err();
        assert_eq!(e.variable, "REPORTER_API_TOKEN");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Config::from_source(&source(&[
            ("REPORTER_API_TOKEN", "s3cret-token"),
            ("DATABASE_URL", "postgres://u:pw@h/db"),
        ]))
        .unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("s3cret") && !s.contains("pw@"), "{s}");
    }
}
