//! The whole of a `lab up`, decided before anything runs: which machines are
//! made or booted, which certificates are signed, which nodes' facts are
//! read, which release files are downloaded, and which step runs on which
//! node and why. `lab up` runs it; `lab up --dry-run` prints it and touches
//! nothing.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{Selection, Step, StepStatus};
use crate::artifacts;
use crate::config::Lab;
use crate::error::Result;
use crate::state::{MachineStatus, State};
use crate::topology::{Phase, Topology};

/// What `lab up` will do, in run order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub machines: Vec<MachinePlan>,
    /// Key and certificate files the PKI signs (none once it is complete).
    pub certificates: Vec<String>,
    /// Nodes whose OS and interface are read over SSH (new or recreated VMs).
    pub facts: Vec<String>,
    /// Whether the run reads facts at all.
    pub facts_selected: bool,
    /// Whether the run goes past the machines (and so signs and provisions).
    pub provisions: bool,
    pub downloads: Vec<Download>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MachinePlan {
    pub node: String,
    pub action: MachineAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineAction {
    /// No VM yet: `vagrant up` makes it.
    Create,
    /// The last attempt failed or was interrupted: it is made again.
    Retry,
    /// The VM exists: booted if it is not running, else left alone.
    Boot,
    /// A static lab's server: reached over SSH, never created.
    Reach,
    /// Not in this run (`--from`/`--only` past the machines phase).
    Skip,
}

impl MachineAction {
    pub fn describe(self) -> &'static str {
        match self {
            MachineAction::Create => "create",
            MachineAction::Retry => "create again (the last attempt did not finish)",
            MachineAction::Boot => "exists: booted unless it is running",
            MachineAction::Reach => "static server: reached over SSH",
            MachineAction::Skip => "not in this run",
        }
    }
}

/// One release file the selected phases need.
#[derive(Debug, Clone, Serialize)]
pub struct Download {
    pub label: String,
    pub file: String,
    pub url: String,
    /// In the cache already (nothing to fetch).
    pub cached: bool,
}

/// Why a step runs (or does not), in a reader's words. `previous` is the
/// step's record in the state, to name the files that changed.
pub fn why(step: &Step, state: &State) -> String {
    match step.status {
        StepStatus::Done => "done with these inputs".into(),
        StepStatus::New => "never run on this node".into(),
        StepStatus::Recreated => "the VM was made again since it ran".into(),
        StepStatus::Changed => {
            let before = state
                .steps
                .get(&step.node)
                .and_then(|s| s.get(step.phase.name()))
                .map(|r| &r.files);
            let changed: Vec<&str> = step
                .files
                .iter()
                .filter(|f| {
                    before.and_then(|b| b.get(&f.path))
                        != Some(&super::sha256_hex(f.contents.as_bytes()))
                })
                .map(|f| f.path.as_str())
                .collect();
            if changed.is_empty() {
                "its script, a release version or the node's interface changed".into()
            } else {
                format!("changed: {}", changed.join(", "))
            }
        }
    }
}

/// The machines part of the plan, from what the state recorded (no VM is
/// asked: the plan is built before anything runs). A provider whose
/// machines exist already has [`preview`] say they are reached instead.
pub fn machines(topo: &Topology, state: &State, selection: &Selection) -> Vec<MachinePlan> {
    topo.nodes
        .iter()
        .map(|n| {
            let action = if !selection.includes(Phase::Machines) {
                MachineAction::Skip
            } else {
                match state.nodes.get(&n.name).map(|s| s.machine) {
                    None => MachineAction::Create,
                    Some(MachineStatus::Created) => MachineAction::Boot,
                    Some(MachineStatus::Failed | MachineStatus::Interrupted) => {
                        MachineAction::Retry
                    }
                }
            };
            MachinePlan {
                node: n.name.clone(),
                action,
            }
        })
        .collect()
}

