//! All terminal output. stdout carries data (tables, JSON, paths); stderr
//! carries progress and diagnostics. Colour only on a terminal and never with
//! NO_COLOR; progress bars only when stderr is a terminal and not `--quiet`.
//!
//! The printer owns the one place progress is drawn (uv's printer is the
//! model): every bar and live line is added to its [`MultiProgress`], and
//! every line it prints while one is live goes above it, so a warning never
//! lands in the middle of a bar.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Serialize;

use crate::error::Error;

/// Version of every `--json` document's shape; bumped on incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct Printer {
    /// Colour for data on stdout: stdout is a terminal (so `lab verify >
    /// report.txt` from a terminal writes no escape codes).
    color_out: bool,
    /// Colour for diagnostics on stderr: stderr is a terminal.
    color_err: bool,
    quiet: bool,
    stderr_tty: bool,
    /// `-v`: every command is shown, so progress is the per-node lines.
    verbose: bool,
    /// Where bars and live lines are drawn, shared by every clone; hidden
    /// unless progress is drawn at all ([`Printer::interactive`]).
    progress: MultiProgress,
    /// A test's stand-in for stderr.
    #[cfg(test)]
    stderr: Option<tests::Stderr>,
}

#[derive(Clone, Copy)]
pub enum Style {
    Bold,
    Yellow,
    Red,
}

impl Printer {
    pub fn new(quiet: bool, no_color: bool) -> Printer {
        Printer::for_streams(
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
            quiet,
            no_color,
        )
    }

