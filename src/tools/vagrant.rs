//! `vagrant`, always run with `VAGRANT_CWD=.kubelab` so `.vagrant/` lives
//! beside the generated Vagrantfile and every later call (destroy included)
//! uses the file the VMs were created from.

use std::path::{Path, PathBuf};

use super::{Captured, Invocation, Runner, find};
use crate::error::Result;

#[derive(Clone)]
pub struct Vagrant {
    bin: PathBuf,
    /// The folder holding the generated Vagrantfile (`.kubelab/`).
    cwd: PathBuf,
    logs: PathBuf,
    runner: Runner,
}

/// A machine's state as `vagrant status --machine-readable` reports it:
/// `running`, `poweroff`, `saved`, `paused`, `aborted`, `not_created`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineState {
    pub name: String,
    pub state: String,
}

impl MachineState {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    pub fn exists(&self) -> bool {
        self.state != "not_created"
    }
}

impl Vagrant {
    pub fn find(state_dir: &Path, runner: &Runner) -> Result<Vagrant> {
        Ok(Vagrant {
            bin: find("vagrant", "create and control the lab's VMs")?,
            cwd: state_dir.to_path_buf(),
            logs: state_dir.join("logs"),
            runner: runner.clone(),
        })
    }

    pub fn log_path(&self, node: &str, step: &str) -> PathBuf {
        self.logs.join(node).join(format!("{step}.log"))
    }

    fn invocation(&self, purpose: String, node: &str, step: &str) -> Invocation {
        Invocation::new(&self.bin, "vagrant", purpose)
            .env("VAGRANT_CWD", &self.cwd)
            .env("VAGRANT_NO_COLOR", "1")
            .log(self.log_path(node, step))
    }

    /// What `vagrant --version` prints (`Vagrant 2.4.9`).
    pub async fn version(&self) -> Result<String> {
        let out = self
            .runner
            .run(
                self.invocation("ask Vagrant its version".into(), "host", "doctor")
                    .arg("--version"),
            )
            .await?;
        Ok(out.stdout)
    }

    /// Every machine's state, in one call.
    pub async fn status(&self) -> Result<Vec<MachineState>> {
        let out = self
            .runner
            .run(
                self.invocation("read the VMs' state".into(), "host", "status")
                    .args(["status", "--machine-readable"]),
            )
            .await?;
        Ok(parse_status(&out.stdout))
    }

    pub async fn up(&self, node: &str) -> Result<Captured> {
        self.runner
            .run(
                self.invocation(format!("boot {node}"), node, "up")
                    .args(["up", node, "--no-provision"])
                    .hint(format!(
                        "run `kubelab lab up` again: running VMs are kept and only {node} is retried; `kubelab lab ssh {node}` or the log shows more"
                    )),
            )
            .await
    }

    pub async fn halt(&self, node: &str) -> Result<Captured> {
        self.runner
            .run(
                self.invocation(format!("halt {node}"), node, "halt")
                    .args(["halt", node]),
            )
            .await
    }

    /// Destroys the named machines, or every machine of the Vagrantfile.
    pub async fn destroy(&self, node: Option<&str>) -> Result<Captured> {
        let (purpose, log) = match node {
            Some(n) => (format!("destroy {n}"), n),
            None => ("destroy the lab's VMs".to_string(), "host"),
        };
        let inv = self
            .invocation(purpose, log, "destroy")
            .args(["destroy", "-f"])
            .args(node);
        self.runner.run(inv).await
    }

    pub async fn snapshot(&self, action: &str, node: &str, name: &str) -> Result<Captured> {
        let mut inv = self
            .invocation(
                format!("{action} snapshot {name} of {node}"),
                node,
                "snapshot",
            )
            .args(["snapshot", action, node, name]);
        if action == "restore" {
            inv = inv.arg("--no-provision");
        }
        self.runner.run(inv).await
    }

    /// `vagrant ssh-config` for the named machines, in one call.
    pub async fn ssh_config(&self, nodes: &[&str]) -> Result<String> {
        let out = self
            .runner
            .run(
                self.invocation("read the VMs' SSH settings".into(), "host", "ssh-config")
                    .arg("ssh-config")
                    .args(nodes.iter().copied()),
            )
            .await?;
        Ok(out.stdout)
    }

    pub async fn box_list(&self) -> Result<String> {
        Ok(self
            .runner
            .run(
                self.invocation("list downloaded boxes".into(), "host", "doctor")
                    .args(["box", "list"]),
            )
            .await?
            .stdout)
    }
}

