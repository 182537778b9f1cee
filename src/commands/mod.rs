//! The commands. `run` routes the parsed command line to one file per
//! command; each reads its settings, does its work through the other
//! modules, and prints through the printer.

use crate::cli::{ArtifactsCommand, CacheCommand, Cli, Command, LabCommand, SnapshotCommand};
use crate::error::Result;
use crate::lab::load_lab;
use crate::machines::Host;
use crate::printer::Printer;
use crate::settings::Settings;

mod cache;
mod certs;
mod export_inventory;
mod init;
mod kubeconfig;
mod labs;
mod plan;
mod render;
mod timings;
mod up;

/// Runs a command; `Ok(code)` is the exit code of a command that reports
/// its own outcome (`lab ssh`, `doctor`, `lab verify`).
pub fn run(cli: Cli, settings: &Settings, printer: &Printer) -> Result<i32> {
    let verbose = cli.verbose > 0;
    match cli.command {
        Command::Init(args) => init::init(cli.lab.as_deref(), &args, settings, printer).map(|()| 0),
        Command::Doctor(args) => {
            let loaded = load_lab(cli.lab.as_deref(), printer)?;
            block_on(crate::doctor::run(
                &loaded,
                settings,
                printer,
                args.json,
                args.only.as_deref(),
                verbose,
            ))
        }
        Command::Artifacts(ArtifactsCommand::Fetch(args)) => {
            let loaded = load_lab(cli.lab.as_deref(), printer)?;
            block_on(crate::provision::downloads::fetch(
                &loaded,
                settings,
                printer,
                args.offline,
                &|_| true,
            ))
            .map(|_| 0)
        }
        Command::Cache(CacheCommand::Clean) => cache::cache_clean(settings, printer).map(|()| 0),
        Command::Labs(args) => match &args.command {
            Some(crate::cli::LabsCommand::Forget(forget)) => {
                crate::registry::forget_by_user(settings, &forget.name, forget.force, printer)
                    .map(|()| 0)
            }
            None => labs::labs(settings, printer, args.json.json).map(|()| 0),
        },
        Command::Completions(args) => crate::completions::completions(args.shell).map(|()| 0),
        Command::Man(args) => crate::completions::man(args.out.as_deref(), printer).map(|()| 0),
        Command::Lab(command) => {
            let loaded = match load_lab(cli.lab.as_deref(), printer) {
                // A lab file deleted after `lab up`: destroy still removes
                // what its folder's state recorded.
                Err(crate::error::Error::Config(e))
                    if matches!(command, LabCommand::Destroy(_))
                        && matches!(*e, crate::error::ConfigError::Missing { .. }) =>
                {
                    let path = cli
                        .lab
                        .as_deref()
                        .unwrap_or(std::path::Path::new("lab.yaml"));
                    match crate::lab::gone(path, printer)? {
                        Some(loaded) => loaded,
                        None => return Err(crate::error::Error::Config(e)),
                    }
                }
                loaded => loaded?,
            };
            let host = Host::new(&loaded, settings, printer, verbose);
            match command {
                LabCommand::Plan(args) => plan::plan(&loaded, &args, settings, printer).map(|()| 0),
                LabCommand::Render(args) => render::render_cmd(&loaded, &args, printer).map(|()| 0),
                LabCommand::Up(args) => up::run(&loaded, &host, &args, settings, printer),
                LabCommand::Kubeconfig(args) => {
                    kubeconfig::run(&loaded, &args, settings, printer).map(|()| 0)
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
                LabCommand::Timings(args) => {
                    timings::timings(&loaded, printer, args.json).map(|()| 0)
                }
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
                    export_inventory::run(&loaded, &args, printer).map(|()| 0)
                }
                LabCommand::Certs(args) => certs::certs(&loaded, &args, printer).map(|()| 0),
                LabCommand::Verify(args) => block_on(crate::verify::run(
                    &loaded,
                    settings,
                    printer,
                    &crate::verify::Options {
                        json: args.json,
                        only: args.only,
                        no_disruptive: args.no_disruptive,
                        conformance: args
                            .conformance
                            .then_some(crate::verify::Conformance { focus: args.focus }),
                    },
                    verbose,
                    &*host.machines,
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
