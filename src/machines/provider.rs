//! The seam between kubelab and what runs a lab's machines. `lab up`,
//! `scale`, `status`, `destroy`, `halt`, `ssh` and the snapshots are written
//! once over [`Machines`]; each provider is one file beside this one
//! (virtualbox.rs, static_hosts.rs), and `machines::of` picks it from
//! lab.yaml's `provider:`.
//! A provider that has no halt or snapshots keeps the trait's defaults,
//! which refuse with the provider's own words ([`Machines::refusal`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Host;
use crate::config::Lab;
use crate::error::{Error, Result};
use crate::inventory::SshAccess;
use crate::lab::LoadedLab;
use crate::state::{MachineStatus, NodeState, State};
use crate::tools::ssh::Transport;
use crate::topology::Node;

/// What `kubelab doctor` checks on this host for a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoctorScope {
    /// The hypervisor: its tools, host-only network, ports, RAM, disk, box.
    Hypervisor,
    /// The user's servers: SSH and sudo on each, as `lab up` checks them.
    Servers,
}

/// What `create` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Created {
    /// A machine existed already (powered off or saved), so its services
    /// are coming back: `lab up` waits until the lab answers.
    pub rebooted: bool,
    /// Every machine was made or reached; false when an interrupt stopped
    /// it half-way (the hosts block is then left as it was).
    pub complete: bool,
}

/// Runs a lab's machines. Every method takes the command's [`Host`] (the
/// lab, the settings, the printer, the runner); the providers themselves
/// hold nothing.
#[async_trait(?Send)]
pub trait Machines: crate::verify::Reach + Send + Sync {
    // --- what the provider is, for the commands that only describe it ---

    /// Whether kubelab makes and sizes the machines (box, memory, CPUs,
    /// forwarded SSH ports); false for servers that exist already.
    fn sizes_machines(&self) -> bool;

    /// `lab plan`'s words for the machines, after "Provider NAME, ".
    fn plan_line(&self, lab: &Lab) -> String;

    /// What the machines phase does on this provider.
    fn machines_phase(&self) -> &'static str;

    /// Whether `lab up` reaches every machine on every run, whatever phases
    /// are selected (servers are checked each time; VMs are booted only by
    /// the machines phase).
    fn reach_every_run(&self) -> bool {
        false
    }

    /// How Ansible (or ssh) reaches each node, for `lab export-inventory`.
    fn access(&self, loaded: &LoadedLab) -> BTreeMap<String, SshAccess>;

    /// What to say when the SSH keys of `missing` do not exist yet.
    fn missing_keys(&self, missing: &[&str]) -> Option<String>;

    /// The lab.yaml fields another lab of this host must not share, for the
    /// hint of a clash.
    fn clash_fields(&self) -> &'static str;

    /// What `kubelab doctor` checks.
    fn doctor(&self) -> DoctorScope;

    /// The error for `kubelab lab COMMAND` where this provider has no such
    /// thing (halt, snapshots).
    fn refusal(&self, lab: &Lab, command: &str) -> Error {
        Error::usage(
            format!(
                "`kubelab lab {command}` is not available for lab {}'s provider ({})",
                lab.name, lab.provider
            ),
            "see `kubelab lab --help` for what this provider supports",
        )
    }

    // --- the machines ---

    /// Makes (or boots, or reaches) every node of the topology, recording
    /// each one in `record` as soon as its outcome is known.
    async fn create(
        &self,
        host: &Host<'_>,
        record: &Record,
        jobs: Option<usize>,
    ) -> Result<Created>;

