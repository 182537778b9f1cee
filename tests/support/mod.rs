//! Test harness in the style of casey/just's `Test` builder: a temp lab
//! directory, files in it, stand-in programs on PATH, the real kubelab binary.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod e2e;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    expected_status: i32,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub event: String,
    pub ms: u64,
    pub command: String,
}

pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
    pub dir: PathBuf,
}

/// Ctrl-C as a terminal sends it (SIGINT to kubelab alone), then kubelab's
/// exit status and stderr, and when the signal went.
pub fn interrupt(
    child: std::process::Child,
) -> (std::process::ExitStatus, String, std::time::Instant) {
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        sent,
    )
}

pub fn kubelab_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubelab"))
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    pub fn new() -> Test {
        let dir = tempfile::Builder::new()
            .prefix("kubelab-test-")
            .tempdir()
            .expect("temp dir");
        let mut env = BTreeMap::new();
        // Never the real /etc/hosts, never the real cache, a fixed RAM size.
        env.insert(
            "KUBELAB_HOSTS_FILE".into(),
            dir.path().join("etc-hosts").display().to_string(),
        );
        env.insert(
            "KUBELAB_CACHE_DIR".into(),
            dir.path().join("cache").display().to_string(),
        );
        env.insert("KUBELAB_HOST_MEMORY_MB".into(), "16384".into());
        // Never the user's own registry of labs.
        env.insert(
            "KUBELAB_REGISTRY".into(),
            dir.path().join("labs.json").display().to_string(),
        );
        // Never the user's own kubeconfig (merge, and destroy's clean-up).
        env.insert(
            "KUBECONFIG".into(),
            dir.path().join("kube/config").display().to_string(),
        );
        // Never this machine's modules, kernel or architecture: a recorded
        // plain amd64 Linux host (tests/fixtures/host/linux-amd64).
        env.insert(
            "KUBELAB_HOST_FACTS".into(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/host/linux-amd64")
                .display()
                .to_string(),
        );
        env.insert("NO_COLOR".into(), "1".into());
        Test {
            dir,
            args: Vec::new(),
            env,
            expected_status: 0,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn write(self, rel: &str, contents: &str) -> Self {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, contents).unwrap();
        self
    }

    pub fn executable(self, rel: &str, contents: &str) -> Self {
        let test = self.write(rel, contents);
        let path = test.dir.path().join(rel);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        test
    }

    /// The same lab directory and environment, new arguments, expecting 0.
    pub fn then(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self.expected_status = 0;
        self
    }

    pub fn status(mut self, code: i32) -> Self {
        self.expected_status = code;
        self
    }

    /// Runs kubelab with the lab directory as working directory and asserts
    /// the exit status.
    pub fn run(&self) -> Ran {
        let ran = self.run_unchecked();
        assert_eq!(
            ran.status, self.expected_status,
            "kubelab {:?} exited {} (expected {})\n--- stdout\n{}\n--- stderr\n{}",
            self.args, ran.status, self.expected_status, ran.stdout, ran.stderr
        );
        ran
    }

    /// Puts the stand-in vagrant, VBoxManage and ssh of tests/standin first on
    /// PATH; their calls are logged to `calls.log` in the lab directory.
    pub fn standins(self) -> Self {
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin");
        let path = format!(
            "{}:{}",
            standin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = self.dir.path().join("calls.log").display().to_string();
        self.env("PATH", &path).env("STANDIN_LOG", &log)
    }

    /// Every stand-in call so far: (start|end|interrupted, ms, command line).
    pub fn calls(&self) -> Vec<Call> {
        let text = std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ' ');
                Some(Call {
                    event: parts.next()?.to_string(),
                    ms: parts.next()?.parse().ok()?,
                    command: parts.next()?.to_string(),
                })
            })
            .collect()
    }

    /// The command lines that started, in order.
    pub fn started(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.event == "start")
            .map(|c| c.command)
            .collect()
    }

    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("calls.log"));
    }

    /// Starts kubelab without waiting (for interrupt tests).
    pub fn spawn(&self) -> std::process::Child {
        self.command()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn kubelab")
    }

    /// Starts kubelab with other arguments in the same directory and
    /// environment, without waiting (for concurrency tests).
    pub fn spawn_args(&self, args: &[&str]) -> std::process::Child {
        self.command_with(args.iter().map(|s| s.to_string()).collect())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn kubelab")
    }

    fn command(&self) -> Command {
        self.command_with(self.args.clone())
    }

    fn command_with(&self, args: Vec<String>) -> Command {
        let mut cmd = Command::new(kubelab_bin());
        cmd.args(&args)
            .current_dir(self.dir.path())
            .env_remove("KUBELAB_LAB")
            .env_remove("XDG_CACHE_HOME");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `wrapper... kubelab args...` (for `unshare`, `setpriv`), asserting
    /// the exit status like `run`.
    pub fn run_wrapped(&self, wrapper: &[&str]) -> Ran {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(kubelab_bin())
            .args(&self.args)
            .current_dir(self.dir.path())
            .env_remove("KUBELAB_LAB")
            .env_remove("XDG_CACHE_HOME")
            .stdin(std::process::Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let output = cmd.output().expect("run wrapped kubelab");
        let ran = Ran {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            status: output.status.code().unwrap_or(-1),
            dir: self.dir.path().to_path_buf(),
        };
        assert_eq!(
            ran.status, self.expected_status,
            "{wrapper:?} kubelab {:?} exited {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, ran.status, ran.stdout, ran.stderr
        );
        ran
    }

    pub fn run_unchecked(&self) -> Ran {
        let mut cmd = self.command();
        let output: Output = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run kubelab");
        Ran {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            status: output.status.code().unwrap_or(-1),
            dir: self.dir.path().to_path_buf(),
        }
    }
}

/// The hosts of [`Test::static_lab`]: the default topology, as the
/// end-to-end machines have it.
pub use e2e::DEFAULT_LAB as STATIC_HOSTS;

const FAKE_SSH: &str = r#"#!/usr/bin/env bash
echo "$*" >>"${FAKE_SSH_LOG:?}"
known='' alias='' dest=''
while [ $# -gt 0 ]; do
  case "$1" in
    -o) case "$2" in
          UserKnownHostsFile=*) known=${2#*=} ;;
          HostKeyAlias=*) alias=${2#*=} ;;
        esac
        shift 2 ;;
    -p|-i) shift 2 ;;
    -O) exit 0 ;; # closing a master connection: nothing to close
    --) break ;;
    *) dest=$1; shift ;;
  esac
