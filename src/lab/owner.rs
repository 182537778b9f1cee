//! Which lab a `.kubelab/` belongs to, and which of the entries labs share
//! (the hosts block, the kubeconfig's `kubelab-<lab>` entries) are its own.
//!
//! Names are not enough: a second folder can hold a lab of the same name,
//! lab.yaml can be renamed or deleted after `lab up`, and two lab files in
//! one folder would share one `.kubelab/`. So the first command that takes a
//! lab's lock writes `.kubelab/owner.json` once: a random id, the lab's name
//! and its lab file. The hosts block carries that id; the kubeconfig entries
//! carry the lab's CA. `lab destroy` removes only what carries them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LoadedLab;
use crate::config::LabSource;
use crate::error::{Error, Result};
use crate::state::LabLock;

pub const OWNER_FILE: &str = "owner.json";

/// `.kubelab/owner.json`: written once, never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// 16 random bytes in hex: what the lab's hosts block carries.
    pub id: String,
    /// The lab's name when the folder was first used.
    pub lab: String,
    /// The lab file (absolute), or `None` for the built-in lab, which
    /// stands for the folder's `lab.yaml`.
    pub lab_file: Option<PathBuf>,
    pub created_unix: u64,
}

impl Owner {
    /// The owner recorded in `state_dir`, if any.
    pub fn load(state_dir: &Path) -> Result<Option<Owner>> {
        let path = state_dir.join(OWNER_FILE);
        let bytes = match fs_err::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::other(
                format!("{} is not kubelab's owner record: {e}", path.display()),
                "it is written by kubelab only; restore it, or run `kubelab lab destroy` and start again",
            )
        })
    }

    fn new(lab: &str, lab_file: Option<PathBuf>) -> Result<Owner> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::other(
                format!("could not read random bytes for the lab id: {e}"),
                "",
            )
        })?;
        Ok(Owner {
            id: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            lab: lab.to_string(),
            lab_file,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        })
    }
}

/// The lab file of `loaded`, absolute; `None` for the built-in lab.
pub fn lab_file(loaded: &LoadedLab) -> Option<PathBuf> {
    match &loaded.lab.source {
        LabSource::File(p) => Some(std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        LabSource::BuiltIn => None,
    }
}

/// Whether two lab files are one: `None` (the built-in lab) counts as the
/// folder's `lab.yaml`, which replaces it once written; paths are compared
/// with their folder's symlinks resolved.
pub fn same_lab_file(dir: &Path, a: Option<&Path>, b: Option<&Path>) -> bool {
    let norm = |p: Option<&Path>| {
        let p = p
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("lab.yaml"));
        if let Ok(real) = fs_err::canonicalize(&p) {
            return real;
        }
        match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => fs_err::canonicalize(parent)
                .map(|d| d.join(name))
                .unwrap_or(p),
            _ => p,
        }
    };
    norm(a) == norm(b)
}

/// Refuses `loaded` when its `.kubelab/` belongs to another lab file that
/// still exists (F2: `--lab a.yaml` and `--lab b.yaml` in one folder would
/// share VMs, certificates and state).
pub fn check(loaded: &LoadedLab) -> Result<()> {
    let Some(owner) = Owner::load(&loaded.state_dir())? else {
        return Ok(());
    };
    let mine = lab_file(loaded);
    refuse_other(
        &loaded.dir,
        mine.as_deref(),
        &owner.lab,
        owner.lab_file.as_deref(),
        &format!("{}", loaded.state_dir().display()),
    )
}

/// `kubelab init --force` over an existing lab file: waits for another edit
/// of it (`lab scale`) and fails at once while a kubelab holds the lab's lock
/// (`lab up` reads lab.yaml and would build from the old one).
pub fn init_locks(lab_file: &Path) -> Result<Option<(Option<LabLock>, crate::state::LabFileLock)>> {
    if !lab_file.exists() {
        return Ok(None);
    }
    let dir = LabSource::File(lab_file.to_path_buf()).dir();
    let state_dir = dir.join(".kubelab");
    let lab = if state_dir.is_dir() {
        Some(LabLock::acquire(&state_dir, "kubelab init --force")?)
    } else {
        None
    };
    Ok(Some((
        lab,
        crate::state::LabFileLock::wait(lab_file, None)?,
    )))
}

