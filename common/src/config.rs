//! Typed configuration from environment variables.
//!
//! Every service parses its configuration once at startup. A bad value stops
//! the service with one line naming the variable (`ConfigError`'s Display).
use std::{fmt::Display, str::FromStr};

/// A configuration variable that is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {message}")]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(variable: &str, message: impl Into<String>) -> Self {
        Self {
            variable: variable.to_string(),
            message: message.into(),
        }
    }
}

/// Where configuration values come from. Tests pass a map instead of the
/// process environment so they never race on `std::env`.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// Reads variables from a [`Source`]; empty values count as unset.
pub struct Vars<'a> {
    source: &'a dyn Source,
}

impl<'a> Vars<'a> {
    pub fn new(source: &'a dyn Source) -> Self {
        Self { source }
    }

    /// The raw value, `None` when unset or blank.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.source
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.raw(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// Parses the value with `FromStr`, or returns `default` when unset.
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| ConfigError::new(name, format!("cannot parse {v:?}: {e}"))),
        }
    }

    /// Like [`Vars::parse`] but `None` when unset.
    pub fn optional<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| ConfigError::new(name, format!("cannot parse {v:?}: {e}"))),
        }
    }

    /// A number that must lie in `range`.
    pub fn ranged<T>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let v = self.parse(name, default)?;
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(ConfigError::new(
                name,
                format!("{v} is out of range {}..={}", range.start(), range.end()),
            ))
        }
    }

    /// A duration given in milliseconds.
    pub fn millis(&self, name: &str, default_ms: u64) -> Result<std::time::Duration, ConfigError> {
        self.parse(name, default_ms)
            .map(std::time::Duration::from_millis)
    }
}

/// `APP_ENV`: which environment this is (the compose overrides set it). A
/// label: validated, and shown as `env` in each service's startup log line;
/// it changes no default, every setting is explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Staging,
    Production,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

impl FromStr for AppEnv {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Self::Development),
            "staging" => Ok(Self::Staging),
            "production" | "prod" => Ok(Self::Production),
            _ => Err("expected development, staging or production".into()),
        }
    }
}

/// A log filter (`EnvFilter` directives) known to be valid. `EnvFilter` is
/// not `Clone`, so the checked text is kept and the filter built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(String);

impl LogFilter {
    pub fn filter(&self) -> tracing_subscriber::EnvFilter {
        tracing_subscriber::EnvFilter::new(&self.0)
    }
}

impl FromStr for LogFilter {
    type Err = tracing_subscriber::filter::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        tracing_subscriber::EnvFilter::try_new(s)?;
        Ok(Self(s.to_string()))
    }
}

/// Settings every service has.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub app_env: AppEnv,
    /// `LOG_LEVEL`: an `EnvFilter` directive such as `info` or `events_host=debug,info`.
    pub log_level: LogFilter,
    /// `CORRELATION_ID_HEADER` (header names are case-insensitive).
    pub correlation_id_header: axum::http::HeaderName,
    /// `SHUTDOWN_TIMEOUT_MS`: how long graceful shutdown may take.
    pub shutdown_timeout: std::time::Duration,
    /// `SHUTDOWN_PRE_STOP_MS`: after a stop signal, how long the service
    /// keeps serving while already reporting not ready, so that load
    /// balancers stop routing to it before it closes its listener.
    pub pre_stop_delay: std::time::Duration,
}

impl CommonConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let app_env = vars.parse("APP_ENV", AppEnv::Development)?;
        let log_level = vars.string("LOG_LEVEL", "info").parse().map_err(
            |e: tracing_subscriber::filter::ParseError| {
                ConfigError::new("LOG_LEVEL", e.to_string())
            },
        )?;
        let correlation_id_header = axum::http::HeaderName::from_bytes(
            vars.string("CORRELATION_ID_HEADER", "x-correlation-id")
                .as_bytes(),
        )
        .map_err(|e| ConfigError::new("CORRELATION_ID_HEADER", e.to_string()))?;
        let shutdown_timeout = vars.millis("SHUTDOWN_TIMEOUT_MS", 30_000)?;
        let pre_stop_delay = vars.millis("SHUTDOWN_PRE_STOP_MS", 1_000)?;
        Ok(Self {
            app_env,
            log_level,
            correlation_id_header,
            shutdown_timeout,
            pre_stop_delay,
        })
    }
}