done
host=${dest#*@}
if [ "$host" = "${FAKE_SSH_HANG:-}" ]; then
  echo $$ >"${FAKE_SSH_HANG_PID:?}"
  exec sleep 60
fi
if [ "$host" = 192.168.56.30 ]; then
  echo "ssh: connect to host 192.168.56.30 port 22: Connection refused" >&2
  exit 255
fi
key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOf$host"
mkdir -p "$(dirname "$known")"
if grep -q "^$alias " "$known" 2>/dev/null; then
  if ! grep -qxF "$alias $key" "$known"; then
    echo "Host key verification failed." >&2
    exit 255
  fi
else
  echo "$alias $key" >>"$known"
fi
if [ "$host" = 192.168.56.52 ]; then
  echo "kubelab: sudo needs a password" >&2
  exit 3
fi
echo "machine-id-of-$host"
"#;

impl Test {
    /// The default topology as a `provider: static` lab named `t`: lab.yaml,
    /// its key (`id`, 0600) and a fake `ssh` first on PATH (before the
    /// stand-ins, whose `vagrant` and `VBoxManage` log any call), so no real
    /// network is touched. The fake logs each call to `ssh.log` and plays the
    /// hosts: worker0 (192.168.56.30) refuses the connection, lb1
    /// (192.168.56.52) has no passwordless sudo, the others answer with a
    /// machine-id. It records each host key in the `UserKnownHostsFile` it is
    /// given (creating its folder) and, like `StrictHostKeyChecking=accept-new`,
    /// refuses a host whose recorded key is another. With `FAKE_SSH_HANG`
    /// set to an address, the call to it writes its pid to
    /// `FAKE_SSH_HANG_PID` and hangs.
    pub fn static_lab(self) -> Self {
        let mut yaml = String::from(
            "name: t\nprovider: static\nnetwork:\n  dns_forwarders: [192.168.56.1]\nhosts:\n",
        );
        for (name, address) in STATIC_HOSTS {
            let role = name.trim_end_matches(|c: char| c.is_ascii_digit());
            yaml.push_str(&format!(
                "  - {{name: {name}, role: {role}, address: {address}, ssh_user: admin, ssh_key: id}}\n"
            ));
        }
        let test = self
            .write("lab.yaml", &yaml)
            .write("id", "not a real key: the fake ssh never reads it\n")
            .executable("fake-bin/ssh", FAKE_SSH);
        std::fs::set_permissions(
            test.path().join("id"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin");
        let path = format!(
            "{}:{}:{}",
            test.path().join("fake-bin").display(),
            standin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let ssh_log = test.path().join("ssh.log").display().to_string();
        let calls = test.path().join("calls.log").display().to_string();
        test.env("PATH", &path)
            .env("FAKE_SSH_LOG", &ssh_log)
            .env("STANDIN_LOG", &calls)
    }
}

/// Replaces the temp directory in output with `[LAB]` for snapshots.
pub fn redact(text: &str, dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    text.replace(&canonical.display().to_string(), "[LAB]")
        .replace(&dir.display().to_string(), "[LAB]")
}
