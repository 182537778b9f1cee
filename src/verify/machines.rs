//! Check 1, machines: every VM running (or, where the provider runs no
//! machine, a static lab's servers, every host reachable with passwordless
//! sudo) and reachable over SSH.

use super::{Ctx, Outcome, judge};

pub(super) async fn machines(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let states = match &ctx.machines {
        None => return hosts_reachable(ctx).await,
        Some(Ok(states)) => states,
        Some(Err(e)) => {
            return Outcome::failed(
                format!("`vagrant status` failed: {e}"),
                "run `vagrant status` in .kubelab to see why",
            );
        }
    };
    let not_running: Vec<String> = topo
        .nodes
        .iter()
        .filter_map(|n| {
            let state = states
                .iter()
                .find(|m| m.name == n.name)
                .map(|m| m.state.as_str())
                .unwrap_or("not_created");
            (state != "running").then(|| format!("{} is {state}", n.name))
        })
        .collect();
    if !not_running.is_empty() {
        return judge(
            not_running,
            String::new(),
            "`kubelab lab up` boots the VMs that are not running",
        );
    }
    judge(
        unreachable(ctx, "true", "check SSH", "unreachable over SSH").await,
        format!(
            "{} VMs running, every one reachable over SSH",
            topo.nodes.len()
        ),
        "`kubelab lab ssh NODE` shows the SSH error; `kubelab lab up` re-creates a broken VM",
    )
}

/// `command` on every node at once; one line per node it failed on.
async fn unreachable(ctx: &Ctx<'_>, command: &str, purpose: &str, what: &str) -> Vec<String> {
    let nodes = &ctx.loaded.topo.nodes;
    let reached =
        futures_util::future::join_all(nodes.iter().map(|n| ctx.ssh(&n.name, command, purpose)))
            .await;
    nodes
        .iter()
        .zip(reached)
        .filter_map(|(n, r)| r.err().map(|e| format!("{} {what}: {e}", n.name)))
        .collect()
}

/// Check 1 of a static lab: there are no VMs to be running, only servers
/// to reach, each as lab.yaml says.
async fn hosts_reachable(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let problems = unreachable(
        ctx,
        "sudo -n true",
        "check SSH and sudo",
        "unreachable over SSH, or no passwordless sudo",
    )
    .await;
    judge(
        problems,
        format!(
            "{} hosts reachable over SSH with passwordless sudo (provider: static)",
            topo.nodes.len()
        ),
        "`kubelab lab ssh NODE` shows the SSH error; lab.yaml's hosts list says how each host is reached",
    )
}
