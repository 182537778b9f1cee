//! End to end: `kubelab lab verify` against the default lab's real machines
//! (tests/support/e2e.rs) provisioned `--until etcd`. The VMs, DNS, etcd,
//! the LB failover (at the TCP level) and the certificates pass for real;
//! every check that needs the Kubernetes API fails or is skipped, since no
//! Kubernetes runs here. Then the lab survives a reboot: `lab halt`, `lab
//! up`, and the same checks pass with no step run again. Needs root.

mod support;

use serde_json::Value;
use support::e2e::E2e;

const LAB: &str = "name: kubelab\nartifacts:\n  etcd: distro\n";

/// The checks that need the Kubernetes API: never "passed" here.
const KUBERNETES_CHECKS: [&str; 6] = [
    "api",
    "control-plane",
    "nodes",
    "secrets",
    "networking",
    "workload",
];

fn verify(e2e: &E2e, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["lab", "verify", "--json"];
    all.extend_from_slice(args);
    let ran = e2e.kubelab_unchecked(&all);
    let doc: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n--- stderr\n{}",
            ran.stdout, ran.stderr
        )
    });
    (ran.status, doc, ran.stderr)
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc:#}"))
}

#[test]
fn lab_verify_passes_what_runs_here_and_never_passes_kubernetes() {
    let Some(e2e) = E2e::start("192.168.56.1") else {
        return;
    };
    std::fs::write(e2e.lab_dir().join("lab.yaml"), LAB).unwrap();
    e2e.kubelab(&["lab", "up", "--until", "etcd"]);
    e2e.kubelab(&["lab", "up", "--only", "routes"]);

    let (status, doc, stderr) = verify(&e2e, &[]);
    eprintln!("{doc:#}\n{stderr}");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["checks"].as_array().unwrap().len(), 16);
    // etcd-member-down stops etcd2 for real, writes through etcd0, reads
    // back through etcd1 and starts etcd2 again.
    for name in [
        "machines",
        "dns",
        "etcd",
        "lb-failover",
        "certificates",
        "etcd-member-down",
    ] {
        assert_eq!(check(&doc, name)["status"], "passed", "{name}: {doc:#}");
    }
    // The controllers and later phases have not run: each Kubernetes check
    // is Skipped naming its phase, not Failed with a connection error.
    for name in KUBERNETES_CHECKS {
        assert_eq!(check(&doc, name)["status"], "skipped", "{name}: {doc:#}");
        assert!(
            check(&doc, name)["detail"]
                .as_str()
                .is_some_and(|d| d.contains(" phase has not run on this lab")),
            "{name}: {doc:#}"
        );
    }
    assert!(
        check(&doc, "api")["detail"]
            .as_str()
            .unwrap()
            .starts_with("the controllers phase has not run")
    );
    assert_eq!(status, 0, "nothing failed, so exit 0: {stderr}");
    // The failover left the VIP where it was and haproxy running.
    let lb0 = e2e.ssh_ok(
        "192.168.56.51",
        "ip -4 -o addr show; systemctl is-active haproxy",
    );
    assert!(lb0.contains("inet 192.168.56.50/"), "{lb0}");
    assert!(lb0.trim_end().ends_with("active"), "{lb0}");

    // The table: one row per check, with its status and duration.
    let ran = e2e.kubelab_unchecked(&["lab", "verify", "--no-disruptive"]);
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    let header = ran.stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("CHECK") && header.contains("STATUS"),
        "{}",
        ran.stdout
    );
    for row in [
        " 3. etcd",
        "Passed",
        "Skipped",
        "the controllers phase has not run",
    ] {
        assert!(ran.stdout.contains(row), "{row}: {}", ran.stdout);
    }
    eprintln!("{}", ran.stdout);

    // --no-disruptive skips the failover, and says so.
    let (_, doc, _) = verify(&e2e, &["--no-disruptive"]);
    for name in ["api-failover", "etcd-member-down"] {
        assert_eq!(check(&doc, name)["status"], "skipped", "{name}: {doc:#}");
    }
    let failover = check(&doc, "lb-failover");
    assert_eq!(failover["status"], "skipped");
    assert!(
        failover["detail"]
            .as_str()
            .unwrap()
            .contains("--no-disruptive")
    );

    // --only runs one check; a healthy etcd exits 0.
    let (status, doc, _) = verify(&e2e, &["--only", "etcd"]);
    assert_eq!(doc["checks"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(check(&doc, "etcd")["status"], "passed");
    assert_eq!(status, 0);

    // A stopped member is noticed.
    e2e.ssh_ok("192.168.56.12", "sudo systemctl stop etcd");
    let (status, doc, _) = verify(&e2e, &["--only", "etcd"]);
    let etcd = check(&doc, "etcd");
    assert_eq!(etcd["status"], "failed", "{doc:#}");
    assert!(
        etcd["detail"].as_str().unwrap().contains("etcd2"),
        "{doc:#}"
    );
    assert_eq!(status, 1);
    e2e.ssh_ok("192.168.56.12", "sudo systemctl start etcd");

    // A hosts block edited by hand is noticed too.
    let hosts = std::fs::read_to_string(e2e.hosts_file()).unwrap();
    let edited = hosts.replace("192.168.56.11\t", "192.168.56.99\t");
    assert_ne!(edited, hosts, "etcd1's line in {hosts}");
    std::fs::write(e2e.hosts_file(), edited).unwrap();
    let (_, doc, _) = verify(&e2e, &["--only", "dns"]);
    let dns = check(&doc, "dns");
    assert_eq!(dns["status"], "failed", "{doc:#}");
    assert!(
        dns["detail"]
            .as_str()
            .unwrap()
            .contains("differs from the plan")
    );
    std::fs::write(e2e.hosts_file(), hosts).unwrap();

    e2e.survives_a_reboot();

    e2e.kubelab(&["lab", "destroy", "--yes"]);
}
