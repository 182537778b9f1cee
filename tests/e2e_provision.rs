//! End to end: `kubelab lab up --until etcd` provisions the default lab's
//! real machines (tests/support/e2e.rs) over SSH with the same engine a
//! VirtualBox lab uses, and the services answer: bind9, the resolver
//! drop-in, haproxy behind the keepalived VIP (with failover), and a
//! 3-member TLS etcd. The machines boot from a stock box: every role
//! package is installed by kubelab during the test, from the apt repository
//! the fixture serves on the lab network, and an install another process
//! holds up and then leaves half done (as a killed run or apt-daily would)
//! is waited for and repaired. The Kubernetes phases cannot run here (no
//! release binaries can be downloaded), so this stops after etcd. Needs root.

mod support;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use support::e2e::{DEFAULT_LAB, E2e};

/// Whether `package` is installed on the machine at `address`.
fn installed(e2e: &E2e, address: &str, package: &str) -> bool {
    e2e.ssh_ok(
        address,
        &format!("dpkg-query -W -f='${{Status}}' {package} 2>/dev/null || true"),
    ) == "install ok installed"
}

/// Starts `apt-get install bind9` on dns0 the way an unlucky first boot
/// has it: it holds dpkg's lock and hangs in bind9's postinst (a
/// policy-rc.d that sleeps stands in for whatever keeps it), so that
/// killing it leaves bind9 half configured. Returns once it hangs.
fn hang_an_install_on_dns0(e2e: &E2e) {
    e2e.ssh_ok(
        "192.168.56.2",
        "sudo sh -c 'printf \"#!/bin/sh\\nsleep 600\\n\" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
         && apt-get update -qq && { setsid apt-get install -y -q --no-install-recommends bind9 \
            </dev/null >/root/hung-install.log 2>&1 & echo $! >/root/hung-install.pid; }'",
    );
    wait_until(
        "the install on dns0 to hang in bind9's postinst",
        120,
        || {
            e2e.ssh_ok("192.168.56.2", "pgrep -fx 'sleep 600' || true")
                .trim()
                .lines()
                .count()
                == 1
        },
    );
}

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

    // A stock box: none of the roles' packages is there before kubelab.
    let status_file =
        std::fs::read_to_string(e2e.box_dir.join("rootfs/var/lib/dpkg/status")).unwrap();
    for package in [
        "bind9",
        "bind9-dnsutils",
        "haproxy",
        "keepalived",
        "etcd-server",
        "systemd-resolved",
        "docker-registry",
        "conntrack",
    ] {
        assert!(
            !status_file.contains(&format!("\nPackage: {package}\n")),
            "the test box has {package} baked in"
        );
    }
    e2e.kubelab(&["lab", "up", "--until", "machines"]);

    // dns0's first install is held up, then killed half way, by another
    // process: kubelab waits for dpkg's lock, names its holder, then
    // finishes what was left half done before installing.
    hang_an_install_on_dns0(&e2e);
    let mut child = e2e
        .kubelab_command(&["lab", "up", "--until", "certs"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dns_log = e2e.lab_dir().join(".kubelab/logs/dns0/dns.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&dns_log).is_ok_and(|l| l.contains("waiting up to")) {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the dns step did not wait for dpkg's lock:\n{}\n--- dns0's log\n{}\n--- the hung install\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&dns_log).unwrap_or_default(),
                e2e.ssh_ok(
                    "192.168.56.2",
                    "sudo cat /root/hung-install.log; cat /proc/locks; ls -li /var/lib/dpkg/lock*"
                )
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // The install's whole process tree, by id (apt runs dpkg in a session
    // of its own): stopped first, so none of it moves on, then killed.
    e2e.ssh_ok(
        "192.168.56.2",
        "sudo bash -c 'tree() { echo $1; for c in $(ps -o pid= --ppid $1); do tree $c; done; }; \
         pids=$(tree $(cat /root/hung-install.pid)); kill -STOP $pids; rm /usr/sbin/policy-rc.d; kill -KILL $pids'",
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(&dns_log).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stderr}\n--- dns0's log\n{log}"
    );
    assert!(stderr.contains("dns: done"), "{stderr}");
    assert!(
        log.contains("held by pid") && log.contains("apt-get install"),
        "the lock's holder is named: {log}"
    );
    assert!(
        log.lines().any(
            |l| l.contains("repairing what an interrupted install left half done:")
                && l.contains("bind9")
        ),
        "{log}"
    );
    assert!(log.contains("apt's lock is free"), "{log}");
    // Every role's packages were installed by kubelab, from the lab
    // network's repository.
    assert!(installed(&e2e, "192.168.56.2", "bind9"));
    for lb in ["192.168.56.51", "192.168.56.52"] {
        assert!(installed(&e2e, lb, "haproxy") && installed(&e2e, lb, "keepalived"));
    }
    // kubelab's files were in place before the packages that own them as
    // conffiles were configured: dpkg kept them (on the LBs, a fresh
    // install, it put its own copy beside kubelab's).
    let kept = e2e.ssh_ok(
        "192.168.56.2",
        "head -n1 /etc/bind/named.conf.options /etc/bind/named.conf.local",
    );
    assert_eq!(kept.matches("// Managed by kubelab").count(), 2, "{kept}");
    for lb in ["192.168.56.51", "192.168.56.52"] {
        let kept = e2e.ssh_ok(lb, "head -n1 /etc/haproxy/haproxy.cfg; ls /etc/haproxy/");
        assert!(kept.starts_with("# Managed by kubelab"), "{kept}");
        assert!(kept.contains("haproxy.cfg.dpkg-dist"), "{kept}");
    }
    // No leftover of the install: no policy-rc.d, nothing half done.
    for (_, address) in DEFAULT_LAB {
        let left = e2e.ssh_ok(
            address,
            "ls /usr/sbin/policy-rc.d 2>/dev/null; dpkg --audit",
        );
        assert_eq!(left, "", "{address}");
    }
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
    for etcd in ["192.168.56.10", "192.168.56.11", "192.168.56.12"] {
        assert!(installed(&e2e, etcd, "etcd-server"), "{etcd}");
    }
    e2e.assert_fetched_from_repository(&[
        "bind9",
        "haproxy",
        "keepalived",
        "etcd-server",
        "systemd-resolved",
    ]);

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
    // How long the API port on the VIP is away, seen from the hypervisor:
    // a measurement, printed (the target is under 2 s).
    e2e.ssh_ok("192.168.56.51", "sudo systemctl stop haproxy");
    let stopped = Instant::now();
    wait_until("the VIP to accept TCP again", 30, || vip_accepts(&e2e));
    eprintln!(
        "e2e: measured: the VIP answered on 6443 again {:.2} s after haproxy stopped on lb0",
        stopped.elapsed().as_secs_f64()
    );
    wait_until("the VIP to move to lb1", 30, || vip_holder(&e2e) == ["lb1"]);
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
