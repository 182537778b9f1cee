//! The end-to-end fixture: a "hypervisor" network namespace holding the
//! host-only bridge, the stand-in `vagrant` of tests/e2e-standin/ first on
//! PATH (it boots each lab machine as a systemd-nspawn container), and the
//! real kubelab binary run inside that namespace.
//!
//! Every name it or the stand-in creates (network namespaces, veths, the
//! bridge, cgroups, the run directory under the temp dir) starts with a prefix
//! unique to the run, `ke2e` and four hex digits. Drop (also on panic) tears
//! all of it down; a run killed before its Drop is cleaned by the next one,
//! which finds its names and sees its owner process gone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Ran;

/// Common start of every run's prefix.
const PREFIX_STEM: &str = "ke2e";
const CGROUP_HIERARCHIES: [&str; 4] = ["systemd", "unified", "freezer", "memory"];

/// One e2e run: its namespace, directories and environment.
pub struct E2e {
    pub prefix: String,
    /// Holds the lab directory, the hosts file and the machines' overlays.
    pub run_dir: PathBuf,
    /// The baked box: rootfs/, the apt repository repo/ and the test-only
    /// SSH key of `vagrant`.
    pub box_dir: PathBuf,
    /// The HTTP server of the box's repository (see `serve_repository`).
    repo_server: Option<std::process::Child>,
}

/// The stock boxes boxes/test-debian/bake makes, by Debian release.
pub const DEBIAN_12: &str = "bookworm";
pub const DEBIAN_13: &str = "trixie";

/// Where the box's apt looks for the lab's packages (boxes/test-debian/bake):
/// the hypervisor's host-only address, where the fixture serves repo/.
const REPO_ADDRESS: &str = "192.168.56.1";
const REPO_PORT: u16 = 8642;

/// Why the e2e tests cannot run here, if they cannot.
fn missing_requirement() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the end-to-end tests need root (network namespaces, mounts, cgroups)".into());
    }
    for tool in [
        "systemd-nspawn",
        "debootstrap",
        "ruby",
        "ip",
        "nsenter",
        "ssh",
        "ssh-keygen",
        "flock",
        "mountpoint",
    ] {
        if which::which(tool).is_err() {
            return Some(format!(
                "{tool} is missing (tests/run installs what the end-to-end tests need)"
            ));
        }
    }
    for hierarchy in CGROUP_HIERARCHIES {
        let dir = Path::new("/sys/fs/cgroup").join(hierarchy);
        if !dir.join("cgroup.procs").exists() {
            return Some(format!(
                "no cgroup hierarchy at {}: the stand-in needs the cgroups v1 hybrid layout (systemd, unified, freezer, memory)",
                dir.display()
            ));
        }
    }
    None
}

/// DESIGN.md's default lab: every machine and its host-only address.
pub const DEFAULT_LAB: [(&str, &str); 10] = [
    ("dns0", "192.168.56.2"),
    ("etcd0", "192.168.56.10"),
    ("etcd1", "192.168.56.11"),
    ("etcd2", "192.168.56.12"),
    ("controller0", "192.168.56.20"),
    ("controller1", "192.168.56.21"),
    ("controller2", "192.168.56.22"),
    ("worker0", "192.168.56.30"),
    ("lb0", "192.168.56.51"),
    ("lb1", "192.168.56.52"),
];

/// Worker `index` of a lab with more workers than the default: its name and
/// address (the default lab's plan continued: worker1 is 192.168.56.31).
pub fn worker(index: u32) -> (String, String) {
    (
        format!("worker{index}"),
        format!("192.168.56.{}", 30 + index),
    )
}

/// Serializes e2e runs within one test binary: two 10-machine labs at once
/// would only compete for the same two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Guard {
    pub e2e: E2e,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for Guard {
    type Target = E2e;
    fn deref(&self) -> &E2e {
        &self.e2e
    }
}

impl E2e {
    /// `start_on` the stock Debian 12 box.
    pub fn start(host_address: &str) -> Option<Guard> {
        Self::start_on(DEBIAN_12, host_address)
    }

