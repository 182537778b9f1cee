//! The address rules. First the lab's networks on their own: special
//! ranges, VirtualBox's NAT network, overlaps and sizes ([`networks`], run
//! while the lab is resolved). Then the concrete nodes in them as
//! [`Topology`] derives them ([`nodes`]): every address usable and used
//! once, a role's range that runs into the next one (capacity), VirtualBox's
//! DHCP range, a pod range for every worker and a forwarded SSH port for
//! every VM. No rule here computes a node's address, port or pod range: it
//! reads the one topology made.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{
    DEFAULT_VIP_HOST, Lab, Network, Problem, Provider, Role, RoleSpec, VBOX_DHCP_FIRST_HOST,
    VIRTUALBOX_ALLOWED, host_addr,
};
use crate::topology::Topology;

/// What [`nodes`] found.
#[derive(Debug, Default)]
pub(super) struct Checked {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// `network.cidr`, `pod_cidr` and `service_cidr`: no special range, clear
/// of VirtualBox's NAT network and of each other, and big enough.
pub(super) fn networks(
    network: &Network,
    provider: Provider,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) {
    let is_static = provider == Provider::Static;
    let (cidr, pod_cidr, service_cidr) = (network.cidr, network.pod_cidr, network.service_cidr);
    let special_range = |net: Ipv4Net| {
        let a = net.network();
        if a.is_loopback() {
            Some("loopback (127.0.0.0/8)")
        } else if a.is_multicast() || u32::from(a) >= u32::from(Ipv4Addr::new(240, 0, 0, 0)) {
            Some("multicast or reserved (224.0.0.0/3)")
        } else if a.is_unspecified() || a.octets()[0] == 0 {
            Some("\"this network\" (0.0.0.0/8)")
        } else if a.is_link_local() {
            Some("link-local (169.254.0.0/16)")
        } else {
            None
        }
    };
    for (field, net) in [
        ("network.cidr", cidr),
        ("network.pod_cidr", pod_cidr),
        ("network.service_cidr", service_cidr),
    ] {
        if let Some(what) = special_range(net) {
            problems.push(Problem::new(
                field,
                format!("{net} is {what}: no network can be built there"),
                "use a private range, such as 192.168.56.0/24 for network.cidr, 10.200.0.0/16 for pods, 10.32.0.0/24 for services",
            ));
        }
    }
    // VirtualBox NAT: every VM's eth0 (10.0.2.15) and its DNS forwarder.
    let nat: Ipv4Net = "10.0.2.0/24".parse().expect("constant");
    if !is_static {
        for (field, net) in [
            ("network.cidr", cidr),
            ("network.pod_cidr", pod_cidr),
            ("network.service_cidr", service_cidr),
        ] {
            if net.contains(&nat.network()) || nat.contains(&net.network()) {
                problems.push(Problem::new(
                    field,
                    format!("{net} overlaps 10.0.2.0/24, VirtualBox's NAT network (every VM's first adapter, 10.0.2.15, and its DNS at 10.0.2.3)"),
                    "choose a range that does not contain 10.0.2.0/24, such as 10.200.0.0/16 for pods",
                ));
            }
        }
    }
    if cidr.prefix_len() > 29 {
        problems.push(Problem::new(
            "network.cidr",
            format!("{cidr} is too small for a lab"),
            "use a /24 such as 192.168.56.0/24",
        ));
    }
    if !is_static && !VIRTUALBOX_ALLOWED.contains(&cidr) {
        warnings.push(Problem::new(
            "network.cidr",
            format!("{cidr} is outside 192.168.56.0/21, the only host-only range VirtualBox >= 6.1.28 allows by default"),
            format!("add the line `* {cidr}` to /etc/vbox/networks.conf (create the file if needed), or use a /24 inside 192.168.56.0/21"),
        ));
    }
    for (path, net, other_path, other) in [
        ("network.pod_cidr", pod_cidr, "network.cidr", cidr),
        ("network.service_cidr", service_cidr, "network.cidr", cidr),
        (
            "network.service_cidr",
            service_cidr,
            "network.pod_cidr",
            pod_cidr,
        ),
    ] {
        if net.contains(&other.network()) || other.contains(&net.network()) {
            problems.push(Problem::new(
                path,
                format!("{net} overlaps {other_path} {other}"),
                format!("choose a range that shares no address with {other}"),
            ));
        }
    }
    if pod_cidr.prefix_len() > 16 {
        problems.push(Problem::new(
            "network.pod_cidr",
            format!("{pod_cidr} is too small: every worker takes a /24 out of it"),
            "use a /16 such as 10.200.0.0/16",
        ));
    }
    if service_cidr.prefix_len() > 28 {
        problems.push(Problem::new(
            "network.service_cidr",
            format!("{service_cidr} is too small for the cluster's services"),
            "use a /24 such as 10.32.0.0/24",
        ));
    }
}

/// The rules over the concrete nodes: `topo` is [`Topology::new`] of `lab`.
pub(super) fn nodes(lab: &Lab, topo: &Topology) -> Checked {
    let mut checked = Checked::default();
    let users = users(lab, topo);
    usable_addresses(lab, &users, &mut checked.problems);
    one_user_each(lab, topo, &users, &mut checked.problems);
    dhcp_range(lab, &users, &mut checked.warnings);
    pod_ranges(lab, topo, &mut checked.problems);
    ssh_ports(lab, topo, &mut checked.problems);
    checked
}

/// One address the lab uses, and the field that chose it.
#[derive(Debug)]
struct User {
    address: Ipv4Addr,
    /// The field to change: `nodes.worker.first_address`, `hosts[3].address`.
    path: String,
    /// The node at the address; `None` for the VIP.
    node: Option<String>,
}

impl User {
    /// The field with the node: `nodes.dns.first_address (dns0)`.
    fn label(&self) -> String {
        match &self.node {
            Some(node) => format!("{} ({node})", self.path),
            None => self.path.clone(),
        }
    }

