//! `kubelab lab verify --conformance [--focus REGEX]`: the upstream
//! conformance suite, run in the lab through hydrophone (the pinned release,
//! fetched once into the artifacts cache) with the lab's admin kubeconfig
//! and the conformance image of the lab's Kubernetes release. Its whole
//! output goes to a log beside the results; the terminal gets what hydrophone
//! says about the run, the specs done so far, each failure as it happens and
//! the summary.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::printer::Printer;
use crate::settings::Settings;
use crate::topology::Phase;

/// How often a progress line is printed while specs pass.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

/// What a run of the suite needs done first: a node to schedule on, the
/// cluster DNS, the aggregation layer.
const NEEDED: [Phase; 2] = [Phase::Workers, Phase::Addons];

/// The conformance image of the Kubernetes release the lab runs.
pub(crate) fn image(kubernetes: &str) -> String {
    format!("registry.k8s.io/conformance:v{kubernetes}")
}

/// hydrophone's arguments. `--conformance` and `--focus` exclude each other
/// in hydrophone (v0.7.0 cmd/root.go): `--conformance` is its alias for the
/// focus `\[Conformance\]`. Verbosity 6 passes `-v` to Ginkgo, so each spec
/// ends on a line of its own (`• [2.1 seconds]`) and the run can be followed;
/// below 6 Ginkgo prints a dot per spec on one line that only ends with the run.
pub(crate) fn args(
    kubeconfig: &Path,
    out_dir: &Path,
    image: &str,
    focus: Option<&str>,
) -> Vec<String> {
    let mut args = vec![
        "--kubeconfig".to_string(),
        kubeconfig.display().to_string(),
        "--output-dir".to_string(),
        out_dir.display().to_string(),
        "--conformance-image".to_string(),
        image.to_string(),
        "--verbosity".to_string(),
        "6".to_string(),
    ];
    match focus {
        Some(regex) => args.extend(["--focus".to_string(), regex.to_string()]),
        None => args.push("--conformance".to_string()),
    }
    args
}

/// `NO_PROXY` for hydrophone (client-go honours the proxy variables): the
/// lab's API name and address added to what the user has, so a proxied host
/// still reaches the lab directly.
fn no_proxy(existing: Option<String>, loaded: &LoadedLab) -> String {
    let api = &loaded.topo.api;
    let mut parts: Vec<String> = existing
        .into_iter()
        .flat_map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    for own in [api.name.clone(), api.address.to_string()] {
        if !parts.contains(&own) {
            parts.push(own);
        }
    }
    parts.join(",")
}

/// The summary line Ginkgo ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub success: bool,
    pub passed: u32,
    pub failed: u32,
    pub pending: u32,
    pub skipped: u32,
}

/// What one line of hydrophone's output says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// One of hydrophone's own messages (its log lines, `15:04:05 INF ...`).
    Said(String),
    /// `Will run N of M specs`.
    Planned {
        run: u32,
        of: u32,
    },
    /// Specs finished since the last event (a line of dots, or a spec's end
    /// line in verbose output).
    Done(u32),
    /// A spec failed; its name when the output gave it.
    Failed(String),
    /// `Ran N of M Specs in S seconds`.
    Ran {
        run: u32,
        seconds: u64,
    },
    Finished(Summary),
}

/// Reads hydrophone's output line by line (stdout and stderr alike).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub planned: Option<u32>,
    pub done: u32,
    pub failures: Vec<String>,
    pub summary: Option<Summary>,
    /// A `• [FAILED]` line was read: the spec's name is on the next line.
    name_next: bool,
    /// Inside `Summarizing N Failures:`.
    summarizing: bool,
    summarized: Vec<String>,
}

