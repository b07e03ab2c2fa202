//! PromQL as the dashboards use it: the metric names an expression reads,
//! and the expression Prometheus receives from Grafana.
use std::collections::BTreeSet;

/// Clauses whose parenthesised label list is not a metric (`by (le)`).
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Operators, keywords and aggregations: never metric names (aggregation
/// operators may be followed by `by (...)` instead of `(`).
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

/// Metric names referenced by a PromQL expression (a conservative lexer:
/// strings, label matchers, ranges and grouping clauses removed; identifiers
/// followed by `(` are functions or aggregations).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    // Walk identifiers; grouping / matching clauses (`by (a, b)`) are
    // skipped up to their closing parenthesis.
    let chars: Vec<char> = without_literals(expr).chars().collect();
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

/// `expr` with string literals, label matchers `{...}` and ranges `[...]`
/// each replaced by a space.
fn without_literals(expr: &str) -> String {
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
    cleaned
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
}