    /// A printer for streams that are (or are not) terminals: colour is
    /// decided for each stream on its own.
    pub fn for_streams(stdout_tty: bool, stderr_tty: bool, quiet: bool, no_color: bool) -> Printer {
        let target = if stderr_tty && !quiet {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Printer {
            color_out: stdout_tty && !no_color,
            color_err: stderr_tty && !no_color,
            quiet,
            stderr_tty,
            verbose: false,
            progress: MultiProgress::with_draw_target(target),
            #[cfg(test)]
            stderr: None,
        }
    }

    /// With `-v`: progress is the per-node lines even on a terminal.
    pub fn verbose(mut self, verbose: bool) -> Printer {
        self.verbose = verbose;
        self
    }

    /// Whether progress bars are drawn: stderr is a terminal, not --quiet.
    pub fn interactive(&self) -> bool {
        self.stderr_tty && !self.quiet
    }

    /// Whether a phase is one live line rather than a line per node: on a
    /// terminal, without `-v`.
    fn live(&self) -> bool {
        self.interactive() && !self.verbose
    }

    /// One line (or several) on stderr, with the live bars lifted while it
    /// is written and drawn again below it.
    fn line_err(&self, text: &str) {
        self.progress.suspend(|| {
            #[cfg(test)]
            if let Some(stderr) = &self.stderr {
                return (stderr.0)(text);
            }
            eprintln!("{text}");
        });
    }

    /// A progress bar drawn on the printer's target (hidden unless
    /// [`Printer::interactive`]); [`Printer::clear_bar`] takes it away.
    pub fn bar(&self, len: u64) -> ProgressBar {
        if self.interactive() {
            self.progress.add(ProgressBar::new(len))
        } else {
            ProgressBar::hidden()
        }
    }

    /// Ends `bar` and clears its line.
    pub fn clear_bar(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.progress.remove(bar);
    }

    /// The progress of a phase over `total` nodes. On a terminal without
    /// `-v` it is one live line (nodes done of total, elapsed, the node it
    /// waits on) that becomes its summary when the phase ends; otherwise
    /// `heading` (if any) now and a line per node as each starts and ends.
    pub fn phase(&self, name: &str, total: usize, heading: Option<String>) -> PhaseProgress<'_> {
        let running = Arc::new(Mutex::new(Vec::new()));
        let bar = if self.live() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden());
            let (line_name, line_running) = (name.to_string(), Arc::clone(&running));
            let style = ProgressStyle::with_template("{spinner} {line}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .with_key(
                    "line",
                    move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let running = lock(&line_running);
                        let _ = out.write_str(&phase_line(
                            &line_name,
                            state.pos(),
                            state.len().unwrap_or(0),
                            state.elapsed(),
                            &running,
                        ));
                    },
                );
            bar.set_style(style);
            let bar = self.progress.add(bar);
            bar.enable_steady_tick(Duration::from_millis(120));
            Some(bar)
        } else {
            if let Some(heading) = heading {
                self.info(heading);
            }
            None
        };
        PhaseProgress {
            printer: self,
            name: name.to_string(),
            started: Instant::now(),
            bar,
            running,
            done: std::sync::atomic::AtomicUsize::new(0),
            total,
        }
    }

    /// `text` styled for data on stdout (a table cell), plain unless
    /// stdout is a terminal.
    pub fn paint(&self, style: Style, text: &str) -> String {
        styled(self.color_out, style, text)
    }

    /// `text` styled for a diagnostic on stderr.
    fn paint_err(&self, style: Style, text: &str) -> String {
        styled(self.color_err, style, text)
    }

    /// A progress or status line on stderr (silenced by --quiet).
    pub fn info(&self, message: impl AsRef<str>) {
        if !self.quiet {
            self.line_err(message.as_ref());
        }
    }

    /// A warning on stderr (kept under --quiet: it is about the user's input).
    pub fn warn(&self, message: impl AsRef<str>) {
        self.line_err(&format!(
            "{} {}",
            self.paint_err(Style::Yellow, "warning:"),
            message.as_ref()
        ));
    }

    pub fn error(&self, err: &Error) {
        let mut text = format!("{} {err}", self.paint_err(Style::Red, "error:"));
        if let Some(hint) = err.hint() {
            text.push_str(&format!(
                "\n  {} {hint}",
                self.paint_err(Style::Bold, "hint:")
            ));
        }
        self.line_err(&text);
    }

    /// Data on stdout (a live bar on the same terminal is lifted meanwhile).
    pub fn data(&self, text: impl AsRef<str>) {
        self.progress.suspend(|| {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`kubelab lab plan | head`) is not an error worth a panic.
            let _ = writeln!(out, "{}", text.as_ref());
        });
    }

    /// A JSON document on stdout; `value` must carry `schema_version`.
    pub fn json<T: Serialize>(&self, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::other(format!("could not encode JSON: {e}"), ""))?;
        self.data(text);
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One phase's progress: see [`Printer::phase`]. Shared by the phase's
/// concurrent steps; [`PhaseProgress::finish`] ends it with its summary, and
/// dropped unfinished (the phase failed) its live line says where it stopped.
pub struct PhaseProgress<'p> {
    printer: &'p Printer,
    name: String,
    started: Instant,
    /// The live line; `None` when progress is a line per node.
    bar: Option<ProgressBar>,
    /// The nodes started and not yet ended, oldest first.
    running: Arc<Mutex<Vec<String>>>,
    done: std::sync::atomic::AtomicUsize,
    total: usize,
}

