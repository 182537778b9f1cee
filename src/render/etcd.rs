//! The etcd members' unit and flags.

use super::*;

/// Where the pinned etcd release is installed on a node.
const ETCD_BINARY: &str = "/usr/local/bin/etcd";
/// Where an etcd node keeps its CA, certificates and keys.
const ETCD_PKI_DIR: &str = "etc/etcd";

#[derive(Template)]
#[template(path = "etcd/etcd.service", escape = "none")]
pub(super) struct EtcdUnitTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    binary: &'a str,
    flags: Vec<String>,
}

/// etcd's flags for `node`. Written `--flag=value`, which both etcd 3.5 and
/// Debian's 3.4 accept; clients and peers must present a certificate of the
/// etcd CA.
pub fn etcd_flags(lab: &Lab, topo: &Topology, node: &Node) -> Vec<String> {
    let pki = format!("/{ETCD_PKI_DIR}");
    let address = node.address;
    let initial_cluster = topo
        .by_role(Role::Etcd)
        .map(|m| format!("{}=https://{}:2380", m.name, m.address))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        format!("--name={}", node.name),
        "--data-dir=/var/lib/etcd".to_string(),
        format!("--listen-client-urls=https://{address}:2379,https://127.0.0.1:2379"),
        format!("--advertise-client-urls=https://{address}:2379"),
        format!("--listen-peer-urls=https://{address}:2380"),
        format!("--initial-advertise-peer-urls=https://{address}:2380"),
        format!("--initial-cluster={initial_cluster}"),
        format!("--initial-cluster-token=kubelab-{}", lab.name),
        "--initial-cluster-state=new".to_string(),
        format!("--cert-file={pki}/server.pem"),
        format!("--key-file={pki}/server-key.pem"),
        "--client-cert-auth=true".to_string(),
        format!("--trusted-ca-file={pki}/ca.pem"),
        format!("--peer-cert-file={pki}/peer.pem"),
        format!("--peer-key-file={pki}/peer-key.pem"),
        "--peer-client-cert-auth=true".to_string(),
        format!("--peer-trusted-ca-file={pki}/ca.pem"),
    ]
}

pub(super) fn etcd_files(lab: &Lab, topo: &Topology, node: &Node, pki: &Pki, bundle: &mut Bundle) {
    bundle.text(
        "etc/systemd/system/etcd.service",
        render_or_bug(
            &EtcdUnitTemplate {
                lab: &lab.name,
                node: &node.name,
                binary: ETCD_BINARY,
                flags: etcd_flags(lab, topo, node),
            },
            "etcd.service",
        ),
    );
    bundle.text(
        &format!("{ETCD_PKI_DIR}/ca.pem"),
        pki.etcd_ca.cert_pem.clone(),
    );
    bundle.cert(
        ETCD_PKI_DIR,
        "server",
        pki,
        &format!("{}-etcd-server", node.name),
    );
    bundle.cert(
        ETCD_PKI_DIR,
        "peer",
        pki,
        &format!("{}-etcd-peer", node.name),
    );
}
