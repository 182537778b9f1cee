use super::resolve::resolve_box;
use super::*;
use crate::lab::load::resolve;
use crate::lab::{builtin, load, parse};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

fn errors(yaml: &str) -> String {
    match parse(yaml, LabSource::File(PathBuf::from("lab.yaml"))) {
        Ok(_) => panic!("expected {yaml:?} to be rejected"),
        Err(err) => err.to_string(),
    }
}

fn warnings(yaml: &str) -> String {
    let lab = parse(yaml, LabSource::BuiltIn).expect("valid lab");
    lab.warnings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_shipped_lab_yaml_equals_the_built_in_defaults() {
    let from_file = builtin();
    let from_defaults = resolve(&LabFile::default(), LabSource::BuiltIn).unwrap();
    assert_eq!(from_file, from_defaults);
    assert!(from_file.warnings.is_empty());
}

#[test]
fn defaults_follow_the_network() {
    let lab = parse("network:\n  cidr: 192.168.57.0/24\n", LabSource::BuiltIn).unwrap();
    assert_eq!(
        lab.role(Role::Worker).first_address,
        Ipv4Addr::new(192, 168, 57, 30)
    );
    assert_eq!(lab.vip, Ipv4Addr::new(192, 168, 57, 50));
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    insta::assert_snapshot!(errors(
        "name: a\nnodes:\n  worker:\n    count: 1\n   memory: [\n"
    ));
}

#[test]
fn unknown_key_suggests_the_closest() {
    insta::assert_snapshot!(errors("nodes:\n  wokrer:\n    count: 2\n"));
}

#[test]
fn unknown_nested_key_suggests_the_closest() {
    insta::assert_snapshot!(errors("nodes:\n  worker:\n    memroy: 2048\n"));
}

#[test]
fn wrong_type_names_the_field() {
    insta::assert_snapshot!(errors("nodes:\n  worker:\n    count: three\n"));
}

#[test]
fn bad_address_value_names_the_field() {
    insta::assert_snapshot!(errors("nodes:\n  etcd:\n    first_address: 192.168.56\n"));
}

#[test]
fn unknown_provider_lists_the_known_ones() {
    insta::assert_snapshot!(errors("provider: vmware\n"));
}

#[test]
fn empty_file() {
    insta::assert_snapshot!(errors("# only a comment\n\n"));
    assert!(errors("").contains("the file is empty"));
}

#[test]
fn missing_file_suggests_init() {
    let err = load(Path::new("/nonexistent/lab.yaml")).unwrap_err();
    assert!(matches!(err, ConfigError::Missing { .. }));
    assert!(err.hint().unwrap().contains("kubelab init"));
}

#[test]
fn memory_below_minimum() {
    insta::assert_snapshot!(errors("nodes:\n  worker:\n    memory: 64\n"));
}

#[test]
fn zero_counts() {
    insta::assert_snapshot!(errors(
        "nodes:\n  etcd:\n    count: 0\n  controller:\n    count: 0\n  worker:\n    count: 0\n"
    ));
}

#[test]
fn even_etcd_count_explains_quorum() {
    insta::assert_snapshot!(errors("nodes:\n  etcd:\n    count: 4\n"));
}

#[test]
fn two_nodes_on_one_address() {
    insta::assert_snapshot!(errors(
        "nodes:\n  registry:\n    count: 1\n    first_address: 192.168.56.11\n"
    ));
}

#[test]
fn address_outside_the_network_or_on_the_host() {
    insta::assert_snapshot!(errors(
        "nodes:\n  dns:\n    first_address: 192.168.56.1\n  lb:\n    vip: 10.0.0.50\n  registry:\n    count: 1\n    first_address: 192.168.99.60\n"
    ));
}

#[test]
fn overlapping_cidrs() {
    insta::assert_snapshot!(errors(
        "network:\n  pod_cidr: 192.168.0.0/16\n  service_cidr: 192.168.56.0/24\n"
    ));
}

#[test]
fn more_workers_than_their_range_holds() {
    insta::assert_snapshot!(errors("nodes:\n  worker:\n    count: 25\n"));
}

#[test]
fn workers_running_past_the_end_of_the_network() {
    insta::assert_snapshot!(errors(
        "nodes:\n  worker:\n    count: 30\n    first_address: 192.168.56.240\n"
    ));
}

#[test]
fn invalid_names() {
    insta::assert_snapshot!(errors("name: My_Lab\nnetwork:\n  domain: bad..domain\n"));
}

#[test]
fn versions_must_be_major_minor_patch() {
    insta::assert_snapshot!(errors("versions:\n  kubernetes: v1.32\n  etcd: 3.5.x\n"));
}

#[test]
fn versions_kubernetes_picks_a_row_and_overrides_must_be_pinned() {
    let default = crate::lab::builtin().versions;
    assert_eq!(default.release, "1.36");
    assert_eq!(default.kubernetes, "1.36.0");
    assert_eq!(default.crictl, "1.36.0");
    assert!(default.overrides.is_empty());

    let old = parse("versions:\n  kubernetes: \"1.35\"\n", LabSource::BuiltIn)
        .unwrap()
        .versions;
    assert_eq!(
        (old.kubernetes.as_str(), old.crictl.as_str()),
        ("1.35.0", "1.35.0")
    );
    assert_eq!(
        (old.coredns.as_str(), old.pause.as_str()),
        ("1.12.4", "3.10.1")
    );

    // A pinned override is taken and named as one.
    let v = parse(
        "versions:\n  kubernetes: 1.36.0\n  etcd: 3.5.33\n",
        LabSource::BuiltIn,
    )
    .unwrap()
    .versions;
    assert_eq!(v.etcd, "3.5.33");
    assert_eq!(v.overrides, ["versions.etcd"]);

    // An unknown release, an unpinned patch and an unpinned override are
    // all refused, each naming its field.
    let text = errors("versions:\n  kubernetes: 1.32.3\n  containerd: 2.0.4\n");
    assert!(
        text.contains(
            "versions.kubernetes: \"1.32.3\" is not a Kubernetes release kubelab supports"
        ),
        "{text}"
    );
    assert!(text.contains("hint: use one of 1.36, 1.35"), "{text}");
    assert!(
        text.contains(
            "versions.containerd: kubelab has no published checksum for containerd 2.0.4"
        ),
        "{text}"
    );
    let text = errors("versions:\n  kubernetes: 1.36.7\n");
    assert!(
        text.contains(
            "versions.kubernetes: kubelab has no published checksum for Kubernetes 1.36.7"
        ),
        "{text}"
    );
    // The distribution's etcd is not downloaded: any version goes.
    parse(
        "artifacts:\n  etcd: distro\nversions:\n  etcd: 3.4.30\n",
        LabSource::BuiltIn,
    )
    .unwrap();
}

#[test]
fn kube_proxy_mode_is_iptables_unless_lab_yaml_says_nftables() {
    use crate::config::ProxyMode;
    assert_eq!(crate::lab::builtin().kube_proxy_mode, ProxyMode::Iptables);
    let lab = parse("kube_proxy:\n  mode: nftables\n", LabSource::BuiltIn).unwrap();
    assert_eq!(lab.kube_proxy_mode, ProxyMode::Nftables);
    let text = errors("kube_proxy:\n  mode: ipvs\n");
    assert!(text.contains("ipvs"), "{text}");
}

#[test]
fn semantic_problems_are_reported_together() {
    let text = errors(
        "nodes:\n  etcd:\n    count: 2\n  worker:\n    memory: 10\n  lb:\n    cpus: 0\nversions:\n  runc: latest\n",
    );
    for field in [
        "nodes.etcd.count",
        "nodes.worker.memory",
        "nodes.lb.cpus",
        "versions.runc",
    ] {
        assert!(text.contains(field), "{field} missing from:\n{text}");
    }
}

#[test]
fn network_outside_virtualbox_range_warns_with_the_exact_line() {
    insta::assert_snapshot!(warnings("network:\n  cidr: 10.77.0.0/24\n"));
}

#[test]
fn addresses_in_the_dhcp_range_warn() {
    insta::assert_snapshot!(warnings(
        "nodes:\n  registry:\n    count: 1\n    first_address: 192.168.56.120\n"
    ));
}

#[test]
fn one_lb_frees_the_vip_address() {
    // With one LB there is no VIP, so another role may use .50.
    parse(
        "nodes:\n  lb:\n    count: 1\n  registry:\n    count: 1\n    first_address: 192.168.56.50\n",
        LabSource::BuiltIn,
    )
    .unwrap();
}

#[test]
fn every_role_scales_within_its_range() {
    for workers in [1, 3, 10, 20] {
        let yaml = format!("nodes:\n  worker:\n    count: {workers}\n");
        parse(&yaml, LabSource::BuiltIn).unwrap();
    }
}

#[test]
fn dns_forwarders_default_to_the_virtualbox_nat_resolver_and_cannot_be_empty() {
    let lab = parse("", LabSource::BuiltIn);
    assert!(lab.is_err(), "an empty file stays an error");
    let lab = parse("name: a\n", LabSource::BuiltIn).expect("valid lab");
    assert_eq!(
        lab.network.dns_forwarders,
        [std::net::Ipv4Addr::new(10, 0, 2, 3)]
    );
    let err = errors("network:\n  dns_forwarders: []\n");
    assert!(
        err.contains("network.dns_forwarders") && err.contains("at least one resolver"),
        "{err}"
    );
    assert!(errors("network:\n  dns_forwarders: [not-an-address]\n").contains("dns_forwarders"));
}

#[test]
fn certificate_validity_is_checked() {
    insta::assert_snapshot!(errors("certificates:\n  validity_days: 0\n"));
    let lab = parse("certificates:\n  validity_days: 30\n", LabSource::BuiltIn).unwrap();
    assert_eq!(lab.certificate_validity_days, 30);
}

// ---------------------------------------------------------------------------
// provider: static
// ---------------------------------------------------------------------------

/// A folder holding `lab.yaml` and a private key `id` (0600) and a readable
/// one `loose` (0644), for static labs whose key files are checked.
pub(crate) fn key_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for (name, mode) in [("id", 0o600), ("loose", 0o644)] {
        let path = dir.path().join(name);
        std::fs::write(&path, "not a real key\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    dir
}

pub(crate) fn parse_in(dir: &tempfile::TempDir, yaml: &str) -> Result<Lab, ConfigError> {
    parse(yaml, LabSource::File(dir.path().join("lab.yaml")))
}

fn static_errors(yaml: &str) -> String {
    let dir = key_dir();
    match parse_in(&dir, yaml) {
        Ok(_) => panic!("expected {yaml:?} to be rejected"),
        Err(err) => err
            .to_string()
            .replace(&dir.path().display().to_string(), "[DIR]"),
    }
}

/// A static lab of the default topology with `workers` workers, for
/// [`key_dir`]'s key; `top` goes before `hosts:` (such as a `nodes:` block).
pub(crate) fn static_lab_yaml(top: &str, workers: u32) -> String {
    format!(
        "provider: static\nnetwork:\n  dns_forwarders: [192.168.56.1]\n{top}hosts:\n{}",
        default_static_hosts(workers)
    )
}

/// The default topology as static hosts, one line per host.
fn default_static_hosts(workers: u32) -> String {
    let mut hosts = vec![
        ("dns", 2),
        ("etcd", 10),
        ("etcd", 11),
        ("etcd", 12),
        ("controller", 20),
        ("controller", 21),
        ("controller", 22),
    ];
    hosts.extend((0..workers).map(|w| ("worker", 30 + w)));
    hosts.extend([("lb", 51), ("lb", 52)]);
    hosts
        .iter()
        .map(|(role, last)| {
            format!(
                "  - {{role: {role}, address: 192.168.56.{last}, ssh_user: admin, ssh_key: id}}\n"
            )
        })
        .collect()
}

#[test]
fn a_static_lab_takes_its_nodes_from_the_hosts_list() {
    let dir = key_dir();
    let yaml = format!(
        "provider: static\nnetwork:\n  dns_forwarders: [192.168.56.1]\nhosts:\n{}",
        default_static_hosts(1)
    );
    let lab = parse_in(&dir, &yaml).unwrap();
    assert_eq!(lab.provider, Provider::Static);
    assert!(lab.warnings.is_empty(), "{:?}", lab.warnings);
    let topo = crate::topology::Topology::new(&lab);
    let names: Vec<&str> = topo.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dns0",
            "etcd0",
            "etcd1",
            "etcd2",
            "controller0",
            "controller1",
            "controller2",
            "worker0",
            "lb0",
            "lb1"
        ]
    );
    // The same names and addresses as the VirtualBox lab's.
    let vbox = crate::topology::Topology::new(&builtin());
    for (s, v) in topo.nodes.iter().zip(&vbox.nodes) {
        assert_eq!(
            (&s.name, s.address, s.pod_cidr),
            (&v.name, v.address, v.pod_cidr)
        );
        assert_eq!(s.ssh_port, 22);
    }
    assert_eq!(topo.api, vbox.api);
    let key = lab.hosts[0].ssh.key.clone().unwrap();
    assert_eq!(key, dir.path().join("id"));
    assert_eq!(lab.hosts[0].ssh.user.as_deref(), Some("admin"));
    assert_eq!(lab.role(Role::Etcd).count, 3);
}

