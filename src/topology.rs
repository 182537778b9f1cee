//! From a resolved [`Lab`] to the concrete plan: nodes, names, addresses,
//! SSH ports, pod CIDRs, the API endpoint and the phases. Pure: no I/O.
//!
//! This is the one place a node's address, SSH port and pod range are
//! derived. config's address rules (`config::validate`) run over the nodes
//! made here, so [`Topology::new`] also takes a lab that breaks them, and
//! never panics on one: what cannot be derived is left for those rules to
//! report (an SSH port of 0, a worker without a pod range).

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::config::{Lab, Role};

/// One machine of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Short name, also the hostname and the Kubernetes node name (`worker0`).
    pub name: String,
    pub role: Role,
    /// Position within its role (`worker2` -> 2).
    pub index: u32,
    pub fqdn: String,
    pub address: Ipv4Addr,
    pub memory_mb: u32,
    pub cpus: u32,
    /// The VM's SSH port forwarded on the host's 127.0.0.1 (a static host's
    /// sshd port). 0 when network.ssh_port_base puts it past 65535, in a lab
    /// config refuses.
    pub ssh_port: u16,
    /// Workers only: the pod range its CNI bridge hands out. `None` also for a
    /// worker past the end of network.pod_cidr, in a lab config refuses.
    pub pod_cidr: Option<Ipv4Net>,
    /// The interface holding `address`: the box's known default until the
    /// facts phase has read the real one from the node.
    pub interface: String,
}

/// How clients reach the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiEndpoint {
    /// `api.<domain>`
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    /// True when keepalived holds `address` as a VIP over 2+ load balancers.
    pub vip: bool,
}

impl ApiEndpoint {
    pub fn url(&self) -> String {
        format!("https://{}:{}", self.name, self.port)
    }
}

crate::named::named_enum! {
    /// The provisioning phases, in the order they run.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Phase {
        Machines => "machines",
        Facts => "facts",
        Dns => "dns",
        Resolv => "resolv",
        Registry => "registry",
        Lb => "lb",
        Certs => "certs",
        Etcd => "etcd",
        Controllers => "controllers",
        Workers => "workers",
        Routes => "routes",
        Addons => "addons",
        Workload => "workload",
    }
}

impl Phase {
    pub fn description(self) -> &'static str {
        match self {
            Phase::Machines => "create and boot the VMs, write the hypervisor's hosts block",
            Phase::Facts => "record each node's OS and host-only interface",
            Phase::Dns => "bind9 on the DNS node: lab zone and reverse zone",
            Phase::Resolv => "point every node's resolver at the lab DNS",
            Phase::Registry => "pull-through image caches (when a registry node exists)",
            Phase::Lb => "haproxy on every LB, keepalived VIP with 2 or more",
            Phase::Certs => "sign the lab PKI and copy each node its certificates",
            Phase::Etcd => "the TLS etcd cluster",
            Phase::Controllers => "kube-apiserver, controller-manager, scheduler",
            Phase::Workers => "containerd, CNI, kubelet, kube-proxy",
            Phase::Routes => "persistent routes to every worker's pod range",
            Phase::Addons => "RBAC for the API server, CoreDNS",
            Phase::Workload => "the nginx test workload over all workers",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The concrete lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub lab_name: String,
    pub domain: String,
    pub nodes: Vec<Node>,
    pub api: ApiEndpoint,
}

impl Topology {
    /// A static lab's plan with every listed host in it, also the workers
    /// past nodes.worker.count: where kubelab may have installed something
    /// (a worker `lab scale` removed, or one a stopped scale left behind).
    /// For a VirtualBox lab, the plan itself.
    pub fn every_listed_host(lab: &Lab) -> Topology {
        let mut all = lab.clone();
        for spec in &mut all.roles {
            let listed = lab.hosts.iter().filter(|h| h.role == spec.role).count() as u32;
            if listed > spec.count {
                spec.count = listed;
            }
        }
        Topology::new(&all)
    }