/// The nodes whose facts are read: selected, and never read on this VM.
/// A VM still to be made has no facts yet either.
pub fn stale_facts(
    topo: &Topology,
    state: &State,
    vm_ids: &BTreeMap<String, Option<String>>,
    selection: &Selection,
) -> Vec<String> {
    if !selection.includes(Phase::Facts) {
        return Vec::new();
    }
    topo.nodes
        .iter()
        .filter(|n| selection.includes_node(&n.name))
        .filter(|n| {
            state
                .facts
                .get(&n.name)
                .is_none_or(|f| f.vm_id != vm_ids.get(&n.name).cloned().flatten())
        })
        .map(|n| n.name.clone())
        .collect()
}

/// The release files the selected phases copy, each marked cached or not.
pub fn downloads(
    lab: &Lab,
    selection: &Selection,
    cache: &Path,
    mirror: Option<&str>,
) -> Result<Vec<Download>> {
    let needs = artifacts::needs(
        lab,
        &|p| selection.includes(p),
        artifacts::node_arch(),
        mirror,
    )?;
    Ok(artifacts::distinct(&needs)
        .into_iter()
        .map(|a| Download {
            label: a.label(),
            cached: artifacts::cached_path(cache, &a).exists(),
            file: a.file_name.clone(),
            url: a.url.clone(),
        })
        .collect())
}

/// Refuses a run past the machines phase on a lab whose VMs are not all
/// made (`--from`, `--only` on a lab never brought up).
pub fn vms_exist(topo: &Topology, state: &State) -> Result<()> {
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
    if missing.is_empty() {
        return Ok(());
    }
    Err(crate::error::Error::other(
        format!("no VM for {}", missing.join(", ")),
        "run `kubelab lab up` without --from/--only so the machines phase creates them",
    ))
}

impl Plan {
    /// The phases with a step to run.
    pub fn pending_phases(&self) -> std::collections::BTreeSet<Phase> {
        self.pending().map(|s| s.phase).collect()
    }
}

/// The topology with each node's interface as its facts read it: what the
/// plan renders from and the engine runs over.
pub fn with_facts(topo: &Topology, state: &State) -> Topology {
    let mut known = topo.clone();
    known.apply_interfaces(
        state
            .facts
            .iter()
            .map(|(n, f)| (n.as_str(), f.interface.as_str())),
    );
    known
}

/// The machine ids the state recorded, by node.
pub fn vm_ids(topo: &Topology, state: &State) -> BTreeMap<String, Option<String>> {
    topo.nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                state.nodes.get(&n.name).and_then(|s| s.vm_id.clone()),
            )
        })
        .collect()
}

/// Builds the plan from what is known now: the state's facts applied to
/// the topology, one render, one step plan. `pki` is the lab's (signed, or
/// previewed for a dry run); its `created` files are the plan's
/// certificates.
pub fn build(
    lab: &Lab,
    topo: &Topology,
    state: &State,
    pki: &crate::pki::Pki,
    selection: &Selection,
    cache: &Path,
    mirror: Option<&str>,
) -> Result<Plan> {
    let vm_ids = vm_ids(topo, state);
    let known = with_facts(topo, state);
    let files = crate::render::all(lab, &known, pki);
    Ok(Plan {
        machines: machines(topo, state, selection),
        // A run that stops after the machines signs nothing.
        certificates: if selection.stops_after_machines() {
            Vec::new()
        } else {
            pki.created.clone()
        },
        facts: stale_facts(topo, state, &vm_ids, selection),
        facts_selected: selection.includes(Phase::Facts),
        provisions: !selection.stops_after_machines(),
        downloads: downloads(lab, selection, cache, mirror)?,
        steps: super::steps(lab, &known, &files, state, &vm_ids, selection),
    })
}

