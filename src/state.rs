//! `.kubelab/state.json` (written atomically) and the advisory lock that
//! keeps a second kubelab off the same lab.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const STATE_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub schema_version: u32,
    pub lab: String,
    /// Every machine kubelab has tried to create, by node name.
    pub nodes: BTreeMap<String, NodeState>,
    /// Provisioning steps finished, per node and phase.
    #[serde(default)]
    pub steps: BTreeMap<String, BTreeMap<String, StepRecord>>,
    /// What the facts phase read from each node.
    #[serde(default)]
    pub facts: BTreeMap<String, NodeFacts>,
    /// The last `lab up` runs' timings, oldest first (`kubelab lab timings`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<crate::timings::Run>,
}

/// A finished (node, phase) step: what it was run with, on which VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Hash of everything the step depends on (files, script, versions, facts).
    pub input_hash: String,
    /// The VM it ran on; a recreated VM has another id and is provisioned again.
    pub vm_id: Option<String>,
    /// sha256 of each file uploaded, so the next run sends only changed ones.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    pub finished_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// `ID VERSION_ID` from /etc/os-release (`ubuntu 24.04`, `debian 12`).
    pub os: String,
    /// The interface that holds the node's host-only address.
    pub interface: String,
    /// The VM the facts were read from.
    pub vm_id: Option<String>,
}

impl State {
    /// Names of the phases done on `node`, in run order.
    pub fn phases_done(&self, node: &str) -> Vec<String> {
        let Some(steps) = self.steps.get(node) else {
            return Vec::new();
        };
        crate::topology::Phase::ALL
            .iter()
            .map(|p| p.name().to_string())
            .filter(|p| steps.contains_key(p))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub role: String,
    pub address: String,
    pub machine: MachineStatus,
    /// VirtualBox's id of the VM (from `.vagrant/machines/<node>/virtualbox/id`):
    /// a recreated VM gets a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineStatus {
    Created,
    Failed,
    Interrupted,
}

impl State {
    pub fn new(lab: &str) -> State {
        State {
            schema_version: STATE_SCHEMA_VERSION,
            lab: lab.to_string(),
            ..State::default()
        }
    }

    /// Reads `lab`'s state. A file of another lab (copied or moved
    /// `.kubelab/`) or of a newer kubelab is refused: acting on it would plan
    /// against machines this lab does not have.
    pub fn load(path: &Path, lab: &str) -> Result<State> {
        const RESTORE: &str = "it is written by kubelab only; if it was edited, restore it or run `kubelab lab destroy` and start again";
        let bytes = match fs_err::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(State::new(lab)),
            Err(_) if path.is_dir() => {
                return Err(Error::other(
                    format!(
                        "{} is a directory, not a kubelab state file",
                        path.display()
                    ),
                    "remove it if it is not yours (kubelab writes state.json again), or run `kubelab lab destroy` and start again",
                ));
            }
            Err(err) => return Err(err.into()),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| {
            Error::other(
                format!("{} is not a kubelab state file: {e}", path.display()),
                RESTORE,
            )
        })?;
        if state.schema_version > STATE_SCHEMA_VERSION {
            return Err(Error::other(
                format!(
                    "{} has schema_version {}, written by a newer kubelab (this one reads {STATE_SCHEMA_VERSION})",
                    path.display(),
                    state.schema_version
                ),
                "use the kubelab that brought this lab up",
            ));
        }
        if !state.lab.is_empty() && state.lab != lab {
            return Err(Error::other(
                format!(
                    "{} is the state of lab {:?}, not of lab {lab:?}",
                    path.display(),
                    state.lab
                ),
                format!(
                    "a `.kubelab/` copied or moved from another lab's folder: move it back; if you renamed the lab in lab.yaml, put `name: {}` back (its VMs carry that name) and `kubelab lab destroy` before renaming",
                    state.lab
                ),
            ));
        }
        Ok(state)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::other(format!("could not encode the state: {e}"), ""))?;
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        crate::fsutil::write_atomic(path, format!("{text}\n").as_bytes(), 0o644)?;
        Ok(())
    }
}

