//! `kubelab lab verify`: does the lab work? Each check is `{name, applies,
//! run}` and ends Passed, Warned (why), Skipped (why) or Failed (why, hint).
//! The checks run concurrently, each under its own deadline, from the host
//! over the host-only network (reqwest with the lab's PKI, a small DNS
//! client), and over SSH only where the host cannot see the thing. The
//! disruptive one (LB failover) runs alone after the others.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::Serialize;
use serde_json::Value;

use crate::config::Role;
use crate::dns_client::{self, Record};
use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::printer::{self, Printer, SCHEMA_VERSION, Style};
use crate::settings::Settings;
use crate::tools::Runner;
use crate::tools::ssh::Transport;
use crate::tools::vagrant::{MachineState, Vagrant};
use crate::topology::{Node, Phase};

/// What `lab verify` was asked to do.
pub struct Options {
    pub json: bool,
    pub only: Option<String>,
    pub no_disruptive: bool,
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    Warned(String),
    Skipped(String),
    Failed { why: String, hint: Option<String> },
}

impl Outcome {
    fn failed(why: impl Into<String>, hint: impl Into<String>) -> Outcome {
        Outcome::Failed {
            why: why.into(),
            hint: Some(hint.into()),
        }
    }

    fn status(&self) -> &'static str {
        match self {
            Outcome::Passed(_) => "passed",
            Outcome::Warned(_) => "warned",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed { .. } => "failed",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Outcome::Passed(d) | Outcome::Warned(d) | Outcome::Skipped(d) => d,
            Outcome::Failed { why, .. } => why,
        }
    }
}

/// Problems found by a check: none is a pass with `summary`.
fn judge(problems: Vec<String>, summary: String, hint: &str) -> Outcome {
    if problems.is_empty() {
        return Outcome::Passed(summary);
    }
    const SHOWN: usize = 6;
    let mut why = problems
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > SHOWN {
        why.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    Outcome::failed(why, hint)
}

const API_HINT: &str = "the Kubernetes control plane is not provisioned or not running: `kubelab lab status` shows the phases done on each node";

/// The checks, in the order the issue numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckId {
    Machines,
    Dns,
    Etcd,
    Api,
    LbFailover,
    ControlPlane,
    Nodes,
    Secrets,
    Networking,
    Workload,
    Certificates,
    LogsExec,
    PortForward,
    Services,
    ApiFailover,
    EtcdMemberDown,
}

impl CheckId {
    pub const ALL: [CheckId; 16] = [
        CheckId::Machines,
        CheckId::Dns,
        CheckId::Etcd,
        CheckId::Api,
        CheckId::LbFailover,
        CheckId::ControlPlane,
        CheckId::Nodes,
        CheckId::Secrets,
        CheckId::Networking,
        CheckId::Workload,
        CheckId::Certificates,
        CheckId::LogsExec,
        CheckId::PortForward,
        CheckId::Services,
        CheckId::ApiFailover,
        CheckId::EtcdMemberDown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckId::Machines => "machines",
            CheckId::Dns => "dns",
            CheckId::Etcd => "etcd",
            CheckId::Api => "api",
            CheckId::LbFailover => "lb-failover",
            CheckId::ControlPlane => "control-plane",
            CheckId::Nodes => "nodes",
            CheckId::Secrets => "secrets",
            CheckId::Networking => "networking",
            CheckId::Workload => "workload",
            CheckId::Certificates => "certificates",
            CheckId::LogsExec => "logs-exec",
            CheckId::PortForward => "port-forward",
            CheckId::Services => "services",
            CheckId::ApiFailover => "api-failover",
            CheckId::EtcdMemberDown => "etcd-member-down",
        }
    }

    /// How long the check may take before it counts as Failed.
    fn deadline(self) -> Duration {
        Duration::from_secs(match self {
            // Stop haproxy, wait for the move, start it, wait for the return.
            CheckId::LbFailover | CheckId::ApiFailover | CheckId::EtcdMemberDown => 150,
            CheckId::Certificates => 10,
            _ => 60,
        })
    }

    /// Checks that change the lab while they run: after the others, alone.
    fn disruptive(self) -> bool {
        matches!(
            self,
            CheckId::LbFailover | CheckId::ApiFailover | CheckId::EtcdMemberDown
        )
    }

    /// `None` when the check applies to this lab, else why not.
    fn applies(self, ctx: &Ctx) -> Option<String> {
        let topo = &ctx.loaded.topo;
        let workers = topo.by_role(Role::Worker).count();
        match self {
            CheckId::LbFailover if !topo.api.vip => {
                Some("one load balancer: there is no VIP to fail over".into())
            }
            CheckId::LbFailover if ctx.no_disruptive => {
                Some("--no-disruptive: it stops haproxy on the VIP holder".into())
            }
            CheckId::ApiFailover if ctx.no_disruptive => {
                Some("--no-disruptive: it stops a kube-apiserver".into())
            }
            CheckId::EtcdMemberDown if ctx.no_disruptive => {
                Some("--no-disruptive: it stops an etcd member".into())
            }
            CheckId::ApiFailover if topo.by_role(Role::Controller).count() < 2 => {
                Some("one controller: there is no other apiserver to fail over to".into())
            }
            CheckId::EtcdMemberDown if topo.by_role(Role::Etcd).count() < 3 => {
                Some("fewer than 3 etcd members: one stopped loses the quorum".into())
            }
            CheckId::Nodes
            | CheckId::Workload
            | CheckId::Networking
            | CheckId::LogsExec
            | CheckId::PortForward
            | CheckId::Services
                if workers == 0 =>
            {
                Some("the lab has no workers".into())
            }

            CheckId::Dns if topo.by_role(Role::Dns).next().is_none() => {
                Some("the lab has no DNS node".into())
            }
            _ => phase_not_run(self, &ctx.phases_done),
        }
    }

    async fn run(self, ctx: &Ctx<'_>) -> Outcome {
        match self {
            CheckId::Machines => machines(ctx).await,
            CheckId::Dns => dns(ctx).await,
            CheckId::Etcd => etcd(ctx).await,
            CheckId::Api => api(ctx).await,
            CheckId::LbFailover => lb_failover(ctx).await,
            CheckId::ControlPlane => control_plane(ctx).await,
            CheckId::Nodes => nodes(ctx).await,
            CheckId::Secrets => secrets(ctx).await,
            CheckId::Networking => networking(ctx).await,
            CheckId::Workload => workload(ctx).await,
            CheckId::Certificates => certificates(ctx),
            CheckId::LogsExec => logs_exec(ctx).await,
            CheckId::PortForward => port_forward(ctx).await,
            CheckId::Services => services(ctx).await,
            CheckId::ApiFailover => api_failover(ctx).await,
            CheckId::EtcdMemberDown => etcd_member_down(ctx).await,
        }
    }
}

/// What every check reads: the lab, its files and one SSH connection per node.
struct Ctx<'a> {
    loaded: &'a LoadedLab,
    hosts_file: PathBuf,
    pki_dir: PathBuf,
    logs: PathBuf,
    /// `vagrant status`, once for all checks.
    machines: std::result::Result<Vec<MachineState>, String>,
    /// SSH to the running nodes.
    transport: Option<Transport>,
    no_disruptive: bool,
    /// The phases the lab has been provisioned through (state.json).
    phases_done: Vec<Phase>,
}

impl Ctx<'_> {
    fn log(&self, node: &str) -> PathBuf {
        self.logs.join(node).join("verify.log")
    }

    /// Runs `command` on `node` over SSH; the error is one line.
    async fn ssh(
        &self,
        node: &str,
        command: impl AsRef<str>,
        purpose: &str,
    ) -> std::result::Result<String, String> {
        let command = command.as_ref();
        let Some(transport) = &self.transport else {
            return Err("no SSH settings (the VMs are not running)".into());
        };
        transport
            .run(
                node,
                command,
                None,
                format!("{purpose} on {node}"),
                &self.log(node),
            )
            .await
            .map(|c| c.stdout)
            .map_err(|e| first_line(&e.to_string()))
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// One finished check, as printed.
#[derive(Debug, Serialize)]
struct Report {
    name: &'static str,
    number: usize,
    status: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    duration_ms: u128,
}

/// Everything the checks read, with one SSH connection per running node.
async fn context<'a>(
    loaded: &'a LoadedLab,
    settings: &Settings,
    printer: &Printer,
    runner: &Runner,
    no_disruptive: bool,
) -> Result<Ctx<'a>> {
    let state_dir = loaded.state_dir();
    let state = crate::state::State::load(&state_dir.join("state.json"), &loaded.lab.name)?;
    let phases_done = crate::provision::phases_done(&loaded.topo, &state);
    if loaded.lab.provider == crate::config::Provider::Static {
        // Existing servers: no VMs to ask about, SSH settings from lab.yaml.
        let targets = crate::tools::ssh::static_targets(&loaded.lab);
        return Ok(Ctx {
            loaded,
            hosts_file: settings.hosts_file.clone(),
            pki_dir: state_dir.join("pki"),
            logs: state_dir.join("logs"),
            machines: Ok(Vec::new()),
            transport: Some(Transport::new(
                &loaded.lab.name,
                &state_dir,
                targets,
                runner,
            )?),
            no_disruptive,
            phases_done,
        });
    }
    let vagrant = Vagrant::find(&state_dir, runner)?;
    printer.info("asking Vagrant for the VMs' state and SSH settings");
    let machines = vagrant
        .status()
        .await
        .map_err(|e| first_line(&e.to_string()));
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
    Ok(Ctx {
        loaded,
        hosts_file: settings.hosts_file.clone(),
        pki_dir: state_dir.join("pki"),
        logs: state_dir.join("logs"),
        machines,
        transport,
        no_disruptive,
        phases_done,
    })
}

/// Runs `selected` (the quiet ones at once, then the disruptive ones alone)
/// and closes the context's SSH connections. `report` prints each outcome.
async fn evaluate(
    ctx: &Ctx<'_>,
    selected: &[CheckId],
    printer: &Printer,
    report: bool,
) -> Vec<(CheckId, Outcome, Duration)> {
    let one = |id: CheckId| async move {
        let started = Instant::now();
        let outcome = match id.applies(ctx) {
            Some(why) => Outcome::Skipped(why),
            None => match tokio::time::timeout(id.deadline(), id.run(ctx)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::failed(
                    format!("no result within {} s", id.deadline().as_secs()),
                    "run it alone with `--only` and -v to see where it waits",
                ),
            },
        };
        let elapsed = started.elapsed();
        if report {
            printer.info(format!(
                "  {:<14} {} ({:.1} s)",
                id.name(),
                outcome.status(),
                elapsed.as_secs_f64()
            ));
        }
        (id, outcome, elapsed)
    };
    let (quiet, loud): (Vec<CheckId>, Vec<CheckId>) =
        selected.iter().partition(|c| !c.disruptive());
    let mut results = futures_util::future::join_all(quiet.into_iter().map(one)).await;
    for id in loud {
        results.push(one(id).await);
    }
    if let Some(transport) = &ctx.transport {
        transport.close().await;
    }
    results
}

/// On a lab provisioned part way, a Kubernetes check whose phase has not
/// run is Skipped naming that phase, not Failed with a connection error.
fn phase_not_run(id: CheckId, done: &[Phase]) -> Option<String> {
    let phase = needs(id);
    (phase >= Phase::Controllers && !done.contains(&phase)).then(|| {
        format!(
            "the {} phase has not run on this lab: `kubelab lab up` runs it",
            phase.name()
        )
    })
}

/// The phase a check needs done before it can pass.
fn needs(id: CheckId) -> Phase {
    match id {
        CheckId::Machines => Phase::Machines,
        CheckId::Dns => Phase::Dns,
        CheckId::Etcd => Phase::Etcd,
        CheckId::LbFailover => Phase::Lb,
        CheckId::Api | CheckId::ControlPlane | CheckId::Secrets => Phase::Controllers,
        CheckId::Nodes => Phase::Workers,
        // It probes from the nginx pods: the workload must run.
        CheckId::Networking => Phase::Workload,
        CheckId::Workload => Phase::Workload,
        // All three work on the nginx pods.
        CheckId::LogsExec | CheckId::PortForward | CheckId::Services => Phase::Workload,
        CheckId::ApiFailover => Phase::Controllers,
        CheckId::EtcdMemberDown => Phase::Etcd,
        CheckId::Certificates => Phase::Certs,
    }
}

/// The non-disruptive checks a lab provisioned through `phases` must pass.
pub fn checks_for(phases: &[Phase]) -> Vec<CheckId> {
    CheckId::ALL
        .into_iter()
        .filter(|c| !c.disruptive() && phases.contains(&needs(*c)))
        .collect()
}

