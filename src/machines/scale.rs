//! `kubelab lab scale workers=N`: a diff of two topologies, applied with the
//! machinery `lab up` already has. Up creates only the new VMs and runs the
//! engine, whose step hashes re-run exactly the steps the new workers change
//! (their own, every node's routes, dns0's zone, the workload). Down drains
//! and deletes the removed workers' Nodes, destroys their VMs, forgets their
//! state, certificates and host keys, then lets the same engine take their
//! routes, records and hosts entries away. lab.yaml follows by a targeted
//! text edit, so a later `lab up` has nothing to do.

use std::collections::BTreeSet;
use std::time::Instant;

use serde::Serialize;

use super::{Host, confirm};
use crate::config::{LabSource, Role};
use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::provision::{self, Selection};
use crate::state::{MachineStatus, State};
use crate::tools::ssh::Transport;
use crate::topology::{Phase, Topology};
use crate::yaml_edit;

mod layout;
use layout::{not_editable, only_the_count_changed};

/// `ROLE=N` as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub role: Role,
    pub count: u32,
}

/// clap's parser for `workers=3` (also `worker=3`).
pub fn parse_request(text: &str) -> std::result::Result<Request, String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!(
            "expected ROLE=COUNT, such as workers=3, not {text:?}"
        ));
    };
    let role = match key.trim() {
        "worker" | "workers" => Role::Worker,
        "controller" | "controllers" => Role::Controller,
        "etcd" => Role::Etcd,
        "lb" | "lbs" => Role::Lb,
        "dns" => Role::Dns,
        "registry" => Role::Registry,
        other => {
            return Err(format!(
                "no role named {other:?}; the roles: workers, controllers, etcd, lb, dns, registry"
            ));
        }
    };
    let count = value
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{value:?} is not a count; write e.g. workers=3"))?;
    Ok(Request { role, count })
}

/// Why a role other than workers is not scaled by kubelab (yet).
fn refusal(role: Role) -> Option<(&'static str, &'static str)> {
    Some(match role {
        Role::Worker => return None,
        Role::Etcd => (
            "kubelab does not scale etcd: a member must be added or removed with `etcdctl member add/remove` one at a time while quorum holds, and every apiserver's --etcd-servers changes with it",
            "for another etcd size, set nodes.etcd.count (odd) in lab.yaml and build the lab afresh: `kubelab lab destroy --yes && kubelab lab up`",
        ),
        Role::Controller => (
            "kubelab does not scale controllers: the apiserver certificate, haproxy's backends on every load balancer and the control plane's leader elections all change with them",
            "for another number of controllers, set nodes.controller.count in lab.yaml and build the lab afresh: `kubelab lab destroy --yes && kubelab lab up`",
        ),
        Role::Lb => (
            "kubelab does not scale the load balancers: keepalived's priorities and the VIP's owner are fixed when the pair is built",
            "set nodes.lb.count in lab.yaml and build the lab afresh: `kubelab lab destroy --yes && kubelab lab up`",
        ),
        Role::Dns | Role::Registry => (
            "a lab has at most one of this role; there is nothing to scale",
            "set its count (0 or 1) in lab.yaml and build the lab afresh",
        ),
    })
}

/// The scale-down or scale-up, decided before anything is touched.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub role: &'static str,
    pub from: u32,
    pub to: u32,
    /// New nodes with their address and pod range.
    pub add: Vec<PlannedNode>,
    /// Nodes to remove, highest index first.
    pub remove: Vec<PlannedNode>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedNode {
    pub name: String,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
}

