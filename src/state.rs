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

    pub fn load(path: &Path, lab: &str) -> Result<State> {
        match fs_err::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                Error::other(
                    format!("{} is not a kubelab state file: {e}", path.display()),
                    "it is written by kubelab only; if it was edited, restore it or run `kubelab lab destroy` and start again",
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(State::new(lab)),
            Err(err) => Err(err.into()),
        }
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
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?
            .into_parts()
            .0;
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

#[cfg(test)]
mod tests {
    use super::*;

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
