//! End to end, the phases after etcd, on a lab with two workers and a
//! registry (tests/support/e2e.rs machines, real SSH, the same engine a
//! VirtualBox lab uses): the routes phase runs on every node and the kernel
//! routes each worker's pod range via that worker; the registry phase runs up
//! to what these machines cannot give it (the Internet for its upstreams) and
//! fails there, saying so, with `lab up` exiting 1 and naming node, phase,
//! log and how to resume. The controllers and workers phases need release
//! files that cannot be downloaded here: `lab up` names each missing one
//! before touching a node, and their scripts, run by hand with the rendered
//! files, go as far as they can and stop at the binaries. Needs root.

mod support;

use support::Ran;
use support::e2e::E2e;

/// Debian's etcd-server, like e2e_default_lab: no release can be downloaded here.
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

/// Puts `node`'s rendered files (`kubelab lab render`) in place as the
/// engine's step would, then runs the phase's script as root the way the
/// engine does; returns its exit code and output.
fn run_script(e2e: &E2e, node: &str, address: &str, phase: &str) -> (i32, String) {
    let out = e2e.lab_dir().join(".kubelab/rendered-by-test");
    e2e.kubelab(&["lab", "render", "--out", out.to_str().unwrap()]);
    let bundle = std::process::Command::new("tar")
        .arg("-C")
        .arg(out.join(node))
        .args(["-c", "."])
        .output()
        .expect("run tar");
    assert!(bundle.status.success());
    let script = if phase == "controllers" {
        "controller.sh"
    } else {
        "worker.sh"
    };
    let mut ssh = e2e.ssh_command(
        address,
        &format!(
            "sudo tar -x -p -f - -C / && sudo env KUBELAB_NODE={node} KUBELAB_ADDRESS={address} KUBELAB_DOMAIN=lan KUBELAB_PHASE={phase} bash /var/lib/kubelab/scripts/{script} 2>&1"
        ),
    );
    ssh.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = ssh.spawn().expect("run ssh");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&bundle.stdout).unwrap();
    }
    let done = child.wait_with_output().expect("wait for ssh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    (done.status.code().unwrap_or(-1), text)
}

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

    // The plan of this half-built lab, printed without touching it: the
    // VMs exist, their facts are known, what ran is done and the rest new.
    let state_before = std::fs::read(e2e.lab_dir().join(".kubelab/state.json")).unwrap();
    let ran = e2e.kubelab(&["lab", "up", "--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON plan");
    assert!(
        plan["machines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["action"] == "boot"),
        "{plan}"
    );
    assert_eq!(plan["facts"], serde_json::json!([]), "{plan}");
    assert_eq!(plan["certificates"], serde_json::json!([]), "{plan}");
    for step in plan["steps"].as_array().unwrap() {
        let done = ["dns", "resolv", "routes"].contains(&step["phase"].as_str().unwrap());
        assert_eq!(step["status"] == "done", done, "{step}");
    }
    let ran = e2e.kubelab(&["lab", "up", "--dry-run", "--only", "routes"]);
    assert!(ran.stdout.contains("steps (0 to run,"), "{}", ran.stdout);
    assert_eq!(
        std::fs::read(e2e.lab_dir().join(".kubelab/state.json")).unwrap(),
        state_before,
        "a dry run wrote the state"
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

    // Controllers and workers need the Kubernetes, containerd, runc, CNI and
    // crictl releases, which cannot be downloaded here: `lab up` names every
    // missing one before it touches a node.
    let ran = e2e.kubelab_unchecked(&["lab", "up", "--only", "controllers,workers", "--offline"]);
    assert_eq!(ran.status, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("5 release files are not in the cache"),
        "{}",
        ran.stderr
    );
    for label in [
        "kubernetes 1.36.0",
        "containerd 2.3.4",
        "runc 1.4.3",
        "cni-plugins 1.9.1",
        "crictl 1.36.0",
    ] {
        assert!(ran.stderr.contains(label), "{label}: {}", ran.stderr);
    }
    for (node, phase) in [
        ("controller0", "controllers"),
        ("controller1", "controllers"),
        ("controller2", "controllers"),
        ("worker0", "workers"),
        ("worker1", "workers"),
    ] {
        let log = e2e
            .lab_dir()
            .join(".kubelab/logs")
            .join(node)
            .join(format!("{phase}.log"));
        assert!(!log.exists(), "{node} was touched: {}", log.display());
    }

    // The scripts themselves, run by hand with the files the engine would
    // send, go as far as these machines allow and stop at the binaries,
    // naming each and where they come from. Controllers: nothing installed.
    let (code, out) = run_script(&e2e, "controller0", "192.168.56.20", "controllers");
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("missing release binaries for the controllers phase on controller0: kube-apiserver kube-controller-manager kube-scheduler kubectl")
            && out.contains("`kubelab artifacts fetch`"),
        "{out}"
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
        let (code, out) = run_script(&e2e, node, address, "workers");
        assert_ne!(code, 0, "{out}");
        assert!(
            out.contains(&format!("missing release binaries for the workers phase on {node}: kubelet kube-proxy containerd-*-linux-*.tar.gz runc.* cni-plugins-linux-*-v*.tgz crictl-v*-linux-*.tar.gz")),
            "{out}"
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
