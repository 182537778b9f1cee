//! `kubelab lab export-inventory`: the lab as an Ansible inventory (INI,
//! YAML, or the YAML structure as JSON), so teams can carry on with the tool
//! they already run. Pure: the SSH details come in, text comes out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use serde_yaml::Mapping;

/// Variables in the order they are written.
type Vars = Vec<(String, Value)>;

use crate::config::{Lab, Role};
use crate::topology::{Node, Topology};

/// Bumped when a variable is renamed or removed; carried in the inventory
/// itself as `kubelab_schema_version` (a top-level key would be read as a group).
pub const INVENTORY_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Ansible's INI inventory
    AnsibleIni,
    /// Ansible's YAML inventory
    AnsibleYaml,
    /// The YAML inventory's structure as JSON (Ansible's yaml plugin reads .json)
    Json,
}

/// How Ansible (or ssh) reaches one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAccess {
    /// An address, or a `Host` alias of the user's ssh_config.
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub key: Option<PathBuf>,
    /// kubelab's pinned host keys (`.kubelab/known_hosts`) and the node's
    /// alias in it, as the provisioning transport checks them.
    pub known_hosts: Option<(PathBuf, String)>,
}

/// What `kubelab lab ssh` uses for a Vagrant lab, as `vagrant ssh-config`
/// reports it: the VM's fixed forwarded port on 127.0.0.1, user `vagrant`,
/// and the key Vagrant put in on first boot under `.kubelab/.vagrant/`.
pub fn vagrant_access(topo: &Topology, state_dir: &Path) -> BTreeMap<String, SshAccess> {
    topo.nodes
        .iter()
        .map(|n| {
            let key = state_dir
                .join(".vagrant/machines")
                .join(&n.name)
                .join("virtualbox/private_key");
            (
                n.name.clone(),
                SshAccess {
                    host: "127.0.0.1".into(),
                    port: Some(n.ssh_port),
                    user: Some("vagrant".into()),
                    key: Some(key),
                    known_hosts: Some((
                        state_dir.join("known_hosts"),
                        format!("kubelab-{}-{}", topo.lab_name, n.name),
                    )),
                },
            )
        })
        .collect()
}

/// A static lab's hosts as lab.yaml gives them: the ssh_config alias or the
/// address, and the user, port and key when set.
pub fn static_access(lab: &Lab, state_dir: &Path) -> BTreeMap<String, SshAccess> {
    lab.hosts
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                SshAccess {
                    host: h.ssh.alias.clone().unwrap_or_else(|| h.address.to_string()),
                    port: h.ssh.port,
                    user: h.ssh.user.clone(),
                    key: h.ssh.key.clone(),
                    known_hosts: Some((
                        state_dir.join("known_hosts"),
                        format!("kubelab-{}-{}", lab.name, h.name),
                    )),
                },
            )
        })
        .collect()
}

/// The Ansible group of a role.
pub fn group(role: Role) -> &'static str {
    match role {
        Role::Dns => "dns",
        Role::Etcd => "etcd",
        Role::Controller => "controllers",
        Role::Worker => "workers",
        Role::Lb => "lb",
        Role::Registry => "registry",
    }
}

fn host_vars(node: &Node, access: Option<&SshAccess>) -> Vars {
    let mut vars = Vars::new();
    if let Some(a) = access {
        vars.push(("ansible_host".into(), json!(a.host)));
        if let Some(port) = a.port {
            vars.push(("ansible_port".into(), json!(port)));
        }
        if let Some(user) = &a.user {
            vars.push(("ansible_user".into(), json!(user)));
        }
        if let Some(key) = &a.key {
            let key = key.display().to_string();
            vars.push(("ansible_ssh_private_key_file".into(), json!(key)));
        }
        if let Some((file, alias)) = &a.known_hosts {
            let file = file.display().to_string();
            let file = if file.contains(char::is_whitespace) {
                format!("'{file}'")
            } else {
                file
            };
            let args = format!(
                "-o UserKnownHostsFile={file} -o HostKeyAlias={alias} -o StrictHostKeyChecking=accept-new"
            );
            vars.push(("ansible_ssh_common_args".into(), json!(args)));
        }
    }
    vars.push(("kubelab_role".into(), json!(node.role.key())));
    vars.push(("kubelab_address".into(), json!(node.address.to_string())));
    vars.push(("kubelab_fqdn".into(), json!(node.fqdn)));
    vars.push(("kubelab_interface".into(), json!(node.interface)));
    if let Some(cidr) = node.pod_cidr {
        vars.push(("kubelab_node_pod_cidr".into(), json!(cidr.to_string())));
    }
    vars
}