impl Progress {
    pub(crate) fn feed(&mut self, line: &str) -> Vec<Event> {
        let line = line.trim_end_matches(['\r', '\n']);
        let trimmed = line.trim();
        let mut out = Vec::new();
        if self.name_next {
            if trimmed.is_empty() {
                return out;
            }
            self.name_next = false;
            self.failures.push(trimmed.to_string());
            out.push(Event::Failed(trimmed.to_string()));
            return out;
        }
        if self.summarizing {
            if let Some(name) = trimmed.strip_prefix("[FAIL] ") {
                self.summarized.push(name.to_string());
                return out;
            }
            if trimmed.starts_with("Ran ") {
                self.summarizing = false;
            } else {
                return out;
            }
        }
        if let Some(said) = hydrophone_message(line) {
            out.push(Event::Said(said.to_string()));
        } else if let Some((run, of)) = planned(trimmed) {
            self.planned = Some(run);
            out.push(Event::Planned { run, of });
        } else if let Some(rest) = trimmed.strip_prefix("• [") {
            // The end of one spec in Ginkgo's verbose output: `• [2.1
            // seconds]` passed, `• [FAILED] [...]` (PANICKED, TIMEDOUT,
            // INTERRUPTED) did not.
            self.done += 1;
            out.push(Event::Done(1));
            let state = rest.split(']').next().unwrap_or("");
            if matches!(
                state,
                "FAILED" | "PANICKED" | "TIMEDOUT" | "INTERRUPTED" | "ABORTED"
            ) {
                self.name_next = true;
            }
        } else if is_dots(trimmed) {
            let done = trimmed.chars().filter(|c| matches!(c, '•' | 'F')).count() as u32;
            let failed = trimmed.chars().filter(|c| *c == 'F').count();
            if done > 0 {
                self.done += done;
                out.push(Event::Done(done));
            }
            for _ in 0..failed {
                self.failures.push(String::new());
                out.push(Event::Failed(String::new()));
            }
        } else if trimmed.starts_with("Summarizing ") && trimmed.contains("Failure") {
            self.summarizing = true;
        } else if let Some((run, seconds)) = ran(trimmed) {
            out.push(Event::Ran { run, seconds });
        } else if let Some(summary) = summary(trimmed) {
            self.summary = Some(summary.clone());
            out.push(Event::Finished(summary));
        }
        out
    }

    /// The failed specs by name: Ginkgo's closing summary when it printed
    /// one, else the names seen as they failed.
    pub(crate) fn failed_names(&self) -> Vec<String> {
        if !self.summarized.is_empty() {
            return self.summarized.clone();
        }
        self.failures
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect()
    }
}

/// `15:04:05 INF Using conformance image: ...` (tint's format, which
/// hydrophone logs with) gives `Using conformance image: ...`.
fn hydrophone_message(line: &str) -> Option<&str> {
    let (time, rest) = line.split_once(' ')?;
    let clock = time.len() == 8
        && time.chars().enumerate().all(|(i, c)| {
            if i == 2 || i == 5 {
                c == ':'
            } else {
                c.is_ascii_digit()
            }
        });
    if !clock {
        return None;
    }
    let (level, message) = rest.split_once(' ')?;
    matches!(level, "INF" | "WRN" | "ERR" | "DBG").then_some(message.trim())
}

fn planned(line: &str) -> Option<(u32, u32)> {
    let rest = line.strip_prefix("Will run ")?;
    let (run, rest) = rest.split_once(" of ")?;
    let of = rest.strip_suffix(" specs")?;
    Some((run.parse().ok()?, of.parse().ok()?))
}

fn ran(line: &str) -> Option<(u32, u64)> {
    let rest = line.strip_prefix("Ran ")?;
    let (run, rest) = rest.split_once(" of ")?;
    let (_, rest) = rest.split_once(" Specs in ")?;
    let seconds: f64 = rest.strip_suffix(" seconds")?.parse().ok()?;
    Some((run.parse().ok()?, seconds.round() as u64))
}

/// `SUCCESS! -- 441 Passed | 0 Failed | 0 Pending | 6914 Skipped`.
fn summary(line: &str) -> Option<Summary> {
    let (verdict, counts) = line.split_once(" -- ")?;
    let success = match verdict {
        "SUCCESS!" => true,
        "FAIL!" => false,
        _ => return None,
    };
    let mut summary = Summary {
        success,
        passed: 0,
        failed: 0,
        pending: 0,
        skipped: 0,
    };
    for part in counts.split('|') {
        let (n, what) = part.trim().split_once(' ')?;
        let n: u32 = n.parse().ok()?;
        match what {
            "Passed" => summary.passed = n,
            "Failed" => summary.failed = n,
            "Pending" => summary.pending = n,
            "Skipped" => summary.skipped = n,
            _ => {}
        }
    }
    Some(summary)
}

