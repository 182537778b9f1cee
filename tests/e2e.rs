//! End to end without VirtualBox: the real kubelab drives a stand-in `vagrant`
//! that boots every machine of the lab as a real systemd machine
//! (systemd-nspawn on an overlay of the stock box boxes/test-debian bakes) in a network
//! namespace of its own, bridged in the "hypervisor" namespace kubelab runs in.
//! See tests/support/e2e.rs. Needs root; prints SKIPPED without it (never
//! under CI).

mod support;

use std::collections::BTreeMap;

use support::e2e::{DEBIAN_12, DEBIAN_13, DEFAULT_LAB, E2e};

/// Reads one line a TCP service at `address:port` sends, from inside a machine.
fn probe(port: u16, address: &str) -> String {
    format!(
        "timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port} && head -n1 <&3' 2>&1; echo \"exit=$?\""
    )
}

#[test]
fn default_lab_machines_come_up_reachable_snapshot_halt_and_leave_nothing_behind() {
    let Some(e2e) = E2e::start("192.168.56.1") else {
        return;
    };

    // lab up: the machines of the generated Vagrantfile, and the hosts block.
    e2e.kubelab(&["lab", "up", "--until", "machines"]);
    let leftovers = e2e.leftovers();
    // What the destroy check below must see go: 10 machines' worth.
    for kind in [
        "process",
        "mount",
        "network namespace",
        "link",
        "cgroup",
        "a kubelab block",
    ] {
        assert!(
            leftovers.iter().filter(|l| l.starts_with(kind)).count() >= 1,
            "a running lab shows no {kind}: {leftovers:#?}"
        );
    }
    assert_eq!(
        leftovers
            .iter()
            .filter(|l| l.starts_with("network namespace"))
            .count(),
        10,
        "{leftovers:#?}"
    );

    let status = e2e.kubelab(&["lab", "status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let states: BTreeMap<String, (String, String)> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                (
                    n["address"].as_str().unwrap().to_string(),
                    n["state"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, String)> = DEFAULT_LAB
        .iter()
        .map(|(n, a)| (n.to_string(), (a.to_string(), "running".to_string())))
        .collect();
    assert_eq!(states, expected);

    // Each machine answers over SSH at its Vagrantfile address, as `vagrant`,
    // with its own name, address, identity and passwordless sudo.
    let mut machine_ids = std::collections::BTreeSet::new();
    for (name, address) in DEFAULT_LAB {
        let out = e2e.ssh_ok(
            address,
            "hostname; id -un; ip -4 -o addr show dev eth1; cat /etc/machine-id; sudo -n true && echo sudo-ok; systemctl is-system-running",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], name, "{out}");
        assert_eq!(lines[1], "vagrant", "{out}");
        assert!(lines[2].contains(&format!("inet {address}/24")), "{out}");
        assert!(
            machine_ids.insert(lines[3].to_string()),
            "{name} shares a machine-id: {out}"
        );
        assert_eq!(lines[4], "sudo-ok", "{out}");
        assert!(matches!(lines[5], "running" | "degraded"), "{out}");
    }

    // The hosts file standing in for the hypervisor's /etc/hosts holds the block.
    let hosts = std::fs::read_to_string(e2e.hosts_file()).unwrap();
    assert!(hosts.contains("# BEGIN kubelab kubelab"), "{hosts}");
    for (name, address) in DEFAULT_LAB {
        assert!(
            hosts.contains(&format!("{address}\t{name}.lan {name}\n")),
            "{name} missing:\n{hosts}"
        );
    }

    // The NAT trap is real: every machine has 10.0.2.15 on eth0, so a service
    // bound there answers only on its own machine, never to another one --
    // while the same service on the host-only address does.
    let (worker, worker_address) = ("worker0", "192.168.56.30");
    let dns_address = "192.168.56.2";
    e2e.ssh_ok(
        worker_address,
        "sudo systemd-run --unit=nat-probe systemd-socket-activate -l 10.0.2.15:7000 -a --inetd echo nat-probe-from-worker0 \
         && sudo systemd-run --unit=host-only-probe systemd-socket-activate -l 192.168.56.30:7001 -a --inetd echo host-only-probe-from-worker0",
    );
    let own = e2e.ssh_ok(worker_address, &probe(7000, "10.0.2.15"));
    assert!(
        own.contains("nat-probe-from-worker0"),
        "{worker} cannot reach its own NAT service: {own}"
    );
    let other = e2e.ssh_ok(dns_address, &probe(7000, "10.0.2.15"));
    assert!(
        !other.contains("nat-probe") && !other.contains("exit=0"),
        "dns0 reached worker0's service on 10.0.2.15: {other}"
    );
    let host_only = e2e.ssh_ok(dns_address, &probe(7001, worker_address));
    assert!(
        host_only.contains("host-only-probe-from-worker0"),
        "{host_only}"
    );

    // Snapshots: a file written after the save is gone after the restore, a
    // file deleted after it is back, and one written before it stays.
    e2e.ssh_ok(
        worker_address,
        "echo before | sudo tee /etc/kubelab-before-save",
    );
    e2e.kubelab(&["lab", "snapshot", "save", "base"]);
    e2e.ssh_ok(
        worker_address,
        "echo after | sudo tee /etc/kubelab-after-save && sudo rm /etc/kubelab-before-save /etc/motd",
    );
    e2e.kubelab(&["lab", "snapshot", "restore", "base"]);
    let files = e2e.ssh_ok(
        worker_address,
        "for f in /etc/kubelab-before-save /etc/kubelab-after-save /etc/motd; do if [ -e $f ]; then echo \"$f present\"; else echo \"$f absent\"; fi; done",
    );
    assert_eq!(
        files,
        "/etc/kubelab-before-save present\n/etc/kubelab-after-save absent\n/etc/motd present\n"
    );
    let status = e2e.kubelab(&["lab", "status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(
        doc["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "running"),
        "{}",
        status.stdout
    );

    // halt powers every machine off; up boots the same machines again, disks kept.
    e2e.kubelab(&["lab", "halt"]);
    let status = e2e.kubelab(&["lab", "status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(
        doc["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "poweroff"),
        "{}",
        status.stdout
    );
    assert!(
        !e2e.ssh(worker_address, "true").status.success(),
        "worker0 answers while halted"
    );
    e2e.kubelab(&["lab", "up", "--until", "machines"]);
    assert_eq!(
        e2e.ssh_ok(worker_address, "hostname; cat /etc/kubelab-before-save"),
        "worker0\nbefore\n"
    );

    // destroy: no container, mount, namespace, veth, cgroup or hosts block left.
    e2e.kubelab(&["lab", "destroy", "--yes"]);
    assert_eq!(e2e.leftovers(), Vec::<String>::new());
    let out = e2e.ssh(worker_address, "true");
    assert!(!out.status.success(), "worker0 still answers after destroy");
}

/// The stand-ins, the box recipe and the test command pass shellcheck: they
/// are the test's own code, and a quoting slip in them would leak or break
/// machines silently.
#[test]
fn e2e_scripts_pass_shellcheck() {
    if which::which("shellcheck").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run shellcheck, but it is missing (tests/run installs it)"
        );
        eprintln!("SKIPPED: shellcheck is missing (tests/run installs it)");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("shellcheck")
        .args(["-x", "-P", "SCRIPTDIR"])
        .args([
            "tests/e2e-standin/vagrant",
            "tests/e2e-standin/VBoxManage",
            "tests/e2e-standin/lib.sh",
            "boxes/test-debian/bake",
            "tests/run",
            ".ci/run",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The files kubelab places before a step's packages are installed must not
/// make dpkg ask (the class of the bind9 conffile prompt): every rendered
/// path that a package of the lab's repository ships as a conffile is one
/// lib.sh knows to keep (`--force-confold`, and the README names it), on
/// both stock boxes. A new template at a packaged conffile's path fails
/// here until that is decided.
#[test]
fn the_only_packaged_conffiles_kubelab_writes_are_the_known_three() {
    const KNOWN: [&str; 3] = [
        "/etc/bind/named.conf.local",
        "/etc/bind/named.conf.options",
        "/etc/haproxy/haproxy.cfg",
    ];
    // Every role's files: a lab with a registry and three LBs.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lab.yaml"),
        "name: conffiles\nnodes:\n  registry:\n    count: 1\n  lb:\n    count: 3\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::kubelab_bin())
        .args(["lab", "render", "--out", "out"])
        .current_dir(dir.path())
        .env("KUBELAB_HOSTS_FILE", dir.path().join("hosts"))
        .env("KUBELAB_REGISTRY", dir.path().join("labs.json"))
        .env_remove("KUBELAB_LAB")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut placed = std::collections::BTreeSet::new();
    for node in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let node = node.unwrap().path();
        if node.file_name().is_some_and(|n| n == "host") {
            continue;
        }
        let listing = std::process::Command::new("find")
            .arg(&node)
            .args(["-type", "f"])
            .output()
            .unwrap();
        for path in String::from_utf8_lossy(&listing.stdout).lines() {
            placed.insert(
                path.strip_prefix(node.to_str().unwrap())
                    .unwrap()
                    .to_string(),
            );
        }
    }
    assert!(placed.contains("/etc/haproxy/haproxy.cfg"), "{placed:?}");
    for release in [DEBIAN_12, DEBIAN_13] {
        let Some(box_dir) = support::e2e::baked_box(release) else {
            return;
        };
        let mut clashes = std::collections::BTreeSet::new();
        for deb in std::fs::read_dir(box_dir.join("repo")).unwrap() {
            let deb = deb.unwrap().path();
            if deb.extension().is_none_or(|e| e != "deb") {
                continue;
            }
            let conffiles = std::process::Command::new("sh")
                .arg("-c")
                .arg("dpkg-deb --ctrl-tarfile \"$1\" | tar -xO ./conffiles 2>/dev/null || true")
                .arg("sh")
                .arg(&deb)
                .output()
                .unwrap();
            for conffile in String::from_utf8_lossy(&conffiles.stdout).lines() {
                let conffile = conffile.trim_start_matches("remove-on-upgrade ").trim();
                if placed.contains(conffile) {
                    clashes.insert(conffile.to_string());
                }
            }
        }
        let known: std::collections::BTreeSet<String> =
            KNOWN.iter().map(|s| s.to_string()).collect();
        assert_eq!(clashes, known, "on {release}");
    }
}
