//! What `lab destroy` removes besides the machines: the hosts block and the
//! kubeconfig entries the lab owns (see `lab::owner`), never another lab's.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::LabSource;
use crate::error::Result;
use crate::lab::LoadedLab;
use crate::lab::owner::{Owner, recorded_name};
use crate::printer::Printer;
use crate::settings::Settings;
use crate::tools::Runner;

/// Whether kubelab created anything for the lab in `state_dir` (a VM, or a
/// static host it provisioned): state.json records a node.
fn was_up(state_dir: &Path) -> bool {
    #[derive(Deserialize)]
    struct Nodes {
        #[serde(default)]
        nodes: serde_json::Map<String, serde_json::Value>,
    }
    fs_err::read(state_dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Nodes>(&b).ok())
        .is_some_and(|n| !n.nodes.is_empty())
}

/// What `lab destroy` removes besides the machines: the lab as its
/// `.kubelab/` recorded it at `lab up`, not as lab.yaml says today.
pub struct Recorded {
    /// The name its VMs, hosts block and kubeconfig entries carry.
    pub name: String,
    owner_id: Option<String>,
    was_up: bool,
    /// `.kubelab/pki/ca.pem`: what its kubeconfig entries trust.
    ca_pem: Option<Vec<u8>>,
    state_dir: PathBuf,
}

impl Recorded {
    /// Reads the record and says when it names another lab than lab.yaml
    /// (renamed, or lab.yaml deleted and the built-in lab loaded).
    pub fn of(loaded: &LoadedLab, printer: &Printer) -> Result<Recorded> {
        let state_dir = loaded.state_dir();
        let owner = Owner::load(&state_dir)?;
        let name = recorded_name(&state_dir)
            .or_else(|| owner.as_ref().map(|o| o.lab.clone()))
            .unwrap_or_else(|| loaded.lab.name.clone());
        if name != loaded.lab.name {
            printer.info(format!(
                "{} holds lab {name}, but {} names lab {} (renamed since `lab up`, or the lab file is gone): removing what lab {name} made",
                state_dir.display(),
                match &loaded.lab.source {
                    LabSource::File(p) => p.display().to_string(),
                    LabSource::BuiltIn => "the built-in default lab".to_string(),
                },
                loaded.lab.name
            ));
        }
        Ok(Recorded {
            name,
            owner_id: owner.map(|o| o.id),
            was_up: was_up(&state_dir),
            ca_pem: fs_err::read(state_dir.join("pki/ca.pem")).ok(),
            state_dir,
        })
    }

    /// Before a VM goes: a hosts file kubelab cannot edit would stop the
    /// destroy half way.
    pub fn preflight(&self, settings: &Settings) -> Result<()> {
        crate::hosts_file::preflight(&settings.hosts_file, &self.name)
    }

    /// Removes the lab's hosts block and kubeconfig entries, only those that
    /// are this lab's, and says what it removed and what it left.
    pub async fn forget_shared(
        &self,
        settings: &Settings,
        runner: &Runner,
        printer: &Printer,
    ) -> Result<()> {
        self.forget_hosts_block(settings, runner, printer).await?;
        crate::kubeconfig::forget(&self.name, self.ca_pem.as_deref(), settings, printer);
        Ok(())
    }

    async fn forget_hosts_block(
        &self,
        settings: &Settings,
        runner: &Runner,
        printer: &Printer,
    ) -> Result<()> {
        let path = &settings.hosts_file;
        let _host = settings.host_lock()?;
        let existing = crate::hosts_file::read(path)?;
        let owner = crate::hosts_file::block_owner(&existing, &self.name)
            .map_err(|p| p.into_error(path))?;
        let ours = match &owner {
            None => {
                printer.info(format!(
                    "{} holds no block of lab {}",
                    path.display(),
                    self.name
                ));
                return Ok(());
            }
            Some(Some(id)) => self.owner_id.as_deref() == Some(id.as_str()),
            // Written before blocks carried an id: this lab's if it was up.
            Some(None) => self.was_up,
        };
        if !ours {
            let why = if !self.was_up {
                format!(
                    "lab {} was never brought up from {}, so the block is another lab's of that name",
                    self.name,
                    self.state_dir.display()
                )
            } else {
                format!(
                    "it carries another lab's id ({}), not this lab's ({})",
                    owner.flatten().unwrap_or_default(),
                    self.owner_id.as_deref().unwrap_or("none")
                )
            };
            printer.info(format!(
                "left the kubelab {} block in {}: {why}",
                self.name,
                path.display()
            ));
            return Ok(());
        }
        let written =
            crate::hosts_file::update(path, &self.name, None, &self.state_dir, runner, |why| {
                printer.info(why)
            })
            .await?;
        match written {
            crate::hosts_file::Written::Unchanged => {}
            crate::hosts_file::Written::InPlace { backup } => printer.info(format!(
                "removed the kubelab {} block from {} (in place: it is a mount point; backup at {})",
                self.name,
                path.display(),
                backup.display()
            )),
            _ => printer.info(format!(
                "removed the kubelab {} block from {}",
                self.name,
                path.display()
            )),
        }
        Ok(())
    }
}