/// Runs `checks` until none fails or `deadline` passes (the caller holds
/// the lab's lock). Returns how many rounds it took; the error names the
/// checks still failing and why.
pub async fn wait_healthy(
    loaded: &LoadedLab,
    settings: &Settings,
    printer: &Printer,
    checks: &[CheckId],
    deadline: Duration,
    verbose: bool,
) -> Result<()> {
    let names: Vec<&str> = checks.iter().map(|c| c.name()).collect();
    printer.info(format!(
        "waiting for these checks to pass: {}",
        names.join(", ")
    ));
    let runner = Runner::new(verbose);
    let started = Instant::now();
    loop {
        let ctx = context(loaded, settings, printer, &runner, true).await?;
        let results = evaluate(&ctx, checks, printer, false).await;
        let failing: Vec<String> = results
            .iter()
            .filter_map(|(id, outcome, _)| match outcome {
                Outcome::Failed { why, .. } => Some(format!("{}: {why}", id.name())),
                _ => None,
            })
            .collect();
        if failing.is_empty() {
            printer.info(format!(
                "{} check{} passed after {:.1} s",
                checks.len(),
                if checks.len() == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        if started.elapsed() >= deadline {
            return Err(Error::ChecksFailed(format!(
                "still failing after {} s: {}",
                deadline.as_secs(),
                failing.join("; ")
            )));
        }
        printer.info(format!("  not yet: {}", failing.join("; ")));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

pub async fn run(
    loaded: &LoadedLab,
    settings: &Settings,
    printer: &Printer,
    options: &Options,
    verbose: bool,
) -> Result<i32> {
    let selected: Vec<CheckId> = match &options.only {
        None => CheckId::ALL.to_vec(),
        Some(name) => {
            let Some(id) = CheckId::ALL.into_iter().find(|c| c.name() == name) else {
                let names: Vec<String> =
                    CheckId::ALL.iter().map(|c| c.name().to_string()).collect();
                let hint = match crate::config::closest(name, &names) {
                    Some(best) => format!("did you mean {best}? checks: {}", names.join(", ")),
                    None => format!("checks: {}", names.join(", ")),
                };
                return Err(Error::usage(format!("no check named {name:?}"), hint));
            };
            vec![id]
        }
    };
    let state_dir = loaded.state_dir();
    let is_static = loaded.lab.provider == crate::config::Provider::Static;
    // A static lab has no Vagrantfile; `lab up` records its hosts in the state.
    let made_by = if is_static {
        "state.json"
    } else {
        "Vagrantfile"
    };
    if !state_dir.join(made_by).exists() {
        return Err(Error::other(
            "this lab was never brought up: nothing to verify",
            "run `kubelab lab up` first",
        ));
    }
    // The failover stops haproxy: never while another kubelab changes the lab.
    let _lock = crate::state::LabLock::acquire(&state_dir, "kubelab lab verify")?;
    let runner = Runner::new(verbose);
    let ctx = context(loaded, settings, printer, &runner, options.no_disruptive).await?;
    printer.info(format!(
        "running {} check{}",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" }
    ));
    let mut results = evaluate(&ctx, &selected, printer, true).await;
    results.sort_by_key(|(id, _, _)| CheckId::ALL.iter().position(|c| c == id));

    let reports: Vec<Report> = results
        .into_iter()
        .map(|(id, outcome, elapsed)| Report {
            name: id.name(),
            number: CheckId::ALL.iter().position(|c| *c == id).unwrap_or(0) + 1,
            status: outcome.status(),
            detail: outcome.detail().to_string(),
            hint: match outcome {
                Outcome::Failed { hint, .. } => hint,
                _ => None,
            },
            duration_ms: elapsed.as_millis(),
        })
        .collect();
    let failed = reports.iter().filter(|r| r.status == "failed").count();
    if options.json {
        printer.json(&serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "lab": ctx.loaded.lab.name,
            "checks": reports,
            "failed": failed,
        }))?;
    } else {
        let rows: Vec<Vec<String>> = reports
            .iter()
            .map(|r| {
                let status = match r.status {
                    "passed" => "Passed".to_string(),
                    "skipped" => "Skipped".to_string(),
                    "warned" => printer.paint(Style::Yellow, "Warned"),
                    _ => printer.paint(Style::Red, "Failed"),
                };
                let mut detail = r.detail.clone();
                if let Some(hint) = &r.hint {
                    detail.push_str(&format!("\n    hint: {hint}"));
                }
                vec![
                    format!("{:>2}. {}", r.number, r.name),
                    status,
                    format!("{:.1} s", r.duration_ms as f64 / 1000.0),
                    detail,
                ]
            })
            .collect();
        printer.data(printer::table(
            &["CHECK", "STATUS", "TIME", "DETAIL"],
            &rows,
        ));
    }
    if failed > 0 {
        return Err(Error::ChecksFailed(format!(
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        )));
    }
    Ok(0)
}

// ---------------------------------------------------------------------------
// 1. machines
// ---------------------------------------------------------------------------

async fn machines(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    if ctx.loaded.lab.provider == crate::config::Provider::Static {
        return hosts_reachable(ctx).await;
    }
    let states = match &ctx.machines {
        Ok(states) => states,
        Err(e) => {
            return Outcome::failed(
                format!("`vagrant status` failed: {e}"),
                "run `vagrant status` in .kubelab to see why",
            );
        }
    };
    let not_running: Vec<String> = topo
        .nodes
        .iter()
        .filter_map(|n| {
            let state = states
                .iter()
                .find(|m| m.name == n.name)
                .map(|m| m.state.as_str())
                .unwrap_or("not_created");
            (state != "running").then(|| format!("{} is {state}", n.name))
        })
        .collect();
    if !not_running.is_empty() {
        return judge(
            not_running,
            String::new(),
            "`kubelab lab up` boots the VMs that are not running",
        );
    }
    judge(
        unreachable(ctx, "true", "check SSH", "unreachable over SSH").await,
        format!(
            "{} VMs running, every one reachable over SSH",
            topo.nodes.len()
        ),
        "`kubelab lab ssh NODE` shows the SSH error; `kubelab lab up` re-creates a broken VM",
    )
}

/// `command` on every node at once; one line per node it failed on.
async fn unreachable(ctx: &Ctx<'_>, command: &str, purpose: &str, what: &str) -> Vec<String> {
    let nodes = &ctx.loaded.topo.nodes;
    let reached =
        futures_util::future::join_all(nodes.iter().map(|n| ctx.ssh(&n.name, command, purpose)))
            .await;
    nodes
        .iter()
        .zip(reached)
        .filter_map(|(n, r)| r.err().map(|e| format!("{} {what}: {e}", n.name)))
        .collect()
}

/// Check 1 of a static lab: there are no VMs to be running, only servers
/// to reach, each as lab.yaml says.
async fn hosts_reachable(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let problems = unreachable(
        ctx,
        "sudo -n true",
        "check SSH and sudo",
        "unreachable over SSH, or no passwordless sudo",
    )
    .await;
    judge(
        problems,
        format!(
            "{} hosts reachable over SSH with passwordless sudo (provider: static)",
            topo.nodes.len()
        ),
        "`kubelab lab ssh NODE` shows the SSH error; lab.yaml's hosts list says how each host is reached",
    )
}

// ---------------------------------------------------------------------------
// 2. dns
// ---------------------------------------------------------------------------

const DNS_WAIT: Duration = Duration::from_secs(2);

async fn dns(ctx: &Ctx<'_>) -> Outcome {
    let LoadedLab { lab, topo, .. } = ctx.loaded;
    let Some(dns0) = topo.by_role(Role::Dns).next() else {
        return Outcome::Skipped("the lab has no DNS node".into());
    };
    let server = SocketAddr::from((dns0.address, 53));
    let mut problems = Vec::new();

    // From the host: every name and reverse record, as dns0 answers them.
    let mut names: Vec<(String, Ipv4Addr)> = topo
        .nodes
        .iter()
        .map(|n| (n.fqdn.clone(), n.address))
        .collect();
    names.push((topo.api.name.clone(), topo.api.address));
    let forward = futures_util::future::join_all(
        names
            .iter()
            .map(|(name, _)| dns_client::query(server, name, dns_client::TYPE_A, DNS_WAIT)),
    )
    .await;
    for ((name, want), got) in names.iter().zip(forward) {
        match got {
            Ok(records) if records == [Record::A(*want)] => {}
            Ok(records) => problems.push(format!(
                "{} answers {name} with {records:?}, not {want}",
                dns0.name
            )),
            Err(e) => problems.push(format!("{} on {name}: {e}", dns0.name)),
        }
    }
    let reverse = futures_util::future::join_all(topo.nodes.iter().map(|n| {
        dns_client::query(
            server,
            dns_client::reverse_name(n.address),
            dns_client::TYPE_PTR,
            DNS_WAIT,
        )
    }))
    .await;
    for (n, got) in topo.nodes.iter().zip(reverse) {
        let want = Record::Ptr(format!("{}.", n.fqdn));
        match got {
            Ok(records) if records == [want.clone()] => {}
            Ok(records) => problems.push(format!(
                "{} answers the reverse of {} with {records:?}, not {}.",
                dns0.name, n.address, n.fqdn
            )),
            Err(e) => problems.push(format!(
                "{} on the reverse of {}: {e}",
                dns0.name, n.address
            )),
        }
    }

    // On every node: the others resolve through its resolver.
    let resolved = futures_util::future::join_all(topo.nodes.iter().map(|n| {
        let others: Vec<&str> = topo
            .nodes
            .iter()
            .filter(|o| o.name != n.name)
            .map(|o| o.fqdn.as_str())
            .collect();
        let command = format!(
            "for name in {}; do getent hosts \"$name\" || echo \"- $name\"; done",
            others.join(" ")
        );
        ctx.ssh(&n.name, command, "resolve the other nodes")
    }))
    .await;
    for (n, got) in topo.nodes.iter().zip(resolved) {
        match got {
            Ok(out) => problems.extend(
                resolution_problems(&out, topo.nodes.iter().filter(|o| o.name != n.name))
                    .into_iter()
                    .map(|p| format!("on {}: {p}", n.name)),
            ),
            Err(e) => problems.push(format!("on {}: {e}", n.name)),
        }
    }

    // The hypervisor's hosts block is the one the plan makes.
    let want = crate::render::hosts_block(lab, topo);
    match crate::hosts_file::read(&ctx.hosts_file) {
        Ok(text) => match lab_block(&text, &lab.name) {
            Some(block) if block == crate::hosts_file::unambiguous(&want, &text, &lab.name) => {}
            Some(_) => problems.push(format!(
                "the lab's block in {} differs from the plan",
                ctx.hosts_file.display()
            )),
            None => problems.push(format!(
                "no block for lab {} in {}",
                lab.name,
                ctx.hosts_file.display()
            )),
        },
        Err(e) => problems.push(format!("could not read {}: {e}", ctx.hosts_file.display())),
    }

    judge(
        problems,
        format!(
            "{} answers {} names and {} reverse records; every node resolves the other {}; the block in {} matches the plan",
            dns0.name,
            names.len(),
            topo.nodes.len(),
            topo.nodes.len().saturating_sub(1),
            ctx.hosts_file.display()
        ),
        "`kubelab lab ssh dns0 -- sudo journalctl -u named` and `resolvectl status` on a node say why; `kubelab lab up` (without --no-hosts) rewrites the hosts block",
    )
}

/// What is wrong in `getent hosts` output (one line per name, `- NAME` for
/// a name that did not resolve) against the nodes that should be there.
fn resolution_problems<'a>(out: &str, expected: impl Iterator<Item = &'a Node>) -> Vec<String> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for line in out.lines() {
        let mut words = line.split_whitespace();
        if let (Some(address), Some(name)) = (words.next(), words.next()) {
            seen.insert(name.trim_end_matches('.'), address);
        }
    }
    expected
        .filter_map(|n| match seen.get(n.fqdn.as_str()) {
            Some(&"-") | None => Some(format!("{} does not resolve", n.fqdn)),
            Some(address) if *address != n.address.to_string() => Some(format!(
                "{} resolves to {address}, not {}",
                n.fqdn, n.address
            )),
            Some(_) => None,
        })
        .collect()
}

/// The lab's marked block in a hosts file, with `\n` line ends.
fn lab_block(text: &str, lab: &str) -> Option<String> {
    let begin = format!("# BEGIN kubelab {lab}");
    let end = format!("# END kubelab {lab}");
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if !inside && line == begin {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
            if line == end {
                return Some(out);
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// 3. etcd
// ---------------------------------------------------------------------------

/// The apiserver's view of etcd: its client certificate against the etcd CA.
fn etcd_client(pki_dir: &Path) -> std::result::Result<reqwest::Client, String> {
    tls_client(pki_dir, "etcd-ca", Some("apiserver-etcd-client"), &[])
}

/// A reqwest client that trusts only the lab CA `ca` (a file stem under
/// pki/) and presents `identity`'s certificate when it is given.
fn tls_client(
    pki_dir: &Path,
    ca: &str,
    identity: Option<&str>,
    resolve: &[(&str, SocketAddr)],
) -> std::result::Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |stem: &str| {
        fs_err::read(pki_dir.join(format!("{stem}.pem")))
            .map_err(|e| format!("{e} (`kubelab lab render` signs the lab's certificates)"))
    };
    let ca =
        reqwest::Certificate::from_pem(&read(ca)?).map_err(|e| format!("reading the CA: {e}"))?;
    // Lab addresses are never reached through the host's HTTP(S)_PROXY.
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("kubelab/", env!("CARGO_PKG_VERSION"), " verify"));
    if let Some(stem) = identity {
        let mut pem = read(stem)?;
        pem.extend(read(&format!("{stem}-key"))?);
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("reading the {stem} certificate: {e}"))?;
        builder = builder.identity(id);
    }
    for (name, addr) in resolve {
        builder = builder.resolve(name, *addr);
    }
    builder
        .build()
        .map_err(|e| format!("could not set up TLS: {e}"))
}

/// An error from reqwest on one line: what failed and its innermost cause
/// ("connection refused" hides two levels down). The callers name the URL.
fn describe(e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let innermost = causes.last().cloned();
    match innermost {
        Some(cause) if e.is_connect() => format!("cannot connect: {cause}"),
        _ if e.is_timeout() => "no answer in time".to_string(),
        Some(cause) => {
            let mut top = e.to_string();
            if let Some(url) = e.url() {
                top = top.replace(&format!(" for url ({url})"), "");
            }
            format!("{top}: {cause}")
        }
        None => e.to_string(),
    }
}

/// A short, one-line excerpt of a response body for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 160 {
        format!("{}...", line.chars().take(160).collect::<String>())
    } else {
        line
    }
}

/// Sends a request and returns the status and body; the error names the URL.
async fn request(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: impl AsRef<str>,
    body: Option<String>,
) -> std::result::Result<(u16, Vec<u8>), String> {
    let url = url.as_ref();
    let mut req = client.request(method, url);
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    Ok((status, bytes.to_vec()))
}

