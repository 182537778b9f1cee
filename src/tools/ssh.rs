//! The system `ssh`: interactive sessions for `kubelab lab ssh`, and the
//! provisioning transport: one ControlMaster per node, so each step costs a
//! channel on an open connection instead of a handshake (and never a Ruby
//! start, as `vagrant ssh -c` would). Host keys are pinned per lab and node
//! in `.kubelab/known_hosts` on first contact and checked after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Captured, Invocation, Runner, find};
use crate::error::{Error, Result};

pub struct Ssh {
    bin: PathBuf,
}

impl Ssh {
    pub fn find() -> Result<Ssh> {
        Ok(Ssh {
            bin: find("ssh", "log in to the lab's VMs")?,
        })
    }

    /// Runs ssh with the terminal attached and returns its exit code.
    pub fn interactive(&self, config: &Path, node: &str, command: &[String]) -> Result<i32> {
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.arg("-F").arg(config);
        if !command.is_empty() {
            // Keep the remote command's own quoting: one argument per word.
            cmd.arg(node).arg("--").args(command);
        } else {
            cmd.arg(node);
        }
        let status = cmd.status().map_err(|source| Error::CommandStart {
            purpose: format!("log in to {node}"),
            command: format!("ssh -F {} {node}", config.display()),
            source,
        })?;
        Ok(status.code().unwrap_or(255))
    }
}

impl Ssh {
    /// `ssh ARGS... DESTINATION [-- COMMAND]` with the terminal attached:
    /// a static host, reached as lab.yaml says.
    pub fn interactive_target(
        &self,
        target: &SshTarget,
        known_hosts: &Path,
        host_key_alias: &str,
        command: &[String],
    ) -> Result<i32> {
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .arg("-o")
            .arg(format!("HostKeyAlias={host_key_alias}"))
            .arg("-o")
            .arg("StrictHostKeyChecking=accept-new");
        if let Some(port) = target.port {
            cmd.arg("-p").arg(port.to_string());
        }
        for identity in &target.identity_files {
            cmd.arg("-o")
                .arg("IdentitiesOnly=yes")
                .arg("-i")
                .arg(identity);
        }
        cmd.arg(match &target.user {
            Some(user) => format!("{user}@{}", target.hostname),
            None => target.hostname.clone(),
        });
        if !command.is_empty() {
            cmd.arg("--").args(command);
        }
        let status = cmd.status().map_err(|source| Error::CommandStart {
            purpose: format!("log in to {}", target.host),
            command: format!("ssh {}", target.describe()),
            source,
        })?;
        Ok(status.code().unwrap_or(255))
    }
}

/// How to reach one node: a `Host` block of `vagrant ssh-config`, or a
/// static host of lab.yaml (whose port and user may be left to the user's
/// ssh_config when it names an alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub hostname: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_files: Vec<PathBuf>,
}

impl SshTarget {
    /// `user@host:port` as a person would type it, for messages.
    pub fn describe(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let port = self.port.map(|p| format!(" port {p}")).unwrap_or_default();
        format!("{user}{}{port}", self.hostname)
    }
}

