//! `provider: static`: the lab's servers exist already. `lab up` checks that
//! every one is reachable over SSH with passwordless sudo before anything is
//! provisioned anywhere, then the same engine provisions them; nothing here
//! ever powers a server off.

use std::collections::BTreeMap;
use std::path::Path;

use super::Host;
use crate::config::Provider;
use crate::error::{Error, Result};
use crate::state::{MachineStatus, NodeState};
use crate::tools::ssh::{SshTarget, Transport};
use crate::topology::Node;

/// What `lab up` runs on each host before anything else: sudo without a
/// password, then the host's identity (a reinstalled server has a new
/// machine-id, so it is provisioned again, like a recreated VM).
const PREFLIGHT: &str = "if sudo -n true 2>/dev/null; then cat /etc/machine-id; else echo 'kubelab: sudo needs a password' >&2; exit 3; fi";

impl Host<'_> {
    pub(super) fn is_static(&self) -> bool {
        self.loaded.lab.provider == Provider::Static
    }

    /// `lab halt` and `lab snapshot` have no meaning for servers kubelab did
    /// not make.
    pub(super) fn refuse_on_static(&self, command: &str) -> Result<()> {
        if !self.is_static() {
            return Ok(());
        }
        Err(Error::usage(
            format!(
                "`kubelab lab {command}` is for VirtualBox labs; lab {} is provider: static, your own servers, which kubelab never powers off or snapshots",
                self.loaded.lab.name
            ),
            "use your servers' own tools for that; `kubelab lab destroy` removes what kubelab installed on them",
        ))
    }

    /// The transport to a static lab's hosts, from lab.yaml.
    pub(super) fn static_transport(&self) -> Result<Transport> {
        Transport::new(
            &self.loaded.lab.name,
            &self.state_dir(),
            crate::lab::static_targets(&self.loaded.lab),
            &self.runner,
        )
    }

    /// Checks every host at once; records each one's identity in the state
    /// and writes the hosts block only when all of them pass.
    pub(super) async fn up_static(&self, no_hosts: bool) -> Result<()> {
        let LoadedLab { lab, topo, .. } = self.loaded;
        fs_err::create_dir_all(self.state_dir())?;
        self.printer.info(format!(
            "checking SSH and passwordless sudo on {} hosts",
            topo.nodes.len()
        ));
        let transport = self.static_transport()?;
        let results = preflight(&transport, &topo.nodes, &self.state_dir().join("logs")).await;
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
            if self.runner.children.interrupted() {
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
        let mut state = self.load_state()?;
        state.lab = lab.name.clone();
        for node in &topo.nodes {
            let id = ids.remove(&node.name);
            let changed = state
                .nodes
                .get(&node.name)
                .is_some_and(|s| s.vm_id.is_some() && s.vm_id != id);
            if changed {
                // A reinstalled server: its old host key is no longer its.
                transport.forget_host_key(&node.name).await?;
            }
            state.nodes.insert(
                node.name.clone(),
                NodeState {
                    role: node.role.to_string(),
                    address: node.address.to_string(),
                    machine: MachineStatus::Created,
                    vm_id: id,
                    error: None,
                },
            );
        }
        state.save(&self.state_path())?;
        self.printer.info(format!(
            "all {} hosts answer over SSH and have passwordless sudo",
            topo.nodes.len()
        ));
        self.write_lab_hosts_block(no_hosts).await
    }
}

use crate::lab::LoadedLab;