#[test]
fn a_static_lab_with_another_worker_gets_the_next_pod_range() {
    let dir = key_dir();
    for workers in [1, 2, 3] {
        let yaml = format!(
            "provider: static\nnetwork:\n  dns_forwarders: [192.168.56.1]\nhosts:\n{}",
            default_static_hosts(workers)
        );
        let topo = crate::topology::Topology::new(&parse_in(&dir, &yaml).unwrap());
        let ranges: Vec<String> = topo
            .by_role(Role::Worker)
            .map(|n| format!("{} {}", n.name, n.pod_cidr.unwrap()))
            .collect();
        let want: Vec<String> = (0..workers)
            .map(|w| format!("worker{w} 10.200.{w}.0/24"))
            .collect();
        assert_eq!(ranges, want);
    }
}

#[test]
fn a_static_lab_uses_the_first_listed_workers_that_nodes_worker_count_names() {
    let dir = key_dir();
    let yaml = |count: &str| static_lab_yaml(count, 3);
    // Without a count, every listed worker is in the lab.
    let lab = parse_in(&dir, &yaml("")).unwrap();
    assert_eq!(lab.role(Role::Worker).count, 3);
    // With one, only the first N (in lab.yaml's order), with their ranges;
    // the others stay listed for `lab scale` to add.
    let lab = parse_in(&dir, &yaml("nodes:\n  worker:\n    count: 2\n")).unwrap();
    assert_eq!(lab.role(Role::Worker).count, 2);
    assert_eq!(
        lab.hosts.iter().filter(|h| h.role == Role::Worker).count(),
        3
    );
    let topo = crate::topology::Topology::new(&lab);
    let workers: Vec<String> = topo
        .by_role(Role::Worker)
        .map(|n| format!("{} {} {}", n.name, n.address, n.pod_cidr.unwrap()))
        .collect();
    assert_eq!(
        workers,
        [
            "worker0 192.168.56.30 10.200.0.0/24",
            "worker1 192.168.56.31 10.200.1.0/24"
        ]
    );
    assert_eq!(topo.nodes.len(), 11);
}

