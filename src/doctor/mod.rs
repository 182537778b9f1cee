//! `kubelab doctor`: can this host run the lab? Each check is Passed, Warned
//! or Failed with a hint, reported as `lab verify` reports its checks (the
//! same table, JSON and exit status: 1 on any Failed).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::host::{Facts, Os};
use crate::lab::LoadedLab;
use crate::lab::static_targets;
use crate::machines::provider::DoctorScope;
use crate::machines::static_hosts;
use crate::platform::{self, Version};
use crate::printer::{self, Printer};
use crate::settings::Settings;
use crate::state::State;
use crate::tools::ssh::{SshTarget, Transport};
use crate::tools::vagrant::Vagrant;
use crate::tools::vboxmanage::VBoxManage;
use crate::tools::{self, Runner};
use crate::verify::{self, Outcome, Report};

#[cfg(test)]
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/host/", $name))
    };
}

mod boxes;
mod hypervisor;
mod network;

use boxes::{architecture, box_available};
use hypervisor::{cpu_virtualization, hyper_v, kvm, vagrant_virtualbox, virtualbox};
use network::{dhcp_servers, host_only_interfaces, host_only_range, routes, ssh_ports};

/// How long the ssh children of the host checks get after an interrupt
/// before they are killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

crate::named::named_enum! {
    /// Doctor's checks: the second group of check ids beside verify's
    /// [`CheckId`](crate::verify::CheckId), reported the same way. A static
    /// lab adds one check per host, named `host NODE`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum DoctorCheck {
        Vagrant => "vagrant",
        Virtualbox => "virtualbox",
        VagrantVirtualbox => "vagrant x virtualbox",
        Kvm => "kvm",
        HyperV => "hyper-v",
        Architecture => "architecture",
        HostOnlyRange => "host-only range",
        HostOnlyInterfaces => "host-only interfaces",
        DhcpServers => "dhcp servers",
        Routes => "routes",
        OtherLabs => "other-labs",
        SshPorts => "ssh ports",
        Memory => "memory",
        Disk => "disk",
        CpuVirtualization => "cpu virtualization",
        Ssh => "ssh",
        Box => "box",
    }
}

/// What `--only` names besides the checks: every `host NODE` of a static lab.
const HOSTS: &str = "host";

/// The checks as they finish, numbered in that order; each one's time is
/// the time since the one before it ended (what it ran to get its answer).
/// With `--only`, the others are left out of the report; what a selected
/// check needs from another (Vagrant's version for `vagrant x virtualbox`)
/// is still asked.
struct Checks {
    reports: Vec<Report>,
    last: Instant,
    only: Option<Vec<&'static str>>,
}

impl Checks {
    /// The checks `--only` names (all of them without it).
    fn new(only: Option<&str>) -> Result<Checks> {
        let only = match only {
            Some(only) => {
                let mut names: Vec<&str> = DoctorCheck::ALL.iter().map(|c| c.name()).collect();
                names.push(HOSTS);
                Some(verify::only_names(only, &names)?)
            }
            None => None,
        };
        Ok(Checks {
            reports: Vec::new(),
            last: Instant::now(),
            only,
        })
    }

    /// Whether the check named `name` is reported.
    fn wants(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&name))
    }

    fn add(&mut self, id: DoctorCheck, outcome: Outcome) {
        let elapsed = self.last.elapsed();
        if self.wants(id.name()) {
            self.add_named(id.name().to_string(), outcome, elapsed);
        } else {
            self.last = Instant::now();
        }
    }

    fn add_named(&mut self, name: String, outcome: Outcome, elapsed: Duration) {
        let number = self.reports.len() + 1;
        self.reports
            .push(Report::new(name, number, outcome, elapsed));
        self.last = Instant::now();
    }
}

pub async fn run(
    loaded: &LoadedLab,
    settings: &Settings,
    printer: &Printer,
    json: bool,
    only: Option<&str>,
    verbose: bool,
) -> Result<i32> {
    let runner = Runner::new(verbose);
    let mut checks = Checks::new(only)?;
    match crate::machines::of(&loaded.lab).doctor() {
        DoctorScope::Servers => static_checks(&mut checks, loaded, settings, &runner).await?,
        DoctorScope::Hypervisor => virtualbox_checks(&mut checks, loaded, settings, &runner).await,
    }
    if checks.reports.is_empty() {
        return Err(Error::usage(
            format!(
                "no check that --only names runs for this lab (provider: {}, on this host)",
                loaded.lab.provider
            ),
            "run `kubelab doctor` without --only to see the checks this lab gets",
        ));
    }
    verify::print_reports(printer, &loaded.lab.name, &checks.reports, json)
}