/// A request that must answer 2xx with JSON.
async fn fetch_json(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: impl AsRef<str>,
    body: Option<String>,
) -> std::result::Result<Value, String> {
    let url = url.as_ref();
    let (status, bytes) = request(client, method, url, body).await?;
    if !(200..300).contains(&status) {
        return Err(format!("{url}: HTTP {status}: {}", excerpt(&bytes)));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// uint64 fields come as strings from etcd's JSON gateway.
fn id_string(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::to_string)
        .or_else(|| v.as_u64().map(|n| n.to_string()))
}

/// What one etcd member says about itself and the cluster.
#[derive(Debug, Clone)]
struct EtcdView {
    health: std::result::Result<Value, String>,
    members: std::result::Result<Value, String>,
    status: std::result::Result<Value, String>,
}

async fn etcd_view(client: &reqwest::Client, base: String) -> EtcdView {
    let (health, members, status) = tokio::join!(
        fetch_json(client, reqwest::Method::GET, format!("{base}/health"), None),
        fetch_json(
            client,
            reqwest::Method::POST,
            format!("{base}/v3/cluster/member/list"),
            Some("{}".into())
        ),
        fetch_json(
            client,
            reqwest::Method::POST,
            format!("{base}/v3/maintenance/status"),
            Some("{}".into())
        ),
    );
    EtcdView {
        health,
        members,
        status,
    }
}

/// Every member healthy, every member's list == the plan's etcd nodes at
/// their client URLs, and all agree on one leader that is one of them.
fn judge_etcd(expected: &[(&str, Ipv4Addr)], views: &[(&str, EtcdView)]) -> Outcome {
    let mut problems = Vec::new();
    let want: BTreeSet<&str> = expected.iter().map(|(n, _)| *n).collect();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut leaders: BTreeSet<String> = BTreeSet::new();
    let mut self_ids: BTreeMap<&str, String> = BTreeMap::new();
    for (name, view) in views {
        match &view.health {
            Ok(v) if v["health"] == "true" => {}
            Ok(v) => problems.push(format!("{name} is not healthy: {v}")),
            Err(e) => problems.push(format!("{name} /health: {e}")),
        }
        match &view.members {
            Ok(v) => {
                let members = v["members"].as_array().cloned().unwrap_or_default();
                let listed: BTreeSet<&str> =
                    members.iter().filter_map(|m| m["name"].as_str()).collect();
                if listed != want {
                    problems.push(format!(
                        "{name} lists members {listed:?}, the plan has {want:?}"
                    ));
                }
                for m in &members {
                    let (Some(member), Some(id)) = (m["name"].as_str(), id_string(&m["ID"])) else {
                        continue;
                    };
                    ids.insert(id, member.to_string());
                    if let Some((_, address)) = expected.iter().find(|(n, _)| *n == member) {
                        let url = format!("https://{address}:2379");
                        let urls = m["clientURLs"].as_array().cloned().unwrap_or_default();
                        if !urls.iter().any(|u| u == url.as_str()) {
                            problems.push(format!(
                                "member {member} does not advertise {url} (it lists {urls:?})"
                            ));
                        }
                    }
                }
            }
            Err(e) => problems.push(format!("{name} member list: {e}")),
        }
        match &view.status {
            Ok(v) => {
                match id_string(&v["leader"]) {
                    Some(leader) if leader != "0" => {
                        leaders.insert(leader);
                    }
                    _ => problems.push(format!("{name} knows no leader")),
                }
                if let Some(id) = id_string(&v["header"]["member_id"]) {
                    self_ids.insert(name, id);
                }
            }
            Err(e) => problems.push(format!("{name} status: {e}")),
        }
    }
    let mut leader_name = String::new();
    match leaders.len() {
        0 => {}
        1 => {
            let leader = leaders.iter().next().cloned().unwrap_or_default();
            let claimed: Vec<&&str> = self_ids
                .iter()
                .filter(|(_, id)| **id == leader)
                .map(|(n, _)| n)
                .collect();
            match ids.get(&leader) {
                Some(name) if claimed.len() == 1 => leader_name = name.clone(),
                Some(name) => problems.push(format!(
                    "the leader {name} is not among the members that answered"
                )),
                None => problems.push(format!("the leader {leader} is not in the member list")),
            }
        }
        _ => problems.push(format!(
            "the members disagree on the leader: {} leaders reported",
            leaders.len()
        )),
    }
    judge(
        problems,
        format!(
            "{} members healthy over mutual TLS; member list = {}; one leader: {leader_name}",
            views.len(),
            want.iter().copied().collect::<Vec<_>>().join(", ")
        ),
        "`kubelab lab ssh MEMBER -- sudo journalctl -u etcd` says why",
    )
}

async fn etcd(ctx: &Ctx<'_>) -> Outcome {
    let client = match etcd_client(&ctx.pki_dir) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the etcd certificates"),
    };
    let members: Vec<&Node> = ctx.loaded.topo.by_role(Role::Etcd).collect();
    let views = futures_util::future::join_all(
        members
            .iter()
            .map(|n| etcd_view(&client, format!("https://{}:2379", n.address))),
    )
    .await;
    let expected: Vec<(&str, Ipv4Addr)> = members
        .iter()
        .map(|n| (n.name.as_str(), n.address))
        .collect();
    let views: Vec<(&str, EtcdView)> = members.iter().map(|n| n.name.as_str()).zip(views).collect();
    judge_etcd(&expected, &views)
}

// ---------------------------------------------------------------------------
// 4. api
// ---------------------------------------------------------------------------

/// A client as `admin`, with the API name pinned to the plan's address so it
/// does not depend on the host's resolver.
fn admin_client(ctx: &Ctx) -> std::result::Result<reqwest::Client, String> {
    let api = &ctx.loaded.topo.api;
    tls_client(
        &ctx.pki_dir,
        "ca",
        Some("admin"),
        &[(api.name.as_str(), SocketAddr::from((api.address, api.port)))],
    )
}

/// The API through the VIP (or the single LB's address).
fn api_base(ctx: &Ctx) -> String {
    let api = &ctx.loaded.topo.api;
    format!("https://{}:{}", api.address, api.port)
}

/// `/readyz?verbose`: 200 is ready; otherwise the failing checks (`[-]` lines).
fn readyz_verdict(status: u16, body: &str) -> std::result::Result<(), String> {
    if status == 200 {
        return Ok(());
    }
    let failing: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("[-]"))
        .map(|l| l.trim_start_matches("[-]"))
        .collect();
    Err(if failing.is_empty() {
        format!("HTTP {status}: {}", excerpt(body.as_bytes()))
    } else {
        format!("HTTP {status}, failing: {}", failing.join(", "))
    })
}

async fn readyz(client: &reqwest::Client, base: &str) -> std::result::Result<(), String> {
    let url = format!("{base}/readyz?verbose");
    let (status, body) = request(client, reqwest::Method::GET, &url, None).await?;
    readyz_verdict(status, &String::from_utf8_lossy(&body)).map_err(|e| format!("{url}: {e}"))
}

/// Controllers that haproxy's statistics (CSV) do not show UP in the
/// kube-apiserver backend.
fn haproxy_down(csv: &str, controllers: &[&str]) -> Vec<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
        return vec!["haproxy's statistics have no pxname/svname/status columns".into()];
    };
    let mut status: BTreeMap<&str, &str> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.get(px) == Some(&"kube-apiserver")
            && let (Some(server), Some(state)) = (cells.get(sv), cells.get(st))
        {
            status.insert(server, state);
        }
    }
    controllers
        .iter()
        .filter_map(|c| match status.get(c) {
            Some(state) if state.starts_with("UP") => None,
            Some(state) => Some(format!("{c} is {state}")),
            None => Some(format!("{c} is not in the backend")),
        })
        .collect()
}