    /// Bakes (or reuses) the stock test box of Debian `release`, cleans the
    /// leftovers of killed runs, makes the hypervisor namespace with
    /// `host_address/24` on its bridge and serves the box's apt repository
    /// there. `None` after printing `SKIPPED: why` when this machine cannot
    /// run it; under CI that is a failure instead.
    pub fn start_on(release: &str, host_address: &str) -> Option<Guard> {
        if let Some(reason) = missing_requirement() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the end-to-end tests, but: {reason}"
            );
            eprintln!("SKIPPED: {reason}");
            return None;
        }
        let lock = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        assert_eq!(
            host_address, REPO_ADDRESS,
            "the test box's apt repository is at {REPO_ADDRESS}"
        );
        let box_dir = bake_box(release);
        wait_for_other_processes_runs();
        clean_stale_runs();
        let prefix = new_prefix();
        let run_dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir(&run_dir).expect("create the run directory");
        // Whose run this is: a later run cleans it only once this is gone.
        std::fs::write(run_dir.join("owner"), owner_tag(std::process::id())).unwrap();
        let mut e2e = E2e {
            prefix,
            run_dir,
            box_dir,
            repo_server: None,
        };
        std::fs::create_dir(e2e.lab_dir()).unwrap();
        let ns = e2e.hypervisor_ns();
        let bridge = e2e.bridge();
        run_ok("ip", &["netns", "add", &ns]);
        run_ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        run_ok("ip", &["-n", &ns, "link", "add", &bridge, "type", "bridge"]);
        run_ok(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{host_address}/24"),
                "dev",
                &bridge,
            ],
        );
        run_ok("ip", &["-n", &ns, "link", "set", &bridge, "up"]);
        e2e.repo_server = Some(e2e.serve_repository());
        Some(Guard { e2e, _lock: lock })
    }

    /// Serves the box's apt repository on the host-only network, from the
    /// hypervisor namespace, as a lab's package mirror would be: the only
    /// package source the machines have. Its access log is `repo.log`.
    // Every path that does not hand the server back kills and reaps it, or
    // panics in the test (which Drop then tears down): clippy cannot follow
    // a Child returned to its owner.
    #[allow(clippy::zombie_processes)]
    fn serve_repository(&self) -> std::process::Child {
        let repo = self.run_dir.join("repo");
        std::os::unix::fs::symlink(self.box_dir.join("repo"), &repo).unwrap();
        let log = std::fs::File::create(self.run_dir.join("repo.log")).unwrap();
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut server = self
            .in_hypervisor(python)
            .args([
                "-m",
                "http.server",
                &REPO_PORT.to_string(),
                "--bind",
                REPO_ADDRESS,
            ])
            .arg("--directory")
            .arg(&repo)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the repository's HTTP server");
        std::fs::write(self.run_dir.join("repo.pid"), server.id().to_string()).unwrap();
        let started = Instant::now();
        loop {
            let accepts = self
                .in_hypervisor("bash")
                .args([
                    "-c",
                    &format!("exec 3<>/dev/tcp/{REPO_ADDRESS}/{REPO_PORT}"),
                ])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if accepts {
                return server;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = server.kill();
                let _ = server.wait();
                panic!(
                    "the repository's HTTP server does not accept on {REPO_ADDRESS}:{REPO_PORT}: {}",
                    std::fs::read_to_string(self.run_dir.join("repo.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The packages the machines fetched from the repository, by file name.
    pub fn fetched_packages(&self) -> Vec<String> {
        std::fs::read_to_string(self.run_dir.join("repo.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let path = l.split("\"GET ").nth(1)?.split(' ').next()?;
                let name = path.rsplit('/').next()?;
                name.ends_with(".deb").then(|| name.to_string())
            })
            .collect()
    }

    /// Each check of `lab verify --json`'s document, by name: its status.
    pub fn verdicts(doc: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// `lab verify --json` run now: each check's status, by name.
    fn verify_now(&self) -> std::collections::BTreeMap<String, String> {
        let ran = self.kubelab_unchecked(&["lab", "verify", "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", ran.stdout, ran.stderr));
        Self::verdicts(&doc)
    }

    /// The lab survives a reboot: with the lab provisioned through etcd
    /// and the routes, `lab halt` then `lab up --until etcd` brings back
    /// a lab whose API endpoint accepts the moment `lab up` returns, where
    /// `lab verify` passes the checks it passed before, no step ran again,
    /// the pod routes are back and the hosts block is the same.
    pub fn survives_a_reboot(&self) {
        self.survives_a_reboot_from(self.verify_now());
    }

    /// [`Self::survives_a_reboot`], given the verdicts of a `lab verify`
    /// already run on the lab as it is now (one full run less).
    pub fn survives_a_reboot_from(&self, before: std::collections::BTreeMap<String, String>) {
        let routes = || {
            let mut all = std::collections::BTreeMap::new();
            for (name, address) in DEFAULT_LAB {
                let table = self.ssh_ok(address, "ip -4 route show root 10.200.0.0/16");
                all.insert(name, table);
            }
            all
        };
        let steps = || {
            let state: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(self.lab_dir().join(".kubelab/state.json")).unwrap(),
            )
            .unwrap();
            state["steps"].clone()
        };
        for name in ["machines", "dns", "etcd", "lb-failover", "certificates"] {
            assert_eq!(before[name], "passed", "before the halt: {before:?}");
        }
        let routes_before = routes();
        assert!(
            routes_before["dns0"].contains("10.200.0.0/24 via 192.168.56.30"),
            "{routes_before:?}"
        );
        let steps_before = steps();
        let hosts_before = std::fs::read_to_string(self.hosts_file()).unwrap();

        self.kubelab(&["lab", "halt"]);
        let ran = self.kubelab(&["lab", "up", "--until", "etcd"]);
        let steps_after = steps();
        assert!(
            steps_after == steps_before,
            "steps ran again after the reboot; dns0's dns step before: {} after: {}\n{}",
            steps_before["dns0"]["dns"],
            steps_after["dns0"]["dns"],
            ran.stderr
        );
        // The API endpoint answers the moment `lab up` is back: no wait here.
        let accepts = self
            .in_hypervisor("timeout")
            .args(["3", "bash", "-c", "exec 3<>/dev/tcp/192.168.56.50/6443"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            accepts,
            "the VIP does not accept right after `lab up`: {}",
            ran.stderr
        );
        assert!(
            ran.stderr
                .contains("every selected step is done already; nothing to do"),
            "{}",
            ran.stderr
        );
        assert!(ran.stderr.contains("accepts connections"), "{}", ran.stderr);

        let after = self.verify_now();
        assert_eq!(after, before, "the checks after the reboot differ");
        assert_eq!(routes(), routes_before, "the pod routes after the reboot");
        assert_eq!(
            std::fs::read_to_string(self.hosts_file()).unwrap(),
            hosts_before
        );
    }

    /// Each of `packages` was fetched as a .deb from the lab network's
    /// repository: it was installed during the test, not baked in.
    pub fn assert_fetched_from_repository(&self, packages: &[&str]) {
        let fetched = self.fetched_packages();
        for package in packages {
            assert!(
                fetched
                    .iter()
                    .any(|f| f.starts_with(&format!("{package}_"))),
                "no {package}_*.deb was fetched from the lab's repository: {fetched:?}"
            );
        }
    }

    /// The Debian release of the box the machines boot from.
    pub fn release(&self) -> String {
        std::fs::read_to_string(self.box_dir.join("release"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub fn lab_dir(&self) -> PathBuf {
        self.run_dir.join("lab")
    }

    /// The file standing in for the hypervisor's /etc/hosts.
    pub fn hosts_file(&self) -> PathBuf {
        self.run_dir.join("hosts")
    }

    pub fn hypervisor_ns(&self) -> String {
        format!("{}-hv", self.prefix)
    }

    pub fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    pub fn ssh_key(&self) -> PathBuf {
        self.box_dir.join("vagrant_key")
    }

    /// A command run in the hypervisor namespace. `nsenter --net` changes only
    /// the network namespace: the stand-in must see the host's cgroupfs and
    /// mount the overlays where nspawn finds them (`ip netns exec` would give
    /// it a private mount namespace with neither).
    pub fn in_hypervisor(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.hypervisor_ns()))
            .arg("--")
            .arg(program)
            .stdin(Stdio::null());
        cmd
    }

    /// The real kubelab in the lab directory, in the hypervisor namespace,
    /// with the e2e stand-ins first on PATH and a download cache of the run's
    /// own (the tests never download anything).
    pub fn kubelab_command(&self, args: &[&str]) -> Command {
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e-standin");
        let path = format!(
            "{}:{}",
            standin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = self.in_hypervisor(super::kubelab_bin());
        cmd.args(args)
            .current_dir(self.lab_dir())
            .env_remove("KUBELAB_LAB")
            .env_remove("XDG_CACHE_HOME")
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .env("KUBELAB_CACHE_DIR", self.run_dir.join("cache"))
            .env("KUBELAB_HOSTS_FILE", self.hosts_file())
            .env("KUBECONFIG", self.run_dir.join("kube/config"))
            .env("KUBELAB_REGISTRY", self.run_dir.join("labs.json"))
            .env("KUBELAB_HOST_MEMORY_MB", "16384")
            .env("KUBELAB_E2E_PREFIX", &self.prefix)
            .env("KUBELAB_E2E_DIR", &self.run_dir)
            .env("KUBELAB_E2E_BOX", &self.box_dir);
        cmd
    }

    /// Runs the real kubelab (see `kubelab_command`).
    pub fn kubelab_unchecked(&self, args: &[&str]) -> Ran {
        self.run_kubelab(self.kubelab_command(args), &args.join(" "))
    }

    /// Runs a `kubelab_command`, saying how long it took.
    fn run_kubelab(&self, mut cmd: Command, shown: &str) -> Ran {
        let started = Instant::now();
        let output = cmd.output().expect("run kubelab under nsenter");
        eprintln!(
            "e2e: kubelab {shown} took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ran {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            status: output.status.code().unwrap_or(-1),
            dir: self.lab_dir(),
        }
    }

    /// Runs kubelab and asserts it exited 0.
    pub fn kubelab(&self, args: &[&str]) -> Ran {
        let ran = self.kubelab_unchecked(args);
        assert_eq!(
            ran.status,
            0,
            "kubelab {args:?} exited {}\n--- stdout\n{}\n--- stderr\n{}{}",
            ran.status,
            ran.stdout,
            ran.stderr,
            self.consoles()
        );
        ran
    }

    /// `ssh vagrant@ADDRESS COMMAND` from the hypervisor namespace, with the
    /// box's test key, as a user of the lab would reach a VM.
    pub fn ssh_command(&self, address: &str, command: &str) -> Command {
        let mut ssh = self.in_hypervisor("ssh");
        ssh.arg("-i")
            .arg(self.ssh_key())
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("vagrant@{address}"))
            .arg(command);
        ssh
    }

    /// Runs `ssh_command` to completion.
    pub fn ssh(&self, address: &str, command: &str) -> Output {
        self.ssh_command(address, command)
            .output()
            .expect("run ssh")
    }

    /// Like `ssh`, asserting success; returns stdout.
    pub fn ssh_ok(&self, address: &str, command: &str) -> String {
        let out = self.ssh(address, command);
        assert!(
            out.status.success(),
            "ssh vagrant@{address} {command:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Boots the default lab's machines as existing servers for a
    /// `provider: static` lab: the test runs the stand-in's machine code
    /// itself (the same systemd-nspawn machines on the test box), from a
    /// Vagrantfile in a directory kubelab never sees; kubelab then finds
    /// them only through lab.yaml's hosts. Use `kubelab_without_vagrant`.
    /// `dig +short ARGS` against dns0, on dns0 (the hypervisor has no dig).
    pub fn dig(&self, args: &[&str]) -> String {
        self.ssh_ok(
            "192.168.56.2",
            &format!(
                "dig +short +time=2 +tries=2 @192.168.56.2 {}",
                args.join(" ")
            ),
        )
        .trim()
        .to_string()
    }

    pub fn boot_servers(&self) {
        self.boot_servers_with_workers(1);
    }

    /// `boot_servers` with `workers` workers: DEFAULT_LAB's machines and
    /// worker1.. at 192.168.56.31.. (see `worker`).
    pub fn boot_servers_with_workers(&self, workers: u32) {
        let servers = self.run_dir.join("servers");
        std::fs::create_dir_all(&servers).unwrap();
        // The machines' definitions: the default lab's, rendered by kubelab
        // as for VirtualBox (names, addresses, memory).
        std::fs::write(
            servers.join("lab.yaml"),
            format!("nodes:\n  worker:\n    count: {workers}\n"),
        )
        .unwrap();
        let render = self.run_dir.join("servers-render");
        let out = Command::new(super::kubelab_bin())
            .args(["lab", "render", "--out"])
            .arg(&render)
            .current_dir(&servers)
            .env("KUBELAB_CACHE_DIR", self.run_dir.join("cache"))
            .env("KUBELAB_HOSTS_FILE", self.run_dir.join("servers-hosts"))
            .env_remove("KUBELAB_LAB")
            .stdin(Stdio::null())
            .output()
            .expect("render the servers' Vagrantfile");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::copy(render.join("host/Vagrantfile"), servers.join("Vagrantfile")).unwrap();
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e-standin/vagrant");
        let boot = |name: &str| {
            self.in_hypervisor(&standin)
                .args(["up", name])
                .env("VAGRANT_CWD", &servers)
                .env("KUBELAB_E2E_PREFIX", &self.prefix)
                .env("KUBELAB_E2E_DIR", &self.run_dir)
                .env("KUBELAB_E2E_BOX", &self.box_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a server")
        };
        let started = Instant::now();
        let extra: Vec<(String, String)> = (1..workers).map(worker).collect();
        let children: Vec<_> = DEFAULT_LAB
            .iter()
            .map(|(name, _)| name.to_string())
            .chain(extra.iter().map(|(name, _)| name.clone()))
            .map(|name| {
                let child = boot(&name);
                (name, child)
            })
            .collect();
        let count = children.len();
        for (name, child) in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "server {name} did not boot: {}{}",
                String::from_utf8_lossy(&out.stderr),
                self.consoles()
            );
        }
        eprintln!(
            "e2e: {count} servers booted in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    /// The real kubelab in the hypervisor namespace with no stand-in on
    /// PATH: a `vagrant` and a `VBoxManage` that only record they were called
    /// come first (see `vagrant_calls`), so a static lab that reached for
    /// Vagrant would show.
    pub fn kubelab_without_vagrant(&self, args: &[&str]) -> Ran {
        let trap = self.run_dir.join("no-vagrant");
        std::fs::create_dir_all(&trap).unwrap();
        for tool in ["vagrant", "VBoxManage"] {
            let path = trap.join(tool);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"{tool} $*\" >>{}\nexit 1\n",
                    self.run_dir.join("vagrant-calls").display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = format!(
            "{}:{}",
            trap.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = self.kubelab_command(args);
        cmd.env("PATH", path);
        self.run_kubelab(cmd, &format!("{} (no vagrant)", args.join(" ")))
    }

    /// Every call `kubelab_without_vagrant`'s trap recorded.
    pub fn vagrant_calls(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("vagrant-calls")).unwrap_or_default()
    }

    /// The tail of every machine's console, for failure messages.
    fn consoles(&self) -> String {
        let mut text = String::new();
        for dir in list_dir(&self.run_dir.join("vms")) {
            let console = std::fs::read_to_string(dir.join("console.log")).unwrap_or_default();
            let tail: Vec<&str> = console.lines().rev().take(8).collect();
            text.push_str(&format!("\n--- console of {}\n", dir.display()));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// What the machines left on this host beyond the fixture's own namespace
    /// and bridge: processes, mounts, namespaces, veths, cgroups, hosts block.
    /// One line each; empty when a destroy was complete. A veth alone may
    /// outlive its machine's namespace for a while: the kernel frees a
    /// namespace's devices after its last process, asynchronously and one
    /// namespace at a time, and a worker's netfilter state (its pod-egress
    /// rule, conntrack) makes that slow; seen over 10 s after a destroy of
    /// 12 machines. That is waited for, up to 60 s, and reported if it stays.
    pub fn leftovers(&self) -> Vec<String> {
        let started = Instant::now();
        loop {
            let found = self.leftovers_now();
            let only_links = !found.is_empty() && found.iter().all(|l| l.starts_with("link "));
            if !only_links || started.elapsed() > Duration::from_secs(60) {
                return found;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn leftovers_now(&self) -> Vec<String> {
        let mut found = Vec::new();
        let vms = format!("{}/vms/", self.run_dir.display());
        for pid in all_pids() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&vms) {
                found.push(format!("process {pid}: {cmdline}"));
            }
        }
        for mount in mounts_under(&self.run_dir) {
            found.push(format!("mount {mount}"));
        }
        for ns in netns_with_prefix(&self.prefix) {
            if ns != self.hypervisor_ns() {
                found.push(format!("network namespace {ns}"));
            }
        }
        let links = run_ok("ip", &["-n", &self.hypervisor_ns(), "-o", "link", "show"]);
        for line in links.lines() {
            let name = line.split(": ").nth(1).unwrap_or_default();
            let name = name.split('@').next().unwrap_or_default();
            if name != "lo" && name != self.bridge() {
                found.push(format!("link {name} in {}", self.hypervisor_ns()));
            }
        }
        for cgroup in cgroups_with_prefix(&self.prefix) {
            found.push(format!("cgroup {}", cgroup.display()));
        }
        let hosts = std::fs::read_to_string(self.hosts_file()).unwrap_or_default();
        if hosts.contains("# BEGIN kubelab") {
            found.push(format!(
                "a kubelab block in {}",
                self.hosts_file().display()
            ));
        }
        if self.lab_dir().join(".kubelab").exists() {
            found.push(format!("{}", self.lab_dir().join(".kubelab").display()));
        }
        found
    }
}

impl Drop for E2e {
    fn drop(&mut self) {
        teardown(&self.prefix);
        // teardown ended it by its PID; reap it.
        if let Some(mut server) = self.repo_server.take() {
            let _ = server.wait();
        }
    }
}

/// The baked stock box of `release` (baked now if it is not cached), or
/// `None` after printing `SKIPPED: why` where the e2e tests cannot run
/// (under CI that is a failure instead).
pub fn baked_box(release: &str) -> Option<PathBuf> {
    if let Some(reason) = missing_requirement() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the end-to-end tests, but: {reason}"
        );
        eprintln!("SKIPPED: {reason}");
        return None;
    }
    Some(bake_box(release))
}

/// Runs the box recipe for `release` (a no-op when the box is cached) and
/// returns its directory. Its progress goes to the test's stderr.
fn bake_box(release: &str) -> PathBuf {
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("boxes/test-debian/bake");
    let started = Instant::now();
    let out = Command::new(&recipe)
        .arg(release)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run boxes/test-debian/bake");
    assert!(out.status.success(), "{} failed", recipe.display());
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    eprintln!(
        "e2e: test box {} ready in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        dir.join("rootfs/usr/lib/systemd/systemd").exists()
            || dir.join("rootfs/lib/systemd/systemd").exists()
    );
    assert!(
        dir.join("repo/Packages").exists(),
        "{} has no repository",
        dir.display()
    );
    dir
}

fn new_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut seed = nanos ^ (std::process::id() << 16);
    loop {
        let prefix = format!("{PREFIX_STEM}{:04x}", seed & 0xffff);
        let taken = std::env::temp_dir().join(&prefix).exists()
            || !netns_with_prefix(&prefix).is_empty()
            || !cgroups_with_prefix(&prefix).is_empty();
        if !taken {
            return prefix;
        }
        seed = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    }
}

/// A process's PID and start time: a PID alone may be reused.
fn owner_tag(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Field 22 (starttime), counted after the parenthesised command name.
    let start = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .unwrap_or("?");
    format!("{pid} {start}")
}

fn is_prefix_of_a_run(name: &str) -> Option<String> {
    let candidate = name.get(..PREFIX_STEM.len() + 4)?;
    let hex = candidate.strip_prefix(PREFIX_STEM)?;
    hex.chars()
        .all(|c| c.is_ascii_hexdigit())
        .then(|| candidate.to_string())
}

/// The runs of other live processes (another test binary, another checkout).
fn runs_of_other_live_processes() -> Vec<String> {
    list_dir(&std::env::temp_dir())
        .iter()
        .filter_map(|path| file_name(path).and_then(|n| is_prefix_of_a_run(&n)))
        .filter(|prefix| {
            let owner = std::fs::read_to_string(std::env::temp_dir().join(prefix).join("owner"))
                .unwrap_or_default();
            owner
                .split_whitespace()
                .next()
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| pid != std::process::id() && owner_tag(pid) == owner.trim())
        })
        .collect()
}

/// Waits while another process runs a lab: two 10-machine labs at once run
/// out of the host's inotify instances (128 per user by default; a booting
/// machine's systemd fails with "Too many open files") and share two cores.
fn wait_for_other_processes_runs() {
    const WAIT: Duration = Duration::from_secs(900);
    let started = Instant::now();
    let mut told = false;
    loop {
        let others = runs_of_other_live_processes();
        if others.is_empty() {
            return;
        }
        if !told {
            eprintln!(
                "e2e: waiting (up to {} s) for another process's run to end: {}",
                WAIT.as_secs(),
                others.join(", ")
            );
            told = true;
        }
        assert!(
            started.elapsed() < WAIT,
            "another process's end-to-end run ({}) still holds its machines after {} s",
            others.join(", "),
            WAIT.as_secs()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Tears down every run whose owner process is gone.
fn clean_stale_runs() {
    let mut prefixes = std::collections::BTreeSet::new();
    for path in list_dir(&std::env::temp_dir()) {
        prefixes.extend(file_name(&path).and_then(|n| is_prefix_of_a_run(&n)));
    }
    for ns in netns_with_prefix(PREFIX_STEM) {
        prefixes.extend(is_prefix_of_a_run(&ns));
    }
    for cgroup in cgroups_with_prefix(PREFIX_STEM) {
        prefixes.extend(file_name(&cgroup).and_then(|n| is_prefix_of_a_run(&n)));
    }
    for prefix in prefixes {
        let owner = std::fs::read_to_string(std::env::temp_dir().join(&prefix).join("owner"))
            .unwrap_or_default();
        let alive = owner
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| owner_tag(pid) == owner.trim());
        if !alive {
            eprintln!("e2e: cleaning the leftovers of a killed run: {prefix}");
            teardown(&prefix);
        }
    }
}

/// Stops every machine of the run (by the PIDs the stand-in started, then
/// whatever is left in the run's cgroups), unmounts its overlays, deletes its
/// namespaces (their veths and the bridge go with them) and cgroups, removes
/// its directory. Safe to run twice and on a half-made run.
pub fn teardown(prefix: &str) {
    let run_dir = std::env::temp_dir().join(prefix);
    // The repository's server, by the PID the fixture started (its command
    // line names the run's directory, so a reused PID is never taken for it).
    if let Some(pid) = std::fs::read_to_string(run_dir.join("repo.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&format!("{}/repo", run_dir.display())) {
            signal(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                signal(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    // A paused machine cannot act on a signal: thaw first.
    for cgroup in cgroups_with_prefix(prefix) {
        let state = cgroup.join("freezer.state");
        if state.exists() {
            let _ = std::fs::write(&state, "THAWED");
        }
    }
    let vms = format!("{}/vms/", run_dir.display());
    let launched: Vec<i32> = list_dir(&run_dir.join("vms"))
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("pid")).ok())
        .filter_map(|p| p.trim().parse().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&vms)
        })
        .collect();
    // nspawn turns SIGTERM into an orderly poweroff of the machine.
    for &pid in &launched {
        signal(pid, nix::sys::signal::Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && launched.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<i32> = cgroups_with_prefix(prefix)
            .iter()
            .flat_map(|cg| pids_in_cgroup(cg))
            .chain(launched.iter().copied().filter(|&p| alive(p)))
            .collect();
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("e2e: processes of {prefix} survived SIGKILL: {left:?}");
            break;
        }
        for pid in left {
            signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut mounts = mounts_under(&run_dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in &mounts {
        if Command::new("umount")
            .arg(mount)
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            let _ = Command::new("umount").arg("-l").arg(mount).status();
        }
    }
    for ns in netns_with_prefix(prefix) {
        let _ = Command::new("ip").args(["netns", "delete", &ns]).status();
    }
    for cgroup in cgroups_with_prefix(prefix) {
        remove_cgroup(&cgroup);
    }
    if mounts_under(&run_dir).is_empty() {
        let _ = std::fs::remove_dir_all(&run_dir);
    } else {
        eprintln!(
            "e2e: not removing {}: something is still mounted under it",
            run_dir.display()
        );
    }
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn remove_cgroup(dir: &Path) {
    for child in list_dir(dir) {
        if child.is_dir() {
            remove_cgroup(&child);
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn pids_in_cgroup(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for child in list_dir(dir) {
        if child.is_dir() {
            pids.extend(pids_in_cgroup(&child));
        }
    }
    pids
}

pub fn cgroups_with_prefix(prefix: &str) -> Vec<PathBuf> {
    CGROUP_HIERARCHIES
        .iter()
        .flat_map(|h| list_dir(&Path::new("/sys/fs/cgroup").join(h)))
        .filter(|p| p.is_dir() && file_name(p).is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    list_dir(Path::new("/run/netns"))
        .iter()
        .filter_map(|p| file_name(p))
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Mount points at or under `dir`, from this process's mount table.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.display().to_string();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

fn all_pids() -> Vec<i32> {
    list_dir(Path::new("/proc"))
        .iter()
        .filter_map(|p| file_name(p)?.parse().ok())
        .collect()
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn file_name(path: &Path) -> Option<String> {
    Some(path.file_name()?.to_string_lossy().into_owned())
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
