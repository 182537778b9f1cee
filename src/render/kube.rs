//! The Kubernetes half of the render: control plane units, kubeconfigs,
//! worker configs (containerd, kubelet, kube-proxy, CNI), pod routes, the
//! registry caches and the cluster manifests.

use std::net::Ipv4Addr;

use askama::Template;
use base64::Engine;
use ipnet::Ipv4Net;

use super::{Bundle, KUBE_PKI_DIR, RenderedFile, render_or_bug, reverse_zones};
use crate::config::{Lab, Role};
use crate::pki::{KeyPem, Pki};
use crate::topology::{Node, Phase, Topology};

/// Where the pinned Kubernetes, containerd and registry binaries go.
const BIN_DIR: &str = "/usr/local/bin";
/// The apiserver's secure port on every controller.
const API_PORT: u16 = 6443;
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
/// The kubelet's and kube-proxy's directories on a worker.
const KUBELET_DIR: &str = "var/lib/kubelet";
const KUBE_PROXY_DIR: &str = "var/lib/kube-proxy";
/// The file `kubelab-routes.service` feeds to `ip -batch`.
pub const ROUTES_FILE: &str = "etc/kubelab/pod-routes";

/// A registry the lab's cache proxies: the name containerd knows it by, the
/// upstream URL and the cache's port on registry0.
pub struct Upstream {
    pub registry: &'static str,
    pub url: &'static str,
    pub port: u16,
}

/// One cache per upstream: a distribution proxy serves exactly one.
pub const UPSTREAMS: [Upstream; 2] = [
    Upstream {
        registry: "docker.io",
        url: "https://registry-1.docker.io",
        port: 5000,
    },
    Upstream {
        registry: "registry.k8s.io",
        url: "https://registry.k8s.io",
        port: 5001,
    },
];

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
    description: String,
    documentation: &'a str,
    after: Vec<&'a str>,
    requires: Vec<&'a str>,
    binary: String,
    flags: Vec<String>,
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
                description: c.description,
                documentation: c.documentation,
                after: c.after,
                requires: c.requires,
                binary: c.binary,
                flags: c.flags,
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

// --- controllers ----------------------------------------------------------------

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

// --- workers ----------------------------------------------------------------------

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

    // containerd
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

    // CNI and the kernel settings bridged pod traffic needs
    bundle.text("etc/cni/net.d/10-bridge.conflist", cni_bridge(pod_cidr));
    bundle.text(
        "etc/modules-load.d/kubelab-kubernetes.conf",
        render_or_bug(&ModulesTemplate, "modules-load.d"),
    );
    bundle.text(
        "etc/sysctl.d/60-kubelab-kubernetes.conf",
        render_or_bug(&SysctlTemplate, "sysctl.d"),
    );

    // kubelet
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
        &kubeconfig(lab, pki, &node.name, &api, "kubelet"),
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

    // kube-proxy
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
        &kubeconfig(lab, pki, "kube-proxy", &api, "kube-proxy"),
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

// --- routes ------------------------------------------------------------------------

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

// --- registry ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "registry/config.yml", escape = "none")]
struct RegistryConfigTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    registry: &'a str,
    storage: String,
    address: String,
    port: u16,
    upstream: &'a str,
}

/// The unit name of the cache of `upstream` (`registry-docker-io.service`).
pub fn registry_unit(upstream: &Upstream) -> String {
    format!("registry-{}.service", upstream.registry.replace('.', "-"))
}

/// registry0: one distribution pull-through cache per upstream.
pub fn registry_files(lab: &Lab, node: &Node, bundle: &mut Bundle) {
    for upstream in &UPSTREAMS {
        let config = format!("etc/kubelab-registry/{}.yml", upstream.registry);
        bundle.text(
            &config,
            render_or_bug(
                &RegistryConfigTemplate {
                    lab: &lab.name,
                    node: &node.name,
                    registry: upstream.registry,
                    storage: format!("/var/lib/kubelab-registry/{}", upstream.registry),
                    address: node.address.to_string(),
                    port: upstream.port,
                    upstream: upstream.url,
                },
                "registry config.yml",
            ),
        );
        unit(
            lab,
            node,
            Component {
                unit: &registry_unit(upstream),
                description: format!(
                    "Pull-through cache of {} on {} of lab {}",
                    upstream.registry, node.name, lab.name
                ),
                documentation: "https://distribution.github.io/distribution/about/configuration/",
                after: vec![],
                requires: vec![],
                binary: format!("{BIN_DIR}/registry"),
                flags: vec!["serve".to_string(), on_node(&config)],
            },
            bundle,
        );
    }
}

// --- the hypervisor's files: admin kubeconfig and cluster manifests -------------------

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

/// The first controller's copy of the hypervisor's admin kubeconfig and
/// manifests, and the plan's pod range of each worker: the addons and
/// workload phases run kubectl there, against the API name, so no cluster
/// credential has to leave the lab's own machines at run time.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabSource;

    fn lab(yaml: &str) -> Lab {
        crate::lab::parse(yaml, LabSource::BuiltIn).unwrap()
    }

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
