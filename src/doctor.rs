//! `kubelab doctor`: can this host run the lab? Each check is Passed, Warned
//! or Failed with the fix; exit 1 on any Failed.

use std::net::{Ipv4Addr, TcpListener};

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::app::LoadedLab;
use crate::config::{Provider, VIRTUALBOX_ALLOWED};
use crate::error::{Error, Result};
use crate::machines::static_hosts;
use crate::printer::{self, Printer, SCHEMA_VERSION, Style};
use crate::settings::Settings;
use crate::state::{MachineStatus, State};
use crate::tools::ssh::{SshTarget, Transport, static_targets};
use crate::tools::vagrant::Vagrant;
use crate::tools::vboxmanage::VBoxManage;
use crate::tools::{self, Runner};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Warned,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(
    name: impl Into<String>,
    status: Status,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        name: name.into(),
        status,
        detail: detail.into(),
        fix,
    }
}

/// How long the ssh children get after a Ctrl-C before they are killed.
const INTERRUPT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn run(
    loaded: &LoadedLab,
    settings: &Settings,
    printer: &Printer,
    json: bool,
    verbose: bool,
) -> Result<i32> {
    let runner = Runner::new(verbose);
    let checks = match loaded.lab.provider {
        Provider::Static => static_checks(loaded, settings, &runner).await?,
        Provider::Virtualbox => virtualbox_checks(loaded, settings, &runner).await,
    };

    let failed = checks.iter().filter(|c| c.status == Status::Failed).count();
    if json {
        printer.json(&serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "lab": loaded.lab.name,
            "checks": checks,
            "failed": failed,
        }))?;
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                let status = match c.status {
                    Status::Passed => "Passed".to_string(),
                    Status::Warned => printer.paint(Style::Yellow, "Warned"),
                    Status::Failed => printer.paint(Style::Red, "Failed"),
                };
                let mut detail = c.detail.clone();
                if let Some(fix) = &c.fix {
                    detail.push_str(&format!("\n    fix: {fix}"));
                }
                vec![c.name.to_string(), status, detail]
            })
            .collect();
        printer.data(printer::table(&["CHECK", "STATUS", "DETAIL"], &rows));
    }
    if failed > 0 {
        return Err(Error::ChecksFailed(format!(
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        )));
    }
    Ok(0)
}

