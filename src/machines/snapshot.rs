//! Snapshots of a VirtualBox lab (save, restore, delete, list), `lab reset`,
//! and `lab up --snapshot`'s wait for a verified lab.

use super::*;

/// Said on Ctrl-C during a save, which goes on (see `tools::shielded`).
const SAVE_GOES_ON: &str =
    "Ctrl-C: the snapshot finishes first (its VMs are paused or halted until it does)";

impl Host<'_> {
    pub(super) fn snapshots_dir(&self) -> PathBuf {
        self.state_dir().join("snapshots")
    }

    pub(super) fn existing_nodes(&self, states: &[MachineState]) -> Vec<String> {
        states
            .iter()
            .filter(|m| m.exists())
            .map(|m| m.name.clone())
            .collect()
    }

    pub async fn snapshot_save(&self, name: &str) -> Result<()> {
        self.machines.snapshots(&self.loaded.lab, "snapshot")?;
        check_snapshot_name(name)?;
        let _lock = self.lock("kubelab lab snapshot save")?;
        self.snapshot_save_shielded(name).await
    }

    /// The save, run to its end whatever Ctrl-C says: it resumes (or boots
    /// again) every VM it paused (or halted), and a save cut short would
    /// leave them so.
    async fn snapshot_save_shielded(&self, name: &str) -> Result<()> {
        let notice = || self.printer.info(SAVE_GOES_ON);
        crate::tools::shielded(&notice, self.snapshot_save_locked(name)).await?
    }

    pub(super) async fn snapshot_save_locked(&self, name: &str) -> Result<()> {
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
        // A powered-off snapshot booted the running VMs again: like `lab up`
        // after a halt, return once what the lab had done answers again.
        if powered_off.is_some() && !running.is_empty() {
            self.wait_until_verified(Duration::from_secs(180))
                .await
                .map_err(|e| {
                    Error::other(
                        format!(
                            "snapshot {name} was taken, but the lab does not answer again yet: {e}"
                        ),
                        "`kubelab lab verify` shows each check; the snapshot itself is complete",
                    )
                })?;
        }
        Ok(())
    }

    /// Why this host must not take saved-state snapshots
    /// ([`crate::platform::saved_state_breaks`]), if it must not.
    pub(super) async fn saved_state_breaks(&self, vbox: &VBoxManage) -> Option<&'static str> {
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
    pub(super) async fn snapshot_powered_off(
        &self,
        vagrant: &Vagrant,
        nodes: &[String],
        running: &[String],
        name: &str,
    ) -> Result<Vec<Result<crate::tools::Captured>>> {
        // Read before anything is halted: a damaged state.json must not
        // leave the lab powered off.
        let shared = super::provider::Record::new(self.load_state()?, self.state_path());
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
        let progress = self.printer.phase("machines", topo_nodes.len(), None);
        let (first, rest) = topo_nodes.split_at(topo_nodes.len().min(1));
        for &node in first {
            if let Err(e) = self.boot(vagrant, node, &shared, &progress).await
                && let Err(e) = self
                    .boot_again_alone(vagrant, node, &shared, e, &progress)
                    .await
            {
                boot_failures.push(e);
            }
        }
        let jobs = default_jobs(topo_nodes.iter().map(|n| n.memory_mb).max().unwrap_or(1024));
        for (node, e) in self
            .boot_concurrently(vagrant, rest, jobs, &shared, &progress)
            .await
        {
            if let Err(e) = self
                .boot_again_alone(vagrant, node, &shared, e, &progress)
                .await
            {
                boot_failures.push(e);
            }
        }
        progress.clear();
        shared.save()?;
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
    pub(super) async fn snapshot_paused(
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
        self.machines.snapshots(&self.loaded.lab, "snapshot")?;
        let _lock = self.lock("kubelab lab snapshot restore")?;
        self.interruptible(
            &format!("kubelab lab snapshot restore {name}"),
            self.machines.restore(self, name),
        )
        .await
    }

    pub(super) async fn snapshot_restore_locked(&self, name: &str) -> Result<()> {
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
    pub(super) async fn wait_until_verified(&self, deadline: Duration) -> Result<()> {
        let started = Instant::now();
        let state = self.load_state()?;
        let phases = crate::provision::phases_done(&self.loaded.topo, &state);
        crate::verify::wait_healthy(
            self.loaded,
            self.settings,
            self.printer,
            &crate::verify::checks_for(&phases),
            deadline,
            &self.runner,
            &*self.machines,
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
        self.machines.snapshots(&self.loaded.lab, "up --snapshot")?;
        let _lock = self.lock("kubelab lab up --snapshot")?;
        // Ctrl-C ends the wait; the save that follows is run to its end.
        let waited = self
            .interruptible(
                &format!("kubelab lab up --snapshot {name}"),
                self.wait_until_verified(Duration::from_secs(60)),
            )
            .await;
        match waited {
            Err(e @ Error::Interrupted { .. }) => return Err(e),
            Err(e) => {
                return Err(Error::other(
                    format!("not taking snapshot {name}: the lab does not verify ({e})"),
                    "`kubelab lab verify` shows each check; fix the lab, then `kubelab lab snapshot save` or `lab up --snapshot` again",
                ));
            }
            Ok(()) => {}
        }
        let notice = || self.printer.info(SAVE_GOES_ON);
        crate::tools::shielded(&notice, async {
            if self.snapshots_dir().join(name).exists() {
                self.printer
                    .info(format!("replacing the older snapshot {name}"));
                self.snapshot_delete_locked(name).await?;
            }
            self.snapshot_save_locked(name).await
        })
        .await?
    }

    /// `lab reset`: back to a snapshot, topology and hosts block included,
    /// then wait until what the lab had done answers again.
    pub async fn reset(&self, name: &str, no_hosts: bool) -> Result<()> {
        self.machines.snapshots(&self.loaded.lab, "reset")?;
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
        self.interruptible(
            &format!("kubelab lab reset {name}"),
            self.reset_locked(name, no_hosts, started),
        )
        .await
    }

    async fn reset_locked(&self, name: &str, no_hosts: bool, started: Instant) -> Result<()> {
        if !no_hosts {
            hosts_file::preflight(&self.settings.hosts_file, &self.loaded.lab.name)?;
        }
        self.machines.restore(self, name).await?;
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
        let host = self.over(&loaded);
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
    pub(super) async fn resync_clocks(&self, vagrant: &Vagrant, nodes: &[String]) -> Result<()> {
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
        self.machines.snapshots(&self.loaded.lab, "snapshot")?;
        let _lock = self.lock("kubelab lab snapshot delete")?;
        self.interruptible(
            &format!("kubelab lab snapshot delete {name}"),
            self.snapshot_delete_locked(name),
        )
        .await
    }

    pub(super) async fn snapshot_delete_locked(&self, name: &str) -> Result<()> {
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
        self.machines.snapshots(&self.loaded.lab, "snapshot")?;
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
