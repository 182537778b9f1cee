//! Whether `lab scale`'s text edit of `nodes.worker.count` understood the
//! layout of lab.yaml, and the refusal when it did not.

use super::*;

/// Whether `new_text` is `old_text` with `nodes.worker.count` set to `count`
/// and nothing else changed, as YAML reads both: the text edit understood the
/// layout. Layouts it does not (`count : 1`, the value on the next line, a
/// JSON file, an anchor on the count, children indented unlike the edit
/// assumes) give another document, or none.
pub(super) fn only_the_count_changed(old_text: &str, new_text: &str, count: u32) -> bool {
    use serde_yaml::{Mapping, Value};
    let read = |t: &str| serde_yaml::from_str::<Value>(t.strip_prefix('\u{feff}').unwrap_or(t));
    let (Ok(mut wanted), Ok(got)) = (read(old_text), read(new_text)) else {
        return false;
    };
    let mut at = &mut wanted;
    for key in ["nodes", "worker"] {
        if at.is_null() {
            *at = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = at else {
            return false;
        };
        at = map.entry(key.into()).or_insert(Value::Null);
    }
    if at.is_null() {
        *at = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(worker) = at else {
        return false;
    };
    worker.insert("count".into(), count.into());
    wanted == got
}

/// The refusal for a lab.yaml whose `nodes.worker.count` kubelab cannot edit
/// in place: the line as written, and the block layout it can edit.
pub(super) fn not_editable(path: &std::path::Path, text: &str, count: u32) -> Error {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let sep = if text.contains('\n') { '\n' } else { '\r' };
    let mut in_worker = false;
    let mut line = None;
    for (i, l) in text.split(sep).enumerate() {
        let l = l.trim_end_matches('\r');
        let content = l.split(" #").next().unwrap_or("");
        if l.trim_start().starts_with('#') {
            continue;
        }
        if !in_worker {
            if let Some(at) = content.find("worker") {
                in_worker = true;
                if content[at..].contains("count") {
                    line = Some((i + 1, l.trim()));
                    break;
                }
            }
        } else if content.contains("count") {
            line = Some((i + 1, l.trim()));
            break;
        }
    }
    let what = match line {
        Some((n, l)) => format!("line {n}: `{l}`"),
        None => "no `count:` line under nodes.worker".to_string(),
    };
    Error::usage(
        format!(
            "lab scale cannot edit nodes.worker.count in {} in place: it is written in a layout kubelab does not edit ({what})",
            path.display()
        ),
        format!(
            "write it in block style, one `key: value` per line with two spaces per level (`nodes:` / `  worker:` / `    count: {count}`), without anchors or flow style ({{...}}), then scale again"
        ),
    )
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    const BLOCK: &str = "name: a\nnodes:\n  worker:\n    count: 1 # one\n  lb:\n    count: 2\n";

    fn edit(text: &str) -> Option<String> {
        yaml_edit::set_scalar(text, &["nodes", "worker", "count"], "3")
            .filter(|new| only_the_count_changed(text, new, 3))
    }

    /// U6: a valid lab.yaml whose count the text edit cannot change is
    /// refused as a layout, with its line and the layout to write, never as
    /// a count that "does not fit".
    #[test]
    fn layouts_the_edit_cannot_change_are_refused_with_the_line() {
        assert!(edit(BLOCK).unwrap().contains("    count: 3 # one\n"));
        assert!(edit("name: a\n").is_some(), "a missing count is added");
        let bom = edit("\u{feff}nodes:\n  worker:\n    count: 1\n").unwrap();
        assert_eq!(bom, "\u{feff}nodes:\n  worker:\n    count: 3\n");
        for text in [
            "nodes:\n  worker:\n    count : 1\n",
            "nodes:\n  worker:\n    count:\n      1\n",
            "{\"nodes\": {\"worker\": {\n  \"count\": 1}}}\n",
            "nodes:\n  worker:\n    count: &c 1\n  lb:\n    count: *c\n",
            "nodes:\n    worker:\n        memory: 2048\n",
        ] {
            assert_eq!(edit(text), None, "{text:?}");
        }
        let err = not_editable(
            std::path::Path::new("lab.yaml"),
            "nodes:\n  worker:\n    count : 1\n",
            3,
        );
        assert_eq!(err.exit_code(), 2);
        let said = format!("{err} {}", err.hint().unwrap());
        assert!(said.contains("line 3: `count : 1`"), "{said}");
        assert!(said.contains("`    count: 3`"), "{said}");
        assert!(!said.contains("does not fit"), "{said}");
        let err = not_editable(
            std::path::Path::new("lab.yaml"),
            "nodes:\n    worker:\n        memory: 2048\n",
            3,
        );
        assert!(
            err.to_string()
                .contains("no `count:` line under nodes.worker"),
            "{err}"
        );
    }
}
