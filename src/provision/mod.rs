//! The provisioning engine: from the rendered bundles to running services.
//!
//! A step is one (node, phase): upload the node's files for that phase (only
//! those that changed) with the role script, in one tar stream over the
//! node's SSH ControlMaster, and run the script with sudo. Each finished step
//! is recorded with a hash of its inputs and the VM's identity, so a second
//! `lab up` with nothing changed does no SSH work, a changed input re-runs
//! only the steps that depend on it, a recreated VM is provisioned again, and
//! a failure resumes where it stopped.

pub mod downloads;
mod engine;
pub mod facts;
pub mod plan;
mod record;
mod upload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::config::{Lab, Role};
use crate::error::{Error, Result};
use crate::printer::{PhaseProgress, Printer};
use crate::render::RenderedFile;
use crate::state::{State, StepRecord};
use crate::tools::ssh::Transport;
use crate::topology::{Node, Phase, Topology};

/// The role scripts, compiled in so an installed kubelab works anywhere.
pub const SCRIPTS: &[(&str, &str)] = &[
    ("lib.sh", include_str!("../../provision/scripts/lib.sh")),
    (
        "packages.sh",
        include_str!("../../provision/scripts/packages.sh"),
    ),
    ("dns.sh", include_str!("../../provision/scripts/dns.sh")),
    (
        "resolv.sh",
        include_str!("../../provision/scripts/resolv.sh"),
    ),
    ("lb.sh", include_str!("../../provision/scripts/lb.sh")),
    ("certs.sh", include_str!("../../provision/scripts/certs.sh")),
    ("etcd.sh", include_str!("../../provision/scripts/etcd.sh")),
    (
        "registry.sh",
        include_str!("../../provision/scripts/registry.sh"),
    ),
    (
        "controller.sh",
        include_str!("../../provision/scripts/controller.sh"),
    ),
    (
        "worker.sh",
        include_str!("../../provision/scripts/worker.sh"),
    ),
    (
        "routes.sh",
        include_str!("../../provision/scripts/routes.sh"),
    ),
    (
        "addons.sh",
        include_str!("../../provision/scripts/addons.sh"),
    ),
    (
        "workload.sh",
        include_str!("../../provision/scripts/workload.sh"),
    ),
];

/// Where scripts live on a node.
const REMOTE_SCRIPTS: &str = "var/lib/kubelab/scripts";

fn script_text(name: &str) -> &'static str {
    SCRIPTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("no compiled-in script {name} (a kubelab bug)"))
}

/// The script a phase runs; `None` for the phases run by kubelab itself
/// (machines on the host, facts read over SSH).
pub fn script_of(phase: Phase) -> Option<&'static str> {
    Some(match phase {
        Phase::Machines | Phase::Facts => return None,
        Phase::Dns => "dns.sh",
        Phase::Resolv => "resolv.sh",
        Phase::Registry => "registry.sh",
        Phase::Lb => "lb.sh",
        Phase::Certs => "certs.sh",
        Phase::Etcd => "etcd.sh",
        Phase::Controllers => "controller.sh",
        Phase::Workers => "worker.sh",
        Phase::Routes => "routes.sh",
        Phase::Addons => "addons.sh",
        Phase::Workload => "workload.sh",
    })
}

/// Whether `node` runs `phase`. The cluster-wide kubectl phases run once,
/// on the first controller.
pub fn participates(phase: Phase, node: &Node) -> bool {
    match phase {
        Phase::Machines => false,
        Phase::Facts | Phase::Resolv | Phase::Certs | Phase::Routes => true,
        Phase::Dns => node.role == Role::Dns,
        Phase::Registry => node.role == Role::Registry,
        Phase::Lb => node.role == Role::Lb,
        Phase::Etcd => node.role == Role::Etcd,
        Phase::Controllers => node.role == Role::Controller,
        Phase::Workers => node.role == Role::Worker,
        Phase::Addons | Phase::Workload => node.role == Role::Controller && node.index == 0,
    }
}

/// Phases the engine runs: every one but machines (the first), which is the
/// host side's.
pub const ENGINE_PHASES: &[Phase] = Phase::ALL.split_at(1).1;