#[test]
fn a_static_worker_count_must_fit_the_listed_workers() {
    let yaml = |count: u32| {
        static_lab_yaml(
            &format!(
                "nodes:\n  worker:\n    count: {count}\n    memory: 2048\n  etcd:\n    count: 3\n"
            ),
            2,
        )
    };
    insta::assert_snapshot!(static_errors(&yaml(3)));
    insta::assert_snapshot!(static_errors(&yaml(0)));
}

#[test]
fn static_names_aliases_and_ports_are_kept() {
    let dir = key_dir();
    let yaml = format!(
        "provider: static\nnetwork:\n  dns_forwarders: [192.168.56.1]\nhosts:\n{}  - {{name: gpu1, role: worker, address: 192.168.56.40, ssh_alias: gpu1-box, ssh_port: 2022, interface: enp3s0}}\n",
        default_static_hosts(1)
    );
    let lab = parse_in(&dir, &yaml).unwrap();
    let topo = crate::topology::Topology::new(&lab);
    let gpu = topo.node("gpu1").unwrap();
    assert_eq!(
        (gpu.index, gpu.ssh_port, gpu.interface.as_str()),
        (1, 2022, "enp3s0")
    );
    let host = lab.hosts.iter().find(|h| h.name == "gpu1").unwrap();
    assert_eq!(host.ssh.alias.as_deref(), Some("gpu1-box"));
    assert_eq!(
        (host.ssh.user.as_ref(), host.ssh.key.as_ref()),
        (None, None)
    );
}

