//! The load balancers' haproxy and keepalived files and the nonlocal-bind sysctl.

use super::*;

pub(super) struct Backend {
    name: String,
    address: String,
}

#[derive(Template)]
#[template(path = "haproxy/haproxy.cfg", escape = "none")]
pub(super) struct HaproxyTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    api_name: &'a str,
    binds: Vec<String>,
    port: u16,
    controllers: Vec<Backend>,
}

#[derive(Template)]
#[template(path = "keepalived/keepalived.conf", escape = "none")]
pub(super) struct KeepalivedTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    vip: String,
    prefix: u8,
    interface: &'a str,
    router_id: u8,
    priority: u32,
    address: String,
    peers: Vec<String>,
}

#[derive(Template)]
#[template(path = "sysctl/nonlocal-bind.conf", escape = "none")]
pub(super) struct NonlocalBindTemplate;

pub(super) fn lb_files(lab: &Lab, topo: &Topology, node: &Node, bundle: &mut Bundle) {
    // The LB's own address always; the VIP too when keepalived holds one
    // (ip_nonlocal_bind lets haproxy bind it on the backup as well).
    let mut binds = vec![node.address.to_string()];
    if topo.api.vip {
        binds.insert(0, topo.api.address.to_string());
    }
    let controllers = topo
        .by_role(Role::Controller)
        .map(|c| Backend {
            name: c.name.clone(),
            address: c.address.to_string(),
        })
        .collect();
    bundle.text(
        "etc/haproxy/haproxy.cfg",
        render_or_bug(
            &HaproxyTemplate {
                lab: &lab.name,
                node: &node.name,
                api_name: &topo.api.name,
                binds,
                port: topo.api.port,
                controllers,
            },
            "haproxy.cfg",
        ),
    );
    if !topo.api.vip {
        return;
    }
    let lbs: Vec<&Node> = topo.by_role(Role::Lb).collect();
    let count = lbs.len() as u32;
    // lb0 is preferred; a failing haproxy takes a node out of the election
    // (FAULT), so the VIP moves to the healthy LB of highest priority.
    let priority = 100 + 10 * (count - 1 - node.index);
    bundle.text(
        "etc/keepalived/keepalived.conf",
        render_or_bug(
            &KeepalivedTemplate {
                lab: &lab.name,
                node: &node.name,
                vip: topo.api.address.to_string(),
                prefix: lab.network.cidr.prefix_len(),
                interface: &node.interface,
                // The VIP's last octet: unique among the addresses of the
                // segment, so two labs on one host-only network never share it.
                router_id: topo.api.address.octets()[3],
                priority,
                address: node.address.to_string(),
                peers: lbs
                    .iter()
                    .filter(|p| p.name != node.name)
                    .map(|p| p.address.to_string())
                    .collect(),
            },
            "keepalived.conf",
        ),
    );
    bundle.text(
        "etc/sysctl.d/60-kubelab-nonlocal-bind.conf",
        render_or_bug(&NonlocalBindTemplate, "the sysctl drop-in"),
    );
}