/// The phases a lab has been provisioned through: each one every node of
/// `topo` that takes part in it has done. New workers are brought to the
/// same point as the others, no further.
pub fn phases_done(topo: &Topology, state: &State) -> Vec<Phase> {
    Phase::ALL
        .into_iter()
        .filter(|&phase| {
            if phase == Phase::Machines {
                return topo.nodes.iter().any(|n| {
                    state
                        .nodes
                        .get(&n.name)
                        .is_some_and(|s| s.machine == crate::state::MachineStatus::Created)
                });
            }
            if phase == Phase::Facts {
                return topo.nodes.iter().any(|n| state.facts.contains_key(&n.name));
            }
            let mut takers = topo.nodes.iter().filter(|n| participates(phase, n));
            let mut any = false;
            let all = takers.all(|n| {
                let done = state
                    .steps
                    .get(&n.name)
                    .is_some_and(|s| s.contains_key(phase.name()));
                any |= done;
                // New workers of the same role have not done it yet: judge by
                // the nodes that existed.
                done || !state.nodes.contains_key(&n.name)
            });
            all && any
        })
        .collect()
}

/// Roles whose re-application goes one node at a time, so quorum and the VIP
/// survive.
fn is_ha(phase: Phase) -> bool {
    matches!(phase, Phase::Lb | Phase::Etcd | Phase::Controllers)
}

/// Which phases and nodes a run covers (`--from`, `--until`, `--only`, `--node`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub from: Option<Phase>,
    pub until: Option<Phase>,
    pub only: Vec<Phase>,
    pub node: Option<String>,
}

impl Selection {
    pub fn includes(&self, phase: Phase) -> bool {
        if !self.only.is_empty() {
            return self.only.contains(&phase);
        }
        self.from.is_none_or(|f| phase >= f) && self.until.is_none_or(|u| phase <= u)
    }

    /// A run of the machines phase alone (`--until machines`, `--only
    /// machines`): nothing is provisioned or signed.
    pub fn stops_after_machines(&self) -> bool {
        self.until == Some(Phase::Machines)
            || (!self.only.is_empty() && self.only == [Phase::Machines])
    }

    pub fn includes_node(&self, node: &str) -> bool {
        self.node.as_deref().is_none_or(|n| n == node)
    }
}

/// One (node, phase) of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    pub node: String,
    pub phase: Phase,
    /// This phase's files of the node, paths relative to its root.
    pub files: Vec<RenderedFile>,
    pub input_hash: String,
    pub vm_id: Option<String>,
    pub status: StepStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Done with these very inputs on this very VM.
    Done,
    /// Never done on this node.
    New,
    /// Done on an earlier VM of this node, which was made again since.
    Recreated,
    /// Done before with other inputs: a re-apply.
    Changed,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Each (node, phase)'s files.
pub type StepFiles = BTreeMap<(String, Phase), Vec<RenderedFile>>;

/// Splits the rendered files into per-node, per-phase sets, by the phase
/// render gave each. A node's file with no phase is left out and listed.
pub fn files_by_step(files: &[RenderedFile]) -> (StepFiles, Vec<String>) {
    let mut out = StepFiles::new();
    let mut unplaced = Vec::new();
    for f in files {
        let Some(node) = &f.node else { continue };
        let rel = f
            .path
            .strip_prefix(&format!("{node}/"))
            .unwrap_or(&f.path)
            .to_string();
        match f.phase {
            Some(phase) => out
                .entry((node.clone(), phase))
                .or_default()
                .push(RenderedFile {
                    path: rel,
                    ..f.clone()
                }),
            None => unplaced.push(f.path.clone()),
        }
    }
    (out, unplaced)
}

/// The plan: every step of the selected phases and nodes, in run order, each
/// marked done or not against the state. Pure.
pub fn steps(
    lab: &Lab,
    topo: &Topology,
    files: &[RenderedFile],
    state: &State,
    vm_ids: &BTreeMap<String, Option<String>>,
    selection: &Selection,
) -> Vec<Step> {
    let (by_step, _) = files_by_step(files);
    let mut steps = Vec::new();
    for &phase in ENGINE_PHASES {
        // Facts are read by `facts::gather`, not run as a script.
        if !selection.includes(phase) || script_of(phase).is_none() {
            continue;
        }
        for node in topo.nodes.iter().filter(|n| participates(phase, n)) {
            if !selection.includes_node(&node.name) {
                continue;
            }
            let files = by_step
                .get(&(node.name.clone(), phase))
                .cloned()
                .unwrap_or_default();
            let vm_id = vm_ids.get(&node.name).cloned().flatten();
            let input_hash = step_hash(lab, node, phase, &files);
            let previous = state
                .steps
                .get(&node.name)
                .and_then(|s| s.get(phase.name()));
            let status = match previous {
                Some(p) if p.vm_id != vm_id => StepStatus::Recreated,
                Some(p) if p.input_hash == input_hash => StepStatus::Done,
                Some(_) => StepStatus::Changed,
                None => StepStatus::New,
            };
            steps.push(Step {
                node: node.name.clone(),
                phase,
                files,
                input_hash,
                vm_id,
                status,
            });
        }
    }
    steps
}

