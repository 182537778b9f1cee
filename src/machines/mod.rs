//! The hypervisor side of a lab: bringing VMs up fast, halting, destroying,
//! snapshots, and the hosts block. Provisioning builds on the machines made here.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::printer::{self, Printer, SCHEMA_VERSION};
use crate::provision::{self, Selection, plan};
use crate::settings::Settings;
use crate::state::{LabLock, MachineStatus, State};
use crate::tools::Runner;
use crate::tools::ssh::Transport;
use crate::tools::vagrant::{MachineState, Vagrant};
use crate::tools::vboxmanage::VBoxManage;
use crate::topology::Phase;
use crate::{hosts_file, render, yaml_edit};

mod boot;
pub mod provider;
#[cfg(test)]
mod recording;
pub mod scale;
pub mod shared;
mod snapshot;
pub mod static_hosts;
#[cfg(test)]
mod tests;
pub mod virtualbox;

pub use provider::Machines;
pub use snapshot::check_snapshot_name;

/// The provider lab.yaml names: the one place that asks which it is.
pub fn of(lab: &crate::config::Lab) -> Arc<dyn Machines> {
    match lab.provider {
        crate::config::Provider::Virtualbox => Arc::new(virtualbox::VirtualBox),
        crate::config::Provider::Static => Arc::new(static_hosts::StaticHosts),
    }
}

/// How long vagrant gets to clean up after the one SIGINT before it is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(30);

/// How many times a VM that lost one of VirtualBox's races is booted again.
const RACE_RETRIES: u32 = 3;

/// How `lab up` runs (and `scale` and `reset`, which run it): resolved once
/// from the command line.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// At most this many `vagrant up` (and provisioning steps) at once.
    pub jobs: Option<usize>,
    pub no_hosts: bool,
    pub offline: bool,
    pub selection: Selection,
}

/// Everything a host-side command works with.
pub struct Host<'a> {
    pub loaded: &'a LoadedLab,
    pub settings: &'a Settings,
    pub printer: &'a Printer,
    pub runner: Runner,
    /// The lab's provider: every machine is made, reached and removed
    /// through it.
    pub machines: Arc<dyn Machines>,
}

impl<'a> Host<'a> {
    pub fn new(
        loaded: &'a LoadedLab,
        settings: &'a Settings,
        printer: &'a Printer,
        verbose: bool,
    ) -> Self {
        Host {
            loaded,
            settings,
            printer,
            runner: Runner::new(verbose),
            machines: of(&loaded.lab),
        }
    }