/// Parses `vagrant ssh-config` output into one target per `Host`.
pub fn parse_ssh_config(text: &str) -> BTreeMap<String, SshTarget> {
    let mut out = BTreeMap::new();
    let mut current: Option<SshTarget> = None;
    for line in text.lines() {
        let line = line.trim();
        let Some((key, value)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match key.to_ascii_lowercase().as_str() {
            "host" => {
                if let Some(t) = current.take() {
                    out.insert(t.host.clone(), t);
                }
                current = Some(SshTarget {
                    host: value.to_string(),
                    hostname: value.to_string(),
                    port: Some(22),
                    user: Some("vagrant".to_string()),
                    identity_files: Vec::new(),
                });
            }
            "hostname" => {
                if let Some(t) = current.as_mut() {
                    t.hostname = value.to_string();
                }
            }
            "port" => {
                if let Some(t) = current.as_mut() {
                    t.port = Some(value.parse().unwrap_or(22));
                }
            }
            "user" => {
                if let Some(t) = current.as_mut() {
                    t.user = Some(value.to_string());
                }
            }
            "identityfile" => {
                if let Some(t) = current.as_mut() {
                    t.identity_files.push(PathBuf::from(value));
                }
            }
            _ => {}
        }
    }
    if let Some(t) = current.take() {
        out.insert(t.host.clone(), t);
    }
    out
}

/// Multiplexed SSH to the nodes of one lab.
pub struct Transport {
    bin: PathBuf,
    control_dir: PathBuf,
    known_hosts: PathBuf,
    lab: String,
    targets: BTreeMap<String, SshTarget>,
    runner: Runner,
}

impl Transport {
    pub fn new(
        lab: &str,
        state_dir: &Path,
        targets: BTreeMap<String, SshTarget>,
        runner: &Runner,
    ) -> Result<Transport> {
        let bin = find("ssh", "provision the lab's VMs")?;
        // Socket paths are limited to 108 bytes: keep them in a short,
        // private per-user directory, named by ssh's own %C hash. %C covers
        // only host, port and user, and two labs can have the same addresses
        // (in separate network namespaces, or one destroyed and made again):
        // a per-lab subdirectory keeps each lab on its own masters.
        let uid = nix::unistd::Uid::effective();
        let user_dir = std::env::temp_dir().join(format!("kubelab-{uid}"));
        use sha2::Digest;
        let lab_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        let digest = sha2::Sha256::digest(lab_dir.as_os_str().as_encoded_bytes());
        let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        let control_dir = user_dir.join(tag);
        use std::os::unix::fs::PermissionsExt;
        for dir in [&user_dir, &control_dir] {
            fs_err::create_dir_all(dir)?;
            fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Transport {
            bin,
            control_dir,
            known_hosts: state_dir.join("known_hosts"),
            lab: lab.to_string(),
            targets,
            runner: runner.clone(),
        })
    }

    /// The name a node's host key is recorded under: per lab and node, so two
    /// labs (or a VM behind a forwarded 127.0.0.1 port) never share an entry.
    pub fn host_key_alias(&self, node: &str) -> String {
        format!("kubelab-{}-{node}", self.lab)
    }

    fn base(&self, node: &str, purpose: String) -> Result<Invocation> {
        let target = self.targets.get(node).ok_or_else(|| {
            Error::other(
                format!("no SSH settings for {node}"),
                "run `kubelab lab up` so the VM exists and Vagrant reports its SSH settings",
            )
        })?;
        let mut inv = Invocation::new(&self.bin, "ssh", purpose).args([
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=300",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "StrictHostKeyChecking=accept-new",
            // Debian's ssh_config hashes known_hosts entries; kubelab must
            // find a node's entry by its alias to forget it.
            "-o",
            "HashKnownHosts=no",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "IdentitiesOnly=yes",
        ]);
        inv = inv
            .arg("-o")
            .arg(format!("ControlPath={}/%C", self.control_dir.display()))
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-o")
            .arg(format!("HostKeyAlias={}", self.host_key_alias(node)));
        if let Some(port) = target.port {
            inv = inv.arg("-p").arg(port.to_string());
        }
        for identity in &target.identity_files {
            inv = inv.arg("-i").arg(identity);
        }
        Ok(inv.arg(match &target.user {
            Some(user) => format!("{user}@{}", target.hostname),
            None => target.hostname.clone(),
        }))
    }

    /// Runs `command` (a shell line) on `node`, optionally feeding `stdin`.
    pub async fn run(
        &self,
        node: &str,
        command: &str,
        stdin: Option<Arc<dyn super::Feed>>,
        purpose: String,
        log: &Path,
    ) -> Result<Captured> {
        let mut inv = self
            .base(node, purpose)?
            .arg("--")
            .arg(command)
            .shown_as(format!("ssh {node} -- {command}"))
            .log(log.to_path_buf());
        if let Some(feed) = stdin {
            inv = inv.stdin(feed);
        }
        self.runner.run(inv).await
    }

    /// Runs `command` on `node` and returns its exit status with the
    /// output, leaving the judgement to the caller (255 is ssh's own failure).
    pub async fn run_status(
        &self,
        node: &str,
        command: &str,
        purpose: String,
        log: &Path,
    ) -> Result<(std::process::ExitStatus, Captured)> {
        let inv = self
            .base(node, purpose)?
            .arg("--")
            .arg(command)
            .shown_as(format!("ssh {node} -- {command}"))
            .log(log.to_path_buf());
        self.runner.run_status(&inv).await
    }

    /// The folder of this transport's master sockets (per lab, under the
    /// temp dir).
    pub fn control_dir(&self) -> &Path {
        &self.control_dir
    }

    /// The target a node is reached at.
    pub fn target(&self, node: &str) -> Option<&SshTarget> {
        self.targets.get(node)
    }

    /// Forgets a node's recorded host key (its VM was recreated).
    pub async fn forget_host_key(&self, node: &str) -> Result<()> {
        let Ok(text) = fs_err::read_to_string(&self.known_hosts) else {
            return Ok(());
        };
        let alias = self.host_key_alias(node);
        let kept: String = text
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_none_or(|h| h.split(',').all(|h| h != alias))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        if kept != text {
            crate::fsutil::write_atomic(&self.known_hosts, kept.as_bytes(), 0o600)?;
        }
        // Entries hashed by an ssh that hashed them anyway: ssh-keygen
        // knows how to match those.
        if kept.lines().any(|l| l.starts_with("|1|")) {
            // Through the one wrapper: found on PATH, logged with -v, its
            // failure naming the command, its status and the fix.
            let keygen = super::find("ssh-keygen", "forget a recreated VM's old host key")?;
            let inv = Invocation::new(
                &keygen,
                "ssh-keygen",
                format!("forget {node}'s old host key"),
            )
            .arg("-f")
            .arg(self.known_hosts.as_os_str())
            .arg("-R")
            .arg(alias.as_str())
            .hint(format!(
                "run `ssh-keygen -f {} -R {alias}`",
                self.known_hosts.display()
            ));
            let removed = self.runner.run(inv).await;
            let _ = fs_err::remove_file(self.known_hosts.with_extension("old"));
            removed?;
        }
        Ok(())
    }

    /// The same nodes and settings, its commands run by `runner`: after an
    /// interrupt, when this one's runner starts no new command, the
    /// clean-up that must still run goes through another.
    pub fn with_runner(&self, runner: &Runner) -> Transport {
        Transport {
            bin: self.bin.clone(),
            control_dir: self.control_dir.clone(),
            known_hosts: self.known_hosts.clone(),
            lab: self.lab.clone(),
            targets: self.targets.clone(),
            runner: runner.clone(),
        }
    }

    /// Closes every master connection (at the end of a run).
    pub async fn close(&self) {
        for node in self.targets.keys() {
            if let Ok(inv) = self.base(node, format!("close the SSH connection to {node}")) {
                let inv = inv.args(["-O", "exit"]);
                let _ = self.runner.run_status(&inv).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_labs_never_share_a_control_master() {
        let runner = Runner::new(false);
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let new = |dir: &Path| Transport::new("kubelab", dir, BTreeMap::new(), &runner).unwrap();
        let (first, again, other) = (new(a.path()), new(a.path()), new(b.path()));
        assert_eq!(first.control_dir, again.control_dir);
        assert_ne!(first.control_dir, other.control_dir);
        // ssh's %C (40 hex digits) and its temporary suffix fit the 108-byte limit.
        assert!(first.control_dir.as_os_str().len() + 1 + 40 + 17 < 108);
    }

    #[tokio::test]
    async fn forgets_a_nodes_host_key_plain_or_hashed_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let public = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let transport =
            Transport::new("lab", dir.path(), BTreeMap::new(), &Runner::new(false)).unwrap();
        let known = dir.path().join("known_hosts");
        let plain = format!(
            "kubelab-lab-worker1 {public}\nkubelab-lab-worker10 {public}\nkubelab-lab-etcd0 {public}\n"
        );
        std::fs::write(&known, &plain).unwrap();
        transport.forget_host_key("worker1").await.unwrap();
        let left = std::fs::read_to_string(&known).unwrap();
        assert_eq!(
            left,
            format!("kubelab-lab-worker10 {public}\nkubelab-lab-etcd0 {public}\n")
        );

        // As an ssh with HashKnownHosts would have written it.
        std::fs::write(&known, &plain).unwrap();
        let hashed = std::process::Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&known)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(hashed.success());
        let _ = std::fs::remove_file(dir.path().join("known_hosts.old"));
        assert!(std::fs::read_to_string(&known).unwrap().starts_with("|1|"));
        transport.forget_host_key("worker1").await.unwrap();
        let find = |alias: &str| {
            std::process::Command::new("ssh-keygen")
                .arg("-F")
                .arg(alias)
                .arg("-f")
                .arg(&known)
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(!find("kubelab-lab-worker1"));
        assert!(find("kubelab-lab-worker10"));
        assert!(find("kubelab-lab-etcd0"));
        assert!(!dir.path().join("known_hosts.old").exists());
    }

    #[test]
    fn parses_vagrant_ssh_config() {
        let text = "Host dns0\n  HostName 127.0.0.1\n  User vagrant\n  Port 2202\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  IdentityFile \"/home/u/lab/.kubelab/.vagrant/machines/dns0/virtualbox/private_key\"\n  IdentitiesOnly yes\n\nHost etcd0\n  HostName 192.168.56.10\n  User vagrant\n  Port 22\n";
        let targets = parse_ssh_config(text);
        assert_eq!(targets.len(), 2);
        assert_eq!(targets["dns0"].port, Some(2202));
        assert_eq!(
            targets["dns0"].identity_files,
            [PathBuf::from(
                "/home/u/lab/.kubelab/.vagrant/machines/dns0/virtualbox/private_key"
            )]
        );
        assert_eq!(targets["etcd0"].hostname, "192.168.56.10");
    }
}