/// A line of Ginkgo's one-character-per-spec output: `•` done, `S`
/// skipped, `P` pending, `F` failed.
fn is_dots(line: &str) -> bool {
    !line.is_empty() && line.chars().all(|c| matches!(c, '•' | 'S' | 'P' | 'F'))
}

/// `2026-12-02T021500Z`, for the results folder.
fn stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// The line printed for an event, if any; `last` is when the previous
/// progress line went out (progress lines are printed at most every
/// [`PROGRESS_EVERY`], failures and the rest at once).
fn line_for(
    event: &Event,
    progress: &Progress,
    started: Instant,
    last: &mut Instant,
) -> Option<String> {
    let of = progress
        .planned
        .map(|n| format!(" of {n}"))
        .unwrap_or_default();
    let minutes = started.elapsed().as_secs() / 60;
    match event {
        Event::Said(said) => Some(format!("hydrophone: {said}")),
        Event::Planned { run, of } => Some(format!(
            "the suite runs {run} of its {of} specs; a line follows every minute, and each failure as it happens"
        )),
        Event::Done(_) => (last.elapsed() >= PROGRESS_EVERY).then(|| {
            *last = Instant::now();
            format!(
                "{}{of} specs done, {} failed ({minutes} min)",
                progress.done,
                progress.failures.len()
            )
        }),
        Event::Failed(name) => Some(format!(
            "FAILED{}{} ({}{of} done)",
            if name.is_empty() { "" } else { ": " },
            name,
            progress.done
        )),
        Event::Ran { run, seconds } => Some(format!(
            "ran {run} specs in {} min {} s",
            seconds / 60,
            seconds % 60
        )),
        Event::Finished(_) => None,
    }
}

/// Runs the suite; 0 when it passed, else the failures as an error naming
/// where the results are.
pub async fn run(
    loaded: &LoadedLab,
    settings: &Settings,
    printer: &Printer,
    focus: Option<&str>,
) -> Result<i32> {
    let state_dir = loaded.state_dir();
    let state = crate::state::State::load(&state_dir.join("state.json"), &loaded.lab.name)?;
    let done = crate::provision::phases_done(&loaded.topo, &state);
    if let Some(missing) = NEEDED.iter().find(|p| !done.contains(p)) {
        return Err(Error::other(
            format!(
                "the conformance suite needs the whole cluster: the {} phase has not run on lab {}",
                missing.name(),
                loaded.lab.name
            ),
            "`kubelab lab up` runs it",
        ));
    }
    let hydrophone = crate::artifacts::hydrophone(
        std::env::consts::OS,
        std::env::consts::ARCH,
        settings.artifacts_mirror.as_deref(),
    )?;
    let image = image(&loaded.lab.versions.kubernetes);
    let out_dir = state_dir.join("conformance").join(stamp());
    let log = out_dir.join("hydrophone.log");
    printer.info(format!(
        "the conformance suite: hydrophone {} runs {} in lab {}, {}; a full run takes an hour or more (the CNCF-recorded 1.35 runs took 1 h 50 min and 2 h)",
        hydrophone.version,
        image,
        loaded.lab.name,
        match focus {
            Some(regex) => format!("only the specs matching --focus {regex:?}"),
            None => "every [Conformance] spec (--focus REGEX runs fewer)".to_string(),
        }
    ));
    printer.info(format!(
        "results: {} (e2e.log and junit_01.xml at the end; hydrophone's whole output in hydrophone.log as it runs)",
        out_dir.display()
    ));
    // Before the lab's lock: writing it takes the PKI lock.
    let kubeconfig = crate::kubeconfig::write_admin(loaded, printer)?;
    let _lock = crate::state::LabLock::acquire(&state_dir, "kubelab lab verify --conformance")?;
    let client = crate::artifacts::client()?;
    crate::provision::downloads::fetch_one(printer, &client, settings, &hydrophone, false).await?;
    crate::artifacts::extract_binaries(&settings.cache_dir, &hydrophone, "", &["hydrophone"])?;
    let program = crate::artifacts::extracted_path(&settings.cache_dir, &hydrophone, "hydrophone");
    fs_err::create_dir_all(&out_dir)?;
    let args = args(&kubeconfig, &out_dir, &image, focus);
    let no_proxy = no_proxy(std::env::var("NO_PROXY").ok(), loaded);
    let progress = match follow(&program, &args, &no_proxy, &log, printer).await {
        // hydrophone dies on SIGINT (v0.7.0 catches no signal) and leaves
        // its namespace and pod running the suite: remove them.
        Err(Error::Interrupted { .. }) => {
            printer.info(
                "interrupted: removing the conformance pod and namespace (hydrophone --cleanup)",
            );
            let hint = match cleanup(&program, &kubeconfig, &no_proxy, &log).await {
                Ok(()) => format!(
                    "the conformance pod and namespace were removed; the output so far is in {}",
                    log.display()
                ),
                Err(why) => format!(
                    "removing the conformance pod failed ({why}): `{} --cleanup --kubeconfig {}` removes it; the output so far is in {}",
                    program.display(),
                    kubeconfig.display(),
                    log.display()
                ),
            };
            return Err(Error::Interrupted { hint: Some(hint) });
        }
        other => other?,
    };
    verdict(&progress, &out_dir, &log, &program, &kubeconfig)
}

