//! `provider: virtualbox`: one VM per node through Vagrant and VBoxManage,
//! from the Vagrantfile kubelab writes in `.kubelab/`. The boot order is in
//! boot.rs, snapshots and `lab reset` in snapshot.rs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;

use super::Host;
use super::provider::{Created, DoctorScope, Machines, Made, Record, ScaleWords};
use crate::config::Lab;
use crate::error::{Error, Result};
use crate::inventory::SshAccess;
use crate::lab::LoadedLab;
use crate::printer::Printer;
use crate::state::State;
use crate::tools::Runner;
use crate::tools::ssh::{Ssh, Transport};
use crate::tools::vagrant::{MachineState, Vagrant};
use crate::verify::{Reach, Reached};

pub struct VirtualBox;

impl Host<'_> {
    pub(super) fn vagrantfile(&self) -> PathBuf {
        self.state_dir().join("Vagrantfile")
    }

    pub(super) fn vagrant(&self) -> Result<Vagrant> {
        Vagrant::find(&self.state_dir(), &self.runner)
    }

    pub(super) fn vagrant_for_existing_lab(&self) -> Result<Vagrant> {
        if !self.vagrantfile().exists() {
            return Err(Error::other(
                "this lab has no VMs (no .kubelab/Vagrantfile)",
                "run `kubelab lab up` first",
            ));
        }
        self.vagrant()
    }
}

#[async_trait(?Send)]
impl Reach for VirtualBox {
    fn made_by(&self) -> &'static str {
        "Vagrantfile"
    }

    /// `vagrant status` once, and `vagrant ssh-config` of the running VMs.
    async fn reach(
        &self,
        loaded: &LoadedLab,
        printer: &Printer,
        runner: &Runner,
    ) -> Result<Reached> {
        let state_dir = loaded.state_dir();
        let vagrant = Vagrant::find(&state_dir, runner)?;
        printer.info("asking Vagrant for the VMs' state and SSH settings");
        let machines = vagrant
            .status()
            .await
            .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string());
        let running: Vec<&str> = match &machines {
            Ok(states) => loaded
                .topo
                .nodes
                .iter()
                .filter(|n| states.iter().any(|m| m.name == n.name && m.is_running()))
                .map(|n| n.name.as_str())
                .collect(),
            Err(_) => Vec::new(),
        };
        let transport = if running.is_empty() {
            None
        } else {
            let targets = crate::tools::ssh::parse_ssh_config(&vagrant.ssh_config(&running).await?);
            Some(Transport::new(
                &loaded.lab.name,
                &state_dir,
                targets,
                runner,
            )?)
        };
        Ok(Reached {
            machines: Some(machines),
            transport,
        })
    }
}

#[async_trait(?Send)]
impl Machines for VirtualBox {
    fn sizes_machines(&self) -> bool {
        true
    }

    fn plan_line(&self, lab: &Lab) -> String {
        let box_version = lab
            .vm_box
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        format!(
            "box {}{box_version}, network {} (host {})",
            lab.vm_box.name,
            lab.network.cidr,
            lab.network.host_address()
        )
    }

