//! `kubelab doctor`: can this host run the lab? Each check is Passed, Warned
//! or Failed with a hint, reported as `lab verify` reports its checks (the
//! same table, JSON and exit status: 1 on any Failed).

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use crate::app::LoadedLab;
use crate::config::{BoxSpec, Provider, VIRTUALBOX_ALLOWED};
use crate::error::{Error, Result};
use crate::host::{Facts, Os};
use crate::machines::static_hosts;
use crate::platform::{self, Arch, BoxSupport, Pairing, Version};
use crate::printer::{self, Printer};
use crate::settings::Settings;
use crate::state::{MachineStatus, State};
use crate::tools::ssh::{SshTarget, Transport, static_targets};
use crate::tools::vagrant::Vagrant;
use crate::tools::vboxmanage::VBoxManage;
use crate::tools::{self, Runner};
use crate::verify::{self, Interrupt, Outcome, Report};

/// Doctor's checks: the second group of check ids beside verify's
/// [`CheckId`](crate::verify::CheckId), reported the same way. A static
/// lab adds one check per host, named `host NODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoctorCheck {
    Vagrant,
    Virtualbox,
    VagrantVirtualbox,
    Kvm,
    HyperV,
    Architecture,
    HostOnlyRange,
    HostOnlyInterfaces,
    DhcpServers,
    Routes,
    OtherLabs,
    SshPorts,
    Memory,
    Disk,
    CpuVirtualization,
    Ssh,
    Box,
}

impl DoctorCheck {
    pub fn name(self) -> &'static str {
        match self {
            DoctorCheck::Vagrant => "vagrant",
            DoctorCheck::Virtualbox => "virtualbox",
            DoctorCheck::VagrantVirtualbox => "vagrant x virtualbox",
            DoctorCheck::Kvm => "kvm",
            DoctorCheck::HyperV => "hyper-v",
            DoctorCheck::Architecture => "architecture",
            DoctorCheck::HostOnlyRange => "host-only range",
            DoctorCheck::HostOnlyInterfaces => "host-only interfaces",
            DoctorCheck::DhcpServers => "dhcp servers",
            DoctorCheck::Routes => "routes",
            DoctorCheck::OtherLabs => "other-labs",
            DoctorCheck::SshPorts => "ssh ports",
            DoctorCheck::Memory => "memory",
            DoctorCheck::Disk => "disk",
            DoctorCheck::CpuVirtualization => "cpu virtualization",
            DoctorCheck::Ssh => "ssh",
            DoctorCheck::Box => "box",
        }
    }
}

/// The checks as they finish, numbered in that order; each one's time is
/// the time since the one before it ended (what it ran to get its answer).
struct Checks {
    reports: Vec<Report>,
    last: Instant,
}

impl Checks {
    fn new() -> Checks {
        Checks {
            reports: Vec::new(),
            last: Instant::now(),
        }
    }