/// Which workers come and go between `old` (with what `state` says exists)
/// and `new`. Pure.
pub fn diff(old: &Topology, state: &State, new: &Topology, from: u32, to: u32) -> Diff {
    let planned = |topo: &Topology, name: &str| {
        topo.node(name).map(|n| PlannedNode {
            name: n.name.clone(),
            address: n.address.to_string(),
            pod_cidr: n.pod_cidr.map(|c| c.to_string()),
        })
    };
    let add = new
        .by_role(Role::Worker)
        .filter(|n| {
            // In a lab that is up, also a worker whose VM was never made.
            old.node(&n.name).is_none()
                || (!state.nodes.is_empty()
                    && state
                        .nodes
                        .get(&n.name)
                        .is_none_or(|s| s.machine != MachineStatus::Created))
        })
        .filter_map(|n| planned(new, &n.name))
        .collect();
    // Workers of the old plan, and any worker VM a half-done scale-down left.
    let mut gone: BTreeSet<(u32, String)> = BTreeSet::new();
    for n in old.by_role(Role::Worker) {
        if new.node(&n.name).is_none() {
            gone.insert((n.index, n.name.clone()));
        }
    }
    for (name, s) in &state.nodes {
        if s.role == Role::Worker.to_string() && new.node(name).is_none() {
            let index = name
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap_or(u32::MAX);
            gone.insert((index, name.clone()));
        }
    }
    let remove = gone
        .into_iter()
        .rev()
        .map(|(_, name)| {
            planned(old, &name).unwrap_or_else(|| PlannedNode {
                address: state
                    .nodes
                    .get(&name)
                    .map(|s| s.address.clone())
                    .unwrap_or_default(),
                name,
                pod_cidr: None,
            })
        })
        .collect();
    Diff {
        role: "workers",
        from,
        to,
        add,
        remove,
    }
}

/// The Kubernetes side of a scale, which only runs where Kubernetes does.
#[derive(Debug, Clone, Serialize)]
pub struct KubeStep {
    pub what: String,
    /// `done`, `not run`.
    pub status: &'static str,
    pub detail: String,
}

pub struct ScaleOptions {
    pub dry_run: bool,
    pub yes: bool,
    pub json: bool,
    pub jobs: Option<usize>,
    pub no_hosts: bool,
    pub offline: bool,
    pub until: Option<Phase>,
}

