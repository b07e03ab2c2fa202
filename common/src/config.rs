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

/// `APP_ENV`: selects defaults such as log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Staging,
    Production,
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

/// Settings every service has.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub app_env: AppEnv,
    /// `LOG_LEVEL`: an `EnvFilter` directive such as `info` or `events_host=debug,info`.
    pub log_level: String,
    /// `CORRELATION_ID_HEADER`, lower-cased.
    pub correlation_id_header: String,
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
        let log_level = vars.string("LOG_LEVEL", "info");
        tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|e| ConfigError::new("LOG_LEVEL", e.to_string()))?;
        let correlation_id_header = vars
            .string("CORRELATION_ID_HEADER", "x-correlation-id")
            .to_ascii_lowercase();
        axum::http::HeaderName::from_bytes(correlation_id_header.as_bytes())
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

/// Parses a `postgres://` URL just enough to reject obvious mistakes early.
pub fn database_url(vars: &Vars, name: &str, default: &str) -> Result<String, ConfigError> {
    let url = vars.string(name, default);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url)
    } else {
        Err(ConfigError::new(
            name,
            "must be a postgres:// or postgresql:// URL",
        ))
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
}
