//! What the tests check in the README: its port tables and the commands of
//! its code blocks.
use std::collections::BTreeSet;

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
