//! The hypervisor side of a lab: bringing VMs up fast, halting, destroying,
//! snapshots, and the hosts block. Provisioning builds on the machines made here.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::printer::{self, Printer, SCHEMA_VERSION};
use crate::provision::{self, Selection, plan};
use crate::settings::Settings;
use crate::state::{LabLock, MachineStatus, NodeState, State};
use crate::tools::ssh::Transport;
use crate::tools::vagrant::{MachineState, Vagrant};
use crate::tools::vboxmanage::VBoxManage;
use crate::tools::{Runner, ssh::Ssh};
use crate::topology::Phase;
use crate::{hosts_file, render, yaml_edit};

pub mod scale;
pub mod shared;
pub mod static_hosts;

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
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.loaded.state_dir()
    }

    fn state_path(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }

    fn vagrantfile(&self) -> PathBuf {
        self.state_dir().join("Vagrantfile")
    }

    fn vagrant(&self) -> Result<Vagrant> {
        Vagrant::find(&self.state_dir(), &self.runner)
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
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::pin!(work);
        tokio::select! {
            result = &mut work => return result,
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        self.printer.info(format!(
            "interrupted: asking the running commands to stop (up to {} s), then saving state",
            INTERRUPT_GRACE.as_secs()
        ));
        self.runner.children.begin_interrupt();
        let (_, ()) = tokio::join!(work, self.runner.children.interrupt(INTERRUPT_GRACE));
        Err(Error::Interrupted {
            hint: Some(format!(
                "nothing is lost: run `{resume}` to carry on where it stopped"
            )),
        })
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
        if options.offline {
            // Before any VM boots: offline, a release missing from the cache
            // would stop the run only after every machine came up.
            provision::downloads::refuse_missing(&self.loaded.lab, self.settings, &|phase| {
                selection.includes(phase)
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
        if self.is_static() {
            self.up_static(no_hosts).await?;
        } else if selection.includes(Phase::Machines) {
            let started = std::time::Instant::now();
            let machines = self.up_machines(jobs, no_hosts).await;
            crate::timings::record("machines", started.elapsed());
            rebooted = machines?;
        }
        if selection.until == Some(Phase::Machines)
            || (!selection.only.is_empty() && selection.only == [Phase::Machines])
        {
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
        let missing: Vec<&str> = topo
            .nodes
            .iter()
            .filter(|n| {
                state
                    .nodes
                    .get(&n.name)
                    .is_none_or(|s| s.machine != MachineStatus::Created)
            })
            .map(|n| n.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(Error::other(
                format!("no VM for {}", missing.join(", ")),
                "run `kubelab lab up` without --from/--only so the machines phase creates them",
            ));
        }
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
        let uploads = provision::downloads::fetch(
            self.loaded,
            self.settings,
            self.printer,
            offline,
            &|phase| selection.includes(phase),
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
            let mut facts_applied = topo.clone();
            facts_applied.apply_interfaces(
                state
                    .facts
                    .iter()
                    .map(|(n, f)| (n.as_str(), f.interface.as_str())),
            );
            let engine = provision::Engine {
                lab,
                topo: facts_applied,
                transport: &transport,
                printer: self.printer,
                state: Arc::new(Mutex::new(state)),
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
        if self.is_static() {
            return self.static_transport();
        }
        let vagrant = self.vagrant()?;
        let topo = &self.loaded.topo;
        let names: Vec<&str> = topo.nodes.iter().map(|n| n.name.as_str()).collect();
        let targets = crate::tools::ssh::parse_ssh_config(&vagrant.ssh_config(&names).await?);
        Transport::new(
            &self.loaded.lab.name,
            &self.state_dir(),
            targets,
            &self.runner,
        )
    }

    /// Boots every VM that is not running; true when one of them existed
    /// already (powered off or saved), so its services are coming back.
    async fn up_machines(&self, jobs: Option<usize>, no_hosts: bool) -> Result<bool> {
        let LoadedLab { lab, topo, .. } = self.loaded;
        let vagrant = self.vagrant()?;
        // Vagrant's own message for a missing VirtualBox is a page about
        // "providers"; say what to install instead.
        crate::tools::find("VBoxManage", "run the lab's VMs (VirtualBox)")?;
        fs_err::create_dir_all(self.state_dir())?;
        crate::fsutil::write_atomic(
            &self.vagrantfile(),
            render::vagrantfile(lab, topo).as_bytes(),
            0o644,
        )?;
        let states: BTreeMap<String, MachineState> = vagrant
            .status()
            .await?
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect();
        let mut state = self.load_state()?;
        state.lab = lab.name.clone();

        let pending: Vec<&crate::topology::Node> = topo
            .nodes
            .iter()
            .filter(|n| !states.get(&n.name).is_some_and(MachineState::is_running))
            .collect();
        let running = topo.nodes.len() - pending.len();
        let rebooted = pending
            .iter()
            .any(|n| states.get(&n.name).is_some_and(MachineState::exists));
        let shared = Arc::new(Mutex::new(state));
        if pending.is_empty() {
            self.printer.info(format!(
                "all {} VMs are running; nothing to boot",
                topo.nodes.len()
            ));
        } else {
            let jobs = jobs.unwrap_or_else(|| {
                default_jobs(topo.nodes.iter().map(|n| n.memory_mb).max().unwrap_or(1024))
            });
            self.printer.info(format!(
                "booting {} VM{} ({} already running; up to {jobs} at once)",
                pending.len(),
                if pending.len() == 1 { "" } else { "s" },
                running
            ));
            let started = Instant::now();
            let any_exists = states.values().any(MachineState::exists);
            let (first, rest): (Vec<_>, Vec<_>) = if any_exists {
                (Vec::new(), pending)
            } else {
                // The first VM imports the box and makes the linked-clone
                // master; VirtualBox cannot do that concurrently.
                let mut it = pending.into_iter();
                (it.next().into_iter().collect(), it.collect())
            };
            let mut failures = Vec::new();
            for node in first {
                if let Err(e) = self.boot(&vagrant, node, &shared).await
                    && let Err(e) = self.boot_again_alone(&vagrant, node, &shared, e).await
                {
                    failures.push(e);
                }
            }
            if failures.is_empty() {
                // Those that lost one of VirtualBox's races go again one at a
                // time, after the others: only those, a few times at most.
                for (node, e) in self.boot_concurrently(&vagrant, &rest, jobs, &shared).await {
                    if let Err(e) = self.boot_again_alone(&vagrant, node, &shared, e).await {
                        failures.push(e);
                    }
                }
            } else {
                self.printer.info(format!(
                    "not booting the other {} VMs: the first one (box import) failed",
                    rest.len()
                ));
            }
            let state = shared.lock().map(|s| s.clone()).unwrap_or_default();
            state.save(&self.state_path())?;
            if !failures.is_empty() {
                if self.runner.children.interrupted() {
                    return Ok(false);
                }
                let n = failures.len();
                return Err(Error::Several {
                    summary: format!("{n} VM{} did not boot:", if n == 1 { "" } else { "s" }),
                    failures,
                    hint: Some(
                        "run `kubelab lab up` again: running VMs are kept and only the failed ones are retried".into(),
                    ),
                });
            }
            self.printer.info(format!(
                "{} VMs running after {:.1} s",
                topo.nodes.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        let state = shared.lock().map(|s| s.clone()).unwrap_or_default();
        state.save(&self.state_path())?;
        self.write_lab_hosts_block(no_hosts).await?;
        Ok(rebooted)
    }

    /// Boots `nodes` up to `jobs` at once; the ones that failed, with why.
    async fn boot_concurrently<'n>(
        &self,
        vagrant: &Vagrant,
        nodes: &[&'n crate::topology::Node],
        jobs: usize,
        shared: &Arc<Mutex<State>>,
    ) -> Vec<(&'n crate::topology::Node, Error)> {
        use futures_util::StreamExt;
        futures_util::stream::iter(nodes.iter().map(|&node| async move {
            self.boot(vagrant, node, shared)
                .await
                .err()
                .map(|e| (node, e))
        }))
        .buffer_unordered(jobs.max(1))
        .filter_map(|r| async move { r })
        .collect()
        .await
    }

    /// A VM whose `vagrant up` lost one of VirtualBox's races (a concurrent
    /// import, a session lock: [`crate::tools::vagrant::virtualbox_race`]) is
    /// booted again alone, after a backoff that doubles, at most
    /// [`RACE_RETRIES`] times; any other failure is returned as it is.
    async fn boot_again_alone(
        &self,
        vagrant: &Vagrant,
        node: &crate::topology::Node,
        shared: &Arc<Mutex<State>>,
        mut error: Error,
    ) -> Result<()> {
        let mut wait = self.settings.boot_retry;
        for attempt in 1..=RACE_RETRIES {
            let Some(race) = crate::tools::vagrant::virtualbox_race(&error) else {
                return Err(error);
            };
            if self.runner.children.interrupted() {
                return Err(error);
            }
            self.printer.info(format!(
                "  {:<12} lost a VirtualBox race ({race}); booting it again alone in {:.1} s (retry {attempt} of {RACE_RETRIES})",
                node.name,
                wait.as_secs_f64()
            ));
            // A backoff, not a wait for a condition; Ctrl-C cuts it short.
            let until = Instant::now() + wait;
            while Instant::now() < until && !self.runner.children.interrupted() {
                tokio::time::sleep(
                    Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())),
                )
                .await;
            }
            match self.boot(vagrant, node, shared).await {
                Ok(()) => return Ok(()),
                Err(e) => error = e,
            }
            wait *= 2;
        }
        Err(error)
    }

    /// `vagrant up NODE`, recording the outcome in state as soon as it is known.
    async fn boot(
        &self,
        vagrant: &Vagrant,
        node: &crate::topology::Node,
        shared: &Arc<Mutex<State>>,
    ) -> Result<()> {
        if self.runner.children.interrupted() {
            // Never started: nothing to record.
            return Err(Error::Interrupted { hint: None });
        }
        let started = Instant::now();
        self.printer.info(format!("  {:<12} booting", node.name));
        let result = vagrant.up(&node.name).await;
        let (machine, error) = match &result {
            Ok(_) => (MachineStatus::Created, None),
            Err(_) if self.runner.children.interrupted() => (MachineStatus::Interrupted, None),
            Err(e) => (
                MachineStatus::Failed,
                Some(e.to_string().lines().next().unwrap_or_default().to_string()),
            ),
        };
        let vm_id = fs_err::read_to_string(
            self.state_dir()
                .join(".vagrant/machines")
                .join(&node.name)
                .join("virtualbox/id"),
        )
        .ok()
        .map(|s| s.trim().to_string());
        // Saved after every VM, so a crash or kill loses nothing; a save
        // that fails (a full disk) is reported, never ignored.
        let saved = match shared.lock() {
            Ok(mut state) => {
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
                state.save(&self.state_path())
            }
            Err(_) => Err(Error::other(
                "the lab's state was left half-updated by a task that crashed (a kubelab bug)",
                "run `kubelab lab up` again",
            )),
        };
        match &result {
            Ok(_) => self.printer.info(format!(
                "  {:<12} running ({:.1} s)",
                node.name,
                started.elapsed().as_secs_f64()
            )),
            Err(_) => self.printer.info(format!("  {:<12} failed", node.name)),
        }
        result?;
        saved.map_err(|e| {
            Error::other(
                format!("{} is running, but kubelab could not record it: {e}", node.name),
                "free space for .kubelab/state.json, then run `kubelab lab up` again (running VMs are kept)",
            )
        })
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
        let topo = &self.loaded.topo;
        let state = self.load_state()?;
        let vm_states: BTreeMap<String, String> = if self.vagrantfile().exists() {
            self.vagrant()?
                .status()
                .await?
                .into_iter()
                .map(|m| (m.name, m.state))
                .collect()
        } else if self.is_static() {
            // Servers are not kubelab's to run: say whether `lab up` reached them.
            state
                .nodes
                .iter()
                .map(|(n, s)| (n.clone(), format!("{:?}", s.machine).to_lowercase()))
                .collect()
        } else {
            self.printer.info(format!(
                "lab {} has no VMs yet (no {}): `kubelab lab up` creates them",
                self.loaded.lab.name,
                self.vagrantfile().display()
            ));
            BTreeMap::new()
        };
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
            if self.is_static() {
                self.printer.warn(format!("{name} has kubelab installed but is not in the lab (past nodes.worker.count); `kubelab lab scale workers={workers}` uninstalls it, as does `kubelab lab destroy`"));
            } else {
                self.printer.warn(format!("VM {name} exists but is not in lab.yaml; `kubelab lab destroy` removes it with the rest"));
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // lab halt / lab destroy
    // -----------------------------------------------------------------------

    pub async fn halt(&self) -> Result<()> {
        self.refuse_on_static("halt")?;
        let _lock = self.lock("kubelab lab halt")?;
        if !self.vagrantfile().exists() {
            self.printer.info("no VMs: this lab was never brought up");
            return Ok(());
        }
        let vagrant = self.vagrant()?;
        let running: Vec<String> = vagrant
            .status()
            .await?
            .into_iter()
            .filter(MachineState::is_running)
            .map(|m| m.name)
            .collect();
        if running.is_empty() {
            self.printer.info("no VM is running");
            return Ok(());
        }
        self.printer.info(format!("halting {}", running.join(", ")));
        let results = futures_util::future::join_all(running.iter().map(|n| vagrant.halt(n))).await;
        let failures: Vec<Error> = results.into_iter().filter_map(Result::err).collect();
        if failures.is_empty() {
            self.printer
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

    pub async fn destroy(&self, yes: bool) -> Result<()> {
        if self.is_static() {
            return self.destroy_static(yes).await;
        }
        let state_dir = self.state_dir();
        if !yes {
            confirm(&format!(
                "Destroy lab {}: every VM of {}, its block in {} and {}?",
                self.loaded.lab.name,
                self.vagrantfile().display(),
                self.settings.hosts_file.display(),
                state_dir.display()
            ))?;
        }
        let lock = self.lock("kubelab lab destroy")?;
        // What `lab up` made, by the name it made it under; checked first.
        let recorded = crate::machines::shared::Recorded::of(self.loaded, self.printer)?;
        recorded.preflight(self.settings)?;
        if self.vagrantfile().exists() {
            // The Vagrantfile the VMs were made from, not today's lab.yaml.
            let vagrant = self.vagrant()?;
            self.printer.info("destroying the VMs");
            vagrant.destroy(None).await?;
        } else {
            self.printer
                .info("no Vagrantfile in .kubelab: no VMs to destroy");
        }
        recorded
            .forget_shared(self.settings, &self.runner, self.printer)
            .await?;
        drop(lock);
        if state_dir.exists() {
            fs_err::remove_dir_all(&state_dir)?;
        }
        self.printer.info(format!(
            "lab {} destroyed (the shared download cache stays; `kubelab cache clean` empties it)",
            self.loaded.lab.name
        ));
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
        if self.is_static() {
            return self.ssh_static(node, command);
        }
        let ssh = Ssh::find()?;
        let config = self.vagrant()?.ssh_config(&[node]).await?;
        let path = self.state_dir().join("ssh_config");
        crate::fsutil::write_atomic(&path, config.as_bytes(), 0o600)?;
        ssh.interactive(&path, node, command)
    }

    // -----------------------------------------------------------------------
    // lab snapshot
    // -----------------------------------------------------------------------

    fn snapshots_dir(&self) -> PathBuf {
        self.state_dir().join("snapshots")
    }

    fn existing_nodes(&self, states: &[MachineState]) -> Vec<String> {
        states
            .iter()
            .filter(|m| m.exists())
            .map(|m| m.name.clone())
            .collect()
    }

    pub async fn snapshot_save(&self, name: &str) -> Result<()> {
        self.refuse_on_static("snapshot")?;
        check_snapshot_name(name)?;
        let _lock = self.lock("kubelab lab snapshot save")?;
        self.snapshot_save_locked(name).await
    }

    async fn snapshot_save_locked(&self, name: &str) -> Result<()> {
        let vagrant = self.vagrant_for_existing_lab()?;
        let states = vagrant.status().await?;
        let nodes = self.existing_nodes(&states);
        if nodes.is_empty() {
            return Err(Error::other(
                "the lab has no VMs to snapshot",
                "run `kubelab lab up` first",
            ));
        }
        let dir = self.snapshots_dir().join(name);
        if dir.exists() {
            return Err(Error::usage(
                format!("a snapshot named {name:?} exists already"),
                format!("pick another name, or `kubelab lab snapshot delete {name}` first"),
            ));
        }
        let running: Vec<String> = states
            .iter()
            .filter(|m| m.is_running())
            .map(|m| m.name.clone())
            .collect();
        let vbox = if running.is_empty() {
            None
        } else {
            Some(VBoxManage::find(
                self.state_dir().join("logs/host/vboxmanage.log"),
                &self.runner,
            )?)
        };
        let vm_names: Vec<String> = running
            .iter()
            .map(|n| format!("kubelab-{}-{n}", self.loaded.lab.name))
            .collect();
        let started = Instant::now();
        // Where restoring a saved state is known to break the guests, the
        // snapshot holds powered-off VMs instead.
        let powered_off = match &vbox {
            Some(vbox) => self.saved_state_breaks(vbox).await,
            None => None,
        };
        let saved = if let Some(why) = powered_off {
            self.printer.info(format!(
                "{why}: taking a powered-off snapshot instead (halting the {} running VMs, snapshotting, booting them again)",
                running.len()
            ));
            self.snapshot_powered_off(&vagrant, &nodes, &running, name)
                .await?
        } else {
            self.snapshot_paused(&vagrant, vbox.as_ref(), &nodes, &vm_names, name)
                .await?
        };
        let failures: Vec<Error> = saved.into_iter().filter_map(Result::err).collect();
        if !failures.is_empty() {
            return Err(Error::Several {
                summary: format!("snapshot {name} is incomplete:"),
                failures,
                hint: Some(format!(
                    "`kubelab lab snapshot delete {name}` removes the parts that were taken"
                )),
            });
        }
        let record = SnapshotRecord {
            name: name.to_string(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            nodes: nodes.clone(),
            counts: self
                .loaded
                .lab
                .roles
                .iter()
                .map(|r| (r.role.key().to_string(), r.count))
                .collect(),
            powered_off: powered_off.is_some(),
        };
        fs_err::create_dir_all(&dir)?;
        write_json(&dir.join("snapshot.json"), &record)?;
        if self.state_path().exists() {
            fs_err::copy(self.state_path(), dir.join("state.json"))?;
        }
        self.printer.info(format!(
            "saved {}snapshot {name} of {} VMs in {:.1} s; `kubelab lab snapshot restore {name}` returns to it",
            if powered_off.is_some() { "powered-off " } else { "" },
            nodes.len(),
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Why this host must not take saved-state snapshots
    /// ([`crate::platform::saved_state_breaks`]), if it must not.
    async fn saved_state_breaks(&self, vbox: &VBoxManage) -> Option<&'static str> {
        let log = self.state_dir().join("logs/host/facts.log");
        let facts = crate::host::Facts::gather(self.settings, &self.runner, &log).await;
        let version = vbox
            .version()
            .await
            .ok()
            .and_then(|v| crate::platform::parse_virtualbox_version(&v));
        crate::platform::saved_state_breaks(facts.os, facts.arch(), version)
    }

    /// Halt every running VM, snapshot them all, boot the running ones again
    /// (first alone, then concurrently, as `lab up` does). The outcome of
    /// each snapshot; an error when a VM would not halt or boot again.
    async fn snapshot_powered_off(
        &self,
        vagrant: &Vagrant,
        nodes: &[String],
        running: &[String],
        name: &str,
    ) -> Result<Vec<Result<crate::tools::Captured>>> {
        // Read before anything is halted: a damaged state.json must not
        // leave the lab powered off.
        let shared = Arc::new(Mutex::new(self.load_state()?));
        let halted = futures_util::future::join_all(running.iter().map(|n| vagrant.halt(n))).await;
        let halt_failures: Vec<Error> = halted.into_iter().filter_map(Result::err).collect();
        let saved = if halt_failures.is_empty() {
            futures_util::future::join_all(nodes.iter().map(|n| vagrant.snapshot("save", n, name)))
                .await
        } else {
            Vec::new()
        };
        let topo_nodes: Vec<&crate::topology::Node> = running
            .iter()
            .filter_map(|n| self.loaded.topo.node(n))
            .collect();
        let mut boot_failures = Vec::new();
        let (first, rest) = topo_nodes.split_at(topo_nodes.len().min(1));
        for &node in first {
            if let Err(e) = self.boot(vagrant, node, &shared).await
                && let Err(e) = self.boot_again_alone(vagrant, node, &shared, e).await
            {
                boot_failures.push(e);
            }
        }
        let jobs = default_jobs(topo_nodes.iter().map(|n| n.memory_mb).max().unwrap_or(1024));
        for (node, e) in self.boot_concurrently(vagrant, rest, jobs, &shared).await {
            if let Err(e) = self.boot_again_alone(vagrant, node, &shared, e).await {
                boot_failures.push(e);
            }
        }
        let state = shared.lock().map(|s| s.clone()).unwrap_or_default();
        state.save(&self.state_path())?;
        if !halt_failures.is_empty() {
            return Err(Error::Several {
                summary: format!("not taking snapshot {name}: some VMs did not halt:"),
                failures: halt_failures,
                hint: Some("`kubelab lab up` boots every VM again".into()),
            });
        }
        if !boot_failures.is_empty() {
            return Err(Error::Several {
                summary: format!("snapshot {name} was taken, but some VMs did not boot again:"),
                failures: boot_failures,
                hint: Some("`kubelab lab up` boots them".into()),
            });
        }
        Ok(saved)
    }

    /// Pause every running VM, snapshot them all (each with its saved
    /// state), resume: one instant for all, without a reboot.
    async fn snapshot_paused(
        &self,
        vagrant: &Vagrant,
        vbox: Option<&VBoxManage>,
        nodes: &[String],
        vm_names: &[String],
        name: &str,
    ) -> Result<Vec<Result<crate::tools::Captured>>> {
        // Pause every VM first so all snapshots show one instant: etcd's
        // members then agree with each other after a restore.
        if let Some(vbox) = vbox {
            let paused =
                futures_util::future::join_all(vm_names.iter().map(|vm| vbox.control(vm, "pause")))
                    .await;
            if let Some(err) = paused.into_iter().find_map(Result::err) {
                let _ = futures_util::future::join_all(
                    vm_names.iter().map(|vm| vbox.control(vm, "resume")),
                )
                .await;
                return Err(err);
            }
        }
        let saved =
            futures_util::future::join_all(nodes.iter().map(|n| vagrant.snapshot("save", n, name)))
                .await;
        if let Some(vbox) = vbox {
            let resumed = futures_util::future::join_all(
                vm_names.iter().map(|vm| vbox.control(vm, "resume")),
            )
            .await;
            if let Some(err) = resumed.into_iter().find_map(Result::err) {
                return Err(err);
            }
        }
        Ok(saved)
    }

    pub async fn snapshot_restore(&self, name: &str) -> Result<()> {
        self.refuse_on_static("snapshot")?;
        let _lock = self.lock("kubelab lab snapshot restore")?;
        self.snapshot_restore_locked(name).await
    }

    async fn snapshot_restore_locked(&self, name: &str) -> Result<()> {
        let record = self.read_snapshot(name)?;
        let vagrant = self.vagrant_for_existing_lab()?;
        let states = vagrant.status().await?;
        let started = Instant::now();
        // VMs created since the snapshot go: the lab returns to its topology.
        let extra: Vec<String> = self
            .existing_nodes(&states)
            .into_iter()
            .filter(|n| !record.nodes.contains(n))
            .collect();
        for node in &extra {
            self.printer.info(format!(
                "  {node:<12} destroying (created after the snapshot)"
            ));
            vagrant.destroy(Some(node)).await?;
        }
        let vagrant_ref = &vagrant;
        let restored = futures_util::future::join_all(record.nodes.iter().map(|n| async move {
            let r = vagrant_ref.snapshot("restore", n, name).await;
            if r.is_ok() {
                self.printer.info(format!("  {n:<12} restored"));
            }
            r
        }))
        .await;
        let failures: Vec<Error> = restored.into_iter().filter_map(Result::err).collect();
        if !failures.is_empty() {
            return Err(Error::Several {
                summary: format!("snapshot {name} was not restored on every VM:"),
                failures,
                hint: Some(format!("run `kubelab lab snapshot restore {name}` again")),
            });
        }
        // The lab file's counts and the state as they were at the save.
        self.restore_counts(&record)?;
        let saved_state = self.snapshots_dir().join(name).join("state.json");
        if saved_state.exists() {
            fs_err::copy(&saved_state, self.state_path())?;
        }
        self.resync_clocks(&vagrant, &record.nodes).await?;
        self.printer.info(format!(
            "restored snapshot {name} ({} VMs) in {:.1} s",
            record.nodes.len(),
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Waits until the checks of every phase the lab has done pass (never
    /// the disruptive failover); the caller holds the lab's lock.
    async fn wait_until_verified(&self, deadline: Duration) -> Result<()> {
        let started = Instant::now();
        let state = self.load_state()?;
        let phases = crate::provision::phases_done(&self.loaded.topo, &state);
        crate::verify::wait_healthy(
            self.loaded,
            self.settings,
            self.printer,
            &crate::verify::checks_for(&phases),
            deadline,
            self.runner.verbose,
        )
        .await?;
        // No quiet check covers the VIP (the failover check stops haproxy).
        if phases.contains(&Phase::Lb) {
            crate::verify::wait_api_endpoint(
                self.loaded,
                self.printer,
                deadline.saturating_sub(started.elapsed()),
            )
            .await?;
        }
        Ok(())
    }

    /// After `lab up --snapshot NAME`: the checks of every phase the lab has
    /// done must pass, then NAME is saved (an older NAME is replaced).
    pub async fn snapshot_when_verified(&self, name: &str) -> Result<()> {
        self.refuse_on_static("up --snapshot")?;
        let _lock = self.lock("kubelab lab up --snapshot")?;
        self.wait_until_verified(Duration::from_secs(60))
            .await
            .map_err(|e| {
            Error::other(
                format!("not taking snapshot {name}: the lab does not verify ({e})"),
                "`kubelab lab verify` shows each check; fix the lab, then `kubelab lab snapshot save` or `lab up --snapshot` again",
            )
        })?;
        if self.snapshots_dir().join(name).exists() {
            self.printer
                .info(format!("replacing the older snapshot {name}"));
            self.snapshot_delete_locked(name).await?;
        }
        self.snapshot_save_locked(name).await
    }

    /// `lab reset`: back to a snapshot, topology and hosts block included,
    /// then wait until what the lab had done answers again.
    pub async fn reset(&self, name: &str, no_hosts: bool) -> Result<()> {
        self.refuse_on_static("reset")?;
        check_snapshot_name(name)?;
        let started = Instant::now();
        if !self
            .snapshots_dir()
            .join(name)
            .join("snapshot.json")
            .exists()
        {
            return Err(Error::usage(
                format!(
                    "lab {} has no snapshot named {name:?}",
                    self.loaded.lab.name
                ),
                format!(
                    "`kubelab lab up --snapshot {name}` takes it once the lab verifies (or `kubelab lab snapshot save {name}`); `kubelab lab snapshot list` shows what there is"
                ),
            ));
        }
        let _lock = self.lock("kubelab lab reset")?;
        if !no_hosts {
            hosts_file::preflight(&self.settings.hosts_file, &self.loaded.lab.name)?;
        }
        self.snapshot_restore_locked(name).await?;
        // lab.yaml may have other counts now: continue with the lab as restored.
        let loaded = match &self.loaded.lab.source {
            crate::config::LabSource::File(path) => {
                let lab = crate::lab::load(path)?;
                let topo = crate::topology::Topology::new(&lab);
                LoadedLab {
                    lab,
                    topo,
                    dir: self.loaded.dir.clone(),
                }
            }
            crate::config::LabSource::BuiltIn => LoadedLab {
                lab: self.loaded.lab.clone(),
                topo: self.loaded.topo.clone(),
                dir: self.loaded.dir.clone(),
            },
        };
        let host = Host {
            loaded: &loaded,
            settings: self.settings,
            printer: self.printer,
            runner: self.runner.clone(),
        };
        host.write_lab_hosts_block(no_hosts).await?;
        host.wait_until_verified(Duration::from_secs(180))
            .await
            .map_err(|e| {
            Error::other(
                format!(
                    "lab {} was restored to {name} but does not answer yet: {e}",
                    loaded.lab.name
                ),
                "`kubelab lab verify` shows each check; `kubelab lab up` re-applies what a VM lost",
            )
        })?;
        self.printer.info(format!(
            "lab {} is back at snapshot {name} and answers again: {:.1} s in all",
            loaded.lab.name,
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// A restored VM's clock is the clock of the save: set every one that is
    /// more than 2 s off to now, or TLS and etcd leases misbehave. A clock
    /// that is right is left alone: it may not be the VM's to set (a machine
    /// sharing the host's kernel clock, as the e2e test's containers do).
    async fn resync_clocks(&self, vagrant: &Vagrant, nodes: &[String]) -> Result<()> {
        let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let targets = crate::tools::ssh::parse_ssh_config(&vagrant.ssh_config(&names).await?);
        // The provisioning transport: host keys pinned per lab and node.
        let transport = Transport::new(
            &self.loaded.lab.name,
            &self.state_dir(),
            targets,
            &self.runner,
        )?;
        let unix_now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        let results = futures_util::future::join_all(nodes.iter().map(|node| {
            let log = self
                .state_dir()
                .join("logs")
                .join(node)
                .join("snapshot.log");
            let transport = &transport;
            async move {
                // Read the node's clock, bracketed by the host's: the SSH
                // round trip (seconds on a loaded host) is not skew. Only a
                // clock outside the bracket is set, so a machine sharing the
                // host's clock (a container) is never asked to.
                let before = unix_now();
                let out = transport
                    .run(
                        node,
                        "date -u +%s",
                        None,
                        format!("read {node}'s clock"),
                        &log,
                    )
                    .await?;
                let after = unix_now();
                let theirs: u64 = out.stdout.trim().parse().map_err(|_| {
                    Error::other(
                        format!("{node} printed {:?} for `date -u +%s`", out.stdout.trim()),
                        format!("see {}", log.display()),
                    )
                })?;
                if theirs + 2 >= before && theirs <= after + 2 {
                    return Ok(());
                }
                self.printer.info(format!(
                    "  {node:<12} clock off by {} s: setting it",
                    theirs.abs_diff(after)
                ));
                let command = format!("sudo date -u -s @{} >/dev/null", unix_now());
                transport
                    .run(node, &command, None, format!("reset {node}'s clock"), &log)
                    .await
                    .map(|_| ())
            }
        }))
        .await;
        transport.close().await;
        if let Some(err) = results.into_iter().find_map(Result::err) {
            return Err(err);
        }
        Ok(())
    }

    fn restore_counts(&self, record: &SnapshotRecord) -> Result<()> {
        let crate::config::LabSource::File(path) = &self.loaded.lab.source else {
            return Ok(());
        };
        let mut text = fs_err::read_to_string(path)?;
        let mut changed = Vec::new();
        for spec in &self.loaded.lab.roles {
            let key = spec.role.key();
            let Some(&count) = record.counts.get(key) else {
                continue;
            };
            if count != spec.count {
                text = yaml_edit::set_scalar(&text, &["nodes", key, "count"], &count.to_string()).ok_or_else(|| {
                    Error::other(
                        format!("could not set nodes.{key}.count back to {count} in {}", path.display()),
                        "write nodes.<role> as a block mapping (one key per line), or set the count by hand",
                    )
                })?;
                changed.push(format!("nodes.{key}.count {} -> {count}", spec.count));
            }
        }
        if !changed.is_empty() {
            crate::fsutil::write_keeping(path, text.as_bytes(), 0o644)?;
            self.printer
                .info(format!("{}: {}", path.display(), changed.join(", ")));
        }
        Ok(())
    }

    pub async fn snapshot_delete(&self, name: &str) -> Result<()> {
        self.refuse_on_static("snapshot")?;
        let _lock = self.lock("kubelab lab snapshot delete")?;
        self.snapshot_delete_locked(name).await
    }

    async fn snapshot_delete_locked(&self, name: &str) -> Result<()> {
        let record = self.read_snapshot(name)?;
        let vagrant = self.vagrant_for_existing_lab()?;
        let states = vagrant.status().await?;
        let existing = self.existing_nodes(&states);
        let deleted = futures_util::future::join_all(
            record
                .nodes
                .iter()
                .filter(|n| existing.contains(n))
                .map(|n| vagrant.snapshot("delete", n, name)),
        )
        .await;
        if let Some(err) = deleted.into_iter().find_map(Result::err) {
            return Err(err);
        }
        fs_err::remove_dir_all(self.snapshots_dir().join(name))?;
        self.printer.info(format!("deleted snapshot {name}"));
        Ok(())
    }

    pub fn snapshot_list(&self, json: bool) -> Result<()> {
        self.refuse_on_static("snapshot")?;
        let mut records = Vec::new();
        if let Ok(entries) = fs_err::read_dir(self.snapshots_dir()) {
            for entry in entries.flatten() {
                let path = entry.path().join("snapshot.json");
                if let Ok(text) = fs_err::read_to_string(&path)
                    && let Ok(record) = serde_json::from_str::<SnapshotRecord>(&text)
                {
                    records.push(record);
                }
            }
        }
        records.sort_by_key(|r| r.created_unix);
        if json {
            return self.printer.json(&serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "snapshots": records,
            }));
        }
        if records.is_empty() {
            self.printer
                .info("no snapshots; `kubelab lab snapshot save NAME` takes one");
            return Ok(());
        }
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.created_unix.to_string(),
                    r.nodes.len().to_string(),
                    r.nodes.join(","),
                ]
            })
            .collect();
        self.printer.data(printer::table(
            &["NAME", "CREATED (UNIX)", "VMS", "NODES"],
            &rows,
        ));
        Ok(())
    }

    fn read_snapshot(&self, name: &str) -> Result<SnapshotRecord> {
        check_snapshot_name(name)?;
        let path = self.snapshots_dir().join(name).join("snapshot.json");
        let text = fs_err::read_to_string(&path).map_err(|_| {
            Error::usage(
                format!("no snapshot named {name:?} in this lab"),
                "`kubelab lab snapshot list` shows the ones there are",
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::other(format!("{} is damaged: {e}", path.display()), ""))
    }

    fn vagrant_for_existing_lab(&self) -> Result<Vagrant> {
        if !self.vagrantfile().exists() {
            return Err(Error::other(
                "this lab has no VMs (no .kubelab/Vagrantfile)",
                "run `kubelab lab up` first",
            ));
        }
        self.vagrant()
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

/// What `.kubelab/snapshots/<name>/snapshot.json` records.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotRecord {
    name: String,
    created_unix: u64,
    /// The VMs the snapshot holds.
    nodes: Vec<String>,
    /// lab.yaml's count per role at the time.
    counts: BTreeMap<String, u32>,
    /// Taken with the VMs halted (no saved state to restore), where saved
    /// states are known to break.
    #[serde(default)]
    powered_off: bool,
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::other(format!("could not encode {}: {e}", path.display()), ""))?;
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(())
}

pub fn check_snapshot_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::usage(
            format!("{name:?} is not a usable snapshot name"),
            "use letters, digits, '-', '_' and '.', such as `base` or `before-upgrade`",
        ))
    }
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