/// The refusal of `mine` in `dir`, which is lab `lab`'s (`theirs`) by
/// `what`, unless the two are one file or `theirs` is gone.
pub fn refuse_other(
    dir: &Path,
    mine: Option<&Path>,
    lab: &str,
    theirs: Option<&Path>,
    what: &str,
) -> Result<()> {
    if same_lab_file(dir, theirs, mine) {
        return Ok(());
    }
    let theirs = theirs
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("lab.yaml"));
    if !theirs.exists() {
        // Its file is gone (renamed or deleted): this one may act on what
        // is left; state.json still says which lab that is.
        return Ok(());
    }
    let mine = mine
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("lab.yaml"));
    let stem = mine
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lab2".into());
    let folder = dir.join(&stem);
    Err(Error::usage(
        format!(
            "{what} belongs to lab {lab} ({}), not to {}: two lab files in one folder would share one .kubelab/ (VMs, certificates, state) and one registry entry",
            theirs.display(),
            mine.display()
        ),
        format!(
            "give {} a folder of its own, as lab.yaml: `mkdir {} && mv {} {}/lab.yaml`, then `kubelab --lab {}/lab.yaml ...`",
            mine.display(),
            folder.display(),
            mine.display(),
            folder.display(),
            folder.display()
        ),
    ))
}

/// The lab's lock (`.kubelab/lock`), for a command that changes its
/// `.kubelab/`: refused when the folder is another lab file's, and the
/// first time, the lab's owner record is written under it.
pub fn lock(loaded: &LoadedLab, what: &str) -> Result<LabLock> {
    check(loaded)?;
    let state_dir = loaded.state_dir();
    let lock = LabLock::acquire(&state_dir, what)?;
    // Again under the lock: another kubelab may have claimed it meanwhile.
    check(loaded)?;
    if Owner::load(&state_dir)?.is_none() {
        // A `.kubelab/` from before owner records keeps the name its
        // state.json was written for.
        let name = recorded_name(&state_dir).unwrap_or_else(|| loaded.lab.name.clone());
        let owner = Owner::new(&name, lab_file(loaded))?;
        let text = serde_json::to_string_pretty(&owner)
            .map_err(|e| Error::other(format!("could not encode the owner record: {e}"), ""))?;
        crate::fsutil::write_atomic(
            &state_dir.join(OWNER_FILE),
            format!("{text}\n").as_bytes(),
            0o644,
        )?;
    }
    Ok(lock)
}

/// The lab name `.kubelab/state.json` was written for, if it is there.
pub(crate) fn recorded_name(state_dir: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        #[serde(default)]
        lab: String,
    }
    let bytes = fs_err::read(state_dir.join("state.json")).ok()?;
    let named: Named = serde_json::from_slice(&bytes).ok()?;
    (!named.lab.is_empty()).then_some(named.lab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_lab_is_the_folders_lab_yaml_and_other_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("lab.yaml"), "name: a\n").unwrap();
        assert!(same_lab_file(d, None, Some(&d.join("lab.yaml"))));
        assert!(same_lab_file(
            d,
            Some(&d.join("./lab.yaml")),
            Some(&d.join("lab.yaml"))
        ));
        assert!(!same_lab_file(d, None, Some(&d.join("b.yaml"))));
        // A file that is gone gives way; one that is there is named.
        assert!(
            refuse_other(
                d,
                Some(&d.join("b.yaml")),
                "x",
                Some(&d.join("gone.yaml")),
                "it"
            )
            .is_ok()
        );
        let err = refuse_other(d, Some(&d.join("b.yaml")), "a", None, "it").unwrap_err();
        assert!(err.to_string().contains("belongs to lab a"), "{err}");
        assert!(
            err.hint().unwrap().contains("b/lab.yaml"),
            "{:?}",
            err.hint()
        );
    }
}