/// The plan of a `lab up` now, for `--dry-run`: from the state as it is
/// and the PKI as it would be, with nothing written. `reached_every_run`
/// is the provider's word (`Machines::reach_every_run`): its machines
/// exist already and `lab up` reaches each one on every run.
pub fn preview(
    loaded: &crate::lab::LoadedLab,
    settings: &crate::settings::Settings,
    selection: &Selection,
    reached_every_run: bool,
) -> Result<(Plan, State)> {
    let state = State::load(&loaded.state_dir().join("state.json"), &loaded.lab.name)?;
    // Past the machines phase, every VM must exist, as `lab up` requires.
    if !selection.includes(Phase::Machines) && !reached_every_run {
        vms_exist(&loaded.topo, &state)?;
    }
    let pki = crate::pki::preview(&loaded.state_dir().join("pki"), &loaded.lab, &loaded.topo)?;
    let plan = build(
        &loaded.lab,
        &loaded.topo,
        &state,
        &pki,
        selection,
        &settings.cache_dir,
        settings.artifacts_mirror.as_deref(),
    )?;
    let mut plan = plan;
    if reached_every_run {
        for machine in &mut plan.machines {
            machine.action = MachineAction::Reach;
        }
    }
    Ok((plan, state))
}

impl Plan {
    /// Steps that will run.
    pub fn pending(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.status != StepStatus::Done)
    }
}

// ---------------------------------------------------------------------------
// Printing the plan (`lab up --dry-run`)
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct PlanJson<'a> {
    schema_version: u32,
    lab: &'a str,
    machines: &'a [MachinePlan],
    certificates: &'a [String],
    facts: &'a [String],
    downloads: &'a [Download],
    steps: Vec<StepJson<'a>>,
}

#[derive(Serialize)]
struct StepJson<'a> {
    phase: &'static str,
    node: &'a str,
    status: &'static str,
    why: String,
}

impl StepStatus {
    pub fn name(self) -> &'static str {
        match self {
            StepStatus::Done => "done",
            StepStatus::New => "new",
            StepStatus::Recreated => "recreated",
            StepStatus::Changed => "changed",
        }
    }
}

impl Plan {
    /// The plan as JSON (`lab up --dry-run --json`).
    pub fn json(&self, lab: &str, state: &State) -> serde_json::Value {
        serde_json::to_value(PlanJson {
            schema_version: crate::printer::SCHEMA_VERSION,
            lab,
            machines: &self.machines,
            certificates: &self.certificates,
            facts: &self.facts,
            downloads: &self.downloads,
            steps: self
                .steps
                .iter()
                .map(|s| StepJson {
                    phase: s.phase.name(),
                    node: &s.node,
                    status: s.status.name(),
                    why: why(s, state),
                })
                .collect(),
        })
        .unwrap_or_default()
    }

