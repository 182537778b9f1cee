//! The pod routes of every node and the unit that applies them.

use std::net::Ipv4Addr;

use askama::Template;
use ipnet::Ipv4Net;

use super::on_node;
use crate::config::{Lab, Role};
use crate::render::{Bundle, render_or_bug};
use crate::topology::{Node, Topology};

/// The file `kubelab-routes.service` feeds to `ip -batch`.
pub const ROUTES_FILE: &str = "etc/kubelab/pod-routes";

/// One pod route.
pub struct PodRoute {
    pub cidr: Ipv4Net,
    pub via: Ipv4Addr,
}

/// The routes `node` needs: every other worker's pod range via that worker,
/// in worker order. A worker reaches its own range over its bridge.
pub fn pod_routes(topo: &Topology, node: &Node) -> Vec<PodRoute> {
    topo.by_role(Role::Worker)
        .filter(|w| w.name != node.name)
        .filter_map(|w| {
            w.pod_cidr.map(|cidr| PodRoute {
                cidr,
                via: w.address,
            })
        })
        .collect()
}

#[derive(Template)]
#[template(path = "routes/pod-routes", escape = "none")]
struct PodRoutesTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    pod_cidr: Ipv4Net,
    routes: Vec<PodRoute>,
}

#[derive(Template)]
#[template(path = "routes/kubelab-routes.service", escape = "none")]
struct RoutesUnitTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    ip: &'a str,
    routes_file: String,
    /// A worker's rule for its pods' traffic leaving the pod range.
    masquerade: Option<String>,
}

/// The iptables rule (without `-A`/`-C`) that masquerades only what a
/// worker's pods send out of the pod range: pod-to-pod traffic between
/// workers keeps its source address (the CNI bridge's `ipMasq` is off).
pub fn pod_egress_masquerade(lab: &Lab) -> String {
    let pods = lab.network.pod_cidr;
    format!(
        "POSTROUTING -t nat -s {pods} ! -d {pods} -m comment --comment kubelab-pod-egress -j MASQUERADE"
    )
}

/// The persistent pod routes of every node, even one that needs none (the
/// only worker of a lab): the file also names the lab's pod range, so
/// routes.sh can take away routes to workers that were scaled away.
pub fn route_files(lab: &Lab, topo: &Topology, node: &Node, bundle: &mut Bundle) {
    let routes = pod_routes(topo, node);
    bundle.text(
        ROUTES_FILE,
        render_or_bug(
            &PodRoutesTemplate {
                lab: &lab.name,
                node: &node.name,
                pod_cidr: lab.network.pod_cidr,
                routes,
            },
            "pod-routes",
        ),
    );
    bundle.text(
        "etc/systemd/system/kubelab-routes.service",
        render_or_bug(
            &RoutesUnitTemplate {
                lab: &lab.name,
                node: &node.name,
                // Debian and Ubuntu are merged-/usr: /usr/sbin/ip is the one.
                ip: "/usr/sbin/ip",
                routes_file: on_node(ROUTES_FILE),
                masquerade: (node.role == Role::Worker).then(|| pod_egress_masquerade(lab)),
            },
            "kubelab-routes.service",
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::kube::tests::lab;

    fn routes(topo: &Topology, node: &str) -> Vec<String> {
        pod_routes(topo, topo.node(node).unwrap())
            .iter()
            .map(|r| format!("{} via {}", r.cidr, r.via))
            .collect()
    }

    #[test]
    fn each_node_routes_to_every_other_workers_range_in_worker_order() {
        let lab = lab("nodes:\n  worker:\n    count: 3\n");
        let topo = Topology::new(&lab);
        assert_eq!(
            routes(&topo, "worker1"),
            [
                "10.200.0.0/24 via 192.168.56.30",
                "10.200.2.0/24 via 192.168.56.32"
            ]
        );
        assert_eq!(routes(&topo, "lb0").len(), 3);
        let one = crate::lab::builtin();
        assert!(routes(&Topology::new(&one), "worker0").is_empty());
    }
}
