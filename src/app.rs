//! The commands: each reads its settings, does its work through the other
//! modules, and prints through the printer.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::{
    ArtifactsCommand, CacheCommand, Cli, Command, InitArgs, JsonArgs, LabCommand, RenderArgs,
    SnapshotCommand,
};
use crate::config::{self, Lab, LabSource, Role};
use crate::error::{Error, Result};
use crate::machines::Host;
use crate::printer::{self, Printer, SCHEMA_VERSION};
use crate::settings::Settings;
use crate::topology::{Phase, Topology};
use crate::{host, pki, render, yaml_edit};

/// A lab definition with its topology and the directory its state lives in.
pub struct LoadedLab {
    pub lab: Lab,
    pub topo: Topology,
    /// The folder holding lab.yaml; `.kubelab/` goes here.
    pub dir: PathBuf,
}

impl LoadedLab {
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".kubelab")
    }
}

/// Runs a command; `Ok(code)` is the exit code of a command that reports
/// its own outcome (`lab ssh`, `doctor`, `lab verify`).
pub fn run(cli: Cli, settings: &Settings, printer: &Printer) -> Result<i32> {
    let verbose = cli.verbose > 0;
    match cli.command {
        Command::Init(args) => init(cli.lab.as_deref(), &args, settings, printer).map(|()| 0),
        Command::Doctor(args) => {
            let loaded = load_lab(cli.lab.as_deref(), printer)?;
            block_on(crate::doctor::run(
                &loaded, settings, printer, args.json, verbose,
            ))
        }
        Command::Artifacts(ArtifactsCommand::Fetch(args)) => {
            let loaded = load_lab(cli.lab.as_deref(), printer)?;
            block_on(fetch_artifacts(
                &loaded,
                settings,
                printer,
                args.offline,
                &|_| true,
            ))
            .map(|_| 0)
        }
        Command::Cache(CacheCommand::Clean) => cache_clean(settings, printer).map(|()| 0),
        Command::Labs(args) => match &args.command {
            Some(crate::cli::LabsCommand::Forget(forget)) => {
                crate::registry::forget_by_user(settings, &forget.name, forget.force, printer)
                    .map(|()| 0)
            }
            None => labs(settings, printer, args.json.json).map(|()| 0),
        },
        Command::Completions(args) => crate::completions::completions(args.shell).map(|()| 0),
        Command::Man(args) => crate::completions::man(args.out.as_deref(), printer).map(|()| 0),
        Command::Lab(command) => {
            let loaded = load_lab(cli.lab.as_deref(), printer)?;
            let host = Host::new(&loaded, settings, printer, verbose);
            match command {
                LabCommand::Plan(args) => plan(&loaded, &args, settings, printer).map(|()| 0),
                LabCommand::Render(args) => render_cmd(&loaded, &args, printer).map(|()| 0),
                LabCommand::Up(args) => {
                    if let (Some(from), Some(until)) = (args.from, args.until)
                        && from > until
                    {
                        return Err(Error::usage(
                            format!(
                                "--from {from} --until {until} selects no phase: {from} comes after {until}"
                            ),
                            format!(
                                "swap them (`--from {until} --until {from}`), or use `--only {from}` for one phase"
                            ),
                        ));
                    }
                    let selection = crate::provision::Selection {
                        from: args.from,
                        until: args.until,
                        only: args.only.clone(),
                        node: args.node.clone(),
                    };
                    if let Some(name) = &args.snapshot {
                        crate::machines::check_snapshot_name(name)?;
                        if loaded.lab.provider == crate::config::Provider::Static {
                            return Err(Error::usage(
                                "--snapshot is for VirtualBox labs: a static lab's servers are never snapshotted by kubelab",
                                "drop --snapshot; use your servers' own tools for snapshots",
                            ));
                        }
                    }
                    // The check and the claim under one lock: two labs with
                    // one name or network cannot both pass it.
                    let before = {
                        let _registry = settings.host_lock()?;
                        crate::registry::check_no_clash(&settings.registry, &loaded)?;
                        let before = crate::registry::entry(&settings.registry, &loaded.dir)?;
                        crate::registry::record(
                            &settings.registry,
                            crate::registry::Entry::of(&loaded, crate::registry::LabState::Up),
                        )?;
                        before
                    };
                    let started = std::time::Instant::now();
                    let result = block_on(host.up(
                        args.jobs.map(usize::from),
                        args.no_hosts,
                        args.offline,
                        &selection,
                    ));
                    // Keeping the timings never hides how `lab up` ended.
                    if let Err(e) = keep_timings(&loaded, printer, started, &result) {
                        printer.warn(format!("could not keep this run's timings: {e}"));
                    }
                    if result.is_err()
                        && let Err(e) =
                            crate::registry::after_failed_up(&settings.registry, &loaded, before)
                    {
                        printer.warn(format!("could not correct the lab registry: {e}"));
                    }
                    result?;
                    crate::kubeconfig::after_up(&loaded, settings, printer)?;
                    match &args.snapshot {
                        Some(name) => block_on(host.snapshot_when_verified(name)).map(|()| 0),
                        None => Ok(0),
                    }
                }
                LabCommand::Kubeconfig(args) => {
                    crate::kubeconfig::run(&loaded, &args, settings, printer).map(|()| 0)
                }
                LabCommand::Scale(args) => block_on(host.scale(
                    &args.request,
                    &crate::machines::scale::ScaleOptions {
                        dry_run: args.dry_run,
                        yes: args.yes,
                        json: args.json,
                        jobs: args.jobs.map(usize::from),
                        no_hosts: args.no_hosts,
                        offline: args.offline,
                        until: args.until,
                    },
                ))
                .map(|()| 0),
                LabCommand::Reset(args) => {
                    block_on(host.reset(&args.name, args.no_hosts)).map(|()| 0)
                }
                LabCommand::Status(args) => block_on(host.status(args.json)).map(|()| 0),
                LabCommand::Timings(args) => timings(&loaded, printer, args.json).map(|()| 0),
                LabCommand::Halt => {
                    block_on(host.halt())?;
                    let halted = crate::registry::LabState::Halted;
                    crate::registry::record(
                        &settings.registry,
                        crate::registry::Entry::of(&loaded, halted),
                    )
                    .map(|()| 0)
                }
                LabCommand::Destroy(args) => {
                    block_on(host.destroy(args.yes))?;
                    crate::registry::forget(&settings.registry, &loaded.dir).map(|()| 0)
                }
                LabCommand::Ssh(args) => block_on(host.ssh(&args.node, &args.command)),
                LabCommand::Snapshot(cmd) => match cmd {
                    SnapshotCommand::Save(a) => block_on(host.snapshot_save(&a.name)).map(|()| 0),
                    SnapshotCommand::Restore(a) => {
                        block_on(host.snapshot_restore(&a.name)).map(|()| 0)
                    }
                    SnapshotCommand::Delete(a) => {
                        block_on(host.snapshot_delete(&a.name)).map(|()| 0)
                    }
                    SnapshotCommand::List(a) => host.snapshot_list(a.json).map(|()| 0),
                },
                LabCommand::ExportInventory(args) => {
                    crate::inventory::export(&loaded, &args, printer).map(|()| 0)
                }
                LabCommand::Certs(args) => certs(&loaded, &args, printer).map(|()| 0),
                LabCommand::Verify(args) => block_on(crate::verify::run(
                    &loaded,
                    settings,
                    printer,
                    &crate::verify::Options {
                        json: args.json,
                        only: args.only,
                        no_disruptive: args.no_disruptive,
                    },
                    verbose,
                )),
            }
        }
    }
}

fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(future)
}

/// Fetches (or resumes) every release file the selected phases copy to their
/// nodes, and returns them per phase as (path on the node, file in the
/// cache). Offline, nothing is downloaded and every missing file is named.
pub async fn fetch_artifacts(
    loaded: &LoadedLab,
    settings: &Settings,
    printer: &Printer,
    offline: bool,
    selected: &dyn Fn(Phase) -> bool,
) -> Result<std::collections::BTreeMap<Phase, Vec<(String, PathBuf)>>> {
    use crate::artifacts;
    let needs = artifacts::needs(
        &loaded.lab,
        selected,
        artifacts::node_arch(),
        settings.artifacts_mirror.as_deref(),
    )?;
    if needs.is_empty() {
        let distro = loaded.lab.etcd_source == config::ArtifactSource::Distro;
        printer.info(format!(
            "nothing to download: no selected phase needs a release file{}",
            if distro {
                " (etcd comes from the distribution: artifacts.etcd: distro)"
            } else {
                ""
            }
        ));
        return Ok(Default::default());
    }
    let cache = &settings.cache_dir;
    let downloads = artifacts::distinct(&needs);
    let missing: Vec<String> = downloads
        .iter()
        .filter(|a| !artifacts::cached_path(cache, a).exists())
        .map(|a| format!("  {} ({}, from {})", a.label(), a.file_name, a.url))
        .collect();
    if offline && !missing.is_empty() {
        return Err(Error::other(
            format!(
                "{} release file{} not in the cache ({}):\n{}",
                missing.len(),
                if missing.len() == 1 { " is" } else { "s are" },
                cache.display(),
                missing.join("\n")
            ),
            "run `kubelab artifacts fetch` while online, or drop --offline",
        ));
    }
    let client = artifacts::client()?;
    for a in &downloads {
        let cached = artifacts::cached_path(cache, a);
        if cached.exists() {
            printer.info(format!(
                "{}: in the cache ({})",
                a.label(),
                cached.display()
            ));
        } else {
            let bar = if printer.interactive() {
                indicatif::ProgressBar::new(0)
            } else {
                indicatif::ProgressBar::hidden()
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(a.label());
            printer.info(format!("downloading {}", a.url));
            let path = artifacts::fetch(&client, cache, a, offline, &|done, total| {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(done);
            })
            .await;
            bar.finish_and_clear();
            printer.info(format!(
                "{}: {} verified, cached at {}",
                a.label(),
                a.checksum.algorithm(),
                path?.display()
            ));
        }
        let binaries: Vec<&str> = needs
            .iter()
            .filter(|n| n.artifact == *a)
            .flat_map(|n| n.binaries.iter().copied())
            .collect();
        if !binaries.is_empty() {
            artifacts::extract_server_binaries(cache, a, &binaries)?;
        }
    }
    Ok(artifacts::uploads(cache, &needs))
}

fn cache_clean(settings: &Settings, printer: &Printer) -> Result<()> {
    let dir = &settings.cache_dir;
    if !dir.exists() {
        printer.info(format!("{} is empty already", dir.display()));
        return Ok(());
    }
    fs_err::remove_dir_all(dir)?;
    printer.info(format!(
        "removed {} (every lab's downloads; they are fetched again when needed)",
        dir.display()
    ));
    Ok(())
}

/// The default lab file when `--lab` is not given.
const DEFAULT_LAB_FILE: &str = "lab.yaml";

/// Finds and validates the lab: `--lab`, else ./lab.yaml, else the built-in one.
pub fn load_lab(explicit: Option<&Path>, printer: &Printer) -> Result<LoadedLab> {
    let lab = match explicit {
        Some(path) => config::load(path)?,
        None => {
            let path = Path::new(DEFAULT_LAB_FILE);
            if path.exists() {
                config::load(path)?
            } else {
                printer.info(
                    "note: no ./lab.yaml here, so this is the built-in default lab (`kubelab init` writes it out to edit)",
                );
                config::builtin()
            }
        }
    };
    for warning in &lab.warnings {
        printer.warn(warning.to_string());
    }
    let dir = std::path::absolute(lab.source.dir())?;
    let topo = Topology::new(&lab);
    Ok(LoadedLab { lab, topo, dir })
}

// ---------------------------------------------------------------------------
// lab up's timings
// ---------------------------------------------------------------------------

/// Prints where `lab up`'s time went and keeps it in state.json.
fn keep_timings(
    loaded: &LoadedLab,
    printer: &Printer,
    started: std::time::Instant,
    result: &Result<()>,
) -> Result<()> {
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(started.elapsed().as_secs()))
        .unwrap_or(0);
    let Some(run) = crate::timings::finish(started, started_unix, result) else {
        return Ok(());
    };
    printer.info(crate::timings::summary(&run));
    let path = loaded.state_dir().join("state.json");
    if !path.exists() {
        return Ok(());
    }
    let mut state = crate::state::State::load(&path, &loaded.lab.name)?;
    state.runs.push(run);
    let excess = state.runs.len().saturating_sub(crate::timings::KEPT_RUNS);
    state.runs.drain(..excess);
    state.save(&path)
}

