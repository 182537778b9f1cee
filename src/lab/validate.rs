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

use crate::config::{
    DEFAULT_VIP_HOST, Lab, Problem, Provider, Role, RoleSpec, VBOX_DHCP_FIRST_HOST, host_addr,
};
use crate::topology::Topology;

/// What [`nodes`] found.
#[derive(Debug, Default)]
pub(super) struct Checked {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
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

#[cfg(test)]
mod tests {
    //! One rule at a time, on a lab that breaks only that rule. The lab is
    //! parsed valid, then changed the way the rule's field would be.
    use super::*;
    use crate::config::LabSource;
    use crate::config::Network;
    use crate::config::networks::networks;
    use crate::lab::parse;

    fn lab(yaml: &str) -> Lab {
        parse(yaml, LabSource::BuiltIn).unwrap_or_else(|e| panic!("{yaml:?}: {e}"))
    }

    /// The problems `rule` finds in `lab`, over Topology::new of it.
    fn run(rule: fn(&Lab, &Topology, &mut Vec<Problem>), lab: &Lab) -> Vec<String> {
        let mut problems = Vec::new();
        rule(lab, &Topology::new(lab), &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    fn with_users(rule: fn(&Lab, &[User], &mut Vec<Problem>), lab: &Lab) -> Vec<String> {
        let mut problems = Vec::new();
        rule(lab, &users(lab, &Topology::new(lab)), &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    fn collisions(lab: &Lab) -> Vec<String> {
        let topo = Topology::new(lab);
        let mut problems = Vec::new();
        one_user_each(lab, &topo, &users(lab, &topo), &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_built_in_lab_breaks_no_node_rule() {
        let lab = lab("name: a\n");
        let checked = nodes(&lab, &Topology::new(&lab));
        assert!(checked.problems.is_empty(), "{:?}", checked.problems);
        assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    }

    #[test]
    fn the_users_are_the_vip_then_each_vm_where_topology_placed_it() {
        let two = lab("nodes:\n  worker:\n    count: 2\n");
        let labels: Vec<String> = users(&two, &Topology::new(&two))
            .iter()
            .map(|u| format!("{} {}", u.address, u.label()))
            .collect();
        assert_eq!(labels[0], "192.168.56.50 nodes.lb.vip");
        assert_eq!(labels[1], "192.168.56.2 nodes.dns.first_address (dns0)");
        assert!(labels.contains(&"192.168.56.31 nodes.worker.first_address (worker1)".to_string()));
        assert_eq!(labels.len(), 1 + 1 + 3 + 3 + 2 + 2);
        // One load balancer: no VIP to place.
        let one = lab("nodes:\n  lb:\n    count: 1\n");
        assert!(
            users(&one, &Topology::new(&one))
                .iter()
                .all(|u| u.node.is_some())
        );
    }

    #[test]
    fn a_vm_on_the_hypervisors_address_is_refused() {
        let mut lab = lab("name: a\n");
        lab.roles[0].first_address = Ipv4Addr::new(192, 168, 56, 1);
        assert_eq!(
            with_users(usable_addresses, &lab),
            [
                "nodes.dns.first_address: 192.168.56.1 is the hypervisor's own address on the host-only network\n  hint: start at 192.168.56.2 or later; .1 belongs to the host"
            ]
        );
    }

    #[test]
    fn an_address_outside_the_network_is_said_once_per_field() {
        let mut lab = lab("nodes:\n  worker:\n    count: 3\n");
        let worker = Role::ALL.iter().position(|r| *r == Role::Worker).unwrap();
        lab.roles[worker].first_address = Ipv4Addr::new(192, 168, 99, 30);
        let text = with_users(usable_addresses, &lab);
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(
            text[0].starts_with("nodes.worker.first_address: 192.168.99.30 (worker0) is outside"),
            "{}",
            text[0]
        );
    }

    #[test]
    fn a_range_running_into_the_next_role_says_how_many_fit() {
        let mut lab = lab("name: a\n");
        let controller = Role::ALL
            .iter()
            .position(|r| *r == Role::Controller)
            .unwrap();
        lab.roles[controller].count = 12;
        let text = collisions(&lab);
        assert_eq!(
            text,
            [
                "nodes.controller.count: 12 controller nodes need 192.168.56.20 to 192.168.56.31, but 192.168.56.30 is nodes.worker.first_address (worker0); at most 10 fit from 192.168.56.20\n  hint: lower nodes.controller.count to 10, or move nodes.controller.first_address or nodes.worker.first_address"
            ]
        );
    }

    /// A static host has an address, not a range: a VIP on a host's address
    /// is "used twice", never "lower nodes.lb.count" (a field static labs
    /// refuse), which is what it was told before the rules read topology.
    #[test]
    fn a_static_host_on_the_vip_is_used_twice_not_a_range_too_long() {
        let dir = crate::config::tests::key_dir();
        // Three load balancers from .51, and the next host at .53.
        let yaml = crate::config::tests::static_lab_yaml("", 1)
            + "  - {role: lb, address: 192.168.56.60, ssh_user: admin, ssh_key: id}\n"
            + "  - {role: registry, address: 192.168.56.53, ssh_user: admin, ssh_key: id}\n";
        let mut lab = crate::config::tests::parse_in(&dir, &yaml).unwrap();
        lab.vip = Ipv4Addr::new(192, 168, 56, 51);
        let text = collisions(&lab);
        assert_eq!(
            text,
            [
                "hosts[8].address: 192.168.56.51 is used twice: by hosts[8].address (lb0) and by nodes.lb.vip\n  hint: each host needs its own address, and the VIP (nodes.lb.vip) one no host has"
            ]
        );
    }

    #[test]
    fn addresses_in_virtualbox_dhcp_range_warn_with_every_field() {
        let mut lab = lab("nodes:\n  registry:\n    count: 1\n");
        lab.vip = Ipv4Addr::new(192, 168, 56, 150);
        let registry = Role::ALL.iter().position(|r| *r == Role::Registry).unwrap();
        lab.roles[registry].first_address = Ipv4Addr::new(192, 168, 56, 101);
        let warnings = with_users(dhcp_range, &lab);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with(
                "nodes.lb.vip, nodes.registry.first_address: addresses at or above 192.168.56.100"
            ),
            "{}",
            warnings[0]
        );
        // Not in a network smaller than a /24, where VirtualBox has no such server.
        lab.network.cidr = "192.168.56.0/25".parse().unwrap();
        assert!(with_users(dhcp_range, &lab).is_empty());
    }

    #[test]
    fn a_worker_past_the_end_of_the_pod_range_is_refused() {
        let mut lab = lab("nodes:\n  worker:\n    count: 3\n");
        lab.network.pod_cidr = "10.200.0.0/23".parse().unwrap();
        assert_eq!(
            run(pod_ranges, &lab),
            [
                "nodes.worker.count: 3 workers need 3 /24 pod ranges but network.pod_cidr 10.200.0.0/23 holds 2\n  hint: lower the worker count or widen network.pod_cidr"
            ]
        );
        lab.network.pod_cidr = "10.200.0.0/22".parse().unwrap();
        assert!(run(pod_ranges, &lab).is_empty());
    }

    #[test]
    fn ssh_ports_are_the_vms_not_the_vips() {
        // The VIP at .250 would be port 65540, but keepalived's VIP has no
        // forwarded port; the VMs' highest (lb1, .52) is 65342.
        let mut vms = lab("name: a\n");
        vms.network.ssh_port_base = 65290;
        vms.vip = Ipv4Addr::new(192, 168, 56, 250);
        assert!(run(ssh_ports, &vms).is_empty());
        // A VM at .250 is past 65535.
        let registry = Role::ALL.iter().position(|r| *r == Role::Registry).unwrap();
        vms.roles[registry].count = 1;
        vms.roles[registry].first_address = Ipv4Addr::new(192, 168, 56, 250);
        assert_eq!(
            run(ssh_ports, &vms),
            [
                "network.ssh_port_base: 65290 gives SSH ports outside 1024-65535\n  hint: use a base such as 2200"
            ]
        );
        // Below 1024 is refused whatever the addresses.
        let mut low = lab("name: a\n");
        low.network.ssh_port_base = 1000;
        assert_eq!(run(ssh_ports, &low).len(), 1);
        // A static lab forwards nothing.
        low.provider = Provider::Static;
        assert!(run(ssh_ports, &low).is_empty());
    }

    #[test]
    fn the_nat_network_and_the_host_only_range_matter_only_to_virtualbox() {
        let paths = |network: &Network, provider: Provider| {
            let (mut problems, mut warnings) = (Vec::new(), Vec::new());
            networks(network, provider, &mut problems, &mut warnings);
            let paths = |ps: Vec<Problem>| ps.into_iter().map(|p| p.path).collect::<Vec<_>>();
            (paths(problems), paths(warnings))
        };
        let mut network = lab("name: a\n").network;
        assert_eq!(paths(&network, Provider::Virtualbox), (vec![], vec![]));
        network.pod_cidr = "10.0.0.0/16".parse().unwrap();
        assert_eq!(
            paths(&network, Provider::Virtualbox),
            (vec!["network.pod_cidr".to_string()], vec![])
        );
        assert_eq!(paths(&network, Provider::Static), (vec![], vec![]));
        let mut network = lab("name: a\n").network;
        network.cidr = "10.77.0.0/24".parse().unwrap();
        assert_eq!(
            paths(&network, Provider::Virtualbox),
            (vec![], vec!["network.cidr".to_string()])
        );
        assert_eq!(paths(&network, Provider::Static), (vec![], vec![]));
    }
}
