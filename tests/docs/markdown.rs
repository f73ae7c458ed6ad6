//! Just enough Markdown for `tests/docs.rs`: table rows of the configuration
//! reference, link targets, and the anchors GitHub makes of headings. Code
//! blocks and code spans are skipped where they would be misread (a `# ...`
//! comment in a shell block is not a heading, a `[x](y)` in a span is not a
//! link).

/// The text outside fenced code blocks, fences replaced by empty lines (so
/// line numbers stay meaningful for messages).
pub fn outside_fences(text: &str) -> Vec<&str> {
    let mut in_fence = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
                return "";
            }
            if in_fence {
                ""
            } else {
                line
            }
        })
        .collect()
}

/// The cells of a table row `| a | b |`, split on `|` outside code spans
/// and not escaped as `\|`, trimmed. `None` for a line that is not a row.
pub fn table_cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    let mut cells = vec![String::new()];
    let mut in_code = false;
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '|' if !in_code && !escaped => cells.push(String::new()),
            _ => {
                if c == '`' {
                    in_code = !in_code;
                }
                cells.last_mut().unwrap().push(c);
            }
        }
        escaped = c == '\\';
    }
    Some(cells.into_iter().map(|c| c.trim().to_string()).collect())
}

/// The content of a cell made of exactly one code span (`` `x` ``), or of
/// the code span it starts with when `leading` (`` `""` (off) ``).
pub fn code_span(cell: &str, leading: bool) -> Option<&str> {
    let rest = cell.strip_prefix('`')?;
    let end = rest.find('`')?;
    let after = rest[end + 1..].trim();
    (leading || after.is_empty()).then(|| &rest[..end])
}

/// The line without its code spans, so their text is not read as links.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// Every link target of the document: inline `[text](target)`, autolinks
/// `<https://...>` and reference definitions `[name]: target`, each with
/// its line number.
pub fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (i, line) in outside_fences(text).into_iter().enumerate() {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or("");
            targets.push((i + 1, target.to_string()));
            rest = &after[end..];
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find('<') {
            let after = &rest[at + 1..];
            let end = after.find('>').unwrap_or(after.len());
            let inside = &after[..end];
            if inside.starts_with("http://") || inside.starts_with("https://") {
                targets.push((i + 1, inside.to_string()));
            }
            rest = &after[end..];
        }
        let trimmed = line.trim_start();
        if let Some(def) = trimmed.strip_prefix('[') {
            if let Some((_, target)) = def.split_once("]: ") {
                targets.push((i + 1, target.trim().to_string()));
            }
        }
    }
    targets
}

/// The anchors GitHub gives the document's headings: lower case, letters,
/// digits, `-` and `_` kept, spaces made `-`, everything else dropped;
/// repeated anchors numbered `-1`, `-2`.
pub fn anchors(text: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for line in outside_fences(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let count = seen
            .iter()
            .filter(|a| **a == base || a.strip_prefix(&format!("{base}-")).is_some_and(is_number))
            .count();
        seen.push(if count == 0 {
            base
        } else {
            format!("{base}-{count}")
        });
    }
    seen
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn anchors_follow_github() {
    let text =
        "# A `[server.tls]` B\n```sh\n# not a heading\n```\n## `routes --openapi`\n## X\n## X\n";
    assert_eq!(
        anchors(text),
        vec!["a-servertls-b", "routes---openapi", "x", "x-1"]
    );
}

#[test]
fn links_in_code_are_not_links() {
    let text =
        "see [a](a.md) and `[b](b.md)`, <https://example.org>\n```\n[c](c.md)\n```\n[d]: d.md\n";
    let targets: Vec<String> = link_targets(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(targets, vec!["a.md", "https://example.org", "d.md"]);
}

#[test]
fn table_cells_keep_pipes_inside_code() {
    let cells = table_cells("| `a` | `b \\| c` | `x|y` |").unwrap();
    assert_eq!(cells, vec!["`a`", "`b \\| c`", "`x|y`"]);
    assert_eq!(code_span("`\"\"` (off)", true), Some("\"\""));
    assert_eq!(code_span("`\"\"` (off)", false), None);
}
