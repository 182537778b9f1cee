//! A controller's control plane: the apiserver, controller-manager and
//! scheduler units with their flags, the scheduler's config and the two
//! kubeconfigs.

use askama::Template;

use super::{API_PORT, BIN_DIR, Component, kubeconfig, on_node, unit};
use crate::config::{Lab, Role};
use crate::pki::Pki;
use crate::render::{Bundle, KUBE_PKI_DIR, render_or_bug};
use crate::topology::{Node, Topology};

/// kube-apiserver's flags on `node`.
pub fn apiserver_flags(lab: &Lab, topo: &Topology, node: &Node) -> Vec<String> {
    let dir = on_node(KUBE_PKI_DIR);
    let address = node.address;
    let etcd_servers = topo
        .by_role(Role::Etcd)
        .map(|m| format!("https://{}:2379", m.address))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        format!("--advertise-address={address}"),
        format!("--bind-address={address}"),
        format!("--secure-port={API_PORT}"),
        "--allow-privileged=true".to_string(),
        "--authorization-mode=Node,RBAC".to_string(),
        // NodeRestriction: a kubelet may only change its own Node and pods.
        "--enable-admission-plugins=NamespaceLifecycle,NodeRestriction,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota".to_string(),
        format!("--client-ca-file={dir}/ca.pem"),
        format!("--tls-cert-file={dir}/kube-apiserver.pem"),
        format!("--tls-private-key-file={dir}/kube-apiserver-key.pem"),
        format!("--etcd-servers={etcd_servers}"),
        // etcd trusts only its own CA: the apiserver presents its etcd client
        // certificate and checks etcd's against the etcd CA.
        format!("--etcd-cafile={dir}/etcd-ca.pem"),
        format!("--etcd-certfile={dir}/apiserver-etcd-client.pem"),
        format!("--etcd-keyfile={dir}/apiserver-etcd-client-key.pem"),
        format!("--encryption-provider-config={dir}/encryption-config.yaml"),
        format!("--service-cluster-ip-range={}", lab.network.service_cidr),
        "--service-node-port-range=30000-32767".to_string(),
        format!("--service-account-issuer=https://{}:{}", topo.api.name, topo.api.port),
        format!("--service-account-key-file={dir}/service-accounts.pem"),
        format!("--service-account-signing-key-file={dir}/service-accounts-key.pem"),
        format!("--kubelet-certificate-authority={dir}/ca.pem"),
        format!("--kubelet-client-certificate={dir}/apiserver-kubelet-client.pem"),
        format!("--kubelet-client-key={dir}/apiserver-kubelet-client-key.pem"),
        // Controllers cannot resolve a worker's bare hostname (the resolver
        // routes only `*.<domain>` to dns0); its address is in its cert.
        "--kubelet-preferred-address-types=InternalIP,Hostname".to_string(),
        // The aggregation layer (metrics-server, `kubectl top`): requests to
        // an aggregated API go out with the front-proxy client certificate,
        // which that API checks against the front-proxy CA; it reaches the
        // API's pods by their endpoint addresses (the controllers run no
        // kube-proxy, and have routes to every pod range).
        format!("--requestheader-client-ca-file={dir}/front-proxy-ca.pem"),
        format!("--requestheader-allowed-names={}", crate::pki::FRONT_PROXY_CLIENT),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_string(),
        "--requestheader-group-headers=X-Remote-Group".to_string(),
        "--requestheader-username-headers=X-Remote-User".to_string(),
        format!("--proxy-client-cert-file={dir}/front-proxy-client.pem"),
        format!("--proxy-client-key-file={dir}/front-proxy-client-key.pem"),
        "--enable-aggregator-routing=true".to_string(),
        "--event-ttl=1h".to_string(),
        "--v=2".to_string(),
    ]
}

/// The apiserver a controller's own controller-manager and scheduler use.
/// It binds only the host-only address, so 127.0.0.1 would find nothing;
/// the controller's own address stays on the machine all the same.
fn local_api_url(node: &Node) -> String {
    format!("https://{}:{API_PORT}", node.address)
}