/// How long `hydrophone --cleanup` may take after an interrupt.
const CLEANUP_WAIT: Duration = Duration::from_secs(120);

/// `hydrophone --cleanup` with the lab's kubeconfig, its output appended to
/// `log`; the error is one line.
async fn cleanup(
    program: &Path,
    kubeconfig: &Path,
    no_proxy: &str,
    log: &Path,
) -> std::result::Result<(), String> {
    let run = tokio::process::Command::new(program)
        .arg("--cleanup")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("NO_PROXY", no_proxy)
        .env("no_proxy", no_proxy)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(CLEANUP_WAIT, run).await {
        Err(_) => return Err(format!("no end within {} s", CLEANUP_WAIT.as_secs())),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(out)) => out,
    };
    if let Ok(mut file) = crate::fsutil::open_append(log) {
        use std::io::Write;
        let _ = file.write_all(&out.stdout);
        let _ = file.write_all(&out.stderr);
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "hydrophone --cleanup {}",
            crate::tools::describe_status(&out.status)
        ))
    }
}

/// The run's result from what hydrophone printed and its exit status.
fn verdict(
    run: &(Progress, std::process::ExitStatus),
    out_dir: &Path,
    log: &Path,
    program: &Path,
    kubeconfig: &Path,
) -> Result<i32> {
    let (progress, status) = run;
    match &progress.summary {
        Some(s) if s.success && status.success() => Ok(0),
        // Every spec passed, but hydrophone failed after (fetching the
        // results, cleaning up): say that, not "0 specs failed".
        Some(s) if s.success => Err(Error::other(
            format!(
                "conformance: all {} specs passed, but hydrophone {} afterwards; results (if any) in {}",
                s.passed,
                crate::tools::describe_status(status),
                out_dir.display()
            ),
            format!("its output is in {}", log.display()),
        )),
        Some(s) => {
            let names = progress.failed_names();
            Err(Error::ChecksFailed(format!(
                "conformance: {} of {} specs failed{}{}; results in {}",
                s.failed,
                s.passed + s.failed,
                if names.is_empty() { "" } else { ": " },
                names.join("; "),
                out_dir.display()
            )))
        }
        None => Err(Error::other(
            format!(
                "hydrophone {} before the suite reported a result; its output is in {}",
                crate::tools::describe_status(status),
                log.display()
            ),
            format!(
                "read the log's end; a conformance pod left behind is removed by `{} --cleanup --kubeconfig {}`",
                program.display(),
                kubeconfig.display()
            ),
        )),
    }
}

