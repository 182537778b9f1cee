//! A worker's files: containerd (with the registry mirrors), the CNI bridge
//! and the kernel settings it needs, the kubelet and kube-proxy.

use askama::Template;
use ipnet::Ipv4Net;

use super::registry::UPSTREAMS;
use super::{BIN_DIR, Component, cluster_dns_ip, kubeconfig, on_node, unit};
use crate::config::{Lab, Role};
use crate::pki::Pki;
use crate::render::{Bundle, render_or_bug};
use crate::topology::{Node, Topology};

/// The kubelet's and kube-proxy's directories on a worker.
const KUBELET_DIR: &str = "var/lib/kubelet";
const KUBE_PROXY_DIR: &str = "var/lib/kube-proxy";

#[derive(Template)]
#[template(path = "containerd/config.toml", escape = "none")]
struct ContainerdConfigTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    containerd: &'a str,
    config_version: u32,
    pause_image: &'a str,
}

/// The config version containerd `version` reads without migrating:
/// 4 from 2.3 (server settings moved to plugins), 3 for 2.0 to 2.2.
/// (containerd/containerd `version/version.go` ConfigVersion at each tag.)
pub fn containerd_config_version(version: &str) -> u32 {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    match (parts.next(), parts.next()) {
        (Some(2), Some(minor)) if minor >= 3 => 4,
        (Some(major), _) if major >= 3 => 4,
        _ => 3,
    }
}

#[derive(Template)]
#[template(path = "containerd/containerd.service", escape = "none")]
struct ContainerdUnitTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    binary: String,
}

#[derive(Template)]
#[template(path = "containerd/hosts.toml", escape = "none")]
struct HostsTomlTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    registry: &'a str,
    upstream: &'a str,
    mirror: String,
}

#[derive(Template)]
#[template(path = "kubernetes/kubelet-config.yaml", escape = "none")]
struct KubeletConfigTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    address: String,
    ca_file: String,
    cluster_dns: String,
    pod_cidr: String,
    cert_file: String,
    key_file: String,
}

#[derive(Template)]
#[template(path = "kubernetes/kube-proxy-config.yaml", escape = "none")]
struct KubeProxyConfigTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    kubeconfig: String,
    mode: String,
    cluster_cidr: String,
    address: String,
    lab_network: String,
}

#[derive(Template)]
#[template(path = "kernel/modules.conf", escape = "none")]
struct ModulesTemplate;

#[derive(Template)]
#[template(path = "containerd/crictl.yaml", escape = "none")]
struct CrictlTemplate;

#[derive(Template)]
#[template(path = "kernel/sysctl.conf", escape = "none")]
struct SysctlTemplate;

/// The CNI bridge config: the worker's pod range, the source of truth for
/// its pods' addresses. JSON from serde, so it is always well-formed.
///
/// `hairpinMode`: a pod that calls a Service whose chosen endpoint is
/// itself gets its packet back through the bridge port it came from
/// (without it, one call in three to a 3-replica Service times out).
/// `ipMasq` is off: pods keep their addresses between workers (the pod
/// routes carry them); only traffic leaving the pod range is masqueraded,
/// by the rule kubelab-routes.service adds ([`pod_egress_masquerade`]).
/// `portmap` makes a pod's `hostPort` work.
pub fn cni_bridge(pod_cidr: Ipv4Net) -> String {
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "bridge",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr.to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }]
                }
            },
            {
                "type": "portmap",
                "capabilities": { "portMappings": true }
            }
        ]
    });
    let mut text = serde_json::to_string_pretty(&conf)
        .unwrap_or_else(|e| panic!("serializing the CNI config failed (a kubelab bug): {e}"));
    text.push('\n');
    text
}

/// containerd, CNI, kubelet and kube-proxy of a worker.
pub fn worker_files(lab: &Lab, topo: &Topology, node: &Node, pki: &Pki, bundle: &mut Bundle) {
    let Some(pod_cidr) = node.pod_cidr else {
        panic!("worker {} has no pod range (a kubelab bug)", node.name);
    };
    let api = topo.api.url();
    containerd_files(lab, topo, node, bundle);
    cni_files(pod_cidr, bundle);
    kubelet_files(lab, node, pki, pod_cidr, &api, bundle);
    kube_proxy_files(lab, node, pki, &api, bundle);
}

