//! `kubelab lab timings`, and where `lab up`'s time went, kept in state.json.

use serde::Serialize;

use crate::error::Result;
use crate::lab::LoadedLab;
use crate::printer::{Printer, SCHEMA_VERSION};

/// Prints where `lab up`'s time went and keeps it in state.json.
pub(super) fn keep_timings(
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

pub(super) fn timings(loaded: &LoadedLab, printer: &Printer, json: bool) -> Result<()> {
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