/// An exclusive advisory lock on `.kubelab/lock`, held until dropped.
pub struct LabLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl LabLock {
    /// Takes the lock or fails at once, naming the process that holds it.
    pub fn acquire(state_dir: &Path, what: &str) -> Result<LabLock> {
        fs_err::create_dir_all(state_dir)?;
        let path = state_dir.join("lock");
        let file = open_lock_file(&path)?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // Who holds it, for the message a second kubelab prints.
                let _ = lock.set_len(0);
                let _ = lock.rewind();
                let _ = write!(lock, "pid {} ({what})", std::process::id());
                let _ = lock.flush();
                Ok(LabLock { _lock: lock })
            }
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(Error::Locked {
                    holder: if holder.trim().is_empty() {
                        "another process".to_string()
                    } else {
                        holder.trim().to_string()
                    },
                })
            }
            Err((_, errno)) => Err(Error::other(
                format!("could not lock {}: {errno}", path.display()),
                "",
            )),
        }
    }
}

/// Opens (or makes) a lock file, never through a symlink (a planted link
/// would have its target truncated) and never a directory or other
/// non-file: those are refused with how to clear them.
fn open_lock_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let refuse = |what: &str| {
        Error::other(
            format!("{} is {what}, not kubelab's lock file", path.display()),
            format!(
                "remove it (`rm -r {}`) when no kubelab runs; kubelab makes a new one",
                path.display()
            ),
        )
    };
    match opened {
        Ok(file) => {
            if file.metadata().map(|m| m.is_file()).unwrap_or(false) {
                Ok(file)
            } else {
                Err(refuse("not a regular file"))
            }
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => Err(refuse(
            "a symbolic link (kubelab never follows one for its lock)",
        )),
        Err(e) if e.raw_os_error() == Some(nix::libc::EISDIR) => Err(refuse("a directory")),
        Err(e) => Err(Error::other(
            format!("could not open the lock file {}: {e}", path.display()),
            "kubelab needs to write beside lab.yaml (in .kubelab/): run it where the lab's folder is writable",
        )),
    }
}

/// An exclusive lock on the lab file itself, for a command that edits it
/// (`lab scale`, `init --force`): waits for another such edit to finish, and
/// creates nothing (a lab never brought up has no `.kubelab/` to lock).
/// Held until dropped.
pub struct LabFileLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl LabFileLock {
    /// Waits for the lock on `path`. With `read`, the text the command read
    /// before: a file changed since (another kubelab's edit landed first)
    /// is refused, so an edit computed from the old text never overwrites it.
    pub fn wait(path: &Path, read: Option<&str>) -> Result<LabFileLock> {
        use std::os::unix::fs::MetadataExt;
        let lock = loop {
            let file = fs_err::File::open(path)?.into_parts().0;
            let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(
                |(_, errno)| {
                    Error::other(format!("could not lock {}: {errno}", path.display()), "")
                },
            )?;
            // An edit replaces the file (a new inode): lock the one there now.
            let held = lock.metadata()?;
            let now = fs_err::metadata(path)?;
            if (held.dev(), held.ino()) == (now.dev(), now.ino()) {
                break lock;
            }
        };
        if let Some(read) = read
            && fs_err::read_to_string(path)? != read
        {
            return Err(Error::other(
                format!(
                    "{} changed while kubelab was reading it (another kubelab's edit, or an editor)",
                    path.display()
                ),
                "run the command again: it starts from the file as it is now",
            ));
        }
        Ok(LabFileLock { _lock: lock })
    }
}

