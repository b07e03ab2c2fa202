//! docker-compose files as the tests read them: YAML with merge keys, env
//! files, each service's environment and ports.
use crate::read;
use serde_yaml::Value as Yaml;
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Parses YAML text, resolving `<<` merge keys as docker-compose does.
pub fn parse_yaml(text: &str, what: &str) -> Yaml {
    let mut v: Yaml =
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{what}: bad merge key: {e}"));
    v
}

/// Parses a YAML file under the repository root.
pub fn load_yaml(rel: &str) -> Yaml {
    parse_yaml(&read(rel), rel)
}

/// `v[key]` for a string key, `None` when absent or `v` is not a mapping.
pub fn get<'a>(v: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    v.as_mapping().and_then(|m| m.get(key))
}

/// A YAML scalar as a string (numbers and booleans too).
pub fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A sequence of scalars (`["a", "b"]`) or a single string (`"a b"` is kept
/// whole) as strings.
pub fn strings(v: Option<&Yaml>) -> Vec<String> {
    match v {
        Some(Yaml::Sequence(s)) => s.iter().filter_map(scalar).collect(),
        Some(other) => scalar(other).into_iter().collect(),
        None => Vec::new(),
    }
}

/// The mapping keys of `v` as strings.
pub fn keys(v: Option<&Yaml>) -> Vec<String> {
    v.and_then(Yaml::as_mapping)
        .map(|m| m.keys().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// Parses an env file the way docker-compose does for the simple cases we
/// use: `NAME=value` lines, `#` comments, blank lines, optional quotes.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        out.insert(k.trim().to_string(), v.to_string());
    }
    out
}

/// The environment a compose service gets: its `env_file`s (paths relative
/// to `base_dir`, in order) overlaid by `environment` (mapping or list form).
pub fn service_env(service: &Yaml, base_dir: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for file in strings(get(service, "env_file")) {
        let path = base_dir.join(&file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("env_file {}: {e}", path.display()));
        env.extend(parse_env_file(&text));
    }
    match get(service, "environment") {
        Some(Yaml::Mapping(m)) => {
            for (k, v) in m {
                if let Some(k) = scalar(k) {
                    env.insert(k, scalar(v).unwrap_or_default());
                }
            }
        }
        Some(Yaml::Sequence(items)) => {
            for item in items.iter().filter_map(scalar) {
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                env.insert(k.to_string(), v.to_string());
            }
        }
        _ => {}
    }
    env
}

/// A published or exposed port of a compose service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The host side, when published.
    pub host: Option<u16>,
    /// The host address it is published on; `None` is every interface.
    pub host_ip: Option<String>,
    /// The container side.
    pub container: u16,
}

/// Parses compose `ports` (short syntax `"3000:3000"`, `"127.0.0.1:3000:3000"`,
/// `"3000"`, long syntax `{target, published}`) and `expose`.
pub fn service_ports(service: &Yaml) -> Vec<PortMapping> {
    fn port(s: &str) -> Option<u16> {
        s.split('/').next()?.trim().parse().ok()
    }
    let mut out = Vec::new();
    if let Some(Yaml::Sequence(items)) = get(service, "ports") {
        for item in items {
            if let Some(s) = scalar(item) {
                let parts: Vec<&str> = s.split(':').collect();
                let container = parts.last().and_then(|p| port(p));
                let host = if parts.len() >= 2 {
                    port(parts[parts.len() - 2])
                } else {
                    None
                };
                let host_ip = (parts.len() >= 3).then(|| parts[..parts.len() - 2].join(":"));
                if let Some(container) = container {
                    out.push(PortMapping {
                        host,
                        host_ip,
                        container,
                    });
                }
            } else if item.is_mapping() {
                let container = get(item, "target").and_then(scalar).and_then(|p| port(&p));
                let host = get(item, "published")
                    .and_then(scalar)
                    .and_then(|p| port(&p));
                let host_ip = get(item, "host_ip").and_then(scalar);
                if let Some(container) = container {
                    out.push(PortMapping {
                        host,
                        host_ip,
                        container,
                    });
                }
            }
        }
    }
    for p in strings(get(service, "expose")) {
        if let Some(container) = port(&p) {
            out.push(PortMapping {
                host: None,
                host_ip: None,
                container,
            });
        }
    }
    out
}

/// Every port number a service is known by: published, container, exposed
/// and its `PORT` variable.
pub fn all_ports(service: &Yaml, env: &BTreeMap<String, String>) -> BTreeSet<u16> {
    let mut set = BTreeSet::new();
    for p in service_ports(service) {
        set.insert(p.container);
        if let Some(h) = p.host {
            set.insert(h);
        }
    }
    if let Some(p) = env.get("PORT").and_then(|p| p.parse().ok()) {
        set.insert(p);
    }
    set
}
