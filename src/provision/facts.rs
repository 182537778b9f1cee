//! The facts pass: each new or recreated node's OS and host-only interface,
//! read over SSH once per VM, before the one render and plan that use them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::state::{NodeFacts, State};
use crate::tools::ssh::Transport;
use crate::topology::{Phase, Topology};

/// Reads the facts of `nodes` and records them in `state` (saved to
/// `state_path` whatever the outcome, so what was read is kept).
#[allow(clippy::too_many_arguments)]
pub async fn gather(
    topo: &Topology,
    nodes: &[String],
    vm_ids: &BTreeMap<String, Option<String>>,
    transport: &Transport,
    printer: &Printer,
    logs: &Path,
    state: &mut State,
    state_path: &Path,
) -> Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    printer.info(format!("facts: reading {} node(s)", nodes.len()));
    let results = futures_util::future::join_all(
        topo.nodes
            .iter()
            .filter(|n| nodes.contains(&n.name))
            .map(|node| async move {
                // A recreated VM has a new host key: forget the old one.
                transport.forget_host_key(&node.name).await?;
                let command = format!(
                    ". /etc/os-release; echo \"os=$ID $VERSION_ID\"; ip -o -4 addr show | awk -v a='{}/' 'index($4, a) == 1 {{ print \"interface=\" $2 }}'",
                    node.address
                );
                let log = logs.join(&node.name).join(format!("{}.log", Phase::Facts.name()));
                let out = transport
                    .run(&node.name, &command, None, format!("read the facts of {}", node.name), &log)
                    .await?;
                let value = |key: &str| {
                    out.stdout
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{key}=")))
                        .map(str::to_string)
                };
                let interface = value("interface").ok_or_else(|| {
                    Error::other(
                        format!("{} has no interface holding {}", node.name, node.address),
                        "the host-only network did not come up on the VM; `kubelab lab ssh` to it and check `ip -4 addr`",
                    )
                })?;
                // It goes into config files and scripts: only a plain name.
                if !crate::config::is_interface(&interface) {
                    return Err(Error::other(
                        format!("{} reports {interface:?} as the interface holding {}, which is not an interface name kubelab uses", node.name, node.address),
                        "rename the interface on the node to letters, digits, '.', '_' and '-' (at most 15)",
                    ));
                }
                Ok::<_, Error>((
                    node.name.clone(),
                    NodeFacts {
                        os: value("os").unwrap_or_default(),
                        interface,
                        vm_id: vm_ids.get(&node.name).cloned().flatten(),
                    },
                ))
            }),
    )
    .await;
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok((name, facts)) => {
                state.facts.insert(name, facts);
            }
            Err(e) => failures.push(e),
        }
    }
    state.save(state_path)?;
    if !failures.is_empty() {
        return Err(Error::Several {
            summary: "could not read facts from every node:".into(),
            failures,
            hint: Some("run `kubelab lab up` again once the VMs answer over SSH".into()),
        });
    }
    Ok(())
}
