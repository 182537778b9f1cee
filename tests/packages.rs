//! lib.sh's package installs, run for real by bash against stand-in `apt-get`,
//! `apt-cache`, `dpkg` and `dpkg-query` on PATH that record what they were
//! asked (no root, no network, nothing of this machine's apt touched): never
//! a question, the dpkg lock waited for and its holder named, `apt-get
//! update` retried, a missing package named, a half-installed one repaired,
//! and no daemon started by a package while kubelab installs. The same
//! path runs against the real apt of the stock boxes in tests/e2e_default_lab.rs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    /// A scratch "node": a bin/ of stand-ins first on PATH, a calls log,
    /// and lib.sh pointed at scratch copies of its system paths.
    fn new() -> Node {
        let node = Node {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(node.path("bin")).unwrap();
        std::fs::write(node.path("lock"), "").unwrap();
        // Installed packages, one `STATUS NAME` a line (dpkg-query's view).
        std::fs::write(node.path("status"), "ii curl\n").unwrap();
        node.stub(
            "dpkg-query",
            r#"case "$*" in
  *'db:Status-Abbrev'*) awk '{ print $1 " " $2 }' "$NODE/status" ;;
  *) pkg=${*: -1}; grep -q "^ii $pkg$" "$NODE/status" && printf 'install ok installed' || exit 1 ;;
esac"#,
        );
        node
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A stand-in `name` that logs its arguments (and the environment and
    /// stdin apt would see) to calls, then runs `body`.
    fn stub(&self, name: &str, body: &str) {
        let path = self.path("bin").join(name);
        std::fs::write(
            &path,
            format!(
                "#!/usr/bin/env bash\nset -u\n{{ printf '%s' \"{name} $*\"; [ -t 0 ] && printf ' [tty]'; env | grep -E '^(DEBIAN_FRONTEND|NEEDRESTART_SUSPEND|DEBCONF_NONINTERACTIVE_SEEN)=' | sort | tr '\\n' ' ' | sed 's/^/ env: /'; [ -e \"$NODE/policy-rc.d\" ] && printf ' [daemons held]'; echo; }} >>\"$NODE/calls\"\n{body}\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Runs `script` after sourcing lib.sh as a role script does.
    fn run(&self, script: &str) -> Output {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("provision/scripts/lib.sh");
        let prelude = format!(
            "set -euo pipefail\n. '{}'\npolicy_rc=\"$NODE/policy-rc.d\"\napt_lock_files=(\"$NODE/lock\")\napt_retry_delay=0\n",
            lib.display()
        );
        Command::new("bash")
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.path("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("NODE", self.dir.path())
            .env("KUBELAB_NODE", "node0")
            .env("KUBELAB_PHASE", "dns")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An apt-get that updates fine and "installs" by marking the packages
/// installed.
const APT_GET_OK: &str = r#"case " $* " in
  *" update "*) echo "Hit:1 http://repo ./ InRelease" ;;
  *" install "*) for a in "$@"; do case $a in -*|install|Dpkg::*|DPkg::*|APT::*) ;; *) echo "ii $a" >>"$NODE/status" ;; esac; done ;;
esac"#;

#[test]
fn an_install_asks_nothing_keeps_kubelabs_conffiles_and_starts_no_daemon() {
    let node = Node::new();
    node.stub("apt-get", APT_GET_OK);
    node.stub("apt-cache", "exit 0");
    let out = node
        .run("ensure_packages bind9 bind9-dnsutils curl; [ ! -e \"$policy_rc\" ] && echo released");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("installing bind9 bind9-dnsutils\n"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).ends_with("released\n"),
        "policy-rc.d left behind: {}",
        text(&out)
    );
    let calls = node.calls();
    let install = calls
        .lines()
        .find(|l| l.starts_with("apt-get") && l.contains(" install "))
        .unwrap_or_else(|| panic!("no install: {calls}"));
    for wanted in [
        "-o Dpkg::Options::=--force-confdef",
        "-o Dpkg::Options::=--force-confold",
        "-y",
        "--no-install-recommends",
        "bind9 bind9-dnsutils",
        "DEBIAN_FRONTEND=noninteractive",
        "NEEDRESTART_SUSPEND=1",
        "DEBCONF_NONINTERACTIVE_SEEN=true",
        "[daemons held]",
    ] {
        assert!(install.contains(wanted), "{wanted} missing: {install}");
    }
    assert!(
        !install.contains("[tty]") && !install.contains(" curl"),
        "{install}"
    );
    // One update for the step, before the install.
    assert_eq!(calls.matches(" update").count(), 1, "{calls}");
    // A second run has nothing to install and calls no apt at all.
    std::fs::remove_file(node.path("calls")).unwrap();
    let out = node.run("ensure_packages bind9 bind9-dnsutils curl");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!node.calls().contains("apt-get"), "{}", node.calls());
}

#[test]
fn a_policy_rc_d_of_the_admins_is_left_alone_and_a_stale_one_of_kubelabs_removed() {
    let node = Node::new();
    node.stub("apt-get", APT_GET_OK);
    node.stub("apt-cache", "exit 0");
    std::fs::write(
        node.path("policy-rc.d"),
        "#!/bin/sh\n# the admin's\nexit 0\n",
    )
    .unwrap();
    let out = node.run("ensure_packages haproxy");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(node.path("policy-rc.d")).unwrap(),
        "#!/bin/sh\n# the admin's\nexit 0\n"
    );
    // One a killed run of kubelab's left behind goes at the next install.
    std::fs::write(
        node.path("policy-rc.d"),
        "#!/bin/sh\n# kubelab: no daemon starts from a package while kubelab installs\nexit 101\n",
    )
    .unwrap();
    let out = node.run("ensure_packages haproxy");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!node.path("policy-rc.d").exists());
}