impl Host<'_> {
    pub async fn scale(&self, request: &Request, options: &ScaleOptions) -> Result<()> {
        let started = Instant::now();
        if let Some((why, hint)) = refusal(request.role) {
            return Err(Error::usage(why, hint));
        }
        if request.count < 1 {
            return Err(Error::usage(
                "a lab keeps at least 1 worker (workers=0 was asked)",
                "`kubelab lab destroy` removes the whole lab",
            ));
        }
        let LoadedLab { lab, topo, dir } = self.loaded;
        let LabSource::File(path) = &lab.source else {
            return Err(Error::usage(
                "this lab is the built-in default: there is no lab.yaml to record the new size in",
                "run `kubelab init` (it writes the default lab, the one running now, to lab.yaml), then scale again",
            ));
        };
        let from = lab.role(Role::Worker).count;
        let text = fs_err::read_to_string(path)?;
        let (new_text, new_lab) = self.resized(request, path, &text)?;
        let new_topo = Topology::new(&new_lab);

        // A lab that was never brought up only has its lab.yaml edited: no
        // lock (it would create .kubelab/). Once `.kubelab/` exists, a
        // `lab up` may be booting the first VMs, before state.json names
        // any: the lock is taken then too, so lab.yaml never changes under it.
        let provisioned = !self.load_state()?.nodes.is_empty();
        let _lock = if provisioned || self.state_dir().exists() {
            Some(self.lock("kubelab lab scale")?)
        } else {
            None
        };
        let _editing = crate::state::LabFileLock::wait(path, Some(&text))?;
        let mut state = self.load_state()?;
        let plan = diff(topo, &state, &new_topo, from, request.count);

        if options.json && options.dry_run {
            return self.printer.json(&serde_json::json!({
                "schema_version": crate::printer::SCHEMA_VERSION,
                "lab": lab.name,
                "plan": plan,
            }));
        }
        let lines = describe(&plan, provisioned, &self.machines.scale_words(0));
        if options.dry_run {
            self.printer.data(lines.join("\n"));
            self.printer
                .info("--dry-run: nothing was changed; run it without --dry-run to apply");
            return Ok(());
        }
        for line in &lines {
            self.printer.info(line);
        }
        if plan.add.is_empty() && plan.remove.is_empty() && from == request.count {
            return Ok(());
        }
        if provisioned && !options.no_hosts {
            // Before a VM changes: the hosts file must take the new block.
            crate::hosts_file::preflight(&self.settings.hosts_file, &lab.name)?;
        }
        if !provisioned {
            crate::fsutil::write_keeping(path, new_text.as_bytes(), 0o644)?;
            self.printer.info(format!(
                "{}: nodes.worker.count {from} -> {}; the lab is not up, so `kubelab lab up` builds it at this size",
                path.display(),
                request.count
            ));
            return Ok(());
        }
        if !plan.remove.is_empty() && !options.yes {
            let names: Vec<&str> = plan.remove.iter().map(|n| n.name.as_str()).collect();
            let how = self.machines.scale_words(names.len()).how;
            confirm(&format!(
                "Remove {} from lab {} ({how})?",
                names.join(", "),
                lab.name
            ))?;
        }

        let phases = self.phases_to_reapply(topo, &state, options.until);
        let selection = Selection {
            only: phases.clone(),
            ..Selection::default()
        };
        let mut kube = Vec::new();
        if !plan.remove.is_empty() {
            kube.extend(self.drain(&plan, &state).await?);
            self.remove_workers(&plan, &mut state).await?;
        }
        // lab.yaml says the new size before the engine runs: if anything
        // fails from here, `kubelab lab up` finishes the job.
        crate::fsutil::write_keeping(path, new_text.as_bytes(), 0o644)?;
        self.printer.info(format!(
            "{}: nodes.worker.count {from} -> {}",
            path.display(),
            request.count
        ));
        let loaded = LoadedLab {
            lab: new_lab,
            topo: new_topo,
            dir: dir.clone(),
        };
        let host = self.over(&loaded);
        host.interruptible(
            // lab.yaml says the new size already: `lab up` finishes the job.
            "kubelab lab up",
            host.up_locked(&super::UpOptions {
                jobs: options.jobs,
                no_hosts: options.no_hosts,
                offline: options.offline,
                selection,
            }),
        )
        .await?;
        if !plan.add.is_empty() {
            kube.push(spread_step(&plan, &phases));
        }
        for step in &kube {
            self.printer.info(format!(
                "  kubernetes: {}: {} ({})",
                step.what, step.status, step.detail
            ));
        }
        self.printer.info(format!(
            "lab {} has {} worker{} now ({:.1} s)",
            loaded.lab.name,
            request.count,
            if request.count == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        ));
        if options.json {
            self.printer.json(&serde_json::json!({
                "schema_version": crate::printer::SCHEMA_VERSION,
                "lab": loaded.lab.name,
                "plan": plan,
                "kubernetes": kube,
                "seconds": started.elapsed().as_secs_f64(),
            }))?;
        }
        Ok(())
    }

    /// lab.yaml's text with `nodes.worker.count` set to the request, and the
    /// lab it describes, checked as `lab up` would check it.
    fn resized(
        &self,
        request: &Request,
        path: &std::path::Path,
        text: &str,
    ) -> Result<(String, crate::config::Lab)> {
        let new_text = yaml_edit::set_scalar(
            text,
            &["nodes", "worker", "count"],
            &request.count.to_string(),
        )
        .filter(|new_text| only_the_count_changed(text, new_text, request.count))
        .ok_or_else(|| not_editable(path, text, request.count))?;
        let source = self.loaded.lab.source.clone();
        let new_lab = crate::lab::parse(&new_text, source).map_err(|e| {
            let hint = e
                .hint()
                .or_else(|| self.machines.more_workers_hint().map(str::to_string));
            Error::usage(
                format!("workers={} does not fit this lab: {e}", request.count),
                hint.unwrap_or_else(|| "pick another count".into()),
            )
        })?;
        Ok((new_text, new_lab))
    }

    /// The phases the lab has been provisioned through (capped by
    /// `--until`), machines first: what the change re-applies, said.
    fn phases_to_reapply(
        &self,
        topo: &Topology,
        state: &crate::state::State,
        until: Option<Phase>,
    ) -> Vec<Phase> {
        let mut phases = provision::phases_done(topo, state);
        if let Some(until) = until {
            phases.retain(|p| *p <= until);
        }
        if !phases.contains(&Phase::Machines) {
            phases.insert(0, Phase::Machines);
        }
        let names: Vec<&str> = phases.iter().map(|p| p.name()).collect();
        self.printer.info(format!(
            "the lab is provisioned through these phases, which the change re-applies where it matters: {}",
            names.join(", ")
        ));

        phases
    }

    /// Cordons, drains and deletes each removed worker's Node from the first
    /// controller, where Kubernetes runs; says why not where it does not.
    async fn drain(&self, plan: &Diff, state: &State) -> Result<Vec<KubeStep>> {
        let topo = &self.loaded.topo;
        let first = topo
            .by_role(Role::Controller)
            .find(|n| n.index == 0)
            .map(|n| n.name.clone());
        let has = |node: &str, phase: Phase| {
            state
                .steps
                .get(node)
                .is_some_and(|s| s.contains_key(phase.name()))
        };
        let api = first
            .clone()
            .filter(|c| has(c, Phase::Controllers) && has(c, Phase::Addons));
        let mut steps = Vec::new();
        let mut to_drain = Vec::new();
        for node in &plan.remove {
            let what = format!("drain {0} and delete Node {0}", node.name);
            if api.is_none() {
                steps.push(KubeStep {
                    what,
                    status: "not run",
                    detail: "the controllers and addons phases have not run on this lab: there is no Kubernetes API to drain through".into(),
                });
            } else if !has(&node.name, Phase::Workers) {
                steps.push(KubeStep {
                    what,
                    status: "not run",
                    detail: format!(
                        "the workers phase never ran on {}: it is no Kubernetes node",
                        node.name
                    ),
                });
            } else {
                to_drain.push((what, node.name.clone()));
            }
        }
        let Some(controller) = api else {
            return Ok(steps);
        };
        if to_drain.is_empty() {
            return Ok(steps);
        }
        let transport = self
            .machines
            .transport(self, &[controller.as_str()])
            .await?;
        let log = self
            .state_dir()
            .join("logs")
            .join(&controller)
            .join("scale.log");
        let mut result = Ok(());
        for (what, node) in to_drain {
            self.printer
                .info(format!("  {node:<12} draining (from {controller})"));
            let command = drain_command(crate::render::ADMIN_KUBECTL, &node);
            match transport
                .run(&controller, &command, None, format!("drain {node}"), &log)
                .await
            {
                Ok(out) => steps.push(KubeStep {
                    what,
                    status: "done",
                    detail: if out.stdout.contains(NODE_GONE) {
                        format!("the Node was deleted already (seen through {controller})")
                    } else {
                        format!("through {controller}")
                    },
                }),
                Err(e) => {
                    result = Err(Error::other(
                        format!("could not drain {node}: {e}; nothing was removed"),
                        format!(
                            "see {}; fix what holds the drain (a PodDisruptionBudget, a stuck pod) and run the scale again",
                            log.display()
                        ),
                    ));
                    break;
                }
            }
        }
        transport.close().await;
        result.map(|()| steps)
    }

    /// Takes the removed workers' machines away through the provider (a
    /// VM is destroyed; a static server keeps running, kubelab uninstalled)
    /// and forgets them: state, facts, certificates and pinned host keys.
    async fn remove_workers(&self, plan: &Diff, state: &mut State) -> Result<()> {
        let names: Vec<&str> = plan.remove.iter().map(|n| n.name.as_str()).collect();
        self.machines.remove(self, &names, state).await?;
        let pki = self.state_dir().join("pki");
        let forget = Transport::new(
            &self.loaded.lab.name,
            &self.state_dir(),
            Default::default(),
            &self.runner,
        )?;
        for node in &plan.remove {
            state.nodes.remove(&node.name);
            state.steps.remove(&node.name);
            state.facts.remove(&node.name);
            state.save(&self.state_path())?;
            for file in [
                format!("{}.pem", node.name),
                format!("{}-key.pem", node.name),
            ] {
                let path = pki.join(file);
                if path.exists() {
                    fs_err::remove_file(path)?;
                }
            }
            forget.forget_host_key(&node.name).await?;
            self.printer.info(self.machines.removed(&node.name));
        }
        Ok(())
    }
}