    /// Each machine's state by node name, as the provider sees it (`state`
    /// is what `lab up` recorded).
    async fn status(&self, host: &Host<'_>, state: &State) -> Result<BTreeMap<String, String>>;

    /// The warning for a machine that exists but is no longer in the lab.
    fn not_in_lab(&self, name: &str, workers: u32) -> String;

    /// One SSH ControlMaster per node of `nodes`.
    async fn transport(&self, host: &Host<'_>, nodes: &[&str]) -> Result<Transport>;

    /// `lab ssh NODE [COMMAND]`: its exit code.
    async fn ssh(&self, host: &Host<'_>, node: &str, command: &[String]) -> Result<i32>;

    /// Takes the machines of `nodes` (the workers a scale-down removes,
    /// highest first) away; the caller forgets their state afterwards.
    async fn remove(&self, host: &Host<'_>, nodes: &[&str], state: &State) -> Result<()>;

    /// The line for one worker removed.
    fn removed(&self, name: &str) -> String;

    /// `lab scale`'s words: how new nodes are made, how removed ones go, and
    /// what a removal does (for the confirmation).
    fn scale_words(&self, removing: usize) -> ScaleWords;

    /// The hint when lab.yaml cannot hold the asked number of workers.
    fn more_workers_hint(&self) -> Option<&'static str> {
        None
    }

    /// The question `lab destroy` asks before anything goes (with `--yes`
    /// too, unasked: it may warn about what will stay).
    fn destroy_question(&self, host: &Host<'_>) -> Result<String>;

    /// Removes every machine of lab `name` (the name `lab up` recorded);
    /// `made` are the nodes its state recorded, as lab.yaml lists them, or
    /// why the state could not be read. Returns `lab destroy`'s last line.
    async fn destroy(&self, host: &Host<'_>, name: &str, made: Result<Made<'_>>) -> Result<String>;

    /// `lab halt`; refused by default.
    async fn halt(&self, host: &Host<'_>) -> Result<()> {
        Err(self.refusal(&host.loaded.lab, "halt"))
    }

    /// Whether `kubelab lab COMMAND` (a snapshot command, `reset`, `up
    /// --snapshot`) can run: refused by default. Only `restore` goes through
    /// the provider: `snapshot save`, `delete` and `list` are VirtualBox's
    /// (`machines/snapshot.rs`), so a second provider with snapshots adds
    /// those to this trait.
    fn snapshots(&self, lab: &Lab, command: &str) -> Result<()> {
        Err(self.refusal(lab, command))
    }

    /// Returns the machines to snapshot `name` (the caller holds the lock
    /// and checked the name); refused by default.
    async fn restore(&self, host: &Host<'_>, name: &str) -> Result<()> {
        let _ = name;
        Err(self.refusal(&host.loaded.lab, "snapshot restore"))
    }
}

/// The machines `lab up` recorded, for `lab destroy`.
pub struct Made<'n> {
    pub nodes: Vec<&'n Node>,
    pub state: State,
}

/// `lab scale`'s words for one provider.
pub struct ScaleWords {
    /// What new nodes get before their certificates ("their VMs").
    pub made: &'static str,
    /// What happens to removed nodes ("VMs destroyed").
    pub unmade: &'static str,
    /// The confirmation's "(drain, then ...)".
    pub how: &'static str,
}

/// The state as machines are made: each outcome recorded and saved at once,
/// so a crash or kill loses nothing.
pub struct Record {
    state: Mutex<State>,
    path: PathBuf,
}

impl Record {
    pub fn new(state: State, path: PathBuf) -> Record {
        Record {
            state: Mutex::new(state),
            path,
        }
    }

    /// Records `node`'s outcome and saves the state; a save that fails (a
    /// full disk) is an error, never ignored.
    pub fn node(
        &self,
        node: &Node,
        machine: MachineStatus,
        vm_id: Option<String>,
        error: Option<String>,
    ) -> Result<()> {
        let mut state = self.state.lock().map_err(|_| {
            Error::other(
                "the lab's state was left half-updated by a task that crashed (a kubelab bug)",
                "run `kubelab lab up` again",
            )
        })?;
        state.nodes.insert(
            node.name.clone(),
            NodeState {
                role: node.role.to_string(),
                address: node.address.to_string(),
                machine,
                vm_id,
                error,
            },
        );
        state.save(&self.path)
    }

    /// What is recorded for `name` so far.
    pub fn get(&self, name: &str) -> Option<NodeState> {
        self.state.lock().ok()?.nodes.get(name).cloned()
    }

    /// Saves the state as it is now.
    pub fn save(&self) -> Result<()> {
        self.state().save(&self.path)
    }

    /// A copy of the state as it is now.
    pub fn state(&self) -> State {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