/// A secret value. `Debug` and `Display` print `<redacted>`, so a secret
/// cannot reach a log line by accident; `expose` is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Vars<'_> {
    /// A secret from `NAME`, or from the file named by `NAME_FILE` (Docker
    /// and Kubernetes secrets), not both. Kept byte for byte except one
    /// trailing newline from the file; blank counts as unset.
    pub fn secret(&self, name: &str) -> Result<Option<Secret>, ConfigError> {
        let file_var = format!("{name}_FILE");
        let direct = self
            .source
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .map(Secret);
        let Some(path) = self.raw(&file_var) else {
            return Ok(direct);
        };
        if direct.is_some() {
            return Err(ConfigError::new(
                name,
                format!("set {name} or {file_var}, not both"),
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new(&file_var, format!("cannot read {path}: {e}")))?;
        let value = text
            .strip_suffix('\n')
            .map(|v| v.strip_suffix('\r').unwrap_or(v))
            .unwrap_or(&text);
        Ok((!value.trim().is_empty()).then(|| Secret::new(value)))
    }
}

/// Where a service's database is: `DATABASE_URL` (no password needed in
/// it) plus `DATABASE_PASSWORD` or `DATABASE_PASSWORD_FILE`, which wins over
/// a password in the URL. The password is handed to the driver as it is,
/// never pasted into a URL, so `@ : / # %` in it need no encoding.
#[derive(Clone)]
pub struct DatabaseConfig {
    pub options: sqlx::postgres::PgConnectOptions,
}

impl DatabaseConfig {
    pub fn from_vars(vars: &Vars, default_url: &str) -> Result<Self, ConfigError> {
        Self::from_url_vars(vars, &["DATABASE_URL"], default_url)
    }

    /// Like [`DatabaseConfig::from_vars`], with the URL from the first of
    /// `url_vars` that is set (e.g. `["REPORTER_DATABASE_URL",
    /// "DATABASE_URL"]`), else `default_url`. Errors name that variable.
    pub fn from_url_vars(
        vars: &Vars,
        url_vars: &[&str],
        default_url: &str,
    ) -> Result<Self, ConfigError> {
        let (name, url) = url_vars
            .iter()
            .find_map(|name| vars.raw(name).map(|url| (*name, url)))
            .unwrap_or((
                url_vars.last().copied().unwrap_or("DATABASE_URL"),
                default_url.to_string(),
            ));
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                name,
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        let mut options = sqlx::postgres::PgConnectOptions::from_str(&url)
            .map_err(|e| ConfigError::new(name, e.to_string()))?;
        if let Some(password) = vars.secret("DATABASE_PASSWORD")? {
            options = options.password(password.expose());
        }
        Ok(Self { options })
    }
}

// Shows where, never the password.
impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_values_name_the_variable() {
        let src = vars(&[("PORT", "eighty"), ("APP_ENV", "moon")]);
        let v = Vars::new(&src);
        let e = v.parse::<u16>("PORT", 3000).unwrap_err();
        assert!(e.to_string().starts_with("invalid configuration: PORT:"));
        let e = CommonConfig::from_vars(&v).unwrap_err();
        assert_eq!(e.variable, "APP_ENV");
    }

    #[test]
    fn blank_is_unset_and_ranges_are_checked() {
        let src = vars(&[("PORT", " "), ("N", "0")]);
        let v = Vars::new(&src);
        assert_eq!(v.parse::<u16>("PORT", 3000).unwrap(), 3000);
        assert_eq!(v.ranged::<u32>("N", 5, 1..=10).unwrap_err().variable, "N");
    }

    #[test]
    fn database_password_is_applied_raw_and_never_printed() {
        let password = "p@ss:w/o#rd% x";
        let src = vars(&[
            ("DATABASE_URL", "postgres://app:old@db.internal:6543/events"),
            ("DATABASE_PASSWORD", password),
        ]);
        let db = DatabaseConfig::from_vars(&Vars::new(&src), "postgres://x@h/d").unwrap();
        let shown = format!("{db:?}");
        assert_eq!(shown, "postgres://app@db.internal:6543/events");
        // The driver gets the password byte for byte (its Debug shows it).
        assert!(format!("{:?}", db.options).contains(password));
        assert!(!format!("{:?}", Secret::new(password)).contains("ss"));
    }

    #[test]
    fn database_password_file_and_conflicts() {
        let dir = std::env::temp_dir().join(format!("cfg-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret \n").unwrap();
        let path = file.to_string_lossy().to_string();
        let src = vars(&[("DATABASE_PASSWORD_FILE", &path)]);
        let secret = Vars::new(&src)
            .secret("DATABASE_PASSWORD")
            .unwrap()
            .unwrap();
        assert_eq!(secret.expose(), "s3cret ");
        let both = vars(&[
            ("DATABASE_PASSWORD_FILE", &path),
            ("DATABASE_PASSWORD", "x"),
        ]);
        let e = Vars::new(&both).secret("DATABASE_PASSWORD").unwrap_err();
        assert_eq!(e.variable, "DATABASE_PASSWORD");
        let missing = vars(&[("DATABASE_PASSWORD_FILE", "/nonexistent/pw")]);
        let e = Vars::new(&missing).secret("DATABASE_PASSWORD").unwrap_err();
        assert_eq!(e.variable, "DATABASE_PASSWORD_FILE");
        let bad = vars(&[("DATABASE_URL", "mysql://x")]);
        let e = DatabaseConfig::from_vars(&Vars::new(&bad), "postgres://h/d").unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn database_url_from_the_first_variable_set() {
        let names = ["REPORTER_DATABASE_URL", "DATABASE_URL"];
        let both = vars(&[
            ("REPORTER_DATABASE_URL", "postgres://ro@replica:5433/events"),
            ("DATABASE_URL", "postgres://app@primary/events"),
            ("DATABASE_PASSWORD", "pw"),
        ]);
        let db =
            DatabaseConfig::from_url_vars(&Vars::new(&both), &names, "postgres://x@h/d").unwrap();
        assert_eq!(format!("{db:?}"), "postgres://ro@replica:5433/events");
        assert!(format!("{:?}", db.options).contains("pw"));
        let fallback = vars(&[
            ("REPORTER_DATABASE_URL", " "),
            ("DATABASE_URL", "postgres://app@primary/events"),
        ]);
        let db = DatabaseConfig::from_url_vars(&Vars::new(&fallback), &names, "postgres://x@h/d")
            .unwrap();
        assert_eq!(format!("{db:?}"), "postgres://app@primary:5432/events");
        let db = DatabaseConfig::from_url_vars(&Vars::new(&vars(&[])), &names, "postgres://x@h/d")
            .unwrap();
        assert_eq!(format!("{db:?}"), "postgres://x@h:5432/d");
        let bad = vars(&[
            ("REPORTER_DATABASE_URL", "mysql://x"),
            ("DATABASE_URL", "postgres://app@primary/events"),
        ]);
        let e =
            DatabaseConfig::from_url_vars(&Vars::new(&bad), &names, "postgres://h/d").unwrap_err();
        assert_eq!(e.variable, "REPORTER_DATABASE_URL");
    }
}
