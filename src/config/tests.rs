use super::*;

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
