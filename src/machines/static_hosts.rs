//! `provider: static`: the lab's servers exist already. `lab up` checks that
//! every one is reachable over SSH with passwordless sudo before anything is
//! provisioned anywhere, then the same engine provisions them; nothing here
//! ever powers a server off.

use std::collections::BTreeMap;
use std::path::Path;

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
use crate::tools::ssh::{SshTarget, Transport};
use crate::topology::{Node, Topology};
use crate::verify::{Reach, Reached};

/// What `lab up` runs on each host before anything else: sudo without a
/// password, then the host's identity (a reinstalled server has a new
/// machine-id, so it is provisioned again, like a recreated VM).
const PREFLIGHT: &str = "if sudo -n true 2>/dev/null; then cat /etc/machine-id; else echo 'kubelab: sudo needs a password' >&2; exit 3; fi";

pub struct StaticHosts;

/// The transport to a static lab's hosts, from lab.yaml.
fn transport(host: &Host<'_>) -> Result<Transport> {
    Transport::new(
        &host.loaded.lab.name,
        &host.state_dir(),
        crate::lab::static_targets(&host.loaded.lab),
        &host.runner,
    )
}

#[async_trait(?Send)]
impl Reach for StaticHosts {
    /// A static lab has no Vagrantfile; `lab up` records its hosts in the state.
    fn made_by(&self) -> &'static str {
        "state.json"
    }

    /// Existing servers: no VMs to ask about, SSH settings from lab.yaml.
    async fn reach(&self, loaded: &LoadedLab, _: &Printer, runner: &Runner) -> Result<Reached> {
        let targets = crate::lab::static_targets(&loaded.lab);
        Ok(Reached {
            machines: None,
            transport: Some(Transport::new(
                &loaded.lab.name,
                &loaded.state_dir(),
                targets,
                runner,
            )?),
        })
    }
}

#[async_trait(?Send)]
impl Machines for StaticHosts {
    fn sizes_machines(&self) -> bool {
        false
    }

    fn plan_line(&self, lab: &Lab) -> String {
        format!("your own servers, network {}", lab.network.cidr)
    }