impl PhaseProgress<'_> {
    /// `node` has started: `  node  what` unless the phase is a live line.
    pub fn start(&self, node: &str, what: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => {
                lock(&self.running).push(node.to_string());
                bar.tick();
            }
            None => self.printer.info(node_line(node, what.as_ref())),
        }
    }

    /// `node` has finished: `  node  what` unless the phase is a live line.
    pub fn done(&self, node: &str, what: impl AsRef<str>) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match &self.bar {
            Some(bar) => {
                lock(&self.running).retain(|n| n != node);
                bar.inc(1);
            }
            None => self.printer.info(node_line(node, what.as_ref())),
        }
    }

    /// `node` has failed; `what`, if given, is printed either way (above
    /// the live line).
    pub fn failed(&self, node: &str, what: Option<&str>) {
        if let Some(bar) = &self.bar {
            lock(&self.running).retain(|n| n != node);
            bar.tick();
        }
        if let Some(what) = what {
            self.printer.info(node_line(node, what));
        }
    }

    /// Ends the phase with `{name}: done in x s`.
    pub fn finish(self) {
        let summary = phase_summary(&self.name, self.started.elapsed());
        self.finish_with(summary);
    }

    /// Ends the phase with `summary` in place of its live line.
    pub fn finish_with(self, summary: impl AsRef<str>) {
        let printer = self.printer;
        self.clear();
        printer.info(summary);
    }

    /// Ends the phase with no summary: the live line goes, nothing is
    /// printed in its place (for a flow with a summary line of its own).
    pub fn clear(mut self) {
        if let Some(bar) = self.bar.take() {
            self.printer.clear_bar(&bar);
        }
    }
}

impl Drop for PhaseProgress<'_> {
    fn drop(&mut self) {
        // Unfinished: the phase failed or was interrupted. The per-node
        // lines said so already; a live line says how far it got.
        if let Some(bar) = self.bar.take() {
            self.printer.clear_bar(&bar);
            self.printer.info(phase_stopped(
                &self.name,
                self.done.load(std::sync::atomic::Ordering::SeqCst),
                self.total,
                self.started.elapsed(),
            ));
        }
    }
}

/// `  worker0      workers (3 files sent)`: a node's line.
fn node_line(node: &str, what: &str) -> String {
    format!("  {node:<12} {what}")
}

/// A phase's live line: `workers: 2/3 nodes, 12 s, waiting on worker2`
/// (`waiting on worker0 and 2 more` while several run).
pub fn phase_line(
    name: &str,
    done: u64,
    total: u64,
    elapsed: Duration,
    running: &[String],
) -> String {
    let mut line = format!("{name}: {done}/{total} nodes, {} s", elapsed.as_secs());
    match running {
        [] => {}
        [one] => line.push_str(&format!(", waiting on {one}")),
        [first, rest @ ..] => {
            line.push_str(&format!(", waiting on {first} and {} more", rest.len()))
        }
    }
    line
}

/// A phase's summary: `workers: done in 12.3 s`.
pub fn phase_summary(name: &str, elapsed: Duration) -> String {
    format!("{name}: done in {:.1} s", elapsed.as_secs_f64())
}

/// What a failed phase's live line becomes: `etcd: stopped after 2/3 nodes, 12.3 s`.
fn phase_stopped(name: &str, done: usize, total: usize, elapsed: Duration) -> String {
    format!(
        "{name}: stopped after {done}/{total} nodes, {:.1} s",
        elapsed.as_secs_f64()
    )
}