    fn add(&mut self, id: DoctorCheck, outcome: Outcome) {
        let elapsed = self.last.elapsed();
        self.add_named(id.name().to_string(), outcome, elapsed);
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
    verbose: bool,
) -> Result<i32> {
    let runner = Runner::new(verbose);
    let mut checks = Checks::new();
    match loaded.lab.provider {
        Provider::Static => static_checks(&mut checks, loaded, settings, &runner).await?,
        Provider::Virtualbox => virtualbox_checks(&mut checks, loaded, settings, &runner).await,
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

    // Vagrant
    let vagrant = Vagrant::find(&state_dir, runner);
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
    let vbox = VBoxManage::find(log.clone(), runner);
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

    // The host-only range VirtualBox allows.
    let cidr = loaded.lab.network.cidr;
    checks.add(DoctorCheck::HostOnlyRange, host_only_range(cidr));

    // Host-only interfaces and DHCP servers that clash with the lab.
    if let Ok(v) = &vbox {
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

    // Fixed SSH ports.
    let state = State::load(&state_dir.join("state.json"), &loaded.lab.name).unwrap_or_default();
    checks.add(DoctorCheck::SshPorts, ssh_ports(loaded, &state));

    // RAM, disk, CPU.
    checks.add(DoctorCheck::Memory, memory(loaded, settings));
    checks.add(DoctorCheck::Disk, disk());
    checks.add(DoctorCheck::CpuVirtualization, cpu_virtualization(&facts));

    checks.add(DoctorCheck::Ssh, ssh_check("log in to the VMs").0);

    // The box.
    if let Ok(v) = &vagrant {
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
    tokio::pin!(work);
    let mut interrupt = Interrupt::listen()?;
    let finished = tokio::select! {
        results = &mut work => Ok(results),
        () = interrupt.recv() => Err(()),
    };
    // The socket folder is unique to this scratch directory and empty once
    // the masters are closed.
    let forget_sockets = || {
        let _ = fs_err::remove_dir(transport.control_dir());
    };
    let Ok(results) = finished else {
        // Ctrl-C: the ssh children (each in its own process group) stop
        // too, and the scratch directory goes with this function.
        verify::stop_children(runner, work).await;
        forget_sockets();
        return Err(Error::Interrupted { hint: None });
    };
    forget_sockets();
    Ok(results
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

fn host_only_range(cidr: Ipv4Net) -> Outcome {
    if VIRTUALBOX_ALLOWED.contains(&cidr) {
        return Outcome::Passed(format!("{cidr} is inside 192.168.56.0/21"));
    }
    let conf = fs_err::read_to_string("/etc/vbox/networks.conf").unwrap_or_default();
    let allowed = conf.lines().any(|l| {
        l.trim_start().starts_with('*')
            && l.split_whitespace()
                .skip(1)
                .any(|n| n.parse::<Ipv4Net>().is_ok_and(|n| n.contains(&cidr)))
    });
    if allowed {
        Outcome::Passed(format!("{cidr} is allowed by /etc/vbox/networks.conf"))
    } else {
        Outcome::Failed {
            why: format!("{cidr} is outside 192.168.56.0/21 and not in /etc/vbox/networks.conf"),
            hint: Some(format!(
                "add the line `* {cidr}` to /etc/vbox/networks.conf"
            )),
        }
    }
}

fn host_only_interfaces(cidr: Ipv4Net, ifs: &[crate::tools::vboxmanage::HostOnlyIf]) -> Outcome {
    let host = Ipv4Addr::from(u32::from(cidr.network()) + 1);
    for i in ifs {
        let (Some(addr), Some(mask)) = (i.address, i.netmask) else {
            continue;
        };
        let Ok(net) = Ipv4Net::with_netmask(addr, mask) else {
            continue;
        };
        let net = net.trunc();
        if net.contains(&cidr.network()) || cidr.contains(&net.network()) {
            if addr == host && net == cidr {
                return Outcome::Passed(format!(
                    "{} already holds {host}/{}",
                    i.name,
                    cidr.prefix_len()
                ));
            }
            return Outcome::Failed {
                why: format!(
                    "{} has {addr}/{} which overlaps the lab's {cidr} but is not its host address {host}",
                    i.name,
                    net.prefix_len()
                ),
                hint: Some(format!(
                    "`VBoxManage hostonlyif ipconfig {} --ip {host} --netmask 255.255.255.0`, or choose another network.cidr",
                    i.name
                )),
            };
        }
    }
    Outcome::Passed("no interface conflicts; Vagrant creates the one it needs".into())
}

fn dhcp_servers(loaded: &LoadedLab, servers: &[crate::tools::vboxmanage::DhcpServer]) -> Outcome {
    for s in servers.iter().filter(|s| s.enabled) {
        let (Some(lower), Some(upper)) = (s.lower, s.upper) else {
            continue;
        };
        let clash: Vec<String> = loaded
            .topo
            .nodes
            .iter()
            .filter(|n| n.address >= lower && n.address <= upper || Some(n.address) == s.server)
            .map(|n| format!("{} {}", n.name, n.address))
            .collect();
        if !clash.is_empty() {
            return Outcome::Failed {
                why: format!(
                    "{} leases {lower}-{upper}, which holds {}",
                    s.network,
                    clash.join(", ")
                ),
                hint: Some(format!(
                    "`VBoxManage dhcpserver remove --netname {}` or move the lab's addresses below {lower}",
                    s.network
                )),
            };
        }
    }
    Outcome::Passed("no DHCP range holds a lab address".into())
}

/// A route for the lab's network through something other than a VirtualBox
/// interface means the host already uses that network.
fn routes(cidr: Ipv4Net) -> Outcome {
    let Ok(table) = fs_err::read_to_string("/proc/net/route") else {
        return Outcome::Passed("no /proc/net/route on this OS; not checked".into());
    };
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let parse = |hex: &str| {
            u32::from_str_radix(hex, 16)
                .ok()
                .map(|v| Ipv4Addr::from(u32::from_be(v)))
        };
        let (Some(dest), Some(mask)) = (parse(f[1]), parse(f[7])) else {
            continue;
        };
        if u32::from(mask) == 0 {
            continue; // the default route overlaps everything
        }
        let Ok(net) = Ipv4Net::with_netmask(dest, mask) else {
            continue;
        };
        let iface = f[0];
        if (net.contains(&cidr.network()) || cidr.contains(&net.network()))
            && !iface.starts_with("vboxnet")
        {
            return Outcome::Failed { why: format!("{net} is routed through {iface}, overlapping the lab's {cidr}"), hint: Some("choose a network.cidr this host does not use (another /24 inside 192.168.56.0/21)".into()) };
        }
    }
    Outcome::Passed(format!("nothing on this host routes {cidr} elsewhere"))
}

fn ssh_ports(loaded: &LoadedLab, state: &State) -> Outcome {
    let mut busy = Vec::new();
    for node in &loaded.topo.nodes {
        let ours = state
            .nodes
            .get(&node.name)
            .is_some_and(|n| n.machine == MachineStatus::Created);
        if ours {
            continue; // the lab's own VM holds it
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, node.ssh_port)).is_err() {
            busy.push(format!("{} ({})", node.ssh_port, node.name));
        }
    }
    if busy.is_empty() {
        Outcome::Passed(format!(
            "{} fixed ports free on 127.0.0.1",
            loaded.topo.nodes.len()
        ))
    } else {
        Outcome::Failed {
            why: format!("in use on 127.0.0.1: {}", busy.join(", ")),
            hint: Some("stop what holds them, or set network.ssh_port_base to a free range".into()),
        }
    }
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
                "lower nodes.*.memory or counts (`kubelab init --force` sizes a lab for this host)"
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

fn cpu_virtualization(facts: &Facts) -> Outcome {
    match &facts.cpuinfo {
        Some(info) if info.split_whitespace().any(|w| w == "vmx" || w == "svm") => {
            Outcome::Passed("VT-x/AMD-V present".into())
        }
        Some(_) => Outcome::Warned {
            why: "no vmx/svm flag: VirtualBox will be very slow or refuse 64-bit guests".into(),
            hint: Some(
                "enable VT-x/AMD-V in the firmware, or nested virtualization on a VM host".into(),
            ),
        },
        None => Outcome::Passed("not checked on this OS".into()),
    }
}

/// `VBoxManage --version`: a version, or the warning that its kernel
/// driver is missing (it still prints a version then).
fn virtualbox(output: &str) -> Outcome {
    let version = platform::virtualbox_version_line(output).unwrap_or("(no version)");
    if platform::virtualbox_driver_missing(output) {
        return Outcome::Failed { why: format!("VBoxManage {version}, but VirtualBox's kernel driver (vboxdrv) is not loaded: no VM can start"), hint: Some("`sudo /sbin/vboxconfig` builds and loads it (it needs this kernel's headers; with Secure Boot, sign the modules or turn it off)".into()) };
    }
    Outcome::Passed(format!("VBoxManage {version}"))
}

/// The Vagrant x VirtualBox pair against [`platform::DRIVER_SUPPORT`].
fn vagrant_virtualbox(vagrant: Version, vbox: Version) -> Outcome {
    let (major, minor) = vbox.minor();
    match platform::pairing(vagrant, vbox) {
        Pairing::Supported { needs } => Outcome::Passed(format!(
            "Vagrant {vagrant} drives VirtualBox {major}.{minor} (it needs Vagrant {needs} or newer)"
        )),
        Pairing::VagrantTooOld { needs, source } => Outcome::Failed {
            why: format!(
                "Vagrant {vagrant} does not know VirtualBox {major}.{minor} and refuses to use it (\"a version of VirtualBox installed that is not supported\"); {major}.{minor} needs Vagrant {needs} or newer ({source})"
            ),
            hint: Some(format!(
                "upgrade Vagrant to {needs} or newer (HashiCorp's downloads or apt repository; `brew upgrade --cask vagrant` on macOS), or install a VirtualBox this Vagrant knows"
            )),
        },
        Pairing::VirtualBoxTooOld => Outcome::Failed {
            why: format!(
                "VirtualBox {vbox} is older than {}, the oldest kubelab runs on (it follows 6.1.28's host-only range rule)",
                platform::OLDEST_VIRTUALBOX
            ),
            hint: Some(
                "install a current VirtualBox (7.1 or 7.2) and a Vagrant that knows it".into(),
            ),
        },
        Pairing::Unknown {
            newest_known: (km, kn),
        } => Outcome::Warned {
            why: format!(
                "VirtualBox {major}.{minor} is newer than kubelab's support table (up to {km}.{kn}); Vagrant refuses a VirtualBox minor it does not know, and {vagrant} may be one of those"
            ),
            hint: Some(format!(
                "if `kubelab lab up` fails with \"not supported\", upgrade Vagrant to a release that names VirtualBox {major}.{minor} in its CHANGELOG, or go back to VirtualBox {km}.{kn}"
            )),
        },
    }
}

/// The modules `/proc/modules` or `lsmod` lists.
fn loaded_modules(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "Module")
        .collect()
}

/// Linux: KVM holding VT-x/AMD-V while VirtualBox is the provider, with the
/// fix for the installed VirtualBox ([`platform::KVM_FLIP`]).
fn kvm(facts: &Facts, vbox: Option<Version>) -> Outcome {
    let Some(modules) = &facts.modules else {
        return Outcome::Warned {
            why: "could not read /proc/modules".into(),
            hint: None,
        };
    };
    let modules = loaded_modules(modules);
    let Some(&module) = modules
        .iter()
        .find(|m| **m == "kvm_intel" || **m == "kvm_amd")
    else {
        return Outcome::Passed(
            "no kvm_intel or kvm_amd module loaded: VirtualBox has VT-x/AMD-V to itself".into(),
        );
    };
    let code = if module == "kvm_amd" {
        "VERR_SVM_IN_USE"
    } else {
        "VERR_VMX_IN_VMX_ROOT_MODE"
    };
    let kernel = facts.kernel.as_deref().map(str::trim).unwrap_or("unknown");
    let new_kernel =
        Version::parse(kernel).is_some_and(|v| v.minor() >= platform::KVM_AT_LOAD_KERNEL);
    // Linux >= 6.12 takes VT-x when kvm loads unless the parameter says no.
    let at_load = match facts.kvm_enable_virt_at_load.as_deref().map(str::trim) {
        Some("Y" | "y" | "1") => true,
        Some("N" | "n" | "0") => false,
        _ => new_kernel,
    };
    let unload = format!("`sudo modprobe -r {module} kvm`");
    let (km, kn) = platform::KVM_AT_LOAD_KERNEL;
    let flip = platform::KVM_FLIP;
    match vbox {
        Some(v) if v >= flip => {
            if at_load || !new_kernel {
                Outcome::Passed(format!(
                    "{module} is loaded (kernel {kernel}); VirtualBox {v} works beside it as long as no KVM VM (libvirt, QEMU) runs at the same time"
                ))
            } else {
                Outcome::Failed {
                    why: format!(
                        "{module} is loaded with kvm.enable_virt_at_load=0 (kernel {kernel}): VirtualBox {flip} and newer need it at 1 or KVM unloaded (VirtualBox/virtualbox#711), so VMs fail to start"
                    ),
                    hint: Some(format!(
                        "remove `enable_virt_at_load=0` (the fix older VirtualBox needed) from /etc/modprobe.d/ and the kernel command line, then reload KVM (`sudo modprobe -r {module} kvm && sudo modprobe {module}`); or unload it: {unload}"
                    )),
                }
            }
        }
        _ if !at_load => Outcome::Passed(if new_kernel {
            format!(
                "{module} is loaded with kvm.enable_virt_at_load=0 (kernel {kernel}): VirtualBox{} can take VT-x/AMD-V; do not run KVM VMs at the same time",
                vbox.map(|v| format!(" {v}")).unwrap_or_default()
            )
        } else {
            format!(
                "{module} is loaded, but kernel {kernel} (< {km}.{kn}) takes VT-x/AMD-V only while a KVM VM runs; do not run one beside the lab"
            )
        }),
        Some(v) => Outcome::Failed {
            why: format!(
                "{module} is loaded and kernel {kernel} (>= {km}.{kn}) enables virtualization when it loads: VirtualBox {v} cannot start a VM ({code})"
            ),
            hint: Some(format!(
                "{unload} now; to keep it so after a reboot, `echo 'options kvm enable_virt_at_load=0' | sudo tee /etc/modprobe.d/kvm-virtualbox.conf` (for VirtualBox before {flip}; from {flip} on, KVM loaded with the default 1 works)"
            )),
        },
        None => Outcome::Warned {
            why: format!(
                "{module} is loaded and kernel {kernel} enables virtualization when it loads; whether VirtualBox can start VMs depends on its version, which could not be read"
            ),
            hint: Some(format!(
                "VirtualBox before {flip}: {unload}, or `options kvm enable_virt_at_load=0` in /etc/modprobe.d/; {flip} and newer: leave it at 1"
            )),
        },
    }
}

/// Windows (or WSL2 on it): Hyper-V or VBS holding the hypervisor.
fn hyper_v(facts: &Facts) -> Outcome {
    let cost = "VirtualBox then runs every VM through Windows' hypervisor (its slow \"Native Execution Manager\" mode, the green turtle): boots take several times longer and a 10-VM lab may time out (MicrosoftDocs/WSL#798, jmunixusers/cs-vm-build#406)";
    let Some(info) = &facts.systeminfo else {
        if facts.os == Os::Wsl {
            return Outcome::Warned { why: format!("kubelab runs inside WSL2, which needs Hyper-V: {cost}"), hint: Some("run kubelab, Vagrant and VirtualBox from Windows itself, with Hyper-V off, for full speed".into()) };
        }
        return Outcome::Warned {
            why: "could not run `systeminfo`".into(),
            hint: None,
        };
    };
    if info.contains("A hypervisor has been detected") {
        let launch_off = facts.bcdedit.as_deref().is_some_and(|b| {
            b.lines().any(|l| {
                let mut f = l.split_whitespace();
                f.next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("hypervisorlaunchtype"))
                    && f.next().is_some_and(|v| v.eq_ignore_ascii_case("off"))
            })
        });
        let fix = if launch_off {
            "hypervisorlaunchtype is already Off, so Virtualization-based security holds it: turn off Memory Integrity (Windows Security > Device security > Core isolation) and Credential Guard, then reboot".to_string()
        } else {
            "in an administrator shell `bcdedit /set hypervisorlaunchtype off`, turn off Memory Integrity (Windows Security > Device security > Core isolation), reboot; this stops WSL2 and Hyper-V VMs until `bcdedit /set hypervisorlaunchtype auto`".to_string()
        };
        return Outcome::Warned {
            why: format!(
                "a hypervisor is running (Hyper-V, WSL2, Memory Integrity/VBS or Windows Sandbox): {cost}"
            ),
            hint: Some(fix),
        };
    }
    let says_no = |field: &str| {
        info.lines()
            .any(|l| l.contains(field) && l.trim_end().ends_with("No"))
    };
    if says_no("Virtualization Enabled In Firmware") {
        return Outcome::Failed { why: "no hypervisor is running, but virtualization is disabled in the firmware: VirtualBox cannot start 64-bit VMs".into(), hint: Some("enable Intel VT-x / AMD-V (SVM) in the BIOS/UEFI setup".into()) };
    }
    Outcome::Passed("no hypervisor is running: VirtualBox has VT-x/AMD-V to itself".into())
}

/// The host's architecture against the box's.
fn architecture(facts: &Facts, arch: Option<Arch>, vm_box: &BoxSpec) -> Outcome {
    let Some(arch) = arch else {
        return Outcome::Warned {
            why: format!(
                "could not tell this host's architecture from `uname -m` ({:?})",
                facts.machine.as_deref().unwrap_or("").trim()
            ),
            hint: None,
        };
    };
    let rosetta = if facts.proc_translated.as_deref().map(str::trim) == Some("1") {
        " (kubelab itself runs under Rosetta)"
    } else {
        ""
    };
    let b = &vm_box.name;
    let at = vm_box
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    match platform::box_support(b, vm_box.version.as_deref(), arch) {
        BoxSupport::Yes { .. } => Outcome::Passed(format!(
            "host {arch}{rosetta}; {b}{at} has a VirtualBox {arch} build"
        )),
        BoxSupport::No { why } => {
            let d = platform::default_box(arch);
            Outcome::Failed {
                why: format!(
                    "host {arch}{rosetta}, but {b}{at} has no VirtualBox {arch} build: {why}"
                ),
                hint: Some(format!(
                    "remove box.name and box.version from lab.yaml to use the {arch} default, {} {}",
                    d.name, d.version
                )),
            }
        }
        BoxSupport::Unknown => Outcome::Warned {
            why: format!(
                "host {arch}{rosetta}; kubelab does not know whether {b}{at} has a VirtualBox {arch} build"
            ),
            hint: Some(format!(
                "`vagrant box add {b}{} --provider virtualbox --architecture {arch}` tells",
                vm_box
                    .version
                    .as_deref()
                    .map(|v| format!(" --box-version {v}"))
                    .unwrap_or_default()
            )),
        },
    }
}

/// One line of `vagrant box list`: `NAME (PROVIDER, VERSION[, (ARCH, ...)])`
/// (hashicorp/vagrant plugins/commands/box/command/list.rb; the
/// architectures appear from Vagrant 2.4.0 on).
struct ListedBox<'a> {
    name: &'a str,
    provider: &'a str,
    version: &'a str,
    arches: Vec<&'a str>,
}

fn parse_box_list(text: &str) -> Vec<ListedBox<'_>> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(char::is_whitespace)?;
            let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            let (provider, rest) = inner.split_once(',')?;
            let (version, arches) = match rest.split_once(',') {
                Some((v, a)) => (v, a.trim().trim_start_matches('(').trim_end_matches(')')),
                None => (rest, ""),
            };
            Some(ListedBox {
                name,
                provider: provider.trim(),
                version: version.trim(),
                arches: arches
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .collect(),
            })
        })
        .collect()
}