    fn machines_phase(&self) -> &'static str {
        "check SSH and passwordless sudo on every host, write the hypervisor's hosts block"
    }

    fn reach_every_run(&self) -> bool {
        true
    }

    fn access(&self, loaded: &LoadedLab) -> BTreeMap<String, SshAccess> {
        crate::inventory::static_access(&loaded.lab, &loaded.state_dir())
    }

    /// lab.yaml names the keys: their absence is the user's to see.
    fn missing_keys(&self, _: &[&str]) -> Option<String> {
        None
    }

    fn clash_fields(&self) -> &'static str {
        "name and network.cidr"
    }

    fn doctor(&self) -> DoctorScope {
        DoctorScope::Servers
    }

    /// `lab halt` and `lab snapshot` have no meaning for servers kubelab
    /// did not make.
    fn refusal(&self, lab: &Lab, command: &str) -> Error {
        if command == "up --snapshot" {
            return Error::usage(
                "--snapshot is for VirtualBox labs: a static lab's servers are never snapshotted by kubelab",
                "drop --snapshot; use your servers' own tools for snapshots",
            );
        }
        Error::usage(
            format!(
                "`kubelab lab {command}` is for VirtualBox labs; lab {} is provider: static, your own servers, which kubelab never powers off or snapshots",
                lab.name
            ),
            "use your servers' own tools for that; `kubelab lab destroy` removes what kubelab installed on them",
        )
    }

    /// Checks every host at once; records each one's identity in the state
    /// only when all of them pass.
    async fn create(&self, host: &Host<'_>, record: &Record, _: Option<usize>) -> Result<Created> {
        let topo = &host.loaded.topo;
        host.printer.info(format!(
            "checking SSH and passwordless sudo on {} hosts",
            topo.nodes.len()
        ));
        let transport = transport(host)?;
        let results = preflight(&transport, &topo.nodes, &host.state_dir().join("logs")).await;
        let mut ids = BTreeMap::new();
        let mut failures = Vec::new();
        for (node, result) in results {
            match result {
                Ok(id) => {
                    ids.insert(node.name.clone(), format!("static:{id}"));
                }
                Err(not_ready) => failures.push(not_ready.into_error()),
            }
        }
        if !failures.is_empty() {
            if host.runner.children.interrupted() {
                return Err(Error::Interrupted { hint: None });
            }
            let n = failures.len();
            return Err(Error::Several {
                summary: format!(
                    "{n} of {} host{} failed the check; nothing was provisioned on any host:",
                    topo.nodes.len(),
                    if topo.nodes.len() == 1 { "" } else { "s" }
                ),
                failures,
                hint: Some(
                    "fix each host as its line says, then run `kubelab lab up` again".into(),
                ),
            });
        }
        for node in &topo.nodes {
            let id = ids.remove(&node.name);
            let changed = record
                .get(&node.name)
                .is_some_and(|s| s.vm_id.is_some() && s.vm_id != id);
            if changed {
                // A reinstalled server: its old host key is no longer its.
                transport.forget_host_key(&node.name).await?;
            }
            record.node(node, MachineStatus::Created, id, None)?;
        }
        host.printer.info(format!(
            "all {} hosts answer over SSH and have passwordless sudo",
            topo.nodes.len()
        ));
        Ok(Created {
            rebooted: false,
            complete: true,
        })
    }

    /// Servers are not kubelab's to run: whether `lab up` reached them.
    async fn status(&self, _: &Host<'_>, state: &State) -> Result<BTreeMap<String, String>> {
        Ok(state
            .nodes
            .iter()
            .map(|(n, s)| (n.clone(), format!("{:?}", s.machine).to_lowercase()))
            .collect())
    }

    fn not_in_lab(&self, name: &str, workers: u32) -> String {
        format!(
            "{name} has kubelab installed but is not in the lab (past nodes.worker.count); `kubelab lab scale workers={workers}` uninstalls it, as does `kubelab lab destroy`"
        )
    }

    async fn transport(&self, host: &Host<'_>, _: &[&str]) -> Result<Transport> {
        transport(host)
    }

    /// `lab ssh` on a static host: lab.yaml's settings, the pinned host key.
    async fn ssh(&self, host: &Host<'_>, node: &str, command: &[String]) -> Result<i32> {
        let targets = crate::lab::static_targets(&host.loaded.lab);
        let Some(target) = targets.get(node) else {
            return Err(Error::usage(
                format!("no host named {node:?} in this lab"),
                "see `kubelab lab plan`",
            ));
        };
        crate::tools::ssh::Ssh::find()?.interactive_target(
            target,
            &host.state_dir().join("known_hosts"),
            &format!("kubelab-{}-{node}", host.loaded.lab.name),
            command,
        )
    }

    /// A static lab's removed workers: what kubelab installed on them goes,
    /// as `lab destroy` removes it, on all of them at once. A failure stops
    /// before the state forgets them, so the next scale tries again.
    async fn remove(&self, host: &Host<'_>, removed: &[&str], state: &State) -> Result<()> {
        let listed = Topology::every_listed_host(&host.loaded.lab);
        let mut nodes = Vec::new();
        // A worker kubelab never reached (its check failed on the way up)
        // has nothing to uninstall: it is only forgotten.
        let touched = |name: &str| state.nodes.contains_key(name) || state.steps.contains_key(name);
        for removed in removed.iter().filter(|n| touched(n)) {
            let Some(node) = listed.node(removed) else {
                return Err(Error::usage(
                    format!(
                        "{removed} was provisioned by kubelab but is no longer listed under hosts: in lab.yaml, so kubelab cannot reach it to uninstall"
                    ),
                    "list it again under hosts: (past nodes.worker.count it stays out of the lab) and run the scale again",
                ));
            };
            nodes.push(node);
        }
        if nodes.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        host.printer.info(format!(
            "  uninstalling kubelab from {} (the server{} keep{} running)",
            names.join(", "),
            if names.len() == 1 { "" } else { "s" },
            if names.len() == 1 { "s" } else { "" }
        ));
        uninstall(
            host,
            &nodes,
            state,
            "run `kubelab lab scale` again; the state keeps those workers until they are clean",
        )
        .await
    }

    fn removed(&self, name: &str) -> String {
        format!(
            "  {name:<12} removed (kubelab uninstalled; state, certificate, host key forgotten); the server keeps running"
        )
    }

    fn scale_words(&self, _: usize) -> ScaleWords {
        ScaleWords {
            made: "the SSH and sudo check",
            unmade: "kubelab's services, files and routes uninstalled (the servers keep running and stay listed in lab.yaml)",
            how: "drain, then uninstall what kubelab installed; the servers keep running",
        }
    }

    fn more_workers_hint(&self) -> Option<&'static str> {
        Some(
            "a static lab's workers are the hosts listed under hosts: with `role: worker`; list another one to scale past them",
        )
    }

    /// Names every host, after a warning for any host kubelab provisioned
    /// that lab.yaml no longer lists.
    fn destroy_question(&self, host: &Host<'_>) -> Result<String> {
        let LoadedLab { lab, .. } = host.loaded;
        let in_state = host.load_state()?;
        let listed = Topology::every_listed_host(lab);
        let unlisted: Vec<String> = in_state
            .nodes
            .iter()
            .filter(|(name, _)| listed.node(name).is_none())
            .map(|(name, s)| format!("{name} ({})", s.address))
            .collect();
        if !unlisted.is_empty() {
            host.printer.warn(format!(
                "kubelab provisioned {} but lab.yaml no longer lists {}; what kubelab installed there stays (list {} again under hosts: before `lab destroy` to remove that too)",
                unlisted.join(", "),
                if unlisted.len() == 1 { "it" } else { "them" },
                if unlisted.len() == 1 { "it" } else { "them" }
            ));
        }
        let hosts: Vec<String> = hosts(host, &in_state)
            .iter()
            .map(|n| format!("{} ({})", n.name, n.address))
            .collect();
        Ok(format!(
            "Remove everything kubelab installed for lab {} (services, configuration, data, routes) from {}, its block in {} and {}? The servers stay up.",
            lab.name,
            hosts.join(", "),
            host.settings.hosts_file.display(),
            host.state_dir().display()
        ))
    }

    /// Each role's `uninstall` and the removal of every file kubelab placed,
    /// on every host it provisioned at once. Nothing is powered off. A host
    /// that fails keeps the state, so the next `lab destroy` tries again.
    async fn destroy(&self, host: &Host<'_>, _: &str, made: Result<Made<'_>>) -> Result<String> {
        let Made { nodes, state } = made?;
        if nodes.is_empty() {
            host.printer
                .info("kubelab never provisioned these hosts: nothing to uninstall");
        } else {
            host.printer.info(format!(
                "uninstalling from {}",
                nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            uninstall(
                host,
                &nodes,
                &state,
                "run `kubelab lab destroy` again; the state is kept until every host is clean",
            )
            .await?;
        }
        Ok(format!(
            "lab {} removed from its {} hosts; they keep running",
            host.loaded.lab.name,
            hosts(host, &state).len()
        ))
    }
}

/// The lab's hosts, and any listed worker past nodes.worker.count that
/// kubelab provisioned (a scale-down that stopped half-way).
fn hosts(host: &Host<'_>, state: &State) -> Vec<Node> {
    let LoadedLab { lab, topo, .. } = host.loaded;
    Topology::every_listed_host(lab)
        .nodes
        .into_iter()
        .filter(|n| {
            topo.node(&n.name).is_some()
                || state.nodes.contains_key(&n.name)
                || state.steps.contains_key(&n.name)
        })
        .collect()
}

/// Each role's `uninstall` and the removal of every file kubelab placed,
/// on `nodes` at once (`lab destroy`, and `lab scale` removing workers).
/// Any failure is an error listing every host that failed; `again` says
/// how to retry.
async fn uninstall(host: &Host<'_>, nodes: &[&Node], state: &State, again: &str) -> Result<()> {
    let lab = &host.loaded.lab;
    // A host list edited since `lab up` could point a name at another
    // server: uninstall only where kubelab installed.
    let moved: Vec<String> = nodes
        .iter()
        .filter_map(|n| {
            let recorded = &state.nodes.get(&n.name)?.address;
            (*recorded != n.address.to_string()).then(|| {
                format!(
                    "{} is {} in lab.yaml, but kubelab provisioned it at {recorded}",
                    n.name, n.address
                )
            })
        })
        .collect();
    if !moved.is_empty() {
        return Err(Error::usage(
            format!("{}; nothing was uninstalled", moved.join("; ")),
            "put the address kubelab provisioned back under hosts: for the uninstall, then change it",
        ));
    }
    let transport = transport(host)?;
    let logs = host.state_dir().join("logs");
    let runs = nodes.iter().map(|n| {
        let transport = &transport;
        let log = logs.join(&n.name).join("uninstall.log");
        async move {
            let (command, tar) = crate::provision::uninstall(lab, n, state)?;
            transport
                .run(
                    &n.name,
                    &command,
                    Some(std::sync::Arc::new(tar)),
                    format!("uninstall kubelab from {}", n.name),
                    &log,
                )
                .await
        }
    });
    let results = futures_util::future::join_all(runs).await;
    transport.close().await;
    let failures: Vec<Error> = results.into_iter().filter_map(Result::err).collect();
    if failures.is_empty() {
        return Ok(());
    }
    Err(Error::Several {
        summary: "kubelab could not uninstall everywhere:".into(),
        failures,
        hint: Some(format!("fix what the log says and {again}")),
    })
}

/// Why a host failed the preflight.
pub(crate) enum NotReady {
    /// The host refused: what failed, as `node (user@address port N): what`,
    /// and the fix.
    Host { message: String, fix: String },
    /// kubelab could not run the check at all (ssh would not start, a log
    /// could not be written, an interrupt).
    Check(Error),
}

impl NotReady {
    /// The line that names the host and what failed.
    pub(crate) fn message(&self) -> String {
        match self {
            NotReady::Host { message, .. } => message.clone(),
            NotReady::Check(e) => e.to_string(),
        }
    }

    /// What to do about it.
    pub(crate) fn fix(&self) -> Option<String> {
        match self {
            NotReady::Host { fix, .. } => Some(fix.clone()),
            NotReady::Check(e) => e.hint(),
        }
    }

    /// One entry of `lab up`'s list of failed hosts: the message and its
    /// fix on one line each.
    fn into_error(self) -> Error {
        match self {
            NotReady::Host { message, fix } => {
                Error::other(format!("{message}\n  hint: {fix}"), "")
            }
            NotReady::Check(e) => e,
        }
    }
}

/// The preflight of a static lab, as `lab up` runs it before anything else
/// and `kubelab doctor` runs it on its own: every host at once, SSH with
/// lab.yaml's settings and passwordless sudo. Each node gets its identity
/// (`/etc/machine-id`, or its address when that is empty) or why it is not
/// ready. Logs go under `logs/<node>/preflight.log`; the master connections
/// are closed before it returns.
pub(crate) async fn preflight<'n>(
    transport: &Transport,
    nodes: &'n [Node],
    logs: &Path,
) -> Vec<(&'n Node, Result<String, NotReady>)> {
    let checks = nodes.iter().map(|n| {
        let log = logs.join(&n.name).join("preflight.log");
        async move {
            let result = transport
                .run_status(
                    &n.name,
                    PREFLIGHT,
                    format!("check SSH and sudo on {}", n.name),
                    &log,
                )
                .await;
            let result = match result {
                Ok((status, out)) if status.success() => {
                    let id = out.stdout.trim();
                    Ok(if id.is_empty() {
                        n.address.to_string()
                    } else {
                        id.to_string()
                    })
                }
                Ok((status, out)) => Err(preflight_failure(
                    &n.name,
                    transport.target(&n.name),
                    status.code(),
                    &out.stderr,
                )),
                Err(e) => Err(NotReady::Check(e)),
            };
            (n, result)
        }
    });
    let results = futures_util::future::join_all(checks).await;
    transport.close().await;
    results
}