/// A VirtualBox lab: the tools, the host-only network, the ports, RAM, disk
/// and CPU the VMs need, and the box.
async fn virtualbox_checks(
    checks: &mut Checks,
    loaded: &LoadedLab,
    settings: &Settings,
    runner: &Runner,
) {
    let state_dir = loaded.state_dir();
    let log = std::env::temp_dir().join(format!("kubelab-doctor-{}.log", std::process::id()));
    let (vagrant, vbox, vbox_version) = tool_checks(checks, &state_dir, &log, runner).await;

    // What the host itself does to VirtualBox: KVM on Linux, Hyper-V on
    // Windows, and its architecture against the box's.
    let facts = Facts::gather(settings, runner, &log).await;
    match facts.os {
        Os::Linux => checks.add(DoctorCheck::Kvm, kvm(&facts, vbox_version)),
        Os::Windows | Os::Wsl => checks.add(DoctorCheck::HyperV, hyper_v(&facts)),
        Os::Macos | Os::Other => {}
    }
    let arch = facts.arch();
    checks.add(
        DoctorCheck::Architecture,
        architecture(&facts, arch, &loaded.lab.vm_box),
    );

    network_checks(checks, loaded, settings, vbox.as_ref().ok()).await;

    // Fixed SSH ports.
    let state = State::load(&state_dir.join("state.json"), &loaded.lab.name).unwrap_or_default();
    checks.add(DoctorCheck::SshPorts, ssh_ports(loaded, &state));

    // RAM, disk, CPU.
    checks.add(DoctorCheck::Memory, memory(loaded, settings));
    checks.add(DoctorCheck::Disk, disk());
    checks.add(DoctorCheck::CpuVirtualization, cpu_virtualization(&facts));

    checks.add(DoctorCheck::Ssh, ssh_check("log in to the VMs").0);

    // The box.
    if let (Ok(v), true) = (&vagrant, checks.wants(DoctorCheck::Box.name())) {
        match v.box_list().await {
            Ok(list) => checks.add(
                DoctorCheck::Box,
                box_available(&list, &loaded.lab.vm_box, arch),
            ),
            Err(e) => checks.add(
                DoctorCheck::Box,
                Outcome::Warned {
                    why: format!("could not list boxes: {}", first_line(&e)),
                    hint: None,
                },
            ),
        }
    }
    let _ = fs_err::remove_file(&log);
}

/// Vagrant, VirtualBox and the pair of them; the tools found, and
/// VirtualBox's version when it could be read.
async fn tool_checks(
    checks: &mut Checks,
    state_dir: &Path,
    log: &Path,
    runner: &Runner,
) -> (Result<Vagrant>, Result<VBoxManage>, Option<Version>) {
    let vagrant = Vagrant::find(state_dir, runner);
    let mut vagrant_version = None;
    match &vagrant {
        Ok(v) => match v.version().await {
            Ok(output) => {
                vagrant_version = platform::parse_vagrant_version(&output);
                checks.add(
                    DoctorCheck::Vagrant,
                    Outcome::Passed(output.trim().to_string()),
                )
            }
            Err(e) => checks.add(
                DoctorCheck::Vagrant,
                Outcome::Failed {
                    why: format!("`vagrant --version` failed: {}", first_line(&e)),
                    hint: Some("reinstall Vagrant".into()),
                },
            ),
        },
        Err(e) => checks.add(
            DoctorCheck::Vagrant,
            Outcome::Failed {
                why: "not found on PATH".into(),
                hint: e.hint(),
            },
        ),
    }

    // VirtualBox
    let vbox = VBoxManage::find(log.to_path_buf(), runner);
    let mut vbox_version = None;
    match &vbox {
        Ok(v) => match v.version().await {
            Ok(output) => {
                vbox_version = platform::parse_virtualbox_version(&output);
                checks.add(DoctorCheck::Virtualbox, virtualbox(&output));
            }
            Err(e) => checks.add(DoctorCheck::Virtualbox, Outcome::Failed { why: format!("`VBoxManage --version` failed: {}", first_line(&e)), hint: Some("reinstall VirtualBox; its kernel modules may be missing (`sudo /sbin/vboxconfig`)".into()) }),
        },
        Err(e) => checks.add(DoctorCheck::Virtualbox, Outcome::Failed { why: "VBoxManage not found on PATH".into(), hint: e.hint() }),
    }
    if let (Some(vagrant), Some(vbox)) = (vagrant_version, vbox_version) {
        checks.add(
            DoctorCheck::VagrantVirtualbox,
            vagrant_virtualbox(vagrant, vbox),
        );
    }
    (vagrant, vbox, vbox_version)
}