fn group_vars(lab: &Lab, topo: &Topology) -> Vars {
    let v = &lab.versions;
    let n = &lab.network;
    let pairs = [
        ("kubelab_schema_version", json!(INVENTORY_SCHEMA_VERSION)),
        ("kubelab_lab", json!(lab.name)),
        ("kubelab_provider", json!(lab.provider.to_string())),
        ("kubelab_domain", json!(n.domain)),
        ("kubelab_network_cidr", json!(n.cidr.to_string())),
        ("kubelab_cluster_pod_cidr", json!(n.pod_cidr.to_string())),
        ("kubelab_service_cidr", json!(n.service_cidr.to_string())),
        (
            "kubelab_cluster_dns",
            json!(crate::render::cluster_dns_ip(lab).to_string()),
        ),
        ("kubelab_api_name", json!(topo.api.name)),
        ("kubelab_api_address", json!(topo.api.address.to_string())),
        ("kubelab_api_port", json!(topo.api.port)),
        ("kubelab_api_url", json!(topo.api.url())),
        ("kubelab_api_vip", json!(topo.api.vip)),
        ("kubelab_kubernetes_version", json!(v.kubernetes)),
        ("kubelab_etcd_version", json!(v.etcd)),
        ("kubelab_containerd_version", json!(v.containerd)),
        ("kubelab_runc_version", json!(v.runc)),
        ("kubelab_cni_plugins_version", json!(v.cni_plugins)),
        ("kubelab_coredns_version", json!(v.coredns)),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The inventory as text in `format`.
pub fn render(
    lab: &Lab,
    topo: &Topology,
    access: &BTreeMap<String, SshAccess>,
    format: Format,
) -> String {
    match format {
        Format::AnsibleIni => ini(lab, topo, access),
        Format::AnsibleYaml => {
            let header = format!("---\n{}", header_comment(lab));
            header + &serde_yaml::to_string(&tree(lab, topo, access)).unwrap_or_default()
        }
        Format::Json => {
            let mut text =
                serde_json::to_string_pretty(&tree(lab, topo, access)).unwrap_or_default();
            text.push('\n');
            text
        }
    }
}

fn header_comment(lab: &Lab) -> String {
    format!(
        "# Ansible inventory of kubelab lab \"{}\" ({}), written by `kubelab lab export-inventory`.\n# Regenerate it rather than editing it: lab.yaml is the source.\n",
        lab.name, lab.source
    )
}

fn mapping(vars: Vars) -> serde_yaml::Value {
    let mut map = Mapping::new();
    for (k, v) in vars {
        map.insert(k.into(), serde_yaml::to_value(v).unwrap_or_default());
    }
    serde_yaml::Value::Mapping(map)
}

/// `all: {vars, children: {<group>: {hosts: {<node>: <vars>}}}}`, in the
/// order kubelab lists roles and nodes.
fn tree(lab: &Lab, topo: &Topology, access: &BTreeMap<String, SshAccess>) -> serde_yaml::Value {
    let mut children = Mapping::new();
    for role in Role::ALL {
        let mut hosts = Mapping::new();
        for n in topo.by_role(role) {
            hosts.insert(
                n.name.clone().into(),
                mapping(host_vars(n, access.get(&n.name))),
            );
        }
        let mut group_map = Mapping::new();
        group_map.insert("hosts".into(), serde_yaml::Value::Mapping(hosts));
        children.insert(group(role).into(), serde_yaml::Value::Mapping(group_map));
    }
    let mut all = Mapping::new();
    all.insert("vars".into(), mapping(group_vars(lab, topo)));
    all.insert("children".into(), serde_yaml::Value::Mapping(children));
    let mut root = Mapping::new();
    root.insert("all".into(), serde_yaml::Value::Mapping(all));
    serde_yaml::Value::Mapping(root)
}

/// A value as the INI plugin reads it back: strings quoted (so `1.32` stays
/// a string and spaces survive), numbers bare, booleans as Python's.
fn ini_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

fn ini(lab: &Lab, topo: &Topology, access: &BTreeMap<String, SshAccess>) -> String {
    let mut out = header_comment(lab);
    for role in Role::ALL {
        out.push_str(&format!("\n[{}]\n", group(role)));
        for node in topo.by_role(role) {
            let vars = host_vars(node, access.get(&node.name));
            let line: Vec<String> = vars
                .iter()
                .map(|(k, v)| format!("{k}={}", ini_value(v)))
                .collect();
            out.push_str(&format!("{} {}\n", node.name, line.join(" ")));
        }
    }
    out.push_str("\n[all:vars]\n");
    for (k, v) in group_vars(lab, topo) {
        out.push_str(&format!("{k}={}\n", ini_value(&v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn default_lab() -> (Lab, Topology, BTreeMap<String, SshAccess>) {
        let lab = crate::lab::builtin();
        let topo = Topology::new(&lab);
        let access = vagrant_access(&topo, Path::new("/home/you/lab/.kubelab"));
        (lab, topo, access)
    }

    #[test]
    fn ini_of_the_default_lab() {
        let (lab, topo, access) = default_lab();
        insta::assert_snapshot!(render(&lab, &topo, &access, Format::AnsibleIni));
    }

    #[test]
    fn yaml_of_the_default_lab() {
        let (lab, topo, access) = default_lab();
        insta::assert_snapshot!(render(&lab, &topo, &access, Format::AnsibleYaml));
    }

    #[test]
    fn json_is_the_yaml_tree() {
        let (lab, topo, access) = default_lab();
        let from_json: Value =
            serde_json::from_str(&render(&lab, &topo, &access, Format::Json)).unwrap();
        let from_yaml: Value =
            serde_yaml::from_str(&render(&lab, &topo, &access, Format::AnsibleYaml)).unwrap();
        assert_eq!(from_json, from_yaml);
        assert_eq!(
            from_json["all"]["children"]["workers"]["hosts"]["worker0"]["ansible_port"],
            json!(2230)
        );
    }

    #[test]
    fn static_hosts_keep_their_own_ssh_settings() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let yaml = "provider: static\nnetwork:\n  dns_forwarders: [192.168.56.1]\nhosts:\n  - {role: dns, address: 192.168.56.2, ssh_user: admin, ssh_port: 2022, ssh_key: id}\n  - {role: etcd, address: 192.168.56.10, ssh_user: admin, ssh_key: id}\n  - {role: controller, address: 192.168.56.20, ssh_user: admin, ssh_key: id}\n  - {role: worker, address: 192.168.56.30, ssh_alias: w0}\n  - {role: lb, address: 192.168.56.51, ssh_user: admin, ssh_key: id}\n";
        let lab =
            crate::lab::parse(yaml, config::LabSource::File(dir.path().join("lab.yaml"))).unwrap();
        let topo = Topology::new(&lab);
        let access = static_access(&lab, &dir.path().join(".kubelab"));
        let tree: Value =
            serde_json::from_str(&render(&lab, &topo, &access, Format::Json)).unwrap();
        let hosts = |g: &str| tree["all"]["children"][g]["hosts"].clone();
        let dns0 = &hosts("dns")["dns0"];
        assert_eq!(dns0["ansible_host"], json!("192.168.56.2"));
        assert_eq!(dns0["ansible_port"], json!(2022));
        assert_eq!(dns0["ansible_user"], json!("admin"));
        assert_eq!(
            dns0["ansible_ssh_private_key_file"],
            json!(key.display().to_string())
        );
        // An alias leaves user, port and key to the user's ssh_config.
        let worker0 = &hosts("workers")["worker0"];
        assert_eq!(worker0["ansible_host"], json!("w0"));
        for absent in [
            "ansible_port",
            "ansible_user",
            "ansible_ssh_private_key_file",
        ] {
            assert!(worker0.get(absent).is_none(), "{absent} in {worker0}");
        }
        assert_eq!(worker0["kubelab_address"], json!("192.168.56.30"));
        assert_eq!(tree["all"]["vars"]["kubelab_provider"], json!("static"));
        assert_eq!(tree["all"]["vars"]["kubelab_api_vip"], json!(false));
    }

    #[test]
    fn ini_quotes_strings_so_they_come_back_as_written() {
        assert_eq!(ini_value(&json!("1.32")), "\"1.32\"");
        assert_eq!(ini_value(&json!("a \"b\" \\c")), r#""a \"b\" \\c""#);
        assert_eq!(ini_value(&json!(true)), "True");
        assert_eq!(ini_value(&json!(6443)), "6443");
    }
}