    fn machines_phase(&self) -> &'static str {
        crate::topology::Phase::Machines.description()
    }

    fn access(&self, loaded: &LoadedLab) -> BTreeMap<String, SshAccess> {
        crate::inventory::vagrant_access(&loaded.topo, &loaded.state_dir())
    }

    fn missing_keys(&self, missing: &[&str]) -> Option<String> {
        Some(format!(
            "no SSH key yet for {}: Vagrant writes each VM's key on its first boot (`kubelab lab up`)",
            missing.join(", ")
        ))
    }

    fn clash_fields(&self) -> &'static str {
        "name, network.cidr, first_address/vip and network.ssh_port_base (`kubelab init --name NAME` picks free ones)"
    }

    fn doctor(&self) -> DoctorScope {
        DoctorScope::Hypervisor
    }

    async fn create(
        &self,
        host: &Host<'_>,
        record: &Record,
        jobs: Option<usize>,
    ) -> Result<Created> {
        let started = std::time::Instant::now();
        let created = host.up_machines(record, jobs).await;
        crate::timings::record("machines", started.elapsed());
        created
    }

    async fn status(&self, host: &Host<'_>, _: &State) -> Result<BTreeMap<String, String>> {
        if !host.vagrantfile().exists() {
            host.printer.info(format!(
                "lab {} has no VMs yet (no {}): `kubelab lab up` creates them",
                host.loaded.lab.name,
                host.vagrantfile().display()
            ));
            return Ok(BTreeMap::new());
        }
        Ok(host
            .vagrant()?
            .status()
            .await?
            .into_iter()
            .map(|m| (m.name, m.state))
            .collect())
    }

    fn not_in_lab(&self, name: &str, _: u32) -> String {
        format!(
            "VM {name} exists but is not in lab.yaml; `kubelab lab destroy` removes it with the rest"
        )
    }

    async fn transport(&self, host: &Host<'_>, nodes: &[&str]) -> Result<Transport> {
        let vagrant = host.vagrant()?;
        let targets = crate::tools::ssh::parse_ssh_config(&vagrant.ssh_config(nodes).await?);
        Transport::new(
            &host.loaded.lab.name,
            &host.state_dir(),
            targets,
            &host.runner,
        )
    }

    async fn ssh(&self, host: &Host<'_>, node: &str, command: &[String]) -> Result<i32> {
        let ssh = Ssh::find()?;
        let config = host.vagrant()?.ssh_config(&[node]).await?;
        let path = host.state_dir().join("ssh_config");
        crate::fsutil::write_atomic(&path, config.as_bytes(), 0o600)?;
        ssh.interactive(&path, node, command)
    }

    async fn remove(&self, host: &Host<'_>, nodes: &[&str], _: &State) -> Result<()> {
        let vagrant = host.vagrant_for_existing_lab()?;
        for node in nodes {
            host.printer.info(format!("  {node:<12} destroying its VM"));
            // The Vagrantfile in .kubelab still defines it: `up` rewrites it later.
            vagrant.destroy(Some(node)).await?;
        }
        Ok(())
    }

    fn removed(&self, name: &str) -> String {
        format!("  {name:<12} removed (VM, state, certificate, host key)")
    }

    fn scale_words(&self, removing: usize) -> ScaleWords {
        ScaleWords {
            made: "their VMs",
            unmade: "VMs destroyed",
            how: if removing == 1 {
                "drain, then destroy the VM"
            } else {
                "drain, then destroy the VMs"
            },
        }
    }

    fn destroy_question(&self, host: &Host<'_>) -> Result<String> {
        Ok(format!(
            "Destroy lab {}: every VM of {}, its block in {} and {}?",
            host.loaded.lab.name,
            host.vagrantfile().display(),
            host.settings.hosts_file.display(),
            host.state_dir().display()
        ))
    }

    /// The Vagrantfile the VMs were made from, not today's lab.yaml nor the
    /// state: every VM it made goes, recorded or not (one killed while
    /// booting), and a damaged state.json does not stop it.
    async fn destroy(&self, host: &Host<'_>, name: &str, _: Result<Made<'_>>) -> Result<String> {
        if host.vagrantfile().exists() {
            let vagrant = host.vagrant()?;
            host.printer.info("destroying the VMs");
            vagrant.destroy(None).await?;
        } else {
            host.printer
                .info("no Vagrantfile in .kubelab: no VMs to destroy");
        }
        Ok(format!(
            "lab {name} destroyed (the shared download cache stays; `kubelab cache clean` empties it)"
        ))
    }

    async fn halt(&self, host: &Host<'_>) -> Result<()> {
        let _lock = host.lock("kubelab lab halt")?;
        if !host.vagrantfile().exists() {
            host.printer.info("no VMs: this lab was never brought up");
            return Ok(());
        }
        let vagrant = host.vagrant()?;
        let running: Vec<String> = vagrant
            .status()
            .await?
            .into_iter()
            .filter(MachineState::is_running)
            .map(|m| m.name)
            .collect();
        if running.is_empty() {
            host.printer.info("no VM is running");
            return Ok(());
        }
        host.printer.info(format!("halting {}", running.join(", ")));
        let results = futures_util::future::join_all(running.iter().map(|n| vagrant.halt(n))).await;
        let failures: Vec<Error> = results.into_iter().filter_map(Result::err).collect();
        if failures.is_empty() {
            host.printer
                .info("halted; `kubelab lab up` boots them again");
            Ok(())
        } else {
            Err(Error::Several {
                summary: "some VMs did not halt:".into(),
                failures,
                hint: None,
            })
        }
    }

    fn snapshots(&self, _: &Lab, _: &str) -> Result<()> {
        Ok(())
    }

    async fn restore(&self, host: &Host<'_>, name: &str) -> Result<()> {
        host.snapshot_restore_locked(name).await
    }
}
