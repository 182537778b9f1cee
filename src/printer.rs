//! All terminal output. stdout carries data (tables, JSON, paths); stderr
//! carries progress and diagnostics. Colour only on a terminal and never with
//! NO_COLOR; progress bars only when stderr is a terminal and not `--quiet`.

use std::io::{IsTerminal, Write};

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
        Printer {
            color_out: stdout_tty && !no_color,
            color_err: stderr_tty && !no_color,
            quiet,
            stderr_tty,
        }
    }

    /// Whether progress bars are drawn: stderr is a terminal, not --quiet.
    pub fn interactive(&self) -> bool {
        self.stderr_tty && !self.quiet
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
            eprintln!("{}", message.as_ref());
        }
    }

    /// A warning on stderr (kept under --quiet: it is about the user's input).
    pub fn warn(&self, message: impl AsRef<str>) {
        eprintln!(
            "{} {}",
            self.paint_err(Style::Yellow, "warning:"),
            message.as_ref()
        );
    }

    pub fn error(&self, err: &Error) {
        eprintln!("{} {err}", self.paint_err(Style::Red, "error:"));
        if let Some(hint) = err.hint() {
            eprintln!("  {} {hint}", self.paint_err(Style::Bold, "hint:"));
        }
    }

    /// Data on stdout.
    pub fn data(&self, text: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`kubelab lab plan | head`) is not an error worth a panic.
        let _ = writeln!(out, "{}", text.as_ref());
    }

    /// A JSON document on stdout; `value` must carry `schema_version`.
    pub fn json<T: Serialize>(&self, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::other(format!("could not encode JSON: {e}"), ""))?;
        self.data(text);
        Ok(())
    }
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