/// containerd's config and unit, crictl's config and, with a registry
/// node, one mirror per upstream.
fn containerd_files(lab: &Lab, topo: &Topology, node: &Node, bundle: &mut Bundle) {
    bundle.text(
        "etc/containerd/config.toml",
        render_or_bug(
            &ContainerdConfigTemplate {
                lab: &lab.name,
                node: &node.name,
                containerd: &lab.versions.containerd,
                config_version: containerd_config_version(&lab.versions.containerd),
                pause_image: &crate::releases::image_ref("pause", &lab.versions.pause),
            },
            "containerd config.toml",
        ),
    );
    if let Some(registry) = topo.by_role(Role::Registry).next() {
        for upstream in &UPSTREAMS {
            bundle.text(
                &format!("etc/containerd/certs.d/{}/hosts.toml", upstream.registry),
                render_or_bug(
                    &HostsTomlTemplate {
                        lab: &lab.name,
                        node: &node.name,
                        registry: upstream.registry,
                        upstream: upstream.url,
                        mirror: format!("http://{}:{}", registry.address, upstream.port),
                    },
                    "hosts.toml",
                ),
            );
        }
    }
    bundle.text(
        "etc/systemd/system/containerd.service",
        render_or_bug(
            &ContainerdUnitTemplate {
                lab: &lab.name,
                node: &node.name,
                binary: format!("{BIN_DIR}/containerd"),
            },
            "containerd.service",
        ),
    );

    bundle.text(
        "etc/crictl.yaml",
        render_or_bug(&CrictlTemplate, "crictl.yaml"),
    );
}

/// The CNI bridge and the kernel settings bridged pod traffic needs.
fn cni_files(pod_cidr: Ipv4Net, bundle: &mut Bundle) {
    bundle.text("etc/cni/net.d/10-bridge.conflist", cni_bridge(pod_cidr));
    bundle.text(
        "etc/modules-load.d/kubelab-kubernetes.conf",
        render_or_bug(&ModulesTemplate, "modules-load.d"),
    );
    bundle.text(
        "etc/sysctl.d/60-kubelab-kubernetes.conf",
        render_or_bug(&SysctlTemplate, "sysctl.d"),
    );
}

/// The kubelet's config, kubeconfig and unit.
fn kubelet_files(
    lab: &Lab,
    node: &Node,
    pki: &Pki,
    pod_cidr: Ipv4Net,
    api: &str,
    bundle: &mut Bundle,
) {
    let kubelet_config = format!("{KUBELET_DIR}/kubelet-config.yaml");
    let kubelet_kubeconfig = format!("{KUBELET_DIR}/kubeconfig");
    bundle.text(
        &kubelet_config,
        render_or_bug(
            &KubeletConfigTemplate {
                lab: &lab.name,
                node: &node.name,
                address: node.address.to_string(),
                ca_file: on_node(&format!("{KUBELET_DIR}/ca.pem")),
                cluster_dns: cluster_dns_ip(lab).to_string(),
                pod_cidr: pod_cidr.to_string(),
                cert_file: on_node(&format!("{KUBELET_DIR}/kubelet.pem")),
                key_file: on_node(&format!("{KUBELET_DIR}/kubelet-key.pem")),
            },
            "kubelet-config.yaml",
        ),
    );
    bundle.secret(
        &kubelet_kubeconfig,
        &kubeconfig(lab, pki, &node.name, api, "kubelet"),
    );
    unit(
        lab,
        node,
        Component {
            unit: "kubelet.service",
            description: format!("Kubernetes kubelet on {} of lab {}", node.name, lab.name),
            documentation: "https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/",
            after: vec!["containerd.service"],
            requires: vec!["containerd.service"],
            binary: format!("{BIN_DIR}/kubelet"),
            flags: vec![
                format!("--config={}", on_node(&kubelet_config)),
                format!("--kubeconfig={}", on_node(&kubelet_kubeconfig)),
                // The host-only address, not the NAT 10.0.2.15 every VM has.
                format!("--node-ip={}", node.address),
                // The Node's name must be the one in its certificate
                // (system:node:<name>), or NodeRestriction refuses it.
                format!("--hostname-override={}", node.name),
                "--v=2".to_string(),
            ],
        },
        bundle,
    );
}

/// kube-proxy's config, kubeconfig and unit.
fn kube_proxy_files(lab: &Lab, node: &Node, pki: &Pki, api: &str, bundle: &mut Bundle) {
    let proxy_config = format!("{KUBE_PROXY_DIR}/kube-proxy-config.yaml");
    let proxy_kubeconfig = format!("{KUBE_PROXY_DIR}/kubeconfig");
    bundle.text(
        &proxy_config,
        render_or_bug(
            &KubeProxyConfigTemplate {
                lab: &lab.name,
                node: &node.name,
                kubeconfig: on_node(&proxy_kubeconfig),
                mode: lab.kube_proxy_mode.to_string(),
                cluster_cidr: lab.network.pod_cidr.to_string(),
                address: node.address.to_string(),
                lab_network: lab.network.cidr.to_string(),
            },
            "kube-proxy-config.yaml",
        ),
    );
    bundle.secret(
        &proxy_kubeconfig,
        &kubeconfig(lab, pki, "kube-proxy", api, "kube-proxy"),
    );
    unit(
        lab,
        node,
        Component {
            unit: "kube-proxy.service",
            description: format!("Kubernetes kube-proxy on {} of lab {}", node.name, lab.name),
            documentation: "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/",
            after: vec![],
            requires: vec![],
            binary: format!("{BIN_DIR}/kube-proxy"),
            flags: vec![
                format!("--config={}", on_node(&proxy_config)),
                "--v=2".to_string(),
            ],
        },
        bundle,
    );
}
