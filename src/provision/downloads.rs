//! Release files: what the selected phases need, fetched (or resumed) into
//! the cache before any node is touched, with a progress bar on a terminal.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config;
use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::printer::Printer;
use crate::settings::Settings;
use crate::topology::Phase;

/// Fetches (or resumes) every release file the selected phases copy to their
/// nodes, and returns them per phase as (path on the node, file in the
/// cache). Offline, nothing is downloaded and every missing file is named.
pub async fn fetch(
    loaded: &LoadedLab,
    settings: &Settings,
    printer: &Printer,
    offline: bool,
    selected: &dyn Fn(Phase) -> bool,
) -> Result<BTreeMap<Phase, Vec<(String, PathBuf)>>> {
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
    if offline {
        refuse_missing(&loaded.lab, settings, selected)?;
    }
    let client = artifacts::client()?;
    for a in &downloads {
        fetch_one(printer, &client, settings, a, offline).await?;
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

/// Makes sure the release file `a` is in the cache (downloading or resuming
/// it with a progress bar), says which, and returns its path.
pub async fn fetch_one(
    printer: &Printer,
    client: &reqwest::Client,
    settings: &Settings,
    a: &crate::artifacts::Artifact,
    offline: bool,
) -> Result<PathBuf> {
    use crate::artifacts;
    let cache = &settings.cache_dir;
    let cached = artifacts::cached_path(cache, a);
    if cached.exists() {
        printer.info(format!(
            "{}: in the cache ({})",
            a.label(),
            cached.display()
        ));
        return Ok(cached);
    }
    // On the printer's target: its lines go above the bar.
    let bar = printer.bar(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(a.label());
    printer.info(format!("downloading {}", a.url));
    let path = artifacts::fetch(client, cache, a, offline, &|done, total| {
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_position(done);
    })
    .await;
    printer.clear_bar(&bar);
    let path = path?;
    printer.info(format!(
        "{}: {} verified, cached at {}",
        a.label(),
        a.checksum.algorithm(),
        path.display()
    ));
    Ok(path)
}

/// Offline, every release file the selected phases need must be in the
/// cache: the missing ones are named, with where they come from.
pub fn refuse_missing(
    lab: &config::Lab,
    settings: &Settings,
    selected: &dyn Fn(Phase) -> bool,
) -> Result<()> {
    use crate::artifacts;
    let needs = artifacts::needs(
        lab,
        selected,
        artifacts::node_arch(),
        settings.artifacts_mirror.as_deref(),
    )?;
    let cache = &settings.cache_dir;
    let missing: Vec<String> = artifacts::distinct(&needs)
        .iter()
        .filter(|a| !artifacts::cached_path(cache, a).exists())
        .map(|a| format!("  {} ({}, from {})", a.label(), a.file_name, a.url))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::other(
        format!(
            "{} release file{} not in the cache ({}):\n{}",
            missing.len(),
            if missing.len() == 1 { " is" } else { "s are" },
            cache.display(),
            missing.join("\n")
        ),
        "run `kubelab artifacts fetch` while online, or drop --offline",
    ))
}