    /// The same command over another lab (the lab as `scale` or `reset`
    /// left it), with the same provider and children.
    fn over<'b>(&self, loaded: &'b LoadedLab) -> Host<'b>
    where
        'a: 'b,
    {
        Host {
            loaded,
            settings: self.settings,
            printer: self.printer,
            runner: self.runner.clone(),
            machines: self.machines.clone(),
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.loaded.state_dir()
    }

    fn state_path(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }

    fn lock(&self, what: &str) -> Result<LabLock> {
        crate::lab::owner::lock(self.loaded, what)
    }

    fn load_state(&self) -> Result<State> {
        State::load(&self.state_path(), &self.loaded.lab.name)
    }

    /// Runs `work`; on Ctrl-C or SIGTERM sends one SIGINT to the children,
    /// lets `work` finish (it records what it did), then reports how to resume.
    async fn interruptible<T>(
        &self,
        resume: &str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let notice = || {
            self.printer.info(format!(
                "interrupted: asking the running commands to stop (up to {} s), then saving state",
                INTERRUPT_GRACE.as_secs()
            ))
        };
        let on = crate::tools::OnInterrupt {
            grace: INTERRUPT_GRACE,
            notice: Some(&notice),
            hint: Some(format!(
                "nothing is lost: run `{resume}` to carry on where it stopped"
            )),
            finish: true,
        };
        crate::tools::interruptible(&self.runner.children, on, work).await?
    }

    // -----------------------------------------------------------------------
    // lab up: the machines
    // -----------------------------------------------------------------------

    pub async fn up(&self, options: &UpOptions) -> Result<()> {
        let _lock = self.lock("kubelab lab up")?;
        self.check_up(options)?;
        self.interruptible("kubelab lab up", self.up_locked(options))
            .await
    }

    /// What `lab up` can check before its first side effect, checked: the
    /// node `--node` names, the state file (this lab's, a schema kubelab
    /// reads), and the hosts file (text, markers that pair up, writable).
    /// Bad input then exits 2 before any VM starts.
    pub fn check_up(&self, options: &UpOptions) -> Result<()> {
        let selection = &options.selection;
        if let Some(node) = &selection.node
            && self.loaded.topo.node(node).is_none()
        {
            return Err(Error::usage(
                format!("no node named {node:?} in this lab"),
                format!(
                    "use one of {} (see `kubelab lab plan`)",
                    self.loaded
                        .topo
                        .nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        self.load_state()?;
        if !options.no_hosts {
            hosts_file::preflight(&self.settings.hosts_file, &self.loaded.lab.name)?;
        }
        if options.offline && !selection.stops_after_machines() {
            // Before any VM boots: offline, a release missing from the cache
            // would stop the run only after every machine came up. Only the
            // phases with a step left need theirs (a finished lab needs none).
            let pending = match provision::plan::preview(
                self.loaded,
                self.settings,
                selection,
                self.machines.reach_every_run(),
            ) {
                Ok((plan, _)) => plan.pending_phases(),
                // No VM yet past --from: provision says so, after the machines.
                Err(_) => Phase::ALL.into_iter().collect(),
            };
            provision::downloads::refuse_missing(&self.loaded.lab, self.settings, &|phase| {
                selection.includes(phase) && pending.contains(&phase)
            })?;
        }
        Ok(())
    }

    /// `lab up`'s work, for callers that hold the lab's lock already.
    async fn up_locked(&self, options: &UpOptions) -> Result<()> {
        let UpOptions {
            jobs,
            no_hosts,
            offline,
            selection,
        } = options;
        let (jobs, no_hosts, offline) = (*jobs, *no_hosts, *offline);
        let mut rebooted = false;
        if self.machines.reach_every_run() || selection.includes(Phase::Machines) {
            fs_err::create_dir_all(self.state_dir())?;
            let mut state = self.load_state()?;
            state.lab = self.loaded.lab.name.clone();
            let record = provider::Record::new(state, self.state_path());
            let created = self.machines.create(self, &record, jobs).await?;
            record.save()?;
            if created.complete {
                self.write_lab_hosts_block(no_hosts).await?;
            }
            rebooted = created.rebooted;
        }
        if selection.stops_after_machines() {
            return Ok(());
        }
        self.provision(jobs, offline, selection).await?;
        if rebooted {
            // Every step may be done, yet the services of VMs that were
            // powered off are still coming back (keepalived claims the VIP
            // seconds after boot): return once the lab answers.
            self.wait_until_verified(Duration::from_secs(180))
                .await
                .map_err(|e| {
                    Error::other(
                        format!("the VMs are running again, but the lab does not answer yet: {e}"),
                        "`kubelab lab verify` shows each check; `kubelab lab up` re-applies what a VM lost",
                    )
                })?;
        }
        Ok(())
    }

    /// Every phase after the machines, over one SSH ControlMaster per node:
    /// the facts of new VMs first, then one render and one plan, run.
    async fn provision(
        &self,
        jobs: Option<usize>,
        offline: bool,
        selection: &Selection,
    ) -> Result<()> {
        let LoadedLab { lab, topo, .. } = self.loaded;
        let mut state = self.load_state()?;
        plan::vms_exist(topo, &state)?;
        let pki_dir = self.state_dir().join("pki");
        let pki = crate::pki::load_or_create(&pki_dir, lab, topo)?;
        if !pki.created.is_empty() {
            self.printer.info(format!(
                "certs: signed {} new files in {}",
                pki.created.len(),
                pki_dir.display()
            ));
        }
        let vm_ids = plan::vm_ids(topo, &state);
        let stale = plan::stale_facts(topo, &state, &vm_ids, selection);
        let build = |state: &State| {
            plan::build(
                lab,
                topo,
                state,
                &pki,
                selection,
                &self.settings.cache_dir,
                self.settings.artifacts_mirror.as_deref(),
            )
        };
        // With every fact known, everything is decided without SSH: a lab
        // whose steps are all done makes no connection at all.
        let known = if stale.is_empty() {
            let plan = build(&state)?;
            if plan.pending().next().is_none() {
                self.printer
                    .info("provisioning: every selected step is done already; nothing to do");
                return Ok(());
            }
            Some(plan)
        } else {
            None
        };

        // Release files first: a missing one fails before any node is touched.
        // With the plan known, only the phases with a step left; else (new
        // VMs) every selected one.
        let pending = known.as_ref().map(plan::Plan::pending_phases);
        let uploads = provision::downloads::fetch(
            self.loaded,
            self.settings,
            self.printer,
            offline,
            &|phase| {
                selection.includes(phase) && pending.as_ref().is_none_or(|p| p.contains(&phase))
            },
        )
        .await?;
        let transport = self.transport().await?;
        let result = async {
            let plan = match known {
                Some(plan) => plan,
                None => {
                    provision::facts::gather(
                        topo,
                        &stale,
                        &vm_ids,
                        &transport,
                        self.printer,
                        &self.state_dir().join("logs"),
                        &mut state,
                        &self.state_path(),
                    )
                    .await?;
                    build(&state)?
                }
            };
            let engine = provision::Engine {
                lab,
                topo: plan::with_facts(topo, &state),
                transport: &transport,
                printer: self.printer,
                state,
                state_path: self.state_path(),
                logs: self.state_dir().join("logs"),
                jobs: jobs.unwrap_or(8),
                uploads,
            };
            engine.run(&plan.steps).await
        }
        .await;
        transport.close().await;
        result
    }

    /// One SSH ControlMaster per node of the lab.
    async fn transport(&self) -> Result<Transport> {
        let topo = &self.loaded.topo;
        let names: Vec<&str> = topo.nodes.iter().map(|n| n.name.as_str()).collect();
        self.machines.transport(self, &names).await
    }

    /// The lab's hosts block, leaving out the short names another lab's
    /// block already claims.
    fn lab_hosts_block(&self) -> Result<String> {
        let LoadedLab { lab, topo, .. } = self.loaded;
        let existing = hosts_file::read(&self.settings.hosts_file)?;
        Ok(hosts_file::unambiguous(
            &render::hosts_block(lab, topo),
            &existing,
            &lab.name,
        ))
    }

    /// Writes the lab's block, unless `--no-hosts` said not to.
    async fn write_lab_hosts_block(&self, no_hosts: bool) -> Result<()> {
        if no_hosts {
            self.printer
                .info("not touching the hosts file (--no-hosts)");
            return Ok(());
        }
        // The block depends on the other labs' blocks: read them under the lock.
        let _host = self.settings.host_lock()?;
        self.write_hosts_block(Some(&self.lab_hosts_block()?)).await
    }

    async fn write_hosts_block(&self, block: Option<&str>) -> Result<()> {
        let path = &self.settings.hosts_file;
        let printer = self.printer;
        // Labs share the file: one read-modify-write at a time.
        let _host = self.settings.host_lock()?;
        let written = hosts_file::update(
            path,
            &self.loaded.lab.name,
            block,
            &self.state_dir(),
            &self.runner,
            |why| printer.info(why),
        )
        .await?;
        let verb = if block.is_some() { "wrote" } else { "removed" };
        match written {
            hosts_file::Written::Unchanged => self
                .printer
                .info(format!("{} already up to date", path.display())),
            hosts_file::Written::InPlace { backup } => self.printer.info(format!(
                "{verb} the lab's block in {} (in place: it is a mount point; backup at {})",
                path.display(),
                backup.display()
            )),
            _ => self
                .printer
                .info(format!("{verb} the lab's block in {}", path.display())),
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // lab status
    // -----------------------------------------------------------------------

    pub async fn status(&self, json: bool) -> Result<()> {
        let (rows, extra) = self.status_rows().await?;
        if json {
            return self.printer.json(&StatusJson {
                schema_version: SCHEMA_VERSION,
                lab: &self.loaded.lab.name,
                nodes: &rows,
                not_in_lab_yaml: &extra,
            });
        }
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.role.clone(),
                    r.address.clone(),
                    r.state.clone(),
                    if r.phases.is_empty() {
                        "-".into()
                    } else {
                        r.phases.join(",")
                    },
                ]
            })
            .collect();
        self.printer.data(printer::table(
            &["NODE", "ROLE", "ADDRESS", "STATE", "PHASES DONE"],
            &table,
        ));
        let workers = self.loaded.lab.role(crate::config::Role::Worker).count;
        for name in extra {
            self.printer.warn(self.machines.not_in_lab(&name, workers));
        }
        Ok(())
    }

    /// A row per node of the lab, with the provider's word for its machine,
    /// and the machines that exist but are no longer in lab.yaml (scaled
    /// down by hand).
    async fn status_rows(&self) -> Result<(Vec<StatusRow>, Vec<String>)> {
        let topo = &self.loaded.topo;
        let state = self.load_state()?;
        let vm_states = self.machines.status(self, &state).await?;
        let rows: Vec<StatusRow> = topo
            .nodes
            .iter()
            .map(|n| StatusRow {
                name: n.name.clone(),
                role: n.role.to_string(),
                address: n.address.to_string(),
                state: vm_states
                    .get(&n.name)
                    .cloned()
                    .unwrap_or_else(|| "not_created".into()),
                phases: state.phases_done(&n.name),
            })
            .collect();
        // VMs that exist but are no longer in lab.yaml (scaled down by hand).
        let extra: Vec<String> = vm_states
            .iter()
            .filter(|(name, st)| {
                topo.nodes.iter().all(|n| &n.name != *name) && st.as_str() != "not_created"
            })
            .map(|(name, _)| name.clone())
            .collect();
        Ok((rows, extra))
    }

    // -----------------------------------------------------------------------
    // lab halt / lab destroy
    // -----------------------------------------------------------------------

    pub async fn halt(&self) -> Result<()> {
        self.interruptible("kubelab lab halt", self.machines.halt(self))
            .await
    }

    /// `lab destroy`: after a confirmation naming what goes, every machine
    /// (through the provider), then the hosts block, the kubeconfig entries
    /// and `.kubelab/`. A provider that fails keeps the state, so the next
    /// `lab destroy` tries again.
    pub async fn destroy(&self, yes: bool) -> Result<()> {
        let state_dir = self.state_dir();
        // Asked for even with --yes: it warns about what stays.
        let question = self.machines.destroy_question(self)?;
        if !yes {
            confirm(&question)?;
        }
        let lock = self.lock("kubelab lab destroy")?;
        // What `lab up` made, by the name it made it under; checked first.
        let recorded = crate::machines::shared::Recorded::of(self.loaded, self.printer)?;
        recorded.preflight(self.settings)?;
        // The machines its state recorded, as lab.yaml lists them (a static
        // lab's workers past the count included).
        let listed = crate::topology::Topology::every_listed_host(&self.loaded.lab);
        let made = State::load(&self.state_path(), &recorded.name).map(|state| provider::Made {
            nodes: listed
                .nodes
                .iter()
                .filter(|n| state.nodes.contains_key(&n.name) || state.steps.contains_key(&n.name))
                .collect(),
            state,
        });
        // Interrupted, the state stays: the next `lab destroy` goes on.
        let done = self
            .interruptible(
                "kubelab lab destroy",
                self.machines.destroy(self, &recorded.name, made),
            )
            .await?;
        recorded
            .forget_shared(self.settings, &self.runner, self.printer)
            .await?;
        drop(lock);
        if state_dir.exists() {
            fs_err::remove_dir_all(&state_dir)?;
        }
        self.printer.info(done);
        Ok(())
    }

    // -----------------------------------------------------------------------
    // lab ssh
    // -----------------------------------------------------------------------

    pub async fn ssh(&self, node: &str, command: &[String]) -> Result<i32> {
        if self.loaded.topo.node(node).is_none() {
            let names: Vec<String> = self
                .loaded
                .topo
                .nodes
                .iter()
                .map(|n| n.name.clone())
                .collect();
            let hint = match crate::config::closest(node, &names) {
                Some(best) => format!("did you mean {best}? nodes: {}", names.join(", ")),
                None => format!("nodes: {}", names.join(", ")),
            };
            return Err(Error::usage(
                format!("no node named {node:?} in this lab"),
                hint,
            ));
        }
        self.machines.ssh(self, node, command).await
    }
}

#[derive(Serialize)]
struct StatusRow {
    name: String,
    role: String,
    address: String,
    state: String,
    phases: Vec<String>,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    schema_version: u32,
    lab: &'a str,
    nodes: &'a [StatusRow],
    not_in_lab_yaml: &'a [String],
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::other(format!("could not encode {}: {e}", path.display()), ""))?;
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(())
}

/// How many `vagrant up`s run at once: twice the cores (boots mostly wait),
/// no more than the free RAM holds, at most 8.
fn default_jobs(largest_vm_mb: u32) -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let available_mb = fs_err::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024);
    let by_ram = available_mb
        .map(|mb| (mb / u64::from(largest_vm_mb.max(1))) as usize)
        .unwrap_or(usize::MAX);
    (cores * 2).min(by_ram).clamp(1, 8)
}

/// Asks on a terminal; refuses without one (scripts pass --yes).
fn confirm(question: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "refusing to destroy without confirmation: stdin is not a terminal",
            "pass --yes to confirm from a script",
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Error::usage(
            "not confirmed; nothing was destroyed",
            "answer y, or pass --yes",
        ))
    }
}
