//! End to end, `provider: static`: the default lab's machines
//! (tests/support/e2e.rs), booted by the test itself, play existing
//! servers. kubelab reaches them only through lab.yaml's hosts list, with a
//! `vagrant` on PATH that records any call. A host that refuses SSH stops
//! `lab up` before any host is touched; then `lab up --until etcd`
//! provisions them with the same engine as a VirtualBox lab, `lab verify`
//! passes the same checks as there, and `lab destroy --yes` removes what
//! kubelab installed while the servers keep running. Needs root.

mod support;

use serde_json::Value;
use support::e2e::{DEFAULT_LAB, E2e};

/// The default lab as static hosts; `worker0_port` is where kubelab is told
/// worker0's sshd listens.
fn static_lab(key: &std::path::Path, worker0_port: u16) -> String {
    let mut yaml = String::from(
        "name: kubelab\nprovider: static\nartifacts:\n  etcd: distro\nnetwork:\n  dns_forwarders: [192.168.56.1]\nhosts:\n",
    );
    for (name, address) in DEFAULT_LAB {
        let role = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let port = if name == "worker0" { worker0_port } else { 22 };
        yaml.push_str(&format!(
            "  - {{name: {name}, role: {role}, address: {address}, interface: eth1, ssh_user: vagrant, ssh_port: {port}, ssh_key: {}}}\n",
            key.display()
        ));
    }
    yaml
}

/// What kubelab leaves on a host it provisioned: any line printed is a trace.
/// (The test box has bind9, haproxy, keepalived and etcd-server installed, so
/// their own files are no trace; kubelab's carry its name or its paths.)
const TRACES: &str = "ls -d /var/lib/kubelab /etc/kubelab /etc/etcd /etc/bind/db.lan /etc/keepalived/keepalived.conf /etc/systemd/resolved.conf.d/kubelab.conf /etc/systemd/system/etcd.service 2>/dev/null; grep -l 'Managed by kubelab' /etc/haproxy/haproxy.cfg /etc/bind/named.conf.options 2>/dev/null; true";

fn addr(name: &str) -> &'static str {
    DEFAULT_LAB.iter().find(|(n, _)| *n == name).unwrap().1
}

#[test]
fn a_static_lab_is_checked_provisioned_verified_and_uninstalled() {
    let Some(e2e) = E2e::start("192.168.56.1") else {
        return;
    };
    e2e.boot_servers();
    // The key is the user's own file, 0600, beside lab.yaml.
    let key = e2e.lab_dir().join("id_servers");
    std::fs::copy(e2e.ssh_key(), &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // worker0 refuses SSH (nothing listens on the port lab.yaml gives):
    // lab up fails naming it and the fix, and no host was touched (the
    // others answered, but nothing ran on them).
    std::fs::write(e2e.lab_dir().join("lab.yaml"), static_lab(&key, 2222)).unwrap();
    let ran = e2e.kubelab_without_vagrant(&["lab", "up", "--until", "etcd"]);
    assert_eq!(ran.status, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr
            .contains("1 of 10 hosts failed the check; nothing was provisioned on any host"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("worker0 (vagrant@192.168.56.30 port 2222): SSH failed")
            && ran.stderr.contains("Connection refused"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("check that sshd runs on worker0"),
        "{}",
        ran.stderr
    );
    for (name, address) in DEFAULT_LAB.iter().filter(|(n, _)| *n != "worker0") {
        let traces = e2e.ssh_ok(address, TRACES);
        assert_eq!(traces.trim(), "", "{name} was touched: {traces}");
    }
    let hosts = std::fs::read_to_string(e2e.hosts_file()).unwrap_or_default();
    assert!(
        !hosts.contains("# BEGIN kubelab"),
        "hosts block written: {hosts}"
    );

    // The right port: the same engine provisions the servers up to etcd.
    std::fs::write(e2e.lab_dir().join("lab.yaml"), static_lab(&key, 22)).unwrap();
    let ran = e2e.kubelab_without_vagrant(&["lab", "up", "--until", "etcd"]);
    assert_eq!(ran.status, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr
            .contains("all 10 hosts answer over SSH and have passwordless sudo"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("etcd: done"), "{}", ran.stderr);
    let health = e2e.ssh_ok(
        addr("etcd0"),
        "sudo env ETCDCTL_API=3 etcdctl --endpoints https://192.168.56.10:2379 --cacert /etc/etcd/ca.pem --cert /etc/etcd/server.pem --key /etc/etcd/server-key.pem member list",
    );
    assert_eq!(health.lines().count(), 3, "{health}");

    // verify: the same checks pass as on the VirtualBox lab (tests/e2e_verify.rs),
    // check 1 as "hosts reachable".
    let ran = e2e.kubelab_without_vagrant(&["lab", "verify", "--json"]);
    let doc: Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", ran.stdout, ran.stderr));
    let status = |name: &str| -> String {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    for name in ["machines", "dns", "etcd", "lb-failover", "certificates"] {
        assert_eq!(status(name), "passed", "{name}: {doc:#}");
    }
    for name in ["api", "control-plane", "nodes", "secrets", "workload"] {
        assert_ne!(
            status(name),
            "passed",
            "{name} cannot pass without Kubernetes: {doc:#}"
        );
    }
    let machines = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "machines")
        .unwrap();
    assert!(
        machines["detail"]
            .as_str()
            .unwrap()
            .contains("10 hosts reachable over SSH with passwordless sudo"),
        "{machines:#}"
    );
    assert_eq!(ran.status, 1, "the Kubernetes checks fail here");

    // halt and snapshot refuse; destroy uninstalls and powers nothing off.
    let ran = e2e.kubelab_without_vagrant(&["lab", "halt"]);
    assert_eq!(ran.status, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("never powers off"), "{}", ran.stderr);
    let ran = e2e.kubelab_without_vagrant(&["lab", "destroy", "--yes"]);
    assert_eq!(ran.status, 0, "{}\n{}", ran.stdout, ran.stderr);
    for (name, address) in DEFAULT_LAB {
        let traces = e2e.ssh_ok(address, TRACES);
        assert_eq!(traces.trim(), "", "{name} keeps kubelab's files: {traces}");
        let active = e2e.ssh_ok(
            address,
            "for u in named haproxy keepalived etcd kubelab-routes; do systemctl is-active --quiet $u && echo $u; done; true",
        );
        assert_eq!(active.trim(), "", "{name} still runs {active}");
    }
    let hosts = std::fs::read_to_string(e2e.hosts_file()).unwrap_or_default();
    assert!(
        !hosts.contains("# BEGIN kubelab"),
        "hosts block left: {hosts}"
    );
    assert!(!e2e.lab_dir().join(".kubelab").exists());
    assert_eq!(e2e.vagrant_calls(), "", "a static lab called vagrant");
}
