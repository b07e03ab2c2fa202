//! Helpers for the deployment tests in `tests/`: locating the repository,
//! reading compose / env / YAML files, walking Grafana dashboards and pulling
//! metric names out of PromQL.
//!
//! The tests themselves live in `tests/compose.rs`, `tests/dashboards.rs`,
//! `tests/prometheus_e2e.rs`, `tests/dev_script.rs` and `tests/cluster/`;
//! [`local`] and [`script`] serve the ones that run the services natively.

pub mod local;
pub mod script;

pub use local::{
    accepts, bin_dir, block_on_thread, create_database, delete_streams, drop_database, env_or,
    free_port, free_ports, kill, lacks_tool, missing_binaries, ready, running, scratch_dir, skip,
    unique_id,
};
pub use script::{assert_names_missing_binaries, ScriptRun};

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

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

/// Rows of markdown tables whose first cell is one of `names` (backticks
/// and bold markers ignored) and that hold a port number in a later cell:
/// `| gateway | 3000 | ... |` gives `("gateway", 3000)`.
pub fn readme_ports(markdown: &str, names: &BTreeSet<String>) -> Vec<(String, u16)> {
    let clean = |c: &str| {
        c.trim()
            .trim_matches(|ch| ch == '`' || ch == '*')
            .trim()
            .to_string()
    };
    let mut out = Vec::new();
    for line in markdown.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<String> = line.trim_matches('|').split('|').map(clean).collect();
        let Some(first) = cells.first() else { continue };
        if !names.contains(first) {
            continue;
        }
        let port = cells[1..].iter().find_map(|c| {
            let digits: String = c
                .trim_start_matches(':')
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!digits.is_empty() && digits.len() == c.trim_start_matches(':').len())
                .then(|| digits.parse::<u16>().ok())
                .flatten()
        });
        if let Some(port) = port {
            out.push((first.clone(), port));
        }
    }
    out
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

/// Every `*.json` under `deploy/grafana/dashboards`, parsed.
pub fn dashboards() -> Vec<(PathBuf, Json)> {
    let dir = repo_root().join("deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            (p, json)
        })
        .collect()
}

/// All panels of a dashboard, rows' nested panels included (rows too).
pub fn panels(dashboard: &Json) -> Vec<&Json> {
    fn walk<'a>(list: Option<&'a Json>, out: &mut Vec<&'a Json>) {
        for p in list.and_then(Json::as_array).into_iter().flatten() {
            out.push(p);
            walk(p.get("panels"), out);
        }
    }
    let mut out = Vec::new();
    walk(dashboard.get("panels"), &mut out);
    out
}

/// The title of a panel, for messages.
pub fn title(panel: &Json) -> String {
    panel
        .get("title")
        .and_then(Json::as_str)
        .unwrap_or("<untitled>")
        .to_string()
}

/// The `expr` of every target of a panel (empty strings included, so the
/// caller can complain about them).
pub fn panel_exprs(panel: &Json) -> Vec<String> {
    panel
        .get("targets")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            t.get("expr")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Every (dashboard file name, panel title, expr) of every dashboard.
pub fn all_exprs() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, dash) in dashboards() {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        for panel in panels(&dash) {
            for expr in panel_exprs(panel) {
                out.push((file.clone(), title(panel), expr));
            }
        }
    }
    out
}

