//! End to end, `provider: static`: the default lab's machines
//! (tests/support/e2e.rs), booted by the test itself, play existing
//! servers. kubelab reaches them only through lab.yaml's hosts list, with a
//! `vagrant` on PATH that records any call. A host that refuses SSH fails
//! `kubelab doctor`'s check of it and stops `lab up` before any host is
//! touched; then `lab up --until etcd`
//! provisions them with the same engine as a VirtualBox lab, `lab verify`
//! passes the same checks as there, and `lab destroy --yes` removes what
//! kubelab installed while the servers keep running. In between, `lab
//! scale workers=2` brings in worker1, listed in lab.yaml past
//! nodes.worker.count, and `workers=1` uninstalls it again without touching
//! the server otherwise. Needs root.

mod support;

use serde_json::Value;
use support::e2e::{DEFAULT_LAB, E2e, worker};

/// The default lab's machines and worker1, which the lab does not use yet.
fn servers() -> Vec<(String, String)> {
    DEFAULT_LAB
        .iter()
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .chain([worker(1)])
        .collect()
}

/// The default lab as static hosts, with worker1 listed but not in the lab
/// (nodes.worker.count: 1); `worker0_port` is where kubelab is told
/// worker0's sshd listens.
fn static_lab(key: &std::path::Path, worker0_port: u16) -> String {
    let mut yaml = String::from(
        "name: kubelab\nprovider: static\nartifacts:\n  etcd: distro\nnetwork:\n  dns_forwarders: [192.168.56.1]\nnodes:\n  worker:\n    count: 1 # worker1 waits\nhosts:\n",
    );
    for (name, address) in servers() {
        let role = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let port = if name == "worker0" { worker0_port } else { 22 };
        let role = role.to_string();
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

/// The status of each check of `lab verify --json`, by name.
fn verify(e2e: &E2e) -> (Value, i32) {
    let ran = e2e.kubelab_without_vagrant(&["lab", "verify", "--json"]);
    let doc: Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", ran.stdout, ran.stderr));
    (doc, ran.status)
}

fn status(doc: &Value, name: &str) -> String {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn lab_yaml(e2e: &E2e) -> String {
    std::fs::read_to_string(e2e.lab_dir().join("lab.yaml")).unwrap()
}

#[test]
fn a_static_lab_is_checked_provisioned_verified_and_uninstalled() {
    let Some(e2e) = E2e::start("192.168.56.1") else {
        return;
    };
    e2e.boot_servers_with_workers(2);
    // The key is the user's own file, 0600, beside lab.yaml.
    let key = e2e.lab_dir().join("id_servers");
    std::fs::copy(e2e.ssh_key(), &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // worker0 refuses SSH (nothing listens on the port lab.yaml gives):
    // lab up fails naming it and the fix, and no host was touched (the
    // others answered, but nothing ran on them).
    std::fs::write(e2e.lab_dir().join("lab.yaml"), static_lab(&key, 2222)).unwrap();
    // doctor runs the same check first, on the hosts of the lab only
    // (worker1 waits past the count), and writes nothing in the lab's folder.
    let ran = e2e.kubelab_without_vagrant(&["doctor", "--json"]);
    assert_eq!(ran.status, 1, "{}\n{}", ran.stdout, ran.stderr);
    let doc: Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", ran.stdout, ran.stderr));
    let hosts: Vec<(String, String)> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let name = c["name"].as_str()?.strip_prefix("host ")?;
            Some((name.to_string(), c["status"].as_str()?.to_string()))
        })
        .collect();
    let expected: Vec<(String, String)> = DEFAULT_LAB
        .iter()
        .map(|(n, _)| {
            let status = if *n == "worker0" { "failed" } else { "passed" };
            (n.to_string(), status.to_string())
        })
        .collect();
    assert_eq!(hosts, expected, "{doc:#}");
    assert_eq!(doc["failed"], 1, "{doc:#}");
    let worker0 = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "host worker0")
        .unwrap();
    assert!(
        worker0["detail"]
            .as_str()
            .unwrap()
            .contains("Connection refused")
            && worker0["hint"]
                .as_str()
                .unwrap()
                .contains("check that sshd runs on worker0"),
        "{worker0:#}"
    );
    assert!(!e2e.lab_dir().join(".kubelab").exists());
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
    for (name, address) in servers().iter().filter(|(n, _)| n != "worker0") {
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

    // Routes need no Kubernetes: they run here, so the scale can move them.
    let ran = e2e.kubelab_without_vagrant(&["lab", "up", "--only", "routes"]);
    assert_eq!(ran.status, 0, "{}\n{}", ran.stdout, ran.stderr);

    // verify: the same checks pass as on the VirtualBox lab (tests/e2e_default_lab.rs),
    // check 1 as "hosts reachable".
    let (doc, code) = verify(&e2e);
    for name in ["machines", "dns", "etcd", "lb-failover", "certificates"] {
        assert_eq!(status(&doc, name), "passed", "{name}: {doc:#}");
    }
    for name in ["api", "control-plane", "nodes", "secrets", "workload"] {
        assert_ne!(
            status(&doc, name),
            "passed",
            "{name} cannot pass without Kubernetes: {doc:#}"
        );
    }
    let machines = |doc: &Value| {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "machines")
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        machines(&doc).contains("10 hosts reachable over SSH with passwordless sudo"),
        "{doc:#}"
    );
    assert_eq!(
        code, 0,
        "the Kubernetes checks are skipped: their phases have not run"
    );

    // scale workers=2: worker1, listed past the count, joins: checked,
    // provisioned through the lab's phases, in DNS and everyone's routes.
    let (w1, w1_addr) = worker(1);
    let ran = e2e.kubelab_without_vagrant(&["lab", "scale", "workers=2", "--dry-run"]);
    assert_eq!(ran.status, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout
            .contains("+ worker1    192.168.56.31   pod range 10.200.1.0/24")
            && ran.stdout.contains("new: the SSH and sudo check"),
        "{}",
        ran.stdout
    );
    let ran = e2e.kubelab_without_vagrant(&["lab", "scale", "workers=2"]);
    eprintln!("{}", ran.stderr);
    assert_eq!(ran.status, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr
            .contains("all 11 hosts answer over SSH and have passwordless sudo"),
        "{}",
        ran.stderr
    );
    assert!(
        lab_yaml(&e2e).contains("    count: 2 # worker1 waits\n"),
        "{}",
        lab_yaml(&e2e)
    );
    assert_eq!(e2e.dig(&[&format!("{w1}.lan")]), w1_addr);
    assert_eq!(e2e.ssh_ok(&w1_addr, "hostname").trim(), w1);
    for (name, address) in DEFAULT_LAB.iter().filter(|(n, _)| *n != "worker0") {
        let route = e2e.ssh_ok(address, "ip -4 route show 10.200.1.0/24");
        assert!(route.contains("via 192.168.56.31"), "{name}: {route}");
    }
    let (doc, _) = verify(&e2e);
    for name in ["machines", "dns", "etcd", "lb-failover", "certificates"] {
        assert_eq!(status(&doc, name), "passed", "{name}: {doc:#}");
    }
    assert!(
        machines(&doc).contains("11 hosts reachable over SSH"),
        "{doc:#}"
    );

    // And back to 1: worker1 is uninstalled but keeps running, still listed.
    let boot_id = e2e.ssh_ok(&w1_addr, "cat /proc/sys/kernel/random/boot_id");
    let ran = e2e.kubelab_without_vagrant(&["lab", "scale", "workers=1", "--yes"]);
    eprintln!("{}", ran.stderr);
    assert_eq!(ran.status, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("uninstalling kubelab from worker1"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        e2e.ssh_ok(&w1_addr, "cat /proc/sys/kernel/random/boot_id"),
        boot_id,
        "worker1 was restarted"
    );
    assert_eq!(
        e2e.ssh_ok(&w1_addr, TRACES).trim(),
        "",
        "worker1 keeps kubelab's files"
    );
    let active = e2e.ssh_ok(
        &w1_addr,
        "systemctl is-active --quiet kubelab-routes && echo routes; ip -4 route show root 10.200.0.0/16; true",
    );
    assert_eq!(active.trim(), "", "worker1 keeps {active}");
    assert_eq!(e2e.dig(&[&format!("{w1}.lan")]), "");
    assert_eq!(
        e2e.ssh_ok(addr("lb0"), "ip -4 route show 10.200.1.0/24")
            .trim(),
        ""
    );
    let yaml = lab_yaml(&e2e);
    assert!(
        yaml.contains("    count: 1 # worker1 waits\n") && yaml.contains("name: worker1"),
        "{yaml}"
    );
    let (doc, _) = verify(&e2e);
    assert!(
        machines(&doc).contains("10 hosts reachable over SSH"),
        "{doc:#}"
    );

    // halt and snapshot refuse; destroy uninstalls and powers nothing off.
    let ran = e2e.kubelab_without_vagrant(&["lab", "halt"]);
    assert_eq!(ran.status, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("never powers off"), "{}", ran.stderr);
    let ran = e2e.kubelab_without_vagrant(&["lab", "destroy", "--yes"]);
    assert_eq!(ran.status, 0, "{}\n{}", ran.stdout, ran.stderr);
    for (name, address) in servers() {
        let address = address.as_str();
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
