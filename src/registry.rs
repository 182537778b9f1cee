//! The labs this host knows: a small JSON file in the user's data dir
//! (`$XDG_DATA_HOME/kubelab/labs.json`, `KUBELAB_REGISTRY`), written by
//! `init` and `lab up`, `lab halt`, emptied of a lab by `lab destroy`. It lets
//! a second lab pick a free network and keeps two running labs off the same
//! addresses and SSH ports.

use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::config::LabSource;
use crate::error::{Error, Result};
use crate::lab::LoadedLab;

pub const REGISTRY_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Registry {
    pub schema_version: u32,
    #[serde(default)]
    pub labs: Vec<Entry>,
}

/// One lab, keyed by the directory its `.kubelab/` lives in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub dir: PathBuf,
    /// The lab file, or `None` for the built-in lab.
    pub lab_file: Option<PathBuf>,
    pub cidr: Ipv4Net,
    pub domain: String,
    /// The lowest and highest SSH port on 127.0.0.1 of its VMs; `(0, 0)`
    /// for a static lab, whose servers take no port on this host.
    pub ssh_ports: (u16, u16),
    pub state: LabState,
    pub updated_unix: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabState {
    /// Written by `kubelab init`; no VM yet.
    Defined,
    /// `lab up` ran (or is running): its VMs hold the network and ports.
    Up,
    /// `lab halt` stopped its VMs.
    Halted,
}

impl LabState {
    pub fn name(self) -> &'static str {
        match self {
            LabState::Defined => "defined",
            LabState::Up => "up",
            LabState::Halted => "halted",
        }
    }
}