/// The box is downloaded for provider virtualbox, its version and the host's
/// architecture, or known to be downloadable.
fn box_available(list: &str, vm_box: &BoxSpec, arch: Option<Arch>) -> Outcome {
    let name = &vm_box.name;
    let version = vm_box.version.as_deref();
    let listed = parse_box_list(list);
    let here = listed.iter().find(|b| {
        b.name == name
            && b.provider == "virtualbox"
            && version.is_none_or(|v| v == b.version)
            // A box added before Vagrant 2.4 lists no architecture.
            && (b.arches.is_empty() || arch.is_none_or(|a| b.arches.contains(&a.as_str())))
    });
    let at = version.map(|v| format!(" {v}")).unwrap_or_default();
    if let Some(b) = here {
        return Outcome::Passed(format!(
            "{name} {} is downloaded for virtualbox{}",
            b.version,
            if b.arches.is_empty() {
                String::new()
            } else {
                format!(" ({})", b.arches.join(", "))
            }
        ));
    }
    let add = format!(
        "`vagrant box add {name}{} --provider virtualbox{}` fetches it now",
        version
            .map(|v| format!(" --box-version {v}"))
            .unwrap_or_default(),
        arch.map(|a| format!(" --architecture {a}"))
            .unwrap_or_default()
    );
    match arch.map(|a| platform::box_support(name, version, a)) {
        Some(BoxSupport::No { .. }) => Outcome::Failed {
            why: format!(
                "{name}{at} is not downloaded, and it has no VirtualBox build for this host (see the architecture check)"
            ),
            hint: Some("choose the box the architecture check names".into()),
        },
        Some(BoxSupport::Yes { .. }) => Outcome::Warned {
            why: format!(
                "{name}{at} is not downloaded yet; it is published for virtualbox on this architecture, and the first `kubelab lab up` fetches it (about 1 GB)"
            ),
            hint: Some(add),
        },
        _ => Outcome::Warned {
            why: format!(
                "{name}{at} is not downloaded yet, and kubelab cannot tell whether it is published for virtualbox on this architecture; the first `kubelab lab up` tries"
            ),
            hint: Some(add),
        },
    }
}