    /// The plan as text, one section per part, in run order.
    pub fn text(&self, lab: &str, state: &State) -> String {
        let mut out = format!("lab up would, for lab {lab:?} (nothing was changed):\n");
        out.push_str(&format!("\nmachines ({}):\n", self.machines.len()));
        for m in &self.machines {
            out.push_str(&format!("  {:<14} {}\n", m.node, m.action.describe()));
        }
        out.push_str("\ncertificates: ");
        if !self.provisions {
            out.push_str("not in this run (it stops after the machines)\n");
        } else if self.certificates.is_empty() {
            out.push_str("every file is signed already\n");
        } else {
            out.push_str(&format!(
                "sign {} file{} in .kubelab/pki\n",
                self.certificates.len(),
                plural(self.certificates.len())
            ));
        }
        out.push_str("\nfacts: ");
        if !self.facts_selected {
            out.push_str("not in this run\n");
        } else if self.facts.is_empty() {
            out.push_str("known for every selected node\n");
        } else {
            out.push_str(&format!(
                "read the OS and host-only interface of {} (until then the files below assume the box's usual interface)\n",
                self.facts.join(", ")
            ));
        }
        out.push_str(&format!("\ndownloads ({}):\n", self.downloads.len()));
        if self.downloads.is_empty() {
            out.push_str("  none: no selected phase needs a release file\n");
        }
        for d in &self.downloads {
            let what = if d.cached {
                "in the cache".to_string()
            } else {
                format!("download {}", d.url)
            };
            out.push_str(&format!("  {:<28} {what}\n", d.label));
        }
        let pending = self.pending().count();
        out.push_str(&format!(
            "\nsteps ({pending} to run, {} done):\n",
            self.steps.len() - pending
        ));
        for s in &self.steps {
            out.push_str(&format!(
                "  {:<12} {:<14} {:<9} {}\n",
                s.phase.name(),
                s.node,
                s.status.name(),
                why(s, state)
            ));
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabSource;
    use crate::state::{NodeFacts, NodeState, StepRecord};

    fn lab_of(yaml: &str) -> Lab {
        crate::lab::parse(yaml, LabSource::BuiltIn).unwrap()
    }

    fn plan_of(lab: &Lab, state: &State, pki_dir: &Path, selection: &Selection) -> Plan {
        let topo = Topology::new(lab);
        let pki = crate::pki::load_or_create(pki_dir, lab, &topo).unwrap();
        build(
            lab,
            &topo,
            state,
            &pki,
            selection,
            Path::new("/nonexistent-cache"),
            None,
        )
        .unwrap()
    }

    /// The state a `lab up` leaves: every VM made, its facts read, and the
    /// plan's steps recorded with their files.
    fn after_up(lab: &Lab, plan: &Plan) -> State {
        let topo = Topology::new(lab);
        let mut state = State::new(&lab.name);
        for n in &topo.nodes {
            state.nodes.insert(
                n.name.clone(),
                NodeState {
                    role: n.role.to_string(),
                    address: n.address.to_string(),
                    machine: MachineStatus::Created,
                    vm_id: Some(format!("vm-{}", n.name)),
                    error: None,
                },
            );
            state.facts.insert(
                n.name.clone(),
                NodeFacts {
                    os: "debian 12".into(),
                    interface: n.interface.clone(),
                    vm_id: Some(format!("vm-{}", n.name)),
                },
            );
        }
        for s in &plan.steps {
            state.steps.entry(s.node.clone()).or_default().insert(
                s.phase.name().into(),
                StepRecord {
                    input_hash: s.input_hash.clone(),
                    vm_id: Some(format!("vm-{}", s.node)),
                    files: s
                        .files
                        .iter()
                        .map(|f| {
                            (
                                f.path.clone(),
                                crate::provision::sha256_hex(f.contents.as_bytes()),
                            )
                        })
                        .collect(),
                    finished_unix: 0,
                },
            );
        }
        state
    }

    #[test]
    fn a_fresh_lab_plans_every_machine_fact_download_and_step() {
        let lab = crate::lab::builtin();
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(
            &lab,
            &State::new(&lab.name),
            dir.path(),
            &Selection::default(),
        );
        assert!(
            plan.machines
                .iter()
                .all(|m| m.action == MachineAction::Create)
        );
        assert_eq!(plan.facts.len(), 10);
        assert!(!plan.downloads.is_empty() && plan.downloads.iter().all(|d| !d.cached));
        assert!(plan.steps.iter().all(|s| s.status == StepStatus::New));
        let text = plan.text(&lab.name, &State::new(&lab.name));
        assert!(text.contains("steps (42 to run, 0 done)"), "{text}");
    }

    #[test]
    fn a_finished_lab_plans_nothing_and_a_half_built_one_the_rest() {
        let lab = crate::lab::builtin();
        let dir = tempfile::tempdir().unwrap();
        let until_etcd = Selection {
            until: Some(Phase::Etcd),
            ..Selection::default()
        };
        let first = plan_of(&lab, &State::new(&lab.name), dir.path(), &until_etcd);
        let state = after_up(&lab, &first);
        // Finished for what was asked: nothing to make, read or run.
        let again = plan_of(&lab, &state, dir.path(), &until_etcd);
        assert!(
            again
                .machines
                .iter()
                .all(|m| m.action == MachineAction::Boot)
        );
        assert!(again.facts.is_empty());
        assert_eq!(again.pending().count(), 0);
        assert!(again.certificates.is_empty(), "{:?}", again.certificates);
        // Half built: the later phases are all that runs.
        let rest = plan_of(&lab, &state, dir.path(), &Selection::default());
        let pending: std::collections::BTreeSet<Phase> = rest.pending().map(|s| s.phase).collect();
        assert_eq!(
            pending.into_iter().collect::<Vec<_>>(),
            [
                Phase::Controllers,
                Phase::Workers,
                Phase::Routes,
                Phase::Addons,
                Phase::Workload
            ]
        );
    }

    #[test]
    fn the_plan_says_why_a_step_runs_again() {
        let lab = crate::lab::builtin();
        let dir = tempfile::tempdir().unwrap();
        let first = plan_of(
            &lab,
            &State::new(&lab.name),
            dir.path(),
            &Selection::default(),
        );
        let mut state = after_up(&lab, &first);
        // A recreated VM.
        state.nodes.get_mut("lb1").unwrap().vm_id = Some("vm-lb1-new".into());
        // A changed input: haproxy's backends follow the controllers.
        let bigger = lab_of("nodes:\n  worker:\n    count: 2\n");
        let plan = plan_of(&bigger, &state, dir.path(), &Selection::default());
        let why_of = |phase: Phase, node: &str| {
            let step = plan
                .steps
                .iter()
                .find(|s| s.phase == phase && s.node == node)
                .unwrap();
            (step.status, why(step, &state))
        };
        assert_eq!(
            why_of(Phase::Lb, "lb1"),
            (
                StepStatus::Recreated,
                "the VM was made again since it ran".to_string()
            )
        );
        assert_eq!(why_of(Phase::Lb, "lb0").0, StepStatus::Done);
        assert_eq!(
            why_of(Phase::Workers, "worker1"),
            (StepStatus::New, "never run on this node".to_string())
        );
        let (status, reason) = why_of(Phase::Addons, "controller0");
        assert_eq!(status, StepStatus::Changed);
        assert!(
            reason.contains("var/lib/kubelab/cluster/pod-cidrs"),
            "{reason}"
        );
        assert!(
            plan.facts.contains(&"lb1".to_string()) && plan.facts.contains(&"worker1".to_string())
        );
        let machine = |node: &str| {
            plan.machines
                .iter()
                .find(|m| m.node == node)
                .unwrap()
                .action
        };
        assert_eq!(machine("worker1"), MachineAction::Create);
        assert_eq!(machine("lb1"), MachineAction::Boot);
    }

    #[test]
    fn a_static_lab_reaches_its_servers_and_past_machines_nothing_is_made() {
        let lab = crate::lab::builtin();
        let dir = tempfile::tempdir().unwrap();
        let from_dns = Selection {
            from: Some(Phase::Dns),
            ..Selection::default()
        };
        let plan = plan_of(&lab, &State::new(&lab.name), dir.path(), &from_dns);
        assert!(
            plan.machines
                .iter()
                .all(|m| m.action == MachineAction::Skip)
        );
        // A static lab's provider reaches its servers on every run: the
        // preview of a lab never brought up, even past the machines phase.
        let mut stat = lab.clone();
        stat.provider = crate::config::Provider::Static;
        let reached = crate::machines::of(&stat).reach_every_run();
        let topo = Topology::new(&stat);
        let loaded = crate::lab::LoadedLab {
            lab: stat,
            topo,
            dir: dir.path().to_path_buf(),
        };
        let mut settings = crate::settings::Settings::from_env();
        settings.cache_dir = dir.path().join("cache");
        for selection in [Selection::default(), from_dns] {
            let (plan, _) = preview(&loaded, &settings, &selection, reached).unwrap();
            assert!(
                plan.machines
                    .iter()
                    .all(|m| m.action == MachineAction::Reach)
            );
        }
    }

    #[test]
    fn a_preview_signs_nothing_on_disk() {
        let lab = crate::lab::builtin();
        let topo = Topology::new(&lab);
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let pki = crate::pki::preview(&pki_dir, &lab, &topo).unwrap();
        assert!(pki.created.len() > 40);
        assert!(!pki_dir.exists());
        // Complete on disk: the preview names nothing to sign.
        crate::pki::load_or_create(&pki_dir, &lab, &topo).unwrap();
        let before: Vec<_> = std::fs::read_dir(&pki_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            crate::pki::preview(&pki_dir, &lab, &topo)
                .unwrap()
                .created
                .is_empty()
        );
        let after: Vec<_> = std::fs::read_dir(&pki_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(before.len(), after.len());
    }
}
