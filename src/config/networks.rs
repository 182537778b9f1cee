//! The lab's networks on their own: special ranges, VirtualBox's NAT
//! network, overlaps and sizes, checked while the lab is resolved. The rules
//! over the concrete nodes in them are `lab::validate`'s.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Network, Problem, Provider, VIRTUALBOX_ALLOWED};

/// `network.cidr`, `pod_cidr` and `service_cidr`: no special range, clear
/// of VirtualBox's NAT network and of each other, and big enough.
pub(crate) fn networks(
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
