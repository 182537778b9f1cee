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
    color: bool,
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
        let stderr_tty = std::io::stderr().is_terminal();
        Printer {
            color: stderr_tty && !no_color,
            quiet,
            stderr_tty,
        }
    }

    /// Whether progress bars are drawn: stderr is a terminal, not --quiet.
    pub fn interactive(&self) -> bool {
        self.stderr_tty && !self.quiet
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match style {
            Style::Bold => "1",
            Style::Yellow => "33",
            Style::Red => "31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
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
            self.paint(Style::Yellow, "warning:"),
            message.as_ref()
        );
    }

    pub fn error(&self, err: &Error) {
        eprintln!("{} {err}", self.paint(Style::Red, "error:"));
        if let Some(hint) = err.hint() {
            eprintln!("  {} {hint}", self.paint(Style::Bold, "hint:"));
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

/// Lays rows out in aligned columns, headers first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
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
