//! The Kubernetes half of the render, one file per part: the control plane
//! (`controller.rs`), a worker's containerd, CNI, kubelet and kube-proxy
//! (`worker.rs`), the pod routes of every node (`routes.rs`), the registry
//! caches (`registry.rs`) and the hypervisor's admin kubeconfig and cluster
//! manifests (`cluster.rs`). This file holds what they share: the systemd
//! unit of one component and the kubeconfig of one certificate.

mod cluster;
mod controller;
mod registry;
mod routes;
mod worker;

use std::net::Ipv4Addr;

use askama::Template;
use base64::Engine;

use super::{Bundle, render_or_bug};
use crate::config::Lab;
use crate::pki::{KeyPem, Pki};
use crate::topology::Node;

pub use cluster::{ADMIN_KUBECTL, NGINX_NODE_PORT, admin_kubeconfig, cluster_files, host_files};
pub use controller::controller_files;
pub use registry::registry_files;
pub use routes::route_files;
pub use worker::worker_files;

/// Where the pinned Kubernetes, containerd and registry binaries go.
const BIN_DIR: &str = "/usr/local/bin";
/// The apiserver's secure port on every controller.
const API_PORT: u16 = 6443;

/// The cluster DNS Service's address: the 10th of the service range
/// (10.32.0.10). Validation keeps the range at /28 or wider, so it fits.
pub fn cluster_dns_ip(lab: &Lab) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(lab.network.service_cidr.network()) + 10)
}

/// `/path` on the node for a bundle path.
fn on_node(path: &str) -> String {
    format!("/{path}")
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

// --- systemd units -------------------------------------------------------------

#[derive(Template)]
#[template(path = "systemd/component.service", escape = "none")]
struct ComponentUnitTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    c: &'a Component<'a>,
}

/// A unit that runs one long-lived binary with its flags.
struct Component<'a> {
    unit: &'a str,
    description: String,
    documentation: &'a str,
    after: Vec<&'a str>,
    requires: Vec<&'a str>,
    binary: String,
    flags: Vec<String>,
}

fn unit(lab: &Lab, node: &Node, c: Component, bundle: &mut Bundle) {
    bundle.text(
        &format!("etc/systemd/system/{}", c.unit),
        render_or_bug(
            &ComponentUnitTemplate {
                lab: &lab.name,
                node: &node.name,
                c: &c,
            },
            c.unit,
        ),
    );
}

// --- kubeconfigs ---------------------------------------------------------------

#[derive(Template)]
#[template(path = "kubernetes/kubeconfig", escape = "none")]
struct KubeconfigTemplate<'a> {
    lab: &'a str,
    purpose: &'a str,
    server: &'a str,
    user: &'a str,
    ca_data: String,
    cert_data: String,
    key_data: String,
}

/// A kubeconfig for the certificate `cert` of the PKI, with the cluster CA
/// and the client key embedded; the result is secret.
fn kubeconfig(lab: &Lab, pki: &Pki, cert: &str, server: &str, purpose: &str) -> KeyPem {
    let issued = pki
        .cert(cert)
        .unwrap_or_else(|| panic!("the PKI has no {cert} certificate (a kubelab bug)"));
    KeyPem::new(render_or_bug(
        &KubeconfigTemplate {
            lab: &lab.name,
            purpose,
            server,
            user: &issued.spec.common_name,
            ca_data: b64(&pki.cluster_ca.cert_pem),
            cert_data: b64(&issued.cert_pem),
            key_data: b64(issued.key.expose()),
        },
        purpose,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabSource;
    use crate::topology::Topology;

    pub(super) fn lab(yaml: &str) -> Lab {
        crate::lab::parse(yaml, LabSource::BuiltIn).unwrap()
    }

    #[test]
    fn cluster_dns_is_the_tenth_service_address() {
        assert_eq!(
            cluster_dns_ip(&crate::lab::builtin()),
            Ipv4Addr::new(10, 32, 0, 10)
        );
        let lab = lab("network:\n  service_cidr: 10.96.0.0/28\n");
        assert_eq!(cluster_dns_ip(&lab), Ipv4Addr::new(10, 96, 0, 10));
    }

    #[test]
    fn mirrors_exist_only_with_a_registry_node() {
        let render = |yaml: &str| {
            let lab = lab(yaml);
            let topo = Topology::new(&lab);
            let dir = tempfile::tempdir().unwrap();
            let pki = crate::pki::load_or_create(dir.path(), &lab, &topo).unwrap();
            super::super::all(&lab, &topo, &pki)
        };
        let with = render("nodes:\n  registry:\n    count: 1\n");
        let hosts = with
            .iter()
            .find(|f| f.path == "worker0/etc/containerd/certs.d/registry.k8s.io/hosts.toml")
            .unwrap();
        assert!(
            hosts
                .contents
                .contains("[host.\"http://192.168.56.60:5001\"]")
        );
        assert!(
            with.iter()
                .any(|f| f.path == "registry0/etc/systemd/system/registry-docker-io.service")
        );
        let without = render("name: plain\n");
        assert!(!without.iter().any(|f| f.path.contains("certs.d")));
        assert!(!without.iter().any(|f| f.path.starts_with("registry0/")));
    }
}