#[derive(Serialize)]
struct TimingsJson<'a> {
    schema_version: u32,
    runs: &'a [crate::timings::Run],
}

fn timings(loaded: &LoadedLab, printer: &Printer, json: bool) -> Result<()> {
    let path = loaded.state_dir().join("state.json");
    let state = crate::state::State::load(&path, &loaded.lab.name)?;
    if json {
        return printer.json(&TimingsJson {
            schema_version: SCHEMA_VERSION,
            runs: &state.runs,
        });
    }
    if state.runs.is_empty() {
        printer.info("no `lab up` timed yet; `kubelab lab up` records each run");
        return Ok(());
    }
    printer.data(crate::timings::table(&state.runs));
    Ok(())
}

// ---------------------------------------------------------------------------
// kubelab labs
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct LabsJson {
    schema_version: u32,
    registry: String,
    labs: Vec<LabRow>,
}

#[derive(Serialize)]
struct LabRow {
    name: String,
    /// defined, up, halted, or gone (its directory was deleted).
    state: &'static str,
    cidr: String,
    domain: String,
    ssh_ports: String,
    /// The lab file; null for the built-in lab.
    lab_file: Option<String>,
    dir: String,
}

fn labs(settings: &Settings, printer: &Printer, json: bool) -> Result<()> {
    let registry = crate::registry::load(&settings.registry)?;
    let rows: Vec<LabRow> = registry
        .labs
        .iter()
        .map(|e| LabRow {
            name: e.name.clone(),
            state: if e.exists() { e.state.name() } else { "gone" },
            cidr: e.cidr.to_string(),
            domain: e.domain.clone(),
            ssh_ports: if e.ssh_ports == (0, 0) {
                "-".to_string()
            } else {
                format!("{}-{}", e.ssh_ports.0, e.ssh_ports.1)
            },
            lab_file: e.lab_file.as_ref().map(|p| p.display().to_string()),
            dir: e.dir.display().to_string(),
        })
        .collect();
    if json {
        return printer.json(&LabsJson {
            schema_version: SCHEMA_VERSION,
            registry: settings.registry.display().to_string(),
            labs: rows,
        });
    }
    if rows.is_empty() {
        printer.info(format!(
            "no labs yet ({} is empty); `kubelab init` writes one",
            settings.registry.display()
        ));
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            vec![
                r.name,
                r.state.to_string(),
                r.cidr,
                r.domain,
                r.ssh_ports,
                r.lab_file
                    .unwrap_or_else(|| format!("built-in lab in {}", r.dir)),
            ]
        })
        .collect();
    printer.data(printer::table(
        &["LAB", "STATE", "NETWORK", "DOMAIN", "SSH PORTS", "LAB FILE"],
        &table,
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// kubelab init
// ---------------------------------------------------------------------------

fn init(
    path: Option<&Path>,
    args: &InitArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<()> {
    let path = path.unwrap_or(Path::new(DEFAULT_LAB_FILE));
    if path.exists() && !args.force {
        return Err(Error::usage(
            format!("{} already exists; not overwriting it", path.display()),
            "pass --force to replace it with the default lab (your edits are lost), or edit it",
        ));
    }
    let host_mb = host::memory_mb(settings);
    let (mut text, changes) = sized_default_lab(host_mb);
    let _editing = crate::owner::init_locks(path)?;
    // From picking a free network to recording the lab: one init at a time,
    // so two never take the same network.
    let _registry = settings.host_lock()?;
    crate::owner::check_folder(&settings.registry, path)?;
    if let Some(name) = &args.name {
        if !config::is_lab_name(name) {
            return Err(Error::usage(
                format!("--name {name:?} is not a valid lab name"),
                "use 1-40 lowercase letters, digits and '-', starting with a letter and not ending with '-' (it becomes part of VM and host names), such as `lab2`",
            ));
        }
        let registry = crate::registry::load(&settings.registry)?;
        let dir = std::path::absolute(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
        let (cidr, ssh_port_base) = crate::registry::next_free(&registry, &dir)?;
        text = named_lab(&text, name, cidr, ssh_port_base);
        // A bad name fails here, before anything is written.
        config::parse(&text, LabSource::File(path.to_path_buf()))?;
        printer.info(format!(
            "lab {name}: network {cidr}, domain {name}.lan, SSH ports from {ssh_port_base} (free among the labs in {})",
            settings.registry.display()
        ));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(parent)?;
    }
    crate::fsutil::write_keeping(path, text.as_bytes(), 0o644)?;
    for change in &changes {
        printer.info(format!("lowered {change}"));
    }
    let loaded = load_lab(Some(path), printer)?;
    if args.name.is_none() {
        crate::registry::init_notes(&settings.registry, &loaded)?
            .iter()
            .for_each(|n| printer.info(n));
    }
    crate::registry::record(
        &settings.registry,
        crate::registry::Entry::of(&loaded, crate::registry::LabState::Defined),
    )?;
    let lab_flag = if path == Path::new(DEFAULT_LAB_FILE) {
        String::new()
    } else {
        let shown = path.display().to_string();
        // Quoted for a shell when it needs it.
        if shown
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
        {
            format!(" --lab {shown}")
        } else {
            format!(" --lab '{}'", shown.replace('\'', "'\\''"))
        }
    };
    printer.info(format!(
        "wrote {}; next: `kubelab{lab_flag} lab plan` to see what it makes",
        path.display()
    ));
    Ok(())
}

/// The default lab text renamed to `name`, on `cidr` (every address moved
/// to the same offset inside it), domain `<name>.lan` and `ssh_port_base`.
fn named_lab(text: &str, name: &str, cidr: ipnet::Ipv4Net, ssh_port_base: u16) -> String {
    let builtin = config::builtin();
    let moved = |addr: std::net::Ipv4Addr| {
        let offset = u32::from(addr) - u32::from(builtin.network.cidr.network());
        std::net::Ipv4Addr::from(u32::from(cidr.network()) + offset).to_string()
    };
    let mut edits: Vec<(Vec<&str>, String)> = vec![
        (vec!["name"], name.to_string()),
        (vec!["network", "cidr"], cidr.to_string()),
        (vec!["network", "domain"], format!("{name}.lan")),
        (vec!["network", "ssh_port_base"], ssh_port_base.to_string()),
        (vec!["nodes", "lb", "vip"], moved(builtin.vip)),
    ];
    for role in &builtin.roles {
        edits.push((
            vec!["nodes", role.role.key(), "first_address"],
            moved(role.first_address),
        ));
    }
    let mut text = text.to_string();
    for (path, value) in edits {
        if let Some(edited) = yaml_edit::set_scalar(&text, &path, &value) {
            text = edited;
        }
    }
    text
}

/// The default lab text, with memory lowered to fit `host_mb` (minus what the
/// host keeps for itself). Returns the text and what was changed.
pub fn sized_default_lab(host_mb: Option<u64>) -> (String, Vec<String>) {
    let mut text = config::DEFAULT_LAB_YAML.to_string();
    let Some(host_mb) = host_mb else {
        return (text, Vec::new());
    };
    let budget = host_mb.saturating_sub(host::HOST_RESERVE_MB);
    let lab = config::builtin();
    let mut memory: Vec<(Role, u32, u32)> = lab
        .roles
        .iter()
        .map(|r| (r.role, r.count, r.memory))
        .collect();
    let total = |m: &[(Role, u32, u32)]| {
        m.iter()
            .map(|(_, c, mem)| u64::from(*c) * u64::from(*mem))
            .sum::<u64>()
    };
    let original = total(&memory);
    if original <= budget {
        return (text, Vec::new());
    }
    // Workers first (they have the most slack), then every other role.
    let order = [
        Role::Worker,
        Role::Controller,
        Role::Etcd,
        Role::Lb,
        Role::Dns,
        Role::Registry,
    ];
    for role in order {
        if total(&memory) <= budget {
            break;
        }
        if let Some(entry) = memory.iter_mut().find(|(r, _, _)| *r == role) {
            entry.2 = role.defaults().min_memory;
        }
    }
    let mut changes = Vec::new();
    for ((role, _, before), (_, _, after)) in lab
        .roles
        .iter()
        .map(|r| (r.role, r.count, r.memory))
        .zip(memory.iter())
    {
        if before != *after {
            if let Some(edited) =
                yaml_edit::set_scalar(&text, &["nodes", role.key(), "memory"], &after.to_string())
            {
                text = edited;
            }
            changes.push(format!(
                "nodes.{}.memory from {before} to {after} MB",
                role.key()
            ));
        }
    }
    let now = total(&memory);
    let verdict = if now <= budget {
        format!("the lab's {now} MB fit")
    } else {
        format!(
            "even at the minimums the lab needs {now} MB, more than fits; `kubelab lab plan` shows the sum"
        )
    };
    let header = format!(
        "# kubelab init: this host has {host_mb} MB of RAM ({} MB kept for the host).\n# Lowered to fit: {}; {verdict}.\n#\n",
        host::HOST_RESERVE_MB,
        changes.join(", ")
    );
    text.insert_str(0, &header);
    (text, changes)
}

// ---------------------------------------------------------------------------
// kubelab lab plan
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct PlanJson<'a> {
    schema_version: u32,
    lab: &'a str,
    source: String,
    provider: String,
    /// `null` for a static lab, as are `memory` and each node's
    /// `memory_mb` and `cpus`: its servers exist, kubelab sizes no VM.
    #[serde(rename = "box")]
    vm_box: Option<&'a config::BoxSpec>,
    network: &'a config::Network,
    api: PlanApi<'a>,
    nodes: PlanNodes<'a>,
    memory: Option<PlanMemory>,
    versions: &'a config::Versions,
    phases: Vec<PlanPhase>,
    warnings: &'a [config::Problem],
}

#[derive(Serialize)]
#[serde(untagged)]
enum PlanNodes<'a> {
    Vms(&'a [crate::topology::Node]),
    Servers(Vec<serde_json::Value>),
}

#[derive(Serialize)]
struct PlanApi<'a> {
    #[serde(flatten)]
    endpoint: &'a crate::topology::ApiEndpoint,
    url: String,
}

#[derive(Serialize)]
struct PlanMemory {
    total_mb: u64,
    host_mb: Option<u64>,
    host_reserve_mb: u64,
    fits: Option<bool>,
}

#[derive(Serialize)]
struct PlanPhase {
    name: &'static str,
    description: &'static str,
}

fn plan(loaded: &LoadedLab, args: &JsonArgs, settings: &Settings, printer: &Printer) -> Result<()> {
    let LoadedLab { lab, topo, .. } = loaded;
    let total = topo.total_memory_mb();
    let host_mb = host::memory_mb(settings);
    let fits = host_mb.map(|h| total + host::HOST_RESERVE_MB <= h);
    let vms = lab.provider == config::Provider::Virtualbox;
    if args.json {
        return printer.json(&PlanJson {
            schema_version: SCHEMA_VERSION,
            lab: &lab.name,
            source: lab.source.to_string(),
            provider: lab.provider.to_string(),
            vm_box: vms.then_some(&lab.vm_box),
            network: &lab.network,
            api: PlanApi {
                endpoint: &topo.api,
                url: topo.api.url(),
            },
            nodes: match vms {
                true => PlanNodes::Vms(&topo.nodes),
                false => PlanNodes::Servers(static_plan_nodes(loaded)?),
            },
            memory: vms.then_some(PlanMemory {
                total_mb: total,
                host_mb,
                host_reserve_mb: host::HOST_RESERVE_MB,
                fits,
            }),
            versions: &lab.versions,
            phases: Phase::ALL
                .iter()
                .map(|p| PlanPhase {
                    name: p.name(),
                    description: plan_phase_description(lab, *p),
                })
                .collect(),
            warnings: &lab.warnings,
        });
    }
    printer.data(plan_text(loaded, host_mb));
    Ok(())
}

/// What a phase does for this lab: a static lab's machines exist already.
fn plan_phase_description(lab: &Lab, phase: Phase) -> &'static str {
    match phase {
        Phase::Machines if lab.provider == config::Provider::Static => {
            "check SSH and passwordless sudo on every host, write the hypervisor's hosts block"
        }
        _ => phase.description(),
    }
}

/// A static lab's nodes in the plan: no VM sizes (`null`), `ssh` says how
/// kubelab logs in and `ssh_port` is lab.yaml's (`null` when an alias
/// leaves it to ssh_config).
fn static_plan_nodes(loaded: &LoadedLab) -> Result<Vec<serde_json::Value>> {
    let targets = crate::tools::ssh::static_targets(&loaded.lab);
    let logins = crate::tools::ssh::static_logins(&loaded.lab);
    let null = serde_json::Value::Null;
    loaded
        .topo
        .nodes
        .iter()
        .map(|n| {
            let mut node = serde_json::to_value(n)
                .map_err(|e| Error::other(format!("could not encode JSON: {e}"), ""))?;
            if let (Some(fields), Some(target), Some(login)) = (
                node.as_object_mut(),
                targets.get(&n.name),
                logins.get(&n.name),
            ) {
                fields.insert("memory_mb".into(), null.clone());
                fields.insert("cpus".into(), null.clone());
                fields.insert("ssh_port".into(), target.port.into());
                fields.insert("ssh".into(), login.clone().into());
            }
            Ok(node)
        })
        .collect()
}

/// The human plan, as printed by `kubelab lab plan`.
pub fn plan_text(loaded: &LoadedLab, host_mb: Option<u64>) -> String {
    let LoadedLab { lab, topo, .. } = loaded;
    let mut out = String::new();
    let vms = lab.provider == config::Provider::Virtualbox;
    let machines = if vms {
        let box_version = lab
            .vm_box
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        format!(
            "box {}{box_version}, network {} (host {})",
            lab.vm_box.name,
            lab.network.cidr,
            lab.network.host_address()
        )
    } else {
        format!("your own servers, network {}", lab.network.cidr)
    };
    out.push_str(&format!(
        "Lab {} from {}\nProvider {}, {machines}, domain {}\n\n",
        lab.name, lab.source, lab.provider, lab.network.domain,
    ));
    // A static lab's servers have no VM sizes; the SSH column says how
    // kubelab logs in instead of a forwarded port.
    let logins = crate::tools::ssh::static_logins(lab);
    let rows: Vec<Vec<String>> = topo
        .nodes
        .iter()
        .map(|n| {
            let mut row = vec![
                n.name.clone(),
                n.role.to_string(),
                n.fqdn.clone(),
                n.address.to_string(),
            ];
            match logins.get(&n.name) {
                Some(login) => row.push(login.clone()),
                None => row.extend([
                    format!("{} MB", n.memory_mb),
                    n.cpus.to_string(),
                    n.ssh_port.to_string(),
                ]),
            }
            row.push(
                n.pod_cidr
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
            );
            row
        })
        .collect();
    let headers: &[&str] = if vms {
        &[
            "NODE", "ROLE", "FQDN", "ADDRESS", "MEMORY", "CPUS", "SSH", "POD CIDR",
        ]
    } else {
        &["NODE", "ROLE", "FQDN", "ADDRESS", "SSH", "POD CIDR"]
    };
    out.push_str(&printer::table(headers, &rows));
    out.push_str("\n\n");
    let lbs: Vec<&str> = topo.by_role(Role::Lb).map(|n| n.name.as_str()).collect();
    if topo.api.vip {
        out.push_str(&format!(
            "API endpoint  {} -> {} (VIP held by keepalived on {})\n",
            topo.api.url(),
            topo.api.address,
            lbs.join(", ")
        ));
    } else {
        out.push_str(&format!(
            "API endpoint  {} -> {} ({}; one load balancer, no VIP)\n",
            topo.api.url(),
            topo.api.address,
            lbs.join(", ")
        ));
    }
    out.push_str(&format!(
        "Networks      pods {} (a /24 per worker), services {} (cluster DNS at .10)\n",
        lab.network.pod_cidr, lab.network.service_cidr
    ));
    let total = topo.total_memory_mb();
    let memory_line = match host_mb {
        _ if !vms => None,
        Some(h) => {
            let verdict = if total + host::HOST_RESERVE_MB <= h {
                "fits".to_string()
            } else {
                format!(
                    "does NOT fit with {} kept for the host: lower memory or counts in lab.yaml",
                    printer::megabytes(host::HOST_RESERVE_MB)
                )
            };
            Some(format!(
                "{} for {} VMs; this host has {}: {verdict}",
                printer::megabytes(total),
                topo.nodes.len(),
                printer::megabytes(h)
            ))
        }
        None => Some(format!(
            "{} for {} VMs (this host's RAM is unknown)",
            printer::megabytes(total),
            topo.nodes.len()
        )),
    };
    if let Some(line) = memory_line {
        out.push_str(&format!("Memory        {line}\n"));
    }
    let v = &lab.versions;
    let marked = |field: &str, value: &str| {
        if v.overrides
            .iter()
            .any(|o| o == &format!("versions.{field}"))
        {
            format!("{value} (lab.yaml)")
        } else {
            value.to_string()
        }
    };
    let etcd = match lab.etcd_source {
        config::ArtifactSource::Distro => "the node's etcd-server package".to_string(),
        config::ArtifactSource::Release => marked("etcd", &v.etcd),
    };
    out.push_str(&format!(
        "Versions      kubernetes {} (bill of materials row {}): etcd {etcd}, containerd {}, runc {}, cni-plugins {}, crictl {}, coredns {}, pause {}\n\nPhases\n",
        v.kubernetes,
        v.release,
        marked("containerd", &v.containerd),
        marked("runc", &v.runc),
        marked("cni_plugins", &v.cni_plugins),
        v.crictl,
        marked("coredns", &v.coredns),
        v.pause,
    ));
    for (i, phase) in Phase::ALL.iter().enumerate() {
        out.push_str(&format!(
            "  {:>2}. {:<12} {}\n",
            i + 1,
            phase.name(),
            plan_phase_description(lab, *phase)
        ));
    }
    out.trim_end().to_string()
}

// ---------------------------------------------------------------------------
// kubelab lab render
// ---------------------------------------------------------------------------

/// The lab's PKI under .kubelab/pki/, signing only what is missing or stale.
/// Names what was written, never what it holds.
fn load_pki(loaded: &LoadedLab, printer: &Printer) -> Result<pki::Pki> {
    let dir = loaded.state_dir().join("pki");
    let pki = pki::load_or_create(&dir, &loaded.lab, &loaded.topo)?;
    if !pki.created.is_empty() {
        printer.info(format!(
            "PKI: wrote {} new certificate and key files in {}",
            pki.created.len(),
            dir.display()
        ));
    }
    Ok(pki)
}

/// The lab's lock for a command that may sign into `.kubelab/pki/`: two
/// signers at once would leave certificates that match no CA. In a lab
/// folder on a read-only file system nothing can be signed either, so the
/// PKI is read as it is, without the lock.
pub fn pki_lock(loaded: &LoadedLab, what: &str) -> Result<Option<crate::state::LabLock>> {
    match crate::owner::lock(loaded, what) {
        Ok(lock) => Ok(Some(lock)),
        Err(e @ Error::Locked { .. }) => Err(e),
        Err(e) => {
            let probe = if loaded.state_dir().exists() {
                loaded.state_dir()
            } else {
                loaded.dir.clone()
            };
            match nix::unistd::access(&probe, nix::unistd::AccessFlags::W_OK) {
                Err(nix::errno::Errno::EROFS) => Ok(None),
                _ => Err(e),
            }
        }
    }
}

fn render_cmd(loaded: &LoadedLab, args: &RenderArgs, printer: &Printer) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| loaded.state_dir().join("rendered"));
    let _lock = pki_lock(loaded, "kubelab lab render")?;
    let pki = load_pki(loaded, printer)?;
    let files = render::all(&loaded.lab, &loaded.topo, &pki);
    render::write(&out, &files)?;
    printer.info(format!("wrote {} files and MANIFEST", files.len()));
    printer.data(out.display().to_string());
    Ok(())
}