async fn api(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let controllers: Vec<&Node> = topo.by_role(Role::Controller).collect();
    let mut bases = vec![api_base(ctx), topo.api.url()];
    bases.extend(
        controllers
            .iter()
            .map(|n| format!("https://{}:{}", n.address, topo.api.port)),
    );
    let answers = futures_util::future::join_all(bases.iter().map(|b| readyz(&client, b))).await;
    let mut problems: Vec<String> = answers.into_iter().filter_map(|r| r.err()).collect();
    let names: Vec<&str> = controllers.iter().map(|n| n.name.as_str()).collect();
    let lbs: Vec<&Node> = topo.by_role(Role::Lb).collect();
    let stats = futures_util::future::join_all(lbs.iter().map(|lb| {
        ctx.ssh(
            &lb.name,
            "curl -fsS --max-time 5 'http://127.0.0.1:8404/;csv'",
            "read haproxy's statistics",
        )
    }))
    .await;
    for (lb, got) in lbs.iter().zip(stats) {
        match got {
            Ok(csv) => problems.extend(
                haproxy_down(&csv, &names)
                    .into_iter()
                    .map(|p| format!("haproxy on {}: {p}", lb.name)),
            ),
            Err(e) => problems.push(format!("haproxy statistics on {}: {e}", lb.name)),
        }
    }
    judge(
        problems,
        format!(
            "/readyz answers through {} and {}, and on all {} controllers; haproxy on {} sees every controller up",
            topo.api.address,
            topo.api.name,
            controllers.len(),
            lbs.iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        API_HINT,
    )
}

// ---------------------------------------------------------------------------
// 5. lb-failover
// ---------------------------------------------------------------------------

const FAILOVER_WAIT: Duration = Duration::from_secs(30);
const RETURN_WAIT: Duration = Duration::from_secs(45);

/// The load balancers that hold `vip` right now.
async fn vip_holders(
    ctx: &Ctx<'_>,
    lbs: &[&Node],
    vip: Ipv4Addr,
) -> std::result::Result<Vec<String>, String> {
    let outs = futures_util::future::join_all(
        lbs.iter()
            .map(|lb| ctx.ssh(&lb.name, "ip -4 -o addr show", "look for the VIP")),
    )
    .await;
    let mut holders = Vec::new();
    for (lb, out) in lbs.iter().zip(outs) {
        if holds(&out.map_err(|e| format!("{}: {e}", lb.name))?, vip) {
            holders.push(lb.name.clone());
        }
    }
    Ok(holders)
}

/// Whether `ip -4 -o addr show` output lists `vip`.
fn holds(ip_addr: &str, vip: Ipv4Addr) -> bool {
    let needle = format!("inet {vip}/");
    ip_addr.lines().any(|l| l.contains(&needle))
}

async fn tcp_accepts(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// Waits until the API endpoint (the VIP, or the one LB) accepts TCP, as a
/// user's first `kubectl` through `api.<domain>` needs; after a boot,
/// keepalived takes a few seconds to claim the VIP again.
pub async fn wait_api_endpoint(
    loaded: &LoadedLab,
    printer: &Printer,
    wait: Duration,
) -> Result<()> {
    let topo = &loaded.topo;
    let target = SocketAddr::from((topo.api.address, topo.api.port));
    match poll(wait, || tcp_accepts(target)).await {
        Some(took) => {
            printer.info(format!(
                "the API endpoint {} ({target}) accepts connections ({:.1} s)",
                topo.api.name,
                took.as_secs_f64()
            ));
            Ok(())
        }
        None => Err(Error::ChecksFailed(format!(
            "the API endpoint {} ({target}) does not accept TCP after {} s",
            topo.api.name,
            wait.as_secs()
        ))),
    }
}

/// Polls `condition` every 250 ms until it holds or `wait` passes; returns
/// how long it took.
async fn poll<F, Fut>(wait: Duration, mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > wait {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn lb_failover(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let vip = topo.api.address;
    let target = SocketAddr::from((vip, topo.api.port));
    let lbs: Vec<&Node> = topo.by_role(Role::Lb).collect();
    let hint = "`kubelab lab ssh LB -- sudo journalctl -u keepalived -u haproxy` on the load balancers says why";
    let holder = match vip_holders(ctx, &lbs, vip).await {
        Ok(h) if h.len() == 1 => h[0].clone(),
        Ok(h) => {
            return Outcome::failed(
                format!(
                    "the VIP {vip} is held by {} load balancers ({h:?}), not one",
                    h.len()
                ),
                hint,
            );
        }
        Err(e) => return Outcome::failed(e, hint),
    };
    if !tcp_accepts(target).await {
        return Outcome::failed(
            format!("{target} (held by {holder}) does not accept TCP before the test"),
            hint,
        );
    }
    if let Err(e) = ctx
        .ssh(&holder, "sudo systemctl stop haproxy", "stop haproxy")
        .await
    {
        return Outcome::failed(format!("could not stop haproxy on {holder}: {e}"), hint);
    }
    // From here on, Ctrl-C ends the waiting but never skips the restart.
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let mut interrupted = false;
    let new_holder = std::cell::RefCell::new(String::new());
    let moving = poll(FAILOVER_WAIT, || async {
        match vip_holders(ctx, &lbs, vip).await {
            Ok(h) if h.len() == 1 && h[0] != holder => {
                new_holder.replace(h[0].clone());
                tcp_accepts(target).await
            }
            _ => false,
        }
    });
    let moved = tokio::select! {
        moved = moving => moved,
        _ = &mut interrupt => {
            interrupted = true;
            None
        }
    };
    let new_holder = new_holder.into_inner();
    // Where the API is up, it must answer through the new holder too.
    let api_note = match moved {
        Some(_) if !interrupted => match admin_client(ctx) {
            Ok(client) => match readyz(&client, &api_base(ctx)).await {
                Ok(()) => "; /readyz answered through it".to_string(),
                Err(_) => {
                    "; checked at the TCP level (the Kubernetes API does not answer)".to_string()
                }
            },
            Err(_) => String::new(),
        },
        _ => String::new(),
    };
    // Always restart haproxy, whatever happened above.
    let restarted = ctx
        .ssh(&holder, "sudo systemctl start haproxy", "start haproxy")
        .await;
    let returned = match &restarted {
        Ok(_) if !interrupted => {
            let returning = poll(RETURN_WAIT, || async {
                matches!(vip_holders(ctx, &lbs, vip).await, Ok(h) if h == [holder.clone()])
                    && tcp_accepts(target).await
            });
            tokio::select! {
                back = returning => back,
                _ = &mut interrupt => {
                    interrupted = true;
                    None
                }
            }
        }
        _ => None,
    };
    if interrupted && restarted.is_ok() {
        return Outcome::failed(
            format!("interrupted; haproxy on {holder} was started again"),
            "run `kubelab lab verify --only lb-failover` to finish the check",
        );
    }
    match (moved, restarted, returned) {
        (_, Err(e), _) => Outcome::failed(
            format!("could not start haproxy again on {holder}: {e}"),
            format!("start it by hand: `kubelab lab ssh {holder} -- sudo systemctl start haproxy`"),
        ),
        (None, Ok(_), _) => Outcome::failed(
            format!(
                "with haproxy stopped on {holder}, the VIP {vip} did not move to another load balancer accepting TCP on {} within {} s",
                topo.api.port,
                FAILOVER_WAIT.as_secs()
            ),
            hint,
        ),
        (Some(_), Ok(_), None) => Outcome::failed(
            format!(
                "the VIP moved to {new_holder}, but did not return to {holder} within {} s of haproxy starting again",
                RETURN_WAIT.as_secs()
            ),
            hint,
        ),
        (Some(took), Ok(_), Some(back)) => Outcome::Passed(format!(
            "haproxy stopped on {holder}: the VIP {vip} moved to {new_holder} and accepted TCP on {} after {:.1} s{api_note}; back on {holder} {:.1} s after haproxy started",
            topo.api.port,
            took.as_secs_f64(),
            back.as_secs_f64()
        )),
    }
}

// ---------------------------------------------------------------------------
// 6. control-plane
// ---------------------------------------------------------------------------

/// Who holds a leader-election Lease: the controller named before `_` in
/// its holderIdentity (`controller0_0b9c...`).
fn lease_holder(lease: &Value, controllers: &[&str]) -> std::result::Result<String, String> {
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or_default();
    if holder.is_empty() {
        return Err("no holder".into());
    }
    let node = holder.split('_').next().unwrap_or_default();
    if controllers.contains(&node) {
        Ok(node.to_string())
    } else {
        Err(format!("held by {holder:?}, not one of the controllers"))
    }
}

async fn control_plane(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let (ca_client, admin) = match (tls_client(&ctx.pki_dir, "ca", None, &[]), admin_client(ctx)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Outcome::failed(e, "`kubelab lab render` signs the lab's certificates");
        }
    };
    let controllers: Vec<&Node> = topo.by_role(Role::Controller).collect();
    let mut urls = Vec::new();
    for n in &controllers {
        urls.push(format!("https://{}:10259/healthz", n.address));
        urls.push(format!("https://{}:10257/healthz", n.address));
    }
    let answers = futures_util::future::join_all(
        urls.iter()
            .map(|u| request(&ca_client, reqwest::Method::GET, u, None)),
    )
    .await;
    let mut problems = Vec::new();
    for (url, got) in urls.iter().zip(answers) {
        match got {
            Ok((200, _)) => {}
            Ok((status, body)) => {
                problems.push(format!("{url}: HTTP {status}: {}", excerpt(&body)))
            }
            Err(e) => problems.push(e),
        }
    }
    let names: Vec<&str> = controllers.iter().map(|n| n.name.as_str()).collect();
    let base = api_base(ctx);
    let mut leaders = Vec::new();
    for component in ["kube-scheduler", "kube-controller-manager"] {
        let url =
            format!("{base}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{component}");
        match fetch_json(&admin, reqwest::Method::GET, &url, None).await {
            Ok(lease) => match lease_holder(&lease, &names) {
                Ok(node) => leaders.push(format!("{component} on {node}")),
                Err(e) => problems.push(format!("{component} lease: {e}")),
            },
            Err(e) => problems.push(e),
        }
    }
    judge(
        problems,
        format!(
            "scheduler and controller-manager healthz answer over TLS on all {} controllers; leaders: {}",
            controllers.len(),
            leaders.join(", ")
        ),
        API_HINT,
    )
}

// ---------------------------------------------------------------------------
// 7. nodes
// ---------------------------------------------------------------------------

/// Every planned worker registered, Ready, with the plan's pod CIDR.
fn node_problems(list: &Value, workers: &[(&str, Option<Ipv4Net>)]) -> Vec<String> {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for (name, cidr) in workers {
        let Some(node) = items.iter().find(|i| i["metadata"]["name"] == *name) else {
            problems.push(format!("{name} is not registered"));
            continue;
        };
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned();
        match ready {
            Some(c) if c["status"] == "True" => {}
            Some(c) => problems.push(format!(
                "{name} is not Ready ({}: {})",
                c["reason"].as_str().unwrap_or("no reason"),
                c["message"].as_str().unwrap_or("")
            )),
            None => problems.push(format!("{name} reports no Ready condition")),
        }
        let want = cidr.map(|c| c.to_string()).unwrap_or_default();
        match node["spec"]["podCIDR"].as_str() {
            Some(got) if got == want => {}
            Some(got) => problems.push(format!("{name} has pod CIDR {got}, the plan gives {want}")),
            None => problems.push(format!("{name} has no pod CIDR (the plan gives {want})")),
        }
    }
    problems
}

async fn nodes(ctx: &Ctx<'_>) -> Outcome {
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let workers: Vec<(&str, Option<Ipv4Net>)> = ctx
        .loaded
        .topo
        .by_role(Role::Worker)
        .map(|n| (n.name.as_str(), n.pod_cidr))
        .collect();
    let url = format!("{}/api/v1/nodes", api_base(ctx));
    match fetch_json(&client, reqwest::Method::GET, &url, None).await {
        Ok(list) => judge(
            node_problems(&list, &workers),
            format!(
                "all {} workers Ready with the plan's pod CIDRs",
                workers.len()
            ),
            "`kubelab lab ssh WORKER -- journalctl -u kubelet` says why a node is not Ready",
        ),
        Err(e) => Outcome::failed(e, API_HINT),
    }
}

// ---------------------------------------------------------------------------
// 8. secrets
// ---------------------------------------------------------------------------

const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:aescbc:v1:";

/// Creates a throwaway Secret through the API, reads its raw value from etcd
/// and deletes it. The value is never printed: only whether it is encrypted.
async fn secret_at_rest(
    api: &reqwest::Client,
    api_base: &str,
    etcd: &reqwest::Client,
    etcd_base: &str,
) -> Outcome {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut random = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut random) {
        return Outcome::failed(format!("no randomness for a name: {e}"), "");
    }
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("kubelab-verify-{suffix}");
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubelab"}},
        "data": {"probe": b64.encode(random)},
    });
    let secrets = format!("{api_base}/api/v1/namespaces/default/secrets");
    if let Err(e) = fetch_json(api, reqwest::Method::POST, &secrets, Some(body.to_string())).await {
        return Outcome::failed(e, API_HINT);
    }
    let key = format!("/registry/secrets/default/{name}");
    let range = fetch_json(
        etcd,
        reqwest::Method::POST,
        &format!("{etcd_base}/v3/kv/range"),
        Some(serde_json::json!({"key": b64.encode(&key)}).to_string()),
    )
    .await;
    let deleted = fetch_json(
        api,
        reqwest::Method::DELETE,
        &format!("{secrets}/{name}"),
        None,
    )
    .await;
    let raw = range.and_then(|v| {
        v["kvs"][0]["value"]
            .as_str()
            .ok_or_else(|| format!("etcd has no key {key}"))
            .and_then(|s| {
                b64.decode(s)
                    .map_err(|e| format!("etcd's value is not base64: {e}"))
            })
    });
    let verdict = match raw {
        Ok(raw) if raw.starts_with(ENCRYPTED_PREFIX) => Outcome::Passed(format!(
            "a new Secret is stored in etcd as k8s:enc:aescbc:v1:... (read from {key}, then deleted)"
        )),
        Ok(_) => Outcome::failed(
            format!(
                "{key} is stored in etcd without the k8s:enc:aescbc:v1: prefix: Secrets are not encrypted at rest"
            ),
            "the apiserver needs --encryption-provider-config; `kubelab lab up --only controllers` provisions it",
        ),
        Err(e) => Outcome::failed(e, "`kubelab lab verify --only etcd` checks etcd itself"),
    };
    match (verdict, deleted) {
        (Outcome::Passed(_), Err(e)) => Outcome::failed(
            format!("the Secret is encrypted, but deleting {name} failed: {e}"),
            format!("delete it by hand: kubectl delete secret {name}"),
        ),
        (verdict, _) => verdict,
    }
}

async fn secrets(ctx: &Ctx<'_>) -> Outcome {
    let (api, etcd) = match (admin_client(ctx), etcd_client(&ctx.pki_dir)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Outcome::failed(e, "`kubelab lab render` signs the lab's certificates");
        }
    };
    let Some(member) = ctx.loaded.topo.by_role(Role::Etcd).next() else {
        return Outcome::Skipped("the lab has no etcd".into());
    };
    secret_at_rest(
        &api,
        &api_base(ctx),
        &etcd,
        &format!("https://{}:2379", member.address),
    )
    .await
}

// ---------------------------------------------------------------------------
// 9. networking
// ---------------------------------------------------------------------------

/// One command run inside a pod with `kubectl exec`, and what its output
/// must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe {
    label: String,
    pod: String,
    command: String,
    expect: String,
}

/// Pod names and addresses from the API go into a shell line: only the
/// characters Kubernetes allows in them are let through.
fn shell_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
}

/// The probes of check 9 over the nginx pods (one Ready pod per worker, by
/// name): from each worker's pod, an HTTP GET of every other worker's pod
/// (the pod routes), and `kubernetes.default` through CoreDNS; from one pod,
/// dns0's name in the lab domain. Also what makes a probe impossible.
fn networking_probes(
    pods: &Value,
    workers: &[&str],
    kubernetes_ip: Ipv4Addr,
    dns0: Option<(&str, Ipv4Addr)>,
) -> (Vec<Probe>, Vec<String>) {
    let per_worker = pod_per_worker(pods);
    let mut problems = Vec::new();
    let probes = Vec::new();
    for w in workers {
        if !per_worker.contains_key(w) {
            problems.push(format!("no Ready nginx pod on {w} to probe from"));
        }
    }
    networking_probes_from(&per_worker, workers, kubernetes_ip, dns0, probes, problems)
}

/// One Ready nginx pod per worker (the first by name): worker -> (pod, IP).
/// Only names and addresses safe on a shell line are taken.
fn pod_per_worker(pods: &Value) -> BTreeMap<&str, (&str, &str)> {
    let mut per_worker: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let ready = pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        let (Some(node), Some(name), Some(ip)) = (
            pod["spec"]["nodeName"].as_str(),
            pod["metadata"]["name"].as_str(),
            pod["status"]["podIP"].as_str(),
        ) else {
            continue;
        };
        if !ready || !shell_safe(name) || ip.parse::<Ipv4Addr>().is_err() {
            continue;
        }
        let entry = per_worker.entry(node).or_insert((name, ip));
        if name < entry.0 {
            *entry = (name, ip);
        }
    }
    per_worker
}

fn networking_probes_from(
    per_worker: &BTreeMap<&str, (&str, &str)>,
    workers: &[&str],
    kubernetes_ip: Ipv4Addr,
    dns0: Option<(&str, Ipv4Addr)>,
    mut probes: Vec<Probe>,
    problems: Vec<String>,
) -> (Vec<Probe>, Vec<String>) {
    for from in workers {
        let Some((pod, _)) = per_worker.get(from) else {
            continue;
        };
        for to in workers.iter().filter(|t| *t != from) {
            let Some((target, ip)) = per_worker.get(to) else {
                continue;
            };
            probes.push(Probe {
                label: format!("{from} -> {to}: pod {pod} to {target} at {ip}"),
                pod: pod.to_string(),
                command: format!("wget -q -O - -T 5 http://{ip}/"),
                expect: format!("pod={target} "),
            });
        }
        probes.push(Probe {
            label: format!("{from}: kubernetes.default through CoreDNS from {pod}"),
            pod: pod.to_string(),
            command: "nslookup kubernetes.default.svc.cluster.local".into(),
            expect: kubernetes_ip.to_string(),
        });
    }
    if let (Some((name, address)), Some((_, (pod, _)))) = (dns0, per_worker.iter().next()) {
        probes.push(Probe {
            label: format!("the lab domain from {pod}: {name}"),
            pod: pod.to_string(),
            command: format!("nslookup {name}"),
            expect: address.to_string(),
        });
    }
    (probes, problems)
}

use crate::provision::ADMIN_KUBECTL as KUBECTL;

/// One shell line running every probe in turn, each output framed by
/// markers `probe_verdicts` reads back.
fn probe_script(probes: &[Probe]) -> String {
    probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "echo '@@probe {i}'; {KUBECTL} -n default exec {} -- sh -c '{}' 2>&1 | tail -n 20; echo \"@@exit ${{PIPESTATUS[0]}}\"",
                p.pod, p.command
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What went wrong with each probe, from the script's output.
fn probe_verdicts(probes: &[Probe], output: &str) -> Vec<String> {
    let mut outputs: BTreeMap<usize, (String, Option<i32>)> = BTreeMap::new();
    let mut current = None;
    for line in output.lines() {
        if let Some(i) = line
            .strip_prefix("@@probe ")
            .and_then(|i| i.trim().parse().ok())
        {
            current = Some(i);
            outputs.insert(i, (String::new(), None));
        } else if let Some(code) = line.strip_prefix("@@exit ") {
            if let Some(entry) = current.and_then(|i| outputs.get_mut(&i)) {
                entry.1 = code.trim().parse().ok();
            }
            current = None;
        } else if let Some(entry) = current.and_then(|i| outputs.get_mut(&i)) {
            entry.0.push_str(line);
            entry.0.push('\n');
        }
    }
    probes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match outputs.get(&i) {
            None | Some((_, None)) => Some(format!("{}: did not run", p.label)),
            Some((out, Some(0))) if out.contains(&p.expect) => None,
            Some((out, Some(code))) => {
                let last = out
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                Some(format!(
                    "{}: `{}` exited {code} without {:?} ({})",
                    p.label,
                    p.command,
                    p.expect.trim(),
                    if last.is_empty() { "no output" } else { last }
                ))
            }
        })
        .collect()
}

async fn networking(ctx: &Ctx<'_>) -> Outcome {
    let LoadedLab { lab, topo, .. } = ctx.loaded;
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let pods = match fetch_json(
        &client,
        reqwest::Method::GET,
        format!(
            "{}/api/v1/namespaces/default/pods?labelSelector=app.kubernetes.io%2Fname%3Dnginx",
            api_base(ctx)
        ),
        None,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return Outcome::failed(e, API_HINT),
    };
    let workers: Vec<&str> = topo
        .by_role(Role::Worker)
        .map(|n| n.name.as_str())
        .collect();
    let dns0 = topo
        .by_role(Role::Dns)
        .next()
        .map(|n| (n.fqdn.as_str(), n.address));
    let (probes, mut problems) =
        networking_probes(&pods, &workers, crate::pki::first_service_ip(lab), dns0);
    let Some(controller) = topo.by_role(Role::Controller).next() else {
        return Outcome::Skipped("the lab has no controller to run kubectl on".into());
    };
    if !probes.is_empty() {
        match ctx
            .ssh(
                &controller.name,
                probe_script(&probes),
                "probe pod networking",
            )
            .await
        {
            Ok(out) => problems.extend(probe_verdicts(&probes, &out)),
            Err(e) => problems.push(format!("kubectl exec on {}: {e}", controller.name)),
        }
    }
    let crossings = probes
        .iter()
        .filter(|p| p.command.starts_with("wget"))
        .count();
    judge(
        problems,
        format!(
            "{crossings} pod-to-pod request(s) across workers answered; kubernetes.default resolves through CoreDNS from every worker's pod{}",
            if dns0.is_some() {
                ", and the lab domain too"
            } else {
                ""
            }
        ),
        "pod-to-pod failing: `ip route` on the workers (the routes phase); names failing: `kubectl -n kube-system logs deploy/coredns`",
    )
}