impl Host<'_> {
    /// `lab destroy` on a static lab: after a confirmation naming every
    /// host, each role's `uninstall` and the removal of every file kubelab
    /// placed, on all hosts at once; then the hosts block and the state.
    /// Nothing is powered off. A host that fails keeps the state, so the
    /// next `lab destroy` tries again.
    pub(super) async fn destroy_static(&self, yes: bool) -> Result<()> {
        let LoadedLab { lab, topo, .. } = self.loaded;
        let state_dir = self.state_dir();
        // The lab's hosts, and any listed worker past nodes.worker.count that
        // kubelab provisioned (a scale-down that stopped half-way).
        let listed = crate::topology::Topology::every_listed_host(lab);
        let in_state = self.load_state()?;
        let hosts: Vec<&crate::topology::Node> = listed
            .nodes
            .iter()
            .filter(|n| {
                topo.node(&n.name).is_some()
                    || in_state.nodes.contains_key(&n.name)
                    || in_state.steps.contains_key(&n.name)
            })
            .collect();
        let unlisted: Vec<String> = in_state
            .nodes
            .iter()
            .filter(|(name, _)| listed.node(name).is_none())
            .map(|(name, s)| format!("{name} ({})", s.address))
            .collect();
        if !unlisted.is_empty() {
            self.printer.warn(format!(
                "kubelab provisioned {} but lab.yaml no longer lists {}; what kubelab installed there stays (list {} again under hosts: before `lab destroy` to remove that too)",
                unlisted.join(", "),
                if unlisted.len() == 1 { "it" } else { "them" },
                if unlisted.len() == 1 { "it" } else { "them" }
            ));
        }
        if !yes {
            let hosts: Vec<String> = hosts
                .iter()
                .map(|n| format!("{} ({})", n.name, n.address))
                .collect();
            super::confirm(&format!(
                "Remove everything kubelab installed for lab {} (services, configuration, data, routes) from {}, its block in {} and {}? The servers stay up.",
                lab.name,
                hosts.join(", "),
                self.settings.hosts_file.display(),
                state_dir.display()
            ))?;
        }
        let lock = self.lock("kubelab lab destroy")?;
        let state = self.load_state()?;
        let touched: Vec<&crate::topology::Node> = hosts
            .iter()
            .copied()
            .filter(|n| state.nodes.contains_key(&n.name) || state.steps.contains_key(&n.name))
            .collect();
        if touched.is_empty() {
            self.printer
                .info("kubelab never provisioned these hosts: nothing to uninstall");
        } else {
            self.printer.info(format!(
                "uninstalling from {}",
                touched
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            self.uninstall(
                &touched,
                &state,
                "run `kubelab lab destroy` again; the state is kept until every host is clean",
            )
            .await?;
        }
        crate::machines::shared::Recorded::of(self.loaded, self.printer)?
            .forget_shared(self.settings, &self.runner, self.printer)
            .await?;
        drop(lock);
        if state_dir.exists() {
            fs_err::remove_dir_all(&state_dir)?;
        }
        self.printer.info(format!(
            "lab {} removed from its {} hosts; they keep running",
            lab.name,
            hosts.len()
        ));
        Ok(())
    }
}

impl Host<'_> {
    /// Each role's `uninstall` and the removal of every file kubelab placed,
    /// on `nodes` at once (`lab destroy`, and `lab scale` removing workers).
    /// Any failure is an error listing every host that failed; `again` says
    /// how to retry.
    pub(super) async fn uninstall(
        &self,
        nodes: &[&crate::topology::Node],
        state: &crate::state::State,
        again: &str,
    ) -> Result<()> {
        let lab = &self.loaded.lab;
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
        let transport = self.static_transport()?;
        let logs = self.state_dir().join("logs");
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
}

impl Host<'_> {
    /// `lab ssh` on a static host: lab.yaml's settings, the pinned host key.
    pub(super) fn ssh_static(&self, node: &str, command: &[String]) -> Result<i32> {
        let targets = crate::lab::static_targets(&self.loaded.lab);
        let Some(target) = targets.get(node) else {
            return Err(Error::usage(
                format!("no host named {node:?} in this lab"),
                "see `kubelab lab plan`",
            ));
        };
        crate::tools::ssh::Ssh::find()?.interactive_target(
            target,
            &self.state_dir().join("known_hosts"),
            &format!("kubelab-{}-{node}", self.loaded.lab.name),
            command,
        )
    }
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