#[test]
fn a_failed_update_is_retried_and_a_third_failure_names_the_error() {
    let node = Node::new();
    node.stub(
        "apt-get",
        r#"n=$(cat "$NODE/updates" 2>/dev/null || echo 0); echo $((n + 1)) >"$NODE/updates"
if [ "$n" -lt "${FAILS:-2}" ]; then echo "E: Failed to fetch http://192.168.56.1:8642/./Packages  Connection refused"; exit 100; fi
echo "Hit:1 http://repo ./ InRelease""#,
    );
    let out = node.run("apt_update && echo updated");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("apt-get update failed (attempt 1 of 3)"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("(attempt 2 of 3)") && text(&out).ends_with("updated\n"));
    assert_eq!(
        std::fs::read_to_string(node.path("updates")).unwrap(),
        "3\n"
    );
    // Once per step: a second call in the same script does nothing.
    let out = node.run("apt_update; apt_update");
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(node.path("updates")).unwrap(),
        "4\n"
    );

    std::fs::remove_file(node.path("updates")).unwrap();
    let out = node.run("FAILS=9; export FAILS; apt_update");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("apt-get update failed 3 times on node0: E: Failed to fetch http://192.168.56.1:8642/./Packages"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_package_the_sources_lack_fails_the_step_naming_it_and_the_node() {
    let node = Node::new();
    node.stub("apt-get", APT_GET_OK);
    node.stub("apt-cache", r#"[ "${*: -1}" != docker-registry ]"#);
    let out = node.run("ensure_packages curl docker-registry");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("no package docker-registry in the package sources of node0")
            && said.contains("Enable the archive that has it (on Ubuntu: universe)"),
        "{said}"
    );
    assert!(!node.calls().contains(" install "), "{}", node.calls());
}

#[test]
fn a_failed_install_names_the_node_and_apts_last_lines() {
    let node = Node::new();
    node.stub(
        "apt-get",
        r#"case " $* " in *" install "*) echo "Setting up bind9 ..."; echo "dpkg: error processing package bind9 (--configure):"; echo "E: Sub-process /usr/bin/dpkg returned an error code (1)"; exit 100 ;; esac"#,
    );
    node.stub("apt-cache", "exit 0");
    let out = node.run("ensure_packages bind9");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("installing bind9 failed on node0 (exit 100)"),
        "{said}"
    );
    assert!(
        said.contains("dpkg: error processing package bind9 (--configure):"),
        "{said}"
    );
}

#[test]
fn a_half_installed_package_is_repaired_before_anything_else() {
    let node = Node::new();
    std::fs::write(node.path("status"), "ii curl\niF bind9\niU bind9-utils\n").unwrap();
    node.stub("apt-get", APT_GET_OK);
    node.stub("apt-cache", "exit 0");
    node.stub(
        "dpkg",
        r#"case " $* " in *" --configure -a "*) sed -i 's/^i[A-Z] /ii /' "$NODE/status" ;; esac"#,
    );
    let out = node.run("ensure_packages bind9");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("repairing what an interrupted install left half done: bind9 bind9-utils"),
        "{}",
        text(&out)
    );
    let calls = node.calls();
    let configure = calls
        .lines()
        .find(|l| l.starts_with("dpkg "))
        .unwrap_or_else(|| panic!("{calls}"));
    assert!(
        configure.contains("--force-confdef --force-confold --configure -a")
            && configure.contains("[daemons held]"),
        "{configure}"
    );
    // Repaired, so nothing is left to install.
    assert!(!calls.contains(" install "), "{calls}");
}

#[test]
fn a_held_dpkg_lock_is_waited_for_and_its_holder_named() {
    let node = Node::new();
    node.stub("apt-get", APT_GET_OK);
    node.stub("apt-cache", "exit 0");
    // Another process takes the lock as apt does (a POSIX fcntl lock).
    let lock = node.path("lock");
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import fcntl, sys, time\nf = open(sys.argv[1], 'r+')\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)",
        ])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "held\n");
    let out = node.run("apt_lock_wait=1; ensure_packages bind9");
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    let pid = holder.id().to_string();
    assert!(
        said.contains(&format!(
            "waiting up to 1s for apt's lock, held by pid {pid} ("
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "apt's lock on node0 is still held after 1s by pid {pid} ("
        )) && said.contains("python3")
            && said.contains("sudo systemctl stop unattended-upgrades"),
        "{said}"
    );
    assert!(!node.calls().contains(" install "), "{}", node.calls());
    // Once the holder is gone, the same install goes through.
    let out = node.run("ensure_packages bind9");
    assert!(out.status.success(), "{}", text(&out));
}

/// Release files accumulate in the artifacts directory across version
/// bumps: the pick is by version (2.0.10 after 2.0.4), not by name.
#[test]
fn the_newest_release_file_is_picked_by_version_not_by_name() {
    let node = Node::new();
    let dir = node.path("artifacts");
    std::fs::create_dir(&dir).unwrap();
    for f in [
        "containerd-2.0.4-linux-amd64.tar.gz",
        "containerd-2.0.10-linux-amd64.tar.gz",
        "containerd-2.0.9-linux-amd64.tar.gz",
    ] {
        std::fs::write(dir.join(f), "").unwrap();
    }
    let out = node.run(&format!(
        "artifacts_dir='{}'; artifact 'containerd-*-linux-*.tar.gz'; echo; artifact 'runc.*'; echo end",
        dir.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}/containerd-2.0.10-linux-amd64.tar.gz\nend\n",
            dir.display()
        )
    );
}
