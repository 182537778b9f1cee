//! Targeted text edits of a lab file that keep the user's comments and layout.
//! kubelab never re-serialises lab.yaml: `init` and `scale` change one scalar.

/// Sets the scalar at `path` (`["nodes", "worker", "count"]`) to `value`,
/// keeping any trailing comment. Missing keys are inserted under the deepest
/// existing parent. Flow-style mappings (`{count: 1}`) are not edited: `None`.
pub fn set_scalar(text: &str, path: &[&str], value: &str) -> Option<String> {
    if let Some(body) = text.strip_prefix('\u{feff}') {
        // A byte-order mark (some Windows editors write one) stays first.
        return set_scalar(body, path, value).map(|t| format!("\u{feff}{t}"));
    }
    if text.contains('\r') && !text.contains('\n') {
        // Lines ended by a CR alone (classic Mac OS): edited as LF lines,
        // written back with their CRs.
        let edited = set_scalar(&text.replace('\r', "\n"), path, value)?;
        return Some(edited.replace('\n', "\r"));
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    // (indent, key) of the open mappings above the current line.
    let mut stack: Vec<(usize, String)> = Vec::new();
    // For each prefix length, the index of the last line inside that block.
    let mut block_end: Vec<Option<usize>> = vec![None; path.len() + 1];
    let mut block_indent: Vec<Option<usize>> = vec![None; path.len() + 1];
    block_end[0] = lines.len().checked_sub(1);
    block_indent[0] = Some(0);

    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let Some((key, rest)) = trimmed.split_once(':') else {
            continue;
        };
        if key.contains(' ') && !key.starts_with(['"', '\'']) {
            continue;
        }
        let key = key.trim_matches(['"', '\'']).to_string();
        while stack.last().is_some_and(|(ind, _)| *ind >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        let depth = matching_prefix(&stack, path);
        if depth == stack.len() && depth < path.len() {
            let (value_part, _) = split_comment(rest);
            if value_part.trim_start().starts_with(['{', '[']) {
                return None;
            }
        }
        // This line belongs to every block whose path is a prefix of the stack.
        for end in block_end.iter_mut().take(depth.min(path.len()) + 1).skip(1) {
            *end = Some(i);
        }
        if stack.len() == path.len() && depth == path.len() {
            let (value_part, comment) = split_comment(rest);
            if value_part.trim_start().starts_with('{') {
                return None;
            }
            let newline = &raw[line.len()..];
            let comment = comment.unwrap_or_default();
            // The key as written (quotes, colon) and the blanks after it.
            let key_part = &line[..line.len() - rest.len()];
            let gap = &value_part[..value_part.len() - value_part.trim_start().len()];
            let gap = if gap.is_empty() { " " } else { gap };
            let mut out = String::new();
            for (j, l) in lines.iter().enumerate() {
                if j == i {
                    out.push_str(&format!("{key_part}{gap}{value}{comment}{newline}"));
                } else {
                    out.push_str(l);
                }
            }
            return Some(out);
        }
        if stack.len() <= path.len() && depth == stack.len() {
            // A mapping on the path: its children's indentation is learnt from
            // the next line deeper than it.
            block_indent[stack.len()] = Some(indent);
        }
    }

    // Insert: find the deepest existing parent of the path.
    let depth = (1..path.len())
        .rev()
        .find(|d| block_indent[*d].is_some())
        .unwrap_or(0);
    let (indent, after) = if depth == 0 {
        (0, lines.len().checked_sub(1))
    } else {
        (block_indent[depth].unwrap_or(0) + 2, block_end[depth])
    };
    let mut insertion = String::new();
    for (k, key) in path.iter().enumerate().skip(depth) {
        let pad = " ".repeat(indent + 2 * (k - depth));
        if k + 1 == path.len() {
            insertion.push_str(&format!("{pad}{key}: {value}\n"));
        } else {
            insertion.push_str(&format!("{pad}{key}:\n"));
        }
    }
    let mut out = String::new();
    match after {
        None => out.push_str(&insertion),
        Some(after) => {
            for (j, l) in lines.iter().enumerate() {
                out.push_str(l);
                if j == after {
                    if !l.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(&insertion);
                }
            }
        }
    }
    Some(out)
}

fn matching_prefix(stack: &[(usize, String)], path: &[&str]) -> usize {
    stack
        .iter()
        .zip(path)
        .take_while(|((_, k), p)| k == *p)
        .count()
}

/// Splits `" 3\t# three"` into the value and the comment with the blanks
/// before it, as written (YAML starts a comment at a `#` after a space or a
/// TAB).
fn split_comment(rest: &str) -> (&str, Option<&str>) {
    let hash = rest
        .char_indices()
        .find(|&(i, c)| c == '#' && i > 0 && rest[..i].ends_with([' ', '\t']));
    match hash {
        Some((i, _)) => {
            let value = rest[..i].trim_end_matches([' ', '\t']);
            (value, Some(&rest[value.len()..]))
        }
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::set_scalar;

    #[test]
    fn replaces_a_value_and_keeps_comments() {
        let text = "# top\nnodes:\n  # workers\n  worker:\n    count: 1 # how many\n    memory: 2048\n  lb:\n    count: 2\n";
        let out = set_scalar(text, &["nodes", "worker", "count"], "3").unwrap();
        assert_eq!(
            out,
            "# top\nnodes:\n  # workers\n  worker:\n    count: 3 # how many\n    memory: 2048\n  lb:\n    count: 2\n"
        );
        let out = set_scalar(text, &["nodes", "lb", "count"], "1").unwrap();
        assert!(out.ends_with("  lb:\n    count: 1\n"));
    }

    #[test]
    fn inserts_a_missing_key_under_its_parent() {
        let text = "name: x\nnodes:\n  lb:\n    count: 1\n  worker:\n    memory: 1024\nversions:\n  etcd: 3.5.17\n";
        let out = set_scalar(text, &["nodes", "worker", "count"], "2").unwrap();
        assert_eq!(
            out,
            "name: x\nnodes:\n  lb:\n    count: 1\n  worker:\n    memory: 1024\n    count: 2\nversions:\n  etcd: 3.5.17\n"
        );
        let out = set_scalar("name: x\n", &["nodes", "worker", "count"], "2").unwrap();
        assert_eq!(out, "name: x\nnodes:\n  worker:\n    count: 2\n");
    }

    /// D9: a comment after a TAB is a comment too, and keeps its TAB.
    #[test]
    fn keeps_a_comment_after_a_tab_and_its_spacing() {
        let text = "nodes:\n  worker:\n    count: 1\t# one worker\n  lb:\n    count: 2   #  two\n";
        let out = set_scalar(text, &["nodes", "worker", "count"], "3").unwrap();
        assert_eq!(
            out,
            "nodes:\n  worker:\n    count: 3\t# one worker\n  lb:\n    count: 2   #  two\n"
        );
        let out = set_scalar(text, &["nodes", "lb", "count"], "1").unwrap();
        assert!(out.ends_with("    count: 1   #  two\n"), "{out}");
    }

    /// The blanks between the key and its value stay (`count:   1`).
    #[test]
    fn keeps_the_padding_after_the_key() {
        let text = "nodes:\n  worker:\n    count:   1   # aligned\n  lb:\n    \"count\":\t2\n";
        let out = set_scalar(text, &["nodes", "worker", "count"], "3").unwrap();
        assert_eq!(
            out,
            "nodes:\n  worker:\n    count:   3   # aligned\n  lb:\n    \"count\":\t2\n"
        );
        let out = set_scalar(text, &["nodes", "lb", "count"], "1").unwrap();
        assert!(out.ends_with("    \"count\":\t1\n"), "{out}");
        let out = set_scalar(
            "nodes:\n  worker:\n    count:\n",
            &["nodes", "worker", "count"],
            "2",
        );
        assert_eq!(out.unwrap(), "nodes:\n  worker:\n    count: 2\n");
    }

    #[test]
    fn keeps_crlf_line_endings() {
        let text = "nodes:\r\n  worker:\r\n    count: 1\r\n";
        let out = set_scalar(text, &["nodes", "worker", "count"], "4").unwrap();
        assert_eq!(out, "nodes:\r\n  worker:\r\n    count: 4\r\n");
    }

    #[test]
    fn keeps_cr_only_line_endings() {
        let text = "nodes:\r  worker:\r    count: 1 # one\r  dns:\r    count: 1\r";
        let out = set_scalar(text, &["nodes", "worker", "count"], "3").unwrap();
        assert_eq!(
            out,
            "nodes:\r  worker:\r    count: 3 # one\r  dns:\r    count: 1\r"
        );
        let out = set_scalar(
            "nodes:\r  dns:\r    count: 1",
            &["nodes", "worker", "count"],
            "2",
        );
        assert_eq!(
            out.unwrap(),
            "nodes:\r  dns:\r    count: 1\r  worker:\r    count: 2\r"
        );
    }

    #[test]
    fn refuses_flow_mappings() {
        assert!(
            set_scalar(
                "nodes:\n  worker: {count: 1}\n",
                &["nodes", "worker", "count"],
                "2"
            )
            .is_none()
        );
    }
}
