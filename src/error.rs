//! The one error type of the program, and its exit codes.

use std::path::PathBuf;

/// Exit codes every command follows (documented in `--help` and the README).
pub mod exit {
    // 0: ok.
    /// A step or a check failed.
    pub const FAILED: i32 = 1;
    /// Bad input: a lab file, a flag or an argument.
    pub const BAD_INPUT: i32 = 2;
    /// Interrupted by Ctrl-C or SIGTERM.
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] Box<ConfigError>),

    /// A flag or argument that cannot work.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },

    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// An external program kubelab needs is not installed.
    #[error("`{program}` was not found on PATH; it is needed to {purpose}")]
    ToolMissing {
        program: String,
        purpose: String,
        hint: String,
    },

    /// An external program could not be started at all.
    #[error("failed to {purpose}: could not start `{command}`: {source}")]
    CommandStart {
        purpose: String,
        command: String,
        source: std::io::Error,
    },

    /// An external program ran and failed.
    #[error("{0}")]
    CommandFailed(Box<CommandFailure>),

    /// Several steps failed (for example several VMs did not boot).
    #[error("{summary}\n{}", .failures.iter().map(|e| indent(&format!("- {e}"))).collect::<Vec<_>>().join("\n"))]
    Several {
        summary: String,
        failures: Vec<Error>,
        hint: Option<String>,
    },

    /// Another kubelab process holds this lab's lock.
    #[error("another kubelab ({holder}) is working on this lab")]
    Locked { holder: String },

    #[error("interrupted")]
    Interrupted { hint: Option<String> },

    /// Checks ran and some failed; the report was already printed.
    #[error("{0}")]
    ChecksFailed(String),

    #[error("{message}")]
    Other {
        message: String,
        hint: Option<String>,
    },
}

/// What a failed external command leaves behind, for the error message.
#[derive(Debug)]
pub struct CommandFailure {
    pub purpose: String,
    pub command: String,
    /// `exited 1`, `was killed by signal 9`
    pub status: String,
    pub log: Option<PathBuf>,
    /// The last lines of its output.
    pub tail: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for CommandFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "failed to {}: `{}` {}",
            self.purpose, self.command, self.status
        )?;
        if let Some(log) = &self.log {
            write!(f, " (log: {})", log.display())?;
        }
        if !self.tail.is_empty() {
            write!(f, "\n{}", indent(&self.tail))?;
        }
        Ok(())
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn other(message: impl Into<String>, hint: impl Into<String>) -> Error {
        let hint = hint.into();
        Error::Other {
            message: message.into(),
            hint: (!hint.is_empty()).then_some(hint),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage { .. } => exit::BAD_INPUT,
            Error::Interrupted { .. } => exit::INTERRUPTED,
            _ => exit::FAILED,
        }
    }

    /// The likely fix, printed as a `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(err) => err.hint(),
            Error::CommandFailed(failure) => failure.hint.clone(),
            Error::Usage { hint, .. }
            | Error::Several { hint, .. }
            | Error::Interrupted { hint }
            | Error::Other { hint, .. } => hint.clone(),
            Error::ToolMissing { hint, .. } => Some(hint.clone()),
            Error::Locked { .. } => Some(
                "wait for it to finish, or stop it; the lock is released as soon as it exits"
                    .to_string(),
            ),
            Error::Io(_) | Error::CommandStart { .. } | Error::ChecksFailed(_) => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error::Config(Box::new(err))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// lab.yaml's problems (made by config, carried by Error::Config)
// ---------------------------------------------------------------------------

/// One thing wrong (or suspicious) in a lab file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Dotted field path (`nodes.worker.memory`), or empty for the whole file.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub(crate) fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        let hint = hint.into();
        Problem {
            path: path.into(),
            message: message.into(),
            hint: (!hint.is_empty()).then_some(hint),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: no such lab file")]
    Missing { path: std::path::PathBuf },
    #[error("could not read {path}: {source}")]
    Unreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name} is invalid:\n{}", render_problems(.problems))]
    Invalid {
        source_name: String,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Missing { path } => Some(format!(
                "run `kubelab init` to write a commented lab file there, or pass --lab with the right path (tried {})",
                path.display()
            )),
            _ => None,
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            p.to_string()
                .lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