/// A VirtualBox lab: the tools, the host-only network, the ports, RAM, disk
/// and CPU the VMs need, and the box.
async fn virtualbox_checks(loaded: &LoadedLab, settings: &Settings, runner: &Runner) -> Vec<Check> {
    let mut checks = Vec::new();
    let state_dir = loaded.state_dir();
    let log = std::env::temp_dir().join(format!("kubelab-doctor-{}.log", std::process::id()));

    // Vagrant
    let vagrant = Vagrant::find(&state_dir, runner);
    match &vagrant {
        Ok(v) => match v.version().await {
            Ok(version) => checks.push(check(
                "vagrant",
                Status::Passed,
                format!("Vagrant {version}"),
                None,
            )),
            Err(e) => checks.push(check(
                "vagrant",
                Status::Failed,
                format!("`vagrant --version` failed: {}", first_line(&e)),
                Some("reinstall Vagrant".into()),
            )),
        },
        Err(e) => checks.push(check(
            "vagrant",
            Status::Failed,
            "not found on PATH",
            e.hint(),
        )),
    }

    // VirtualBox
    let vbox = VBoxManage::find(log.clone(), runner);
    match &vbox {
        Ok(v) => match v.version().await {
            Ok(version) => checks.push(check("virtualbox", Status::Passed, format!("VBoxManage {version}"), None)),
            Err(e) => checks.push(check("virtualbox", Status::Failed, format!("`VBoxManage --version` failed: {}", first_line(&e)), Some("reinstall VirtualBox; its kernel modules may be missing (`sudo /sbin/vboxconfig`)".into()))),
        },
        Err(e) => checks.push(check("virtualbox", Status::Failed, "VBoxManage not found on PATH", e.hint())),
    }

    // The host-only range VirtualBox allows.
    let cidr = loaded.lab.network.cidr;
    checks.push(host_only_range(cidr));

    // Host-only interfaces and DHCP servers that clash with the lab.
    if let Ok(v) = &vbox {
        match v.host_only_interfaces().await {
            Ok(ifs) => checks.push(host_only_interfaces(cidr, &ifs)),
            Err(e) => checks.push(check(
                "host-only interfaces",
                Status::Warned,
                format!("could not list them: {}", first_line(&e)),
                None,
            )),
        }
        match v.dhcp_servers().await {
            Ok(servers) => checks.push(dhcp_servers(loaded, &servers)),
            Err(e) => checks.push(check(
                "dhcp servers",
                Status::Warned,
                format!("could not list them: {}", first_line(&e)),
                None,
            )),
        }
    }
    checks.push(routes(cidr));
    checks.push(other_labs(loaded, settings));

    // Fixed SSH ports.
    let state = State::load(&state_dir.join("state.json"), &loaded.lab.name).unwrap_or_default();
    checks.push(ssh_ports(loaded, &state));

    // RAM, disk, CPU.
    checks.push(memory(loaded, settings));
    checks.push(disk());
    checks.push(cpu_virtualization());

    checks.push(ssh_check("log in to the VMs").0);

    // The box.
    if let Ok(v) = &vagrant {
        let name = &loaded.lab.vm_box.name;
        match v.box_list().await {
            Ok(list) if list.lines().any(|l| l.split_whitespace().next() == Some(name.as_str())) => {
                checks.push(check("box", Status::Passed, format!("{name} is downloaded"), None))
            }
            Ok(_) => checks.push(check("box", Status::Warned, format!("{name} is not downloaded yet; the first `kubelab lab up` fetches it (about 1 GB)"), Some(format!("`vagrant box add {name} --provider virtualbox` to fetch it now")))),
            Err(e) => checks.push(check("box", Status::Warned, format!("could not list boxes: {}", first_line(&e)), None)),
        }
    }
    let _ = fs_err::remove_file(&log);

    checks
}

/// `ssh` on PATH, and whether it is there.
fn ssh_check(purpose: &str) -> (Check, bool) {
    match tools::find("ssh", purpose) {
        Ok(path) => (
            check("ssh", Status::Passed, path.display().to_string(), None),
            true,
        ),
        Err(e) => (
            check("ssh", Status::Failed, "not found on PATH", e.hint()),
            false,
        ),
    }
}

/// A static lab: its servers exist, so none of the VirtualBox checks apply.
/// `ssh`, other labs, and per host exactly the preflight `lab up` runs.
async fn static_checks(
    loaded: &LoadedLab,
    settings: &Settings,
    runner: &Runner,
) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let (ssh, found) = ssh_check("log in to the lab's servers");
    checks.push(ssh);
    checks.push(other_labs(loaded, settings));
    if !found {
        checks.extend(loaded.topo.nodes.iter().map(|n| {
            check(
                format!("host {}", n.name),
                Status::Failed,
                "not checked: `ssh` is not on PATH",
                Some("install ssh (see the ssh check)".into()),
            )
        }));
        return Ok(checks);
    }
    checks.extend(host_checks(loaded, runner).await?);
    Ok(checks)
}