// ---------------------------------------------------------------------------
// kubelab lab certs
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct CertsJson {
    schema_version: u32,
    pki_dir: String,
    certificates: Vec<CertRow>,
}

#[derive(Serialize, Clone)]
struct CertRow {
    name: String,
    /// `cluster` or `etcd`: the CA that signs it (itself, for a CA).
    authority: &'static str,
    /// False when the topology needs it but `lab render` has not signed it.
    present: bool,
    #[serde(flatten)]
    info: Option<pki::CertInfo>,
    /// What is wrong with it (not signed by its CA, a key that is not its
    /// key, a file that does not parse), each naming the file; empty when
    /// it is sound.
    problems: Vec<String>,
}

fn certs(loaded: &LoadedLab, args: &JsonArgs, printer: &Printer) -> Result<()> {
    let dir = loaded.state_dir().join("pki");
    let authority_name = |a: pki::Authority| match a {
        pki::Authority::Cluster => "cluster",
        pki::Authority::Etcd => "etcd",
        pki::Authority::FrontProxy => "front-proxy",
    };
    let cas = [
        pki::Authority::Cluster,
        pki::Authority::Etcd,
        pki::Authority::FrontProxy,
    ];
    let mut wanted: Vec<(String, pki::Authority)> =
        cas.iter().map(|a| (a.ca_stem().to_string(), *a)).collect();
    wanted.extend(
        pki::specs(&loaded.lab, &loaded.topo)
            .into_iter()
            .map(|s| (s.name, s.authority)),
    );
    let mut rows = Vec::new();
    for (name, authority_id) in wanted {
        let authority = authority_name(authority_id);
        let path = dir.join(format!("{name}.pem"));
        let ca_stem = authority_id.ca_stem();
        let present = path.exists() || path.is_symlink();
        let problems = if present {
            pki::check(&dir, &name, ca_stem)
        } else {
            Vec::new()
        };
        let info = match fs_err::read_to_string(&path) {
            Ok(pem) => pki::inspect(&pem).ok(),
            Err(_) => None,
        };
        rows.push(CertRow {
            name,
            authority,
            present,
            info,
            problems,
        });
    }
    if rows.iter().all(|r| !r.present) && !args.json {
        return Err(Error::other(
            format!("no certificates in {} yet", dir.display()),
            "`kubelab lab render` signs the lab's PKI",
        ));
    }
    let broken: Vec<String> = rows
        .iter()
        .flat_map(|r| r.problems.iter().map(|p| format!("- {p}")))
        .collect();
    let verdict = || {
        if broken.is_empty() {
            return Ok(());
        }
        Err(Error::other(
            format!(
                "{} certificate file(s) in {} are broken:\n{}",
                rows.iter().filter(|r| !r.problems.is_empty()).count(),
                dir.display(),
                broken.join("\n")
            ),
            "delete the broken certificate and its key (`<name>.pem`, `<name>-key.pem`; for a CA, everything it signed) and run `kubelab lab render` to sign them again, then `kubelab lab up` to put them on the nodes",
        ))
    };
    if args.json {
        printer.json(&CertsJson {
            schema_version: SCHEMA_VERSION,
            pki_dir: dir.display().to_string(),
            certificates: rows.iter().map(|r| CertRow { ..r.clone() }).collect(),
        })?;
        return verdict();
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| match &r.info {
            Some(_) if !r.problems.is_empty() => vec![
                r.name.clone(),
                r.authority.to_string(),
                format!("BROKEN: {}", r.problems.join("; ")),
                "-".to_string(),
                "-".to_string(),
            ],
            Some(info) => vec![
                r.name.clone(),
                r.authority.to_string(),
                info.subject.clone(),
                info.not_after.clone(),
                info.sans.join(", "),
            ],
            None => vec![
                r.name.clone(),
                r.authority.to_string(),
                "missing: `kubelab lab render` signs it".to_string(),
                "-".to_string(),
                "-".to_string(),
            ],
        })
        .collect();
    printer.data(printer::table(
        &["NAME", "CA", "SUBJECT", "EXPIRES", "NAMES"],
        &table,
    ));
    verdict()
}
