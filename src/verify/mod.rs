//! `kubelab lab verify`: does the lab work? Each check is `{name, applies,
//! run}` and ends Passed, Warned (why, hint), Skipped (why) or Failed (why,
//! hint). The checks run concurrently, each under its own deadline, from the
//! host over the host-only network (reqwest with the lab's PKI, DNS over UDP
//! with hickory-proto's messages), and over SSH only where the host cannot
//! see the thing. The disruptive ones (the failovers, a member down) run
//! alone after the others. One file per check; `doctor` reports through
//! the same [`report`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Role;
use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::printer::Printer;
use crate::settings::Settings;
use crate::tools::Runner;
use crate::tools::ssh::Transport;
use crate::tools::vagrant::MachineState;
use crate::topology::Phase;

mod api;
mod api_failover;
mod certificates;
mod conformance;
mod control_plane;
mod dns;
mod dns_client;
mod etcd;
mod etcd_member_down;
mod http;
mod lb_failover;
mod logs_exec;
mod machines;
mod networking;
mod nodes;
mod pods;
mod port_forward;
mod report;
mod secrets;
mod services;
#[cfg(test)]
mod testing;
mod workload;

pub(crate) use report::{Report, print_reports};

/// What `lab verify` was asked to do.
pub struct Options {
    pub json: bool,
    pub only: Option<String>,
    pub no_disruptive: bool,
    /// `--conformance`: the upstream suite instead of the checks, with
    /// `--focus`'s regex when given.
    pub conformance: Option<Conformance>,
}

/// `--conformance [--focus REGEX]`.
pub struct Conformance {
    pub focus: Option<String>,
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    Warned { why: String, hint: Option<String> },
    Skipped(String),
    Failed { why: String, hint: Option<String> },
}

impl Outcome {
    pub(crate) fn failed(why: impl Into<String>, hint: impl Into<String>) -> Outcome {
        Outcome::Failed {
            why: why.into(),
            hint: Some(hint.into()),
        }
    }

    pub(crate) fn status(&self) -> &'static str {
        match self {
            Outcome::Passed(_) => "passed",
            Outcome::Warned { .. } => "warned",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed { .. } => "failed",
        }
    }

    pub(crate) fn detail(&self) -> &str {
        match self {
            Outcome::Passed(d) | Outcome::Skipped(d) => d,
            Outcome::Warned { why, .. } | Outcome::Failed { why, .. } => why,
        }
    }

    /// What to do about a warning or a failure.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            Outcome::Warned { hint, .. } | Outcome::Failed { hint, .. } => hint.clone(),
            Outcome::Passed(_) | Outcome::Skipped(_) => None,
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

crate::named::named_enum! {
    /// The checks, in the order the issue numbers them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CheckId {
        Machines => "machines",
        Dns => "dns",
        Etcd => "etcd",
        Api => "api",
        LbFailover => "lb-failover",
        ControlPlane => "control-plane",
        Nodes => "nodes",
        Secrets => "secrets",
        Networking => "networking",
        Workload => "workload",
        Certificates => "certificates",
        LogsExec => "logs-exec",
        PortForward => "port-forward",
        Services => "services",
        ApiFailover => "api-failover",
        EtcdMemberDown => "etcd-member-down",
    }
}

impl CheckId {
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
            CheckId::Machines => machines::machines(ctx).await,
            CheckId::Dns => dns::dns(ctx).await,
            CheckId::Etcd => etcd::etcd(ctx).await,
            CheckId::Api => api::api(ctx).await,
            CheckId::LbFailover => lb_failover::lb_failover(ctx).await,
            CheckId::ControlPlane => control_plane::control_plane(ctx).await,
            CheckId::Nodes => nodes::nodes(ctx).await,
            CheckId::Secrets => secrets::secrets(ctx).await,
            CheckId::Networking => networking::networking(ctx).await,
            CheckId::Workload => workload::workload(ctx).await,
            CheckId::Certificates => certificates::certificates(ctx),
            CheckId::LogsExec => logs_exec::logs_exec(ctx).await,
            CheckId::PortForward => port_forward::port_forward(ctx).await,
            CheckId::Services => services::services(ctx).await,
            CheckId::ApiFailover => api_failover::api_failover(ctx).await,
            CheckId::EtcdMemberDown => etcd_member_down::etcd_member_down(ctx).await,
        }
    }
}

/// What every check reads: the lab, its files and one SSH connection per node.
struct Ctx<'a> {
    loaded: &'a LoadedLab,
    hosts_file: PathBuf,
    pki_dir: PathBuf,
    logs: PathBuf,
    /// The machines' states, once for all checks; `None` for servers that
    /// are only reached.
    machines: Option<std::result::Result<Vec<MachineState>, String>>,
    /// SSH to the running nodes.
    transport: Option<Transport>,
    no_disruptive: bool,
    /// The phases the lab has been provisioned through (state.json).
    phases_done: Vec<Phase>,
    /// The units a disruptive check stopped and has not started again
    /// (node, unit): after Ctrl-C, [`Ctx::start_what_was_stopped`] starts them.
    stopped: std::sync::Mutex<Vec<(String, String)>>,
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

