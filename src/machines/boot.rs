//! `lab up`'s machines phase on VirtualBox: every VM that is not running is
//! booted, a few at once, each one that loses one of VirtualBox's races
//! booted again alone.

use super::provider::{Created, Record};
use super::*;
use crate::printer::PhaseProgress;

impl Host<'_> {
    /// Boots every VM that is not running, recording each in `record`;
    /// `rebooted` when one of them existed already (powered off or saved),
    /// so its services are coming back.
    pub(super) async fn up_machines(
        &self,
        shared: &Record,
        jobs: Option<usize>,
    ) -> Result<Created> {
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

        let pending: Vec<&crate::topology::Node> = topo
            .nodes
            .iter()
            .filter(|n| !states.get(&n.name).is_some_and(MachineState::is_running))
            .collect();
        let running = topo.nodes.len() - pending.len();
        let rebooted = pending
            .iter()
            .any(|n| states.get(&n.name).is_some_and(MachineState::exists));
        if pending.is_empty() {
            self.printer.info(format!(
                "all {} VMs are running; nothing to boot",
                topo.nodes.len()
            ));
        } else {
            let jobs = jobs.unwrap_or_else(|| {
                default_jobs(topo.nodes.iter().map(|n| n.memory_mb).max().unwrap_or(1024))
            });
            let progress = self.printer.phase(
                "machines",
                pending.len(),
                Some(format!(
                    "booting {} VM{} ({} already running; up to {jobs} at once)",
                    pending.len(),
                    if pending.len() == 1 { "" } else { "s" },
                    running
                )),
            );
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
                if let Err(e) = self.boot(&vagrant, node, shared, &progress).await
                    && let Err(e) = self
                        .boot_again_alone(&vagrant, node, shared, e, &progress)
                        .await
                {
                    failures.push(e);
                }
            }
            if failures.is_empty() {
                // Those that lost one of VirtualBox's races go again one at a
                // time, after the others: only those, a few times at most.
                for (node, e) in self
                    .boot_concurrently(&vagrant, &rest, jobs, shared, &progress)
                    .await
                {
                    if let Err(e) = self
                        .boot_again_alone(&vagrant, node, shared, e, &progress)
                        .await
                    {
                        failures.push(e);
                    }
                }
            } else {
                self.printer.info(format!(
                    "not booting the other {} VMs: the first one (box import) failed",
                    rest.len()
                ));
            }
            shared.save()?;
            if !failures.is_empty() {
                if self.runner.children.interrupted() {
                    return Ok(Created::default());
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
            // The live line becomes the summary.
            let summary = format!(
                "{} VMs running after {:.1} s",
                topo.nodes.len(),
                started.elapsed().as_secs_f64()
            );
            progress.finish_with(summary);
        }
        Ok(Created {
            rebooted,
            complete: true,
        })
    }

    /// Boots `nodes` up to `jobs` at once; the ones that failed, with why.
    pub(super) async fn boot_concurrently<'n>(
        &self,
        vagrant: &Vagrant,
        nodes: &[&'n crate::topology::Node],
        jobs: usize,
        shared: &Record,
        progress: &PhaseProgress<'_>,
    ) -> Vec<(&'n crate::topology::Node, Error)> {
        use futures_util::StreamExt;
        futures_util::stream::iter(nodes.iter().map(|&node| async move {
            self.boot(vagrant, node, shared, progress)
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
    pub(super) async fn boot_again_alone(
        &self,
        vagrant: &Vagrant,
        node: &crate::topology::Node,
        shared: &Record,
        mut error: Error,
        progress: &PhaseProgress<'_>,
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
            match self.boot(vagrant, node, shared, progress).await {
                Ok(()) => return Ok(()),
                Err(e) => error = e,
            }
            wait *= 2;
        }
        Err(error)
    }

    /// `vagrant up NODE`, recording the outcome in state as soon as it is known.
    pub(super) async fn boot(
        &self,
        vagrant: &Vagrant,
        node: &crate::topology::Node,
        shared: &Record,
        progress: &PhaseProgress<'_>,
    ) -> Result<()> {
        if self.runner.children.interrupted() {
            // Never started: nothing to record.
            return Err(Error::Interrupted { hint: None });
        }
        let started = Instant::now();
        progress.start(&node.name, "booting");
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
        let saved = shared.node(node, machine, vm_id, error);
        match &result {
            Ok(_) => progress.done(
                &node.name,
                format!("running ({:.1} s)", started.elapsed().as_secs_f64()),
            ),
            Err(_) if self.runner.children.interrupted() => {
                progress.failed(&node.name, Some("interrupted"))
            }
            Err(_) => progress.failed(&node.name, Some("failed")),
        }
        result?;
        saved.map_err(|e| {
            Error::other(
                format!("{} is running, but kubelab could not record it: {e}", node.name),
                "free space for .kubelab/state.json, then run `kubelab lab up` again (running VMs are kept)",
            )
        })
    }
}