/// The host-only range VirtualBox allows; host-only interfaces, DHCP
/// servers and routes that clash with the lab; other labs that are up.
async fn network_checks(
    checks: &mut Checks,
    loaded: &LoadedLab,
    settings: &Settings,
    vbox: Option<&VBoxManage>,
) {
    let cidr = loaded.lab.network.cidr;
    checks.add(DoctorCheck::HostOnlyRange, host_only_range(cidr));
    if let Some(v) = vbox {
        match v.host_only_interfaces().await {
            Ok(ifs) => checks.add(
                DoctorCheck::HostOnlyInterfaces,
                host_only_interfaces(cidr, &ifs),
            ),
            Err(e) => checks.add(
                DoctorCheck::HostOnlyInterfaces,
                Outcome::Warned {
                    why: format!("could not list them: {}", first_line(&e)),
                    hint: None,
                },
            ),
        }
        match v.dhcp_servers().await {
            Ok(servers) => checks.add(DoctorCheck::DhcpServers, dhcp_servers(loaded, &servers)),
            Err(e) => checks.add(
                DoctorCheck::DhcpServers,
                Outcome::Warned {
                    why: format!("could not list them: {}", first_line(&e)),
                    hint: None,
                },
            ),
        }
    }
    checks.add(DoctorCheck::Routes, routes(cidr));
    checks.add(DoctorCheck::OtherLabs, other_labs(loaded, settings));
}

/// `ssh` on PATH, and whether it is there.
fn ssh_check(purpose: &str) -> (Outcome, bool) {
    match tools::find("ssh", purpose) {
        Ok(path) => (Outcome::Passed(path.display().to_string()), true),
        Err(e) => (
            Outcome::Failed {
                why: "not found on PATH".into(),
                hint: e.hint(),
            },
            false,
        ),
    }
}

/// A static lab: its servers exist, so none of the VirtualBox checks apply.
/// `ssh`, other labs, and per host exactly the preflight `lab up` runs.
async fn static_checks(
    checks: &mut Checks,
    loaded: &LoadedLab,
    settings: &Settings,
    runner: &Runner,
) -> Result<()> {
    let (ssh, found) = ssh_check("log in to the lab's servers");
    checks.add(DoctorCheck::Ssh, ssh);
    checks.add(DoctorCheck::OtherLabs, other_labs(loaded, settings));
    if !checks.wants(HOSTS) {
        return Ok(());
    }
    if !found {
        for n in &loaded.topo.nodes {
            let outcome = Outcome::Failed {
                why: "not checked: `ssh` is not on PATH".into(),
                hint: Some("install ssh (see the ssh check)".into()),
            };
            checks.add_named(format!("host {}", n.name), outcome, Duration::ZERO);
        }
        return Ok(());
    }
    let started = Instant::now();
    let hosts = host_checks(loaded, runner).await?;
    // The hosts are asked at once: each took the time of them all.
    let took = started.elapsed();
    for (name, outcome) in hosts {
        checks.add_named(name, outcome, took);
    }
    Ok(())
}

