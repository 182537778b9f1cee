//! `kubelab lab kubeconfig`: the lab's admin kubeconfig on the hypervisor,
//! and its cluster, user and context (all named `kubelab-<lab>`) merged into
//! or removed from the user's own kubeconfig without touching anything else.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::printer::Printer;
use crate::settings::Settings;

/// After a `lab up` that leaves the Kubernetes API up with its RBAC applied
/// (the addons phase done), merge the lab into the user's kubeconfig and
/// make it the current context, as kind does, so `kubectl get nodes` works
/// with nothing else to set. Earlier, there is no API to point at.
pub fn after_up(loaded: &LoadedLab, settings: &Settings, printer: &Printer) -> Result<()> {
    let state =
        crate::state::State::load(&loaded.state_dir().join("state.json"), &loaded.lab.name)?;
    let done = crate::provision::phases_done(&loaded.topo, &state);
    if !done.contains(&crate::topology::Phase::Addons) {
        return Ok(());
    }
    let admin = write_admin(loaded, printer)?;
    let file = user_file(settings)?;
    let _host = settings.host_lock()?;
    let merged = merge(&file, &admin, &loaded.lab.name, true)?;
    printer.info(format!(
        "kubectl now uses context {} (in {}); `kubectl config use-context` switches back, `kubelab lab destroy` removes it",
        merged.context,
        merged.file.display()
    ));
    Ok(())
}

/// The admin kubeconfig's place: `.kubelab/admin.kubeconfig` (0600).
pub fn admin_path(loaded: &LoadedLab) -> PathBuf {
    loaded.state_dir().join("admin.kubeconfig")
}

/// The name of the lab's cluster, user and context in a merged kubeconfig.
pub fn entry_name(lab: &str) -> String {
    format!("kubelab-{lab}")
}

/// Writes the admin kubeconfig from the lab's PKI; returns its path. The PKI
/// must exist: a kubeconfig for a CA that no cluster trusts is no use.
pub fn write_admin(loaded: &LoadedLab, printer: &Printer) -> Result<PathBuf> {
    let pki_dir = loaded.state_dir().join("pki");
    if !pki_dir.join("ca.pem").exists() {
        return Err(Error::other(
            format!(
                "lab {} has no certificates yet ({} is empty), so there is no admin kubeconfig",
                loaded.lab.name,
                pki_dir.display()
            ),
            "`kubelab lab up` creates the lab and its certificates (`kubelab lab render` only the certificates)",
        ));
    }
    // It may sign what is missing: under the lab's lock, as render does.
    let _lock = crate::lab::pki_lock(loaded, "kubelab lab kubeconfig")?;
    let pki = crate::pki::load_or_create(&pki_dir, &loaded.lab, &loaded.topo)?;
    let text = crate::render::admin_kubeconfig(&loaded.lab, &loaded.topo, &pki);
    let path = admin_path(loaded);
    crate::fsutil::write_atomic(&path, text.expose().as_bytes(), 0o600)?;
    printer.info(format!(
        "admin kubeconfig of lab {} (server {}): {}",
        loaded.lab.name,
        loaded.topo.api.url(),
        path.display()
    ));
    Ok(path)
}

/// The user's kubeconfig kubelab edits: `$KUBECONFIG`'s first file, else
/// ~/.kube/config; a symlink is followed so the link stays a link.
pub fn user_file(settings: &Settings) -> Result<PathBuf> {
    let path = settings.user_kubeconfig.clone().ok_or_else(|| {
        Error::usage(
            "neither KUBECONFIG nor HOME is set, so there is no kubeconfig to merge into",
            "set KUBECONFIG=/path/to/config",
        )
    })?;
    Ok(fs_err::canonicalize(&path).unwrap_or(path))
}

/// What a merge did, for the progress line.
#[derive(Debug)]
pub struct Merged {
    pub file: PathBuf,
    pub backup: Option<PathBuf>,
    pub context: String,
}