/// Runs hydrophone, every line of its output appended to `log` and read by
/// a [`Progress`] whose events are printed; returns it with the exit status.
/// On Ctrl-C or SIGTERM hydrophone gets SIGINT and is waited for.
async fn follow(
    program: &Path,
    args: &[String],
    no_proxy: &str,
    log: &Path,
    printer: &Printer,
) -> Result<(Progress, std::process::ExitStatus)> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("NO_PROXY", no_proxy)
        .env("no_proxy", no_proxy)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::CommandStart {
            purpose: "run the conformance suite".into(),
            command: format!("hydrophone {}", args.join(" ")),
            source,
        })?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            // Byte lines, read lossily: a line that is not UTF-8 must not
            // end the reading (hydrophone would then die of a closed pipe).
            let mut reader = tokio::io::BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut file = crate::fsutil::open_append(log)?;
    let mut interrupt = crate::tools::Interrupt::listen()?;
    let mut progress = Progress::default();
    let started = Instant::now();
    let mut last = Instant::now();
    let mut interrupted = false;
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else { break };
                use std::io::Write;
                writeln!(file, "{line}")?;
                for event in progress.feed(&line) {
                    if let Some(text) = line_for(&event, &progress, started, &mut last) {
                        printer.info(text);
                    }
                }
            }
            _ = interrupt.recv(), if !interrupted => {
                interrupted = true;
                if let Some(pid) = child.id() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGINT,
                    );
                }
            }
        }
    }
    let status = child.wait().await?;
    if interrupted {
        // The caller removes what hydrophone left and says so.
        return Err(Error::Interrupted { hint: None });
    }
    Ok((progress, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded: cncf/k8s-conformance v1.35/Aruba/e2e.log at commit
    /// fc82170db94964c1e86eaa9887ec7ce4952d6e3b, a whole 1.35 conformance
    /// run (the log the conformance pod writes and hydrophone streams).
    const RECORDED_PASS: &str = include_str!("../../tests/fixtures/conformance/e2e-1.35-pass.log");
    /// hydrophone's own lines around a run and a failing run's Ginkgo output
    /// in verbose mode (see the fixtures' README for what each is).
    const VERBOSE_FAIL: &str =
        include_str!("../../tests/fixtures/conformance/hydrophone-verbose-fail.log");

    fn feed_all(text: &str) -> (Progress, Vec<Event>) {
        let mut p = Progress::default();
        let mut events = Vec::new();
        for line in text.lines() {
            events.extend(p.feed(line));
        }
        (p, events)
    }

    #[test]
    fn a_recorded_passing_run_is_read_to_its_summary() {
        let (p, events) = feed_all(RECORDED_PASS);
        assert_eq!(p.planned, Some(441));
        assert_eq!(p.done, 441, "one • per spec run");
        assert!(p.failures.is_empty());
        assert!(events.contains(&Event::Planned { run: 441, of: 7355 }));
        assert!(events.contains(&Event::Ran {
            run: 441,
            seconds: 6631
        }));
        assert_eq!(
            p.summary,
            Some(Summary {
                success: true,
                passed: 441,
                failed: 0,
                pending: 0,
                skipped: 6914
            })
        );
    }

    #[test]
    fn a_verbose_failing_run_names_each_failure_as_it_happens_and_in_the_end() {
        let (p, events) = feed_all(VERBOSE_FAIL);
        let said: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::Said(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            said.contains(&"Using conformance image: registry.k8s.io/conformance:v1.36.0"),
            "{said:?}"
        );
        assert!(
            said.iter()
                .any(|s| s.starts_with("Downloading e2e.log to "))
        );
        assert_eq!(p.planned, Some(3));
        assert_eq!(p.done, 3);
        let failed: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::Failed(_)))
            .collect();
        assert_eq!(
            failed,
            [&Event::Failed(
                "[sig-network] Services should serve a basic endpoint from pods  [Conformance]"
                    .into()
            )]
        );
        assert_eq!(
            p.failed_names(),
            ["[sig-network] Services [It] should serve a basic endpoint from pods  [Conformance]"]
        );
        let s = p.summary.clone().unwrap();
        assert!(!s.success);
        assert_eq!((s.passed, s.failed), (2, 1));
        let status = std::os::unix::process::ExitStatusExt::from_raw(1 << 8);
        let err = verdict(
            &(p, status),
            Path::new("/r"),
            Path::new("/r/hydrophone.log"),
            Path::new("/c/hydrophone"),
            Path::new("/k"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("1 of 3 specs failed: [sig-network] Services [It] should serve"),
            "{err}"
        );
        assert!(err.contains("results in /r"), "{err}");
    }

    #[test]
    fn a_run_that_stops_before_its_summary_points_at_the_log_and_the_cleanup() {
        let (p, _) = feed_all(
            "12:00:01 INF API endpoint: https://api.lab.test:6443\nWill run 441 of 7355 specs\n",
        );
        let status = std::os::unix::process::ExitStatusExt::from_raw(1 << 8);
        let err = verdict(
            &(p, status),
            Path::new("/r"),
            Path::new("/r/h.log"),
            Path::new("/c/hydrophone"),
            Path::new("/k"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(
                "hydrophone exited 1 before the suite reported a result; its output is in /r/h.log"
            ),
            "{err}"
        );
        assert!(
            err.hint()
                .unwrap()
                .contains("/c/hydrophone --cleanup --kubeconfig /k")
        );
        // A passing summary with a passing exit is a pass.
        let (p, _) = feed_all(RECORDED_PASS);
        let ok = std::os::unix::process::ExitStatusExt::from_raw(0);
        assert_eq!(
            verdict(
                &(p, ok),
                Path::new("/r"),
                Path::new("/l"),
                Path::new("/c"),
                Path::new("/k")
            )
            .unwrap(),
            0
        );
        // Every spec passed, but hydrophone failed afterwards (its results
        // download): not "0 specs failed", and the exit is named.
        let (p, _) = feed_all(RECORDED_PASS);
        let failed = std::os::unix::process::ExitStatusExt::from_raw(1 << 8);
        let err = verdict(
            &(p, failed),
            Path::new("/r"),
            Path::new("/l"),
            Path::new("/c"),
            Path::new("/k"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("all 441 specs passed, but hydrophone exited 1 afterwards"),
            "{err}"
        );
    }

    #[test]
    fn hydrophone_gets_the_lab_kubeconfig_the_cluster_image_and_one_of_conformance_or_focus() {
        let full = args(
            Path::new("/l/admin.kubeconfig"),
            Path::new("/l/out"),
            &image("1.36.0"),
            None,
        );
        assert_eq!(
            full.join(" "),
            "--kubeconfig /l/admin.kubeconfig --output-dir /l/out --conformance-image registry.k8s.io/conformance:v1.36.0 --verbosity 6 --conformance"
        );
        let focused = args(
            Path::new("/k"),
            Path::new("/o"),
            &image("1.35.0"),
            Some(r"\[sig-network\]"),
        );
        assert!(!focused.contains(&"--conformance".to_string()));
        assert_eq!(
            &focused[focused.len() - 2..],
            ["--focus", r"\[sig-network\]"]
        );
    }

    #[test]
    fn progress_lines_wait_a_minute_but_failures_do_not() {
        let mut p = Progress::default();
        let started = Instant::now();
        let mut last = Instant::now();
        p.feed("Will run 441 of 7355 specs");
        let e = p.feed("• [2.102 seconds]");
        assert_eq!(
            line_for(&e[0], &p, started, &mut last),
            None,
            "within the minute"
        );
        last = Instant::now() - PROGRESS_EVERY;
        assert_eq!(
            line_for(&e[0], &p, started, &mut last).unwrap(),
            "1 of 441 specs done, 0 failed (0 min)"
        );
        p.feed("• [FAILED] [302.100 seconds]");
        let e = p.feed("[sig-apps] Deployment should work [Conformance]");
        assert_eq!(
            line_for(&e[0], &p, started, &mut last).unwrap(),
            "FAILED: [sig-apps] Deployment should work [Conformance] (2 of 441 done)"
        );
    }

    /// The whole path from a running program to the verdict, with a stand-in
    /// hydrophone that prints the failing run (its own lines on stderr, the
    /// suite's on stdout, as hydrophone does) and exits 1.
    #[test]
    fn a_stand_in_hydrophone_is_followed_logged_and_judged() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = dir.path().join("run.log");
        fs_err::write(&fixture, VERBOSE_FAIL).unwrap();
        let program = dir.path().join("hydrophone");
        fs_err::write(
            &program,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" > {dir}/args\nprintf '%s\\n' \"$NO_PROXY\" > {dir}/no_proxy\ngrep -E '^[0-9:]{{8}} ' {f} >&2\ngrep -vE '^[0-9:]{{8}} ' {f}\nexit 1\n",
                dir = dir.path().display(),
                f = fixture.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = dir.path().join("hydrophone.log");
        let args = args(Path::new("/k"), dir.path(), &image("1.36.0"), Some("x"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let run = rt
            .block_on(follow(
                &program,
                &args,
                "corp.example,api.lab.test",
                &log,
                &Printer::new(true, true),
            ))
            .unwrap();
        assert_eq!(run.0.done, 3);
        assert!(!run.1.success());
        let logged = fs_err::read_to_string(&log).unwrap();
        assert_eq!(logged.lines().count(), VERBOSE_FAIL.lines().count());
        assert!(logged.contains("Summarizing 1 Failure:"));
        let passed = fs_err::read_to_string(dir.path().join("args")).unwrap();
        assert!(
            passed.contains("--conformance-image registry.k8s.io/conformance:v1.36.0"),
            "{passed}"
        );
        assert_eq!(
            fs_err::read_to_string(dir.path().join("no_proxy")).unwrap(),
            "corp.example,api.lab.test\n"
        );
        let err = verdict(&run, dir.path(), &log, &program, Path::new("/k")).unwrap_err();
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn the_cleanup_after_an_interrupt_uses_the_lab_kubeconfig_and_reports_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("hydrophone");
        let script = |exit: u8| {
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" > {}/args\necho removed namespace conformance\nexit {exit}\n",
                dir.path().display()
            )
        };
        use std::os::unix::fs::PermissionsExt;
        let log = dir.path().join("hydrophone.log");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        fs_err::write(&program, script(0)).unwrap();
        fs_err::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        rt.block_on(cleanup(
            &program,
            Path::new("/l/admin.kubeconfig"),
            "x",
            &log,
        ))
        .unwrap();
        assert_eq!(
            fs_err::read_to_string(dir.path().join("args")).unwrap(),
            "--cleanup --kubeconfig /l/admin.kubeconfig\n"
        );
        assert!(
            fs_err::read_to_string(&log)
                .unwrap()
                .contains("removed namespace conformance")
        );
        fs_err::write(&program, script(3)).unwrap();
        let err = rt
            .block_on(cleanup(&program, Path::new("/k"), "x", &log))
            .unwrap_err();
        assert_eq!(err, "hydrophone --cleanup exited 3");
    }

    #[test]
    fn only_hydrophone_platforms_with_a_published_digest_are_fetched() {
        let a = crate::artifacts::hydrophone("linux", "x86_64", None).unwrap();
        assert_eq!(
            a.url,
            "https://github.com/kubernetes-sigs/hydrophone/releases/download/v0.7.0/hydrophone_Linux_x86_64.tar.gz"
        );
        assert_eq!(a.checksum.algorithm(), "sha256");
        let err = crate::artifacts::hydrophone("macos", "aarch64", None).unwrap_err();
        assert!(err.to_string().contains("only for Linux_x86_64"), "{err}");
        assert!(
            err.to_string().contains("this host is macos/aarch64"),
            "{err}"
        );
        let mirrored = crate::artifacts::hydrophone("linux", "x86_64", Some("http://m/")).unwrap();
        assert_eq!(mirrored.url, "http://m/hydrophone_Linux_x86_64.tar.gz");
    }
}
