//! End to end: `lab up --snapshot`, `lab scale workers=3` and back to 1, and
//! `lab reset`, on the default lab's real machines (tests/support/e2e.rs)
//! provisioned through etcd plus the pod routes. The machines, the hosts
//! block, the routes on every node and dns0's records follow each scale,
//! the other machines are not rebooted (their boot IDs stay), and the
//! Kubernetes steps (drain, Node delete, workload spread) are reported as
//! not run, since no Kubernetes runs here. Needs root.

mod support;

use std::collections::BTreeMap;

use support::e2e::{DEFAULT_LAB, E2e};

const LAB: &str = "# the e2e lab: comments survive a scale\nname: kubelab\nartifacts:\n  etcd: distro\nnodes:\n  worker:\n    count: 1 # one to start with\n";

fn boot_ids(e2e: &E2e) -> BTreeMap<&'static str, String> {
    DEFAULT_LAB
        .iter()
        .map(|(name, address)| {
            (
                *name,
                e2e.ssh_ok(address, "cat /proc/sys/kernel/random/boot_id")
                    .trim()
                    .to_string(),
            )
        })
        .collect()
}

fn route(e2e: &E2e, address: &str, cidr: &str) -> String {
    e2e.ssh_ok(address, &format!("ip -4 route show {cidr}"))
        .trim()
        .to_string()
}

fn lab_yaml(e2e: &E2e) -> String {
    std::fs::read_to_string(e2e.lab_dir().join("lab.yaml")).unwrap()
}