/// One check per host, from [`static_hosts::preflight`]. Doctor keeps
/// nothing: the transport works in a scratch directory (its logs, and the
/// host keys ssh records on first contact), seeded with a copy of the lab's
/// pinned `.kubelab/known_hosts` when there is one, so a host whose key
/// changed fails here as it would in `lab up`. The lab's folder is never
/// written to.
async fn host_checks(loaded: &LoadedLab, runner: &Runner) -> Result<Vec<Check>> {
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
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let finished = tokio::select! {
        results = &mut work => Ok(results),
        _ = int.recv() => Err(()),
        _ = term.recv() => Err(()),
    };
    // The socket folder is unique to this scratch directory and empty once
    // the masters are closed.
    let forget_sockets = || {
        let _ = fs_err::remove_dir(transport.control_dir());
    };
    let Ok(results) = finished else {
        // Ctrl-C: the ssh children (each in its own process group) stop
        // too, and the scratch directory goes with this function.
        runner.children.begin_interrupt();
        let _ = tokio::join!(work, runner.children.interrupt(INTERRUPT_GRACE));
        forget_sockets();
        return Err(Error::Interrupted { hint: None });
    };
    forget_sockets();
    Ok(results
        .into_iter()
        .map(|(node, result)| {
            let name = format!("host {}", node.name);
            match result {
                Ok(_) => check(
                    name,
                    Status::Passed,
                    format!(
                        "{} ({}): answers over SSH, passwordless sudo works",
                        node.name,
                        transport
                            .target(&node.name)
                            .map(SshTarget::describe)
                            .unwrap_or_default()
                    ),
                    None,
                ),
                Err(not_ready) => check(name, Status::Failed, not_ready.message(), not_ready.fix()),
            }
        })
        .collect())
}

/// Another lab of this host that is up on the same name, network or SSH
/// ports (from the registry `kubelab labs` lists).
fn other_labs(loaded: &LoadedLab, settings: &Settings) -> Check {
    match crate::registry::check_no_clash(&settings.registry, loaded) {
        Ok(()) => check(
            "other-labs",
            Status::Passed,
            "no other lab that is up uses its name, network or SSH ports",
            None,
        ),
        Err(e) => check("other-labs", Status::Failed, e.to_string(), e.hint()),
    }
}

fn first_line(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

fn host_only_range(cidr: Ipv4Net) -> Check {
    if VIRTUALBOX_ALLOWED.contains(&cidr) {
        return check(
            "host-only range",
            Status::Passed,
            format!("{cidr} is inside 192.168.56.0/21"),
            None,
        );
    }
    let conf = fs_err::read_to_string("/etc/vbox/networks.conf").unwrap_or_default();
    let allowed = conf.lines().any(|l| {
        l.trim_start().starts_with('*')
            && l.split_whitespace()
                .skip(1)
                .any(|n| n.parse::<Ipv4Net>().is_ok_and(|n| n.contains(&cidr)))
    });
    if allowed {
        check(
            "host-only range",
            Status::Passed,
            format!("{cidr} is allowed by /etc/vbox/networks.conf"),
            None,
        )
    } else {
        check(
            "host-only range",
            Status::Failed,
            format!("{cidr} is outside 192.168.56.0/21 and not in /etc/vbox/networks.conf"),
            Some(format!(
                "add the line `* {cidr}` to /etc/vbox/networks.conf"
            )),
        )
    }
}

fn host_only_interfaces(cidr: Ipv4Net, ifs: &[crate::tools::vboxmanage::HostOnlyIf]) -> Check {
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
                return check(
                    "host-only interfaces",
                    Status::Passed,
                    format!("{} already holds {host}/{}", i.name, cidr.prefix_len()),
                    None,
                );
            }
            return check(
                "host-only interfaces",
                Status::Failed,
                format!(
                    "{} has {addr}/{} which overlaps the lab's {cidr} but is not its host address {host}",
                    i.name,
                    net.prefix_len()
                ),
                Some(format!(
                    "`VBoxManage hostonlyif ipconfig {} --ip {host} --netmask 255.255.255.0`, or choose another network.cidr",
                    i.name
                )),
            );
        }
    }
    check(
        "host-only interfaces",
        Status::Passed,
        "no interface conflicts; Vagrant creates the one it needs",
        None,
    )
}

fn dhcp_servers(loaded: &LoadedLab, servers: &[crate::tools::vboxmanage::DhcpServer]) -> Check {
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
            return check(
                "dhcp servers",
                Status::Failed,
                format!(
                    "{} leases {lower}-{upper}, which holds {}",
                    s.network,
                    clash.join(", ")
                ),
                Some(format!(
                    "`VBoxManage dhcpserver remove --netname {}` or move the lab's addresses below {lower}",
                    s.network
                )),
            );
        }
    }
    check(
        "dhcp servers",
        Status::Passed,
        "no DHCP range holds a lab address",
        None,
    )
}

