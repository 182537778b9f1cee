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

use crate::config::LabSource;
use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::printer::Printer;
use crate::settings::Settings;
use crate::state::LabLock;
use crate::tools::Runner;

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

/// `kubelab init` of `lab_file` in `dir`: refused before anything is
/// written when the folder already belongs to another lab file, by its
/// `.kubelab/` or by the lab registry (`registry`).
pub fn check_folder(registry: &Path, lab_file: &Path) -> Result<()> {
    let dir = &std::path::absolute(LabSource::File(lab_file.to_path_buf()).dir())?;
    let lab_file = std::path::absolute(lab_file)?;
    if let Some(owner) = Owner::load(&dir.join(".kubelab"))? {
        refuse_other(
            dir,
            Some(&lab_file),
            &owner.lab,
            owner.lab_file.as_deref(),
            &format!("{}", dir.join(".kubelab").display()),
        )?;
    }
    if let Some(entry) = crate::registry::entry(registry, dir)? {
        refuse_other(
            dir,
            Some(&lab_file),
            &entry.name,
            entry.lab_file.as_deref(),
            &format!("the folder {} (in {})", dir.display(), registry.display()),
        )?;
    }
    Ok(())
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
fn recorded_name(state_dir: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        #[serde(default)]
        lab: String,
    }
    let bytes = fs_err::read(state_dir.join("state.json")).ok()?;
    let named: Named = serde_json::from_slice(&bytes).ok()?;
    (!named.lab.is_empty()).then_some(named.lab)
}

/// Whether kubelab created anything for the lab in `state_dir` (a VM, or a
/// static host it provisioned): state.json records a node.
fn was_up(state_dir: &Path) -> bool {
    #[derive(Deserialize)]
    struct Nodes {
        #[serde(default)]
        nodes: serde_json::Map<String, serde_json::Value>,
    }
    fs_err::read(state_dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Nodes>(&b).ok())
        .is_some_and(|n| !n.nodes.is_empty())
}

/// What `lab destroy` removes besides the machines: the lab as its
/// `.kubelab/` recorded it at `lab up`, not as lab.yaml says today.
pub struct Recorded {
    /// The name its VMs, hosts block and kubeconfig entries carry.
    pub name: String,
    owner_id: Option<String>,
    was_up: bool,
    /// `.kubelab/pki/ca.pem`: what its kubeconfig entries trust.
    ca_pem: Option<Vec<u8>>,
    state_dir: PathBuf,
}

impl Recorded {
    /// Reads the record and says when it names another lab than lab.yaml
    /// (renamed, or lab.yaml deleted and the built-in lab loaded).
    pub fn of(loaded: &LoadedLab, printer: &Printer) -> Result<Recorded> {
        let state_dir = loaded.state_dir();
        let owner = Owner::load(&state_dir)?;
        let name = recorded_name(&state_dir)
            .or_else(|| owner.as_ref().map(|o| o.lab.clone()))
            .unwrap_or_else(|| loaded.lab.name.clone());
        if name != loaded.lab.name {
            printer.info(format!(
                "{} holds lab {name}, but {} names lab {} (renamed since `lab up`, or the lab file is gone): removing what lab {name} made",
                state_dir.display(),
                match &loaded.lab.source {
                    LabSource::File(p) => p.display().to_string(),
                    LabSource::BuiltIn => "the built-in default lab".to_string(),
                },
                loaded.lab.name
            ));
        }
        Ok(Recorded {
            name,
            owner_id: owner.map(|o| o.id),
            was_up: was_up(&state_dir),
            ca_pem: fs_err::read(state_dir.join("pki/ca.pem")).ok(),
            state_dir,
        })
    }

    /// Before a VM goes: a hosts file kubelab cannot edit would stop the
    /// destroy half way.
    pub fn preflight(&self, settings: &Settings) -> Result<()> {
        crate::hosts_file::preflight(&settings.hosts_file, &self.name)
    }

    /// Removes the lab's hosts block and kubeconfig entries, only those that
    /// are this lab's, and says what it removed and what it left.
    pub async fn forget_shared(
        &self,
        settings: &Settings,
        runner: &Runner,
        printer: &Printer,
    ) -> Result<()> {
        self.forget_hosts_block(settings, runner, printer).await?;
        crate::kubeconfig::forget(&self.name, self.ca_pem.as_deref(), settings, printer);
        Ok(())
    }

    async fn forget_hosts_block(
        &self,
        settings: &Settings,
        runner: &Runner,
        printer: &Printer,
    ) -> Result<()> {
        let path = &settings.hosts_file;
        let _host = settings.host_lock()?;
        let existing = crate::hosts_file::read(path)?;
        let owner = crate::hosts_file::block_owner(&existing, &self.name)
            .map_err(|p| p.into_error(path))?;
        let ours = match &owner {
            None => {
                printer.info(format!(
                    "{} holds no block of lab {}",
                    path.display(),
                    self.name
                ));
                return Ok(());
            }
            Some(Some(id)) => self.owner_id.as_deref() == Some(id.as_str()),
            // Written before blocks carried an id: this lab's if it was up.
            Some(None) => self.was_up,
        };
        if !ours {
            let why = if !self.was_up {
                format!(
                    "lab {} was never brought up from {}, so the block is another lab's of that name",
                    self.name,
                    self.state_dir.display()
                )
            } else {
                format!(
                    "it carries another lab's id ({}), not this lab's ({})",
                    owner.flatten().unwrap_or_default(),
                    self.owner_id.as_deref().unwrap_or("none")
                )
            };
            printer.info(format!(
                "left the kubelab {} block in {}: {why}",
                self.name,
                path.display()
            ));
            return Ok(());
        }
        let written =
            crate::hosts_file::update(path, &self.name, None, &self.state_dir, runner, |why| {
                printer.info(why)
            })
            .await?;
        match written {
            crate::hosts_file::Written::Unchanged => {}
            crate::hosts_file::Written::InPlace { backup } => printer.info(format!(
                "removed the kubelab {} block from {} (in place: it is a mount point; backup at {})",
                self.name,
                path.display(),
                backup.display()
            )),
            _ => printer.info(format!(
                "removed the kubelab {} block from {}",
                self.name,
                path.display()
            )),
        }
        Ok(())
    }
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
