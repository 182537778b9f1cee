//! The lab a command works on: lab.yaml (or the built-in default) read and
//! checked, its topology, and the folder its `.kubelab/` state lives in.

use std::path::{Path, PathBuf};

use crate::config::Lab;
use crate::error::{Error, Result};
use crate::pki;
use crate::printer::Printer;
use crate::topology::Topology;

pub(crate) mod load;
pub mod owner;
mod validate;

pub use load::{builtin, load, parse};

/// A lab definition with its topology and the directory its state lives in.
pub struct LoadedLab {
    pub lab: Lab,
    pub topo: Topology,
    /// The folder holding lab.yaml; `.kubelab/` goes here.
    pub dir: PathBuf,
}

impl LoadedLab {
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".kubelab")
    }
}

/// The default lab file when `--lab` is not given.
pub const DEFAULT_LAB_FILE: &str = "lab.yaml";

/// Finds and validates the lab: `--lab`, else ./lab.yaml, else the built-in one.
pub fn load_lab(explicit: Option<&Path>, printer: &Printer) -> Result<LoadedLab> {
    let lab = match explicit {
        Some(path) => crate::lab::load(path)?,
        None => {
            let path = Path::new(DEFAULT_LAB_FILE);
            if path.exists() {
                crate::lab::load(path)?
            } else {
                printer.info(
                    "note: no ./lab.yaml here, so this is the built-in default lab (`kubelab init` writes it out to edit)",
                );
                crate::lab::builtin()
            }
        }
    };
    for warning in &lab.warnings {
        printer.warn(warning.to_string());
    }
    let dir = std::path::absolute(lab.source.dir())?;
    let topo = Topology::new(&lab);
    Ok(LoadedLab { lab, topo, dir })
}

/// For `lab destroy` when the lab file named by `--lab` is gone: if its
/// folder still holds a `.kubelab/`, the lab that state recorded is
/// destroyed, as `kubelab lab destroy` run in that folder would (the
/// recorded name and owner say which lab it was). `None` when there is
/// nothing there to destroy.
pub fn gone(path: &Path, printer: &Printer) -> Result<Option<LoadedLab>> {
    let dir = std::path::absolute(crate::config::LabSource::File(path.to_path_buf()).dir())?;
    if !dir.join(".kubelab").is_dir() {
        return Ok(None);
    }
    printer.info(format!(
        "note: {} is gone; destroying what {} recorded",
        path.display(),
        dir.join(".kubelab").display()
    ));
    let lab = crate::lab::builtin();
    let topo = Topology::new(&lab);
    Ok(Some(LoadedLab { lab, topo, dir }))
}

/// The lab's PKI under .kubelab/pki/, signing only what is missing or stale.
/// Names what was written, never what it holds.
pub fn load_pki(loaded: &LoadedLab, printer: &Printer) -> Result<pki::Pki> {
    let dir = loaded.state_dir().join("pki");
    let pki = pki::load_or_create(&dir, &loaded.lab, &loaded.topo)?;
    if !pki.created.is_empty() {
        printer.info(format!(
            "PKI: wrote {} new certificate and key files in {}",
            pki.created.len(),
            dir.display()
        ));
    }
    Ok(pki)
}

/// The lab's lock for a command that may sign into `.kubelab/pki/`: two
/// signers at once would leave certificates that match no CA. In a lab
/// folder on a read-only file system nothing can be signed either, so the
/// PKI is read as it is, without the lock.
pub fn pki_lock(loaded: &LoadedLab, what: &str) -> Result<Option<crate::state::LabLock>> {
    match crate::lab::owner::lock(loaded, what) {
        Ok(lock) => Ok(Some(lock)),
        Err(e @ Error::Locked { .. }) => Err(e),
        Err(e) => {
            let probe = if loaded.state_dir().exists() {
                loaded.state_dir()
            } else {
                loaded.dir.clone()
            };
            match nix::unistd::access(&probe, nix::unistd::AccessFlags::W_OK) {
                Err(nix::errno::Errno::EROFS) => Ok(None),
                _ => Err(e),
            }
        }
    }
}

/// The SSH targets of a `provider: static` lab, from lab.yaml: the same
/// settings `vagrant ssh-config` gives for a VM.
pub fn static_targets(
    lab: &Lab,
) -> std::collections::BTreeMap<String, crate::tools::ssh::SshTarget> {
    lab.hosts
        .iter()
        .map(|h| {
            let target = crate::tools::ssh::SshTarget {
                host: h.name.clone(),
                hostname: h.ssh.alias.clone().unwrap_or_else(|| h.address.to_string()),
                port: h.ssh.port.or(h.ssh.alias.is_none().then_some(22)),
                user: h.ssh.user.clone(),
                identity_files: h.ssh.key.iter().cloned().collect(),
            };
            (h.name.clone(), target)
        })
        .collect()
}

/// How kubelab logs in to each host of a static lab, for `lab plan`:
/// `user@address:port`, or an ssh_config alias with what lab.yaml adds to it
/// (`gpu1 (ssh_config)`, `admin@gpu1:2022 (ssh_config)`).
pub fn static_logins(lab: &Lab) -> std::collections::BTreeMap<String, String> {
    let targets = static_targets(lab);
    lab.hosts
        .iter()
        .filter_map(|h| {
            let t = targets.get(&h.name)?;
            let user = t
                .user
                .as_deref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default();
            let port = t.port.map(|p| format!(":{p}")).unwrap_or_default();
            let login = format!("{user}{}{port}", t.hostname);
            let login = match h.ssh.alias {
                Some(_) => format!("{login} (ssh_config)"),
                None => login,
            };
            Some((h.name.clone(), login))
        })
        .collect()
}