/// A route for the lab's network through something other than a VirtualBox
/// interface means the host already uses that network.
fn routes(cidr: Ipv4Net) -> Check {
    let Ok(table) = fs_err::read_to_string("/proc/net/route") else {
        return check(
            "routes",
            Status::Passed,
            "no /proc/net/route on this OS; not checked",
            None,
        );
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
            return check(
                "routes",
                Status::Failed,
                format!("{net} is routed through {iface}, overlapping the lab's {cidr}"),
                Some("choose a network.cidr this host does not use (another /24 inside 192.168.56.0/21)".into()),
            );
        }
    }
    check(
        "routes",
        Status::Passed,
        format!("nothing on this host routes {cidr} elsewhere"),
        None,
    )
}

fn ssh_ports(loaded: &LoadedLab, state: &State) -> Check {
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
        check(
            "ssh ports",
            Status::Passed,
            format!("{} fixed ports free on 127.0.0.1", loaded.topo.nodes.len()),
            None,
        )
    } else {
        check(
            "ssh ports",
            Status::Failed,
            format!("in use on 127.0.0.1: {}", busy.join(", ")),
            Some("stop what holds them, or set network.ssh_port_base to a free range".into()),
        )
    }
}

fn memory(loaded: &LoadedLab, settings: &Settings) -> Check {
    let need = loaded.topo.total_memory_mb();
    match crate::host::memory_mb(settings) {
        Some(have) if need + crate::host::HOST_RESERVE_MB <= have => check(
            "memory",
            Status::Passed,
            format!(
                "the lab needs {}, this host has {}",
                printer::megabytes(need),
                printer::megabytes(have)
            ),
            None,
        ),
        Some(have) if need <= have => check(
            "memory",
            Status::Warned,
            format!(
                "the lab needs {} of this host's {}, leaving less than {} for the host",
                printer::megabytes(need),
                printer::megabytes(have),
                printer::megabytes(crate::host::HOST_RESERVE_MB)
            ),
            Some("lower nodes.*.memory or counts in lab.yaml".into()),
        ),
        Some(have) => check(
            "memory",
            Status::Failed,
            format!(
                "the lab needs {} but this host has {}",
                printer::megabytes(need),
                printer::megabytes(have)
            ),
            Some(
                "lower nodes.*.memory or counts (`kubelab init --force` sizes a lab for this host)"
                    .into(),
            ),
        ),
        None => check(
            "memory",
            Status::Warned,
            "could not read this host's RAM",
            None,
        ),
    }
}

fn disk() -> Check {
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
                check(
                    "disk",
                    Status::Passed,
                    format!(
                        "{} free under {}",
                        printer::megabytes(free_mb),
                        home.display()
                    ),
                    None,
                )
            } else {
                check(
                    "disk",
                    Status::Warned,
                    format!(
                        "only {} free under {}; a lab takes about 10-20 GB",
                        printer::megabytes(free_mb),
                        home.display()
                    ),
                    Some("free some space".into()),
                )
            }
        }
        Err(e) => check(
            "disk",
            Status::Warned,
            format!("could not read free space: {e}"),
            None,
        ),
    }
}

fn cpu_virtualization() -> Check {
    match fs_err::read_to_string("/proc/cpuinfo") {
        Ok(info) if info.split_whitespace().any(|w| w == "vmx" || w == "svm") => check(
            "cpu virtualization",
            Status::Passed,
            "VT-x/AMD-V present",
            None,
        ),
        Ok(_) => check(
            "cpu virtualization",
            Status::Warned,
            "no vmx/svm flag: VirtualBox will be very slow or refuse 64-bit guests",
            Some("enable VT-x/AMD-V in the firmware, or nested virtualization on a VM host".into()),
        ),
        Err(_) => check(
            "cpu virtualization",
            Status::Passed,
            "not checked on this OS",
            None,
        ),
    }
}