/// Metric names referenced by a PromQL expression (a conservative lexer:
/// strings, label matchers, ranges and grouping clauses removed; identifiers
/// followed by `(` are functions or aggregations).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Aggregation operators may be followed by `by (...)` instead of `(`.
    const KEYWORDS: &[&str] = &[
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    // Drop string literals, {...}, [...].
    let mut cleaned = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let quote = c;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == quote {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                for d in chars.by_ref() {
                    if d == close {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            _ => cleaned.push(c),
        }
    }
    // Walk identifiers; grouping / matching clauses (`by (a, b)`) are
    // skipped up to their closing parenthesis.
    let chars: Vec<char> = cleaned.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied().unwrap_or(' ');
            let lower = ident.to_ascii_lowercase();
            if GROUPING.contains(&lower.as_str()) {
                if next == '(' {
                    while j < chars.len() && chars[j] != ')' {
                        j += 1;
                    }
                    i = j + 1;
                }
                continue;
            }
            if !KEYWORDS.contains(&lower.as_str()) && next != '(' {
                names.insert(ident);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // numbers (1, 0.95, 1e3, 0x1f) are skipped whole
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Grafana's built-in interval variables a panel query may use, and the
/// duration each stands for when the query is evaluated outside Grafana.
pub const GRAFANA_INTERVALS: &[(&str, &str)] = &[
    ("__range", "5m"),
    ("__rate_interval", "1m"),
    ("__interval", "1m"),
];

/// `expr` as Prometheus receives it from Grafana, with the built-in interval
/// variables replaced by [`GRAFANA_INTERVALS`]' durations. Any other `$`
/// (a dashboard variable such as `$job`, `${__range}`, `$__range_s`) is an
/// error: nothing would replace it outside Grafana, and no dashboard defines
/// variables.
pub fn prometheus_expr(expr: &str) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..end];
        match GRAFANA_INTERVALS.iter().find(|(var, _)| *var == name) {
            Some((_, duration)) => out.push_str(duration),
            None => {
                let context: String = rest[i..].chars().take(24).collect();
                return Err(format!(
                    "`{context}`: only Grafana's built-in ${} may be used",
                    GRAFANA_INTERVALS
                        .iter()
                        .map(|(var, _)| *var)
                        .collect::<Vec<_>>()
                        .join(", $")
                ));
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The shell commands of the code block under the README heading
/// `heading` (e.g. `## API examples`): lines ending in `\\` and lines inside
/// an open quote joined, comment lines and trailing ` # ...` comments
/// dropped.
pub fn readme_commands(markdown: &str, heading: &str) -> Vec<String> {
    let lines = markdown
        .lines()
        .skip_while(|l| l.trim() != heading)
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"));
    let in_quotes = |text: &str| text.matches('\'').count() % 2 == 1;
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in lines {
        if current.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        // A ` #` outside quotes starts a comment.
        let comment = line
            .match_indices(" #")
            .map(|(i, _)| i)
            .find(|i| !in_quotes(&format!("{current}{}", &line[..*i])));
        let code = comment.map_or(line, |i| &line[..i]).trim_end();
        match code.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(code);
                if in_quotes(&current) {
                    current.push('\n');
                } else {
                    commands.push(std::mem::take(&mut current).trim().to_string());
                }
            }
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skip_labels_functions_and_ranges() {
        let e = r#"histogram_quantile(0.95, sum by (le, report) (rate(reporter_report_duration_seconds_bucket{x="a b"}[1m]))) or sum by (service) (rate(http_requests_total{status=~"5.."}[1m])) * 0 or vector(0)"#;
        let names: Vec<String> = metric_names(e).into_iter().collect();
        assert_eq!(
            names,
            vec![
                "http_requests_total".to_string(),
                "reporter_report_duration_seconds_bucket".to_string()
            ]
        );
        assert!(metric_names("sum by () (up)").contains("up"));
    }

    #[test]
    fn readme_rows_with_ports() {
        let names: BTreeSet<String> = ["gateway", "reporter"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let md = "| Service | Port |\n|---|---|\n| `gateway` | 3000 | webhook |\n| reporter | `3003` |\n| other | 1 |\n";
        assert_eq!(
            readme_ports(md, &names),
            vec![
                ("gateway".to_string(), 3000),
                ("reporter".to_string(), 3003)
            ]
        );
    }

    #[test]
    fn readme_commands_join_continuations_and_drop_comments() {
        let md = "## API examples\n\n```sh\n# a comment\ncurl -s a \\\n  -d 'x # y\n  z'\n# → out\ncurl -s 'b?x=1'  # note\n```\n## Next\n```sh\nno\n```\n";
        assert_eq!(
            readme_commands(md, "## API examples"),
            vec!["curl -s a   -d 'x # y\n  z'", "curl -s 'b?x=1'"]
        );
    }
}
