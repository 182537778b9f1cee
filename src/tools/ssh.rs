//! The system `ssh`, for `kubelab lab ssh` (an interactive session or one
//! command), configured from `vagrant ssh-config`.

use std::path::{Path, PathBuf};

use super::find;
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