/// Adds (or replaces) the lab's cluster, user and context in `file`,
/// keeping every other entry and setting; `use_it` also makes it the
/// current context. The old file is copied to `<file>.kubelab.bak` first.
pub fn merge(file: &Path, admin: &Path, lab: &str, use_it: bool) -> Result<Merged> {
    let admin_doc = parse(admin, &fs_err::read_to_string(admin)?)?;
    let first = |key: &str, field: &str| -> Result<Value> {
        admin_doc
            .get(key)
            .and_then(Value::as_sequence)
            .and_then(|s| s.first())
            .and_then(|e| e.get(field))
            .cloned()
            .ok_or_else(|| {
                Error::other(
                    format!("{}: no {key}[0].{field}", admin.display()),
                    "delete it and run `kubelab lab kubeconfig` again to rewrite it",
                )
            })
    };
    let cluster = first("clusters", "cluster")?;
    let user = first("users", "user")?;
    let name = entry_name(lab);

    let existing = read_optional(file)?;
    let mut doc = match &existing {
        Some(text) => parse(file, text)?,
        None => Mapping::new(),
    };
    if existing.is_none() {
        doc.insert("apiVersion".into(), "v1".into());
        doc.insert("kind".into(), "Config".into());
    }
    let mut context = Mapping::new();
    context.insert("cluster".into(), name.clone().into());
    context.insert("user".into(), name.clone().into());
    for (list, field, value) in [
        ("clusters", "cluster", cluster),
        ("users", "user", user),
        ("contexts", "context", Value::Mapping(context)),
    ] {
        let entries = sequence(&mut doc, file, list)?;
        entries.retain(|e| !is_named(e, &name));
        let mut entry = Mapping::new();
        entry.insert("name".into(), name.clone().into());
        entry.insert(field.into(), value);
        entries.push(Value::Mapping(entry));
    }
    if use_it {
        doc.insert("current-context".into(), name.clone().into());
    }
    let edited = existing.as_deref().and_then(|text| {
        let (bom, body) = split_bom(text);
        let mut text = body.to_string();
        for list in ["clusters", "users", "contexts"] {
            let entry = doc
                .get(list)
                .and_then(Value::as_sequence)
                .and_then(|s| s.last())
                .cloned()?;
            text = text_edit::set_entry(&text, list, &name, Some(&entry))?;
        }
        if use_it {
            text = crate::yaml_edit::set_scalar(&text, &["current-context"], &name)?;
        }
        Some(format!("{bom}{text}"))
    });
    let backup = save(file, existing.as_deref(), &doc, edited)?;
    Ok(Merged {
        file: file.to_path_buf(),
        backup,
        context: name,
    })
}

/// Removes the lab's cluster, user and context from `file` (and the current
/// context when it was the lab's). Returns whether anything was removed; a
/// file without them is not rewritten.
pub fn remove(file: &Path, lab: &str) -> Result<bool> {
    let Some(text) = read_optional(file)? else {
        return Ok(false);
    };
    let mut doc = parse(file, &text)?;
    let name = entry_name(lab);
    let mut removed = false;
    for list in ["clusters", "users", "contexts"] {
        if let Some(Value::Sequence(entries)) = doc.get_mut(list) {
            let before = entries.len();
            entries.retain(|e| !is_named(e, &name));
            removed |= entries.len() != before;
        }
    }
    let was_current = doc.get("current-context").and_then(Value::as_str) == Some(name.as_str());
    if was_current {
        // What kubectl writes when no context is current.
        doc.insert("current-context".into(), "".into());
        removed = true;
    }
    if removed {
        let (bom, body) = split_bom(&text);
        let mut edited = Some(body.to_string());
        for list in ["clusters", "users", "contexts"] {
            edited = edited.and_then(|t| text_edit::set_entry(&t, list, &name, None));
        }
        if was_current {
            edited =
                edited.and_then(|t| crate::yaml_edit::set_scalar(&t, &["current-context"], "\"\""));
        }
        let edited = edited.map(|t| format!("{bom}{t}"));
        save(file, Some(&text), &doc, edited)?;
    }
    Ok(removed)
}

