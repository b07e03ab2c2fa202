//! The Grafana dashboards under `deploy/grafana/dashboards`: their panels
//! and the PromQL each panel queries.
use crate::repo_root;
use serde_json::Value as Json;
use std::path::PathBuf;

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