    /// The role of a `nodes.<role>.…` field (`lb` for the VIP).
    fn role_key(&self) -> Option<&str> {
        role_key(&self.path)
    }
}

fn role_key(path: &str) -> Option<&str> {
    path.strip_prefix("nodes.")?.split('.').next()
}

/// Every address the lab uses: the VIP (with 2 or more load balancers), then
/// a static lab's hosts as lab.yaml lists them (also the workers past
/// nodes.worker.count, which `lab scale` may add), or each VM where topology
/// placed it.
fn users(lab: &Lab, topo: &Topology) -> Vec<User> {
    let mut users = Vec::new();
    if lab.role(Role::Lb).count >= 2 {
        users.push(User {
            address: lab.vip,
            path: "nodes.lb.vip".to_string(),
            node: None,
        });
    }
    for (i, h) in lab.hosts.iter().enumerate() {
        users.push(User {
            address: h.address,
            path: format!("hosts[{i}].address"),
            node: Some(h.name.clone()),
        });
    }
    if lab.provider != Provider::Static {
        users.extend(topo.nodes.iter().map(|n| User {
            address: n.address,
            path: format!("nodes.{}.first_address", n.role.key()),
            node: Some(n.name.clone()),
        }));
    }
    users
}

/// Each address inside network.cidr, neither its network nor its broadcast
/// address, and (VirtualBox) not the hypervisor's own .1.
fn usable_addresses(lab: &Lab, users: &[User], problems: &mut Vec<Problem>) {
    let cidr = lab.network.cidr;
    // A network too small for a lab is said once (`networks`); every address
    // in it would only repeat it.
    if cidr.prefix_len() > 29 {
        return;
    }
    let host = host_addr(cidr, 1);
    let broadcast = cidr.broadcast();
    let mut reported_outside = BTreeSet::new();
    for user in users {
        let addr = user.address;
        if !cidr.contains(&addr) || addr == cidr.network() || addr == broadcast {
            if reported_outside.insert(user.path.as_str()) {
                let role_hint = if user.path == "nodes.lb.vip" {
                    Some(format!(
                        "use a free address inside {cidr}, such as {}",
                        usable_near(cidr, DEFAULT_VIP_HOST)
                    ))
                } else {
                    role_capacity_hint(&user.path, &lab.roles, cidr)
                };
                problems.push(Problem::new(
                    &user.path,
                    format!(
                        "{addr} ({}) is outside the usable addresses of network.cidr {cidr}",
                        user.node.as_deref().unwrap_or("the VIP")
                    ),
                    role_hint.unwrap_or_else(|| {
                        format!(
                            "use an address between {} and {}",
                            host_addr(cidr, 2),
                            Ipv4Addr::from(u32::from(broadcast) - 1)
                        )
                    }),
                ));
            }
        } else if addr == host && lab.provider != Provider::Static {
            problems.push(Problem::new(
                &user.path,
                format!("{addr} is the hypervisor's own address on the host-only network"),
                format!(
                    "start at {} or later; .1 belongs to the host",
                    host_addr(cidr, 2)
                ),
            ));
        }
    }
}

/// No two users of one address. When a VM role's range runs into the next
/// user, say how many nodes fit (once per role) instead of "used twice".
fn one_user_each(lab: &Lab, topo: &Topology, users: &[User], problems: &mut Vec<Problem>) {
    let mut sorted: Vec<&User> = users.iter().collect();
    // Stable: users of one address keep the order `users` gave them.
    sorted.sort_by_key(|u| u.address);
    let mut capacity_reported = BTreeSet::new();
    for pair in sorted.windows(2) {
        let (earlier, later) = (pair[0], pair[1]);
        if earlier.address != later.address {
            continue;
        }
        let over_range = capacity_problem(later, earlier, lab, topo, users);
        if let Some(problem) = &over_range
            && !capacity_reported.insert(problem.path.clone())
        {
            continue;
        }
        let hint = if lab.provider == Provider::Static {
            "each host needs its own address, and the VIP (nodes.lb.vip) one no host has"
        } else {
            "give each role a first_address whose range does not reach another role's"
        };
        problems.push(over_range.unwrap_or_else(|| {
            Problem::new(
                &later.path,
                format!(
                    "{} is used twice: by {} and by {}",
                    earlier.address,
                    later.label(),
                    earlier.label()
                ),
                hint,
            )
        }));
    }
}

/// When `later` collides because a VM role's range runs into the next user of
/// the address space, say how many nodes fit instead of just "used twice". A
/// static lab's hosts have addresses, not ranges.
fn capacity_problem(
    later: &User,
    earlier: &User,
    lab: &Lab,
    topo: &Topology,
    users: &[User],
) -> Option<Problem> {
    if lab.provider == Provider::Static {
        return None;
    }
    // Find which side's range grew into the other: the role whose first address
    // is lower is the one that ran out of room.
    let candidates = [later.role_key(), earlier.role_key()];
    let mut best: Option<(&RoleSpec, Ipv4Addr)> = None;
    for key in candidates.iter().flatten() {
        let Some(spec) = lab.roles.iter().find(|r| r.role.key() == *key) else {
            continue;
        };
        // The first address above this role's start that someone else owns.
        let mut limit: Option<Ipv4Addr> = None;
        let mut others: Vec<Ipv4Addr> = lab
            .roles
            .iter()
            .filter(|r| r.role != spec.role && r.count > 0)
            .map(|r| r.first_address)
            .collect();
        if lab.role(Role::Lb).count >= 2 {
            others.push(lab.vip);
        }
        for addr in others {
            if addr > spec.first_address && limit.is_none_or(|l| addr < l) {
                limit = Some(addr);
            }
        }
        if let Some(limit) = limit {
            let fit = u32::from(limit) - u32::from(spec.first_address);
            if spec.count > fit && best.is_none_or(|(b, _)| spec.first_address < b.first_address) {
                best = Some((spec, limit));
            }
        }
    }
    let (spec, limit) = best?;
    let key = spec.role.key();
    let fit = u32::from(limit) - u32::from(spec.first_address);
    let last = topo.by_role(spec.role).last()?.address;
    // Whoever owns the address the range ran into.
    let other = users
        .iter()
        .find(|u| u.address == limit && u.role_key() != Some(key))
        .unwrap_or(later);
    Some(Problem::new(
        format!("nodes.{key}.count"),
        format!(
            "{} {key} nodes need {} to {last}, but {limit} is {}; at most {fit} fit from {}",
            spec.count,
            spec.first_address,
            other.label(),
            spec.first_address
        ),
        format!(
            "lower nodes.{key}.count to {fit}, or move nodes.{key}.first_address or {}",
            other.path
        ),
    ))
}

/// `cidr`'s host `preferred` when that is a usable address of it (not the
/// network or broadcast address, not past the end), else its last usable one.
fn usable_near(cidr: Ipv4Net, preferred: u32) -> Ipv4Addr {
    let addr = host_addr(cidr, preferred);
    if cidr.contains(&addr) && addr != cidr.network() && addr != cidr.broadcast() {
        addr
    } else {
        Ipv4Addr::from(u32::from(cidr.broadcast()).saturating_sub(1))
    }
}

fn role_capacity_hint(field_path: &str, roles: &[RoleSpec], cidr: Ipv4Net) -> Option<String> {
    let key = role_key(field_path)?;
    let spec = roles.iter().find(|r| r.role.key() == key)?;
    if !cidr.contains(&spec.first_address) {
        return Some(format!(
            "use a first_address inside {cidr} (network.cidr), such as {}",
            usable_near(cidr, spec.role.defaults().first_host)
        ));
    }
    if spec.first_address == cidr.network() || spec.first_address == cidr.broadcast() {
        return Some(format!(
            "{} is {cidr}'s own {} address, which no host may use: start nodes.{key}.first_address at {} or later",
            spec.first_address,
            if spec.first_address == cidr.network() {
                "network"
            } else {
                "broadcast"
            },
            host_addr(cidr, 2)
        ));
    }
    let last_usable = u32::from(cidr.broadcast()) - 1;
    let fit = last_usable.saturating_sub(u32::from(spec.first_address)) + 1;
    Some(format!(
        "{} {key} nodes from {} run past the end of {cidr}: lower nodes.{key}.count to {fit} or move first_address",
        spec.count, spec.first_address
    ))
}

/// VirtualBox's default host-only DHCP server sits at .100 and leases the
/// rest of a /24: an address there may be handed out twice.
fn dhcp_range(lab: &Lab, users: &[User], warnings: &mut Vec<Problem>) {
    let cidr = lab.network.cidr;
    if lab.provider == Provider::Static || cidr.prefix_len() > 24 {
        return;
    }
    let dhcp = host_addr(cidr, VBOX_DHCP_FIRST_HOST);
    let fields: BTreeSet<&str> = users
        .iter()
        .filter(|u| u.address >= dhcp && cidr.contains(&u.address))
        .map(|u| u.path.as_str())
        .collect();
    if fields.is_empty() {
        return;
    }
    warnings.push(Problem::new(
        fields.into_iter().collect::<Vec<_>>().join(", "),
        format!("addresses at or above {dhcp} collide with VirtualBox's default host-only DHCP server, which sits at .100 and leases .101-.254"),
        "keep node addresses below .100, or remove the DHCP server (`VBoxManage dhcpserver remove --network=HostInterfaceNetworking-vboxnet0`)",
    ));
}

/// Every worker takes a /24 out of network.pod_cidr; topology gives none to a
/// worker past its end.
fn pod_ranges(lab: &Lab, topo: &Topology, problems: &mut Vec<Problem>) {
    let pod_cidr = lab.network.pod_cidr;
    // Smaller than a /24 holds no worker's range; `networks` says it is too small.
    if pod_cidr.prefix_len() > 24 {
        return;
    }
    let workers: Vec<_> = topo.by_role(Role::Worker).collect();
    if workers.iter().all(|n| n.pod_cidr.is_some()) {
        return;
    }
    let worker_count = workers.len();
    let subnets = 1u64 << (24 - pod_cidr.prefix_len());
    problems.push(Problem::new(
        "nodes.worker.count",
        format!("{worker_count} workers need {worker_count} /24 pod ranges but network.pod_cidr {pod_cidr} holds {subnets}"),
        "lower the worker count or widen network.pod_cidr",
    ));
}

/// Every VM's SSH port, forwarded on the host's 127.0.0.1, between 1024 and
/// 65535: topology gives a VM whose port would pass 65535 port 0.
fn ssh_ports(lab: &Lab, topo: &Topology, problems: &mut Vec<Problem>) {
    let base = lab.network.ssh_port_base;
    if lab.provider == Provider::Static {
        return;
    }
    if base < 1024 || topo.nodes.iter().any(|n| n.ssh_port == 0) {
        problems.push(Problem::new(
            "network.ssh_port_base",
            format!("{base} gives SSH ports outside 1024-65535"),
            "use a base such as 2200",
        ));
    }
}