    pub fn new(lab: &Lab) -> Topology {
        let mut nodes = Vec::new();
        // A static lab's nodes are its listed servers, by role in kubelab's
        // order and within a role in lab.yaml's; a worker's pod range follows
        // its position, so listing one more worker adds one more range.
        for role in Role::ALL.iter().filter(|_| !lab.hosts.is_empty()) {
            // Only the first `count` of a role's hosts are in the lab (for
            // workers, lab.yaml may list more than nodes.worker.count).
            let in_lab = lab.role(*role).count as usize;
            for (index, host) in lab
                .hosts
                .iter()
                .filter(|h| h.role == *role)
                .take(in_lab)
                .enumerate()
            {
                let index = index as u32;
                nodes.push(Node {
                    fqdn: format!("{}.{}", host.name, lab.network.domain),
                    name: host.name.clone(),
                    role: host.role,
                    index,
                    address: host.address,
                    memory_mb: 0,
                    cpus: 0,
                    ssh_port: host.ssh.port.unwrap_or(22),
                    pod_cidr: (host.role == Role::Worker)
                        .then(|| worker_pod_cidr(lab, index))
                        .flatten(),
                    interface: host.interface.clone().unwrap_or_else(|| "eth0".to_string()),
                });
            }
        }
        for spec in lab.roles.iter().filter(|_| lab.hosts.is_empty()) {
            for index in 0..spec.count {
                let name = format!("{}{index}", spec.role.key());
                let address = Ipv4Addr::from(u32::from(spec.first_address).saturating_add(index));
                let pod_cidr = (spec.role == Role::Worker)
                    .then(|| worker_pod_cidr(lab, index))
                    .flatten();
                nodes.push(Node {
                    fqdn: format!("{name}.{}", lab.network.domain),
                    name,
                    role: spec.role,
                    index,
                    address,
                    memory_mb: spec.memory,
                    cpus: spec.cpus,
                    ssh_port: vm_ssh_port(lab.network.ssh_port_base, address),
                    pod_cidr,
                    interface: host_only_interface(&lab.vm_box.name).to_string(),
                });
            }
        }
        let lbs: Vec<&Node> = nodes.iter().filter(|n| n.role == Role::Lb).collect();
        let (address, vip) = match lbs.as_slice() {
            [only] => (only.address, false),
            _ => (lab.vip, true),
        };
        let api = ApiEndpoint {
            name: format!("api.{}", lab.network.domain),
            address,
            port: 6443,
            vip,
        };
        Topology {
            lab_name: lab.name.clone(),
            domain: lab.network.domain.clone(),
            nodes,
            api,
        }
    }

    /// Uses each node's interface as discovered on the node itself.
    pub fn apply_interfaces<'a>(
        &mut self,
        interfaces: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        for (name, interface) in interfaces {
            if let Some(node) = self.nodes.iter_mut().find(|n| n.name == name) {
                node.interface = interface.to_string();
            }
        }
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn by_role(&self, role: Role) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.role == role)
    }

    pub fn total_memory_mb(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.memory_mb)).sum()
    }

    /// The VirtualBox VM name: unique per lab so two labs never collide.
    pub fn vm_name(&self, node: &Node) -> String {
        format!("kubelab-{}-{}", self.lab_name, node.name)
    }
}

/// The name of the interface holding the host-only address on a VM made from
/// `box_name`, before the VM exists to ask. bento boxes use predictable names
/// (the second VirtualBox NIC is `enp0s8`); the other boxes kubelab knows,
/// such as its test box, keep the kernel's `eth1`. Once a VM is up, the facts
/// phase records the real name.
pub fn host_only_interface(box_name: &str) -> &'static str {
    if box_name.starts_with("bento/") {
        "enp0s8"
    } else {
        "eth1"
    }
}

/// Worker N's pod range: the Nth /24 of the pod CIDR (10.200.N.0/24), if
/// the pod CIDR holds N+1 of them.
fn worker_pod_cidr(lab: &Lab, index: u32) -> Option<Ipv4Net> {
    let pods = lab.network.pod_cidr;
    let start = u64::from(u32::from(pods.network())) + (u64::from(index) << 8);
    let range = Ipv4Net::new(Ipv4Addr::from(u32::try_from(start).ok()?), 24).ok()?;
    (pods.prefix_len() <= 24 && pods.contains(&range)).then_some(range)
}