/// One host's failed check: the host, what failed and its fix.
fn preflight_failure(
    node: &str,
    target: Option<&SshTarget>,
    code: Option<i32>,
    stderr: &str,
) -> NotReady {
    let at = target.map(SshTarget::describe).unwrap_or_default();
    let user = target
        .and_then(|t| t.user.clone())
        .unwrap_or_else(|| "the login user".into());
    let said = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string();
    let by_hand = target
        .map(|t| {
            let port = t.port.map(|p| format!("-p {p} ")).unwrap_or_default();
            let key = t
                .identity_files
                .first()
                .map(|k| format!("-i {} ", k.display()))
                .unwrap_or_default();
            let user = t
                .user
                .as_deref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default();
            format!("ssh {key}{port}{user}{} true", t.hostname)
        })
        .unwrap_or_default();
    let (what, fix) = match code {
        Some(3) => (
            format!("{user} has no passwordless sudo ({said})"),
            format!(
                "on {node}, as root: echo '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/kubelab && chmod 440 /etc/sudoers.d/kubelab"
            ),
        ),
        Some(255) => (
            format!("SSH failed: {said}"),
            format!(
                "check that sshd runs on {node} at the address and port lab.yaml gives, and accepts the key of its ssh_key for {user} (the public half in ~{user}/.ssh/authorized_keys); `{by_hand}` must work"
            ),
        ),
        other => (
            format!(
                "the check exited {}: {said}",
                other.map_or("on a signal".to_string(), |c| c.to_string())
            ),
            format!("run `sudo -n true` on {node} as {user} to see what fails"),
        ),
    };
    NotReady::Host {
        message: format!("{node} ({at}): {what}"),
        fix,
    }
}