impl Ctx<'_> {
    /// A disruptive check's `systemctl stop UNIT` on `node`. From before the
    /// stop on, the unit is on the list Ctrl-C starts again.
    async fn stop_unit(&self, node: &str, unit: &str) -> std::result::Result<String, String> {
        if let Ok(mut stopped) = self.stopped.lock() {
            stopped.push((node.to_string(), unit.to_string()));
        }
        self.ssh(
            node,
            format!("sudo systemctl stop {unit}"),
            &format!("stop {unit}"),
        )
        .await
    }

    /// The check's own `systemctl start UNIT`; once it worked, the unit is
    /// off the list.
    async fn start_unit(&self, node: &str, unit: &str) -> std::result::Result<String, String> {
        let started = self
            .ssh(
                node,
                format!("sudo systemctl start {unit}"),
                &format!("start {unit}"),
            )
            .await;
        if started.is_ok()
            && let Ok(mut stopped) = self.stopped.lock()
        {
            stopped.retain(|(n, u)| !(n == node && u == unit));
        }
        started
    }

    /// After an interrupt (the context's runner takes no new command):
    /// starts every unit a check stopped and did not start again, through
    /// `runner`. What it started, or why it could not, one line each.
    async fn start_what_was_stopped(&self, runner: &Runner) -> Vec<String> {
        let stopped = self.stopped.lock().map(|s| s.clone()).unwrap_or_default();
        let Some(transport) = &self.transport else {
            return Vec::new();
        };
        let transport = transport.with_runner(runner);
        let mut said = Vec::new();
        for (node, unit) in stopped {
            let started = transport
                .run(
                    &node,
                    &format!("sudo systemctl start {unit}"),
                    None,
                    format!("start {unit} on {node} again"),
                    &self.log(&node),
                )
                .await;
            said.push(match started {
                Ok(_) => format!("{unit} on {node} was started again"),
                Err(e) => format!(
                    "{unit} on {node} could not be started again ({}): `kubelab lab ssh {node} -- sudo systemctl start {unit}`",
                    first_line(&e.to_string())
                ),
            });
        }
        transport.close().await;
        said
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// How `lab verify` reaches a lab's machines: each provider's answer (the
/// providers in `machines/` implement it; verify asks no provider by name).
#[async_trait::async_trait(?Send)]
pub trait Reach {
    /// The file in `.kubelab/` that `lab up` writes first: without it the
    /// lab was never brought up.
    fn made_by(&self) -> &'static str;

    /// Each machine's state (`None` for servers that exist already and are
    /// only reached) and SSH to the running ones, asked once per round.
    async fn reach(
        &self,
        loaded: &LoadedLab,
        printer: &Printer,
        runner: &Runner,
    ) -> Result<Reached>;
}

/// What a provider says of the lab's machines, for the checks.
pub struct Reached {
    /// The machines' states (or why they could not be read); `None` when
    /// the provider runs no machine (static servers: reached, not run).
    pub machines: Option<std::result::Result<Vec<MachineState>, String>>,
    /// SSH to the running nodes.
    pub transport: Option<Transport>,
}

/// Everything the checks read, with one SSH connection per running node.
async fn context<'a>(
    loaded: &'a LoadedLab,
    settings: &Settings,
    printer: &Printer,
    runner: &Runner,
    reach: &dyn Reach,
    no_disruptive: bool,
) -> Result<Ctx<'a>> {
    let state_dir = loaded.state_dir();
    let state = crate::state::State::load(&state_dir.join("state.json"), &loaded.lab.name)?;
    let phases_done = crate::provision::phases_done(&loaded.topo, &state);
    let Reached {
        machines,
        transport,
    } = reach.reach(loaded, printer, runner).await?;
    Ok(Ctx {
        loaded,
        hosts_file: settings.hosts_file.clone(),
        pki_dir: state_dir.join("pki"),
        logs: state_dir.join("logs"),
        machines,
        transport,
        no_disruptive,
        phases_done,
        stopped: Default::default(),
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
    runner: &Runner,
    reach: &dyn Reach,
) -> Result<()> {
    let names: Vec<&str> = checks.iter().map(|c| c.name()).collect();
    printer.info(format!(
        "waiting for these checks to pass: {}",
        names.join(", ")
    ));
    let started = Instant::now();
    loop {
        // After Ctrl-C every round would fail at once until the deadline.
        if runner.children.interrupted() {
            return Err(Error::Interrupted { hint: None });
        }
        let ctx = context(loaded, settings, printer, runner, reach, true).await?;
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
        if runner.children.interrupted() {
            return Err(Error::Interrupted { hint: None });
        }
        printer.info(format!("  not yet: {}", failing.join("; ")));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// The checks `--only` names (all of them without it).
fn select(only: Option<&str>) -> Result<Vec<CheckId>> {
    let Some(only) = only else {
        return Ok(CheckId::ALL.to_vec());
    };
    let names: Vec<&str> = CheckId::ALL.iter().map(|c| c.name()).collect();
    let picked = only_names(only, &names)?;
    Ok(CheckId::ALL
        .into_iter()
        .filter(|c| picked.contains(&c.name()))
        .collect())
}

/// The check names of an `--only NAME[,NAME]` of `lab verify` or
/// `kubelab doctor`, each one of `names`; an unknown one is a usage error
/// that names the valid ones (and the one a typo was meant for).
pub(crate) fn only_names<'a>(only: &str, names: &[&'a str]) -> Result<Vec<&'a str>> {
    let mut picked = Vec::new();
    for name in only.split(',').map(str::trim) {
        let Some(found) = names.iter().find(|n| **n == name) else {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let hint = match crate::config::closest(name, &names) {
                Some(best) => format!("did you mean {best}? checks: {}", names.join(", ")),
                None => format!("checks: {}", names.join(", ")),
            };
            return Err(Error::usage(format!("no check named {name:?}"), hint));
        };
        picked.push(*found);
    }
    Ok(picked)
}

