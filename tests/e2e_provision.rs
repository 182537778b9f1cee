//! End to end: `kubelab lab up --until etcd` provisions the default lab's
//! real machines (tests/support/e2e.rs) over SSH with the same engine a
//! VirtualBox lab uses, and the services answer: bind9, the resolver
//! drop-in, haproxy behind the keepalived VIP (with failover), and a
//! 3-member TLS etcd. The Kubernetes phases cannot run here (no release
//! binaries can be downloaded), so this stops after etcd. Needs root.

mod support;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use support::e2e::{DEFAULT_LAB, E2e};

/// The test machines take etcd from Debian's etcd-server package: these
/// machines cannot download the pinned release.
const LAB: &str = "name: kubelab\nartifacts:\n  etcd: distro\n";

const VIP: &str = "192.168.56.50";

/// Polls `check` until it is true or `seconds` pass, naming what it waited for.
fn wait_until(what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn vip_holder(e2e: &E2e) -> Vec<&'static str> {
    ["lb0", "lb1"]
        .into_iter()
        .filter(|lb| {
            let addr = DEFAULT_LAB.iter().find(|(n, _)| n == lb).unwrap().1;
            e2e.ssh_ok(addr, "ip -4 -o addr show")
                .contains(&format!("inet {VIP}/"))
        })
        .collect()
}

/// TCP to the API port on the VIP, from the hypervisor namespace.
fn vip_accepts(e2e: &E2e) -> bool {
    e2e.in_hypervisor("timeout")
        .args(["3", "bash", "-c", &format!("exec 3<>/dev/tcp/{VIP}/6443")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn lab_up_until_etcd_provisions_dns_lb_and_a_tls_etcd_cluster() {
    let Some(e2e) = E2e::start("192.168.56.1") else {
        return;
    };
    std::fs::write(e2e.lab_dir().join("lab.yaml"), LAB).unwrap();

    // Up to the certs first, then interrupt the etcd phase half-way and
    // resume: finished steps stay done, the rest runs.
    let ran = e2e.kubelab(&["lab", "up", "--until", "certs"]);
    assert!(ran.stderr.contains("dns: done"), "{}", ran.stderr);
    let mut child = e2e
        .kubelab_command(&["lab", "up", "--until", "etcd"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt the moment the etcd phase starts: its members take seconds to
    // become healthy, so the run is caught inside the phase.
    let mut stderr = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if line.starts_with("etcd: ") {
            // `nsenter` forwards the signal to kubelab, which interrupts its ssh children.
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            )
            .unwrap();
            break;
        }
    }
    for line in lines {
        stderr.push_str(&line.unwrap());
        stderr.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("carry on where it stopped"), "{stderr}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(e2e.lab_dir().join(".kubelab/state.json")).unwrap(),
    )
    .unwrap();
    let etcd_done = ["etcd0", "etcd1", "etcd2"]
        .iter()
        .filter(|n| state["steps"][n].get("etcd").is_some())
        .count();
    assert!(
        etcd_done < 3,
        "the interrupt came after the etcd phase: {stderr}"
    );
    assert!(
        state["steps"]["dns0"].get("dns").is_some(),
        "finished steps are kept"
    );

    let ran = e2e.kubelab(&["lab", "up", "--until", "etcd"]);
    assert!(ran.stderr.contains("etcd: done"), "{}", ran.stderr);
    assert!(
        !ran.stderr.contains("dns0         dns"),
        "dns ran again: {}",
        ran.stderr
    );

    // A rerun with nothing changed does no SSH work at all.
    let ran = e2e.kubelab(&["lab", "up", "--until", "etcd"]);
    assert!(
        ran.stderr
            .contains("every selected step is done already; nothing to do"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("facts:"), "{}", ran.stderr);

    // bind9 on dns0 answers every node's name and its reverse record.
    for (name, address) in DEFAULT_LAB {
        let a = e2e.ssh_ok(
            "192.168.56.2",
            &format!("dig +short @192.168.56.2 {name}.lan"),
        );
        assert_eq!(a.trim(), address, "A record of {name}");
        let ptr = e2e.ssh_ok(
            "192.168.56.2",
            &format!("dig +short @192.168.56.2 -x {address}"),
        );
        assert_eq!(ptr.trim(), format!("{name}.lan."), "PTR of {address}");
    }
    let api = e2e.ssh_ok("192.168.56.2", "dig +short @192.168.56.2 api.lan");
    assert_eq!(api.trim(), VIP);

    // Every node resolves the others through it (systemd-resolved drop-in).
    for (_, address) in DEFAULT_LAB {
        let out = e2e.ssh_ok(address, "getent hosts etcd2.lan controller1.lan");
        assert!(
            out.contains("192.168.56.12") && out.contains("192.168.56.21"),
            "{address}: {out}"
        );
    }

    // The VIP: held by lb0, accepts TCP on 6443; stopping haproxy on lb0
    // moves it to lb1, and it comes back when haproxy does.
    wait_until("lb0 to hold the VIP", 30, || vip_holder(&e2e) == ["lb0"]);
    assert!(vip_accepts(&e2e), "haproxy does not accept on the VIP");
    e2e.ssh_ok("192.168.56.51", "sudo systemctl stop haproxy");
    wait_until("the VIP to move to lb1", 30, || vip_holder(&e2e) == ["lb1"]);
    wait_until("the VIP to accept TCP on lb1", 15, || vip_accepts(&e2e));
    e2e.ssh_ok("192.168.56.51", "sudo systemctl start haproxy");
    wait_until("the VIP to return to lb0", 30, || {
        vip_holder(&e2e) == ["lb0"]
    });

    // etcd: three members, every one healthy over mutual TLS.
    let etcdctl = "sudo env ETCDCTL_API=3 etcdctl --cacert /etc/etcd/ca.pem --cert /etc/etcd/server.pem --key /etc/etcd/server-key.pem --endpoints https://192.168.56.10:2379,https://192.168.56.11:2379,https://192.168.56.12:2379";
    let health = e2e.ssh_ok("192.168.56.10", &format!("{etcdctl} endpoint health 2>&1"));
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    let members = e2e.ssh_ok("192.168.56.10", &format!("{etcdctl} member list"));
    assert_eq!(members.lines().count(), 3, "{members}");
    for name in ["etcd0", "etcd1", "etcd2"] {
        assert!(members.contains(name), "{members}");
    }
    // Nothing binds the NAT address every VM shares.
    let listening = e2e.ssh_ok("192.168.56.10", "sudo ss -Hltn");
    assert!(!listening.contains("10.0.2.15:"), "{listening}");

    // lab status shows the phases done.
    let status = e2e.kubelab(&["lab", "status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let etcd0 = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "etcd0")
        .unwrap();
    assert_eq!(
        etcd0["phases"],
        serde_json::json!(["resolv", "certs", "etcd"])
    );

    e2e.kubelab(&["lab", "destroy", "--yes"]);
}
