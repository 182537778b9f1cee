//! End to end, the phases after etcd, on a lab with two workers and a
//! registry (tests/support/e2e.rs machines, real SSH, the same engine a
//! VirtualBox lab uses): the routes phase runs on every node and the kernel
//! routes each worker's pod range via that worker; the registry, controllers
//! and workers phases run up to what these machines cannot give them (the
//! Internet for the registry's upstreams, Kubernetes release binaries for the
//! rest) and fail there, saying so, with `lab up` exiting 1 and naming node,
//! phase, log and how to resume. Needs root.

mod support;

use support::Ran;
use support::e2e::E2e;

/// Debian's etcd-server, like e2e_provision: no release can be downloaded here.
const LAB: &str = "name: kubelab\nartifacts:\n  etcd: distro\nnodes:\n  worker:\n    count: 2\n  registry:\n    count: 1\n";

const NODES: [(&str, &str); 12] = [
    ("dns0", "192.168.56.2"),
    ("etcd0", "192.168.56.10"),
    ("etcd1", "192.168.56.11"),
    ("etcd2", "192.168.56.12"),
    ("controller0", "192.168.56.20"),
    ("controller1", "192.168.56.21"),
    ("controller2", "192.168.56.22"),
    ("worker0", "192.168.56.30"),
    ("worker1", "192.168.56.31"),
    ("lb0", "192.168.56.51"),
    ("lb1", "192.168.56.52"),
    ("registry0", "192.168.56.60"),
];

/// (worker, its address, its pod range) as the plan gives them.
const WORKERS: [(&str, &str, &str); 2] = [
    ("worker0", "192.168.56.30", "10.200.0.0/24"),
    ("worker1", "192.168.56.31", "10.200.1.0/24"),
];