// ---------------------------------------------------------------------------
// 10. workload
// ---------------------------------------------------------------------------

/// The nginx Deployment is fully Ready and its Ready pods cover every worker
/// (as far as the replica count allows).
fn workload_problems(
    deployment: &Value,
    pods: &Value,
    workers: &[&str],
    replicas: u32,
) -> Vec<String> {
    let mut problems = Vec::new();
    let spec = deployment["spec"]["replicas"].as_u64().unwrap_or(0);
    let ready = deployment["status"]["readyReplicas"].as_u64().unwrap_or(0);
    if spec != u64::from(replicas) {
        problems.push(format!(
            "the Deployment asks for {spec} replicas, lab.yaml for {replicas}"
        ));
    }
    if ready < spec {
        problems.push(format!("{ready} of {spec} replicas Ready"));
    }
    let on: BTreeSet<&str> = pods["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .filter_map(|p| p["spec"]["nodeName"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let expected = workers.len().min(replicas as usize);
    let missing: Vec<&&str> = workers.iter().filter(|w| !on.contains(**w)).collect();
    if on.len() < expected {
        problems.push(format!(
            "Ready pods on {} worker(s), expected {expected}; none on {missing:?}",
            on.len()
        ));
    }
    problems
}

/// The pod names in NodePort answers (`pod=NAME node=... ip=...`).
fn answering_pods(bodies: &[String]) -> BTreeSet<String> {
    bodies
        .iter()
        .filter_map(|b| {
            b.split_whitespace()
                .find_map(|w| w.strip_prefix("pod="))
                .map(str::to_string)
        })
        .collect()
}

async fn workload(ctx: &Ctx<'_>) -> Outcome {
    let LoadedLab { lab, topo, .. } = ctx.loaded;
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let base = api_base(ctx);
    let deployment = fetch_json(
        &client,
        reqwest::Method::GET,
        format!("{base}/apis/apps/v1/namespaces/default/deployments/nginx"),
        None,
    );
    let pods = fetch_json(
        &client,
        reqwest::Method::GET,
        format!(
            "{base}/api/v1/namespaces/default/pods?labelSelector=app.kubernetes.io%2Fname%3Dnginx"
        ),
        None,
    );
    let (deployment, pods) = match tokio::join!(deployment, pods) {
        (Ok(d), Ok(p)) => (d, p),
        (Err(e), _) | (_, Err(e)) => return Outcome::failed(e, API_HINT),
    };
    let workers: Vec<&Node> = topo.by_role(Role::Worker).collect();
    let names: Vec<&str> = workers.iter().map(|n| n.name.as_str()).collect();
    let mut problems = workload_problems(&deployment, &pods, &names, lab.nginx_replicas);
    let plain = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Outcome::failed(format!("could not set up HTTP: {e}"), ""),
    };
    // Several rounds over every worker's NodePort: kube-proxy spreads them.
    let port = crate::render::NGINX_NODE_PORT;
    let mut bodies = Vec::new();
    for _ in 0..(lab.nginx_replicas.max(2) * 2) {
        for w in &workers {
            let url = format!("http://{}:{port}/", w.address);
            match request(&plain, reqwest::Method::GET, &url, None).await {
                Ok((200, body)) => bodies.push(String::from_utf8_lossy(&body).into_owned()),
                Ok((status, _)) => problems.push(format!("{url}: HTTP {status}")),
                Err(e) => problems.push(e),
            }
        }
    }
    let answered = answering_pods(&bodies);
    if lab.nginx_replicas > 1 && answered.len() < 2 {
        problems.push(format!(
            "{} requests through the NodePort were all answered by {answered:?}",
            bodies.len()
        ));
    }
    problems.dedup();
    judge(
        problems,
        format!(
            "{} replicas Ready over {} worker(s); the NodePort {port} answers on every worker, from {} different pods",
            lab.nginx_replicas,
            workers.len(),
            answered.len()
        ),
        "`kubectl describe deployment nginx` and `kubectl get pods -o wide` say why",
    )
}

// ---------------------------------------------------------------------------
// 11. certificates
// ---------------------------------------------------------------------------

const EXPIRY_WARNING_DAYS: i64 = 30;

/// Expired is Failed, within 30 days is Warned.
fn judge_expiry(now: time::OffsetDateTime, certs: &[(String, time::OffsetDateTime)]) -> Outcome {
    let expired: Vec<&str> = certs
        .iter()
        .filter(|(_, at)| *at <= now)
        .map(|(n, _)| n.as_str())
        .collect();
    if !expired.is_empty() {
        return Outcome::failed(
            format!("expired: {}", expired.join(", ")),
            "delete the expired files from .kubelab/pki and run `kubelab lab up` again: it signs new ones and re-provisions what uses them",
        );
    }
    let soon: Vec<String> = certs
        .iter()
        .filter(|(_, at)| *at - now < time::Duration::days(EXPIRY_WARNING_DAYS))
        .map(|(n, at)| format!("{n} ({} days)", (*at - now).whole_days()))
        .collect();
    if !soon.is_empty() {
        return Outcome::Warned(format!(
            "expiring within {EXPIRY_WARNING_DAYS} days: {}",
            soon.join(", ")
        ));
    }
    match certs.iter().min_by_key(|(_, at)| *at) {
        Some((name, at)) => Outcome::Passed(format!(
            "{} certificates; the first to expire is {name}, in {} days",
            certs.len(),
            (*at - now).whole_days()
        )),
        None => Outcome::failed("no certificates", "`kubelab lab render` signs them"),
    }
}

fn certificates(ctx: &Ctx) -> Outcome {
    let LoadedLab { lab, topo, .. } = ctx.loaded;
    let mut names = vec![
        "ca".to_string(),
        "etcd-ca".to_string(),
        "front-proxy-ca".to_string(),
    ];
    names.extend(crate::pki::specs(lab, topo).into_iter().map(|s| s.name));
    let mut certs = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let path = ctx.pki_dir.join(format!("{name}.pem"));
        let parsed = fs_err::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| crate::pki::inspect(&pem).map_err(|e| e.to_string()))
            .and_then(|info| {
                time::OffsetDateTime::parse(
                    &info.not_after,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| format!("{}: {e}", path.display()))
            });
        match parsed {
            Ok(at) => certs.push((name, at)),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return judge(
            problems,
            String::new(),
            "`kubelab lab render` signs what is missing",
        );
    }
    judge_expiry(time::OffsetDateTime::now_utc(), &certs)
}

// ---------------------------------------------------------------------------
// 15. api-failover, 16. etcd-member-down (disruptive: each restores itself)
// ---------------------------------------------------------------------------

const LEASES: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

/// What the API failover saw wrong: with `stopped`'s apiserver down, the
/// API must answer through the VIP, and a lease held on `stopped` (its
/// controller-manager and scheduler talk to their own apiserver) must move
/// to another controller; a lease held elsewhere must stay held.
fn api_failover_problems(
    stopped: &str,
    vip_answered: bool,
    before: &[(&str, String)],
    after: &[(&str, std::result::Result<String, String>)],
) -> Vec<String> {
    let mut problems = Vec::new();
    if !vip_answered {
        problems.push(format!(
            "with kube-apiserver stopped on {stopped}, /readyz through the VIP did not answer within {} s",
            API_FAILOVER_WAIT.as_secs()
        ));
    }
    for (component, was) in before {
        match after.iter().find(|(c, _)| c == component).map(|(_, h)| h) {
            Some(Ok(now)) if was == stopped && now == stopped => problems.push(format!(
                "the {component} lease stayed on {stopped} within {} s",
                API_FAILOVER_WAIT.as_secs()
            )),
            Some(Ok(_)) => {}
            Some(Err(e)) => problems.push(format!("{component} lease: {e}")),
            None => problems.push(format!("{component} lease was not read again")),
        }
    }
    problems
}

const API_FAILOVER_WAIT: Duration = Duration::from_secs(45);

async fn lease_holders(
    client: &reqwest::Client,
    base: &str,
    controllers: &[&str],
) -> Vec<(&'static str, std::result::Result<String, String>)> {
    let mut out = Vec::new();
    for component in LEASES {
        let url =
            format!("{base}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{component}");
        let holder = match fetch_json(client, reqwest::Method::GET, &url, None).await {
            Ok(lease) => lease_holder(&lease, controllers),
            Err(e) => Err(e),
        };
        out.push((component, holder));
    }
    out
}

