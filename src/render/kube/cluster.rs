//! The hypervisor's files: the admin kubeconfig and the manifests the
//! addons and workload phases apply, and the first controller's copy of
//! them.

use askama::Template;

use super::{cluster_dns_ip, kubeconfig};
use crate::config::{Lab, Role};
use crate::pki::{KeyPem, Pki};
use crate::render::{Bundle, RenderedFile, render_or_bug, reverse_zones};
use crate::topology::{Phase, Topology};

/// metrics-server for `kubectl top`: kubespray's `metrics_server_version`
/// (roles/kubespray_defaults/defaults/main/download.yml at commit 46dbdd39).
const METRICS_SERVER_VERSION: &str = "0.8.1";

#[derive(Template)]
#[template(path = "manifests/metrics-server.yaml", escape = "none")]
struct MetricsServerTemplate<'a> {
    lab: &'a str,
    version: &'a str,
    image: String,
    kubelet_ca: String,
}

/// The nginx Service's fixed port on every worker.
pub const NGINX_NODE_PORT: u16 = 30080;
/// The test workload's image (docker.io, so the registry cache serves it).
const NGINX_IMAGE: &str = "docker.io/library/nginx:1.27.4-alpine";

#[derive(Template)]
#[template(path = "manifests/apiserver-to-kubelet.yaml", escape = "none")]
struct ApiserverToKubeletTemplate<'a> {
    lab: &'a str,
    user: &'a str,
}

#[derive(Template)]
#[template(path = "manifests/coredns.yaml", escape = "none")]
struct CorednsTemplate<'a> {
    lab: &'a str,
    cluster_dns: String,
    lab_zones: String,
    dns_address: String,
    image: String,
}

#[derive(Template)]
#[template(path = "manifests/nginx.yaml", escape = "none")]
struct NginxTemplate<'a> {
    lab: &'a str,
    /// The workers, comma-separated: a pod-template annotation, so a scale
    /// rolls the Deployment and the spread constraint places pods on the
    /// new set.
    workers: String,
    replicas: u32,
    image: &'a str,
    node_port: u16,
}

fn host_file(path: &str, mode: u32, contents: String) -> RenderedFile {
    RenderedFile {
        path: format!("host/{path}"),
        node: None,
        mode,
        contents,
        phase: None,
    }
}

/// The cluster admin's kubeconfig, to the API name (`https://api.<domain>:6443`,
/// the VIP with 2+ load balancers), so it survives the loss of any one node.
pub fn admin_kubeconfig(lab: &Lab, topo: &Topology, pki: &Pki) -> KeyPem {
    kubeconfig(lab, pki, "admin", &topo.api.url(), "admin")
}

/// The admin kubeconfig and the manifests the addons and workload phases
/// apply, all kept on the hypervisor.
pub fn host_files(lab: &Lab, topo: &Topology, pki: &Pki) -> Vec<RenderedFile> {
    let mut files = vec![host_file(
        "admin.kubeconfig",
        0o600,
        admin_kubeconfig(lab, topo, pki).expose().to_string(),
    )];
    let kubelet_client = pki
        .cert("apiserver-kubelet-client")
        .unwrap_or_else(|| panic!("the PKI has no apiserver-kubelet-client (a kubelab bug)"));
    files.push(host_file(
        "manifests/apiserver-to-kubelet.yaml",
        0o644,
        render_or_bug(
            &ApiserverToKubeletTemplate {
                lab: &lab.name,
                user: &kubelet_client.spec.common_name,
            },
            "apiserver-to-kubelet.yaml",
        ),
    ));
    if let Some(dns) = topo.by_role(Role::Dns).next() {
        let mut zones = vec![format!("{}:53", topo.domain)];
        zones.extend(
            reverse_zones(topo)
                .into_iter()
                .map(|z| format!("{}:53", z.name)),
        );
        files.push(host_file(
            "manifests/coredns.yaml",
            0o644,
            render_or_bug(
                &CorednsTemplate {
                    lab: &lab.name,
                    cluster_dns: cluster_dns_ip(lab).to_string(),
                    lab_zones: zones.join(" "),
                    dns_address: dns.address.to_string(),
                    image: crate::releases::image_ref(
                        "coredns/coredns",
                        &format!("v{}", lab.versions.coredns),
                    ),
                },
                "coredns.yaml",
            ),
        ));
    }
    files.push(host_file(
        "manifests/metrics-server.yaml",
        0o644,
        render_or_bug(
            &MetricsServerTemplate {
                lab: &lab.name,
                version: METRICS_SERVER_VERSION,
                image: crate::releases::image_ref(
                    "metrics-server/metrics-server",
                    &format!("v{METRICS_SERVER_VERSION}"),
                ),
                kubelet_ca: pki
                    .cluster_ca
                    .cert_pem
                    .lines()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
            "metrics-server.yaml",
        ),
    ));
    files.push(host_file(
        "manifests/nginx.yaml",
        0o644,
        render_or_bug(
            &NginxTemplate {
                lab: &lab.name,
                workers: topo
                    .by_role(Role::Worker)
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                replicas: lab.nginx_replicas,
                image: NGINX_IMAGE,
                node_port: NGINX_NODE_PORT,
            },
            "nginx.yaml",
        ),
    ));
    files
}

/// Where the first controller keeps what the addons and workload phases
/// apply with kubectl: the admin kubeconfig, the cluster manifests and the
/// plan's pod range of each worker (`render::kube::cluster_files`).
pub const CLUSTER_DIR: &str = "var/lib/kubelab/cluster/";

/// kubectl as root on the first controller, with the admin kubeconfig the
/// addons phase places in `CLUSTER_DIR`.
pub const ADMIN_KUBECTL: &str =
    "sudo /usr/local/bin/kubectl --kubeconfig /var/lib/kubelab/cluster/admin.kubeconfig";

/// The one file of `CLUSTER_DIR` the workload phase places.
pub const CLUSTER_WORKLOAD: &str = "var/lib/kubelab/cluster/manifests/nginx.yaml";

/// The first controller's copy of the hypervisor's admin kubeconfig and
/// manifests, and the plan's pod range of each worker: the addons and
/// workload phases run kubectl there, against the API name, so no cluster
/// credential has to leave the lab's own machines at run time.
pub fn cluster_files(topo: &Topology, host: &[RenderedFile], bundle: &mut Bundle) {
    let dir = CLUSTER_DIR;
    for f in host {
        let Some(rel) = f.path.strip_prefix("host/") else {
            continue;
        };
        if rel == "admin.kubeconfig" || rel.starts_with("manifests/") {
            let path = format!("{dir}{rel}");
            let phase = if path == CLUSTER_WORKLOAD {
                Phase::Workload
            } else {
                Phase::Addons
            };
            bundle.place(phase, |b| b.add(&path, f.mode, f.contents.clone()));
        }
    }
    bundle.phase = Phase::Addons;
    let mut cidrs = String::from(
        "# Managed by kubelab: each worker's pod range, set as its Node's spec.podCIDR.\n",
    );
    for w in topo.by_role(Role::Worker) {
        if let Some(cidr) = w.pod_cidr {
            cidrs.push_str(&format!("{} {cidr}\n", w.name));
        }
    }
    bundle.text(&format!("{dir}pod-cidrs"), cidrs);
}