fn log_of(e2e: &E2e, node: &str, phase: &str) -> String {
    let path = e2e
        .lab_dir()
        .join(".kubelab/logs")
        .join(node)
        .join(format!("{phase}.log"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `lab up` failed the way a user can act on: exit 1, the phase and each
/// node named with its log, and how to resume.
fn assert_failed_cleanly(ran: &Ran, phase: &str, nodes: &[&str]) {
    assert_eq!(ran.status, 1, "{}", ran.stderr);
    let n = nodes.len();
    let summary = format!(
        "the {phase} phase failed on {n} node{}",
        if n == 1 { "" } else { "s" }
    );
    assert!(ran.stderr.contains(&summary), "{}", ran.stderr);
    for node in nodes {
        assert!(
            ran.stderr
                .contains(&format!("run the {phase} phase on {node}")),
            "{}",
            ran.stderr
        );
        assert!(
            ran.stderr
                .contains(&format!(".kubelab/logs/{node}/{phase}.log")),
            "{}",
            ran.stderr
        );
    }
    assert!(
        ran.stderr.contains("run `kubelab lab up` again"),
        "{}",
        ran.stderr
    );
}

#[test]
fn routes_run_everywhere_and_the_kube_phases_stop_cleanly_at_the_missing_binaries() {
    let Some(e2e) = E2e::start("192.168.56.1") else {
        return;
    };
    std::fs::write(e2e.lab_dir().join("lab.yaml"), LAB).unwrap();
    e2e.kubelab(&["lab", "up", "--until", "resolv"]);

    // Routes: on every node, to each other worker's pod range via it.
    let ran = e2e.kubelab(&["lab", "up", "--only", "routes"]);
    assert!(ran.stderr.contains("routes: done"), "{}", ran.stderr);
    for (node, address) in NODES {
        let table = e2e.ssh_ok(address, "ip route show");
        for (worker, via, cidr) in WORKERS {
            let has = table
                .lines()
                .any(|l| l.starts_with(&format!("{cidr} via {via} ")));
            assert_eq!(has, node != worker, "{node} -> {cidr}:\n{table}");
        }
        // Persistent: the unit that holds them starts at boot (with two
        // workers every node, each worker included, has routes).
        let enabled = e2e.ssh_ok(address, "systemctl is-enabled kubelab-routes.service");
        assert_eq!(enabled.trim(), "enabled", "{node}");
    }
    // Pod traffic really takes the route: worker0's range is reached via
    // worker0 (its address answers behind the route's gateway).
    let path = e2e.ssh_ok("192.168.56.2", "ip route get 10.200.0.7");
    assert!(path.contains("via 192.168.56.30"), "{path}");
    let ran = e2e.kubelab(&["lab", "up", "--only", "routes"]);
    assert!(
        ran.stderr
            .contains("every selected step is done already; nothing to do"),
        "{}",
        ran.stderr
    );

    // Registry: Debian's distribution registry with the rendered per-upstream
    // configs, which contacts its upstream at start; these machines have no
    // Internet, so it exits, and the phase says why instead of hanging.
    let ran = e2e.kubelab_unchecked(&["lab", "up", "--only", "registry"]);
    assert_failed_cleanly(&ran, "registry", &["registry0"]);
    let log = log_of(&e2e, "registry0", "registry");
    assert!(
        log.contains("registry-docker-io.service does not answer on 192.168.56.60:5000")
            && log.contains("needs to reach https://registry-1.docker.io"),
        "{log}"
    );
    // It binds the host-only address only, and the package's own
    // instance on every address stays off.
    let unit = e2e.ssh_ok("192.168.56.60", "systemctl cat registry-docker-io.service");
    assert!(
        unit.contains("/etc/kubelab-registry/docker.io.yml"),
        "{unit}"
    );
    let stock = e2e.ssh(
        "192.168.56.60",
        "systemctl is-enabled docker-registry.service",
    );
    assert_eq!(String::from_utf8_lossy(&stock.stdout).trim(), "disabled");

    // Controllers: the script stops at the missing release binaries, naming
    // each and where they come from; nothing is installed or started.
    let ran = e2e.kubelab_unchecked(&["lab", "up", "--only", "controllers"]);
    assert_failed_cleanly(
        &ran,
        "controllers",
        &["controller0", "controller1", "controller2"],
    );
    for node in ["controller0", "controller1", "controller2"] {
        let log = log_of(&e2e, node, "controllers");
        assert!(
            log.contains(&format!(
                "missing release binaries for the controllers phase on {node}: kube-apiserver kube-controller-manager kube-scheduler kubectl"
            )) && log.contains("`kubelab artifacts fetch`"),
            "{log}"
        );
    }
    assert!(
        ran.stderr.contains("missing release binaries"),
        "{}",
        ran.stderr
    );
    let installed = e2e.ssh("192.168.56.20", "test -e /usr/local/bin/kube-apiserver");
    assert!(
        !installed.status.success(),
        "an apiserver appeared from nowhere"
    );

    // Workers: the kernel settings are applied for real (swap off, modules,
    // sysctls), then the script stops at the binaries.
    for (node, address, _) in WORKERS {
        let forward = e2e.ssh_ok(address, "cat /proc/sys/net/ipv4/ip_forward");
        assert_eq!(
            forward.trim(),
            "0",
            "{node} forwards before the workers phase"
        );
    }
    let ran = e2e.kubelab_unchecked(&["lab", "up", "--only", "workers"]);
    assert_failed_cleanly(&ran, "workers", &["worker0", "worker1"]);
    for (node, address, _) in WORKERS {
        let log = log_of(&e2e, node, "workers");
        assert!(
            log.contains(&format!("missing release binaries for the workers phase on {node}: kubelet kube-proxy containerd-*-linux-*.tar.gz runc.* cni-plugins-linux-*-v*.tgz")),
            "{log}"
        );
        let forward = e2e.ssh_ok(address, "cat /proc/sys/net/ipv4/ip_forward");
        assert_eq!(forward.trim(), "1", "{node}");
        let bridged = e2e.ssh_ok(address, "cat /proc/sys/net/bridge/bridge-nf-call-iptables");
        assert_eq!(bridged.trim(), "1", "{node}");
    }

    // Nothing failed is recorded as done: a rerun tries the same steps again.
    let status = e2e.kubelab(&["lab", "status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for node in doc["nodes"].as_array().unwrap() {
        let phases = node["phases"].as_array().unwrap();
        for phase in ["registry", "controllers", "workers"] {
            assert!(!phases.contains(&phase.into()), "{node}");
        }
        assert!(phases.contains(&"routes".into()), "{node}");
    }

    e2e.kubelab(&["lab", "destroy", "--yes"]);
}