/// A host-wide lock for what labs share (the lab registry, the kubeconfig,
/// the hosts file): waits for another kubelab to finish its edit, so two
/// edits never lose one. Held until dropped.
/// Taking it again while this process holds it is a no-op, so a command
/// can hold it across several edits that each take it.
pub struct HostLock {
    _lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// How many `HostLock`s this process holds (nested).
static HOST_LOCK_DEPTH: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl HostLock {
    /// `path` is the lock file (beside the lab registry).
    pub fn wait(path: &Path) -> Result<HostLock> {
        let mut depth = HOST_LOCK_DEPTH.lock().unwrap_or_else(|e| e.into_inner());
        if *depth > 0 {
            *depth += 1;
            return Ok(HostLock { _lock: None });
        }
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir)?;
        }
        let file = open_lock_file(path)?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, errno)| Error::other(format!("could not lock {}: {errno}", path.display()), ""),
        )?;
        *depth = 1;
        Ok(HostLock { _lock: Some(lock) })
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        let mut depth = HOST_LOCK_DEPTH.lock().unwrap_or_else(|e| e.into_inner());
        *depth = depth.saturating_sub(1);
        // The flock itself is released when `_lock` drops, after this.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F8: two edits of one lab file never overlap, and an edit computed
    /// from text that changed meanwhile is refused.
    #[test]
    fn lab_file_edits_wait_for_each_other_and_refuse_a_stale_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.yaml");
        std::fs::write(&path, "count: 1\n").unwrap();
        let first = LabFileLock::wait(&path, Some("count: 1\n")).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiter = {
            let (path, done) = (path.clone(), done.clone());
            std::thread::spawn(move || {
                let lock = LabFileLock::wait(&path, Some("count: 1\n"));
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                lock.map(|_| ())
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !done.load(std::sync::atomic::Ordering::SeqCst),
            "the second edit waits"
        );
        // The first edit replaces the file (a new inode), then lets go.
        crate::fsutil::write_keeping(&path, b"count: 2\n", 0o644).unwrap();
        drop(first);
        let err = waiter.join().unwrap().unwrap_err();
        assert!(
            err.to_string()
                .contains("changed while kubelab was reading it"),
            "{err}"
        );
        LabFileLock::wait(&path, Some("count: 2\n")).unwrap();
    }

    #[test]
    fn a_second_lock_fails_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = LabLock::acquire(dir.path(), "lab up").unwrap();
        let err = LabLock::acquire(dir.path(), "lab destroy").err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("lab up"), "{text}");
        drop(first);
        LabLock::acquire(dir.path(), "lab destroy").unwrap();
    }

    /// S4: another lab's state file, or a newer schema, is refused.
    #[test]
    fn a_state_file_of_another_lab_or_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        State::new("otherlab").save(&path).unwrap();
        let err = State::load(&path, "kubelab").unwrap_err();
        assert!(
            err.to_string()
                .contains("is the state of lab \"otherlab\", not of lab \"kubelab\""),
            "{err}"
        );
        assert!(
            err.hint().unwrap().contains("name: otherlab"),
            "{:?}",
            err.hint()
        );
        let mut future = State::new("kubelab");
        future.schema_version = 999;
        future.save(&path).unwrap();
        let err = State::load(&path, "kubelab").unwrap_err();
        assert!(
            err.to_string()
                .contains("schema_version 999, written by a newer kubelab"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = State::load(&path, "kubelab").unwrap_err();
        assert!(
            err.to_string().contains("is a directory") && err.hint().is_some(),
            "{err}"
        );
    }

    /// D7: a planted symlink or a directory as the lock is refused; the
    /// link's target is never written.
    #[test]
    fn a_lock_that_is_a_symlink_or_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let precious = dir.path().join("precious.txt");
        std::fs::write(&precious, "precious user data\n").unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::symlink(&precious, state.join("lock")).unwrap();
        let err = LabLock::acquire(&state, "lab up").err().unwrap();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert!(
            err.hint().unwrap().starts_with("remove it"),
            "{:?}",
            err.hint()
        );
        assert_eq!(
            std::fs::read_to_string(&precious).unwrap(),
            "precious user data\n"
        );

        std::fs::remove_file(state.join("lock")).unwrap();
        std::fs::create_dir(state.join("lock")).unwrap();
        let err = LabLock::acquire(&state, "lab up").err().unwrap();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn state_round_trips_and_missing_means_new() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(State::load(&path, "x").unwrap(), State::new("x"));
        let mut state = State::new("x");
        state.nodes.insert(
            "dns0".into(),
            NodeState {
                role: "dns".into(),
                address: "192.168.56.2".into(),
                machine: MachineStatus::Created,
                vm_id: Some("abc".into()),
                error: None,
            },
        );
        state.save(&path).unwrap();
        assert_eq!(State::load(&path, "x").unwrap(), state);
    }
}
