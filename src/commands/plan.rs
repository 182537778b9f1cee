//! `kubelab lab plan`: the lab's nodes, addresses, memory and phases.

use serde::Serialize;

use crate::cli::JsonArgs;
use crate::config::{self, Role};
use crate::error::{Error, Result};
use crate::host;
use crate::lab::LoadedLab;
use crate::printer::{self, Printer, SCHEMA_VERSION};
use crate::settings::Settings;
use crate::topology::Phase;

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

pub(super) fn plan(
    loaded: &LoadedLab,
    args: &JsonArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<()> {
    let LoadedLab { lab, topo, .. } = loaded;
    let total = topo.total_memory_mb();
    let host_mb = host::memory_mb(settings);
    let fits = host_mb.map(|h| total + host::HOST_RESERVE_MB <= h);
    let machines = crate::machines::of(lab);
    let vms = machines.sizes_machines();
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
                    description: plan_phase_description(&*machines, *p),
                })
                .collect(),
            warnings: &lab.warnings,
        });
    }
    printer.data(plan_text(loaded, host_mb));
    Ok(())
}

/// What a phase does for this lab: the machines phase is the provider's.
pub(super) fn plan_phase_description(
    machines: &dyn crate::machines::Machines,
    phase: Phase,
) -> &'static str {
    match phase {
        Phase::Machines => machines.machines_phase(),
        _ => phase.description(),
    }
}

/// A static lab's nodes in the plan: no VM sizes (`null`), `ssh` says how
/// kubelab logs in and `ssh_port` is lab.yaml's (`null` when an alias
/// leaves it to ssh_config).
pub(super) fn static_plan_nodes(loaded: &LoadedLab) -> Result<Vec<serde_json::Value>> {
    let targets = crate::lab::static_targets(&loaded.lab);
    let logins = crate::lab::static_logins(&loaded.lab);
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
    let provider = crate::machines::of(lab);
    let vms = provider.sizes_machines();
    let machines = provider.plan_line(lab);
    out.push_str(&format!(
        "Lab {} from {}\nProvider {}, {machines}, domain {}\n\n",
        lab.name, lab.source, lab.provider, lab.network.domain,
    ));
    // A static lab's servers have no VM sizes; the SSH column says how
    // kubelab logs in instead of a forwarded port.
    let logins = crate::lab::static_logins(lab);
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
            plan_phase_description(&*provider, *phase)
        ));
    }
    out.trim_end().to_string()
}