/// The release versions a phase's step installs: a bump re-runs only the
/// steps that consume it (a containerd bump the workers, not etcd one node
/// at a time). Versions that reach a node inside a rendered file (CoreDNS
/// and metrics-server in the addons' manifests, pause in containerd's
/// config) are hashed with that file.
fn versions_consumed(lab: &Lab, phase: Phase) -> String {
    let v = &lab.versions;
    match phase {
        Phase::Etcd => format!("etcd {} from {}", v.etcd, lab.etcd_source),
        // kubectl comes with the control plane's binaries.
        Phase::Controllers | Phase::Addons | Phase::Workload => {
            format!("kubernetes {}", v.kubernetes)
        }
        Phase::Workers => format!(
            "kubernetes {} containerd {} runc {} cni-plugins {} crictl {}",
            v.kubernetes, v.containerd, v.runc, v.cni_plugins, v.crictl
        ),
        _ => String::new(),
    }
}

/// Everything a step depends on.
fn step_hash(lab: &Lab, node: &Node, phase: Phase, files: &[RenderedFile]) -> String {
    let mut h = Sha256::new();
    h.update(phase.name());
    h.update([0]);
    h.update(&node.interface);
    h.update([0]);
    if let Some(script) = script_of(phase) {
        h.update(script_text("lib.sh"));
        h.update(script_text("packages.sh"));
        h.update(script_text(script));
    }
    h.update(versions_consumed(lab, phase));
    for f in files {
        h.update([0]);
        h.update(&f.path);
        h.update(format!("{:o}", f.mode));
        h.update(sha256_hex(f.contents.as_bytes()));
    }
    sha256_hex(&h.finalize())
}