#[test]
fn static_lab_without_hosts() {
    insta::assert_snapshot!(static_errors("provider: static\n"));
}

#[test]
fn hosts_need_provider_static() {
    insta::assert_snapshot!(static_errors(
        "hosts:\n  - {role: dns, address: 192.168.56.2, ssh_user: a, ssh_key: id}\n"
    ));
}

#[test]
fn a_host_without_a_role() {
    insta::assert_snapshot!(static_errors(
        "provider: static\nhosts:\n  - {address: 192.168.56.2, ssh_user: a, ssh_key: id}\n"
    ));
}

#[test]
fn static_hosts_are_validated_like_vms_and_their_keys_checked() {
    // No dns host, two etcd hosts, a duplicate address and name, VM sizes,
    // and every kind of bad SSH setting.
    let yaml = "provider: static
nodes:
  worker:
    count: 2
    memory: 4096
hosts:
  - {role: etcd, address: 192.168.56.10, ssh_user: admin, ssh_key: id}
  - {role: etcd, address: 192.168.56.10, ssh_user: admin, ssh_key: id}
  - {role: controller, address: 192.168.56.20, ssh_user: admin, ssh_key: \"\"}
  - {role: worker, address: 192.168.56.30, ssh_user: admin, ssh_key: missing-key}
  - {name: etcd1, role: lb, address: 192.168.56.51, ssh_user: admin, ssh_key: loose}
  - {role: lb, address: 10.9.9.9, ssh_key: id, interface: \"eth 1\"}
  - {role: worker, address: 192.168.56.31, ssh_user: \"\", ssh_port: 0}
";
    insta::assert_snapshot!(static_errors(yaml));
}

#[test]
fn a_static_lab_without_dns_forwarders_warns() {
    let dir = key_dir();
    let yaml = format!("provider: static\nhosts:\n{}", default_static_hosts(1));
    let lab = parse_in(&dir, &yaml).unwrap();
    let text: Vec<String> = lab.warnings.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(text.join("\n"));
}

fn boxed(
    name: Option<&str>,
    version: Option<&str>,
    arch: crate::platform::Arch,
) -> (BoxSpec, Vec<Problem>) {
    let file = BoxFile {
        name: name.map(Into::into),
        version: version.map(Into::into),
    };
    let mut problems = Vec::new();
    let spec = resolve_box(&file, false, arch, &mut problems);
    (spec, problems)
}

#[test]
fn the_default_box_is_pinned_per_architecture() {
    use crate::platform::Arch;
    let (amd, problems) = boxed(None, None, Arch::Amd64);
    assert!(problems.is_empty());
    assert_eq!(amd.name, "bento/ubuntu-24.04");
    assert_eq!(amd.version.as_deref(), Some("202510.26.0"));
    let (arm, problems) = boxed(None, None, Arch::Arm64);
    assert!(problems.is_empty());
    assert_eq!(arm.name, "gusztavvargadr/ubuntu-server-2404-lts");
    assert_eq!(arm.version.as_deref(), Some("2607.1.0"));
    // A known box named without a version gets its pin; a box of one's own
    // keeps what lab.yaml says.
    let (b, _) = boxed(Some("bento/ubuntu-24.04"), None, Arch::Amd64);
    assert_eq!(b.version.as_deref(), Some("202510.26.0"));
    let (b, problems) = boxed(Some("me/my-box"), None, Arch::Arm64);
    assert_eq!(b.version, None);
    assert!(problems.is_empty());
}

#[test]
fn an_x86_box_on_an_arm64_host_is_refused_at_validation_with_the_choices() {
    use crate::platform::Arch;
    let (_, problems) = boxed(Some("bento/ubuntu-24.04"), None, Arch::Arm64);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "box.name");
    assert!(
        problems[0]
            .message
            .contains("no VirtualBox build for this arm64 host"),
        "{}",
        problems[0].message
    );
    let hint = problems[0].hint.as_deref().unwrap();
    assert!(
        hint.contains("gusztavvargadr/ubuntu-server-2404-lts (version 2607.1.0)"),
        "{hint}"
    );
    // The arm64 box before it had VirtualBox arm64 builds.
    let (_, problems) = boxed(
        Some("gusztavvargadr/ubuntu-server-2404-lts"),
        Some("2607.0.0"),
        Arch::Arm64,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "box.version");
    // A static lab has no box to refuse.
    let file = BoxFile {
        name: Some("bento/ubuntu-24.04".into()),
        version: None,
    };
    let mut problems = Vec::new();
    resolve_box(&file, true, Arch::Arm64, &mut problems);
    assert!(problems.is_empty());
}

/// C1/G1: box.name and box.version reach the Vagrantfile, so they follow a
/// strict grammar; quotes, `#{}`, backslashes, newlines, NUL and spaces in
/// free text are refused with the field, the value and the fix.
#[test]
fn box_name_and_version_follow_a_strict_grammar() {
    for bad in [
        "#{%x(touch /tmp/x)}",
        "1\"; system(\"touch /tmp/x\"); \"",
        "1';system('x');'",
        "1\\",
        "1\n2",
        "1\u{0}",
        "latest please",
        "1..2",
        ">=",
        "v1.2",
    ] {
        let yaml = format!("box:\n  version: {}\n", serde_json::to_string(bad).unwrap());
        let text = errors(&yaml);
        assert!(
            text.contains("box.version: ") && text.contains("is not a box version"),
            "{bad:?}: {text}"
        );
        assert!(
            text.contains("hint: use a version such as 202502.21.0"),
            "{text}"
        );
    }
    for bad in [
        "bento/x\";system(\"touch\");\"",
        "bento/x'#{1}",
        "a/b/c",
        "/abs",
        "bento/ubuntu\nconfig.vm.provision",
        "-oops",
    ] {
        let yaml = format!("box:\n  name: {}\n", serde_json::to_string(bad).unwrap());
        let text = errors(&yaml);
        assert!(
            text.contains("box.name: ") && text.contains("is not a box name"),
            "{bad:?}: {text}"
        );
    }
    for good in [
        "202502.21.0",
        "202502.21",
        "2.0",
        ">= 2, < 3.0.0",
        "~> 1.2.rc1",
        "= 4",
    ] {
        let yaml = format!(
            "box:\n  name: bento/debian-12\n  version: {}\n",
            serde_json::to_string(good).unwrap()
        );
        let lab = parse(&yaml, LabSource::BuiltIn).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        assert_eq!(lab.vm_box.version.as_deref(), Some(good));
    }
    for good in ["bento/ubuntu-24.04", "generic/debian12", "my_box.local"] {
        let yaml = format!("box:\n  name: {good}\n");
        assert!(parse(&yaml, LabSource::BuiltIn).is_ok(), "{good}");
    }
}

/// ssh's destination is `user@alias`: a value starting with '-' would be
/// read as an option (`-oProxyCommand=...` runs a command on this host), and
/// the interface name goes into config files and scripts on the node.
#[test]
fn static_ssh_words_and_interfaces_cannot_become_options_or_code() {
    let dir = key_dir();
    for (field, value) in [
        ("ssh_alias", "-oProxyCommand=touch${IFS}/tmp/x"),
        ("ssh_user", "-oProxyCommand=touch${IFS}/tmp/x"),
        ("ssh_user", "a@b"),
        ("ssh_alias", "gpu1\"x"),
        ("interface", "eth0;reboot"),
        ("interface", "$(reboot)"),
        ("interface", "-x"),
    ] {
        let hosts = default_static_hosts(1).replacen(
            "ssh_user: admin",
            &format!(
                "ssh_user: admin, {field}: {}",
                serde_json::to_string(value).unwrap()
            ),
            1,
        );
        let hosts = if field == "ssh_user" {
            hosts.replacen("ssh_user: admin, ", "", 1)
        } else {
            hosts
        };
        let yaml =
            format!("provider: static\nnetwork:\n  dns_forwarders: [10.0.0.1]\nhosts:\n{hosts}");
        match parse_in(&dir, &yaml) {
            Ok(_) => panic!("{field}: {value:?} was accepted"),
            Err(e) => assert!(
                e.to_string().contains(&format!("hosts[0].{field}: ")),
                "{value:?}: {e}"
            ),
        }
    }
}

/// G2-G5, G7, U1, U3, U4: inputs that were accepted or explained in Rust's
/// words are refused (or warned about) with the reason and the fix.
#[test]
fn special_ranges_domains_sizes_and_plain_words() {
    for (yaml, want) in [
        (
            "network:\n  domain: localhost\n",
            "network.domain: \"localhost\" is under `.localhost`",
        ),
        (
            "network:\n  domain: lab.local\n",
            "is multicast DNS (RFC 6762)",
        ),
        (
            "network:\n  domain: 56.168.192.in-addr.arpa\n",
            "network.domain: \"56.168.192.in-addr.arpa\" is under `.arpa`, which holds the reverse zones",
        ),
        (
            "network:\n  cidr: 127.0.0.0/24\n",
            "network.cidr: 127.0.0.0/24 is loopback",
        ),
        (
            "network:\n  cidr: 224.0.0.0/24\n",
            "network.cidr: 224.0.0.0/24 is multicast or reserved",
        ),
        (
            "network:\n  pod_cidr: 10.0.0.0/16\n",
            "network.pod_cidr: 10.0.0.0/16 overlaps 10.0.2.0/24, VirtualBox's NAT network",
        ),
        (
            "nodes:\n  worker:\n    memory: 4294967295\n",
            "nodes.worker.memory: 4294967295 MB is more than any VM can have here",
        ),
        ("- name: a\n", "expected the lab's settings"),
        ("nodes: []\n", "expected the roles' settings"),
        (
            "network:\n  ssh_port_base: 70000\n",
            "expected a whole number from 0 to 65535",
        ),
        (
            "nodes:\n  worker:\n    count: 99999999999999999999999\n",
            "integer `99999999999999999999999`, expected a whole number",
        ),
        ("provider: [virtualbox]\n", "expected one word"),
        (
            "nodes:\n  worker:\n    count: 1\n    count: 3\n",
            "hint: each key may appear once",
        ),
        ("nodes:\n  worker: *nope\n", "hint: define the anchor"),
        (
            "network:\n  cidr: fd00::/64\n",
            "hint: kubelab labs are IPv4 only",
        ),
        (
            "nodes:\n\tworker:\n\t\tcount: 3\n",
            "hint: YAML indents with spaces, never TABs",
        ),
        (
            "name: a\n---\nname: b\n",
            "hint: lab.yaml is one YAML document",
        ),
        (
            "nodes:\n  etcd: &b\n    cpus: 2\n  controller:\n    <<: *b\n",
            "YAML merge keys (`<<: *anchor`) are not supported",
        ),
    ] {
        let text = errors(yaml);
        assert!(text.contains(want), "{yaml:?}: {text}");
        for rust in ["struct", "u32", "u16", "u128", "unit value", "YAML tag"] {
            assert!(!text.contains(rust), "{yaml:?} says {rust}: {text}");
        }
        assert!(text.contains("hint: "), "{yaml:?}: {text}");
    }
    // G9: an empty section takes the defaults, like an empty role.
    for yaml in ["nodes: ~\n", "nodes:\n", "network:\nbox: ~\n"] {
        assert_eq!(
            parse(yaml, LabSource::BuiltIn).unwrap().roles,
            builtin().roles,
            "{yaml:?}"
        );
    }
    // U3: CR-only line ends are line ends.
    let lab = parse(
        "# a lab\rname: crlab\rnodes:\r  worker:\r    count: 2\r",
        LabSource::BuiltIn,
    )
    .unwrap();
    assert_eq!(
        (lab.name.as_str(), lab.role(Role::Worker).count),
        ("crlab", 2)
    );
    // G7: a VIP with one load balancer does nothing, and says so.
    assert!(
        warnings("nodes:\n  lb:\n    count: 1\n    vip: 192.168.56.50\n")
            .contains("nodes.lb.vip: 192.168.56.50 is not used"),
    );
}

/// `api` is the API endpoint's record and `localhost` every machine's
/// loopback: a static host of either name would share their entries in the
/// lab zone and the host's hosts file.
#[test]
fn a_static_host_cannot_take_a_reserved_name() {
    let dir = key_dir();
    for name in ["api", "localhost"] {
        let hosts = default_static_hosts(1).replacen(
            "ssh_user: admin",
            &format!("ssh_user: admin, name: {name}"),
            1,
        );
        let yaml =
            format!("provider: static\nnetwork:\n  dns_forwarders: [10.0.0.1]\nhosts:\n{hosts}");
        let err = parse_in(&dir, &yaml).unwrap_err().to_string();
        assert!(
            err.contains(&format!("hosts[0].name: \"{name}\" is reserved")),
            "{err}"
        );
        assert!(err.contains("hint: give the host another name"), "{err}");
    }
}

/// G8: an empty key file, or one its owner cannot read (mode 0000), is
/// refused before ssh meets it.
#[test]
fn empty_or_unreadable_static_keys_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = key_dir();
    std::fs::write(dir.path().join("empty"), "").unwrap();
    std::fs::set_permissions(
        dir.path().join("empty"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(dir.path().join("locked"), "key\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("locked"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    for (key, want) in [
        ("empty", "\"empty\" is empty"),
        ("locked", "\"locked\" cannot be read by you"),
    ] {
        let hosts = default_static_hosts(1).replacen("ssh_key: id", &format!("ssh_key: {key}"), 1);
        let yaml =
            format!("provider: static\nnetwork:\n  dns_forwarders: [10.0.0.1]\nhosts:\n{hosts}");
        let err = parse_in(&dir, &yaml).unwrap_err().to_string();
        assert!(err.contains(&format!("hosts[0].ssh_key: {want}")), "{err}");
    }
}

/// U2: the hints for a small network and for .0/.255 addresses point inside
/// the network and at the real cause.
#[test]
fn address_hints_point_inside_the_network() {
    let text = errors("network:\n  cidr: 192.168.56.0/28\n");
    assert!(
        text.contains("use a free address inside 192.168.56.0/28, such as 192.168.56.14"),
        "{text}"
    );
    assert!(
        !text.contains("such as 192.168.56.50") && !text.contains("such as 192.168.56.30"),
        "{text}"
    );
    let text = errors("network:\n  cidr: 192.168.56.0/32\n");
    assert!(
        text.contains("network.cidr: 192.168.56.0/32 is too small for a lab"),
        "{text}"
    );
    assert!(
        !text.contains("first_address"),
        "one cause, said once: {text}"
    );
    let text = errors("nodes:\n  dns:\n    first_address: 192.168.56.0\n");
    assert!(text.contains("192.168.56.0 is 192.168.56.0/24's own network address, which no host may use: start nodes.dns.first_address at 192.168.56.2 or later"), "{text}");
    let text = errors("nodes:\n  registry:\n    count: 1\n    first_address: 192.168.56.255\n");
    assert!(text.contains("own broadcast address"), "{text}");
    assert!(!text.contains("lower nodes.registry.count to 1"), "{text}");
}

/// The VIP is keepalived's, not a VM's: no SSH port is forwarded to it, so
/// it does not count against network.ssh_port_base (it did: .250 with a base
/// of 65290 was refused as port 65540).
#[test]
fn the_vip_takes_no_ssh_port() {
    let lab = parse(
        "network:\n  ssh_port_base: 65290\nnodes:\n  lb:\n    vip: 192.168.56.250\n",
        LabSource::BuiltIn,
    )
    .unwrap();
    assert_eq!(lab.vip, Ipv4Addr::new(192, 168, 56, 250));
    // A VM there still is refused.
    let text = errors(
        "network:\n  ssh_port_base: 65290\nnodes:\n  registry:\n    count: 1\n    first_address: 192.168.56.250\n",
    );
    assert!(
        text.contains("network.ssh_port_base: 65290 gives SSH ports outside 1024-65535"),
        "{text}"
    );
}

/// A static lab's hosts have addresses, not ranges: a VIP on a host is that
/// address used twice, never "lower nodes.lb.count" (a field a static lab
/// refuses), which it was told when three load balancers from .51 met a
/// host at .53.
#[test]
fn a_static_vip_on_a_host_is_used_twice() {
    let yaml = static_lab_yaml("nodes:\n  lb:\n    vip: 192.168.56.51\n", 1)
        + "  - {role: lb, address: 192.168.56.60, ssh_user: admin, ssh_key: id}\n"
        + "  - {role: registry, address: 192.168.56.53, ssh_user: admin, ssh_key: id}\n";
    let text = static_errors(&yaml);
    assert!(
        text.contains("hosts[8].address: 192.168.56.51 is used twice: by hosts[8].address (lb0) and by nodes.lb.vip"),
        "{text}"
    );
    assert!(!text.contains("nodes.lb.count"), "{text}");
}