/// Whether the cluster `kubelab-<lab>` in `file` is the lab's whose CA is
/// `ca_pem`: its `certificate-authority-data` is that CA. `None` when the
/// file holds no such cluster.
pub fn owned_by(file: &Path, lab: &str, ca_pem: Option<&[u8]>) -> Result<Option<bool>> {
    use base64::Engine;
    let Some(text) = read_optional(file)? else {
        return Ok(None);
    };
    let doc = parse(file, &text)?;
    let name = entry_name(lab);
    let Some(cluster) = doc
        .get("clusters")
        .and_then(Value::as_sequence)
        .and_then(|s| s.iter().find(|e| is_named(e, &name)))
    else {
        return Ok(None);
    };
    let data = cluster
        .get("cluster")
        .and_then(|c| c.get("certificate-authority-data"))
        .and_then(Value::as_str)
        .and_then(|d| {
            base64::engine::general_purpose::STANDARD
                .decode(d.trim())
                .ok()
        });
    Ok(Some(
        matches!((data, ca_pem), (Some(d), Some(ca)) if d == ca),
    ))
}

/// `lab destroy`'s clean-up: removes the lab's entries from the user's
/// kubeconfig when they are this lab's (its cluster trusts `ca_pem`, the
/// lab's CA), and only warns when it cannot (the VMs are gone either way).
/// Entries of the same name that trust another CA are another lab's (a
/// same-named lab in another folder): they stay, and it says so.
pub fn forget(lab: &str, ca_pem: Option<&[u8]>, settings: &Settings, printer: &Printer) {
    let Ok(file) = user_file(settings) else {
        return;
    };
    let _host = settings.host_lock();
    let name = entry_name(lab);
    let removed = owned_by(&file, lab, ca_pem).and_then(|owned| match owned {
        None => Ok(false),
        Some(false) => {
            printer.info(format!(
                "left context {name} in {}: its cluster trusts another CA than this lab's{}, so it is another lab's of that name",
                file.display(),
                if ca_pem.is_none() { " (this lab has none)" } else { "" }
            ));
            Ok(false)
        }
        Some(true) => remove(&file, lab),
    });
    match removed {
        Ok(true) => printer.info(format!("removed context {name} from {}", file.display())),
        Ok(false) => {}
        Err(e) => printer.warn(format!(
            "could not remove context {name} from {}: {e}",
            file.display()
        )),
    }
}

fn read_optional(file: &Path) -> Result<Option<String>> {
    match fs_err::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A UTF-8 byte-order mark at the start (some Windows editors write one) and
/// the text after it: the YAML parser reads the mark as a second document.
fn split_bom(text: &str) -> (&str, &str) {
    match text.strip_prefix('\u{feff}') {
        Some(body) => ("\u{feff}", body),
        None => ("", text),
    }
}

fn parse(file: &Path, text: &str) -> Result<Mapping> {
    let text = split_bom(text).1;
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err(Error::usage(
            format!(
                "{}: is not a kubeconfig (not a YAML mapping)",
                file.display()
            ),
            "point KUBECONFIG at a kubeconfig file, or move this file away",
        )),
        Err(e) => Err(Error::usage(
            format!("{}: is not valid YAML: {e}", file.display()),
            "fix the file (kubelab changes nothing in it until it parses), or point KUBECONFIG elsewhere",
        )),
    }
}