/// One check per host, from [`static_hosts::preflight`]. Doctor keeps
/// nothing: the transport works in a scratch directory (its logs, and the
/// host keys ssh records on first contact), seeded with a copy of the lab's
/// pinned `.kubelab/known_hosts` when there is one, so a host whose key
/// changed fails here as it would in `lab up`. The lab's folder is never
/// written to.
async fn host_checks(loaded: &LoadedLab, runner: &Runner) -> Result<Vec<(String, Outcome)>> {
    let LoadedLab { lab, topo, .. } = loaded;
    let scratch = tempfile::Builder::new()
        .prefix("kubelab-doctor-")
        .tempdir()?;
    let pinned = loaded.state_dir().join("known_hosts");
    if pinned.is_file() {
        fs_err::copy(&pinned, scratch.path().join("known_hosts"))?;
    }
    let transport = Transport::new(&lab.name, scratch.path(), static_targets(lab), runner)?;
    let logs = scratch.path().join("logs");
    let work = static_hosts::preflight(&transport, &topo.nodes, &logs);
    // Ctrl-C: the ssh children stop too, and the scratch directory goes
    // with this function.
    let on = tools::OnInterrupt {
        grace: INTERRUPT_GRACE,
        notice: None,
        hint: None,
        finish: true,
    };
    let finished = tools::interruptible(&runner.children, on, work).await;
    // The socket folder is unique to this scratch directory and empty once
    // the masters are closed.
    let _ = fs_err::remove_dir(transport.control_dir());
    Ok(finished?
        .into_iter()
        .map(|(node, result)| {
            let name = format!("host {}", node.name);
            let outcome = match result {
                Ok(_) => Outcome::Passed(format!(
                    "{} ({}): answers over SSH, passwordless sudo works",
                    node.name,
                    transport
                        .target(&node.name)
                        .map(SshTarget::describe)
                        .unwrap_or_default()
                )),
                Err(not_ready) => Outcome::Failed {
                    why: not_ready.message(),
                    hint: not_ready.fix(),
                },
            };
            (name, outcome)
        })
        .collect())
}

/// Another lab of this host that is up on the same name, network or SSH
/// ports (from the registry `kubelab labs` lists).
fn other_labs(loaded: &LoadedLab, settings: &Settings) -> Outcome {
    match crate::registry::check_no_clash(&settings.registry, loaded) {
        Ok(()) => {
            Outcome::Passed("no other lab that is up uses its name, network or SSH ports".into())
        }
        Err(e) => Outcome::Failed {
            why: e.to_string(),
            hint: e.hint(),
        },
    }
}

fn first_line(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

fn memory(loaded: &LoadedLab, settings: &Settings) -> Outcome {
    let need = loaded.topo.total_memory_mb();
    match crate::host::memory_mb(settings) {
        Some(have) if need + crate::host::HOST_RESERVE_MB <= have => Outcome::Passed(format!(
            "the lab needs {}, this host has {}",
            printer::megabytes(need),
            printer::megabytes(have)
        )),
        Some(have) if need <= have => Outcome::Warned {
            why: format!(
                "the lab needs {} of this host's {}, leaving less than {} for the host",
                printer::megabytes(need),
                printer::megabytes(have),
                printer::megabytes(crate::host::HOST_RESERVE_MB)
            ),
            hint: Some("lower nodes.*.memory or counts in lab.yaml".into()),
        },
        Some(have) => Outcome::Failed {
            why: format!(
                "the lab needs {} but this host has {}",
                printer::megabytes(need),
                printer::megabytes(have)
            ),
            hint: Some(
                "lower nodes.*.memory or counts in lab.yaml (or `kubelab init --force`, which replaces lab.yaml with a lab sized for this host: your edits are lost)"
                    .into(),
            ),
        },
        None => Outcome::Warned {
            why: "could not read this host's RAM".into(),
            hint: None,
        },
    }
}

fn disk() -> Outcome {
    // VirtualBox keeps VMs under the home directory by default.
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/".into());
    match nix::sys::statvfs::statvfs(&home) {
        Ok(s) => {
            // fsblkcnt_t and c_ulong are u32 on some platforms.
            #[allow(clippy::unnecessary_cast)]
            let free_mb = s.blocks_available() as u64 * s.fragment_size() as u64 / (1024 * 1024);
            if free_mb >= 20 * 1024 {
                Outcome::Passed(format!(
                    "{} free under {}",
                    printer::megabytes(free_mb),
                    home.display()
                ))
            } else {
                Outcome::Warned {
                    why: format!(
                        "only {} free under {}; a lab takes about 10-20 GB",
                        printer::megabytes(free_mb),
                        home.display()
                    ),
                    hint: Some("free some space".into()),
                }
            }
        }
        Err(e) => Outcome::Warned {
            why: format!("could not read free space: {e}"),
            hint: None,
        },
    }
}
