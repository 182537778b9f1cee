//! The real binary, run as a user would, in a temp lab directory.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha512};

use support::{Test, redact};

#[test]
fn plan_without_lab_yaml_uses_the_builtin_lab_and_says_so() {
    let ran = Test::new().args(&["lab", "plan"]).run();
    assert!(
        ran.stderr.contains("built-in default lab"),
        "{}",
        ran.stderr
    );
    insta::assert_snapshot!(ran.stdout);
}

#[test]
fn plan_json_has_schema_version_and_every_node() {
    let ran = Test::new().args(&["lab", "plan", "--json"]).run();
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON on stdout");
    assert_eq!(doc["schema_version"], 1);
    let names: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "dns0",
            "etcd0",
            "etcd1",
            "etcd2",
            "controller0",
            "controller1",
            "controller2",
            "worker0",
            "lb0",
            "lb1"
        ]
    );
    assert_eq!(doc["api"]["url"], "https://api.lan:6443");
    assert_eq!(doc["api"]["address"], "192.168.56.50");
    assert_eq!(doc["memory"]["total_mb"], 7808);
    assert_eq!(doc["memory"]["fits"], true);
    assert_eq!(doc["nodes"][7]["pod_cidr"], "10.200.0.0/24");
    let phases: Vec<&str> = doc["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "machines",
            "facts",
            "dns",
            "resolv",
            "registry",
            "lb",
            "certs",
            "etcd",
            "controllers",
            "workers",
            "routes",
            "addons",
            "workload"
        ]
    );
}

#[test]
fn plan_says_when_the_lab_does_not_fit_the_host() {
    let ran = Test::new()
        .env("KUBELAB_HOST_MEMORY_MB", "8000")
        .args(&["lab", "plan"])
        .run();
    assert!(ran.stdout.contains("does NOT fit"), "{}", ran.stdout);
}