/// `doc[list]` as a sequence, created when missing or null.
fn sequence<'a>(doc: &'a mut Mapping, file: &Path, list: &str) -> Result<&'a mut Vec<Value>> {
    let slot = doc
        .entry(list.into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if slot.is_null() {
        *slot = Value::Sequence(Vec::new());
    }
    match slot {
        Value::Sequence(s) => Ok(s),
        other => Err(Error::usage(
            format!(
                "{}: {list}: is a {}, not a list",
                file.display(),
                kind(other)
            ),
            format!("make {list} a list of entries with a name, as kubectl writes it"),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Mapping(_) => "mapping",
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        _ => "value",
    }
}

fn is_named(entry: &Value, name: &str) -> bool {
    entry.get("name").and_then(Value::as_str) == Some(name)
}

/// Writes the new kubeconfig atomically with mode 0600 (it holds client
/// keys). `edited` is the old text edited in place (comments and layout of
/// every entry kubelab does not own kept); it is used when it reads back as
/// exactly `doc`, else `doc` is written whole. The first time kubelab
/// changes the file, the user's original is copied to `<file>.kubelab.bak`;
/// a later change never overwrites that copy.
fn save(
    file: &Path,
    old: Option<&str>,
    doc: &Mapping,
    edited: Option<String>,
) -> Result<Option<PathBuf>> {
    let wanted = Value::Mapping(doc.clone());
    let text = match edited
        .filter(|t| serde_yaml::from_str::<Value>(split_bom(t).1).ok().as_ref() == Some(&wanted))
    {
        Some(text) => text,
        None => serde_yaml::to_string(doc)
            .map_err(|e| Error::other(format!("could not encode the kubeconfig: {e}"), ""))?,
    };
    if let Some(dir) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir)?;
    }
    let backup = match old {
        Some(old) => {
            let mut name = file.as_os_str().to_owned();
            name.push(".kubelab.bak");
            let backup = PathBuf::from(name);
            if !backup.exists() {
                crate::fsutil::write_atomic(&backup, old.as_bytes(), 0o600)?;
            }
            Some(backup)
        }
        None => None,
    };
    crate::fsutil::write_atomic(file, text.as_bytes(), 0o600)?;
    Ok(backup)
}

/// Text-level edits of a kubeconfig's top-level lists, so the user's
/// comments, flow style and order survive a merge and a removal.
mod text_edit {
    use serde_yaml::Value;

