//! How finished checks are shown, for `lab verify` and `kubelab doctor`
//! alike: one table (or one JSON document) and one exit rule.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::printer::{self, Printer, SCHEMA_VERSION, Style};

use super::Outcome;

/// One finished check, as printed.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    name: String,
    number: usize,
    status: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    duration_ms: u128,
}

impl Report {
    /// Check `number` of its group, named `name`, ended `outcome` after `elapsed`.
    pub(crate) fn new(name: String, number: usize, outcome: Outcome, elapsed: Duration) -> Report {
        Report {
            name,
            number,
            status: outcome.status(),
            detail: outcome.detail().to_string(),
            hint: outcome.hint(),
            duration_ms: elapsed.as_millis(),
        }
    }
}

/// Prints `reports` as the table, or with `json` as one document; any
/// Failed one is an error naming how many (exit status 1).
pub(crate) fn print_reports(
    printer: &Printer,
    lab: &str,
    reports: &[Report],
    json: bool,
) -> Result<i32> {
    let failed = reports.iter().filter(|r| r.status == "failed").count();
    if json {
        printer.json(&serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "lab": lab,
            "checks": reports,
            "failed": failed,
        }))?;
    } else {
        printer.data(table(printer, reports));
    }
    if failed > 0 {
        return Err(Error::ChecksFailed(format!(
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        )));
    }
    Ok(0)
}

/// CHECK, STATUS, TIME, DETAIL; a hint goes on its own line under the detail.
fn table(printer: &Printer, reports: &[Report]) -> String {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let status = match r.status {
                "passed" => "Passed".to_string(),
                "skipped" => "Skipped".to_string(),
                "warned" => printer.paint(Style::Yellow, "Warned"),
                _ => printer.paint(Style::Red, "Failed"),
            };
            let mut detail = r.detail.clone();
            if let Some(hint) = &r.hint {
                detail.push_str(&format!("\n    hint: {hint}"));
            }
            vec![
                format!("{:>2}. {}", r.number, r.name),
                status,
                format!("{:.1} s", r.duration_ms as f64 / 1000.0),
                detail,
            ]
        })
        .collect();
    printer::table(&["CHECK", "STATUS", "TIME", "DETAIL"], &rows)
}
