//! `kubelab lab kubeconfig`: the lab's admin kubeconfig on the hypervisor,
//! and its cluster, user and context (all named `kubelab-<lab>`) merged into
//! or removed from the user's own kubeconfig without touching anything else.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::app::LoadedLab;
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::settings::Settings;

/// `kubelab lab kubeconfig [--merge] [--use]`: prints the admin kubeconfig's
/// path on stdout; merges it into the user's kubeconfig on request.
pub fn run(
    loaded: &LoadedLab,
    args: &crate::cli::KubeconfigArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<()> {
    let admin = write_admin(loaded, printer)?;
    if args.merge || args.use_it {
        let file = user_file(settings)?;
        let merged = merge(&file, &admin, &loaded.lab.name, args.use_it)?;
        let backup = merged
            .backup
            .map(|b| format!(" (the previous file is {})", b.display()))
            .unwrap_or_default();
        printer.info(format!(
            "merged cluster, user and context {} into {}{backup}",
            merged.context,
            merged.file.display(),
        ));
        printer.info(if args.use_it {
            format!("current context: {}", merged.context)
        } else {
            format!("use it: kubectl config use-context {}", merged.context)
        });
    }
    printer.data(admin.display().to_string());
    Ok(())
}

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
    let _lock = crate::app::pki_lock(loaded, "kubelab lab kubeconfig")?;
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
    let backup = save(file, existing.as_deref(), &doc)?;
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
    if doc.get("current-context").and_then(Value::as_str) == Some(name.as_str()) {
        // What kubectl writes when no context is current.
        doc.insert("current-context".into(), "".into());
        removed = true;
    }
    if removed {
        save(file, Some(&text), &doc)?;
    }
    Ok(removed)
}

/// `lab destroy`'s clean-up: removes the lab's entries from the user's
/// kubeconfig, and only warns when it cannot (the VMs are gone either way).
pub fn forget(lab: &str, settings: &Settings, printer: &Printer) {
    let Ok(file) = user_file(settings) else {
        return;
    };
    match remove(&file, lab) {
        Ok(true) => printer.info(format!(
            "removed context {} from {}",
            entry_name(lab),
            file.display()
        )),
        Ok(false) => {}
        Err(e) => printer.warn(format!(
            "could not remove context {} from {}: {e}",
            entry_name(lab),
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

fn parse(file: &Path, text: &str) -> Result<Mapping> {
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

/// Backs `file` up (when it existed) to `<file>.kubelab.bak`, then writes
/// `doc` atomically with mode 0600: it holds client keys.
fn save(file: &Path, old: Option<&str>, doc: &Mapping) -> Result<Option<PathBuf>> {
    let text = serde_yaml::to_string(doc)
        .map_err(|e| Error::other(format!("could not encode the kubeconfig: {e}"), ""))?;
    if let Some(dir) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir)?;
    }
    let backup = match old {
        Some(old) => {
            let mut name = file.as_os_str().to_owned();
            name.push(".kubelab.bak");
            let backup = PathBuf::from(name);
            crate::fsutil::write_atomic(&backup, old.as_bytes(), 0o600)?;
            Some(backup)
        }
        None => None,
    };
    crate::fsutil::write_atomic(file, text.as_bytes(), 0o600)?;
    Ok(backup)
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
}