    /// `text` with the entry named `name` of the top-level list `list`
    /// removed, and `entry` (when given) added at the list's end; `None` when
    /// the layout is one this does not edit (a flow-style list, a duplicate
    /// key, an item that does not parse): the caller then rewrites the file.
    pub fn set_entry(text: &str, list: &str, name: &str, entry: Option<&Value>) -> Option<String> {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let is_key = |l: &str| {
            l.strip_prefix(list)
                .and_then(|r| r.strip_prefix(':'))
                .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t', '\r', '\n']))
        };
        let keys: Vec<usize> = (0..lines.len()).filter(|&i| is_key(lines[i])).collect();
        let item_text = |indent: usize| -> Option<String> {
            let entry = entry?;
            let yaml = serde_yaml::to_string(entry).ok()?;
            let pad = " ".repeat(indent);
            let mut out = String::new();
            for (k, line) in yaml.lines().enumerate() {
                let lead = if k == 0 { "- " } else { "  " };
                out.push_str(&format!("{pad}{lead}{line}\n"));
            }
            Some(out)
        };
        let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let fix = |s: String| if eol == "\n" { s } else { s.replace('\n', eol) };
        let &[key] = keys.as_slice() else {
            if !keys.is_empty() {
                return None;
            }
            // No such list yet: add it at the end.
            let Some(item) = item_text(0) else {
                return Some(text.to_string());
            };
            let sep = if text.is_empty() || text.ends_with('\n') {
                ""
            } else {
                eol
            };
            return Some(fix(format!("{text}{sep}{list}:\n{item}")));
        };
        let after_key = lines[key][list.len() + 1..].trim();
        let after_key = after_key.split(" #").next().unwrap_or("").trim();
        let flow_empty = matches!(after_key, "[]" | "~" | "null");
        if !after_key.is_empty() && !flow_empty {
            return None;
        }
        // The list's block: indented lines, `- ` items at column 0,
        // blank lines and comments, up to the next top-level key.
        let mut end = key + 1;
        while end < lines.len() {
            let l = lines[end];
            let t = l.trim_start();
            if l.starts_with([' ', '\t'])
                || l.starts_with('-')
                || t.is_empty()
                || t.starts_with('#')
            {
                end += 1;
            } else {
                break;
            }
        }
        if flow_empty
            && (key + 1..end)
                .any(|i| !lines[i].trim().is_empty() && !lines[i].trim_start().starts_with('#'))
        {
            return None;
        }
        // Items start at lines `<indent>- ` with the first item's indent.
        let starts_item = |l: &str| {
            let t = l.trim_start();
            t.starts_with("- ") || t.trim_end() == "-"
        };
        let first = (key + 1..end).find(|&i| starts_item(lines[i]));
        let indent = first
            .map(|i| lines[i].len() - lines[i].trim_start().len())
            .unwrap_or(0);
        let mut items: Vec<(usize, usize)> = Vec::new();
        for (i, l) in lines.iter().enumerate().take(end).skip(key + 1) {
            if starts_item(l) && l.len() - l.trim_start().len() == indent {
                if let Some(last) = items.last_mut() {
                    last.1 = i;
                }
                items.push((i, end));
            }
        }
        // An item ends at its last line of content, not at trailing comments.
        for item in &mut items {
            while item.1 > item.0 + 1 {
                let t = lines[item.1 - 1].trim_start();
                if t.is_empty()
                    || (t.starts_with('#') && lines[item.1 - 1].len() - t.len() <= indent)
                {
                    item.1 -= 1;
                } else {
                    break;
                }
            }
        }
        let mut drop = vec![false; lines.len()];
        for &(a, b) in &items {
            let body: String = lines[a..b]
                .iter()
                .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
                .collect();
            let parsed: Vec<Value> = serde_yaml::from_str(&body).ok()?;
            if parsed.len() != 1 {
                return None;
            }
            if parsed[0].get("name").and_then(Value::as_str) == Some(name) {
                drop[a..b].iter_mut().for_each(|d| *d = true);
            }
        }
        let insert_after = items.last().map(|&(_, b)| b - 1).unwrap_or(key);
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            if i == key && flow_empty {
                out.push_str(&format!("{list}:{eol}"));
            } else if !drop[i] {
                out.push_str(line);
            }
            if i == insert_after
                && let Some(item) = item_text(indent)
            {
                if !out.ends_with('\n') {
                    out.push_str(eol);
                }
                out.push_str(&fix(item));
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "apiVersion: v1
kind: Config
clusters:
  - name: kubelab-default
    cluster:
      server: https://api.lan:6443
      certificate-authority-data: Q0E=
users:
  - name: admin
    user:
      client-certificate-data: Q0VSVA==
      client-key-data: S0VZ
contexts:
  - name: kubelab-default
    context:
      cluster: kubelab-default
      user: admin
current-context: kubelab-default
";

    const OTHER: &str = "apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
users:
- name: alice
  user:
    token: t0k3n
contexts:
- name: prod
  context:
    cluster: prod
    user: alice
    namespace: web
current-context: prod
";

    fn names(doc: &Value, list: &str) -> Vec<String> {
        doc[list]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// F3: the merged cluster trusts the lab's CA ("CA" in ADMIN); a lab
    /// with another CA, or none, does not own it.
    #[test]
    fn the_entries_are_the_labs_whose_ca_they_trust() {
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.kubeconfig");
        let file = dir.path().join("config");
        std::fs::write(&admin, ADMIN).unwrap();
        assert_eq!(owned_by(&file, "default", Some(b"CA")).unwrap(), None);
        merge(&file, &admin, "default", true).unwrap();
        assert_eq!(owned_by(&file, "default", Some(b"CA")).unwrap(), Some(true));
        assert_eq!(
            owned_by(&file, "default", Some(b"other CA")).unwrap(),
            Some(false)
        );
        assert_eq!(owned_by(&file, "default", None).unwrap(), Some(false));
        assert_eq!(owned_by(&file, "nosuch", Some(b"CA")).unwrap(), None);
    }

    #[test]
    fn merge_keeps_other_entries_is_idempotent_and_remove_undoes_it() {
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.kubeconfig");
        let file = dir.path().join("config");
        std::fs::write(&admin, ADMIN).unwrap();
        std::fs::write(&file, OTHER).unwrap();

        let merged = merge(&file, &admin, "default", false).unwrap();
        assert_eq!(merged.context, "kubelab-default");
        assert_eq!(
            std::fs::read_to_string(merged.backup.unwrap()).unwrap(),
            OTHER
        );
        merge(&file, &admin, "default", true).unwrap();
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for list in ["clusters", "users", "contexts"] {
            assert_eq!(names(&doc, list)[1..], ["kubelab-default"], "{list}");
        }
        assert_eq!(doc["users"][1]["user"]["client-key-data"], "S0VZ");
        assert_eq!(doc["contexts"][1]["context"]["user"], "kubelab-default");
        assert_eq!(doc["current-context"], "kubelab-default");
        assert_eq!(doc["preferences"]["colors"], true);
        assert_eq!(doc["contexts"][0]["context"]["namespace"], "web");

        assert!(remove(&file, "default").unwrap());
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let original: Value = serde_yaml::from_str(OTHER).unwrap();
        for list in ["clusters", "users", "contexts", "preferences"] {
            assert_eq!(doc[list], original[list], "{list}");
        }
        assert_eq!(doc["current-context"], "");
        assert!(!remove(&file, "default").unwrap(), "nothing left to remove");
    }

    /// A kubeconfig that starts with a UTF-8 byte-order mark is a kubeconfig:
    /// merged at the text level (mark and comment kept; the YAML parser read
    /// the mark before a key as a second document), and removed again
    /// to the original bytes.
    #[test]
    fn a_kubeconfig_with_a_byte_order_mark_is_merged_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.kubeconfig");
        let file = dir.path().join("config");
        std::fs::write(&admin, ADMIN).unwrap();
        let original = format!("\u{feff}{OTHER}# mine\n");
        std::fs::write(&file, &original).unwrap();
        merge(&file, &admin, "default", false).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("\u{feff}apiVersion: v1\n"), "{text}");
        assert!(text.contains("# mine\n"), "{text}");
        let doc = Value::Mapping(parse(&file, &text).unwrap());
        assert!(names(&doc, "contexts").contains(&"kubelab-default".to_string()));
        assert!(remove(&file, "default").unwrap());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    }

    #[test]
    fn a_kubeconfig_that_is_not_yaml_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.kubeconfig");
        let file = dir.path().join("config");
        std::fs::write(&admin, ADMIN).unwrap();
        std::fs::write(&file, "clusters: [\n").unwrap();
        let err = merge(&file, &admin, "default", true).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("is not valid YAML"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "clusters: [\n");
        std::fs::write(&file, "clusters: {a: 1}\n").unwrap();
        let err = merge(&file, &admin, "default", true).unwrap_err();
        assert!(
            err.to_string()
                .contains("clusters: is a mapping, not a list"),
            "{err}"
        );
    }