fn styled(color: bool, style: Style, text: &str) -> String {
    if !color {
        return text.to_string();
    }
    let code = match style {
        Style::Bold => "1",
        Style::Yellow => "33",
        Style::Red => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// How many columns `cell` takes on a terminal: its characters, less the
/// escape sequences of its colours (`ESC [ ... m`).
fn visible_width(cell: &str) -> usize {
    let mut width = 0;
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

/// Lays rows out in aligned columns, headers first; a coloured cell is as
/// wide as its text.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| visible_width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(visible_width(cell));
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(visible_width(cell)) + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut lines = vec![line(headers.to_vec())];
    for row in rows {
        lines.push(line(row.iter().map(String::as_str).collect()));
    }
    lines.join("\n")
}

/// `7808` -> `7.6 GiB`.
pub fn megabytes(mb: u64) -> String {
    if mb >= 1024 {
        format!("{:.1} GiB", mb as f64 / 1024.0)
    } else {
        format!("{mb} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A printer whose stderr lines are recorded: as if piped, or on a
    /// terminal with `-v`.
    fn capturing(stderr_tty: bool, verbose: bool) -> (Printer, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut printer = Printer::for_streams(false, stderr_tty, false, true).verbose(verbose);
        let record = Arc::clone(&lines);
        printer.stderr = Some(Stderr(Arc::new(move |text: &str| {
            lock(&record).push(text.to_string())
        })));
        (printer, lines)
    }

    /// What a test's printer writes its stderr lines to.
    #[derive(Clone)]
    pub(super) struct Stderr(pub(super) Arc<dyn Fn(&str) + Send + Sync>);

    impl std::fmt::Debug for Stderr {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Stderr")
        }
    }

    /// A terminal of 80 columns, enough of one for indicatif's drawing:
    /// `\r`, auto-wrap at the last column, cursor up and down, clear line.
    #[derive(Debug, Default)]
    struct Screen {
        rows: Vec<Vec<char>>,
        row: usize,
        col: usize,
    }

    const WIDTH: usize = 80;

    impl Screen {
        fn put(&mut self, c: char) {
            match c {
                '\r' => self.col = 0,
                '\n' => {
                    self.row += 1;
                    self.col = 0;
                }
                c => {
                    if self.col == WIDTH {
                        self.row += 1;
                        self.col = 0;
                    }
                    while self.rows.len() <= self.row {
                        self.rows.push(vec![' '; WIDTH]);
                    }
                    self.rows[self.row][self.col] = c;
                    self.col += 1;
                }
            }
        }

        fn text(&self) -> Vec<String> {
            let mut rows: Vec<String> = self
                .rows
                .iter()
                .map(|r| r.iter().collect::<String>().trim_end().to_string())
                .collect();
            while rows.last().is_some_and(String::is_empty) {
                rows.pop();
            }
            rows
        }
    }

    #[derive(Debug, Clone, Default)]
    struct Term(Arc<Mutex<Screen>>);

    impl indicatif::TermLike for Term {
        fn width(&self) -> u16 {
            WIDTH as u16
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            // As console's: no move at all (so no end to a pending wrap) for 0.
            if n > 0 {
                let mut s = lock(&self.0);
                s.row = s.row.saturating_sub(n);
                s.col = s.col.min(WIDTH - 1);
            }
            Ok(())
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            // As console's: no move at all (so no end to a pending wrap) for 0.
            if n > 0 {
                let mut s = lock(&self.0);
                s.row += n;
                s.col = s.col.min(WIDTH - 1);
            }
            Ok(())
        }
        fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
            let mut s = lock(&self.0);
            s.col = (s.col + n).min(WIDTH - 1);
            Ok(())
        }
        fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
            let mut s = lock(&self.0);
            s.col = s.col.saturating_sub(n);
            Ok(())
        }
        fn write_line(&self, line: &str) -> std::io::Result<()> {
            self.write_str(line)?;
            self.write_str("\n")
        }
        fn write_str(&self, text: &str) -> std::io::Result<()> {
            let mut s = lock(&self.0);
            text.chars().for_each(|c| s.put(c));
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            let mut s = lock(&self.0);
            let row = s.row;
            if let Some(r) = s.rows.get_mut(row) {
                r.fill(' ');
            }
            s.col = 0;
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A printer on a terminal, drawing on `Term`.
    fn on_terminal() -> (Printer, Term) {
        let term = Term::default();
        let mut printer = Printer::for_streams(false, true, false, true);
        printer.progress =
            MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let stderr = term.clone();
        printer.stderr = Some(Stderr(Arc::new(move |text: &str| {
            let _ = indicatif::TermLike::write_line(&stderr, text);
        })));
        (printer, term)
    }

    /// What the engine does for one phase of three controllers.
    fn three_controllers(printer: &Printer) {
        let progress = printer.phase("controllers", 3, Some("controllers: 3 node(s)".into()));
        for n in ["controller0", "controller1", "controller2"] {
            progress.start(n, "controllers (4 files sent)");
        }
        progress.done("controller0", "controllers done (1.5 s)");
        progress.done("controller2", "controllers done (2.0 s)");
        progress.done("controller1", "controllers done (2.5 s)");
        progress.finish();
    }

    #[test]
    fn piped_or_verbose_a_phase_is_todays_line_per_node() {
        for (tty, verbose) in [(false, false), (false, true), (true, true)] {
            let (printer, lines) = capturing(tty, verbose);
            three_controllers(&printer);
            let lines = lock(&lines).clone();
            let (last, per_node) = lines.split_last().unwrap();
            assert_eq!(
                per_node,
                [
                    "controllers: 3 node(s)",
                    "  controller0  controllers (4 files sent)",
                    "  controller1  controllers (4 files sent)",
                    "  controller2  controllers (4 files sent)",
                    "  controller0  controllers done (1.5 s)",
                    "  controller2  controllers done (2.0 s)",
                    "  controller1  controllers done (2.5 s)",
                ],
                "tty {tty}, verbose {verbose}"
            );
            assert!(
                last.starts_with("controllers: done in ") && last.ends_with(" s"),
                "{last}"
            );
            // A failed phase says nothing more than its failed node's line.
            let (printer, lines) = capturing(tty, verbose);
            let progress = printer.phase("etcd", 3, Some("etcd: 3 node(s)".into()));
            progress.start("etcd0", "etcd (2 files sent)");
            progress.failed("etcd0", None);
            drop(progress);
            assert_eq!(
                *lock(&lines),
                ["etcd: 3 node(s)", "  etcd0        etcd (2 files sent)"]
            );
        }
    }

    #[test]
    fn on_a_terminal_a_phase_is_one_line_that_becomes_its_summary() {
        let (printer, term) = on_terminal();
        let progress = printer.phase("controllers", 3, Some("controllers: 3 node(s)".into()));
        progress.start("controller0", "controllers (4 files sent)");
        progress.start("controller1", "controllers (4 files sent)");
        progress.done("controller0", "controllers done (1.5 s)");
        progress.bar.as_ref().unwrap().force_draw();
        let live = lock(&term.0).text();
        assert_eq!(live.len(), 1, "{live:?}");
        assert!(
            live[0].contains("controllers: 1/3 nodes, ")
                && live[0].ends_with(" s, waiting on controller1"),
            "{live:?}"
        );
        // A warning meanwhile goes above the live line, whole.
        printer.warn("etcd1 is slow");
        let with_warning = lock(&term.0).text();
        assert_eq!(
            with_warning[0], "warning: etcd1 is slow",
            "{with_warning:?}"
        );
        assert!(
            with_warning[1].contains("controllers: 1/3 nodes, "),
            "{with_warning:?}"
        );
        assert_eq!(with_warning.len(), 2, "{with_warning:?}");
        progress.done("controller1", "controllers done (2.5 s)");
        progress.finish();
        let after = lock(&term.0).text();
        assert_eq!(after.len(), 2, "{after:?}");
        assert_eq!(after[0], "warning: etcd1 is slow");
        assert!(
            after[1].starts_with("controllers: done in ") && after[1].ends_with(" s"),
            "no per-node line, only the summary: {after:?}"
        );

        // The next phase draws below; a failed one says how far it got.
        let progress = printer.phase("workers", 2, Some("workers: 2 node(s)".into()));
        progress.start("worker0", "workers (9 files sent)");
        progress.done("worker0", "workers done (1.0 s)");
        progress.start("worker1", "workers (9 files sent)");
        progress.failed("worker1", None);
        drop(progress);
        let failed = lock(&term.0).text();
        assert_eq!(failed.len(), 3, "{failed:?}");
        assert!(
            failed[2].starts_with("workers: stopped after 1/2 nodes, "),
            "{failed:?}"
        );
    }

    #[test]
    fn a_phase_without_heading_or_summary_adds_no_line_but_its_nodes() {
        // As the VMs booted again after a powered-off snapshot: piped, the
        // per-node lines only; on a terminal, nothing left behind.
        let boot_again = |printer: &Printer| {
            let progress = printer.phase("machines", 1, None);
            progress.start("dns0", "booting");
            progress.done("dns0", "running (3.0 s)");
            progress.clear();
        };
        let (printer, lines) = capturing(false, false);
        boot_again(&printer);
        assert_eq!(
            *lock(&lines),
            ["  dns0         booting", "  dns0         running (3.0 s)"]
        );
        let (printer, term) = on_terminal();
        boot_again(&printer);
        assert_eq!(lock(&term.0).text(), Vec::<String>::new());
        // A summary of the flow's own replaces the live line.
        let progress = printer.phase("machines", 1, None);
        progress.start("dns0", "booting");
        progress.failed("dns0", Some("failed"));
        progress.finish_with("10 VMs running after 41.0 s");
        assert_eq!(
            lock(&term.0).text(),
            ["  dns0         failed", "10 VMs running after 41.0 s"]
        );
    }

    #[test]
    fn the_live_line_names_the_count_the_time_and_the_node_waited_on() {
        let running = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            phase_line(
                "workers",
                2,
                3,
                Duration::from_millis(12_400),
                &running(&["worker2"])
            ),
            "workers: 2/3 nodes, 12 s, waiting on worker2"
        );
        assert_eq!(
            phase_line(
                "controllers",
                0,
                3,
                Duration::from_secs(75),
                &running(&["controller0", "controller1", "controller2"])
            ),
            "controllers: 0/3 nodes, 75 s, waiting on controller0 and 2 more"
        );
        assert_eq!(
            phase_line("dns", 1, 1, Duration::ZERO, &[]),
            "dns: 1/1 nodes, 0 s"
        );
        assert_eq!(
            phase_summary("workers", Duration::from_millis(12_340)),
            "workers: done in 12.3 s"
        );
    }

    #[test]
    fn colour_is_decided_for_each_stream() {
        // `lab verify > report.txt` from a terminal: stderr is one, stdout not.
        let to_file = Printer::for_streams(false, true, false, false);
        assert_eq!(to_file.paint(Style::Red, "Failed"), "Failed");
        assert_eq!(
            to_file.paint_err(Style::Red, "error:"),
            "\x1b[31merror:\x1b[0m"
        );
        // Both on a terminal; and NO_COLOR wins over both.
        let terminal = Printer::for_streams(true, true, false, false);
        assert_eq!(
            terminal.paint(Style::Red, "Failed"),
            "\x1b[31mFailed\x1b[0m"
        );
        let no_color = Printer::for_streams(true, true, false, true);
        assert_eq!(no_color.paint(Style::Red, "Failed"), "Failed");
        assert_eq!(no_color.paint_err(Style::Red, "error:"), "error:");
    }

    #[test]
    fn a_coloured_cell_keeps_its_row_aligned() {
        let terminal = Printer::for_streams(true, true, false, false);
        let rows = vec![
            vec![
                "1. machines".to_string(),
                "Passed".to_string(),
                "10 VMs".to_string(),
            ],
            vec![
                "2. dns".to_string(),
                terminal.paint(Style::Red, "Failed"),
                "no answer".to_string(),
            ],
            vec![
                "3. etcd".to_string(),
                terminal.paint(Style::Yellow, "Warned"),
                "slow".to_string(),
            ],
        ];
        let plain: Vec<String> = table(&["CHECK", "STATUS", "DETAIL"], &rows)
            .lines()
            .map(|l| {
                l.replace("\x1b[31m", "")
                    .replace("\x1b[33m", "")
                    .replace("\x1b[0m", "")
            })
            .collect();
        assert_eq!(
            plain,
            [
                "CHECK        STATUS  DETAIL",
                "1. machines  Passed  10 VMs",
                "2. dns       Failed  no answer",
                "3. etcd      Warned  slow",
            ]
        );
    }
}
