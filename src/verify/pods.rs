//! The nginx pods the networking, logs-exec, port-forward and services checks
//! probe from, and the `kubectl exec` probes they run on a controller.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::config::Role;
use crate::render::ADMIN_KUBECTL as KUBECTL;

use super::http::{admin_client, api_base, fetch_json};
use super::{API_HINT, Ctx, Outcome};

/// One command run inside a pod with `kubectl exec`, and what its output
/// must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Probe {
    pub(super) label: String,
    pub(super) pod: String,
    pub(super) command: String,
    pub(super) expect: String,
}

/// Pod names and addresses from the API go into a shell line: only the
/// characters Kubernetes allows in them are let through.
pub(super) fn shell_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
}

/// One Ready nginx pod per worker (the first by name): worker -> (pod, IP).
/// Only names and addresses safe on a shell line are taken.
pub(super) fn pod_per_worker(pods: &Value) -> BTreeMap<&str, (&str, &str)> {
    let mut per_worker: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let ready = pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        let (Some(node), Some(name), Some(ip)) = (
            pod["spec"]["nodeName"].as_str(),
            pod["metadata"]["name"].as_str(),
            pod["status"]["podIP"].as_str(),
        ) else {
            continue;
        };
        if !ready || !shell_safe(name) || ip.parse::<Ipv4Addr>().is_err() {
            continue;
        }
        let entry = per_worker.entry(node).or_insert((name, ip));
        if name < entry.0 {
            *entry = (name, ip);
        }
    }
    per_worker
}

/// One shell line running every probe in turn, each output framed by
/// markers `probe_verdicts` reads back.
pub(super) fn probe_script(probes: &[Probe]) -> String {
    probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "echo '@@probe {i}'; {KUBECTL} -n default exec {} -- sh -c '{}' 2>&1 | tail -n 20; echo \"@@exit ${{PIPESTATUS[0]}}\"",
                p.pod, p.command
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What went wrong with each probe, from the script's output.
pub(super) fn probe_verdicts(probes: &[Probe], output: &str) -> Vec<String> {
    let mut outputs: BTreeMap<usize, (String, Option<i32>)> = BTreeMap::new();
    let mut current = None;
    for line in output.lines() {
        if let Some(i) = line
            .strip_prefix("@@probe ")
            .and_then(|i| i.trim().parse().ok())
        {
            current = Some(i);
            outputs.insert(i, (String::new(), None));
        } else if let Some(code) = line.strip_prefix("@@exit ") {
            if let Some(entry) = current.and_then(|i| outputs.get_mut(&i)) {
                entry.1 = code.trim().parse().ok();
            }
            current = None;
        } else if let Some(entry) = current.and_then(|i| outputs.get_mut(&i)) {
            entry.0.push_str(line);
            entry.0.push('\n');
        }
    }
    probes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match outputs.get(&i) {
            None | Some((_, None)) => Some(format!("{}: did not run", p.label)),
            Some((out, Some(0))) if out.contains(&p.expect) => None,
            Some((out, Some(code))) => {
                let last = out
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                Some(format!(
                    "{}: `{}` exited {code} without {:?} ({})",
                    p.label,
                    p.command,
                    p.expect.trim(),
                    if last.is_empty() { "no output" } else { last }
                ))
            }
        })
        .collect()
}

/// The Ready nginx pods, one per worker, from the API; or why not.
pub(super) async fn nginx_pods(
    ctx: &Ctx<'_>,
    client: &reqwest::Client,
) -> std::result::Result<Value, String> {
    fetch_json(
        client,
        reqwest::Method::GET,
        format!(
            "{}/api/v1/namespaces/default/pods?labelSelector=app.kubernetes.io%2Fname%3Dnginx",
            api_base(ctx)
        ),
        None,
    )
    .await
}

/// The admin's API client, or the outcome that says why there is none.
pub(super) fn admin(ctx: &Ctx<'_>) -> std::result::Result<reqwest::Client, Outcome> {
    admin_client(ctx)
        .map_err(|e| Outcome::failed(e, "`kubelab lab render` signs the admin certificate"))
}

/// What a pod check starts from: the admin's API client and the nginx
/// pods, or the outcome that says why not.
pub(super) async fn admin_and_pods(
    ctx: &Ctx<'_>,
) -> std::result::Result<(reqwest::Client, Value), Outcome> {
    let client = admin(ctx)?;
    let pods = nginx_pods(ctx, &client)
        .await
        .map_err(|e| Outcome::failed(e, API_HINT))?;
    Ok((client, pods))
}

/// A problem for each worker of the lab with no pod in `per_worker`:
/// `no Ready nginx pod on worker1{what}`.
pub(super) fn workers_without_pod(
    ctx: &Ctx<'_>,
    per_worker: &BTreeMap<&str, (&str, &str)>,
    what: &str,
) -> Vec<String> {
    ctx.loaded
        .topo
        .by_role(Role::Worker)
        .filter(|w| !per_worker.contains_key(w.name.as_str()))
        .map(|w| format!("no Ready nginx pod on {}{what}", w.name))
        .collect()
}

/// Runs `probes` with `kubectl exec` on the first controller; their problems.
pub(super) async fn run_probes(ctx: &Ctx<'_>, probes: &[Probe], purpose: &str) -> Vec<String> {
    let Some(controller) = ctx.loaded.topo.by_role(Role::Controller).next() else {
        return vec!["the lab has no controller to run kubectl on".into()];
    };
    if probes.is_empty() {
        return Vec::new();
    }
    match ctx
        .ssh(&controller.name, probe_script(probes), purpose)
        .await
    {
        Ok(out) => probe_verdicts(probes, &out),
        Err(e) => vec![format!("kubectl exec on {}: {e}", controller.name)],
    }
}
