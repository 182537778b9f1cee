//! `kubelab labs`: every lab this host knows, and `labs forget`.

use serde::Serialize;

use crate::error::Result;
use crate::printer::{self, Printer, SCHEMA_VERSION};
use crate::settings::Settings;

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

pub(super) fn labs(settings: &Settings, printer: &Printer, json: bool) -> Result<()> {
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
