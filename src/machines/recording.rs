//! A provider for unit tests: it makes nothing, records every call in
//! order, and answers as it is told (which nodes fail to come up, what
//! `status` reports, whether it has snapshots). youki's `TestHelperSyscall`
//! is the model.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::Host;
use super::provider::{Created, DoctorScope, Machines, Made, Record, ScaleWords};
use crate::config::Lab;
use crate::error::{Error, Result};
use crate::inventory::SshAccess;
use crate::lab::LoadedLab;
use crate::printer::Printer;
use crate::state::{MachineStatus, State};
use crate::tools::Runner;
use crate::tools::ssh::Transport;
use crate::verify::{Reach, Reached};

#[derive(Default)]
pub struct Recording {
    pub(super) calls: Mutex<Vec<String>>,
    /// Nodes whose `create` fails.
    pub fail: BTreeSet<String>,
    /// What `status` answers, by node.
    pub states: BTreeMap<String, String>,
    /// Whether it has halt and snapshots (as VirtualBox does) or refuses
    /// them (as static hosts do).
    pub snapshots: bool,
}

impl Recording {
    fn call(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait(?Send)]
impl Reach for Recording {
    fn made_by(&self) -> &'static str {
        "state.json"
    }

    /// Records the round; SSH that reaches no one.
    async fn reach(&self, loaded: &LoadedLab, _: &Printer, runner: &Runner) -> Result<Reached> {
        self.call("reach".into());
        Ok(Reached {
            machines: Some(Ok(Vec::new())),
            transport: Some(Transport::new(
                &loaded.lab.name,
                &loaded.state_dir(),
                BTreeMap::new(),
                runner,
            )?),
        })
    }
}

#[async_trait(?Send)]
impl Machines for Recording {
    fn sizes_machines(&self) -> bool {
        true
    }

    fn plan_line(&self, _: &Lab) -> String {
        "recorded machines".into()
    }

    fn machines_phase(&self) -> &'static str {
        "record the machines"
    }

    fn access(&self, _: &LoadedLab) -> BTreeMap<String, SshAccess> {
        BTreeMap::new()
    }

    fn missing_keys(&self, _: &[&str]) -> Option<String> {
        None
    }

    fn clash_fields(&self) -> &'static str {
        "name"
    }

    fn doctor(&self) -> DoctorScope {
        DoctorScope::Hypervisor
    }

    async fn create(&self, host: &Host<'_>, record: &Record, _: Option<usize>) -> Result<Created> {
        let mut failures = Vec::new();
        let mut rebooted = false;
        for node in &host.loaded.topo.nodes {
            self.call(format!("create {}", node.name));
            rebooted |= record.get(&node.name).is_some();
            if self.fail.contains(&node.name) {
                record.node(
                    node,
                    MachineStatus::Failed,
                    None,
                    Some("told to fail".into()),
                )?;
                failures.push(Error::other(format!("{} failed", node.name), ""));
            } else {
                record.node(
                    node,
                    MachineStatus::Created,
                    Some(format!("id-{}", node.name)),
                    None,
                )?;
            }
        }
        if !failures.is_empty() {
            return Err(Error::Several {
                summary: "some machines failed:".into(),
                failures,
                hint: None,
            });
        }
        Ok(Created {
            rebooted,
            complete: true,
        })
    }

    async fn status(&self, _: &Host<'_>, _: &State) -> Result<BTreeMap<String, String>> {
        self.call("status".into());
        Ok(self.states.clone())
    }

    fn not_in_lab(&self, name: &str, _: u32) -> String {
        format!("{name} is not in the lab")
    }

    async fn transport(&self, host: &Host<'_>, nodes: &[&str]) -> Result<Transport> {
        self.call(format!("transport {}", nodes.join(",")));
        Transport::new(
            &host.loaded.lab.name,
            &host.state_dir(),
            BTreeMap::new(),
            &host.runner,
        )
    }

    async fn ssh(&self, _: &Host<'_>, node: &str, _: &[String]) -> Result<i32> {
        self.call(format!("ssh {node}"));
        Ok(0)
    }

    async fn remove(&self, _: &Host<'_>, nodes: &[&str], _: &State) -> Result<()> {
        self.call(format!("remove {}", nodes.join(",")));
        Ok(())
    }

    fn removed(&self, name: &str) -> String {
        format!("{name} removed")
    }

    fn scale_words(&self, _: usize) -> ScaleWords {
        ScaleWords {
            made: "their machines",
            unmade: "machines removed",
            how: "drain, then remove",
        }
    }

    fn destroy_question(&self, _: &Host<'_>) -> Result<String> {
        Ok("destroy?".into())
    }

    async fn destroy(&self, _: &Host<'_>, name: &str, made: Result<Made<'_>>) -> Result<String> {
        let made = made?;
        let names: Vec<&str> = made.nodes.iter().map(|n| n.name.as_str()).collect();
        self.call(format!("destroy {}", names.join(",")));
        Ok(format!("lab {name} destroyed"))
    }

    async fn halt(&self, host: &Host<'_>) -> Result<()> {
        self.snapshots(&host.loaded.lab, "halt")?;
        self.call("halt".into());
        Ok(())
    }

    fn snapshots(&self, lab: &Lab, command: &str) -> Result<()> {
        if self.snapshots {
            Ok(())
        } else {
            Err(self.refusal(lab, command))
        }
    }

    async fn restore(&self, host: &Host<'_>, name: &str) -> Result<()> {
        self.snapshots(&host.loaded.lab, "snapshot restore")?;
        self.call(format!("restore {name}"));
        Ok(())
    }
}