/// A VM's SSH port on the host: the lab's base plus the last octet of its
/// address (192.168.56.30 -> 2230), or 0 when that passes 65535.
fn vm_ssh_port(base: u16, address: Ipv4Addr) -> u16 {
    base.checked_add(u16::from(address.octets()[3]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    /// state.json records a phase by its serde name, `--until` and the
    /// output by `name()`: one word for both.
    #[test]
    fn a_phase_is_recorded_under_the_name_users_type() {
        for phase in Phase::ALL {
            assert_eq!(
                serde_json::to_value(phase).unwrap(),
                serde_json::Value::from(phase.name())
            );
        }
    }

    #[test]
    fn default_lab_matches_the_design_table() {
        let topo = Topology::new(&crate::lab::builtin());
        let rows: Vec<String> = topo
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {} {} {} {}MB {}cpu ssh:{} {}",
                    n.name,
                    n.role,
                    n.fqdn,
                    n.address,
                    n.memory_mb,
                    n.cpus,
                    n.ssh_port,
                    n.pod_cidr.map(|c| c.to_string()).unwrap_or_default()
                )
            })
            .collect();
        insta::assert_snapshot!(rows.join("\n"));
        assert_eq!(topo.api.name, "api.lan");
        assert_eq!(topo.api.address, Ipv4Addr::new(192, 168, 56, 50));
        assert!(topo.api.vip);
        // ≈ 7.8 GB, as DESIGN.md says.
        assert_eq!(topo.total_memory_mb(), 7808);
    }

    #[test]
    fn the_host_only_interface_follows_the_box() {
        assert_eq!(host_only_interface("bento/ubuntu-24.04"), "enp0s8");
        assert_eq!(host_only_interface("kubelab/test"), "eth1");
    }

    #[test]
    fn one_lb_means_no_vip() {
        let yaml = "nodes:\n  lb:\n    count: 1\n";
        let lab = crate::lab::parse(yaml, config::LabSource::BuiltIn).unwrap();
        let topo = Topology::new(&lab);
        assert_eq!(topo.api.address, Ipv4Addr::new(192, 168, 56, 51));
        assert!(!topo.api.vip);
    }

    #[test]
    fn three_workers_get_consecutive_pod_ranges_and_fit_16_gb() {
        let yaml = "nodes:\n  worker:\n    count: 3\n";
        let lab = crate::lab::parse(yaml, config::LabSource::BuiltIn).unwrap();
        let topo = Topology::new(&lab);
        let cidrs: Vec<String> = topo
            .by_role(Role::Worker)
            .map(|n| n.pod_cidr.unwrap().to_string())
            .collect();
        assert_eq!(cidrs, ["10.200.0.0/24", "10.200.1.0/24", "10.200.2.0/24"]);
        // ≈ 11.9 GB with 3 workers.
        assert_eq!(topo.total_memory_mb(), 11904);
    }

    /// config's rules run over the topology of a lab that breaks them, so it
    /// must be made without panicking, leaving what cannot be for the rules.
    #[test]
    fn a_lab_that_breaks_the_rules_still_has_a_topology() {
        let mut lab = crate::lab::builtin();
        let worker = Role::ALL.iter().position(|r| *r == Role::Worker).unwrap();
        lab.roles[worker].count = 3;
        lab.roles[worker].first_address = Ipv4Addr::new(255, 255, 255, 254);
        lab.network.ssh_port_base = 65500;
        lab.network.pod_cidr = "10.200.0.0/23".parse().unwrap();
        let topo = Topology::new(&lab);
        let workers: Vec<String> = topo
            .by_role(Role::Worker)
            .map(|n| {
                format!(
                    "{} {} {:?}",
                    n.address,
                    n.ssh_port,
                    n.pod_cidr.map(|c| c.to_string())
                )
            })
            .collect();
        assert_eq!(
            workers,
            [
                "255.255.255.254 0 Some(\"10.200.0.0/24\")",
                "255.255.255.255 0 Some(\"10.200.1.0/24\")",
                "255.255.255.255 0 None",
            ]
        );
        // dns0 at .2: 65502 still fits.
        assert_eq!(topo.node("dns0").unwrap().ssh_port, 65502);
    }

    #[test]
    fn a_vms_ssh_port_is_the_base_plus_its_last_octet() {
        assert_eq!(vm_ssh_port(2200, Ipv4Addr::new(192, 168, 56, 30)), 2230);
        assert_eq!(vm_ssh_port(65280, Ipv4Addr::new(10, 0, 0, 255)), 65535);
        assert_eq!(vm_ssh_port(65281, Ipv4Addr::new(10, 0, 0, 255)), 0);
    }
}