    /// D6: a merge and a removal edit the user's file at the text level:
    /// comments, flow style and layout of entries kubelab does not own stay,
    /// removal gives back the original bytes, and the backup is the user's
    /// original, not a merged file.
    #[test]
    fn merge_and_remove_keep_comments_layout_and_the_original_backup() {
        let commented = "# my precious comments
apiVersion: v1
kind: Config
clusters:
- name: prod   # production
  cluster:
    server: https://prod.example:6443
# between lists
users:
- name: alice
  user:
    exec:
      command: aws
      args: [eks, get-token]
contexts:
- name: prod
  context: {cluster: prod, user: alice}
current-context: prod
";
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.kubeconfig");
        let file = dir.path().join("config");
        std::fs::write(&admin, ADMIN).unwrap();
        std::fs::write(&file, commented).unwrap();
        let merged = merge(&file, &admin, "a", false).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        for kept in [
            "# my precious comments\n",
            "- name: prod   # production\n",
            "# between lists\n",
            "args: [eks, get-token]\n",
            "context: {cluster: prod, user: alice}\n",
        ] {
            assert!(text.contains(kept), "{kept:?} lost:\n{text}");
        }
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        for list in ["clusters", "users", "contexts"] {
            assert_eq!(names(&doc, list).last().unwrap(), "kubelab-a", "{list}");
        }
        merge(&file, &admin, "b", true).unwrap();
        merge(&file, &admin, "a", true).unwrap();
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(names(&doc, "clusters"), ["prod", "kubelab-b", "kubelab-a"]);
        assert_eq!(doc["current-context"], "kubelab-a");
        let backup = merged.backup.unwrap();
        assert_eq!(
            std::fs::read_to_string(&backup).unwrap(),
            commented,
            "the original, not a merged file"
        );

        assert!(remove(&file, "b").unwrap());
        assert!(remove(&file, "a").unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text,
            commented.replace("current-context: prod", "current-context: \"\"")
        );
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), commented);
    }
}
