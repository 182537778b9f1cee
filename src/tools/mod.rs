//! One wrapper per external program. Every process kubelab starts goes
//! through [`Runner`]: it finds the binary (missing -> install hint), runs it
//! with a purpose string in its own process group, tees its output to a log
//! file, and turns a failure into an error naming the command, the exit
//! status, the log and its last lines. No `Command::new` anywhere else.

pub mod interrupt;
pub mod ssh;
pub mod vagrant;
pub mod vboxmanage;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::error::{CommandFailure, Error, Result};

pub use interrupt::{Interrupt, OnInterrupt, interruptible, shielded};

/// Lines of output quoted in a failure message.
const TAIL_LINES: usize = 12;

/// Finds `program` on PATH, or explains how to install it.
pub fn find(program: &str, purpose: &str) -> Result<PathBuf> {
    which::which(program).map_err(|_| Error::ToolMissing {
        program: program.to_string(),
        purpose: purpose.to_string(),
        hint: install_hint(program),
    })
}

/// How to install `program` on this OS.
pub fn install_hint(program: &str) -> String {
    let os_release = fs_err::read_to_string("/etc/os-release").unwrap_or_default();
    let id_like = os_release
        .lines()
        .filter(|l| l.starts_with("ID=") || l.starts_with("ID_LIKE="))
        .collect::<Vec<_>>()
        .join(" ");
    let debian = id_like.contains("debian") || id_like.contains("ubuntu");
    let fedora = id_like.contains("fedora") || id_like.contains("rhel");
    match program {
        "vagrant" if cfg!(target_os = "macos") => "brew install --cask vagrant".into(),
        "vagrant" if debian => "sudo apt-get install vagrant (or HashiCorp's own apt repository for the newest release)".into(),
        "vagrant" if fedora => "sudo dnf install vagrant".into(),
        "vagrant" => "install Vagrant from your distribution or from HashiCorp's downloads".into(),
        "VBoxManage" if cfg!(target_os = "macos") => "brew install --cask virtualbox".into(),
        "VBoxManage" if debian => "install VirtualBox (Oracle's apt repository: virtualbox-7.0), then re-open the shell so VBoxManage is on PATH".into(),
        "VBoxManage" => "install VirtualBox; VBoxManage ships with it and must be on PATH".into(),
        "ssh" if debian => "sudo apt-get install openssh-client".into(),
        "ssh" if fedora => "sudo dnf install openssh-clients".into(),
        other => format!("install `{other}` and make sure it is on PATH"),
    }
}

/// Process groups of the children running now, so an interrupt can reach them.
#[derive(Clone, Default)]
pub struct Children {
    pgids: Arc<Mutex<BTreeSet<i32>>>,
    interrupted: Arc<std::sync::atomic::AtomicBool>,
}

impl Children {
    /// From now on no new command starts.
    pub fn begin_interrupt(&self) {
        self.interrupted
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn add(&self, pgid: i32) {
        if let Ok(mut set) = self.pgids.lock() {
            set.insert(pgid);
        }
    }

    fn remove(&self, pgid: i32) {
        if let Ok(mut set) = self.pgids.lock() {
            set.remove(&pgid);
        }
    }

    pub fn running(&self) -> Vec<i32> {
        self.pgids
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Sends `signal` to every running child's process group.
    pub fn signal_all(&self, signal: nix::sys::signal::Signal) {
        for pgid in self.running() {
            // Each child leads its own group (we spawned it so); only ours.
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), signal);
        }
    }