async fn api_failover(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let admin = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let base = api_base(ctx);
    let controllers: Vec<&Node> = topo.by_role(Role::Controller).collect();
    let names: Vec<&str> = controllers.iter().map(|n| n.name.as_str()).collect();
    let mut before = Vec::new();
    for (component, holder) in lease_holders(&admin, &base, &names).await {
        match holder {
            Ok(h) => before.push((component, h)),
            Err(e) => return Outcome::failed(format!("{component} lease: {e}"), API_HINT),
        }
    }
    // Stop the apiserver under the controller-manager leader, so the lease
    // has to move.
    let stopped = before[0].1.clone();
    let Some(node) = controllers.iter().find(|n| n.name == stopped) else {
        return Outcome::failed(format!("{stopped} is not a controller"), API_HINT);
    };
    if let Err(e) = ctx
        .ssh(
            &stopped,
            "sudo systemctl stop kube-apiserver",
            "stop kube-apiserver",
        )
        .await
    {
        return Outcome::failed(format!("stopping kube-apiserver on {stopped}: {e}"), "");
    }
    let vip_answered = poll(API_FAILOVER_WAIT, || async {
        readyz(&admin, &base).await.is_ok()
    })
    .await
    .is_some();
    let mut after = lease_holders(&admin, &base, &names).await;
    let moved = |after: &[(&str, std::result::Result<String, String>)]| {
        before.iter().all(|(c, was)| {
            was != &stopped
                || after
                    .iter()
                    .any(|(a, now)| a == c && now.as_ref().is_ok_and(|n| n != &stopped))
        })
    };
    let started = Instant::now();
    while !moved(&after) && started.elapsed() < API_FAILOVER_WAIT {
        tokio::time::sleep(Duration::from_secs(1)).await;
        after = lease_holders(&admin, &base, &names).await;
    }
    let mut problems = api_failover_problems(&stopped, vip_answered, &before, &after);
    // Restore whatever happened, and wait until it serves again.
    let own = format!("https://{}:{}", node.address, topo.api.port);
    match ctx
        .ssh(
            &stopped,
            "sudo systemctl start kube-apiserver",
            "start kube-apiserver",
        )
        .await
    {
        Ok(_) => {
            let back = poll(RETURN_WAIT, || async { readyz(&admin, &own).await.is_ok() }).await;
            if back.is_none() {
                problems.push(format!(
                    "kube-apiserver on {stopped} did not serve /readyz again within {} s",
                    RETURN_WAIT.as_secs()
                ));
            }
        }
        Err(e) => problems.push(format!("starting kube-apiserver on {stopped} again: {e}")),
    }
    let now: Vec<String> = after
        .iter()
        .filter_map(|(c, h)| h.as_ref().ok().map(|h| format!("{c} on {h}")))
        .collect();
    judge(
        problems,
        format!(
            "with kube-apiserver stopped on {stopped} the API answered through the VIP and the leases moved ({}); it serves again",
            now.join(", ")
        ),
        &format!(
            "if it is still stopped: `kubelab lab ssh {stopped} -- sudo systemctl start kube-apiserver`; haproxy's health check must drop it (the api check shows the backends)"
        ),
    )
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A v3 gateway `kv/range` answer holds `key` with `value`.
fn range_holds(body: &Value, key: &str, value: &str) -> bool {
    body["kvs"].as_array().is_some_and(|kvs| {
        kvs.iter()
            .any(|kv| kv["key"] == b64(key).as_str() && kv["value"] == b64(value).as_str())
    })
}

async fn etcd_member_down(ctx: &Ctx<'_>) -> Outcome {
    let client = match etcd_client(&ctx.pki_dir) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the etcd certificates"),
    };
    let members: Vec<&Node> = ctx.loaded.topo.by_role(Role::Etcd).collect();
    let Some((stopped, rest)) = members.split_last() else {
        return Outcome::Skipped("no etcd members".into());
    };
    let [writer, reader, ..] = rest else {
        return Outcome::Skipped("fewer than 3 etcd members".into());
    };
    let url = |n: &Node, path: &str| format!("https://{}:2379/v3/{path}", n.address);
    let mut nonce = [0u8; 8];
    let _ = getrandom::fill(&mut nonce);
    let key = format!(
        "/kubelab-verify/{}",
        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let value = "written with a member down";
    if let Err(e) = ctx
        .ssh(&stopped.name, "sudo systemctl stop etcd", "stop etcd")
        .await
    {
        return Outcome::failed(format!("stopping etcd on {}: {e}", stopped.name), "");
    }
    let mut problems = Vec::new();
    let put = serde_json::json!({"key": b64(&key), "value": b64(value)}).to_string();
    match fetch_json(
        &client,
        reqwest::Method::POST,
        url(writer, "kv/put"),
        Some(put),
    )
    .await
    {
        Ok(_) => {
            let range = serde_json::json!({"key": b64(&key)}).to_string();
            match fetch_json(
                &client,
                reqwest::Method::POST,
                url(reader, "kv/range"),
                Some(range),
            )
            .await
            {
                Ok(body) if range_holds(&body, &key, value) => {}
                Ok(_) => problems.push(format!(
                    "{} did not return the key {} just written through {}",
                    reader.name, key, writer.name
                )),
                Err(e) => problems.push(e),
            }
            let delete = serde_json::json!({"key": b64(&key)}).to_string();
            if let Err(e) = fetch_json(
                &client,
                reqwest::Method::POST,
                url(writer, "kv/deleterange"),
                Some(delete),
            )
            .await
            {
                problems.push(format!("deleting {key}: {e}"));
            }
        }
        Err(e) => problems.push(format!(
            "with {} stopped, a write through {} failed: {e}",
            stopped.name, writer.name
        )),
    }
    // Restore it, and wait until it is healthy again.
    match ctx
        .ssh(&stopped.name, "sudo systemctl start etcd", "start etcd")
        .await
    {
        Ok(_) => {
            let health = format!("https://{}:2379/health", stopped.address);
            let back = poll(RETURN_WAIT, || async {
                matches!(
                    request(&client, reqwest::Method::GET, &health, None).await,
                    Ok((200, _))
                )
            })
            .await;
            if back.is_none() {
                problems.push(format!(
                    "etcd on {} was not healthy again within {} s",
                    stopped.name,
                    RETURN_WAIT.as_secs()
                ));
            }
        }
        Err(e) => problems.push(format!("starting etcd on {} again: {e}", stopped.name)),
    }
    judge(
        problems,
        format!(
            "with etcd stopped on {}, a key written through {} was read back through {}; {} is healthy again",
            stopped.name, writer.name, reader.name, stopped.name
        ),
        &format!(
            "if it is still stopped: `kubelab lab ssh {} -- sudo systemctl start etcd`; the etcd check lists the members",
            stopped.name
        ),
    )
}

// ---------------------------------------------------------------------------
// 12-14. logs and exec, port-forward, Services (KTHW's smoke test)
// ---------------------------------------------------------------------------

/// The Ready nginx pods, one per worker, from the API; or why not.
async fn nginx_pods(ctx: &Ctx<'_>, client: &reqwest::Client) -> std::result::Result<Value, String> {
    fetch_json(
        client,
        reqwest::Method::GET,
        format!(
            "{}/api/v1/namespaces/default/pods?labelSelector=app.kubernetes.io%2Fname%3Dnginx",
            api_base(ctx)
        ),
        None,
    )
    .await
}

/// Runs `probes` with `kubectl exec` on the first controller; their problems.
async fn run_probes(ctx: &Ctx<'_>, probes: &[Probe], purpose: &str) -> Vec<String> {
    let Some(controller) = ctx.loaded.topo.by_role(Role::Controller).next() else {
        return vec!["the lab has no controller to run kubectl on".into()];
    };
    if probes.is_empty() {
        return Vec::new();
    }
    match ctx
        .ssh(&controller.name, probe_script(probes), purpose)
        .await
    {
        Ok(out) => probe_verdicts(probes, &out),
        Err(e) => vec![format!("kubectl exec on {}: {e}", controller.name)],
    }
}

/// A pod's log as the API returns it (through the kubelet): it must answer
/// 200 with something in it.
fn log_verdict(pod: &str, status: u16, body: &[u8]) -> Option<String> {
    match status {
        200 if !String::from_utf8_lossy(body).trim().is_empty() => None,
        200 => Some(format!("the log of {pod} came back empty")),
        _ => Some(format!(
            "GET the log of {pod}: HTTP {status} ({})",
            excerpt(body)
        )),
    }
}

/// `kubectl exec` into each worker's pod: its hostname is its name.
fn exec_probes(per_worker: &BTreeMap<&str, (&str, &str)>) -> Vec<Probe> {
    per_worker
        .iter()
        .map(|(worker, (pod, _))| Probe {
            label: format!("exec in {pod} on {worker}"),
            pod: pod.to_string(),
            command: "cat /etc/hostname".into(),
            expect: pod.to_string(),
        })
        .collect()
}

async fn logs_exec(ctx: &Ctx<'_>) -> Outcome {
    let workers: Vec<&str> = ctx
        .loaded
        .topo
        .by_role(Role::Worker)
        .map(|n| n.name.as_str())
        .collect();
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let pods = match nginx_pods(ctx, &client).await {
        Ok(p) => p,
        Err(e) => return Outcome::failed(e, API_HINT),
    };
    let per_worker = pod_per_worker(&pods);
    let mut problems: Vec<String> = workers
        .iter()
        .filter(|w| !per_worker.contains_key(*w))
        .map(|w| format!("no Ready nginx pod on {w}"))
        .collect();
    for (_, (pod, _)) in per_worker.iter() {
        let url = format!(
            "{}/api/v1/namespaces/default/pods/{pod}/log?tailLines=20",
            api_base(ctx)
        );
        match request(&client, reqwest::Method::GET, &url, None).await {
            Ok((status, body)) => problems.extend(log_verdict(pod, status, &body)),
            Err(e) => problems.push(e),
        }
    }
    problems.extend(
        run_probes(
            ctx,
            &exec_probes(&per_worker),
            "kubectl exec into the nginx pods",
        )
        .await,
    );
    judge(
        problems,
        format!(
            "the API served the logs of and ran `kubectl exec` in a pod on each of {} worker(s) (apiserver -> kubelet authentication and RBAC)",
            per_worker.len()
        ),
        "403: the addons phase binds system:kube-apiserver-to-kubelet; a TLS error: the kubelet's serving certificate and --kubelet-certificate-authority",
    )
}

/// The shell line run on a controller: `kubectl port-forward` to `pod` on
/// loopback, polled until it answers (20 s at most), then stopped. Its
/// output ends with `@@answer` and the body, or `@@log` and kubectl's.
fn port_forward_script(pod: &str, port: u16) -> String {
    format!(
        "{KUBECTL} -n default port-forward --address 127.0.0.1 pod/{pod} {port}:80 >/tmp/kubelab-port-forward.log 2>&1 & pf=$!; \
         body=; for i in $(seq 1 100); do body=$(curl -fsS -m 2 http://127.0.0.1:{port}/ 2>/dev/null) && break; body=; sleep 0.2; done; \
         kill $pf 2>/dev/null; wait $pf 2>/dev/null; \
         if [ -n \"$body\" ]; then echo @@answer; echo \"$body\"; else echo @@log; tail -n 5 /tmp/kubelab-port-forward.log; fi"
    )
}

fn port_forward_verdict(pod: &str, out: &str) -> Option<String> {
    match out.split_once("@@answer") {
        Some((_, body)) if body.contains(&format!("pod={pod} ")) => None,
        Some((_, body)) => Some(format!(
            "port-forward to {pod} answered, but not as {pod}: {}",
            body.trim()
        )),
        None => {
            let log = out.split_once("@@log").map_or(out, |(_, l)| l).trim();
            Some(format!(
                "port-forward to {pod} never answered ({})",
                if log.is_empty() { "no output" } else { log }
            ))
        }
    }
}

async fn port_forward(ctx: &Ctx<'_>) -> Outcome {
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let pods = match nginx_pods(ctx, &client).await {
        Ok(p) => p,
        Err(e) => return Outcome::failed(e, API_HINT),
    };
    let Some((_, (pod, _))) = pod_per_worker(&pods).into_iter().next() else {
        return Outcome::failed(
            "no Ready nginx pod to forward to",
            "the workload check says why",
        );
    };
    let Some(controller) = ctx.loaded.topo.by_role(Role::Controller).next() else {
        return Outcome::Skipped("the lab has no controller to run kubectl on".into());
    };
    const PORT: u16 = 18080;
    let problems = match ctx
        .ssh(
            &controller.name,
            port_forward_script(pod, PORT),
            "kubectl port-forward",
        )
        .await
    {
        Ok(out) => port_forward_verdict(pod, &out).into_iter().collect(),
        Err(e) => vec![format!("kubectl port-forward on {}: {e}", controller.name)],
    };
    judge(
        problems,
        format!(
            "`kubectl port-forward pod/{pod}` on {} answered on 127.0.0.1:{PORT} as {pod}",
            controller.name
        ),
        "port-forward goes apiserver -> kubelet -> containerd: the logs-exec check, then `journalctl -u containerd` on the pod's worker",
    )
}

/// Probes of the nginx Service from each worker's pod: by ClusterIP, by
/// name through CoreDNS, and the hairpin case: the same pod keeps asking the
/// Service until its own endpoint is chosen (each try picks one of the
/// replicas), which must answer too.
fn service_probes(per_worker: &BTreeMap<&str, (&str, &str)>, cluster_ip: Ipv4Addr) -> Vec<Probe> {
    const NAME: &str = "nginx.default.svc.cluster.local";
    let mut probes = Vec::new();
    for (worker, (pod, _)) in per_worker {
        probes.push(Probe {
            label: format!("{worker}: {pod} to the nginx Service at {cluster_ip}"),
            pod: pod.to_string(),
            command: format!("wget -q -O - -T 5 http://{cluster_ip}/"),
            expect: "pod=nginx".into(),
        });
        probes.push(Probe {
            label: format!("{worker}: {pod} to {NAME}"),
            pod: pod.to_string(),
            command: format!("wget -q -O - -T 5 http://{NAME}/"),
            expect: "pod=nginx".into(),
        });
        probes.push(Probe {
            label: format!("{worker}: {pod} to itself through the Service (hairpin)"),
            pod: pod.to_string(),
            command: format!(
                "i=0; while [ $i -lt 40 ]; do wget -q -O - -T 3 http://{cluster_ip}/ 2>&1 | grep -q \"pod={pod} \" && echo hairpin-answered && exit 0; i=$((i+1)); done; echo never answered by {pod}; exit 1"
            ),
            expect: "hairpin-answered".into(),
        });
    }
    probes
}

async fn services(ctx: &Ctx<'_>) -> Outcome {
    let workers: Vec<&str> = ctx
        .loaded
        .topo
        .by_role(Role::Worker)
        .map(|n| n.name.as_str())
        .collect();
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let service = fetch_json(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/namespaces/default/services/nginx", api_base(ctx)),
        None,
    );
    let (service, pods) = match tokio::join!(service, nginx_pods(ctx, &client)) {
        (Ok(s), Ok(p)) => (s, p),
        (Err(e), _) | (_, Err(e)) => return Outcome::failed(e, API_HINT),
    };
    let Some(cluster_ip) = service["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return Outcome::failed(
            "the nginx Service has no IPv4 clusterIP",
            "`kubectl get svc nginx -o yaml`",
        );
    };
    let per_worker = pod_per_worker(&pods);
    let mut problems: Vec<String> = workers
        .iter()
        .filter(|w| !per_worker.contains_key(*w))
        .map(|w| format!("no Ready nginx pod on {w} to probe from"))
        .collect();
    problems.extend(
        run_probes(
            ctx,
            &service_probes(&per_worker, cluster_ip),
            "probe the nginx Service",
        )
        .await,
    );
    judge(
        problems,
        format!(
            "from a pod on each of {} worker(s) the nginx Service answers at {cluster_ip} and by name, and a pod reaches itself through it (hairpin)",
            per_worker.len()
        ),
        "by IP failing: kube-proxy on the pod's worker; by name only: CoreDNS; hairpin only: `hairpinMode` in /etc/cni/net.d/10-bridge.conflist",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/api")
            .join(name);
        fs_err::read_to_string(path).unwrap()
    }

    /// One canned answer: `path` ending in `*` matches by prefix.
    struct Route {
        method: &'static str,
        path: &'static str,
        status: u16,
        body: String,
    }

    fn route(method: &'static str, path: &'static str, status: u16, body: String) -> Route {
        Route {
            method,
            path,
            status,
            body,
        }
    }

    /// An HTTPS server on 127.0.0.1 (a port of its own) with a certificate
    /// from a fresh test CA, answering `routes` (404 otherwise). Returns its
    /// base URL, a pki dir holding the CA as `ca.pem`, and the requests seen.
    struct Server {
        base: String,
        pki: tempfile::TempDir,
        seen: Arc<Mutex<Vec<String>>>,
    }

    async fn serve(routes: Vec<Route>) -> Server {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let pki = tempfile::tempdir().unwrap();
        fs_err::write(pki.path().join("ca.pem"), ca_cert.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let routes = Arc::new(routes);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, routes, log) = (acceptor.clone(), routes.clone(), log.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let mut words = head.split_whitespace();
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    log.lock().unwrap().push(format!("{method} {path}"));
                    let found = routes.iter().find(|r| {
                        r.method == method
                            && match r.path.strip_suffix('*') {
                                Some(prefix) => path.starts_with(prefix),
                                None => r.path == path,
                            }
                    });
                    let (status, body) = match found {
                        Some(r) => (r.status, r.body.clone()),
                        None => (404, "{\"kind\":\"Status\",\"code\":404}".to_string()),
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Server { base, pki, seen }
    }

    fn client(server: &Server) -> reqwest::Client {
        tls_client(server.pki.path(), "ca", None, &[]).unwrap()
    }

    fn worker0() -> Vec<(&'static str, Option<Ipv4Net>)> {
        vec![("worker0", Some("10.200.0.0/24".parse().unwrap()))]
    }

    #[tokio::test]
    async fn a_ready_node_list_passes_and_a_not_ready_one_says_why() {
        let server = serve(vec![
            route("GET", "/api/v1/nodes", 200, fixture("nodes-ready.json")),
            route(
                "GET",
                "/not-ready/api/v1/nodes",
                200,
                fixture("nodes-notready.json"),
            ),
        ])
        .await;
        let c = client(&server);
        let ready = fetch_json(
            &c,
            reqwest::Method::GET,
            format!("{}/api/v1/nodes", server.base),
            None,
        )
        .await
        .unwrap();
        assert_eq!(node_problems(&ready, &worker0()), Vec::<String>::new());
        // The plan's CIDR differs from the node's: reported.
        let other = [("worker0", Some("10.200.7.0/24".parse().unwrap()))];
        assert_eq!(
            node_problems(&ready, &other),
            ["worker0 has pod CIDR 10.200.0.0/24, the plan gives 10.200.7.0/24"]
        );
        // A worker the API does not know.
        let missing = [("worker1", Some("10.200.1.0/24".parse().unwrap()))];
        assert_eq!(
            node_problems(&ready, &missing),
            ["worker1 is not registered"]
        );

        let not_ready = fetch_json(
            &c,
            reqwest::Method::GET,
            format!("{}/not-ready/api/v1/nodes", server.base),
            None,
        )
        .await
        .unwrap();
        let problems = node_problems(&not_ready, &worker0());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "worker0 is not Ready (KubeletNotReady: container runtime network not ready"
            ),
            "{problems:?}"
        );
    }

    #[tokio::test]
    async fn readyz_passes_on_200_and_names_the_failing_checks_otherwise() {
        let server = serve(vec![
            route("GET", "/readyz?verbose", 200, fixture("readyz-healthy.txt")),
            route(
                "GET",
                "/sick/readyz?verbose",
                500,
                fixture("readyz-unhealthy.txt"),
            ),
        ])
        .await;
        let c = client(&server);
        readyz(&c, &server.base).await.unwrap();
        let err = readyz(&c, &format!("{}/sick", server.base))
            .await
            .unwrap_err();
        assert!(
            err.ends_with("HTTP 500, failing: etcd failed: reason withheld, etcd-readiness failed: reason withheld, poststarthook/rbac/bootstrap-roles failed: reason withheld"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_api_that_does_not_listen_is_an_error_naming_the_address() {
        // Bind, learn the port, close: nothing listens there any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = serve(vec![]).await;
        let err = readyz(&client(&server), &format!("https://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{port}/readyz")), "{err}");
        assert!(err.to_lowercase().contains("connect"), "{err}");
    }

    #[tokio::test]
    async fn a_server_outside_the_lab_ca_is_refused() {
        let server = serve(vec![route("GET", "/readyz?verbose", 200, "ok".into())]).await;
        let other = serve(vec![]).await;
        // Trusting another CA: the TLS handshake fails, no answer is read.
        assert!(readyz(&client(&other), &server.base).await.is_err());
        assert!(server.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_nginx_deployment_is_judged_from_its_status_and_pods() {
        let server = serve(vec![
            route(
                "GET",
                "/apis/apps/v1/namespaces/default/deployments/nginx",
                200,
                fixture("deployment-nginx.json"),
            ),
            route(
                "GET",
                "/api/v1/namespaces/default/pods*",
                200,
                fixture("pods-nginx.json"),
            ),
        ])
        .await;
        let c = client(&server);
        let d = fetch_json(
            &c,
            reqwest::Method::GET,
            format!(
                "{}/apis/apps/v1/namespaces/default/deployments/nginx",
                server.base
            ),
            None,
        )
        .await
        .unwrap();
        let p = fetch_json(
            &c,
            reqwest::Method::GET,
            format!(
                "{}/api/v1/namespaces/default/pods?labelSelector=x",
                server.base
            ),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            workload_problems(&d, &p, &["worker0", "worker1"], 3),
            Vec::<String>::new()
        );
        // A third worker with no pod on it.
        assert_eq!(
            workload_problems(&d, &p, &["worker0", "worker1", "worker2"], 3),
            ["Ready pods on 2 worker(s), expected 3; none on [\"worker2\"]"]
        );
        // Two of three replicas Ready.
        let mut partly = d.clone();
        partly["status"]["readyReplicas"] = 2.into();
        assert_eq!(
            workload_problems(&partly, &p, &["worker0", "worker1"], 3),
            ["2 of 3 replicas Ready"]
        );
        assert_eq!(
            answering_pods(&[
                "pod=nginx-a node=worker0 ip=10.200.0.4\n".into(),
                "pod=nginx-b node=worker1 ip=10.200.1.3\n".into(),
                "pod=nginx-a node=worker0 ip=10.200.0.4\n".into(),
            ])
            .len(),
            2
        );
    }

    fn secret_routes(stored: &[u8]) -> Vec<Route> {
        use base64::Engine;
        let value = base64::engine::general_purpose::STANDARD.encode(stored);
        vec![
            route(
                "POST",
                "/api/v1/namespaces/default/secrets",
                201,
                r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"kubelab-verify-x","namespace":"default"},"type":"Opaque"}"#.into(),
            ),
            route(
                "POST",
                "/v3/kv/range",
                200,
                format!(
                    r#"{{"header":{{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"912","raft_term":"2"}},"kvs":[{{"key":"L3JlZ2lzdHJ5","create_revision":"912","mod_revision":"912","version":"1","value":"{value}"}}],"count":"1"}}"#
                ),
            ),
            route(
                "DELETE",
                "/api/v1/namespaces/default/secrets/kubelab-verify-*",
                200,
                r#"{"kind":"Status","apiVersion":"v1","status":"Success"}"#.into(),
            ),
        ]
    }

    #[tokio::test]
    async fn a_secret_stored_encrypted_passes_and_a_plain_one_fails_and_both_are_deleted() {
        let encrypted = serve(secret_routes(b"k8s:enc:aescbc:v1:key1:\x8a\x01\x02\x03")).await;
        let c = client(&encrypted);
        let outcome = secret_at_rest(&c, &encrypted.base, &c, &encrypted.base).await;
        assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
        let seen = encrypted.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[2].starts_with("DELETE /api/v1/namespaces/default/secrets/kubelab-verify-"));

        let plain = serve(secret_routes(b"k8s\x00\n\x0c\n\x02v1\x12\x06Secret")).await;
        let c = client(&plain);
        let outcome = secret_at_rest(&c, &plain.base, &c, &plain.base).await;
        let Outcome::Failed { why, .. } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(why.contains("not encrypted at rest"), "{why}");
        assert!(
            !why.contains("Secret\u{12}"),
            "the raw value is never printed: {why}"
        );
        assert!(plain.seen.lock().unwrap()[2].starts_with("DELETE "));
    }

    fn etcd_json(member_id: &str, leader: &str) -> (Value, Value, Value) {
        let members = serde_json::json!({
            "header": {"cluster_id": "14841639068965178418", "member_id": member_id, "raft_term": "2"},
            "members": [
                {"ID": "10276657743932975437", "name": "etcd0", "peerURLs": ["https://192.168.56.10:2380"], "clientURLs": ["https://192.168.56.10:2379"]},
                {"ID": "4503731564478373227", "name": "etcd1", "peerURLs": ["https://192.168.56.11:2380"], "clientURLs": ["https://192.168.56.11:2379"]},
                {"ID": "13258124508946512354", "name": "etcd2", "peerURLs": ["https://192.168.56.12:2380"], "clientURLs": ["https://192.168.56.12:2379"]}
            ]
        });
        let status = serde_json::json!({
            "header": {"cluster_id": "14841639068965178418", "member_id": member_id, "revision": "1", "raft_term": "2"},
            "version": "3.4.23", "dbSize": "20480", "leader": leader, "raftIndex": "9", "raftTerm": "2"
        });
        (
            serde_json::json!({"health": "true", "reason": ""}),
            members,
            status,
        )
    }

    const EXPECTED_ETCD: [(&str, Ipv4Addr); 3] = [
        ("etcd0", Ipv4Addr::new(192, 168, 56, 10)),
        ("etcd1", Ipv4Addr::new(192, 168, 56, 11)),
        ("etcd2", Ipv4Addr::new(192, 168, 56, 12)),
    ];

    fn views(leaders: [&str; 3]) -> Vec<(&'static str, EtcdView)> {
        let ids = [
            "10276657743932975437",
            "4503731564478373227",
            "13258124508946512354",
        ];
        ["etcd0", "etcd1", "etcd2"]
            .into_iter()
            .zip(ids)
            .zip(leaders)
            .map(|((name, id), leader)| {
                let (health, members, status) = etcd_json(id, leader);
                (
                    name,
                    EtcdView {
                        health: Ok(health),
                        members: Ok(members),
                        status: Ok(status),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn etcd_passes_with_one_agreed_leader_and_fails_otherwise() {
        let leader = "4503731564478373227";
        let outcome = judge_etcd(&EXPECTED_ETCD, &views([leader; 3]));
        assert_eq!(
            outcome,
            Outcome::Passed("3 members healthy over mutual TLS; member list = etcd0, etcd1, etcd2; one leader: etcd1".into())
        );
        let split = judge_etcd(
            &EXPECTED_ETCD,
            &views([leader, leader, "10276657743932975437"]),
        );
        assert!(
            split.detail().contains("disagree on the leader"),
            "{split:?}"
        );
        let none = judge_etcd(&EXPECTED_ETCD, &views(["0"; 3]));
        assert!(none.detail().contains("etcd0 knows no leader"), "{none:?}");
        let mut down = views([leader; 3]);
        down[2].1.health = Err("https://192.168.56.12:2379/health: connection refused".into());
        let down = judge_etcd(&EXPECTED_ETCD, &down);
        assert!(down.detail().starts_with("etcd2 /health: "), "{down:?}");
        // A fourth member nobody planned.
        let mut extra = views([leader; 3]);
        if let Ok(m) = &mut extra[0].1.members {
            m["members"].as_array_mut().unwrap().push(
                serde_json::json!({"ID": "1", "name": "etcd9", "clientURLs": ["https://192.168.56.19:2379"]}),
            );
        }
        assert!(matches!(
            judge_etcd(&EXPECTED_ETCD, &extra),
            Outcome::Failed { .. }
        ));
    }

    #[tokio::test]
    async fn etcd_is_asked_through_its_json_gateway() {
        let (health, members, status) = etcd_json("4503731564478373227", "4503731564478373227");
        let server = serve(vec![
            route("GET", "/health", 200, health.to_string()),
            route("POST", "/v3/cluster/member/list", 200, members.to_string()),
            route("POST", "/v3/maintenance/status", 200, status.to_string()),
        ])
        .await;
        let view = etcd_view(&client(&server), server.base.clone()).await;
        assert_eq!(view.health.unwrap()["health"], "true");
        assert_eq!(
            view.members.unwrap()["members"].as_array().unwrap().len(),
            3
        );
        assert_eq!(view.status.unwrap()["leader"], "4503731564478373227");
    }

    #[test]
    fn haproxy_statistics_show_which_controllers_are_down() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
kube-apiserver,FRONTEND,,,0,0,4096,0,0,0,0,0,0,,,,,OPEN,\n\
kube-apiserver,controller0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1\n\
kube-apiserver,controller1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1\n\
kube-apiserver,controller2,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1\n\
kube-apiserver,BACKEND,0,0,0,0,410,0,0,0,0,0,,0,0,0,0,UP,2\n\
stats,FRONTEND,,,1,1,4096,1,0,0,0,0,0,,,,,OPEN,\n";
        assert_eq!(
            haproxy_down(
                csv,
                &["controller0", "controller1", "controller2", "controller3"]
            ),
            ["controller1 is DOWN", "controller3 is not in the backend"]
        );
        assert!(!haproxy_down("garbage", &["controller0"]).is_empty());
    }

    #[test]
    fn lease_holders_must_be_controllers() {
        let lease = serde_json::json!({"kind": "Lease", "spec": {"holderIdentity": "controller1_6f1f8c0e-5a8b-4c4e-9d7e-0e1c2b3a4d5f", "leaseDurationSeconds": 15}});
        assert_eq!(
            lease_holder(&lease, &["controller0", "controller1"]).unwrap(),
            "controller1"
        );
        assert!(lease_holder(&lease, &["controller0"]).is_err());
        assert!(lease_holder(&serde_json::json!({"spec": {}}), &["controller0"]).is_err());
    }

    #[test]
    fn expiry_fails_when_past_and_warns_within_30_days() {
        let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000);
        let cert = |name: &str, days: i64| (name.to_string(), now + time::Duration::days(days));
        assert!(matches!(
            judge_expiry(now, &[cert("ca", 3000), cert("admin", 364)]),
            Outcome::Passed(d) if d == "2 certificates; the first to expire is admin, in 364 days"
        ));
        assert_eq!(
            judge_expiry(now, &[cert("ca", 3000), cert("admin", 12)]),
            Outcome::Warned("expiring within 30 days: admin (12 days)".into())
        );
        assert!(matches!(
            judge_expiry(now, &[cert("ca", 3000), cert("admin", -1), cert("etcd0-etcd-peer", 5)]),
            Outcome::Failed { why, .. } if why == "expired: admin"
        ));
    }

    #[test]
    fn the_hosts_block_is_read_back_whatever_the_line_ends() {
        let block = "# BEGIN kubelab lab\n192.168.56.2 dns0.lan dns0\n# END kubelab lab\n";
        let text = format!("127.0.0.1 localhost\n{block}::1 localhost\n");
        assert_eq!(lab_block(&text, "lab").unwrap(), block);
        assert_eq!(
            lab_block(&text.replace('\n', "\r\n"), "lab").unwrap(),
            block
        );
        assert_eq!(lab_block(block.trim_end(), "lab").unwrap(), block);
        assert!(lab_block(&text, "other").is_none());
        assert!(lab_block("# BEGIN kubelab lab\n1.2.3.4 x\n", "lab").is_none());
    }

    #[test]
    fn getent_output_is_compared_with_the_plan() {
        let lab = crate::config::builtin();
        let topo = crate::topology::Topology::new(&lab);
        let nodes: Vec<&Node> = ["etcd0", "etcd1", "worker0"]
            .iter()
            .filter_map(|n| topo.node(n))
            .collect();
        let out = "192.168.56.10   etcd0.lan\n192.168.56.99   etcd1.lan\n- worker0.lan\n";
        assert_eq!(
            resolution_problems(out, nodes.into_iter()),
            [
                "etcd1.lan resolves to 192.168.56.99, not 192.168.56.11",
                "worker0.lan does not resolve"
            ]
        );
    }

    #[test]
    fn the_vip_is_found_in_ip_addr_output() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n2: host0    inet 192.168.56.51/24 brd 192.168.56.255 scope global host0\n2: host0    inet 192.168.56.50/32 scope global host0\n";
        assert!(holds(out, Ipv4Addr::new(192, 168, 56, 50)));
        assert!(!holds(out, Ipv4Addr::new(192, 168, 56, 5)));
    }

    #[test]
    fn only_the_failover_is_disruptive_and_every_name_is_distinct() {
        let names: BTreeSet<&str> = CheckId::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), CheckId::ALL.len());
        let disruptive: Vec<&str> = CheckId::ALL
            .iter()
            .filter(|c| c.disruptive())
            .map(|c| c.name())
            .collect();
        assert_eq!(
            disruptive,
            ["lb-failover", "api-failover", "etcd-member-down"]
        );
    }

    #[test]
    fn networking_probes_cross_every_pair_of_workers_and_ask_coredns() {
        let pods: Value = serde_json::from_str(&fixture("pods-nginx.json")).unwrap();
        let kubernetes: Ipv4Addr = "10.32.0.1".parse().unwrap();
        let dns0 = Some(("dns0.lan", "192.168.56.2".parse().unwrap()));
        let (probes, problems) =
            networking_probes(&pods, &["worker0", "worker1"], kubernetes, dns0);
        assert!(problems.is_empty(), "{problems:?}");
        let shown: Vec<(&str, &str, &str)> = probes
            .iter()
            .map(|p| (p.pod.as_str(), p.command.as_str(), p.expect.as_str()))
            .collect();
        // worker0 runs two pods: the first by name is the one probed.
        assert_eq!(
            shown,
            [
                (
                    "nginx-7c5ddbdf54-2xq8k",
                    "wget -q -O - -T 5 http://10.200.1.3/",
                    "pod=nginx-7c5ddbdf54-9kfmd "
                ),
                (
                    "nginx-7c5ddbdf54-2xq8k",
                    "nslookup kubernetes.default.svc.cluster.local",
                    "10.32.0.1"
                ),
                (
                    "nginx-7c5ddbdf54-9kfmd",
                    "wget -q -O - -T 5 http://10.200.0.4/",
                    "pod=nginx-7c5ddbdf54-2xq8k "
                ),
                (
                    "nginx-7c5ddbdf54-9kfmd",
                    "nslookup kubernetes.default.svc.cluster.local",
                    "10.32.0.1"
                ),
                (
                    "nginx-7c5ddbdf54-2xq8k",
                    "nslookup dns0.lan",
                    "192.168.56.2"
                ),
            ]
        );
        // A worker without a Ready pod cannot be probed: that is a problem.
        let (probes, problems) =
            networking_probes(&pods, &["worker0", "worker1", "worker2"], kubernetes, None);
        assert_eq!(problems, ["no Ready nginx pod on worker2 to probe from"]);
        assert_eq!(probes.len(), 4);
    }

    #[test]
    fn networking_verdicts_come_from_each_probes_output_and_exit_code() {
        let pods: Value = serde_json::from_str(&fixture("pods-nginx.json")).unwrap();
        let (probes, _) = networking_probes(
            &pods,
            &["worker0", "worker1"],
            "10.32.0.1".parse().unwrap(),
            Some(("dns0.lan", "192.168.56.2".parse().unwrap())),
        );
        let script = probe_script(&probes);
        assert!(script.contains(
            "exec nginx-7c5ddbdf54-2xq8k -- sh -c 'wget -q -O - -T 5 http://10.200.1.3/'"
        ));
        assert_eq!(script.matches("@@probe").count(), probes.len());
        // What the script prints when every probe answers.
        let good = "@@probe 0\npod=nginx-7c5ddbdf54-9kfmd node=worker1 ip=10.200.1.3\n@@exit 0\n\
            @@probe 1\nServer:\t\t10.32.0.10\nName:\tkubernetes.default.svc.cluster.local\nAddress: 10.32.0.1\n@@exit 0\n\
            @@probe 2\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n@@exit 0\n\
            @@probe 3\nAddress: 10.32.0.1\n@@exit 0\n\
            @@probe 4\nName:\tdns0.lan\nAddress: 192.168.56.2\n@@exit 0\n";
        assert_eq!(probe_verdicts(&probes, good), Vec::<String>::new());
        // A missing route times out; CoreDNS answering NXDOMAIN; a cut-off run.
        let bad = "@@probe 0\nwget: download timed out\n@@exit 1\n\
            @@probe 1\n** server can't find kubernetes.default.svc.cluster.local: NXDOMAIN\n@@exit 1\n\
            @@probe 2\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n@@exit 0\n\
            @@probe 3\nAddress: 10.32.0.1\n@@exit 0\n";
        let verdicts = probe_verdicts(&probes, bad);
        assert_eq!(verdicts.len(), 3, "{verdicts:#?}");
        assert!(
            verdicts[0].starts_with("worker0 -> worker1"),
            "{}",
            verdicts[0]
        );
        assert!(verdicts[0].contains("exited 1") && verdicts[0].contains("timed out"));
        assert!(verdicts[1].contains("NXDOMAIN"), "{}", verdicts[1]);
        assert!(verdicts[2].ends_with("did not run"), "{}", verdicts[2]);
    }

    #[test]
    fn pod_names_with_shell_characters_are_never_probed() {
        let pods = serde_json::json!({"items": [{
            "metadata": {"name": "x'; rm -rf /; '"},
            "spec": {"nodeName": "worker0"},
            "status": {"podIP": "10.200.0.4", "conditions": [{"type": "Ready", "status": "True"}]}
        }]});
        let (probes, problems) =
            networking_probes(&pods, &["worker0"], "10.32.0.1".parse().unwrap(), None);
        assert!(probes.is_empty());
        assert_eq!(problems, ["no Ready nginx pod on worker0 to probe from"]);
    }

    #[test]
    fn a_kubernetes_check_on_a_lab_up_to_etcd_is_skipped_naming_its_phase() {
        use Phase::*;
        let etcd = [Machines, Facts, Dns, Resolv, Lb, Certs, Etcd];
        for id in CheckId::ALL {
            let why = phase_not_run(id, &etcd);
            if needs(id) >= Controllers {
                let why = why.unwrap_or_else(|| panic!("{} not skipped", id.name()));
                assert!(
                    why.contains(&format!("the {} phase has not run", needs(id).name())),
                    "{why}"
                );
            } else {
                assert_eq!(why, None, "{}", id.name());
            }
        }
        assert_eq!(
            phase_not_run(CheckId::Api, &etcd).unwrap(),
            "the controllers phase has not run on this lab: `kubelab lab up` runs it"
        );
        // Once every phase ran, none is skipped for that reason.
        for id in CheckId::ALL {
            assert_eq!(phase_not_run(id, &Phase::ALL), None, "{}", id.name());
        }
    }

    #[test]
    fn logs_must_come_back_and_exec_must_land_in_the_pod() {
        assert_eq!(
            log_verdict("p", 200, b"/docker-entrypoint.sh: Configuration complete\n"),
            None
        );
        assert_eq!(
            log_verdict("p", 200, b"  \n").unwrap(),
            "the log of p came back empty"
        );
        // What the API says when the apiserver may not reach the kubelet.
        let forbidden = br#"{"kind":"Status","message":"Forbidden (user=kube-apiserver-kubelet-client, verb=get, resource=nodes, subresource=proxy)"}"#;
        let why = log_verdict("p", 403, forbidden).unwrap();
        assert!(
            why.contains("HTTP 403") && why.contains("Forbidden"),
            "{why}"
        );

        let pods: Value = serde_json::from_str(&fixture("pods-nginx.json")).unwrap();
        let probes = exec_probes(&pod_per_worker(&pods));
        let shown: Vec<(&str, &str, &str)> = probes
            .iter()
            .map(|p| (p.pod.as_str(), p.command.as_str(), p.expect.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "nginx-7c5ddbdf54-2xq8k",
                    "cat /etc/hostname",
                    "nginx-7c5ddbdf54-2xq8k"
                ),
                (
                    "nginx-7c5ddbdf54-9kfmd",
                    "cat /etc/hostname",
                    "nginx-7c5ddbdf54-9kfmd"
                ),
            ]
        );
        let out = "@@probe 0\nnginx-7c5ddbdf54-2xq8k\n@@exit 0\n\
            @@probe 1\nerror: unable to upgrade connection: Forbidden\n@@exit 1\n";
        let verdicts = probe_verdicts(&probes, out);
        assert_eq!(verdicts.len(), 1, "{verdicts:?}");
        assert!(
            verdicts[0].contains("unable to upgrade connection"),
            "{}",
            verdicts[0]
        );
    }

    #[test]
    fn port_forward_passes_only_on_the_pods_own_answer() {
        let script = port_forward_script("nginx-7c5ddbdf54-2xq8k", 18080);
        assert!(
            script.contains("port-forward --address 127.0.0.1 pod/nginx-7c5ddbdf54-2xq8k 18080:80")
        );
        assert!(
            script.contains("kill $pf"),
            "the forward is stopped: {script}"
        );
        let pod = "nginx-7c5ddbdf54-2xq8k";
        let good = "@@answer\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n";
        assert_eq!(port_forward_verdict(pod, good), None);
        let other = "@@answer\npod=nginx-7c5ddbdf54-9kfmd node=worker1 ip=10.200.1.3\n";
        assert!(port_forward_verdict(pod, other).unwrap().contains("not as"));
        let refused = "@@log\nerror: error upgrading connection: unable to upgrade connection: pod does not exist\n";
        let why = port_forward_verdict(pod, refused).unwrap();
        assert!(
            why.contains("never answered") && why.contains("pod does not exist"),
            "{why}"
        );
        assert!(port_forward_verdict(pod, "").unwrap().contains("no output"));
    }

    #[test]
    fn the_service_is_probed_by_ip_by_name_and_from_its_own_endpoint() {
        let pods: Value = serde_json::from_str(&fixture("pods-nginx.json")).unwrap();
        let ip: Ipv4Addr = "10.32.0.57".parse().unwrap();
        let probes = service_probes(&pod_per_worker(&pods), ip);
        assert_eq!(probes.len(), 6, "three per worker");
        assert_eq!(probes[0].command, "wget -q -O - -T 5 http://10.32.0.57/");
        assert_eq!(
            probes[1].command,
            "wget -q -O - -T 5 http://nginx.default.svc.cluster.local/"
        );
        // The hairpin probe waits for its own pod's answer, never any pod's.
        assert!(
            probes[2]
                .command
                .contains("grep -q \"pod=nginx-7c5ddbdf54-2xq8k \"")
        );
        assert_eq!(probes[2].expect, "hairpin-answered");
        // Every command fits in the single quotes of `sh -c '...'`.
        assert!(probes.iter().all(|p| !p.command.contains('\'')));
        // Recorded output: by IP and by name answer from both workers; on
        // worker1 the pod never reaches itself (no hairpinMode).
        let out = "@@probe 0\npod=nginx-7c5ddbdf54-9kfmd node=worker1 ip=10.200.1.3\n@@exit 0\n\
            @@probe 1\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n@@exit 0\n\
            @@probe 2\nhairpin-answered\n@@exit 0\n\
            @@probe 3\npod=nginx-7c5ddbdf54-qj7wz node=worker0 ip=10.200.0.5\n@@exit 0\n\
            @@probe 4\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n@@exit 0\n\
            @@probe 5\nnever answered by nginx-7c5ddbdf54-9kfmd\n@@exit 1\n";
        let verdicts = probe_verdicts(&probes, out);
        assert_eq!(verdicts.len(), 1, "{verdicts:?}");
        assert!(
            verdicts[0].starts_with(
                "worker1: nginx-7c5ddbdf54-9kfmd to itself through the Service (hairpin)"
            ),
            "{}",
            verdicts[0]
        );
    }

    #[test]
    fn the_api_failover_needs_the_vip_to_answer_and_the_leases_to_leave_the_stopped_node() {
        let controllers = ["controller0", "controller1", "controller2"];
        // Leases as the API returns them: the holder is "<node>_<uuid>".
        let lease = |holder: &str| {
            serde_json::json!({
                "kind": "Lease",
                "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}
            })
        };
        let holder = |h: &str| lease_holder(&lease(h), &controllers);
        let before = [
            ("kube-controller-manager", "controller0".to_string()),
            ("kube-scheduler", "controller1".to_string()),
        ];
        let moved = [
            (
                "kube-controller-manager",
                holder("controller2_5d1f6c2e-8a7b-4c1e-9f0a-2b3c4d5e6f70"),
            ),
            (
                "kube-scheduler",
                holder("controller1_0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b"),
            ),
        ];
        assert_eq!(
            api_failover_problems("controller0", true, &before, &moved),
            Vec::<String>::new()
        );
        // The lease stayed on the stopped node, and the VIP went dark.
        let stuck = [
            (
                "kube-controller-manager",
                holder("controller0_5d1f6c2e-8a7b-4c1e-9f0a-2b3c4d5e6f70"),
            ),
            ("kube-scheduler", holder("")),
        ];
        let problems = api_failover_problems("controller0", false, &before, &stuck);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("/readyz through the VIP did not answer"));
        assert!(problems[1].contains("kube-controller-manager lease stayed on controller0"));
        assert_eq!(problems[2], "kube-scheduler lease: no holder");
    }

    #[test]
    fn a_write_with_a_member_down_must_be_read_back_as_written() {
        // What etcd's v3 gateway answers to kv/range (keys and values base64).
        let key = "/kubelab-verify/0a1b2c3d4e5f6071";
        let range: Value = serde_json::json!({
            "header": {"cluster_id": "14841639068965178418", "member_id": "10276657743932975437", "revision": "42", "raft_term": "3"},
            "kvs": [{
                "key": "L2t1YmVsYWItdmVyaWZ5LzBhMWIyYzNkNGU1ZjYwNzE=",
                "create_revision": "42", "mod_revision": "42", "version": "1",
                "value": "d3JpdHRlbiB3aXRoIGEgbWVtYmVyIGRvd24="
            }],
            "count": "1"
        });
        assert!(range_holds(&range, key, "written with a member down"));
        assert!(!range_holds(&range, key, "something else"));
        let empty: Value = serde_json::json!({"header": {"revision": "42"}});
        assert!(!range_holds(&empty, key, "written with a member down"));
    }

    #[test]
    fn the_checks_a_lab_must_pass_follow_the_phases_it_has_done() {
        use Phase::*;
        let names = |phases: &[Phase]| -> Vec<&str> {
            checks_for(phases).into_iter().map(|c| c.name()).collect()
        };
        // Through etcd plus the routes: nothing that needs Kubernetes, and
        // networking waits for the nginx pods it probes from.
        let etcd = [Machines, Facts, Dns, Resolv, Lb, Certs, Etcd, Routes];
        assert_eq!(names(&etcd), ["machines", "dns", "etcd", "certificates"]);
        assert_eq!(names(&Phase::ALL).len(), 13, "all but the failover");
        assert!(!names(&Phase::ALL).contains(&"lb-failover"));
    }
}