/// What the drain prints when the Node is not there (a scale that stopped
/// after deleting it, then runs again).
const NODE_GONE: &str = "kubelab: the Node is gone already";

/// Cordon, drain and delete `node` with `kubectl`; a Node that does not
/// exist any more is done, any other failure to read it is an error (an
/// API that does not answer must not pass for a Node that is gone).
fn drain_command(kubectl: &str, node: &str) -> String {
    format!(
        "if ! out=$({kubectl} get node {node} -o name 2>&1); then \
           case \"$out\" in *NotFound*) echo '{NODE_GONE}'; exit 0;; esac; \
           echo \"$out\" >&2; exit 1; \
         fi; \
         {kubectl} drain {node} --ignore-daemonsets --delete-emptydir-data --timeout=180s \
         && {kubectl} delete node {node} --ignore-not-found"
    )
}

/// The plan in words, one line each.
fn describe(plan: &Diff, provisioned: bool, words: &super::provider::ScaleWords) -> Vec<String> {
    let mut lines = Vec::new();
    if plan.add.is_empty() && plan.remove.is_empty() {
        lines.push(format!(
            "the lab has {} worker{} already: nothing to do",
            plan.to,
            if plan.to == 1 { "" } else { "s" }
        ));
        return lines;
    }
    lines.push(format!("scale workers: {} -> {}", plan.from, plan.to));
    for n in &plan.add {
        lines.push(format!(
            "  + {:<10} {:<15} pod range {}",
            n.name,
            n.address,
            n.pod_cidr.as_deref().unwrap_or("-")
        ));
    }
    for n in &plan.remove {
        lines.push(format!("  - {:<10} {}", n.name, n.address));
    }
    if !provisioned {
        lines.push("  the lab is not up: only lab.yaml changes".into());
        return lines;
    }
    let (made, unmade) = (words.made, words.unmade);
    if !plan.add.is_empty() {
        lines.push(format!(
            "  new: {made}, certificates and provisioning; on every other node only their routes, on dns0 their records (zone serial changes, bind9 reloads), their hosts entries; nothing already running restarts"
        ));
    }
    if !plan.remove.is_empty() {
        lines.push(format!(
            "  removed: drained and their Nodes deleted (where Kubernetes runs), {unmade}, then their routes, DNS records, hosts entries and certificates go"
        ));
    }
    lines
}