#[cfg(test)]
mod tests {
    //! Each verdict against recorded outputs of the real commands
    //! (tests/fixtures/host/README.md says where each shape comes from).
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../tests/fixtures/host/", $name))
        };
    }

    fn vbox(text: &str) -> Option<Version> {
        platform::parse_virtualbox_version(text)
    }

    fn linux(kernel: &str, modules: &str, at_load: Option<&str>) -> Facts {
        Facts {
            os: Os::Linux,
            machine: Some("x86_64\n".into()),
            kernel: Some(format!("{kernel}\n")),
            modules: Some(modules.into()),
            kvm_enable_virt_at_load: at_load.map(|v| format!("{v}\n")),
            ..Facts::default()
        }
    }

    fn spec(name: &str, version: Option<&str>) -> BoxSpec {
        BoxSpec {
            name: name.into(),
            version: version.map(Into::into),
        }
    }

    #[test]
    fn vagrant_too_old_for_the_virtualbox_minor_fails_with_the_release_to_get() {
        let vagrant =
            platform::parse_vagrant_version(fixture!("vagrant-version-2.4.1.txt")).unwrap();
        let c = vagrant_virtualbox(
            vagrant,
            vbox(fixture!("vboxmanage-version-7.1.6.txt")).unwrap(),
        );
        assert_eq!(c.status(), "failed", "{}", c.detail());
        assert!(
            c.detail()
                .contains("Vagrant 2.4.1 does not know VirtualBox 7.1"),
            "{}",
            c.detail()
        );
        assert!(
            c.hint()
                .unwrap()
                .contains("upgrade Vagrant to 2.4.2 or newer")
        );

        let c = vagrant_virtualbox(
            vagrant,
            vbox(fixture!("vboxmanage-version-7.2.4.txt")).unwrap(),
        );
        assert_eq!(c.status(), "failed");
        assert!(c.hint().unwrap().contains("2.4.9"));

        let vagrant =
            platform::parse_vagrant_version(fixture!("vagrant-version-2.4.9.txt")).unwrap();
        let c = vagrant_virtualbox(
            vagrant,
            vbox(fixture!("vboxmanage-version-7.2.14.txt")).unwrap(),
        );
        assert_eq!(c.status(), "passed", "{}", c.detail());
    }

    #[test]
    fn a_missing_vboxdrv_fails_even_though_a_version_is_printed() {
        let out = fixture!("vboxmanage-version-no-vboxdrv.txt");
        assert_eq!(vbox(out), Some(Version(7, 2, 4)));
        let c = virtualbox(out);
        assert_eq!(c.status(), "failed");
        assert!(c.hint().unwrap().contains("/sbin/vboxconfig"));
        assert_eq!(
            virtualbox(fixture!("vboxmanage-version-7.2.4.txt")).status(),
            "passed"
        );
    }

    #[test]
    fn kvm_loaded_on_a_new_kernel_fails_before_virtualbox_7_2_10_with_the_old_fix() {
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("Y"),
        );
        let c = kvm(&facts, vbox(fixture!("vboxmanage-version-7.2.4.txt")));
        assert_eq!(c.status(), "failed", "{}", c.detail());
        assert!(
            c.detail().contains("VERR_VMX_IN_VMX_ROOT_MODE"),
            "{}",
            c.detail()
        );
        let fix = c.hint().unwrap();
        assert!(fix.contains("sudo modprobe -r kvm_intel kvm"), "{fix}");
        assert!(fix.contains("options kvm enable_virt_at_load=0"), "{fix}");

        // The parameter file missing on a 6.14 kernel means its default, on.
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("proc-modules-kvm-amd.txt"),
            None,
        );
        let c = kvm(&facts, vbox(fixture!("vboxmanage-version-7.1.6.txt")));
        assert_eq!(c.status(), "failed");
        assert!(c.detail().contains("VERR_SVM_IN_USE"), "{}", c.detail());
        assert!(c.hint().unwrap().contains("sudo modprobe -r kvm_amd kvm"));

        // With the old fix applied, VirtualBox 7.2.4 is fine.
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("N"),
        );
        assert_eq!(
            kvm(&facts, vbox(fixture!("vboxmanage-version-7.2.4.txt"))).status(),
            "passed"
        );
    }

    #[test]
    fn from_virtualbox_7_2_10_the_old_kvm_fix_is_the_problem() {
        let v7214 = vbox(fixture!("vboxmanage-version-7.2.14.txt"));
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("N"),
        );
        let c = kvm(&facts, v7214);
        assert_eq!(c.status(), "failed", "{}", c.detail());
        assert!(
            c.detail().contains("enable_virt_at_load=0"),
            "{}",
            c.detail()
        );
        assert!(c.hint().unwrap().contains("remove `enable_virt_at_load=0`"));

        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("Y"),
        );
        assert_eq!(kvm(&facts, v7214).status(), "passed");
    }

    #[test]
    fn kvm_is_harmless_on_an_old_kernel_and_absent_modules_pass() {
        let v724 = vbox(fixture!("vboxmanage-version-7.2.4.txt"));
        let facts = linux("6.8.0-45-generic", fixture!("lsmod-kvm-intel.txt"), None);
        let c = kvm(&facts, v724);
        assert_eq!(c.status(), "passed", "{}", c.detail());
        assert!(c.detail().contains("only while a KVM VM runs"));
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("proc-modules-no-kvm.txt"),
            Some("Y"),
        );
        assert_eq!(kvm(&facts, v724).status(), "passed");
        // The version unknown: a warning with both fixes.
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("Y"),
        );
        assert_eq!(kvm(&facts, None).status(), "warned");
    }

    #[test]
    fn hyper_v_running_is_a_warning_with_its_cost_and_the_fix() {
        let mut facts = Facts {
            os: Os::Windows,
            systeminfo: Some(fixture!("systeminfo-hypervisor.txt").into()),
            ..Facts::default()
        };
        let c = hyper_v(&facts);
        assert_eq!(c.status(), "warned");
        assert!(c.detail().contains("green turtle"), "{}", c.detail());
        assert!(
            c.hint()
                .as_deref()
                .unwrap()
                .contains("bcdedit /set hypervisorlaunchtype off")
        );
        // The launch type off already: Memory Integrity (VBS) holds it.
        facts.bcdedit = Some(fixture!("bcdedit-hypervisor-off.txt").into());
        let fix = hyper_v(&facts).hint().unwrap();
        assert!(fix.contains("already Off"), "{fix}");
        assert!(fix.contains("Memory Integrity"), "{fix}");

        let facts = Facts {
            os: Os::Windows,
            systeminfo: Some(fixture!("systeminfo-no-hypervisor.txt").into()),
            ..Facts::default()
        };
        assert_eq!(hyper_v(&facts).status(), "passed");
        let facts = Facts {
            os: Os::Windows,
            systeminfo: Some(
                fixture!("systeminfo-no-hypervisor.txt")
                    .replace("In Firmware: Yes", "In Firmware: No"),
            ),
            ..Facts::default()
        };
        assert_eq!(hyper_v(&facts).status(), "failed");
    }

    #[test]
    fn an_x86_box_on_an_arm64_host_fails_and_names_the_arm64_default() {
        let facts = Facts {
            os: Os::Macos,
            machine: Some("arm64\n".into()),
            proc_translated: Some("0\n".into()),
            ..Facts::default()
        };
        let arch = facts.arch();
        assert_eq!(arch, Some(Arch::Arm64));
        let c = architecture(
            &facts,
            arch,
            &spec("bento/ubuntu-24.04", Some("202510.26.0")),
        );
        assert_eq!(c.status(), "failed", "{}", c.detail());
        assert!(
            c.hint()
                .unwrap()
                .contains("gusztavvargadr/ubuntu-server-2404-lts 2607.1.0")
        );
        let c = architecture(
            &facts,
            arch,
            &spec("gusztavvargadr/ubuntu-server-2404-lts", Some("2607.1.0")),
        );
        assert_eq!(c.status(), "passed", "{}", c.detail());
        // An x86 kubelab under Rosetta still runs on an arm64 Mac.
        let rosetta = Facts {
            machine: Some("x86_64\n".into()),
            proc_translated: Some("1\n".into()),
            ..facts
        };
        assert_eq!(rosetta.arch(), Some(Arch::Arm64));
    }

    #[test]
    fn cpu_virtualization_reads_the_recorded_flags() {
        let with = Facts {
            cpuinfo: Some(fixture!("cpuinfo-intel-vmx.txt").into()),
            ..Facts::default()
        };
        assert_eq!(cpu_virtualization(&with).status(), "passed");
        let without = Facts {
            cpuinfo: Some(fixture!("cpuinfo-no-vmx.txt").into()),
            ..Facts::default()
        };
        assert_eq!(cpu_virtualization(&without).status(), "warned");
    }

    #[test]
    fn the_box_list_is_read_per_provider_version_and_architecture() {
        let list = fixture!("box-list.txt");
        let c = box_available(
            list,
            &spec("bento/ubuntu-24.04", Some("202510.26.0")),
            Some(Arch::Amd64),
        );
        assert_eq!(c.status(), "passed", "{}", c.detail());
        // Listed for vmware_desktop only: not there for VirtualBox, but
        // published for it.
        let arm = spec("gusztavvargadr/ubuntu-server-2404-lts", Some("2607.1.0"));
        let c = box_available(list, &arm, Some(Arch::Arm64));
        assert_eq!(c.status(), "warned", "{}", c.detail());
        assert!(c.hint().unwrap().contains("vagrant box add gusztavvargadr/ubuntu-server-2404-lts --box-version 2607.1.0 --provider virtualbox --architecture arm64"));
        // Another pinned version than the one downloaded.
        let c = box_available(
            list,
            &spec("bento/ubuntu-24.04", Some("202502.21.0")),
            Some(Arch::Amd64),
        );
        assert_eq!(c.status(), "warned");
        // Never downloadable for this host.
        let c = box_available(
            list,
            &spec("bento/ubuntu-24.04", Some("202510.26.0")),
            Some(Arch::Arm64),
        );
        assert_eq!(c.status(), "failed");
    }
}
