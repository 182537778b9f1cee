//! `kubelab lab up`: checks everything it can first, claims the lab's name
//! and network, builds the lab (machines, then every phase as one plan),
//! keeps the run's timings, merges the kubeconfig and, on request, saves a
//! snapshot once the lab verifies. `--dry-run` prints the plan instead.

use crate::cli::UpArgs;
use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::machines::{Host, UpOptions};
use crate::printer::Printer;
use crate::settings::Settings;

use super::{block_on, timings};

pub(super) fn run(
    loaded: &LoadedLab,
    host: &Host,
    args: &UpArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<i32> {
    if let (Some(from), Some(until)) = (args.from, args.until)
        && from > until
    {
        return Err(Error::usage(
            format!("--from {from} --until {until} selects no phase: {from} comes after {until}"),
            format!(
                "swap them (`--from {until} --until {from}`), or use `--only {from}` for one phase"
            ),
        ));
    }
    let options = UpOptions {
        jobs: args.jobs.map(usize::from),
        no_hosts: args.no_hosts,
        offline: args.offline,
        selection: crate::provision::Selection {
            from: args.from,
            until: args.until,
            only: args.only.clone(),
            node: args.node.clone(),
        },
    };
    if args.dry_run {
        return dry_run(loaded, host, &options, args.json, printer);
    }
    if let Some(name) = &args.snapshot {
        crate::machines::check_snapshot_name(name)?;
        host.machines.snapshots(&loaded.lab, "up --snapshot")?;
    }
    // The check and the claim under one lock: two labs with
    // one name or network cannot both pass it.
    let before = {
        let _registry = settings.host_lock()?;
        crate::registry::check_no_clash(&settings.registry, loaded)?;
        let before = crate::registry::entry(&settings.registry, &loaded.dir)?;
        crate::registry::record(
            &settings.registry,
            crate::registry::Entry::of(loaded, crate::registry::LabState::Up),
        )?;
        before
    };
    let started = std::time::Instant::now();
    let result = block_on(host.up(&options));
    // Keeping the timings never hides how `lab up` ended.
    if let Err(e) = timings::keep_timings(loaded, printer, started, &result) {
        printer.warn(format!("could not keep this run's timings: {e}"));
    }
    if result.is_err()
        && let Err(e) = crate::registry::after_failed_up(&settings.registry, loaded, before)
    {
        printer.warn(format!("could not correct the lab registry: {e}"));
    }
    result?;
    crate::kubeconfig::after_up(loaded, settings, printer)?;
    match &args.snapshot {
        Some(name) => block_on(host.snapshot_when_verified(name)).map(|()| 0),
        None => Ok(0),
    }
}

/// `lab up --dry-run`: the checks `lab up` makes first, then its plan,
/// printed; nothing is written, no VM is asked, no certificate is kept.
fn dry_run(
    loaded: &LoadedLab,
    host: &Host,
    options: &UpOptions,
    json: bool,
    printer: &Printer,
) -> Result<i32> {
    // In `lab up`'s order: the registry's claim on the name and the folder,
    // the folder's owner (taken with the lab's lock), then the run's checks.
    crate::registry::check_no_clash(&host.settings.registry, loaded)?;
    crate::registry::check_record(&host.settings.registry, loaded)?;
    crate::lab::owner::check(loaded)?;
    host.check_up(options)?;
    let (plan, state) = crate::provision::plan::preview(
        loaded,
        host.settings,
        &options.selection,
        host.machines.reach_every_run(),
    )?;
    if json {
        printer.json(&plan.json(&loaded.lab.name, &state))?;
    } else {
        printer.data(plan.text(&loaded.lab.name, &state).trim_end());
    }
    Ok(0)
}
