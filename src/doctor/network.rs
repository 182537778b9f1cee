//! The lab's network against this host's: the host-only range VirtualBox
//! allows, interfaces, DHCP servers and routes that clash, the fixed SSH ports.

use std::net::{Ipv4Addr, TcpListener};

use ipnet::Ipv4Net;

use crate::config::VIRTUALBOX_ALLOWED;
use crate::lab::LoadedLab;
use crate::state::{MachineStatus, State};
use crate::verify::Outcome;

pub(super) fn host_only_range(cidr: Ipv4Net) -> Outcome {
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

pub(super) fn host_only_interfaces(
    cidr: Ipv4Net,
    ifs: &[crate::tools::vboxmanage::HostOnlyIf],
) -> Outcome {
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

pub(super) fn dhcp_servers(
    loaded: &LoadedLab,
    servers: &[crate::tools::vboxmanage::DhcpServer],
) -> Outcome {
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
pub(super) fn routes(cidr: Ipv4Net) -> Outcome {
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

pub(super) fn ssh_ports(loaded: &LoadedLab, state: &State) -> Outcome {
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