/// Which of VirtualBox's known races a failed `vagrant up` lost, if it lost
/// one: these pass when the VM is booted again alone, nothing else does.
///
/// - Concurrent `VBoxManage import`s fail with NS_ERROR_INVALID_ARG
///   ("Appliance import failed", VirtualBox/virtualbox#80, open on 7.1.10).
/// - Two processes touching one VM: "is already locked for a session (or
///   being unlocked)" from `modifyvm` (cilium/cilium#1117) and "is already
///   locked by a session (or being locked or unlocked)" from `startvm`
///   (geerlingguy/ansible-for-devops#581); Vagrant's own retry request is
///   hashicorp/vagrant#5323.
pub fn virtualbox_race(error: &crate::error::Error) -> Option<&'static str> {
    let crate::error::Error::CommandFailed(failure) = error else {
        return None;
    };
    let out = &failure.tail;
    if out.contains("NS_ERROR_INVALID_ARG")
        && (out.contains("Appliance import failed") || out.contains("[\"import\""))
    {
        return Some("concurrent box import, NS_ERROR_INVALID_ARG");
    }
    if out.contains("is already locked for a session")
        || out.contains("is already locked by a session")
    {
        return Some("VM session already locked");
    }
    None
}

/// Parses `timestamp,target,type,data` lines; Vagrant escapes commas in data
/// as `%!(VAGRANT_COMMA)`.
pub fn parse_status(text: &str) -> Vec<MachineState> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, ',');
            let _timestamp = parts.next()?;
            let target = parts.next()?;
            let kind = parts.next()?;
            let data = parts.next()?;
            (kind == "state" && !target.is_empty()).then(|| MachineState {
                name: target.to_string(),
                state: data.replace("%!(VAGRANT_COMMA)", ","),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    fn failed(tail: &str) -> crate::error::Error {
        crate::error::Error::CommandFailed(Box::new(crate::error::CommandFailure {
            purpose: "boot etcd1".into(),
            command: "vagrant up etcd1 --no-provision".into(),
            status: "exited 1".into(),
            log: None,
            tail: tail.into(),
            hint: None,
        }))
    }

    /// The tails are Vagrant's as users posted them (the sources named on
    /// `virtualbox_race`).
    #[test]
    fn only_virtualbox_races_are_retried() {
        let import = "Stderr: 0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n\
            Interpreting /root/.vagrant.d/boxes/generic-VAGRANTSLASH-ubuntu2204/4.0.2/virtualbox/box.ovf...\n\
            OK.\n0%...\nProgress state: NS_ERROR_INVALID_ARG\n\
            VBoxManage: error: Appliance import failed\n\
            VBoxManage: error: Code NS_ERROR_INVALID_ARG (0x80070057) - Invalid argument value (extended info not available)\n\
            VBoxManage: error: Context: \"RTEXITCODE handleImportAppliance(HandlerArg*)\" at line 1379 of file VBoxManageAppliance.cpp";
        assert!(super::virtualbox_race(&failed(import)).is_some());
        let modifyvm = "Command: [\"modifyvm\", \"932eb10f-9ebf-45e8-acf1-8b317c3f25a8\", \"--macaddress1\", \"08002771F4C0\"]\n\
            Stderr: VBoxManage: error: The machine 'ubuntu-1610-virtualbox_1499972919158_65400' is already locked for a session (or being unlocked)\n\
            VBoxManage: error: Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports";
        assert!(super::virtualbox_race(&failed(modifyvm)).is_some());
        let startvm = "Command: [\"startvm\", \"cf08cc8b-bfc4-4e36-a08d-b430f2e9cee0\", \"--type\", \"headless\"]\n\
            Stderr: VBoxManage: error: The machine 'DC01' is already locked by a session (or being locked or unlocked)";
        assert!(super::virtualbox_race(&failed(startvm)).is_some());
        // A real failure stays one.
        let vtx = "Stderr: VBoxManage: error: VT-x is not available (VERR_VMX_NO_VMX)";
        assert!(super::virtualbox_race(&failed(vtx)).is_none());
        let invalid_elsewhere = "VBoxManage: error: Code NS_ERROR_INVALID_ARG (0x80070057) - Invalid argument value\nContext: \"LockMachine\"";
        assert!(super::virtualbox_race(&failed(invalid_elsewhere)).is_none());
    }

    #[test]
    fn parses_machine_readable_status() {
        let text = "1700000000,dns0,metadata,provider,virtualbox\n\
                    1700000000,dns0,provider-name,virtualbox\n\
                    1700000000,dns0,state,running\n\
                    1700000000,dns0,state-human-short,running\n\
                    1700000000,worker0,state,not_created\n\
                    1700000000,,ui,info,Current machine states:\n";
        let states = super::parse_status(text);
        assert_eq!(states.len(), 2);
        assert!(states[0].is_running());
        assert!(!states[1].exists());
    }
}