#[test]
fn plan_of_a_static_lab_says_how_kubelab_logs_in_and_sizes_no_vm() {
    let test = Test::new().static_lab();
    let yaml = std::fs::read_to_string(test.path().join("lab.yaml"))
        .unwrap()
        .replace(
            "address: 192.168.56.30, ssh_user: admin,",
            "address: 192.168.56.30, ssh_user: admin, ssh_port: 2022,",
        )
        .replace(
            "address: 192.168.56.52, ssh_user: admin, ssh_key: id",
            "address: 192.168.56.52, ssh_alias: lb1-server",
        );
    let test = test.write("lab.yaml", &yaml).args(&["lab", "plan"]);
    let ran = test.run();
    let lines: Vec<Vec<&str>> = ran
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        ran.stdout.lines().nth(1),
        Some("Provider static, your own servers, network 192.168.56.0/24, domain lan"),
        "{}",
        ran.stdout
    );
    assert_eq!(
        lines[3],
        ["NODE", "ROLE", "FQDN", "ADDRESS", "SSH", "POD", "CIDR"]
    );
    assert_eq!(
        lines[4],
        [
            "dns0",
            "dns",
            "dns0.lan",
            "192.168.56.2",
            "admin@192.168.56.2:22",
            "-"
        ]
    );
    assert_eq!(
        lines[11],
        [
            "worker0",
            "worker",
            "worker0.lan",
            "192.168.56.30",
            "admin@192.168.56.30:2022",
            "10.200.0.0/24"
        ]
    );
    assert_eq!(
        lines[13],
        [
            "lb1",
            "lb",
            "lb1.lan",
            "192.168.56.52",
            "lb1-server",
            "(ssh_config)",
            "-"
        ]
    );
    assert!(
        ran.stdout.contains(
            "1. machines     check SSH and passwordless sudo on every host, write the hypervisor's hosts block"
        ),
        "{}",
        ran.stdout
    );
    for vm_only in ["box", "Memory", " MB", "MEMORY", "CPUS", "VMs"] {
        assert!(!ran.stdout.contains(vm_only), "{vm_only}:\n{}", ran.stdout);
    }

    let test = test.then(&["lab", "plan", "--json"]);
    let ran = test.run();
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["provider"], "static");
    assert!(doc["box"].is_null(), "{doc}");
    assert!(doc["memory"].is_null(), "{doc}");
    let node = |name: &str| {
        doc["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    let worker0 = node("worker0");
    assert!(worker0["memory_mb"].is_null() && worker0["cpus"].is_null());
    assert_eq!(worker0["ssh"], "admin@192.168.56.30:2022");
    assert_eq!(worker0["ssh_port"], 2022);
    assert_eq!(worker0["pod_cidr"], "10.200.0.0/24");
    let lb1 = node("lb1");
    assert_eq!(lb1["ssh"], "lb1-server (ssh_config)");
    assert!(lb1["ssh_port"].is_null(), "{lb1}");
    // Planning contacts no host.
    assert!(!test.path().join("ssh.log").exists());
    assert!(!test.path().join(".kubelab").exists());
}

#[test]
fn explicit_missing_lab_suggests_init_and_exits_2() {
    let ran = Test::new()
        .args(&["--lab", "missing.yaml", "lab", "plan"])
        .status(2)
        .run();
    assert!(
        ran.stderr.contains("missing.yaml: no such lab file"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("kubelab init"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty());
}

#[test]
fn invalid_lab_exits_2_lists_every_problem_and_writes_nothing() {
    let ran = Test::new()
        .write(
            "lab.yaml",
            "nodes:\n  etcd:\n    count: 2\n  worker:\n    memory: 64\n",
        )
        .args(&["lab", "render"])
        .status(2)
        .run();
    assert!(
        ran.stderr.contains("nodes.etcd.count: 2 is even"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("nodes.worker.memory: 64 is below the minimum 1024")
    );
    assert!(!ran.dir.join(".kubelab").exists(), "nothing may be written");
    insta::assert_snapshot!(redact(&ran.stderr, &ran.dir));
}

#[test]
fn an_unpinned_kubernetes_version_is_refused_before_any_vm_boots() {
    let test = Test::new()
        .standins()
        .write("lab.yaml", "versions:\n  kubernetes: 1.32.3\n")
        .args(&["lab", "up"])
        .status(2);
    let ran = test.run();
    assert!(
        ran.stderr.contains(
            "versions.kubernetes: \"1.32.3\" is not a Kubernetes release kubelab supports"
        ),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("hint: use one of 1.36, 1.35"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        test.started(),
        Vec::<String>::new(),
        "no vagrant/VBoxManage/ssh ran"
    );
    assert!(!ran.dir.join(".kubelab").exists(), "nothing may be written");
}

#[test]
fn plan_shows_the_bill_of_materials_row_in_use() {
    let ran = Test::new()
        .write(
            "lab.yaml",
            "versions:\n  kubernetes: \"1.35\"\n  etcd: 3.5.33\n",
        )
        .args(&["lab", "plan"])
        .run();
    assert!(
        ran.stdout.contains(
            "Versions      kubernetes 1.35.0 (bill of materials row 1.35): etcd 3.5.33 (lab.yaml), containerd 2.3.4, runc 1.4.3, cni-plugins 1.9.1, crictl 1.35.0, coredns 1.12.4, pause 3.10.1"
        ),
        "{}",
        ran.stdout
    );
}

#[test]
fn warnings_go_to_stderr_and_do_not_fail() {
    let ran = Test::new()
        .write("lab.yaml", "network:\n  cidr: 172.28.5.0/24\n")
        .args(&["lab", "plan", "--json"])
        .run();
    assert!(
        ran.stderr
            .contains("warning: network.cidr: 172.28.5.0/24 is outside 192.168.56.0/21")
    );
    assert!(
        ran.stderr
            .contains("`* 172.28.5.0/24` to /etc/vbox/networks.conf")
    );
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc["nodes"][0]["address"], "172.28.5.2");
}

#[test]
fn init_writes_the_default_lab_and_refuses_to_overwrite() {
    let test = Test::new().args(&["init"]);
    test.run();
    let written = std::fs::read_to_string(test.path().join("lab.yaml")).unwrap();
    assert_eq!(
        written,
        include_str!("../lab.yaml"),
        "16 GB host: the default lab, untouched"
    );

    let again = test.then(&["init"]).status(2).run();
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert!(again.stderr.contains("--force"));
}

#[test]
fn init_force_overwrites() {
    let test = Test::new()
        .write("lab.yaml", "name: mine\n")
        .args(&["init", "--force"]);
    test.run();
    let written = std::fs::read_to_string(test.path().join("lab.yaml")).unwrap();
    assert!(written.contains("name: kubelab"));
}

#[test]
fn init_on_a_small_host_lowers_memory_and_says_so() {
    let test = Test::new()
        .env("KUBELAB_HOST_MEMORY_MB", "9216")
        .args(&["init"]);
    let ran = test.run();
    assert!(
        ran.stderr
            .contains("lowered nodes.worker.memory from 2048 to 1024 MB"),
        "{}",
        ran.stderr
    );
    let written = std::fs::read_to_string(test.path().join("lab.yaml")).unwrap();
    insta::assert_snapshot!(written.lines().take(4).collect::<Vec<_>>().join("\n"));
    // The result is a valid lab that fits: 6784 MB + 2048 reserve <= 9216.
    let plan = test.then(&["lab", "plan", "--json"]).run();
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(doc["memory"]["total_mb"], 6784);
    assert_eq!(doc["memory"]["fits"], true);
}

#[test]
fn render_writes_the_vagrantfile_hosts_block_and_manifest() {
    let test = Test::new().args(&["lab", "render", "--out", "out"]);
    let ran = test.run();
    assert_eq!(ran.stdout.trim(), "out");
    let manifest = std::fs::read_to_string(test.path().join("out/MANIFEST")).unwrap();
    insta::assert_snapshot!(manifest);
    let block = std::fs::read_to_string(test.path().join("out/host/hosts.block")).unwrap();
    assert!(block.starts_with("# BEGIN kubelab kubelab\n"));
    assert!(block.ends_with("# END kubelab kubelab\n"));
    assert!(block.contains("192.168.56.50\tapi.lan\n"));
}

/// F4: a directory link planted under `.kubelab/rendered/` (or that is
/// `rendered/` itself) is refused, and nothing is written where it points.
#[test]
fn render_never_writes_through_a_planted_directory_link() {
    for planted in [".kubelab/rendered/dns0", ".kubelab/rendered"] {
        let test = Test::new()
            .write("lab.yaml", "name: t\n")
            .write("elsewhere/keep", "mine\n");
        let link = test.path().join(planted);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(test.path().join("elsewhere"), &link).unwrap();
        let test = test.args(&["lab", "render"]).status(1);
        let ran = test.run();
        assert!(
            ran.stderr
                .contains(&format!("{planted} is a symbolic link"))
                && ran.stderr.contains("never writes through one"),
            "{planted}: {}",
            ran.stderr
        );
        let left: Vec<_> = std::fs::read_dir(test.path().join("elsewhere"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["keep"], "{planted}");
    }
}

/// `export-inventory --out` naming the lab file (by any path) is refused,
/// and lab.yaml stays.
#[test]
fn export_inventory_never_overwrites_the_lab_file() {
    for out in ["lab.yaml", "./sub/../lab.yaml"] {
        let test = Test::new()
            .write("lab.yaml", "name: t\n")
            .write("sub/keep", "")
            .args(&["lab", "export-inventory", "--out", out])
            .status(2);
        let ran = test.run();
        assert!(
            ran.stderr.contains("is the lab's own file"),
            "{out}: {}",
            ran.stderr
        );
        assert!(
            ran.stderr.contains("hint: write the inventory elsewhere"),
            "{}",
            ran.stderr
        );
        assert_eq!(
            std::fs::read_to_string(test.path().join("lab.yaml")).unwrap(),
            "name: t\n"
        );
    }
}

#[test]
fn render_defaults_to_the_state_dir_beside_lab_yaml() {
    let test = Test::new()
        .write("labs/a/lab.yaml", "name: alpha\n")
        .args(&["--lab", "labs/a/lab.yaml", "lab", "render"]);
    test.run();
    assert!(
        test.path()
            .join("labs/a/.kubelab/rendered/host/Vagrantfile")
            .exists()
    );
    // The PKI lives in the lab's state directory, not in the render output.
    assert!(test.path().join("labs/a/.kubelab/pki/ca-key.pem").exists());
}

/// C2: a lab directory whose path holds newlines, Ruby and a hosts line.
/// The Vagrantfile `lab render` writes passes the real `vagrant validate`
/// without running the Ruby, and `lab up` writes no hosts entry from it.
#[test]
fn a_lab_path_with_newlines_runs_nothing_and_adds_no_hosts_entry() {
    if which::which("vagrant").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "vagrant must be installed in CI"
        );
        eprintln!("SKIPPED: vagrant is not installed (apt-get install vagrant)");
        return;
    }
    let probe = Test::new();
    let marker = probe.path().join("PWNED");
    let dir = format!(
        "evil\nFile.write(%q({}),1)\n10.6.6.6 bank.example.com\n#",
        marker.display()
    );
    let lab_file = format!("{dir}/lab.yaml");
    let test = probe
        .write(&lab_file, "name: evil\n")
        .executable(
            "bin/VBoxManage",
            "#!/bin/sh\n[ \"$1\" = --version ] && echo 7.0.20r163906\n",
        )
        .args(&["--lab", &lab_file, "lab", "render", "--out", "out"]);
    test.run();
    let host = test.path().join("out/host");
    let out = Command::new("vagrant")
        .arg("validate")
        .current_dir(test.path())
        .env("VAGRANT_CWD", &host)
        .env("VAGRANT_HOME", test.path().join("vagrant.d"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env(
            "PATH",
            format!(
                "{}:{}",
                test.path().join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let vagrantfile = std::fs::read_to_string(host.join("Vagrantfile")).unwrap();
    assert!(!marker.exists(), "the path ran as Ruby:\n{vagrantfile}");
    assert!(
        said.contains("Vagrantfile validated successfully"),
        "{said}\n{vagrantfile}"
    );
    assert!(
        vagrantfile
            .lines()
            .nth(1)
            .unwrap()
            .contains("evil\\nFile.write"),
        "{vagrantfile}"
    );

    let block = std::fs::read_to_string(host.join("hosts.block")).unwrap();
    let test = test
        .standins()
        .then(&["--lab", &lab_file, "lab", "up", "--until", "machines"]);
    test.run();
    let hosts = std::fs::read_to_string(test.path().join("etc-hosts")).unwrap();
    for text in [&block, &hosts] {
        assert!(!text.lines().any(|l| l.starts_with("10.6.6.6")), "{text}");
        for line in text.lines() {
            let entry = line
                .split_once('\t')
                .is_some_and(|(addr, _)| addr.parse::<std::net::Ipv4Addr>().is_ok());
            assert!(line.starts_with('#') || entry, "{line:?} in {text}");
        }
    }
}

/// The generated Vagrantfile passes the real `vagrant validate`, provider
/// blocks included (a stand-in VBoxManage answers the version probe).
#[test]
fn rendered_vagrantfiles_pass_vagrant_validate() {
    if which::which("vagrant").is_err() {
        // .ci/run installs vagrant, so CI never takes this branch.
        assert!(
            std::env::var_os("CI").is_none(),
            "vagrant must be installed in CI"
        );
        eprintln!("SKIPPED: vagrant is not installed (apt-get install vagrant)");
        return;
    }
    for workers in [1, 3, 10] {
        let test = Test::new()
            .write(
                "lab.yaml",
                &format!("nodes:\n  worker:\n    count: {workers}\n"),
            )
            .executable(
                "bin/VBoxManage",
                "#!/bin/sh\n[ \"$1\" = --version ] && echo 7.0.20r163906\n",
            )
            .args(&["lab", "render", "--out", "out"]);
        test.run();
        let path = format!(
            "{}:{}",
            test.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("vagrant")
            .arg("validate")
            .env("VAGRANT_CWD", test.path().join("out/host"))
            .env("PATH", path)
            .env("VAGRANT_HOME", test.path().join("vagrant.d"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{workers} workers: vagrant validate failed:\n{text}"
        );
        assert!(
            text.contains("Vagrantfile validated successfully"),
            "{text}"
        );
        let vagrantfile =
            std::fs::read_to_string(test.path().join("out/host/Vagrantfile")).unwrap();
        assert_eq!(vagrantfile.matches("config.vm.define").count(), 9 + workers);
    }
}

#[test]
fn help_teaches_with_examples_and_exit_codes() {
    let ran = Test::new().args(&["--help"]).run();
    assert!(ran.stdout.contains("Examples:"));
    assert!(ran.stdout.contains("130 interrupted"));
    let subcommands: &[&[&str]] = &[
        &["init"],
        &["doctor"],
        &["lab", "plan"],
        &["lab", "render"],
        &["lab", "certs"],
        &["lab", "up"],
        &["lab", "status"],
        &["lab", "halt"],
        &["lab", "destroy"],
        &["lab", "ssh"],
        &["lab", "snapshot", "save"],
        &["lab", "snapshot", "restore"],
        &["lab", "snapshot", "list"],
        &["lab", "snapshot", "delete"],
        &["lab", "verify"],
        &["lab", "kubeconfig"],
        &["lab", "timings"],
        &["artifacts", "fetch"],
        &["cache", "clean"],
        &["labs"],
        &["completions"],
        &["man"],
    ];
    for sub in subcommands {
        let args: Vec<&str> = sub.iter().copied().chain(["--help"]).collect();
        let ran = Test::new().args(&args).run();
        assert!(ran.stdout.contains("Examples:"), "{sub:?} has no example");
    }
    // The short help of `lab` lists every command with one line.
    let ran = Test::new().args(&["lab", "--help"]).run();
    for cmd in [
        "plan", "render", "certs", "up", "status", "halt", "destroy", "ssh", "snapshot",
    ] {
        assert!(
            ran.stdout.contains(&format!("  {cmd} ")),
            "`lab --help` misses {cmd}:\n{}",
            ran.stdout
        );
    }
}

#[test]
fn bad_flags_exit_2() {
    let ran = Test::new()
        .args(&["lab", "plan", "--bogus"])
        .status(2)
        .run();
    assert!(ran.stderr.contains("--bogus"));
}

#[test]
fn certs_lists_every_certificate_after_render_and_never_a_key() {
    let test = Test::new().args(&["lab", "certs"]).status(1);
    let ran = test.run();
    assert!(
        ran.stderr.contains("`kubelab lab render` signs"),
        "{}",
        ran.stderr
    );

    let test = test.then(&["lab", "render", "--out", "out"]);
    test.run();
    let test = test.then(&["lab", "certs", "--json"]);
    let ran = test.run();
    assert!(!ran.stdout.contains("PRIVATE KEY"));
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON on stdout");
    assert_eq!(doc["schema_version"], 1);
    let certs = doc["certificates"].as_array().unwrap();
    // 3 CAs, 5 cluster clients, the apiserver, 2 serving certs x 3
    // controllers, 1 worker, 2 x 3 etcd members, the apiserver's etcd client,
    // the front-proxy client.
    assert_eq!(certs.len(), 3 + 5 + 1 + 6 + 1 + 6 + 1 + 1);
    let front_proxy = certs
        .iter()
        .find(|c| c["name"] == "front-proxy-client")
        .unwrap();
    assert_eq!(front_proxy["authority"], "front-proxy");
    assert!(certs.iter().all(|c| c["present"] == true));
    let worker = certs.iter().find(|c| c["name"] == "worker0").unwrap();
    assert_eq!(worker["subject"], "O=system:nodes, CN=system:node:worker0");
    assert_eq!(
        worker["sans"],
        serde_json::json!(["worker0", "worker0.lan", "192.168.56.30"])
    );
    assert_eq!(worker["authority"], "cluster");
    let api = certs
        .iter()
        .find(|c| c["name"] == "kube-apiserver")
        .unwrap();
    assert!(api["sans"].as_array().unwrap().contains(&"api.lan".into()));

    // The table, and a worker the PKI has not signed yet shows as missing.
    let test = test
        .write("lab.yaml", "nodes:\n  worker:\n    count: 2\n")
        .then(&["lab", "certs"]);
    let ran = test.run();
    let worker1 = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("worker1 "))
        .unwrap();
    assert!(worker1.contains("missing"), "{worker1}");
    assert!(ran.stdout.starts_with("NAME "));
}

#[test]
fn cache_clean_empties_the_shared_cache_and_only_it() {
    let test = Test::new()
        .write("cache/sha256/abc/etcd.tar.gz", "x")
        .write("keep/me", "y")
        .args(&["cache", "clean"]);
    let ran = test.run();
    assert!(ran.stderr.contains("removed"), "{}", ran.stderr);
    assert!(!test.path().join("cache").exists());
    assert!(test.path().join("keep/me").exists());
    let again = test.then(&["cache", "clean"]).run();
    assert!(again.stderr.contains("empty already"), "{}", again.stderr);
}

#[test]
fn artifacts_fetch_offline_lists_every_missing_release_and_downloads_nothing() {
    let ran = Test::new()
        .args(&["artifacts", "fetch", "--offline"])
        .status(1)
        .run();
    assert!(
        ran.stderr.contains("6 release files are not in the cache"),
        "{}",
        ran.stderr
    );
    for (label, file) in [
        ("etcd 3.6.14", "etcd-v3.6.14-linux-"),
        ("kubernetes 1.36.0", "kubernetes-server-linux-"),
        ("containerd 2.3.4", "containerd-2.3.4-linux-"),
        ("runc 1.4.3", "runc."),
        ("cni-plugins 1.9.1", "cni-plugins-linux-"),
        ("crictl 1.36.0", "crictl-v1.36.0-linux-"),
    ] {
        assert!(
            ran.stderr.contains(&format!("  {label} ({file}")),
            "{label}: {}",
            ran.stderr
        );
    }
    assert!(ran.stderr.contains("kubelab artifacts fetch` while online"));
    assert!(
        !ran.dir.join("cache").exists(),
        "offline wrote to the cache"
    );

    // The distribution's etcd is not downloaded; everything else still is.
    let ran = Test::new()
        .write("lab.yaml", "artifacts:\n  etcd: distro\n")
        .args(&["artifacts", "fetch", "--offline"])
        .status(1)
        .run();
    assert!(ran.stderr.contains("5 release files"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("etcd 3.5.17"), "{}", ran.stderr);
}

/// An HTTP server on loopback answering every GET with `body`, recording
/// the paths asked for. It stops after `max` requests.
fn serve_everything(body: &'static [u8], max: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let paths = Arc::new(Mutex::new(Vec::new()));
    let log = paths.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap_or(0);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = first.split(' ').nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(path);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    (url, paths)
}

/// U10: a download that cannot reach its server says to check the network,
/// names the mirror setting and --offline, not only "run it again".
#[test]
fn artifacts_fetch_without_a_network_names_the_mirror_and_offline() {
    // A port nothing listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ran = Test::new()
        .write("lab.yaml", "artifacts:\n  etcd: distro\n")
        .env(
            "KUBELAB_ARTIFACTS_MIRROR",
            &format!("http://127.0.0.1:{port}/"),
        )
        .args(&["artifacts", "fetch"])
        .status(1)
        .run();
    for said in ["check the network", "KUBELAB_ARTIFACTS_MIRROR", "--offline"] {
        assert!(ran.stderr.contains(said), "{said}: {}", ran.stderr);
    }
}

#[test]
fn artifacts_fetch_from_a_mirror_deletes_and_reports_a_file_that_is_not_the_release() {
    const BODY: &[u8] = b"not the kubernetes server tarball";
    let (mirror, paths) = serve_everything(BODY, 1);
    let ran = Test::new()
        .write("lab.yaml", "artifacts:\n  etcd: distro\n")
        .env("KUBELAB_ARTIFACTS_MIRROR", &format!("{mirror}/"))
        .args(&["artifacts", "fetch"])
        .status(1)
        .run();
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let file = format!("kubernetes-server-linux-{arch}.tar.gz");
    assert_eq!(*paths.lock().unwrap(), [format!("/{file}")]);
    let actual: String = Sha512::digest(BODY)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        ran.stderr.contains(&format!(
            "{mirror}/{file} does not match its pinned checksum: expected sha512 "
        )),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains(&format!("got {actual}")),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("the download was deleted"),
        "{}",
        ran.stderr
    );
    let left: Vec<_> = walk(&ran.dir.join("cache"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new(), "the bad download stayed");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn artifacts_fetch_refuses_a_version_without_a_pinned_checksum() {
    let ran = Test::new()
        .write("lab.yaml", "versions:\n  etcd: 3.4.1\n")
        .args(&["artifacts", "fetch"])
        .status(2)
        .run();
    assert!(
        ran.stderr
            .contains("versions.etcd: kubelab has no published checksum for etcd 3.4.1"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("use 3.6.14 or 3.5.33"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("etcd: distro"), "{}", ran.stderr);
}

#[test]
fn verify_names_its_checks_and_needs_a_lab_that_was_brought_up() {
    let ran = Test::new()
        .args(&["lab", "verify", "--only", "etcdd"])
        .status(2)
        .run();
    assert!(
        ran.stderr.contains("no check named \"etcdd\""),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("did you mean etcd?"), "{}", ran.stderr);
    let ran = Test::new().args(&["lab", "verify"]).status(1).run();
    assert!(ran.stderr.contains("never brought up"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
}

/// `doctor --only` parses as `lab verify --only` does: a comma list of
/// check names, an unknown one named with the valid ones.
#[test]
fn doctor_only_runs_the_named_checks_and_names_the_valid_ones() {
    let ran = Test::new()
        .args(&["doctor", "--only", "memory,dsk"])
        .status(2)
        .run();
    assert!(
        ran.stderr.contains("no check named \"dsk\""),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("did you mean disk? checks: vagrant, virtualbox,"),
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    let ran = Test::new()
        .args(&["doctor", "--only", "disk, memory", "--json"])
        .run_unchecked();
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).expect(&ran.stderr);
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // In doctor's own order, numbered from 1.
    assert_eq!(names, ["memory", "disk"], "{}", ran.stdout);
    assert_eq!(doc["checks"][0]["number"], 1);
}

#[test]
fn verify_help_lists_the_conformance_run_and_focus_needs_it() {
    let ran = Test::new().args(&["lab", "verify", "--help"]).run();
    for word in [
        "--conformance",
        "--focus <REGEX>",
        "hydrophone",
        "an hour or more",
    ] {
        assert!(ran.stdout.contains(word), "{word}: {}", ran.stdout);
    }
    let ran = Test::new()
        .args(&["lab", "verify", "--focus", "sig-network"])
        .status(2)
        .run();
    assert!(ran.stderr.contains("--conformance"), "{}", ran.stderr);
    let ran = Test::new()
        .args(&["lab", "verify", "--conformance", "--only", "etcd"])
        .status(2)
        .run();
    assert!(ran.stderr.contains("cannot be used with"), "{}", ran.stderr);
    // Like the checks, it needs a lab that was brought up.
    let ran = Test::new()
        .args(&["lab", "verify", "--conformance"])
        .status(1)
        .run();
    assert!(ran.stderr.contains("never brought up"), "{}", ran.stderr);
}

/// A `--focus` Ginkgo would refuse is refused at once, naming the value
/// and the fix, not an hour into the suite; a good one gets past it.
#[test]
fn a_focus_that_is_no_regex_is_refused_before_anything_runs() {
    for (focus, says) in [
        ("[sig-network", "unclosed character class"),
        ("(Conformance", "unclosed group"),
        (" ", "it is empty"),
    ] {
        let ran = Test::new()
            .args(&["lab", "verify", "--conformance", "--focus", focus])
            .status(2)
            .run();
        for word in [format!("'{focus}' for '--focus <REGEX>'"), says.to_string()] {
            assert!(
                ran.stderr.contains(&word),
                "{focus}: {word}: {}",
                ran.stderr
            );
        }
    }
    let ran = Test::new()
        .args(&["lab", "verify", "--conformance", "--focus", "[sig-network"])
        .status(2)
        .run();
    assert!(ran.stderr.contains(r"'\[sig-network\]'"), "{}", ran.stderr);
    // Good ones reach the lab's own check: escaped brackets, RE2's
    // `\Q...\E` quoting (the regex crate lacks it), an octal escape, and a
    // repeat RE2 takes that the crate would be too big to compile.
    for focus in [
        r"\[sig-network\].*\[Conformance\]",
        r"\Q[sig-network]\E.*\Q[Conformance]",
        r"sig\055network",
        r"\w{500}",
    ] {
        let ran = Test::new()
            .args(&["lab", "verify", "--conformance", "--focus", focus])
            .status(1)
            .run();
        assert!(
            ran.stderr.contains("never brought up"),
            "{focus}: {}",
            ran.stderr
        );
    }
}

#[test]
fn scale_explains_what_it_refuses_and_plans_without_touching_anything() {
    // The built-in lab has no lab.yaml to record a new size in.
    let ran = Test::new()
        .args(&["lab", "scale", "workers=2"])
        .status(2)
        .run();
    assert!(ran.stderr.contains("kubelab init"), "{}", ran.stderr);

    let lab = "name: kubelab\nnodes:\n  worker:\n    count: 1 # keep me\n";
    for (request, expected) in [
        ("etcd=5", "kubelab does not scale etcd"),
        ("controllers=2", "kubelab does not scale controllers"),
        ("workers=0", "at least 1 worker"),
        ("workers=40", "workers=40 does not fit this lab"),
    ] {
        let ran = Test::new()
            .write("lab.yaml", lab)
            .args(&["lab", "scale", request])
            .status(2)
            .run();
        assert!(ran.stderr.contains(expected), "{request}: {}", ran.stderr);
    }
    let ran = Test::new()
        .write("lab.yaml", lab)
        .args(&["lab", "scale", "wrokers=2"])
        .status(2)
        .run();
    assert!(
        ran.stderr.contains("no role named \"wrokers\""),
        "{}",
        ran.stderr
    );

    // A lab that is not up: the plan, and lab.yaml untouched by --dry-run.
    let test = Test::new()
        .write("lab.yaml", lab)
        .args(&["lab", "scale", "workers=3", "--dry-run"]);
    let ran = test.run();
    assert!(
        ran.stdout.contains("scale workers: 1 -> 3"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("+ worker1    192.168.56.31"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("the lab is not up"), "{}", ran.stdout);
    let path = test.path().join("lab.yaml");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), lab);
    let json = Test::new()
        .write("lab.yaml", lab)
        .args(&["lab", "scale", "workers=2", "--dry-run", "--json"])
        .run();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["plan"]["add"][0]["name"], "worker1");

    // Without --dry-run, a lab that is not up only gets its lab.yaml edited.
    let test = Test::new()
        .write("lab.yaml", lab)
        .args(&["lab", "scale", "workers=2"]);
    test.run();
    assert_eq!(
        std::fs::read_to_string(test.path().join("lab.yaml")).unwrap(),
        "name: kubelab\nnodes:\n  worker:\n    count: 2 # keep me\n"
    );
}

/// U6: a valid lab.yaml in a layout the count edit does not understand is
/// refused as that, naming the line and the block layout to write, never as a
/// count that "does not fit"; lab.yaml is left alone. A file whose lines end
/// in a CR alone, or that starts with a byte-order mark, is edited in place.
#[test]
fn scale_names_a_layout_it_cannot_edit_and_edits_cr_only_files() {
    let text = "name: kubelab\nnodes:\n  worker:\n    count : 1\n";
    let test = Test::new()
        .write("lab.yaml", text)
        .args(&["lab", "scale", "workers=2"])
        .status(2);
    let ran = test.run();
    assert!(!ran.stderr.contains("does not fit"), "{}", ran.stderr);
    assert!(ran.stderr.contains("line 4: `count : 1`"), "{}", ran.stderr);
    assert!(ran.stderr.contains("`    count: 2`"), "{}", ran.stderr);
    let path = test.path().join("lab.yaml");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    for (text, edited) in [
        (
            "name: kubelab\rnodes:\r  worker:\r    count: 1\r",
            "name: kubelab\rnodes:\r  worker:\r    count: 2\r",
        ),
        (
            "\u{feff}nodes:\n  worker:\n    count: 1\n",
            "\u{feff}nodes:\n  worker:\n    count: 2\n",
        ),
    ] {
        let test = Test::new()
            .write("lab.yaml", text)
            .args(&["lab", "scale", "workers=2"]);
        test.run();
        let path = test.path().join("lab.yaml");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    }
}

#[test]
fn scale_on_a_static_lab_moves_within_the_listed_workers() {
    // Test::static_lab's ten hosts and a second worker, listed last; no
    // nodes.worker.count: both workers are in the lab.
    let with_worker1 = |test: Test| {
        let path = test.path().join("lab.yaml");
        let mut lab = std::fs::read_to_string(&path).unwrap();
        lab.push_str(
            "  - {name: worker1, role: worker, address: 192.168.56.31, ssh_user: admin, ssh_key: id}\n",
        );
        std::fs::write(&path, &lab).unwrap();
        (test, lab)
    };
    // Past the listed workers: refused, naming the fix.
    let (test, _) = with_worker1(Test::new().static_lab());
    let ran = test.args(&["lab", "scale", "workers=3"]).status(2).run();
    assert!(
        ran.stderr
            .contains("3 workers, but only 2 hosts under hosts: have role worker"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("list another server under hosts: with `role: worker`"),
        "{}",
        ran.stderr
    );
    // Down to 1 on a lab that is not up: lab.yaml gains nodes.worker.count,
    // the hosts list stays as written, and the plan has one worker.
    let (test, lab) = with_worker1(Test::new().static_lab());
    let test = test.args(&["lab", "scale", "workers=1"]);
    let ran = test.run();
    assert!(
        ran.stderr.contains("- worker1    192.168.56.31"),
        "{}",
        ran.stderr
    );
    let yaml = std::fs::read_to_string(test.path().join("lab.yaml")).unwrap();
    assert!(yaml.starts_with(&lab), "{yaml}");
    assert!(
        yaml.ends_with("nodes:\n  worker:\n    count: 1\n"),
        "{yaml}"
    );
    let plan = test.then(&["lab", "plan", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&plan.run().stdout).unwrap();
    let workers: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["role"] == "worker")
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(workers, ["worker0"]);
}

#[test]
fn reset_without_a_snapshot_says_how_to_take_one() {
    let ran = Test::new()
        .write("lab.yaml", "name: kubelab\n")
        .args(&["lab", "reset"])
        .status(2)
        .run();
    assert!(
        ran.stderr.contains("no snapshot named \"base\""),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("--snapshot base"), "{}", ran.stderr);
}

/// D2: `lab render` signs into .kubelab/pki/ only under the lab's lock: while
/// another kubelab (here a `flock` holding .kubelab/lock) works on the lab,
/// render refuses and signs nothing, so two signers never mix a PKI.
#[test]
fn render_takes_the_lab_lock_before_signing() {
    if which::which("flock").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "util-linux is installed in CI"
        );
        eprintln!("SKIPPED: flock is not installed");
        return;
    }
    let test = Test::new().write(".kubelab/lock", "");
    // One process holds the lock: the shell takes it, then becomes sleep.
    let mut holder = Command::new("sh")
        .args(["-c", "exec 9>>.kubelab/lock && flock -x 9 && exec sleep 30"])
        .current_dir(test.path())
        .spawn()
        .unwrap();
    // The lock is held once the process is sleep.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{}/cmdline", holder.id()))
        .unwrap_or_default()
        .starts_with("sleep")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let test = test.args(&["lab", "render"]).status(1);
    let ran = test.run();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        ran.stderr.contains("is working on this lab"),
        "{}",
        ran.stderr
    );
    assert!(!test.path().join(".kubelab/pki").exists(), "nothing signed");
    let test = test.then(&["lab", "render"]);
    test.run();
    assert!(test.path().join(".kubelab/pki/ca.pem").exists());
}

/// D2/U1: `lab certs` checks every certificate against its CA and its key
/// and names the broken files (it used to call a mixed-up PKI fine).
#[test]
fn certs_names_certificates_that_do_not_verify() {
    let test = Test::new().args(&["lab", "render"]);
    test.run();
    let pki = test.path().join(".kubelab/pki");
    let test = test.then(&["lab", "certs"]);
    test.run();
    std::fs::copy(pki.join("kube-proxy-key.pem"), pki.join("admin-key.pem")).unwrap();
    std::fs::write(pki.join("worker0.pem"), "garbage\n").unwrap();
    let test = test.then(&["lab", "certs"]).status(1);
    let ran = test.run();
    assert!(
        ran.stderr.contains("2 certificate file(s)"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("- admin-key.pem: is not the key of admin.pem"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("- worker0.pem: not a PEM certificate"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("hint: delete the broken certificate"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stdout.contains("BROKEN: admin-key.pem"),
        "{}",
        ran.stdout
    );
}

/// U13: commands a vagrant, kind or minikube user types get the kubelab
/// command they meant, not only clap's nearest spelling (`delete` -> `reset`).
#[test]
fn unknown_commands_get_the_command_a_user_meant() {
    for (args, want) in [
        (&["up"][..], "hint: did you mean `kubelab lab up`?"),
        (
            &["--lab", "x.yaml", "destroy"][..],
            "hint: did you mean `kubelab lab destroy`?",
        ),
        (
            &["lab", "delete"][..],
            "hint: `kubelab lab destroy` removes a lab",
        ),
        (
            &["lab", "start"][..],
            "hint: `kubelab lab up` creates and starts a lab",
        ),
        (
            &["lab", "stop"][..],
            "hint: `kubelab lab halt` stops a lab's VMs",
        ),
        (
            &["lab", "list"][..],
            "hint: `kubelab labs` lists this host's labs",
        ),
        (&["version"][..], "hint: `kubelab --version`"),
    ] {
        let ran = Test::new().args(args).status(2).run();
        assert!(ran.stderr.contains(want), "{args:?}: {}", ran.stderr);
    }
}

/// A `lab up` that has not yet recorded a VM holds the lab's lock: a scale
/// then is refused, naming the holder, and lab.yaml is left as it was (a
/// hostile round found scale rewriting lab.yaml under a running `lab up`).
#[test]
fn scale_waits_for_no_one_and_never_edits_lab_yaml_under_another_kubelab() {
    let lab = "name: kubelab\nnodes:\n  worker:\n    count: 1\n";
    let test = Test::new().write("lab.yaml", lab);
    std::fs::create_dir_all(test.path().join(".kubelab")).unwrap();
    std::fs::write(test.path().join(".kubelab/lock"), "pid 1 (kubelab lab up)").unwrap();
    // Held as kubelab holds it (flock), by a process this test starts and ends.
    let mut holder = std::process::Command::new("flock")
        .arg(test.path().join(".kubelab/lock"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::process::Command::new("flock")
        .args(["-n"])
        .arg(test.path().join(".kubelab/lock"))
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock was never taken"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let test = test.args(&["lab", "scale", "workers=2", "--yes"]).status(1);
    let ran = test.run();
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        ran.stderr
            .contains("another kubelab (pid 1 (kubelab lab up)) is working on this lab"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        std::fs::read_to_string(test.path().join("lab.yaml")).unwrap(),
        lab
    );
}
