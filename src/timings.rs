//! Where `lab up`'s time went: the machines and each provisioning phase
//! record their wall time here as they finish; `lab up` prints the summary
//! and keeps the last runs in state.json for `kubelab lab timings`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// How many runs state.json keeps.
pub const KEPT_RUNS: usize = 10;

static RECORDED: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());

/// Notes that `part` (`machines`, a phase name) took `took`.
pub fn record(part: &str, took: Duration) {
    if let Ok(mut parts) = RECORDED.lock() {
        parts.push((part.to_string(), took));
    }
}

fn take() -> Vec<(String, Duration)> {
    RECORDED
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default()
}

/// One `lab up`: when, how it ended, and its parts in run order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub started_unix: u64,
    /// `ok`, `failed` or `interrupted`.
    pub outcome: String,
    pub total_ms: u64,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// `machines`, a phase, or `other` (facts, SSH set-up, rendering).
    pub name: String,
    pub ms: u64,
}

/// Builds the run from what was recorded since it started. `None` when
/// nothing ran (bad input, or another kubelab held the lab), so such runs
/// are not kept.
pub fn finish<T>(started: Instant, started_unix: u64, result: &Result<T>) -> Option<Run> {
    let parts = take();
    if parts.is_empty()
        && let Err(e) = result
        && (e.exit_code() == crate::error::exit::BAD_INPUT
            || matches!(e, crate::error::Error::Locked { .. }))
    {
        return None;
    }
    let total_ms = millis(started.elapsed());
    let mut parts: Vec<Part> = parts
        .into_iter()
        .map(|(name, d)| Part {
            name,
            ms: millis(d),
        })
        .collect();
    // In whole milliseconds, so the parts add up to the total exactly.
    let counted: u64 = parts.iter().map(|p| p.ms).sum();
    parts.push(Part {
        name: "other".to_string(),
        ms: total_ms.saturating_sub(counted),
    });
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) if e.exit_code() == crate::error::exit::INTERRUPTED => "interrupted",
        Err(_) => "failed",
    };
    Some(Run {
        started_unix,
        outcome: outcome.to_string(),
        total_ms,
        parts,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// `lab up took 20.3 s: machines 8.1 s, dns 2.0 s, ..., other 0.4 s`.
pub fn summary(run: &Run) -> String {
    let parts: Vec<String> = run
        .parts
        .iter()
        .map(|p| format!("{} {}", p.name, seconds(p.ms)))
        .collect();
    let outcome = if run.outcome == "ok" {
        String::new()
    } else {
        format!(" ({})", run.outcome)
    };
    format!(
        "lab up took {}{outcome}: {}",
        seconds(run.total_ms),
        parts.join(", ")
    )
}

/// The kept runs as a table, newest last, one column per part.
pub fn table(runs: &[Run]) -> String {
    let mut columns: Vec<String> = Vec::new();
    for run in runs {
        for part in &run.parts {
            if part.name != "other" && !columns.contains(&part.name) {
                columns.push(part.name.clone());
            }
        }
    }
    columns.push("other".to_string());
    let mut headers = vec!["STARTED (UTC)", "OUTCOME", "TOTAL"];
    headers.extend(columns.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            let mut row = vec![
                started(run.started_unix),
                run.outcome.clone(),
                seconds(run.total_ms),
            ];
            row.extend(columns.iter().map(|c| {
                run.parts
                    .iter()
                    .find(|p| &p.name == c)
                    .map(|p| seconds(p.ms))
                    .unwrap_or_else(|| "-".to_string())
            }));
            row
        })
        .collect();
    crate::printer::table(&headers, &rows)
}

fn started(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_part_and_the_rest() {
        let run = Run {
            started_unix: 0,
            outcome: "failed".into(),
            total_ms: 12_340,
            parts: vec![
                Part {
                    name: "machines".into(),
                    ms: 8_000,
                },
                Part {
                    name: "dns".into(),
                    ms: 4_000,
                },
                Part {
                    name: "other".into(),
                    ms: 340,
                },
            ],
        };
        assert_eq!(
            summary(&run),
            "lab up took 12.3 s (failed): machines 8.0 s, dns 4.0 s, other 0.3 s"
        );
        let table = table(&[run]);
        assert!(table.contains("1970-01-01 00:00:00"), "{table}");
        assert!(
            table.lines().next().unwrap().contains("machines"),
            "{table}"
        );
    }
}