#[test]
fn scale_up_and_down_then_reset_to_the_base_snapshot() {
    let Some(e2e) = E2e::start("192.168.56.1") else {
        return;
    };
    std::fs::write(e2e.lab_dir().join("lab.yaml"), LAB).unwrap();
    e2e.kubelab(&["lab", "up", "--until", "etcd"]);
    // Routes need no Kubernetes: they run here, so scaling can move them.
    let ran = e2e.kubelab(&["lab", "up", "--only", "routes", "--snapshot", "base"]);
    assert!(
        ran.stderr
            .contains("waiting for these checks to pass: machines, dns, etcd, certificates\n"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("saved snapshot base"), "{}", ran.stderr);
    let before = boot_ids(&e2e);

    // --dry-run: the plan on stdout, nothing changed.
    let ran = e2e.kubelab(&["lab", "scale", "workers=3", "--dry-run"]);
    assert!(
        ran.stdout.contains("scale workers: 1 -> 3"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("+ worker2    192.168.56.32   pod range 10.200.2.0/24"),
        "{}",
        ran.stdout
    );
    assert_eq!(lab_yaml(&e2e), LAB);
    // Roles kubelab does not scale are refused, with why.
    let refused = e2e.kubelab_unchecked(&["lab", "scale", "etcd=5"]);
    assert_eq!(refused.status, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("kubelab does not scale etcd"),
        "{}",
        refused.stderr
    );

    // Up to 3: two new machines, provisioned like the others.
    let ran = e2e.kubelab(&["lab", "scale", "workers=3"]);
    eprintln!("{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("kubernetes: spread the nginx workload onto worker1, worker2: not run"),
        "{}",
        ran.stderr
    );
    let yaml = lab_yaml(&e2e);
    assert!(
        yaml.contains("    count: 3 # one to start with\n"),
        "{yaml}"
    );
    assert!(yaml.starts_with("# the e2e lab: comments survive a scale\n"));
    for (name, address) in [("worker1", "192.168.56.31"), ("worker2", "192.168.56.32")] {
        assert_eq!(e2e.ssh_ok(address, "hostname").trim(), name);
        assert_eq!(e2e.dig(&[&format!("{name}.lan")]), address);
        let hosts = std::fs::read_to_string(e2e.hosts_file()).unwrap();
        assert!(hosts.contains(&format!("{address}\t{name}.lan")), "{hosts}");
        // New nodes reach the others by name through dns0 too.
        e2e.ssh_ok(address, "getent hosts etcd0.lan");
    }
    assert_eq!(
        e2e.dig(&["-x", "192.168.56.32"]),
        "worker2.lan.",
        "the reverse zone follows"
    );
    // Every node routes to the new ranges; the new ones to worker0's.
    for address in ["192.168.56.51", "192.168.56.30", "192.168.56.2"] {
        assert!(
            route(&e2e, address, "10.200.2.0/24").contains("via 192.168.56.32"),
            "{address}"
        );
    }
    assert!(route(&e2e, "192.168.56.31", "10.200.0.0/24").contains("via 192.168.56.30"));
    assert_eq!(boot_ids(&e2e), before, "no old machine was restarted");
    // lab.yaml now says 3: nothing left to do.
    let again = e2e.kubelab(&["lab", "up", "--until", "etcd"]);
    assert!(
        again
            .stderr
            .contains("every selected step is done already; nothing to do"),
        "{}",
        again.stderr
    );

    // Down to 1: drained (not here: no Kubernetes), destroyed, forgotten.
    let ran = e2e.kubelab(&["lab", "scale", "workers=1", "--yes"]);
    eprintln!("{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("kubernetes: drain worker2 and delete Node worker2: not run"),
        "{}",
        ran.stderr
    );
    assert!(lab_yaml(&e2e).contains("    count: 1 # one to start with\n"));
    assert!(!e2e.ssh("192.168.56.32", "true").status.success());
    assert!(!e2e.ssh("192.168.56.31", "true").status.success());
    assert_eq!(e2e.dig(&["worker2.lan"]), "");
    assert_eq!(e2e.dig(&["-x", "192.168.56.31"]), "");
    let hosts = std::fs::read_to_string(e2e.hosts_file()).unwrap();
    assert!(
        !hosts.contains("worker1") && !hosts.contains("worker2"),
        "{hosts}"
    );
    for address in ["192.168.56.51", "192.168.56.30", "192.168.56.2"] {
        assert_eq!(route(&e2e, address, "10.200.1.0/24"), "", "{address}");
        assert_eq!(route(&e2e, address, "10.200.2.0/24"), "", "{address}");
    }
    assert!(route(&e2e, "192.168.56.51", "10.200.0.0/24").contains("via 192.168.56.30"));
    let pki = e2e.lab_dir().join(".kubelab/pki");
    assert!(pki.join("worker0.pem").exists());
    assert!(!pki.join("worker2.pem").exists() && !pki.join("worker2-key.pem").exists());
    assert_eq!(boot_ids(&e2e), before, "no old machine was restarted");

    // An experiment: one more worker and a changed file; reset undoes both.
    e2e.kubelab(&["lab", "scale", "workers=2"]);
    e2e.ssh_ok(
        "192.168.56.10",
        "echo experiment | sudo tee /etc/kubelab-experiment",
    );
    let ran = e2e.kubelab(&["lab", "reset"]);
    eprintln!("{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("is back at snapshot base and answers again"),
        "{}",
        ran.stderr
    );
    assert!(
        e2e.ssh_ok("192.168.56.10", "ls /etc/kubelab-experiment 2>&1 || true")
            .contains("No such file"),
        "the file made after the snapshot is gone"
    );
    assert!(lab_yaml(&e2e).contains("    count: 1 # one to start with\n"));
    assert!(!e2e.ssh("192.168.56.31", "true").status.success());
    let hosts = std::fs::read_to_string(e2e.hosts_file()).unwrap();
    assert!(!hosts.contains("worker1"), "{hosts}");
    // A missing snapshot is named, with the way to take one.
    let missing = e2e.kubelab_unchecked(&["lab", "reset", "nope"]);
    assert_eq!(missing.status, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("--snapshot nope"),
        "{}",
        missing.stderr
    );

    e2e.kubelab(&["lab", "destroy", "--yes"]);
    assert_eq!(e2e.leftovers(), Vec::<String>::new());
}