    /// Interrupt protocol: one SIGINT so programs like Vagrant clean up, a
    /// deadline, then SIGKILL for whatever is left.
    pub async fn interrupt(&self, deadline: Duration) {
        self.signal_all(nix::sys::signal::Signal::SIGINT);
        let start = tokio::time::Instant::now();
        while !self.running().is_empty() && start.elapsed() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.signal_all(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Runs external programs on behalf of one lab.
#[derive(Clone)]
pub struct Runner {
    pub children: Children,
    /// Print the underlying commands and stream nothing else (`-v`).
    pub verbose: bool,
}

/// What a command reads on its stdin. It is written on a blocking thread
/// while the command reads it, in chunks of at most [`FEED_CHUNK`] with at
/// most [`FEED_CHUNKS`] in flight, so an upload of release files (hundreds
/// of MB per node) is streamed from disk, never held in memory.
pub trait Feed: Send + Sync {
    fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;
}

impl Feed for Vec<u8> {
    fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        out.write_all(self)
    }
}

/// The size of one chunk of a [`Feed`] on its way to the command.
pub const FEED_CHUNK: usize = 1 << 20;
/// How many chunks wait for the command at most.
pub const FEED_CHUNKS: usize = 4;

/// A `Write` whose bytes go, chunk by chunk, to the task that writes the
/// command's stdin; fails with `BrokenPipe` once the command stops reading.
struct ChunkSender(tokio::sync::mpsc::Sender<Vec<u8>>);

impl std::io::Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(buf.to_vec()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the command stopped reading its input",
            )
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One command about to run.
pub struct Invocation {
    pub program: PathBuf,
    /// The name shown in messages (`vagrant`), not the full path.
    pub display_name: String,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// What this is for, as in "failed to <purpose>".
    pub purpose: String,
    /// Where its output is kept (appended).
    pub log: Option<PathBuf>,
    pub hint: Option<String>,
    /// What is fed to the command's stdin (an upload); none means /dev/null.
    pub stdin: Option<Arc<dyn Feed>>,
    /// How messages show the command, when its full argv would bury the
    /// point (ssh's options).
    pub shown_as: Option<String>,
}

impl Invocation {
    pub fn new(program: &Path, display_name: &str, purpose: impl Into<String>) -> Invocation {
        Invocation {
            program: program.to_path_buf(),
            display_name: display_name.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            purpose: purpose.into(),
            log: None,
            hint: None,
            stdin: None,
            shown_as: None,
        }
    }

    pub fn shown_as(mut self, text: impl Into<String>) -> Self {
        self.shown_as = Some(text.into());
        self
    }

    pub fn stdin(mut self, feed: Arc<dyn Feed>) -> Self {
        self.stdin = Some(feed);
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn log(mut self, path: PathBuf) -> Self {
        self.log = Some(path);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `vagrant up worker0`, for messages.
    pub fn command_line(&self) -> String {
        if let Some(shown) = &self.shown_as {
            return shown.clone();
        }
        let mut out = self.display_name.clone();
        for arg in &self.args {
            out.push(' ');
            out.push_str(&arg.to_string_lossy());
        }
        out
    }
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
}

impl Runner {
    pub fn new(verbose: bool) -> Runner {
        Runner {
            children: Children::default(),
            verbose,
        }
    }

    /// Runs to completion; a non-zero exit is an error.
    pub async fn run(&self, inv: Invocation) -> Result<Captured> {
        let (status, captured) = self.run_status(&inv).await?;
        if status.success() {
            return Ok(captured);
        }
        Err(self.failure(&inv, status, &captured))
    }

    /// Runs to completion and returns the exit status with the output,
    /// leaving the judgement to the caller.
    pub async fn run_status(
        &self,
        inv: &Invocation,
    ) -> Result<(std::process::ExitStatus, Captured)> {
        if self.children.interrupted() {
            return Err(Error::Interrupted { hint: None });
        }
        if self.verbose {
            eprintln!("+ {}", inv.command_line());
        }
        let mut cmd = tokio::process::Command::new(&inv.program);
        cmd.args(&inv.args)
            .stdin(if inv.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal Ctrl-C reaches kubelab only,
            // and kubelab decides how its children are interrupted.
            .process_group(0)
            .kill_on_drop(true);
        for (k, v) in &inv.env {
            cmd.env(k, v);
        }
        // The log exists from the start, so a step in progress shows in it.
        if let Some(log) = &inv.log {
            append_log(
                log,
                &format!("$ {}   # {}\n", inv.command_line(), inv.purpose),
            )?;
        }
        let mut child = cmd.spawn().map_err(|source| Error::CommandStart {
            purpose: inv.purpose.clone(),
            command: inv.command_line(),
            source,
        })?;
        let pgid = child.id().map(|id| id as i32);
        if let Some(pgid) = pgid {
            self.children.add(pgid);
        }
        let feeding = match (inv.stdin.clone(), child.stdin.take()) {
            (Some(feed), Some(mut pipe)) => {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(FEED_CHUNKS);
                let producer = tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    let mut out = std::io::BufWriter::with_capacity(FEED_CHUNK, ChunkSender(tx));
                    feed.write_to(&mut out)?;
                    out.flush()
                });
                let writer = tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    // A command that exits early closes the pipe: its exit
                    // status says what went wrong, not this write.
                    while let Some(chunk) = rx.recv().await {
                        if pipe.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                    let _ = pipe.shutdown().await;
                });
                Some((producer, writer))
            }
            _ => None,
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        // Teed to the log as it arrives: a long step (a package install, a
        // wait for a lock) shows where it is while it runs.
        let read_out = tokio::spawn(read_all(stdout, inv.log.clone()));
        let read_err = tokio::spawn(read_all(stderr, inv.log.clone()));
        let status = child.wait().await;
        // The command is gone: whatever it did not read is dropped, which
        // stops the producer at its next chunk. A producer that failed on
        // its own (a local file unreadable) is the cause to report.
        let mut fed = Ok(());
        if let Some((producer, writer)) = feeding {
            writer.abort();
            if let Ok(Err(e)) = producer.await
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                fed = Err(e);
            }
        }
        // A background process the command left behind (an ssh control
        // master, say) can hold its pipes open forever: read what is there,
        // then stop waiting.
        let out = collect(read_out).await;
        let err = collect(read_err).await;
        if let Some(pgid) = pgid {
            if self.children.interrupted() {
                // Whatever is left of an interrupted command's group goes too.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            self.children.remove(pgid);
        }
        let status = status.map_err(|source| Error::CommandStart {
            purpose: inv.purpose.clone(),
            command: inv.command_line(),
            source,
        })?;
        let captured = Captured {
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        };
        if let Some(log) = &inv.log {
            let newline = if out.ends_with(b"\n")
                || err.ends_with(b"\n")
                || (out.is_empty() && err.is_empty())
            {
                ""
            } else {
                "\n"
            };
            append_log(log, &format!("{newline}# {}\n\n", describe_status(&status)))?;
        }
        if let Err(e) = fed {
            return Err(Error::other(
                format!(
                    "could not {}: reading what is sent to `{}` failed: {e}",
                    inv.purpose, inv.display_name
                ),
                "check that kubelab's cache is readable (`kubelab artifacts fetch` downloads a missing release again)",
            ));
        }
        Ok((status, captured))
    }

    fn failure(
        &self,
        inv: &Invocation,
        status: std::process::ExitStatus,
        captured: &Captured,
    ) -> Error {
        let combined = format!("{}{}", captured.stdout, captured.stderr);
        let lines: Vec<&str> = combined.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        Error::CommandFailed(Box::new(CommandFailure {
            purpose: inv.purpose.clone(),
            command: inv.command_line(),
            status: describe_status(&status),
            log: inv.log.clone(),
            tail,
            hint: inv.hint.clone(),
        }))
    }
}

/// How long output is still read after the command itself has exited.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Everything `pipe` gives until it closes, each piece appended to `log`
/// too as it arrives.
async fn read_all<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    log: Option<PathBuf>,
) -> Vec<u8> {
    let mut buf = Vec::new();
    let Some(mut pipe) = pipe else {
        return buf;
    };
    let mut log = log.and_then(|path| crate::fsutil::open_append(&path).ok());
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(file) = &mut log {
                    use std::io::Write;
                    // One write per piece: with O_APPEND, stdout's and
                    // stderr's pieces never tear each other.
                    let _ = file.write_all(&chunk[..n]);
                }
            }
        }
    }
    buf
}

async fn collect(mut task: tokio::task::JoinHandle<Vec<u8>>) -> Vec<u8> {
    match tokio::time::timeout(PIPE_GRACE, &mut task).await {
        Ok(Ok(buf)) => buf,
        _ => {
            task.abort();
            Vec::new()
        }
    }
}

pub fn describe_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".to_string(),
    }
}

fn append_log(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut file = crate::fsutil::open_append(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
