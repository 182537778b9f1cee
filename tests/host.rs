//! The hypervisor side, run through the real binary against stand-in
//! `vagrant`, `VBoxManage` and `ssh` (tests/standin) that log their calls.

mod support;

use std::time::{Duration, Instant};

use support::{Test, interrupt};

/// The fake ssh that hangs (`FAKE_SSH_HANG`), once `what` has called it.
fn hung_ssh(pid_file: &std::path::Path, what: &str) -> nix::unistd::Pid {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            return nix::unistd::Pid::from_raw(pid);
        }
        assert!(Instant::now() < deadline, "{what} never asked controller0");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (5 s at most) until process `pid` has gone.
fn wait_gone(pid: nix::unistd::Pid) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while nix::sys::signal::kill(pid, None).is_ok() {
        assert!(Instant::now() < deadline, "the hung ssh {pid} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (60 s at most) until the stand-ins' calls so far satisfy `done`.
fn wait_for_calls(test: &Test, what: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let calls = test.started();
        if done(&calls) {
            return;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {calls:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lab() -> Test {
    Test::new().write("lab.yaml", "name: t\n").standins()
}

fn ups(test: &Test) -> Vec<String> {
    test.started()
        .into_iter()
        .filter(|c| c.starts_with("vagrant up "))
        .collect()
}

fn state(test: &Test) -> serde_json::Value {
    let text = std::fs::read_to_string(test.path().join(".kubelab/state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn up_boots_the_first_vm_alone_then_the_rest_concurrently() {
    let test = lab()
        .env("STANDIN_DELAY_MS", "300")
        .args(&["lab", "up", "--until", "machines", "--jobs", "4"]);
    let ran = test.run();
    let calls = test.calls();
    let up_events: Vec<_> = calls
        .iter()
        .filter(|c| c.command.starts_with("vagrant up "))
        .collect();
    // The first VM ends before any other starts.
    let first_end = up_events
        .iter()
        .find(|c| c.event == "end" && c.command.starts_with("vagrant up dns0"))
        .expect("dns0 booted")
        .ms;
    let others: Vec<_> = up_events
        .iter()
        .filter(|c| c.event == "start" && !c.command.starts_with("vagrant up dns0"))
        .collect();
    assert_eq!(others.len(), 9);
    assert!(
        others.iter().all(|c| c.ms >= first_end),
        "a VM started before the first finished"
    );
    // The rest overlap: more than one was started before any of them ended.
    let first_rest_end = up_events
        .iter()
        .filter(|c| c.event == "end" && !c.command.starts_with("vagrant up dns0"))
        .map(|c| c.ms)
        .min()
        .unwrap();
    let started_before = others.iter().filter(|c| c.ms < first_rest_end).count();
    assert!(
        started_before >= 2,
        "no concurrency: {started_before} started before the first ended"
    );
    assert!(started_before <= 4, "--jobs 4 exceeded: {started_before}");
    // Every call ran with VAGRANT_CWD=.kubelab: the stand-in kept state there.
    assert!(
        test.path()
            .join(".kubelab/.vagrant/machines/worker0/standin-state")
            .exists()
    );
    // The hosts block is in the stand-in hosts file.
    let hosts = std::fs::read_to_string(test.path().join("etc-hosts")).unwrap();
    assert!(hosts.contains("# BEGIN kubelab t\n"), "{hosts}");
    assert!(hosts.contains("192.168.56.50\tapi.lan\n"));
    // State records every node as created, with its VM id.
    let st = state(&test);
    for (node, _) in support::e2e::DEFAULT_LAB {
        assert_eq!(st["nodes"][node]["machine"], "created", "{node}");
        assert!(
            st["nodes"][node]["vm_id"]
                .as_str()
                .unwrap()
                .starts_with("vm-")
        );
    }
    assert!(ran.stderr.contains("10 VMs running"), "{}", ran.stderr);
}

#[test]
fn a_second_up_with_nothing_changed_boots_nothing() {
    let test = lab().args(&["lab", "up", "--until", "machines"]);
    test.run();
    test.clear_calls();
    let test = test.then(&["lab", "up", "--until", "machines"]);
    let ran = test.run();
    assert_eq!(ups(&test), Vec::<String>::new());
    assert_eq!(test.started(), ["vagrant status --machine-readable"]);
    assert!(
        ran.stderr.contains("all 10 VMs are running"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_failed_vm_keeps_the_others_and_a_rerun_retries_only_it() {
    let test = lab()
        .env("STANDIN_FAIL", "etcd1")
        .args(&["lab", "up", "--until", "machines"])
        .status(1);
    let ran = test.run();
    assert!(ran.stderr.contains("1 VM did not boot"), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("failed to boot etcd1: `vagrant up etcd1 --no-provision` exited 1"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains(".kubelab/logs/etcd1/up.log"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("VERR_VMX_NO_VMX"),
        "the log's last lines are quoted: {}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("run `kubelab lab up` again"),
        "{}",
        ran.stderr
    );
    let st = state(&test);
    assert_eq!(st["nodes"]["etcd1"]["machine"], "failed");
    assert_eq!(st["nodes"]["etcd2"]["machine"], "created");
    let log = std::fs::read_to_string(test.path().join(".kubelab/logs/etcd1/up.log")).unwrap();
    assert!(log.contains("VERR_VMX_NO_VMX"));

    test.clear_calls();
    let test = test
        .then(&["lab", "up", "--until", "machines"])
        .env("STANDIN_FAIL", "");
    test.run();
    assert_eq!(ups(&test), ["vagrant up etcd1 --no-provision"]);
    assert_eq!(state(&test)["nodes"]["etcd1"]["machine"], "created");
}

#[test]
fn vms_that_lose_a_virtualbox_race_are_booted_again_alone_and_the_lab_comes_up() {
    let test = lab()
        .env("STANDIN_RACE", "dns0=lock,etcd1=import,worker0=lock")
        .env("STANDIN_DELAY_MS", "200")
        .env("KUBELAB_BOOT_RETRY_MS", "100")
        .args(&["lab", "up", "--until", "machines", "--jobs", "4"]);
    let ran = test.run();
    assert!(ran.stderr.contains("10 VMs running"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains(
            "etcd1        lost a VirtualBox race (concurrent box import, NS_ERROR_INVALID_ARG); booting it again alone in 0.1 s (retry 1 of 3)"
        ),
        "{}",
        ran.stderr
    );
    let st = state(&test);
    for (node, _) in support::e2e::DEFAULT_LAB {
        assert_eq!(st["nodes"][node]["machine"], "created", "{node}");
    }
    // Each loser twice, every other VM once.
    let ups = ups(&test);
    assert_eq!(ups.len(), 13, "{ups:?}");
    assert_eq!(ups.iter().filter(|u| u.contains(" etcd1 ")).count(), 2);
    // The first VM's retry comes before any other VM; the retries of the
    // rest run alone: nothing else is up meanwhile.
    let calls = test.calls();
    let ups_in_order: Vec<&str> = calls
        .iter()
        .filter(|c| c.event == "start" && c.command.starts_with("vagrant up "))
        .map(|c| c.command.as_str())
        .collect();
    assert_eq!(&ups_in_order[..2], ["vagrant up dns0 --no-provision"; 2]);
    let retried: Vec<&support::Call> = calls
        .iter()
        .filter(|c| c.command.starts_with("vagrant up "))
        .collect();
    let second_start = |node: &str| {
        retried
            .iter()
            .filter(|c| c.event == "start" && c.command.contains(&format!(" {node} ")))
            .nth(1)
            .unwrap()
            .ms
    };
    let last_first_round_end = retried
        .iter()
        .filter(|c| c.event == "end")
        .map(|c| c.ms)
        .take(11) // dns0 twice, then the nine of the concurrent round
        .max()
        .unwrap();
    for node in ["etcd1", "worker0"] {
        assert!(
            second_start(node) >= last_first_round_end,
            "{node} retried during the round"
        );
    }
}

#[test]
fn a_race_lost_every_time_and_a_real_failure_are_still_reported() {
    let test = lab()
        .env("STANDIN_RACE", "etcd1=lock")
        .env("STANDIN_RACE_TIMES", "9")
        .env("STANDIN_FAIL", "etcd2")
        .env("KUBELAB_BOOT_RETRY_MS", "20")
        .args(&["lab", "up", "--until", "machines"])
        .status(1);
    let ran = test.run();
    assert!(ran.stderr.contains("2 VMs did not boot"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("is already locked for a session"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("VERR_VMX_NO_VMX"), "{}", ran.stderr);
    let ups = ups(&test);
    // etcd1: once and three retries; etcd2's real failure: never retried.
    assert_eq!(
        ups.iter().filter(|u| u.contains(" etcd1 ")).count(),
        4,
        "{ups:?}"
    );
    assert_eq!(
        ups.iter().filter(|u| u.contains(" etcd2 ")).count(),
        1,
        "{ups:?}"
    );
    let st = state(&test);
    assert_eq!(st["nodes"]["etcd1"]["machine"], "failed");
    assert_eq!(st["nodes"]["etcd2"]["machine"], "failed");
    assert_eq!(st["nodes"]["etcd0"]["machine"], "created");
}

#[test]
fn if_the_first_vm_fails_no_other_is_started() {
    let test = lab()
        .env("STANDIN_FAIL", "dns0")
        .args(&["lab", "up", "--until", "machines"])
        .status(1);
    test.run();
    assert_eq!(ups(&test), ["vagrant up dns0 --no-provision"]);
}

#[test]
fn destroy_removes_vms_hosts_block_and_state_and_keeps_every_other_byte() {
    let original = "127.0.0.1 localhost\r\n# mine\r\n10.1.1.1 dns0.lan";
    let test = lab()
        .write("etc-hosts", original)
        .args(&["lab", "up", "--until", "machines"]);
    test.run();
    let with_block = std::fs::read_to_string(test.path().join("etc-hosts")).unwrap();
    assert!(
        with_block.contains("# BEGIN kubelab t\r\n"),
        "CRLF kept: {with_block:?}"
    );
    // Editing lab.yaml after up must not change what destroy removes.
    std::fs::write(
        test.path().join("lab.yaml"),
        "name: t\nnodes:\n  worker:\n    count: 3\n",
    )
    .unwrap();
    test.clear_calls();
    let test = test.then(&["lab", "destroy", "--yes"]);
    test.run();
    assert_eq!(test.started(), ["vagrant destroy -f"]);
    assert_eq!(
        std::fs::read_to_string(test.path().join("etc-hosts")).unwrap(),
        original
    );
    assert!(!test.path().join(".kubelab").exists());
}

#[test]
fn destroy_without_a_terminal_needs_yes() {
    let test = lab().args(&["lab", "up", "--until", "machines"]);
    test.run();
    let test = test.then(&["lab", "destroy"]).status(2);
    let ran = test.run();
    assert!(ran.stderr.contains("pass --yes"), "{}", ran.stderr);
    assert!(
        test.path().join(".kubelab/state.json").exists(),
        "nothing destroyed"
    );
    assert!(!test.started().iter().any(|c| c.contains("destroy")));
}

#[test]
fn destroy_of_a_lab_never_brought_up_is_fine() {
    let ran = lab().args(&["lab", "destroy", "--yes"]).run();
    assert!(ran.stderr.contains("no VMs to destroy"), "{}", ran.stderr);
}

#[test]
fn status_reports_every_vm_in_one_vagrant_call() {
    let test = lab()
        .env("STANDIN_FAIL", "worker0")
        .args(&["lab", "up", "--until", "machines"])
        .status(1);
    test.run();
    test.clear_calls();
    let test = test.then(&["lab", "status", "--json"]);
    let ran = test.run();
    assert_eq!(test.started(), ["vagrant status --machine-readable"]);
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 10);
    let worker = nodes.iter().find(|n| n["name"] == "worker0").unwrap();
    assert_eq!(worker["state"], "not_created");
    assert_eq!(worker["address"], "192.168.56.30");
    assert_eq!(nodes[0]["state"], "running");
}

#[test]
fn halt_stops_running_vms() {
    let test = lab().args(&["lab", "up", "--until", "machines"]);
    test.run();
    test.clear_calls();
    let test = test.then(&["lab", "halt"]);
    test.run();
    let halts: Vec<String> = test
        .started()
        .into_iter()
        .filter(|c| c.starts_with("vagrant halt"))
        .collect();
    assert_eq!(halts.len(), 10);
}

#[test]
fn snapshots_pause_everything_and_restore_the_topology() {
    let test = lab().args(&["lab", "up", "--until", "machines"]);
    test.run();
    test.clear_calls();
    let test = test.then(&["lab", "snapshot", "save", "base"]);
    test.run();
    let calls = test.started();
    let pauses: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].contains("controlvm") && calls[i].ends_with("pause"))
        .collect();
    let saves: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].starts_with("vagrant snapshot save"))
        .collect();
    let resumes: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].ends_with("resume"))
        .collect();
    assert_eq!(
        (pauses.len(), saves.len(), resumes.len()),
        (10, 10, 10),
        "{calls:#?}"
    );
    assert!(
        pauses.iter().max() < saves.iter().min(),
        "every VM paused before any snapshot"
    );
    assert!(
        saves.iter().max() < resumes.iter().min(),
        "resumed only after all snapshots"
    );
    assert!(calls.contains(&"VBoxManage controlvm kubelab-t-lb1 pause".to_string()));

    // Grow the lab after the snapshot, then restore: worker1 goes, the
    // count in lab.yaml comes back, clocks are reset over ssh.
    std::fs::write(
        test.path().join("lab.yaml"),
        "name: t # mine\nnodes:\n  worker:\n    count: 2 # grown\n",
    )
    .unwrap();
    let test = test.then(&["lab", "up", "--until", "machines"]);
    test.run();
    test.clear_calls();
    let test = test.then(&["lab", "snapshot", "restore", "base"]);
    let ran = test.run();
    let calls = test.started();
    assert!(
        calls.contains(&"vagrant destroy -f worker1".to_string()),
        "{calls:#?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("vagrant snapshot restore"))
            .count(),
        10
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("ssh ") && c.contains("date -u -s @"))
            .count(),
        10
    );
    assert_eq!(
        std::fs::read_to_string(test.path().join("lab.yaml")).unwrap(),
        "name: t # mine\nnodes:\n  worker:\n    count: 1 # grown\n"
    );
    // Clocks that are right (within the SSH round trip) are left alone.
    let test = test
        .env("STANDIN_CLOCK_SKEW", "0")
        .then(&["lab", "snapshot", "restore", "base"]);
    test.clear_calls();
    test.run();
    let calls = test.started();
    assert_eq!(
        calls.iter().filter(|c| c.ends_with("date -u +%s")).count(),
        10,
        "{calls:#?}"
    );
    assert!(
        !calls.iter().any(|c| c.contains("date -u -s @")),
        "{calls:#?}"
    );
    assert!(
        ran.stderr.contains("restored snapshot base"),
        "{}",
        ran.stderr
    );

    let test = test.then(&["lab", "snapshot", "list", "--json"]);
    let ran = test.run();
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc["snapshots"][0]["name"], "base");
    assert_eq!(doc["snapshots"][0]["nodes"].as_array().unwrap().len(), 10);

    test.clear_calls();
    let test = test.then(&["lab", "snapshot", "delete", "base"]);
    test.run();
    assert_eq!(
        test.started()
            .iter()
            .filter(|c| c.starts_with("vagrant snapshot delete"))
            .count(),
        10
    );
    let ran = test
        .then(&["lab", "snapshot", "restore", "base"])
        .status(2)
        .run();
    assert!(
        ran.stderr.contains("no snapshot named \"base\""),
        "{}",
        ran.stderr
    );
}

#[test]
fn on_virtualbox_7_2_on_apple_silicon_snapshots_are_powered_off_and_say_so() {
    let test = lab()
        .env("KUBELAB_HOST_FACTS", &recorded_host("macos-arm64"))
        .env("STANDIN_VBOX_VERSION", "7.2.14r174565")
        .args(&["lab", "up", "--until", "machines"]);
    test.run();
    test.clear_calls();
    let test = test.then(&["lab", "snapshot", "save", "base"]);
    let ran = test.run();
    assert!(
        ran.stderr.contains("VirtualBox 7.2 on Apple silicon loses guest networking when it restores a saved state (VirtualBox/virtualbox#788): taking a powered-off snapshot instead"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("saved powered-off snapshot base of 10 VMs"),
        "{}",
        ran.stderr
    );
    // The VMs were booted again: it returns once the lab answers.
    assert!(
        ran.stderr
            .contains("waiting for these checks to pass: machines\n")
            && ran.stderr.contains("1 check passed after"),
        "{}",
        ran.stderr
    );
    let calls = test.started();
    let at = |prefix: &str| -> Vec<usize> {
        (0..calls.len())
            .filter(|&i| calls[i].starts_with(prefix))
            .collect()
    };
    let (halts, saves, ups) = (
        at("vagrant halt "),
        at("vagrant snapshot save "),
        at("vagrant up "),
    );
    assert_eq!(
        (halts.len(), saves.len(), ups.len()),
        (10, 10, 10),
        "{calls:#?}"
    );
    assert!(
        halts.iter().max() < saves.iter().min(),
        "every VM halted before any snapshot"
    );
    assert!(
        saves.iter().max() < ups.iter().min(),
        "booted again only after all snapshots"
    );
    assert!(
        !calls.iter().any(|c| c.contains("controlvm")),
        "no VM paused: {calls:#?}"
    );
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(test.path().join(".kubelab/snapshots/base/snapshot.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["powered_off"], true);
    assert_eq!(state(&test)["nodes"]["worker0"]["machine"], "created");

    // Elsewhere (VirtualBox 7.1 on the same Mac) the snapshot is live.
    let test = lab()
        .env("KUBELAB_HOST_FACTS", &recorded_host("macos-arm64"))
        .env("STANDIN_VBOX_VERSION", "7.1.6r167084")
        .args(&["lab", "up", "--until", "machines"]);
    test.run();
    test.clear_calls();
    let test = test.then(&["lab", "snapshot", "save", "base"]);
    test.run();
    let calls = test.started();
    assert!(
        !calls.iter().any(|c| c.starts_with("vagrant halt ")),
        "{calls:#?}"
    );
    assert_eq!(calls.iter().filter(|c| c.ends_with(" pause")).count(), 10);
}

#[test]
fn ctrl_c_during_up_interrupts_vagrant_saves_state_and_says_how_to_resume() {
    let test = lab()
        .env("STANDIN_DELAY_MS", "20000")
        .args(&["lab", "up", "--until", "machines", "--jobs", "3"]);
    // dns0 boots fast on its own first; the stand-in reads the delay per call,
    // so give the first VM no delay by letting it exist already.
    let test = test.write(".kubelab/.vagrant/machines/dns0/standin-state", "running\n");
    let child = test.spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ups(&test).len() < 3 {
        assert!(Instant::now() < deadline, "vagrant up never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, stderr, sent) = interrupt(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(15),
        "the children were not interrupted"
    );
    assert!(
        stderr.contains("run `kubelab lab up` to carry on"),
        "{stderr}"
    );
    // U16: the VMs are said to be interrupted, as state.json records them.
    assert!(!stderr.contains("failed"), "{stderr}");
    // Each running `vagrant up` got the SIGINT and cleaned up.
    let interrupted = test
        .calls()
        .iter()
        .filter(|c| c.event == "interrupted")
        .count();
    assert_eq!(interrupted, 3, "{:#?}", test.calls());
    // No VM was started after the interrupt.
    assert_eq!(ups(&test).len(), 3);
    let st = state(&test);
    let marked = st["nodes"]
        .as_object()
        .unwrap()
        .values()
        .filter(|n| n["machine"] == "interrupted")
        .count();
    assert_eq!(marked, 3, "{st}");
}

#[test]
fn a_second_kubelab_on_the_same_lab_fails_at_once_naming_the_first() {
    let test = lab()
        .env("STANDIN_DELAY_MS", "3000")
        .args(&["lab", "up", "--until", "machines"]);
    let mut child = test.spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ups(&test).is_empty() {
        assert!(
            Instant::now() < deadline,
            "first kubelab never started vagrant"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ran = test.then(&["lab", "halt"]).status(1).run();
    assert!(
        ran.stderr.contains(&format!(
            "another kubelab (pid {} (kubelab lab up))",
            child.id()
        )),
        "{}",
        ran.stderr
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    child.wait().unwrap();
}

#[test]
fn missing_vagrant_is_an_error_with_an_install_hint() {
    let empty = tempfile::tempdir().unwrap();
    let ran = Test::new()
        .env("PATH", &empty.path().display().to_string())
        .args(&["lab", "up", "--until", "machines"])
        .status(1)
        .run();
    assert!(
        ran.stderr.contains("`vagrant` was not found on PATH"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("hint:"), "{}", ran.stderr);
}

#[test]
fn missing_virtualbox_is_an_error_with_an_install_hint() {
    // Only vagrant on PATH: a host with Vagrant but no VirtualBox.
    let bin = tempfile::tempdir().unwrap();
    let standin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/vagrant");
    std::os::unix::fs::symlink(standin, bin.path().join("vagrant")).unwrap();
    let test = lab().env("PATH", &format!("{}:/usr/bin:/bin", bin.path().display()));
    let ran = test
        .args(&["lab", "up", "--until", "machines"])
        .status(1)
        .run();
    assert!(
        ran.stderr
            .contains("`VBoxManage` was not found on PATH; it is needed to run the lab's VMs"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("hint: "), "{}", ran.stderr);
}

#[test]
fn doctor_fails_on_a_dhcp_range_holding_lab_addresses() {
    let ran = lab()
        .env(
            "STANDIN_DHCPSERVERS",
            "NetworkName:    HostInterfaceNetworking-vboxnet0\\nDhcpd IP:       192.168.56.2\\nLowerIPAddress: 192.168.56.3\\nUpperIPAddress: 192.168.56.254\\nNetworkMask:    255.255.255.0\\nEnabled:        Yes\\n",
        )
        .args(&["doctor", "--json"])
        .status(1)
        .run();
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let checks = doc["checks"].as_array().unwrap();
    let dhcp = checks.iter().find(|c| c["name"] == "dhcp servers").unwrap();
    assert_eq!(dhcp["status"], "failed");
    assert!(
        dhcp["detail"]
            .as_str()
            .unwrap()
            .contains("dns0 192.168.56.2")
    );
    assert!(
        dhcp["hint"]
            .as_str()
            .unwrap()
            .contains("VBoxManage dhcpserver remove")
    );
    let vagrant = checks.iter().find(|c| c["name"] == "vagrant").unwrap();
    assert_eq!(vagrant["status"], "passed");
    assert_eq!(vagrant["detail"], "Vagrant 2.4.1");
}

/// U18: doctor's fix for a lab bigger than the host's RAM says that
/// `kubelab init --force` replaces lab.yaml.
#[test]
fn doctor_memory_fix_says_init_force_replaces_lab_yaml() {
    // 3 workers of 1 TiB each: more than any test host has.
    let ran = Test::new()
        .write(
            "lab.yaml",
            "name: t\nnodes:\n  worker:\n    count: 3\n    memory: 1048576\n",
        )
        .standins()
        .args(&["doctor"])
        .run_unchecked();
    assert!(ran.stdout.contains("the lab needs"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("`kubelab init --force`, which replaces lab.yaml"),
        "{}",
        ran.stdout
    );
}

#[test]
fn doctor_passes_with_no_conflicts() {
    let ran = lab()
        .env("STANDIN_HOSTONLYIFS", "Name:            vboxnet0\\nIPAddress:       192.168.56.1\\nNetworkMask:     255.255.255.0\\n")
        .args(&["doctor"])
        .run_unchecked();
    assert!(
        ran.stdout.contains("host-only interfaces  Passed"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("vboxnet0 already holds 192.168.56.1/24"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("box"), "{}", ran.stdout);
}

/// A recorded host of tests/fixtures/host.
fn recorded_host(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/host")
        .join(name)
        .display()
        .to_string()
}

/// `doctor --json`'s check named `name`.
fn doctor_check(ran: &support::Ran, name: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {}", ran.stdout))
        .clone()
}

#[test]
fn doctor_names_a_vagrant_too_old_for_the_installed_virtualbox() {
    let ran = lab()
        .env("STANDIN_VAGRANT_VERSION", "2.4.1")
        .env("STANDIN_VBOX_VERSION", "7.1.6r167084")
        .args(&["doctor", "--json"])
        .status(1)
        .run();
    let pair = doctor_check(&ran, "vagrant x virtualbox");
    assert_eq!(pair["status"], "failed");
    assert!(
        pair["hint"]
            .as_str()
            .unwrap()
            .contains("upgrade Vagrant to 2.4.2 or newer"),
        "{pair}"
    );
    let ran = lab()
        .env("STANDIN_VAGRANT_VERSION", "2.4.9")
        .env("STANDIN_VBOX_VERSION", "7.2.14r174565")
        .args(&["doctor", "--json"])
        .run_unchecked();
    assert_eq!(
        doctor_check(&ran, "vagrant x virtualbox")["status"],
        "passed"
    );
}

#[test]
fn doctor_reads_kvm_on_a_recorded_kernel_6_14_host_with_the_fix_for_the_virtualbox_installed() {
    let host = recorded_host("linux-kvm-6.14");
    let ran = lab()
        .env("KUBELAB_HOST_FACTS", &host)
        .env("STANDIN_VAGRANT_VERSION", "2.4.9")
        .env("STANDIN_VBOX_VERSION", "7.2.4r170995")
        .args(&["doctor", "--json"])
        .status(1)
        .run();
    let kvm = doctor_check(&ran, "kvm");
    assert_eq!(kvm["status"], "failed", "{kvm}");
    assert!(
        kvm["hint"]
            .as_str()
            .unwrap()
            .contains("sudo modprobe -r kvm_intel kvm"),
        "{kvm}"
    );
    // VirtualBox 7.2.10 and newer work beside KVM at its default.
    let ran = lab()
        .env("KUBELAB_HOST_FACTS", &host)
        .env("STANDIN_VAGRANT_VERSION", "2.4.9")
        .env("STANDIN_VBOX_VERSION", "7.2.14r174565")
        .args(&["doctor", "--json"])
        .run_unchecked();
    assert_eq!(doctor_check(&ran, "kvm")["status"], "passed");
    // The default recorded host has no KVM module.
    let ran = lab().args(&["doctor", "--json"]).run_unchecked();
    assert_eq!(doctor_check(&ran, "kvm")["status"], "passed");
}

#[test]
fn on_a_recorded_apple_silicon_host_the_lab_gets_an_arm64_box_and_never_an_x86_one() {
    let host = recorded_host("macos-arm64");
    let ran = lab()
        .env("KUBELAB_HOST_FACTS", &host)
        .env("STANDIN_VAGRANT_VERSION", "2.4.9")
        .env("STANDIN_VBOX_VERSION", "7.2.14r174565")
        .args(&["doctor", "--json"])
        .run_unchecked();
    let arch = doctor_check(&ran, "architecture");
    assert_eq!(arch["status"], "passed", "{arch}");
    assert!(
        arch["detail"]
            .as_str()
            .unwrap()
            .contains("gusztavvargadr/ubuntu-server-2404-lts 2607.1.0"),
        "{arch}"
    );
    // Not downloaded (the stand-in lists the amd64 box only): published.
    let b = doctor_check(&ran, "box");
    assert_eq!(b["status"], "warned", "{b}");
    assert!(
        b["hint"].as_str().unwrap().contains("--architecture arm64"),
        "{b}"
    );
    // No kvm check off Linux.
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "kvm")
    );

    // The Vagrantfile pins the arm64 box.
    let test = lab()
        .env("KUBELAB_HOST_FACTS", &host)
        .args(&["lab", "render", "--out", "out"]);
    test.run();
    let vagrantfile = std::fs::read_to_string(test.path().join("out/host/Vagrantfile")).unwrap();
    assert!(
        vagrantfile.contains("config.vm.box = 'gusztavvargadr/ubuntu-server-2404-lts'")
            && vagrantfile.contains("config.vm.box_version = '2607.1.0'"),
        "{vagrantfile}"
    );

    // An x86 box there is refused before anything happens.
    let test = Test::new()
        .write("lab.yaml", "name: t\nbox:\n  name: bento/ubuntu-24.04\n")
        .standins()
        .env("KUBELAB_HOST_FACTS", &host)
        .args(&["lab", "up"])
        .status(2);
    let ran = test.run();
    assert!(
        ran.stderr.contains("box.name: bento/ubuntu-24.04"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("gusztavvargadr/ubuntu-server-2404-lts (version 2607.1.0)"),
        "{}",
        ran.stderr
    );
    assert!(ups(&test).is_empty());
}

/// The lines of `ssh.log` that ran `lab up`'s preflight on a host.
fn preflights(test: &Test) -> Vec<String> {
    std::fs::read_to_string(test.path().join("ssh.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("-- if sudo -n true"))
        .map(str::to_string)
        .collect()
}

#[test]
fn doctor_on_a_static_lab_runs_lab_ups_preflight_on_each_host_and_keeps_nothing() {
    let test = Test::new().static_lab().args(&["doctor"]).status(1);
    let ran = test.run();
    // No VirtualBox check: only ssh, other labs and one check per host,
    // numbered in that order (rows are ` N. NAME  STATUS  TIME  DETAIL`).
    let rows: Vec<(&str, &str)> = ran
        .stdout
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("    hint: "))
        .enumerate()
        .map(|(i, l)| {
            let l = l
                .trim_start()
                .strip_prefix(&format!("{}. ", i + 1))
                .unwrap_or_else(|| panic!("row {} is not numbered: {l}", i + 1));
            let (name, rest) = l.split_once("  ").unwrap();
            (name, rest.split_whitespace().next().unwrap())
        })
        .collect();
    let mut expected = vec![("ssh", "Passed"), ("other-labs", "Passed")];
    let names: Vec<String> = support::STATIC_HOSTS
        .iter()
        .map(|(n, _)| format!("host {n}"))
        .collect();
    for (name, (node, _)) in names.iter().zip(support::STATIC_HOSTS) {
        let status = if node == "worker0" || node == "lb1" {
            "Failed"
        } else {
            "Passed"
        };
        expected.push((name, status));
    }
    assert_eq!(rows, expected, "{}", ran.stdout);
    // Each row as ` N. NAME  STATUS  TIME  DETAIL`, its hint on the line under it.
    let row = |name: &str, status: &str, detail: &str, hint: Option<&str>| {
        let lines: Vec<&str> = ran.stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(&format!(". {name} ")))
            .unwrap_or_else(|| panic!("no row {name}: {}", ran.stdout));
        let cells: Vec<&str> = lines[at].split("  ").filter(|c| !c.is_empty()).collect();
        assert_eq!(cells[1].trim(), status, "{}", lines[at]);
        assert!(cells[2].trim().ends_with(" s"), "a time: {}", lines[at]);
        assert_eq!(cells[3..].join("  ").trim(), detail, "{}", lines[at]);
        let next = lines.get(at + 1).copied().unwrap_or_default();
        match hint {
            Some(hint) => assert!(next.starts_with(&format!("    hint: {hint}")), "{next}"),
            None => assert!(!next.starts_with("    hint: "), "{next}"),
        }
    };
    row(
        "host worker0",
        "Failed",
        "worker0 (admin@192.168.56.30 port 22): SSH failed: ssh: connect to host 192.168.56.30 port 22: Connection refused",
        Some("check that sshd runs on worker0 at the address and port lab.yaml gives"),
    );
    row(
        "host lb1",
        "Failed",
        "lb1 (admin@192.168.56.52 port 22): admin has no passwordless sudo (kubelab: sudo needs a password)",
        Some("on lb1, as root: echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/kubelab"),
    );
    row(
        "host etcd0",
        "Passed",
        "etcd0 (admin@192.168.56.10 port 22): answers over SSH, passwordless sudo works",
        None,
    );
    assert!(ran.stderr.contains("2 checks failed"), "{}", ran.stderr);
    // Each host was asked once, as lab up asks it (BatchMode, lab.yaml's
    // key), and its host key went to a scratch file, not the lab's folder.
    let asked = preflights(&test);
    assert_eq!(asked.len(), 10, "{asked:#?}");
    for (_, address) in support::STATIC_HOSTS {
        let line = asked
            .iter()
            .find(|l| l.contains(&format!(" admin@{address} -- ")))
            .unwrap_or_else(|| panic!("{address} was not asked: {asked:#?}"));
        assert!(line.contains("-o BatchMode=yes"), "{line}");
        assert!(
            line.contains(&format!("-i {}", test.path().join("id").display())),
            "{line}"
        );
        let known = line
            .split("UserKnownHostsFile=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no UserKnownHostsFile: {line}"));
        assert!(
            !known.starts_with(&*test.path().to_string_lossy()),
            "{line}"
        );
    }
    assert!(!test.path().join(".kubelab").exists());
    assert!(test.calls().is_empty(), "{:?}", test.calls());

    // A host key pinned by an earlier `lab up` is checked, and the pinned
    // file is left as it was.
    let pinned = "kubelab-t-etcd1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAnotherKey\n";
    let test = test
        .write(".kubelab/known_hosts", pinned)
        .then(&["doctor", "--json"])
        .status(1);
    let ran = test.run();
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc["failed"], 3, "{doc}");
    let etcd1 = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "host etcd1")
        .unwrap();
    assert_eq!(etcd1["status"], "failed");
    assert_eq!(
        etcd1["detail"],
        "etcd1 (admin@192.168.56.11 port 22): SSH failed: Host key verification failed."
    );
    assert!(
        etcd1["hint"]
            .as_str()
            .unwrap()
            .contains("check that sshd runs on etcd1")
    );
    assert_eq!(
        std::fs::read_to_string(test.path().join(".kubelab/known_hosts")).unwrap(),
        pinned
    );
    let kept: Vec<_> = std::fs::read_dir(test.path().join(".kubelab"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(kept, ["known_hosts"]);

    // `lab up` runs the same preflight and names the same hosts and fixes.
    let up = test.then(&["lab", "up", "--no-hosts"]).status(1).run();
    assert!(
        up.stderr
            .contains("3 of 10 hosts failed the check; nothing was provisioned on any host"),
        "{}",
        up.stderr
    );
    for check in doc["checks"].as_array().unwrap() {
        if check["status"] == "failed" {
            let detail = check["detail"].as_str().unwrap();
            let hint = check["hint"].as_str().unwrap();
            assert!(
                up.stderr
                    .contains(&format!("- {detail}\n      hint: {hint}")),
                "{detail}\n{}",
                up.stderr
            );
        }
    }
}

#[test]
fn ctrl_c_during_doctor_on_a_static_lab_stops_its_ssh_and_keeps_nothing() {
    let test = Test::new().static_lab();
    // The scratch directory and socket folders go here, not to the shared /tmp.
    let tmp = test.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let pid_file = test.path().join("hung.pid");
    let test = test
        .env("TMPDIR", &tmp.display().to_string())
        .env("FAKE_SSH_HANG", "192.168.56.20")
        .env("FAKE_SSH_HANG_PID", &pid_file.display().to_string())
        .args(&["doctor"]);
    let child = test.spawn();
    let hung = hung_ssh(&pid_file, "doctor");
    let (status, stderr, sent) = interrupt(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "the ssh children were not interrupted"
    );
    // The hung ssh got the interrupt too.
    wait_gone(hung);
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kubelab-doctor-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!test.path().join(".kubelab").exists());
}

#[test]
fn up_of_a_lab_whose_api_is_up_makes_it_kubectls_current_context() {
    // Another cluster in the user's kubeconfig stays.
    let test = lab()
        .write(
            "kube/config",
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: https://other:6443}\nusers:\n- name: other\n  user: {token: x}\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\ncurrent-context: other\n",
        )
        .args(&["lab", "up", "--until", "machines"]);
    test.run();
    // Machines only: no API yet, so the user's kubeconfig is not touched.
    let config = test.path().join("kube/config");
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("current-context: other")
    );
    assert!(!test.path().join(".kubelab/admin.kubeconfig").exists());

    // As after the addons phase: certificates signed, the step recorded.
    let test = test.then(&["lab", "render"]);
    test.run();
    let state_path = test.path().join(".kubelab/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["steps"]["controller0"]["addons"] = serde_json::json!({
        "input_hash": "x", "vm_id": null, "files": {}, "finished_unix": 0
    });
    std::fs::write(&state_path, state.to_string()).unwrap();
    let test = test.then(&["lab", "up", "--until", "machines"]);
    let ran = test.run();
    assert!(
        ran.stderr.contains("kubectl now uses context kubelab-t"),
        "{}",
        ran.stderr
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("current-context: kubelab-t"), "{text}");
    assert!(text.contains("name: other"), "{text}");
    assert!(text.contains("server: https://api.lan:6443"), "{text}");
}

#[test]
fn a_static_destroy_uninstalls_nowhere_when_lab_yaml_points_a_name_at_another_server() {
    // kubelab provisioned dns0 at .99 and gpu9, which lab.yaml no longer
    // lists; lab.yaml now says dns0 is .2 (the fake ssh answers every host).
    let test = Test::new().static_lab();
    let node = |address: &str| serde_json::json!({"role": "dns", "address": address, "machine": "created", "vm_id": "static:x"});
    let state = serde_json::json!({
        "schema_version": 1,
        "lab": "t",
        "nodes": {"dns0": node("192.168.56.99"), "etcd0": node("192.168.56.10"), "gpu9": node("192.168.56.77")},
        "steps": {},
    });
    std::fs::create_dir_all(test.path().join(".kubelab")).unwrap();
    std::fs::write(test.path().join(".kubelab/state.json"), state.to_string()).unwrap();
    let test = test.args(&["lab", "destroy", "--yes"]).status(2);
    let ran = test.run();
    assert!(
        ran.stderr.contains(
            "dns0 is 192.168.56.2 in lab.yaml, but kubelab provisioned it at 192.168.56.99; nothing was uninstalled"
        ),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("kubelab provisioned gpu9 (192.168.56.77) but lab.yaml no longer lists it"),
        "{}",
        ran.stderr
    );
    let ssh = std::fs::read_to_string(test.path().join("ssh.log")).unwrap_or_default();
    assert!(!ssh.contains("uninstall"), "{ssh}");
    assert!(test.path().join(".kubelab/state.json").exists());
}

/// D1: an orphan `# BEGIN kubelab <lab>` (no END) is refused with its line
/// and the fix, before any VM boots, and the hosts file keeps every byte
/// (it used to lose every line after the orphan on the second `lab up`).
#[test]
fn an_orphan_marker_in_the_hosts_file_is_refused_before_any_vm_starts() {
    let original = "127.0.0.1 localhost\n# BEGIN kubelab t\n10.9.9.9\tstale.lan\n192.168.1.5\tmyprinter\n10.0.0.7\tgitlab.corp\n";
    let test = lab()
        .write("etc-hosts", original)
        .args(&["lab", "up", "--until", "machines"])
        .status(2);
    let ran = test.run();
    assert!(
        ran.stderr
            .contains("line 2 holds `# BEGIN kubelab t` but no `# END kubelab t` line follows it"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("hint: add a `# END kubelab t` line"),
        "{}",
        ran.stderr
    );
    assert!(
        ups(&test).is_empty(),
        "no VM may start: {:?}",
        test.started()
    );
    assert_eq!(
        std::fs::read_to_string(test.path().join("etc-hosts")).unwrap(),
        original
    );
    let test = test.then(&["lab", "destroy", "--yes"]).status(2);
    test.run();
    assert_eq!(
        std::fs::read_to_string(test.path().join("etc-hosts")).unwrap(),
        original
    );
    assert!(
        !test
            .started()
            .iter()
            .any(|c| c.starts_with("vagrant destroy"))
    );
}

/// D3: a symlinked hosts file (NixOS, config management) has its target
/// written; the link stays a link, through up and destroy.
#[test]
fn a_symlinked_hosts_file_is_written_through_the_link() {
    let test = lab().write("real.hosts", "127.0.0.1 localhost\n");
    std::fs::remove_file(test.path().join("etc-hosts")).ok();
    std::os::unix::fs::symlink("real.hosts", test.path().join("etc-hosts")).unwrap();
    let test = test.args(&["lab", "up", "--until", "machines"]);
    test.run();
    let link = test.path().join("etc-hosts");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let real = std::fs::read_to_string(test.path().join("real.hosts")).unwrap();
    assert!(
        real.starts_with("127.0.0.1 localhost\n# BEGIN kubelab t\n"),
        "{real:?}"
    );
    let test = test.then(&["lab", "destroy", "--yes"]);
    test.run();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(test.path().join("real.hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
}

/// S2/S3: a hosts file that is not UTF-8, or a directory, and `--node nosuch`
/// are refused before any VM starts, naming the byte or the nodes.
#[test]
fn bad_hosts_files_and_unknown_nodes_are_refused_before_any_vm_starts() {
    let test = lab();
    std::fs::write(
        test.path().join("etc-hosts"),
        b"127.0.0.1 localhost\n# caf\xe9 printer\n",
    )
    .unwrap();
    let test = test.args(&["lab", "up", "--until", "machines"]).status(1);
    let ran = test.run();
    assert!(
        ran.stderr
            .contains("is not UTF-8 text: byte 26 (line 2) is 0xe9"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("--no-hosts"), "{}", ran.stderr);
    assert!(ups(&test).is_empty(), "{:?}", test.started());
    let test = test.then(&["lab", "destroy", "--yes"]).status(1);
    test.run();
    assert!(
        test.started().is_empty(),
        "destroy stopped before any VM: {:?}",
        test.started()
    );

    std::fs::remove_file(test.path().join("etc-hosts")).unwrap();
    std::fs::create_dir(test.path().join("etc-hosts")).unwrap();
    let test = test.then(&["lab", "up", "--until", "machines"]).status(1);
    let ran = test.run();
    assert!(
        ran.stderr.contains("etc-hosts is a directory"),
        "{}",
        ran.stderr
    );
    assert!(ups(&test).is_empty());

    std::fs::remove_dir(test.path().join("etc-hosts")).unwrap();
    let test = test.then(&["lab", "up", "--node", "nosuch"]).status(2);
    let ran = test.run();
    assert!(
        ran.stderr.contains("no node named \"nosuch\""),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("hint: use one of dns0, etcd0"),
        "{}",
        ran.stderr
    );
    assert!(test.started().is_empty(), "{:?}", test.started());
    assert!(!test.path().join("etc-hosts").exists());
}

/// D4/D9: `lab scale` on a lab that is not up edits lab.yaml in place of
/// the user's file: a symlink's target is written (the link stays), the mode
/// and hard links are kept, and a comment after a TAB survives.
#[test]
fn scale_keeps_a_symlinked_lab_yaml_its_mode_links_and_tab_comments() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let test = Test::new()
        .write(
            "real/lab.yaml",
            "name: t\nnodes:\n  worker:\n    count: 1\t# one worker\n",
        )
        .standins();
    let real = test.path().join("real/lab.yaml");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::hard_link(&real, test.path().join("hardlink.yaml")).unwrap();
    std::os::unix::fs::symlink("real/lab.yaml", test.path().join("lab.yaml")).unwrap();
    let test = test.args(&["lab", "scale", "workers=2"]);
    test.run();
    let want = "name: t\nnodes:\n  worker:\n    count: 2\t# one worker\n";
    assert!(
        std::fs::symlink_metadata(test.path().join("lab.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), want);
    assert_eq!(
        std::fs::read_to_string(test.path().join("hardlink.yaml")).unwrap(),
        want
    );
    let meta = std::fs::metadata(&real).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.nlink()), (0o600, 2));
}

/// U15: an empty phase range is bad input, refused before anything runs
/// (it used to sign the PKI and say every step was done).
#[test]
fn a_from_after_until_is_refused_before_anything_runs() {
    let test = lab()
        .args(&["lab", "up", "--from", "etcd", "--until", "dns"])
        .status(2);
    let ran = test.run();
    assert!(
        ran.stderr
            .contains("--from etcd --until dns selects no phase"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("hint: swap them"), "{}", ran.stderr);
    assert!(test.started().is_empty());
    assert!(!test.path().join(".kubelab/pki").exists());
}

/// U21: `lab status` of a lab that was never brought up says so and how.
#[test]
fn status_of_a_lab_never_brought_up_says_how_to_create_it() {
    let test = lab().args(&["lab", "status"]);
    let ran = test.run();
    assert!(
        ran.stderr.contains("lab t has no VMs yet"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("`kubelab lab up` creates them"),
        "{}",
        ran.stderr
    );
}

#[test]
fn lab_up_dry_run_prints_the_whole_plan_and_touches_nothing() {
    let t = Test::new()
        .standins()
        .write("etc-hosts", "127.0.0.1 localhost\n")
        .args(&["lab", "up", "--dry-run"]);
    let ran = t.run();
    // Every part of the run, in order, with why each step runs.
    for part in [
        "machines (10):",
        "certificates: sign",
        "facts: read",
        "downloads (6):",
        "steps (42 to run, 0 done):",
    ] {
        assert!(ran.stdout.contains(part), "{part}\n{}", ran.stdout);
    }
    assert!(
        ran.stdout.contains("  dns0           create"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("  etcd         etcd1          new       never run on this node"),
        "{}",
        ran.stdout
    );
    // Nothing ran, nothing was written: no VM asked, no state, no PKI, no
    // registry entry, the hosts file as it was.
    assert!(t.calls().is_empty(), "{:?}", t.calls());
    assert!(!t.path().join(".kubelab").exists());
    assert!(!t.path().join("labs.json").exists());
    assert!(!t.path().join("cache").exists());
    assert_eq!(
        std::fs::read_to_string(t.path().join("etc-hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );

    // With the VMs made, a plan past the machines: none is booted, only
    // the selected phases run, and nothing is written.
    let t = t.then(&["lab", "up", "--until", "machines"]);
    t.run();
    let state = std::fs::read(t.path().join(".kubelab/state.json")).unwrap();
    let t = t.then(&["lab", "up", "--dry-run", "--json", "--from", "etcd"]);
    let ran = t.run();
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON on stdout");
    assert_eq!(doc["schema_version"], 1);
    assert!(
        doc["machines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["action"] == "skip")
    );
    let phases: std::collections::BTreeSet<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    assert!(
        !phases.contains("dns") && phases.contains("etcd"),
        "{phases:?}"
    );
    assert_eq!(
        std::fs::read(t.path().join(".kubelab/state.json")).unwrap(),
        state
    );
    assert!(!t.path().join(".kubelab/pki").exists());
}

#[test]
fn lab_up_dry_run_refuses_what_lab_up_refuses() {
    // A node that does not exist exits 2, as `lab up` does, before a plan.
    let ran = Test::new()
        .standins()
        .args(&["lab", "up", "--dry-run", "--node", "nosuch"])
        .status(2)
        .run();
    assert!(
        ran.stderr.contains("no node named \"nosuch\""),
        "{}",
        ran.stderr
    );
    // Offline with an empty cache: the missing releases, named up front.
    let ran = Test::new()
        .standins()
        .args(&["lab", "up", "--dry-run", "--offline"])
        .status(1)
        .run();
    assert!(
        ran.stderr.contains("release files are not in the cache"),
        "{}",
        ran.stderr
    );
    // --json only with --dry-run.
    Test::new().args(&["lab", "up", "--json"]).status(2).run();
}

#[test]
fn lab_up_offline_with_an_empty_cache_fails_before_any_vm_boots() {
    let t = Test::new()
        .standins()
        .args(&["lab", "up", "--offline"])
        .status(1);
    let ran = t.run();
    assert!(
        ran.stderr.contains("release files are not in the cache"),
        "{}",
        ran.stderr
    );
    assert!(
        t.calls().iter().all(|c| !c.command.contains(" up ")),
        "a VM was booted: {:?}",
        t.calls()
    );
}

/// A lab up (machines) with its context merged into the test's kubeconfig,
/// the user's own entries beside it.
fn lab_up_and_merged(lab_yaml: &str) -> Test {
    let test = Test::new()
        .write("lab.yaml", lab_yaml)
        .write("etc-hosts", "127.0.0.1 localhost\n")
        .write(
            "kube/config",
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: https://other:6443}\ncontexts: []\nusers: []\ncurrent-context: other\n",
        )
        .standins()
        .args(&["lab", "up", "--until", "machines"]);
    test.run();
    let test = test.then(&["lab", "render"]);
    test.run();
    let test = test.then(&["lab", "kubeconfig", "--merge"]);
    test.run();
    test
}

fn hosts(test: &Test) -> String {
    std::fs::read_to_string(test.path().join("etc-hosts")).unwrap()
}

fn kubeconfig(test: &Test) -> String {
    std::fs::read_to_string(test.path().join("kube/config")).unwrap()
}

/// F1: after `name:` in lab.yaml changed, destroy removes what `lab up`
/// made: the hosts block and kubeconfig entries under the old name.
#[test]
fn destroy_after_a_rename_removes_the_block_and_context_of_the_name_it_was_up_under() {
    let test = lab_up_and_merged("name: old\n");
    assert!(hosts(&test).contains("# BEGIN kubelab old\n"));
    assert!(kubeconfig(&test).contains("kubelab-old"));
    std::fs::write(test.path().join("lab.yaml"), "name: new\n").unwrap();
    let test = test.then(&["lab", "destroy", "--yes"]);
    let ran = test.run();
    assert_eq!(hosts(&test), "127.0.0.1 localhost\n");
    assert!(
        ran.stderr
            .contains("holds lab old, but lab.yaml names lab new"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("removed the kubelab old block from"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("lab old destroyed") && !ran.stderr.contains("lab new destroyed"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("removed context kubelab-old from"),
        "{}",
        ran.stderr
    );
    assert_eq!(hosts(&test), "127.0.0.1 localhost\n");
    let config = kubeconfig(&test);
    assert!(!config.contains("kubelab-old"), "{config}");
    assert!(config.contains("name: other"), "{config}");
    assert!(!test.path().join(".kubelab").exists());
}

/// F1: with lab.yaml deleted (so the built-in lab `kubelab` loads), destroy
/// still removes the block and context of the lab `.kubelab/` holds.
#[test]
fn destroy_with_lab_yaml_deleted_removes_the_recorded_labs_block_and_context() {
    let test = lab_up_and_merged("name: gone\n");
    std::fs::remove_file(test.path().join("lab.yaml")).unwrap();
    test.clear_calls();
    let test = test.then(&["lab", "destroy", "--yes"]);
    let ran = test.run();
    assert!(
        ran.stderr
            .contains("holds lab gone, but the built-in default lab names lab kubelab"),
        "{}",
        ran.stderr
    );
    assert_eq!(test.started(), ["vagrant destroy -f"]);
    assert_eq!(hosts(&test), "127.0.0.1 localhost\n");
    assert!(!kubeconfig(&test).contains("kubelab-gone"));
}

/// F3: destroy of a same-named lab in another folder, never brought up
/// (or only rendered, with its own CA), leaves the running lab's hosts
/// block and kubeconfig context, and says why.
#[test]
fn destroy_of_a_same_named_lab_never_up_elsewhere_leaves_the_running_labs_entries() {
    let test = lab_up_and_merged("name: t\n");
    let before = (hosts(&test), kubeconfig(&test));
    assert!(before.0.contains("# BEGIN kubelab t\n"), "{}", before.0);
    std::fs::create_dir(test.path().join("second")).unwrap();
    std::fs::write(test.path().join("second/lab.yaml"), "name: t\n").unwrap();
    let test = test.then(&["--lab", "second/lab.yaml", "lab", "destroy", "--yes"]);
    let ran = test.run();
    assert_eq!((hosts(&test), kubeconfig(&test)), before);
    assert!(
        ran.stderr.contains("left the kubelab t block in")
            && ran.stderr.contains("was never brought up from"),
        "{}",
        ran.stderr
    );
    // Rendered there (certificates of its own), still never up.
    let test = test.then(&["--lab", "second/lab.yaml", "lab", "render"]);
    test.run();
    let test = test.then(&["--lab", "second/lab.yaml", "lab", "destroy", "--yes"]);
    let ran = test.run();
    assert!(
        ran.stderr.contains("left context kubelab-t in")
            && ran.stderr.contains("trusts another CA than this lab's"),
        "{}",
        ran.stderr
    );
    assert_eq!((hosts(&test), kubeconfig(&test)), before);
    // The lab's own destroy still removes both.
    let test = test.then(&["lab", "destroy", "--yes"]);
    test.run();
    assert_eq!(hosts(&test), "127.0.0.1 localhost\n");
    assert!(!kubeconfig(&test).contains("kubelab-t"));
}

/// F3: a block of the same name written by another lab (its id) is left
/// even by a lab that was up once.
#[test]
fn destroy_leaves_a_block_that_carries_another_labs_id() {
    let test = lab_up_and_merged("name: t\n");
    let text = hosts(&test);
    let line = text
        .lines()
        .find(|l| l.starts_with("# kubelab lab id "))
        .expect("the block names its lab")
        .to_string();
    let id = line.split_whitespace().nth(4).unwrap();
    let other = text.replace(id, "0123456789abcdef0123456789abcdef");
    std::fs::write(test.path().join("etc-hosts"), &other).unwrap();
    let test = test.then(&["lab", "destroy", "--yes"]);
    let ran = test.run();
    assert!(
        ran.stderr.contains("it carries another lab's id"),
        "{}",
        ran.stderr
    );
    assert_eq!(hosts(&test), other);
}

/// F2: a second lab file in a folder whose `.kubelab/` is another lab's is
/// refused, naming both and the fix, before it changes anything of the first.
#[test]
fn a_second_lab_file_in_one_folder_is_refused_before_it_touches_the_first() {
    let test = Test::new()
        .write("lab.yaml", "name: a\n")
        .write("b.yaml", "name: b\nnetwork:\n  cidr: 192.168.57.0/24\n")
        .standins()
        .args(&["init", "--name", "a", "--force"]);
    test.run();
    let test = test.then(&["lab", "up", "--until", "machines"]);
    test.run();
    let test = test.then(&["lab", "render"]);
    test.run();
    let ca = std::fs::read(test.path().join(".kubelab/pki/ca.pem")).unwrap();
    let registry = std::fs::read_to_string(test.path().join("labs.json")).unwrap();
    let state = std::fs::read_to_string(test.path().join(".kubelab/state.json")).unwrap();
    test.clear_calls();
    let mut test = test;
    for args in [
        &["--lab", "b.yaml", "lab", "render"][..],
        &["--lab", "b.yaml", "lab", "destroy", "--yes"],
        &["--lab", "b.yaml", "lab", "up", "--until", "machines"],
        &["--lab", "b.yaml", "lab", "up", "--dry-run"],
        &["--lab", "c.yaml", "init", "--name", "c"],
    ] {
        test = test.then(args).status(2);
        let ran = test.run();
        assert!(
            ran.stderr.contains("belongs to lab a (") && ran.stderr.contains("lab.yaml), not to "),
            "{args:?}: {}",
            ran.stderr
        );
        assert!(
            ran.stderr.contains("two lab files in one folder")
                && ran.stderr.contains("hint: give ")
                && ran.stderr.contains("a folder of its own"),
            "{args:?}: {}",
            ran.stderr
        );
    }
    assert!(test.started().is_empty(), "{:?}", test.started());
    assert!(!test.path().join("c.yaml").exists());
    assert_eq!(
        std::fs::read(test.path().join(".kubelab/pki/ca.pem")).unwrap(),
        ca
    );
    assert_eq!(
        std::fs::read_to_string(test.path().join("labs.json")).unwrap(),
        registry
    );
    assert_eq!(
        std::fs::read_to_string(test.path().join(".kubelab/state.json")).unwrap(),
        state
    );
    // Its own lab file still works, and in its own folder b is fine.
    let test = test.then(&["lab", "status"]);
    test.run();
    std::fs::create_dir(test.path().join("b")).unwrap();
    std::fs::rename(test.path().join("b.yaml"), test.path().join("b/lab.yaml")).unwrap();
    let test = test.then(&["--lab", "b/lab.yaml", "lab", "render"]);
    test.run();
}

/// F8: `init --force` while `lab up` runs is refused at once, naming it,
/// and lab.yaml is not rewritten under the running `lab up`.
#[test]
fn init_force_during_lab_up_is_refused_and_lab_yaml_kept() {
    let test = Test::new()
        .write("lab.yaml", "name: t\nnodes:\n  worker:\n    count:   2\n")
        .standins()
        .env("STANDIN_DELAY_MS", "3000")
        .args(&["lab", "up", "--until", "machines"]);
    let child = test.spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ups(&test).is_empty() {
        assert!(Instant::now() < deadline, "lab up never started vagrant");
        std::thread::sleep(Duration::from_millis(50));
    }
    let test = test.then(&["init", "--force"]).status(1);
    let ran = test.run();
    assert!(
        ran.stderr.contains(&format!(
            "another kubelab (pid {} (kubelab lab up))",
            child.id()
        )),
        "{}",
        ran.stderr
    );
    assert_eq!(
        std::fs::read_to_string(test.path().join("lab.yaml")).unwrap(),
        "name: t\nnodes:\n  worker:\n    count:   2\n"
    );
    interrupt(child);
}

/// F8: two `lab scale` of a lab never brought up: the second waits for the
/// first's edit of lab.yaml, then refuses to write a count it computed
/// from the old text, so no edit is lost.
#[test]
fn a_scale_waits_for_another_edit_of_lab_yaml_and_never_overwrites_it() {
    use std::os::unix::fs::MetadataExt;
    let test = lab().write("lab.yaml", "name: t\nnodes:\n  worker:\n    count: 1\n");
    let path = test.path().join("lab.yaml");
    // Another edit holds the lab file (as a `lab scale` or `init --force` does).
    let held = nix::fcntl::Flock::lock(
        std::fs::File::open(&path).unwrap(),
        nix::fcntl::FlockArg::LockExclusive,
    )
    .unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();
    let test = test.then(&["lab", "scale", "workers=3"]);
    let child = test.spawn();
    // The scale has read lab.yaml and waits for the lock.
    let deadline = Instant::now() + Duration::from_secs(20);
    let waiting = |locks: &str| {
        locks
            .lines()
            .any(|l| l.contains("-> FLOCK") && l.contains(&format!(":{inode} ")))
    };
    while !waiting(&std::fs::read_to_string("/proc/locks").unwrap()) {
        assert!(
            Instant::now() < deadline,
            "lab scale never waited for lab.yaml"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let edited = "name: t\nnodes:\n  worker:\n    count: 2 # the other edit\n";
    let tmp = test.path().join("lab.yaml.new");
    std::fs::write(&tmp, edited).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    drop(held);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("changed while kubelab was reading it"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
}

#[test]
fn lab_up_dry_run_says_what_a_selection_leaves_out_and_refuses_what_lab_up_refuses() {
    // Only the machines: nothing is signed or read, and --offline needs no
    // release file for it.
    let t = Test::new()
        .standins()
        .args(&["lab", "up", "--dry-run", "--until", "machines"]);
    let ran = t.run();
    assert!(
        ran.stdout
            .contains("certificates: not in this run (it stops after the machines)"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("facts: not in this run"),
        "{}",
        ran.stdout
    );
    let t = t.then(&["lab", "up", "--offline", "--until", "machines"]);
    let ran = t.run();
    assert!(ran.stderr.contains("VMs running after"), "{}", ran.stderr);
    // Past the machines of a lab with VMs: the same refusal as lab up's, by
    // the same exit code.
    let fresh = Test::new()
        .standins()
        .args(&["lab", "up", "--dry-run", "--from", "dns"])
        .status(1);
    let ran = fresh.run();
    assert!(ran.stderr.contains("no VM for dns0"), "{}", ran.stderr);
}

#[test]
fn lab_up_dry_run_refuses_a_second_lab_file_in_a_labs_folder() {
    let lab = include_str!("../lab.yaml");
    let t = Test::new()
        .standins()
        .write("a.yaml", lab)
        .write("b.yaml", lab)
        .args(&["--lab", "a.yaml", "lab", "up", "--until", "machines"]);
    t.run();
    let ran = t
        .then(&["--lab", "b.yaml", "lab", "up", "--dry-run"])
        .status(2)
        .run();
    assert!(ran.stderr.contains("a.yaml"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty(), "a plan was printed: {}", ran.stdout);
}

#[test]
fn destroy_of_a_lab_whose_named_lab_file_was_deleted_removes_what_its_state_recorded() {
    let lab = include_str!("../lab.yaml");
    let t = Test::new()
        .standins()
        .write("other.yaml", lab)
        .write("etc-hosts", "127.0.0.1 localhost\n")
        .args(&["--lab", "other.yaml", "lab", "up", "--until", "machines"]);
    t.run();
    std::fs::remove_file(t.path().join("other.yaml")).unwrap();
    let t = t.then(&["--lab", "other.yaml", "lab", "destroy", "--yes"]);
    let ran = t.run();
    assert!(ran.stderr.contains("other.yaml is gone"), "{}", ran.stderr);
    assert!(!t.path().join(".kubelab").exists());
    assert_eq!(
        std::fs::read_to_string(t.path().join("etc-hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    // Nothing there: the missing file is the error it was.
    let ran = t
        .then(&["--lab", "other.yaml", "lab", "destroy", "--yes"])
        .status(2)
        .run();
    assert!(ran.stderr.contains("no such lab file"), "{}", ran.stderr);
}

/// Ctrl-C during `lab verify` (here while one host's ssh hangs): exit 130
/// within seconds, the hung ssh stopped, and a word on what it did.
#[test]
fn ctrl_c_during_verify_stops_its_ssh_and_exits_130() {
    let test = Test::new().static_lab();
    let pid_file = test.path().join("hung.pid");
    std::fs::create_dir_all(test.path().join(".kubelab")).unwrap();
    // As `lab up` leaves it for a static lab: verify needs the state file.
    std::fs::write(
        test.path().join(".kubelab/state.json"),
        r#"{"schema_version": 1, "lab": "t", "nodes": {}}"#,
    )
    .unwrap();
    let test = test
        .env("FAKE_SSH_HANG", "192.168.56.20")
        .env("FAKE_SSH_HANG_PID", &pid_file.display().to_string())
        .args(&["lab", "verify", "--only", "machines"]);
    let child = test.spawn();
    let hung = hung_ssh(&pid_file, "verify");
    let (status, stderr, sent) = interrupt(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "the checks were not interrupted: {stderr}"
    );
    assert!(
        stderr.contains("interrupted: stopping the checks")
            && stderr.contains("no check had stopped anything"),
        "{stderr}"
    );
    wait_gone(hung);
}

/// Ctrl-C during `lab snapshot save`: the save goes on to its end (it
/// resumes every VM it paused), says so, and succeeds.
#[test]
fn ctrl_c_during_a_snapshot_save_lets_it_finish_and_resume_every_vm() {
    let test = lab().args(&["lab", "up", "--until", "machines"]);
    test.run();
    test.clear_calls();
    let test = test
        .env("STANDIN_SNAPSHOT_DELAY_MS", "1500")
        .then(&["lab", "snapshot", "save", "base"]);
    let child = test.spawn();
    wait_for_calls(&test, "a snapshot save to start", |calls| {
        calls.iter().any(|c| c.starts_with("vagrant snapshot save"))
    });
    let (status, stderr, _) = interrupt(child);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Ctrl-C: the snapshot finishes first")
            && stderr.contains("saved snapshot base of 10 VMs"),
        "{stderr}"
    );
    let calls = test.started();
    for action in ["pause", "resume"] {
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.contains("controlvm") && c.ends_with(action))
                .count(),
            10,
            "{action}: {calls:#?}"
        );
    }
}

/// Ctrl-C while `lab reset` waits for the restored lab to answer ends the
/// wait at once (it used to fail every round until its 180 s were up).
#[test]
fn ctrl_c_during_resets_wait_ends_it() {
    let test = lab().args(&["lab", "up", "--until", "machines"]);
    test.run();
    let test = test.then(&["lab", "snapshot", "save", "base"]);
    test.run();
    test.clear_calls();
    let test =
        test.env("STANDIN_STATUS_DELAY_MS", "3000")
            .then(&["lab", "reset", "base", "--no-hosts"]);
    let child = test.spawn();
    // The wait's first `vagrant status`, after the restores.
    wait_for_calls(&test, "the wait to begin", |calls| {
        calls
            .iter()
            .rposition(|c| c.starts_with("vagrant snapshot restore"))
            .is_some_and(|r| {
                calls[r..]
                    .iter()
                    .any(|c| c == "vagrant status --machine-readable")
            })
    });
    let (status, stderr, sent) = interrupt(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "the wait went on after Ctrl-C ({:.0} s): {stderr}",
        sent.elapsed().as_secs_f64()
    );
    assert!(stderr.contains("kubelab lab reset base"), "{stderr}");
}

/// Ctrl-C during `lab halt`: its `vagrant halt`s get the interrupt, kubelab
/// exits 130 saying how to carry on, and that works.
#[test]
fn ctrl_c_during_halt_stops_it_and_says_how_to_carry_on() {
    let test = lab().args(&["lab", "up", "--until", "machines"]);
    test.run();
    test.clear_calls();
    // Halts that would take a minute: one that ran on to its end, or until
    // the kill at the end of the 30 s grace, fails the bound below, which
    // leaves a loaded CI machine 20 s to see the SIGINT through.
    let slow = test
        .env("STANDIN_HALT_DELAY_MS", "60000")
        .then(&["lab", "halt"]);
    let child = slow.spawn();
    wait_for_calls(&slow, "a halt to start", |calls| {
        calls.iter().any(|c| c.starts_with("vagrant halt"))
    });
    let (status, stderr, sent) = interrupt(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "the halts ran on ({:.0} s): {stderr}\n{:#?}",
        sent.elapsed().as_secs_f64(),
        slow.calls()
    );
    assert!(
        stderr.contains("run `kubelab lab halt` to carry on"),
        "{stderr}"
    );
    let again = slow
        .env("STANDIN_HALT_DELAY_MS", "0")
        .then(&["lab", "halt"]);
    again.run();
    let status = again.then(&["lab", "status", "--json"]).run();
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
}