impl Entry {
    pub fn of(loaded: &LoadedLab, state: LabState) -> Entry {
        let ports = loaded
            .topo
            .nodes
            .iter()
            .filter(|_| crate::machines::of(&loaded.lab).sizes_machines())
            .map(|n| n.ssh_port);
        let lo = ports.clone().min().unwrap_or(0);
        let hi = ports.max().unwrap_or(0);
        Entry {
            name: loaded.lab.name.clone(),
            dir: loaded.dir.clone(),
            lab_file: match &loaded.lab.source {
                LabSource::File(p) => Some(std::path::absolute(p).unwrap_or_else(|_| p.clone())),
                LabSource::BuiltIn => None,
            },
            cidr: loaded.lab.network.cidr,
            domain: loaded.lab.network.domain.clone(),
            ssh_ports: (lo, hi),
            state,
            updated_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// False when its directory was deleted: the lab is gone with it.
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Why this lab and `other` cannot run side by side, if they cannot.
    pub fn clash(&self, other: &Entry) -> Option<String> {
        let mut why = Vec::new();
        if self.name == other.name {
            why.push(format!(
                "the same name {:?} (its VMs are named kubelab-{}-<node>)",
                self.name, self.name
            ));
        }
        if self.cidr.contains(&other.cidr.network()) || other.cidr.contains(&self.cidr.network()) {
            why.push(format!(
                "network.cidr {} overlaps its {}",
                self.cidr, other.cidr
            ));
        }
        let forwards = |e: &Entry| e.ssh_ports != (0, 0);
        if forwards(self)
            && forwards(other)
            && self.ssh_ports.0 <= other.ssh_ports.1
            && other.ssh_ports.0 <= self.ssh_ports.1
        {
            why.push(format!(
                "SSH ports {}-{} overlap its {}-{}",
                self.ssh_ports.0, self.ssh_ports.1, other.ssh_ports.0, other.ssh_ports.1
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

/// Reads the registry; a missing file is an empty registry.
pub fn load(path: &Path) -> Result<Registry> {
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Registry {
                schema_version: REGISTRY_SCHEMA_VERSION,
                labs: Vec::new(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    serde_json::from_str(&text).map_err(|e| {
        Error::other(
            format!("{}: not a kubelab lab registry: {e}", path.display()),
            "delete it (kubelab writes it again as labs are initialised and brought up)",
        )
    })
}

fn save(path: &Path, registry: &Registry) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(registry)
        .map_err(|e| Error::other(format!("could not encode the lab registry: {e}"), ""))?;
    crate::fsutil::write_atomic(path, format!("{text}\n").as_bytes(), 0o644)?;
    Ok(())
}

/// The host-wide lock for the registry at `path` (and the other things labs
/// share): `<registry>.lock` beside it. Every read-modify-write of the
/// registry holds it, so two kubelabs never lose an entry or claim one
/// network twice.
pub fn lock(path: &Path) -> Result<crate::state::HostLock> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "labs.json".into());
    crate::state::HostLock::wait(&path.with_file_name(format!("{name}.lock")))
}

/// One lab per folder: another lab file there is refused, never recorded
/// over the folder's lab.
fn check_folder_of(path: &Path, registry: &Registry, entry: &Entry) -> Result<()> {
    if let Some(old) = registry.labs.iter().find(|e| e.dir == entry.dir) {
        crate::lab::owner::refuse_other(
            &entry.dir,
            entry.lab_file.as_deref(),
            &old.name,
            old.lab_file.as_deref(),
            &format!("the folder {} (in {})", entry.dir.display(), path.display()),
        )?;
    }
    Ok(())
}

/// What `record` would refuse for `loaded`, checked without writing
/// (`lab up --dry-run`).
pub fn check_record(path: &Path, loaded: &LoadedLab) -> Result<()> {
    check_folder_of(path, &load(path)?, &Entry::of(loaded, LabState::Up))
}

/// Adds or replaces the lab's entry (by directory).
pub fn record(path: &Path, entry: Entry) -> Result<()> {
    let _lock = lock(path)?;
    let mut registry = load(path)?;
    check_folder_of(path, &registry, &entry)?;
    registry.schema_version = REGISTRY_SCHEMA_VERSION;
    registry.labs.retain(|e| e.dir != entry.dir);
    registry.labs.push(entry);
    save(path, &registry)
}

/// The entry of the lab in `dir`, if recorded.
pub fn entry(path: &Path, dir: &Path) -> Result<Option<Entry>> {
    Ok(load(path)?.labs.into_iter().find(|e| e.dir == dir))
}

/// After a failed `lab up`: the registry says what really happened. If no
/// VM of the lab was created (no VirtualBox, bad input, a full disk), the
/// entry goes back to what it was before (`before`; none: removed), so a lab
/// that never ran holds no network or name. VMs that exist keep it `up`.
pub fn after_failed_up(path: &Path, loaded: &LoadedLab, before: Option<Entry>) -> Result<()> {
    let state_path = loaded.state_dir().join("state.json");
    let created = match crate::state::State::load(&state_path, &loaded.lab.name) {
        Ok(state) => state
            .nodes
            .values()
            .any(|n| n.machine != crate::state::MachineStatus::Failed),
        // Unreadable: say nothing new.
        Err(_) => return Ok(()),
    };
    if created {
        return Ok(());
    }
    match before {
        Some(entry) => record(path, entry),
        None => forget(path, &loaded.dir),
    }
}

/// `kubelab labs forget LAB`: drops the entries named `lab` (or whose
/// directory is `lab`), without touching any file or VM. A lab whose folder
/// is still there is refused unless `force`: `lab destroy` is the way to
/// remove it.
pub fn forget_by_user(
    settings: &crate::settings::Settings,
    lab: &str,
    force: bool,
    printer: &crate::printer::Printer,
) -> Result<()> {
    let path = settings.registry.as_path();
    let _lock = lock(path)?;
    let mut registry = load(path)?;
    let as_dir = std::path::absolute(lab).ok();
    let matches = |e: &Entry| e.name == lab || as_dir.as_deref() == Some(e.dir.as_path());
    let found: Vec<Entry> = registry
        .labs
        .iter()
        .filter(|e| matches(e))
        .cloned()
        .collect();
    if found.is_empty() {
        return Err(Error::usage(
            format!("no lab named {lab:?} in {}", path.display()),
            format!(
                "`kubelab labs` lists them: {}",
                if registry.labs.is_empty() {
                    "there are none".to_string()
                } else {
                    registry
                        .labs
                        .iter()
                        .map(|e| e.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ));
    }
    if !force
        && let Some(alive) = found
            .iter()
            .find(|e| e.lab_file.as_ref().is_none_or(|f| f.exists()))
        && alive.exists()
    {
        let file = alive
            .lab_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("{}/lab.yaml", alive.dir.display()));
        return Err(Error::usage(
            format!(
                "lab {} is still there ({}): forgetting it would leave its VMs, hosts block and kubeconfig entries behind",
                alive.name,
                alive.dir.display()
            ),
            format!(
                "`kubelab --lab {file} lab destroy` removes it properly; or pass --force to only drop it from the list"
            ),
        ));
    }
    registry.labs.retain(|e| !matches(e));
    save(path, &registry)?;
    for e in &found {
        printer.info(format!(
            "forgot lab {} ({}, {}); nothing on disk or in VirtualBox was touched",
            e.name,
            e.dir.display(),
            e.cidr
        ));
        for left in left_behind(settings, &e.name, &registry) {
            printer.info(left);
        }
    }
    Ok(())
}

/// What a forgotten lab may have left that labs share, and how to remove
/// it by hand: its hosts block and kubeconfig entries (when no other lab of
/// that name, still in the registry, may own them).
fn left_behind(
    settings: &crate::settings::Settings,
    name: &str,
    registry: &Registry,
) -> Vec<String> {
    if registry.labs.iter().any(|e| e.name == name) {
        return Vec::new();
    }
    let mut left = Vec::new();
    let hosts = &settings.hosts_file;
    if let Ok(text) = crate::hosts_file::read(hosts)
        && let Ok(Some((start, stop))) = crate::hosts_file::block_span(&text, name)
    {
        let line = |at: usize| text[..at].matches('\n').count() + 1;
        left.push(format!(
            "its block stays in {} (lines {}-{}, `# BEGIN kubelab {name}` to `# END kubelab {name}`): delete those lines if its VMs are gone",
            hosts.display(),
            line(start),
            line(stop.saturating_sub(1)),
        ));
    }
    if let Ok(file) = crate::kubeconfig::user_file(settings)
        && let Ok(text) = fs_err::read_to_string(&file)
        && text.contains(&crate::kubeconfig::entry_name(name))
    {
        let entry = crate::kubeconfig::entry_name(name);
        left.push(format!(
            "its context stays in {}: `kubectl config delete-context {entry}; kubectl config delete-cluster {entry}; kubectl config delete-user {entry}` removes it",
            file.display()
        ));
    }
    left
}

/// Removes the lab in `dir`, if recorded.
pub fn forget(path: &Path, dir: &Path) -> Result<()> {
    let _lock = lock(path)?;
    let mut registry = load(path)?;
    let before = registry.labs.len();
    registry.labs.retain(|e| e.dir != dir);
    if registry.labs.len() != before {
        save(path, &registry)?;
    }
    Ok(())
}

/// Refuses to bring `loaded` up while another lab that is up uses its
/// name, addresses or SSH ports.
pub fn check_no_clash(path: &Path, loaded: &LoadedLab) -> Result<()> {
    let me = Entry::of(loaded, LabState::Up);
    let registry = load(path)?;
    for other in registry
        .labs
        .iter()
        .filter(|e| e.dir != me.dir && e.state == LabState::Up && e.exists())
    {
        if let Some(why) = me.clash(other) {
            let file = other
                .lab_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("the built-in lab in {}", other.dir.display()));
            let gone = other.lab_file.as_ref().is_some_and(|f| !f.exists());
            return Err(Error::usage(
                format!(
                    "lab {} clashes with lab {} ({file}), which is up: {why}",
                    me.name, other.name
                ),
                if gone {
                    format!(
                        "{file} is gone; if that lab's VMs are gone too, `kubelab labs forget {}` drops its entry (else put its lab.yaml back and `lab destroy` it)",
                        other.name
                    )
                } else {
                    format!(
                        "give this lab its own {}, or `kubelab --lab {file} lab destroy` first",
                        crate::machines::of(&loaded.lab).clash_fields()
                    )
                },
            ));
        }
    }
    Ok(())
}

/// Notes for `kubelab init` without `--name`: the other labs on this host
/// (their folders still there) that the new lab cannot be up beside, and why.
pub fn init_notes(path: &Path, loaded: &LoadedLab) -> Result<Vec<String>> {
    let me = Entry::of(loaded, LabState::Defined);
    Ok(load(path)?
        .labs
        .iter()
        .filter(|e| e.dir != me.dir && e.exists())
        .filter_map(|other| {
            me.clash(other).map(|why| {
                format!(
                    "note: this lab clashes with lab {} in {}: {why}; the two cannot be up at once (`kubelab init --name NAME --force` picks a free name, network and SSH ports)",
                    other.name,
                    other.dir.display()
                )
            })
        })
        .collect())
}

/// The first /24 inside 192.168.56.0/21 (the range VirtualBox allows
/// without configuration) and the first SSH port base (2200, 2300, ...)
/// that no other lab in the registry (than the one in `dir`) uses.
pub fn next_free(registry: &Registry, dir: &Path) -> Result<(Ipv4Net, u16)> {
    let labs: Vec<&Entry> = registry
        .labs
        .iter()
        .filter(|e| e.exists() && e.dir != dir)
        .collect();
    let range: Ipv4Net = "192.168.56.0/21"
        .parse()
        .map_err(|_| Error::other("192.168.56.0/21 does not parse (a kubelab bug)", ""))?;
    let subnets = range
        .subnets(24)
        .map_err(|_| Error::other("192.168.56.0/21 has no /24 subnets (a kubelab bug)", ""))?;
    let cidr = subnets
        .into_iter()
        .find(|net| {
            labs.iter()
                .all(|e| !e.cidr.contains(&net.network()) && !net.contains(&e.cidr.network()))
        })
        .ok_or_else(|| {
            Error::usage(
                format!(
                    "every /24 of 192.168.56.0/21 is used by a lab on this host: {}",
                    labs.iter()
                        .map(|e| format!("{} ({})", e.name, e.cidr))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "destroy a lab you no longer need (`kubelab labs` lists them), or pick network.cidr outside the range and allow it in /etc/vbox/networks.conf",
            )
        })?;
    let base = (0u16..600)
        .map(|i| 2200 + i * 100)
        .find(|base| {
            labs.iter()
                .all(|e| !(*base <= e.ssh_ports.1 && e.ssh_ports.0 <= base + 99))
        })
        .ok_or_else(|| {
            Error::usage(
                "no free block of 100 SSH ports above 2200",
                "destroy a lab you no longer need (`kubelab labs` lists them)",
            )
        })?;
    Ok((cidr, base))
}

/// The host-wide lock lives with the registry it guards.
impl crate::settings::Settings {
    /// Serialises edits of what labs share on this host (the registry, the
    /// kubeconfig, the hosts file): held until dropped. Its file sits beside
    /// the registry.
    pub fn host_lock(&self) -> crate::error::Result<crate::state::HostLock> {
        lock(&self.registry)
    }
}

/// `kubelab init` of `lab_file` in `dir`: refused before anything is
/// written when the folder already belongs to another lab file, by its
/// `.kubelab/` or by the lab registry (`registry`).
pub fn check_folder(registry: &Path, lab_file: &Path) -> Result<()> {
    let dir = &std::path::absolute(crate::config::LabSource::File(lab_file.to_path_buf()).dir())?;
    let lab_file = std::path::absolute(lab_file)?;
    if let Some(owner) = crate::lab::owner::Owner::load(&dir.join(".kubelab"))? {
        crate::lab::owner::refuse_other(
            dir,
            Some(&lab_file),
            &owner.lab,
            owner.lab_file.as_deref(),
            &format!("{}", dir.join(".kubelab").display()),
        )?;
    }
    if let Some(entry) = entry(registry, dir)? {
        crate::lab::owner::refuse_other(
            dir,
            Some(&lab_file),
            &entry.name,
            entry.lab_file.as_deref(),
            &format!("the folder {} (in {})", dir.display(), registry.display()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, cidr: &str, ssh_ports: (u16, u16)) -> Entry {
        Entry {
            name: name.into(),
            dir: PathBuf::from(format!("/labs/{name}")),
            lab_file: None,
            cidr: cidr.parse().unwrap(),
            domain: "lan".into(),
            ssh_ports,
            state: LabState::Up,
            updated_unix: 0,
        }
    }

    #[test]
    fn forwarded_ports_clash_but_static_labs_take_none() {
        let a = entry("a", "192.168.56.0/24", (2202, 2252));
        let b = entry("b", "192.168.57.0/24", (2250, 2300));
        assert!(a.clash(&b).unwrap().contains("SSH ports 2202-2252 overlap"));
        // Two static labs whose servers all listen on 22 elsewhere, and a
        // static lab beside a VirtualBox one: no port is shared here.
        let s1 = entry("s1", "10.0.10.0/24", (0, 0));
        let s2 = entry("s2", "10.0.20.0/24", (0, 0));
        assert_eq!(s1.clash(&s2), None);
        assert_eq!(s1.clash(&a), None);
        assert_eq!(a.clash(&s1), None);
        // What Entry::of records: the VMs' forwards, none for servers.
        let loaded = |yaml: &str, dir: &Path| {
            let lab = crate::lab::parse(yaml, crate::config::LabSource::File(dir.join("lab.yaml")))
                .unwrap();
            crate::lab::LoadedLab {
                topo: crate::topology::Topology::new(&lab),
                lab,
                dir: dir.to_path_buf(),
            }
        };
        let dir = crate::config::tests::key_dir();
        let vbox = Entry::of(&loaded("name: v\n", dir.path()), LabState::Up);
        assert!(vbox.ssh_ports.0 > 2200 && vbox.ssh_ports.1 > vbox.ssh_ports.0);
        let yaml = format!("name: s\n{}", crate::config::tests::static_lab_yaml("", 1));
        let servers = Entry::of(&loaded(&yaml, dir.path()), LabState::Up);
        assert_eq!(servers.ssh_ports, (0, 0));
        // Two static labs of the same name: refused, with a fix that fits
        // servers (no SSH port base to change).
        let other_dir = tempfile::tempdir().unwrap();
        let mut other = entry("s", "10.9.0.0/24", (0, 0));
        other.dir = other_dir.path().to_path_buf();
        let registry_path = dir.path().join("labs.json");
        save(
            &registry_path,
            &Registry {
                schema_version: REGISTRY_SCHEMA_VERSION,
                labs: vec![other],
            },
        )
        .unwrap();
        let err = check_no_clash(&registry_path, &loaded(&yaml, dir.path())).unwrap_err();
        let hint = err.hint().unwrap_or_default();
        assert!(err.to_string().contains("the same name"), "{err}");
        assert!(
            hint.contains("its own name and network.cidr") && !hint.contains("ssh_port_base"),
            "{hint}"
        );
        // Their names and networks still count.
        let s3 = entry("s1", "10.0.10.0/25", (0, 0));
        let why = s1.clash(&s3).unwrap();
        assert!(
            why.contains("the same name") && why.contains("overlaps"),
            "{why}"
        );
    }
}