pub async fn run(
    loaded: &LoadedLab,
    settings: &Settings,
    printer: &Printer,
    options: &Options,
    verbose: bool,
    reach: &dyn Reach,
) -> Result<i32> {
    let selected = select(options.only.as_deref())?;
    let state_dir = loaded.state_dir();
    if !state_dir.join(reach.made_by()).exists() {
        return Err(Error::other(
            "this lab was never brought up: nothing to verify",
            "run `kubelab lab up` first",
        ));
    }
    if let Some(c) = &options.conformance {
        return conformance::run(loaded, settings, printer, c.focus.as_deref()).await;
    }
    // The failover stops haproxy: never while another kubelab changes the lab.
    let _lock = crate::state::LabLock::acquire(&state_dir, "kubelab lab verify")?;
    let runner = Runner::new(verbose);
    let ctx = context(
        loaded,
        settings,
        printer,
        &runner,
        reach,
        options.no_disruptive,
    )
    .await?;
    printer.info(format!(
        "running {} check{}",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" }
    ));
    let notice = || {
        printer.info(format!(
            "interrupted: stopping the checks (up to {} s), then starting again what a disruptive check stopped",
            INTERRUPT_GRACE.as_secs()
        ))
    };
    let on = crate::tools::OnInterrupt {
        grace: INTERRUPT_GRACE,
        notice: Some(&notice),
        hint: None,
        finish: false,
    };
    let evaluated = crate::tools::interruptible(
        &runner.children,
        on,
        evaluate(&ctx, &selected, printer, true),
    )
    .await;
    let mut results = match evaluated {
        Ok(results) => {
            // A check cut off by its deadline between its stop and its
            // start left the unit stopped: start it, and say so.
            if ctx.stopped.lock().is_ok_and(|s| !s.is_empty()) {
                for line in ctx.start_what_was_stopped(&runner).await {
                    printer.warn(line);
                }
            }
            results
        }
        Err(Error::Interrupted { .. }) => {
            let said = ctx.start_what_was_stopped(&Runner::new(verbose)).await;
            for line in &said {
                printer.info(format!("  {line}"));
            }
            return Err(Error::Interrupted {
                hint: Some(if said.is_empty() {
                    "no check had stopped anything; `kubelab lab verify` runs the checks again"
                        .into()
                } else {
                    "`kubelab lab verify` runs the checks again".into()
                }),
            });
        }
        Err(e) => return Err(e),
    };
    results.sort_by_key(|(id, _, _)| CheckId::ALL.iter().position(|c| c == id));
    let reports: Vec<Report> = results
        .into_iter()
        .map(|(id, outcome, elapsed)| {
            let number = CheckId::ALL.iter().position(|c| *c == id).unwrap_or(0) + 1;
            Report::new(id.name().to_string(), number, outcome, elapsed)
        })
        .collect();
    print_reports(printer, &ctx.loaded.lab.name, &reports, options.json)
}

const RETURN_WAIT: Duration = Duration::from_secs(45);

/// How long the checks' ssh children get after Ctrl-C before they are killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// U13: `--only` suggests a check only for a typo of its name.
    #[test]
    fn only_suggests_the_check_a_typo_was_meant_for() {
        let hint = |name: &str| select(Some(name)).unwrap_err().hint().unwrap_or_default();
        assert!(hint("machnes").contains("did you mean machines?"));
        assert!(hint("ectd").contains("did you mean etcd?"));
        for word in ["bogus", "x", "verify"] {
            let hint = hint(word);
            assert!(!hint.contains("did you mean"), "{word}: {hint}");
            assert!(hint.contains("checks: machines, dns"), "{word}: {hint}");
        }
    }

    #[test]
    fn only_takes_a_comma_list_in_the_checks_own_order() {
        assert_eq!(
            select(Some("etcd, dns")).unwrap(),
            [CheckId::ALL[1], CheckId::ALL[2]]
        );
        let err = select(Some("dns,etcdd")).unwrap_err();
        assert!(
            err.to_string().contains("no check named \"etcdd\""),
            "{err}"
        );
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