/// How the nginx workload was spread onto the new workers: done when the
/// workload phase ran with them, else not run and why.
fn spread_step(plan: &Diff, phases: &[Phase]) -> KubeStep {
    let names: Vec<&str> = plan.add.iter().map(|n| n.name.as_str()).collect();
    if phases.contains(&Phase::Workload) {
        KubeStep {
            what: format!("spread the nginx workload onto {}", names.join(", ")),
            status: "done",
            detail: "the workload phase rolled nginx over every worker and waited for the spread"
                .into(),
        }
    } else {
        KubeStep {
            what: format!("spread the nginx workload onto {}", names.join(", ")),
            status: "not run",
            detail: "the workload phase has not run on this lab".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machines::Machines;
    use crate::state::NodeState;

    fn topo(workers: u32) -> Topology {
        let lab = crate::lab::parse(
            &format!("nodes:\n  worker:\n    count: {workers}\n"),
            LabSource::BuiltIn,
        )
        .unwrap();
        Topology::new(&lab)
    }

    fn running(topo: &Topology) -> State {
        let mut state = State::new("kubelab");
        for n in &topo.nodes {
            state.nodes.insert(
                n.name.clone(),
                NodeState {
                    role: n.role.to_string(),
                    address: n.address.to_string(),
                    machine: MachineStatus::Created,
                    vm_id: Some(format!("id-{}", n.name)),
                    error: None,
                },
            );
        }
        state
    }

    /// Runs the drain command against a `kubectl` that answers `get` as
    /// `get` says and records every call.
    fn drain_with(get: &str) -> (std::process::Output, String) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let kubectl = dir.path().join("kubectl");
        std::fs::write(
            &kubectl,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nif [ \"$1\" = get ]; then {get}; fi\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(drain_command(&kubectl.display().to_string(), "worker1"))
            .output()
            .unwrap();
        (out, std::fs::read_to_string(calls).unwrap_or_default())
    }

    #[test]
    fn a_drain_of_a_node_already_deleted_is_done_but_an_api_that_fails_is_not() {
        let (out, calls) = drain_with("echo node/worker1");
        assert!(out.status.success());
        assert!(
            calls.contains("drain worker1") && calls.contains("delete node worker1"),
            "{calls}"
        );

        let (out, calls) = drain_with(
            "echo 'Error from server (NotFound): nodes \"worker1\" not found' >&2; exit 1",
        );
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(NODE_GONE));
        assert!(!calls.contains("drain"), "{calls}");

        let (out, calls) = drain_with(
            "echo 'The connection to the server 192.168.56.50:6443 was refused' >&2; exit 1",
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("was refused"));
        assert!(!calls.contains("drain"), "{calls}");
    }

    #[test]
    fn parses_role_counts_and_explains_bad_ones() {
        assert_eq!(
            parse_request("workers=3").unwrap(),
            Request {
                role: Role::Worker,
                count: 3
            }
        );
        assert_eq!(parse_request("worker=1").unwrap().count, 1);
        assert_eq!(parse_request("etcd=5").unwrap().role, Role::Etcd);
        assert!(parse_request("workers").unwrap_err().contains("ROLE=COUNT"));
        assert!(parse_request("wrokers=2").unwrap_err().contains("no role"));
        assert!(
            parse_request("workers=-1")
                .unwrap_err()
                .contains("not a count")
        );
    }

    #[test]
    fn scaling_up_adds_only_the_new_workers_with_their_ranges() {
        let (old, new) = (topo(1), topo(3));
        let plan = diff(&old, &running(&old), &new, 1, 3);
        let added: Vec<(&str, &str, Option<&str>)> = plan
            .add
            .iter()
            .map(|n| (n.name.as_str(), n.address.as_str(), n.pod_cidr.as_deref()))
            .collect();
        assert_eq!(
            added,
            [
                ("worker1", "192.168.56.31", Some("10.200.1.0/24")),
                ("worker2", "192.168.56.32", Some("10.200.2.0/24"))
            ]
        );
        assert!(plan.remove.is_empty());
    }

    #[test]
    fn scaling_down_removes_the_highest_first_and_finds_leftovers_of_a_broken_run() {
        let (old, new) = (topo(3), topo(1));
        let plan = diff(&old, &running(&old), &new, 3, 1);
        let removed: Vec<&str> = plan.remove.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(removed, ["worker2", "worker1"]);
        assert!(plan.add.is_empty());

        // lab.yaml already says 1 (a run stopped after the edit), but state
        // still holds worker2's VM: it is still removed.
        let mut state = running(&old);
        state.nodes.remove("worker1");
        let plan = diff(&new, &state, &new, 1, 1);
        let removed: Vec<&str> = plan.remove.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(removed, ["worker2"]);
        assert_eq!(plan.remove[0].address, "192.168.56.32");
    }

    #[test]
    fn the_same_count_is_nothing_to_do() {
        let t = topo(2);
        let plan = diff(&t, &running(&t), &t, 2, 2);
        assert!(plan.add.is_empty() && plan.remove.is_empty());
        let vms = super::super::virtualbox::VirtualBox.scale_words(1);
        assert!(describe(&plan, true, &vms)[0].contains("nothing to do"));
    }

    #[test]
    fn a_static_lab_is_told_its_servers_stay_up() {
        let (old, new) = (topo(2), topo(1));
        let down = diff(&old, &running(&old), &new, 2, 1);
        let up = diff(&new, &running(&new), &old, 1, 2);
        let vms = super::super::virtualbox::VirtualBox.scale_words(1);
        let hosts = super::super::static_hosts::StaticHosts.scale_words(1);
        let vm = [describe(&down, true, &vms), describe(&up, true, &vms)].concat();
        let servers = [describe(&down, true, &hosts), describe(&up, true, &hosts)].concat();
        assert!(vm.iter().any(|l| l.contains("VMs destroyed")), "{vm:?}");
        assert!(vm.iter().any(|l| l.contains("new: their VMs")), "{vm:?}");
        assert!(
            !servers.iter().any(|l| l.contains("VM")),
            "a static lab has no VMs: {servers:?}"
        );
        assert!(
            servers
                .iter()
                .any(|l| l.contains("the servers keep running")),
            "{servers:?}"
        );
    }

    #[test]
    fn every_listed_host_includes_the_workers_past_the_count() {
        let dir = crate::config::tests::key_dir();
        let yaml = crate::config::tests::static_lab_yaml("nodes:\n  worker:\n    count: 1\n", 2);
        let lab = crate::config::tests::parse_in(&dir, &yaml).unwrap();
        let names = |t: &Topology| -> Vec<String> {
            t.by_role(Role::Worker).map(|n| n.name.clone()).collect()
        };
        assert_eq!(names(&Topology::new(&lab)), ["worker0"]);
        let all = Topology::every_listed_host(&lab);
        assert_eq!(names(&all), ["worker0", "worker1"]);
        assert_eq!(
            all.node("worker1").unwrap().pod_cidr.unwrap().to_string(),
            "10.200.1.0/24"
        );
        // A VirtualBox lab: the plan itself.
        let builtin = crate::lab::builtin();
        assert_eq!(
            Topology::every_listed_host(&builtin),
            Topology::new(&builtin)
        );
    }

    #[test]
    fn a_worker_whose_vm_failed_is_added_again() {
        let (old, new) = (topo(2), topo(2));
        let mut state = running(&old);
        state.nodes.get_mut("worker1").unwrap().machine = MachineStatus::Failed;
        let plan = diff(&old, &state, &new, 2, 2);
        assert_eq!(plan.add.len(), 1);
        assert_eq!(plan.add[0].name, "worker1");
    }

    #[test]
    fn phases_done_are_those_every_existing_taker_finished() {
        let t = topo(2);
        let mut state = running(&t);
        let record = crate::state::StepRecord {
            input_hash: String::new(),
            vm_id: None,
            files: Default::default(),
            finished_unix: 0,
        };
        for n in &t.nodes {
            state
                .steps
                .entry(n.name.clone())
                .or_default()
                .insert("resolv".into(), record.clone());
            if n.role == Role::Etcd {
                state
                    .steps
                    .entry(n.name.clone())
                    .or_default()
                    .insert("etcd".into(), record.clone());
            }
        }
        // dns0 did not do dns: not a done phase.
        let done = provision::phases_done(&t, &state);
        assert_eq!(done, [Phase::Machines, Phase::Resolv, Phase::Etcd]);
        // A worker that is not in state yet (being added) does not count.
        let bigger = topo(3);
        assert_eq!(
            provision::phases_done(&bigger, &state),
            [Phase::Machines, Phase::Resolv, Phase::Etcd]
        );
    }

    #[test]
    fn etcd_and_controllers_are_refused_with_a_reason() {
        for role in [Role::Etcd, Role::Controller, Role::Lb] {
            let (why, hint) = refusal(role).unwrap();
            assert!(why.starts_with("kubelab does not scale"), "{why}");
            assert!(hint.contains("lab.yaml"), "{hint}");
        }
        assert!(refusal(Role::Worker).is_none());
    }
}