pub use engine::Engine;
pub use upload::uninstall;
#[cfg(test)]
use upload::{Upload, archive};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn files_for(lab: &Lab, topo: &Topology) -> Vec<RenderedFile> {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::load_or_create(dir.path(), lab, topo).unwrap();
        crate::render::all(lab, topo, &pki)
    }

    fn ids(topo: &Topology) -> BTreeMap<String, Option<String>> {
        topo.nodes
            .iter()
            .map(|n| (n.name.clone(), Some(format!("vm-{}", n.name))))
            .collect()
    }

    /// The plan of every step of `files` over `state`, each node on its
    /// VM of [`ids`], nothing deselected.
    fn plan(lab: &Lab, topo: &Topology, files: &[RenderedFile], state: &State) -> Vec<Step> {
        steps(lab, topo, files, state, &ids(topo), &Selection::default())
    }

    /// The state after every step of `files` ran once.
    fn finished(lab: &Lab, topo: &Topology, files: &[RenderedFile]) -> State {
        let mut state = State::new("x");
        for s in plan(lab, topo, files, &state) {
            state.steps.entry(s.node.clone()).or_default().insert(
                s.phase.name().into(),
                StepRecord {
                    input_hash: s.input_hash.clone(),
                    vm_id: s.vm_id.clone(),
                    files: BTreeMap::new(),
                    finished_unix: 0,
                },
            );
        }
        state
    }

    /// The steps not done yet, as `phase:node`.
    fn pending(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter(|s| s.status != StepStatus::Done)
            .map(|s| format!("{}:{}", s.phase, s.node))
            .collect()
    }

    #[test]
    fn the_plan_covers_each_role_in_phase_order() {
        let lab = crate::lab::builtin();
        let topo = Topology::new(&lab);
        let files = files_for(&lab, &topo);
        let steps = plan(&lab, &topo, &files, &State::new("x"));
        let summary: Vec<String> = steps
            .iter()
            .filter(|s| ![Phase::Resolv, Phase::Certs, Phase::Routes].contains(&s.phase))
            .map(|s| format!("{}:{}", s.phase, s.node))
            .collect();
        assert_eq!(
            summary,
            [
                "dns:dns0",
                "lb:lb0",
                "lb:lb1",
                "etcd:etcd0",
                "etcd:etcd1",
                "etcd:etcd2",
                "controllers:controller0",
                "controllers:controller1",
                "controllers:controller2",
                "workers:worker0",
                "addons:controller0",
                "workload:controller0",
            ]
        );
        // Routes run on every node (the only worker's step has no files).
        let routes = steps.iter().filter(|s| s.phase == Phase::Routes).count();
        assert_eq!(routes, topo.nodes.len());
        assert!(steps.iter().all(|s| s.status == StepStatus::New));
        // Every file of those phases is placed by exactly one step.
        let lb0 = steps
            .iter()
            .find(|s| s.node == "lb0" && s.phase == Phase::Lb)
            .unwrap();
        let paths: Vec<&str> = lb0.files.iter().map(|f| f.path.as_str()).collect();
        assert!(paths.contains(&"etc/haproxy/haproxy.cfg"), "{paths:?}");
        let etcd_certs = steps
            .iter()
            .find(|s| s.node == "etcd0" && s.phase == Phase::Certs)
            .unwrap();
        assert!(
            etcd_certs
                .files
                .iter()
                .any(|f| f.path == "etc/etcd/peer-key.pem" && f.mode == 0o600)
        );
    }

    #[test]
    fn every_node_file_belongs_to_a_phase() {
        // With the registry on, so its files are rendered too.
        let lab = crate::lab::parse(
            "nodes:\n  registry:\n    count: 1\n",
            config::LabSource::BuiltIn,
        )
        .unwrap();
        let topo = Topology::new(&lab);
        let (by_step, unplaced) = files_by_step(&files_for(&lab, &topo));
        assert_eq!(unplaced, Vec::<String>::new(), "files no phase places");
        let phases: std::collections::BTreeSet<Phase> = by_step.keys().map(|(_, p)| *p).collect();
        // Every phase with a script places files (facts only reads).
        for &p in ENGINE_PHASES.iter().filter(|p| **p != Phase::Facts) {
            assert!(phases.contains(&p), "no files for {p}");
        }
        // Every phase the engine runs with a script has a script.
        for p in ENGINE_PHASES.iter().copied().filter(|p| *p != Phase::Facts) {
            assert!(script_of(p).is_some(), "no script for {p}");
        }
        // The first controller carries what addons and workload apply.
        let addons: Vec<&str> = by_step[&("controller0".to_string(), Phase::Addons)]
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(
            addons,
            [
                "var/lib/kubelab/cluster/admin.kubeconfig",
                "var/lib/kubelab/cluster/manifests/apiserver-to-kubelet.yaml",
                "var/lib/kubelab/cluster/manifests/coredns.yaml",
                "var/lib/kubelab/cluster/manifests/metrics-server.yaml",
                "var/lib/kubelab/cluster/pod-cidrs",
            ]
        );
        let cidrs = by_step[&("controller0".to_string(), Phase::Addons)]
            .iter()
            .find(|f| f.path.ends_with("pod-cidrs"))
            .unwrap();
        assert!(
            cidrs.contents.lines().any(|l| l == "worker0 10.200.0.0/24"),
            "{}",
            cidrs.contents
        );
        let workload = &by_step[&("controller0".to_string(), Phase::Workload)];
        assert_eq!(workload.len(), 1);
        assert_eq!(
            workload[0].path,
            "var/lib/kubelab/cluster/manifests/nginx.yaml"
        );
        assert!(!by_step.contains_key(&("controller1".to_string(), Phase::Addons)));
        let controller = &by_step[&("controller0".to_string(), Phase::Controllers)];
        assert!(
            controller
                .iter()
                .any(|f| f.path == "etc/systemd/system/kube-apiserver.service")
        );
        assert!(
            controller.iter().all(|f| !f.path.ends_with(".pem")),
            "certs go with the certs phase"
        );
    }

    #[test]
    fn nothing_changed_means_nothing_to_do_and_one_change_reruns_only_its_steps() {
        let lab = crate::lab::builtin();
        let topo = Topology::new(&lab);
        let files = files_for(&lab, &topo);
        let state = finished(&lab, &topo, &files);
        let second = plan(&lab, &topo, &files, &state);
        assert!(second.iter().all(|s| s.status == StepStatus::Done));

        // Change haproxy.cfg on lb1 only: just that step is a re-apply.
        let mut edited = files.clone();
        let f = edited
            .iter_mut()
            .find(|f| f.path == "lb1/etc/haproxy/haproxy.cfg")
            .unwrap();
        f.contents.push_str("# changed\n");
        let third = plan(&lab, &topo, &edited, &state);
        let pending: Vec<String> = third
            .iter()
            .filter(|s| s.status != StepStatus::Done)
            .map(|s| format!("{}:{}:{:?}", s.phase, s.node, s.status))
            .collect();
        assert_eq!(pending, ["lb:lb1:Changed"]);
    }

    #[test]
    fn a_version_bump_re_runs_only_the_steps_that_consume_it() {
        // Both labs' files from one PKI, as on a real lab: only what the
        // bump changes differs.
        let pending = |yaml: &str| -> Vec<String> {
            let base = crate::lab::builtin();
            let bumped = crate::lab::parse(yaml, config::LabSource::BuiltIn).unwrap();
            let topo = Topology::new(&base);
            let dir = tempfile::tempdir().unwrap();
            let pki = crate::pki::load_or_create(dir.path(), &base, &topo).unwrap();
            let files = crate::render::all(&base, &topo, &pki);
            let bumped_files = crate::render::all(&bumped, &topo, &pki);
            let state = finished(&base, &topo, &files);
            pending(&plan(&bumped, &topo, &bumped_files, &state))
        };
        let base = crate::lab::builtin();
        assert_eq!(
            pending("versions:\n  etcd: \"3.5.33\"\n"),
            ["etcd:etcd0", "etcd:etcd1", "etcd:etcd2"]
        );
        // CoreDNS reaches the nodes in the addons' manifest only.
        let coredns = crate::artifacts::RELEASES
            .iter()
            .map(|r| r.coredns)
            .find(|v| *v != base.versions.coredns)
            .unwrap();
        assert_eq!(
            pending(&format!("versions:\n  coredns: \"{coredns}\"\n")),
            ["addons:controller0"]
        );
    }

    #[test]
    fn a_recreated_vm_is_provisioned_again() {
        let lab = crate::lab::builtin();
        let topo = Topology::new(&lab);
        let files = files_for(&lab, &topo);
        let state = finished(&lab, &topo, &files);
        let mut new_ids = ids(&topo);
        new_ids.insert("etcd1".into(), Some("vm-etcd1-recreated".into()));
        let again = steps(&lab, &topo, &files, &state, &new_ids, &Selection::default());
        assert_eq!(
            pending(&again),
            ["resolv:etcd1", "certs:etcd1", "etcd:etcd1", "routes:etcd1"]
        );
        assert!(
            again
                .iter()
                .filter(|s| s.node == "etcd1")
                .all(|s| s.status == StepStatus::Recreated)
        );
    }

    #[test]
    fn the_engine_runs_every_phase_after_the_machines() {
        assert_eq!(ENGINE_PHASES.first(), Some(&Phase::Facts));
        assert_eq!(ENGINE_PHASES.len(), Phase::ALL.len() - 1);
        assert!(!ENGINE_PHASES.contains(&Phase::Machines));
    }

    #[test]
    fn selection_limits_phases_and_nodes() {
        let sel = Selection {
            until: Some(Phase::Lb),
            ..Selection::default()
        };
        assert!(sel.includes(Phase::Dns) && sel.includes(Phase::Lb) && !sel.includes(Phase::Etcd));
        let sel = Selection {
            from: Some(Phase::Certs),
            node: Some("etcd0".into()),
            ..Selection::default()
        };
        assert!(!sel.includes(Phase::Lb) && sel.includes(Phase::Etcd));
        assert!(sel.includes_node("etcd0") && !sel.includes_node("etcd1"));
        let sel = Selection {
            only: vec![Phase::Dns, Phase::Etcd],
            ..Selection::default()
        };
        assert!(sel.includes(Phase::Etcd) && !sel.includes(Phase::Resolv));
    }

    fn bytes_of(upload: &Upload) -> Vec<u8> {
        let mut bytes = Vec::new();
        crate::tools::Feed::write_to(upload, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn the_archive_holds_files_with_their_modes_and_the_scripts() {
        let f = RenderedFile {
            path: "etc/etcd/peer-key.pem".into(),
            node: Some("etcd0".into()),
            mode: 0o600,
            contents: "secret".into(),
            phase: Some(Phase::Certs),
        };
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("etcd.tar.gz");
        std::fs::write(&release, b"the release").unwrap();
        let upload = archive(
            &[&f],
            &[("var/lib/kubelab/artifacts/etcd.tar.gz".into(), release)],
        )
        .unwrap();
        let bytes = bytes_of(&upload);
        let mut ar = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, u32, Vec<u8>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut contents = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut contents).unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    contents,
                )
            })
            .collect();
        assert!(entries.contains(&("etc/etcd/peer-key.pem".into(), 0o600, b"secret".to_vec())));
        assert!(
            entries
                .iter()
                .any(|(p, m, _)| p == "var/lib/kubelab/scripts/etcd.sh" && *m == 0o755)
        );
        assert!(entries.contains(&(
            "var/lib/kubelab/artifacts/etcd.tar.gz".into(),
            0o644,
            b"the release".to_vec()
        )));
    }

    #[test]
    fn a_release_missing_from_the_cache_fails_before_any_connection() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("kubelet");
        let err = archive(&[], &[("usr/local/bin/kubelet".into(), gone)])
            .err()
            .unwrap();
        assert!(err.to_string().contains("kubelet"), "{err}");
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn sh(script: &str, upload: Upload) -> crate::tools::Invocation {
        crate::tools::Invocation::new(std::path::Path::new("/bin/sh"), "sh", "take the upload")
            .arg("-c")
            .arg(script)
            .stdin(Arc::new(upload))
    }

    #[test]
    fn a_large_release_reaches_the_command_whole_through_the_pipe() {
        // 96 MiB and 3 bytes, sparse: nothing is written to disk, and the
        // stream is 96 times the size of a chunk.
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("kube-apiserver");
        std::fs::File::create(&big)
            .unwrap()
            .set_len((96 << 20) + 3)
            .unwrap();
        let upload = archive(&[], &[("usr/local/bin/kube-apiserver".into(), big)]).unwrap();
        let runner = crate::tools::Runner::new(false);
        let out = runtime()
            .block_on(runner.run(sh("tar -tvf - | grep kube-apiserver", upload)))
            .unwrap();
        assert!(
            out.stdout.contains(&((96u64 << 20) + 3).to_string()),
            "{}",
            out.stdout
        );
    }

    #[test]
    fn a_command_that_stops_reading_ends_the_upload_without_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("kubelet");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let upload = archive(&[], &[("usr/local/bin/kubelet".into(), big.clone())]).unwrap();
        let runner = crate::tools::Runner::new(false);
        let rt = runtime();
        let (status, _) = rt
            .block_on(runner.run_status(&sh("head -c 1000 >/dev/null; exit 3", upload)))
            .unwrap();
        assert_eq!(status.code(), Some(3));

        // A release that vanished from the cache after the plan: the local
        // cause is the error, and the node runs nothing, though tar takes
        // the stream cut before that file as a whole archive.
        let root = tempfile::tempdir().unwrap();
        let small = dir.path().join("kubectl");
        std::fs::write(&small, b"kubectl").unwrap();
        let upload = archive(
            &[],
            &[
                ("usr/local/bin/kubectl".into(), small),
                ("usr/local/bin/kubelet".into(), big.clone()),
            ],
        )
        .unwrap();
        std::fs::remove_file(&big).unwrap();
        let ran = root.path().join("ran");
        let line = format!(
            "{} && touch '{}'",
            upload.extract_line("", &root.path().display().to_string()),
            ran.display()
        );
        let err = rt
            .block_on(runner.run(sh(&line, upload)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reading what is sent to `sh` failed") && err.contains("kubelet"),
            "{err}"
        );
        assert!(
            root.path().join("usr/local/bin/kubectl").exists(),
            "the cut stream was extracted"
        );
        assert!(!ran.exists(), "the step ran after an incomplete upload");
        // The same command on a whole upload runs the step.
        let upload = archive(&[], &[]).unwrap();
        let line = format!(
            "{} && touch '{}'",
            upload.extract_line("", &root.path().display().to_string()),
            ran.display()
        );
        rt.block_on(runner.run(sh(&line, upload))).unwrap();
        assert!(ran.exists());
    }
}