/// kube-controller-manager's flags on `node`.
pub fn controller_manager_flags(lab: &Lab, node: &Node) -> Vec<String> {
    let dir = on_node(KUBE_PKI_DIR);
    let kubeconfig = format!("{dir}/kube-controller-manager.kubeconfig");
    vec![
        format!("--bind-address={}", node.address),
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        format!("--cluster-name=kubelab-{}", lab.name),
        // Each worker's CNI config holds its pod range; kubelab sets the
        // Node's spec.podCIDR from the plan, so nothing must allocate one.
        "--allocate-node-cidrs=false".to_string(),
        format!("--service-cluster-ip-range={}", lab.network.service_cidr),
        format!("--cluster-signing-cert-file={dir}/ca.pem"),
        format!("--cluster-signing-key-file={dir}/ca-key.pem"),
        format!("--root-ca-file={dir}/ca.pem"),
        format!("--service-account-private-key-file={dir}/service-accounts-key.pem"),
        "--use-service-account-credentials=true".to_string(),
        "--leader-elect=true".to_string(),
        format!("--tls-cert-file={dir}/kube-controller-manager-serving.pem"),
        format!("--tls-private-key-file={dir}/kube-controller-manager-serving-key.pem"),
        "--v=2".to_string(),
    ]
}

/// Where the scheduler's KubeSchedulerConfiguration lives on a controller.
const SCHEDULER_CONFIG: &str = "etc/kubernetes/config/kube-scheduler.yaml";

/// kube-scheduler's flags on `node`.
pub fn scheduler_flags(node: &Node) -> Vec<String> {
    let dir = on_node(KUBE_PKI_DIR);
    let kubeconfig = format!("{dir}/kube-scheduler.kubeconfig");
    vec![
        format!("--config={}", on_node(SCHEDULER_CONFIG)),
        format!("--bind-address={}", node.address),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        format!("--tls-cert-file={dir}/kube-scheduler-serving.pem"),
        format!("--tls-private-key-file={dir}/kube-scheduler-serving-key.pem"),
        "--v=2".to_string(),
    ]
}

#[derive(Template)]
#[template(path = "kubernetes/kube-scheduler.yaml", escape = "none")]
struct SchedulerConfigTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    kubeconfig: String,
}

/// The control plane of a controller: three units, the scheduler's config
/// and the two kubeconfigs.
pub fn controller_files(lab: &Lab, topo: &Topology, node: &Node, pki: &Pki, bundle: &mut Bundle) {
    let docs = "https://kubernetes.io/docs/reference/command-line-tools-reference/";
    unit(
        lab,
        node,
        Component {
            unit: "kube-apiserver.service",
            description: format!("Kubernetes API server on {} of lab {}", node.name, lab.name),
            documentation: docs,
            after: vec![],
            requires: vec![],
            binary: format!("{BIN_DIR}/kube-apiserver"),
            flags: apiserver_flags(lab, topo, node),
        },
        bundle,
    );
    unit(
        lab,
        node,
        Component {
            unit: "kube-controller-manager.service",
            description: format!(
                "Kubernetes controller manager on {} of lab {}",
                node.name, lab.name
            ),
            documentation: docs,
            after: vec!["kube-apiserver.service"],
            requires: vec![],
            binary: format!("{BIN_DIR}/kube-controller-manager"),
            flags: controller_manager_flags(lab, node),
        },
        bundle,
    );
    unit(
        lab,
        node,
        Component {
            unit: "kube-scheduler.service",
            description: format!("Kubernetes scheduler on {} of lab {}", node.name, lab.name),
            documentation: docs,
            after: vec!["kube-apiserver.service"],
            requires: vec![],
            binary: format!("{BIN_DIR}/kube-scheduler"),
            flags: scheduler_flags(node),
        },
        bundle,
    );
    bundle.text(
        SCHEDULER_CONFIG,
        render_or_bug(
            &SchedulerConfigTemplate {
                lab: &lab.name,
                node: &node.name,
                kubeconfig: on_node(&format!("{KUBE_PKI_DIR}/kube-scheduler.kubeconfig")),
            },
            "kube-scheduler.yaml",
        ),
    );
    let server = local_api_url(node);
    for component in ["kube-controller-manager", "kube-scheduler"] {
        bundle.secret(
            &format!("{KUBE_PKI_DIR}/{component}.kubeconfig"),
            &kubeconfig(lab, pki, component, &server, component),
        );
    }
}
