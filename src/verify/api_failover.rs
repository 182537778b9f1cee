//! Check 15, api-failover (disruptive): one kube-apiserver stopped, the API
//! answers through the VIP and the leases leave that node; it is started again.

use std::time::{Duration, Instant};

use crate::config::Role;
use crate::topology::Node;

use super::api::readyz;
use super::control_plane::lease_holder;
use super::http::{admin_client, api_base, fetch_json};
use super::{API_HINT, Ctx, Outcome, RETURN_WAIT, judge, poll};

const LEASES: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

/// What the API failover saw wrong: with `stopped`'s apiserver down, the
/// API must answer through the VIP, and a lease held on `stopped` (its
/// controller-manager and scheduler talk to their own apiserver) must move
/// to another controller; a lease held elsewhere must stay held.
fn api_failover_problems(
    stopped: &str,
    vip_answered: bool,
    before: &[(&str, String)],
    after: &[(&str, std::result::Result<String, String>)],
) -> Vec<String> {
    let mut problems = Vec::new();
    if !vip_answered {
        problems.push(format!(
            "with kube-apiserver stopped on {stopped}, /readyz through the VIP did not answer within {} s",
            API_FAILOVER_WAIT.as_secs()
        ));
    }
    for (component, was) in before {
        match after.iter().find(|(c, _)| c == component).map(|(_, h)| h) {
            Some(Ok(now)) if was == stopped && now == stopped => problems.push(format!(
                "the {component} lease stayed on {stopped} within {} s",
                API_FAILOVER_WAIT.as_secs()
            )),
            Some(Ok(_)) => {}
            Some(Err(e)) => problems.push(format!("{component} lease: {e}")),
            None => problems.push(format!("{component} lease was not read again")),
        }
    }
    problems
}

const API_FAILOVER_WAIT: Duration = Duration::from_secs(45);

async fn lease_holders(
    client: &reqwest::Client,
    base: &str,
    controllers: &[&str],
) -> Vec<(&'static str, std::result::Result<String, String>)> {
    let mut out = Vec::new();
    for component in LEASES {
        let url =
            format!("{base}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{component}");
        let holder = match fetch_json(client, reqwest::Method::GET, &url, None).await {
            Ok(lease) => lease_holder(&lease, controllers),
            Err(e) => Err(e),
        };
        out.push((component, holder));
    }
    out
}

pub(super) async fn api_failover(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let admin = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let base = api_base(ctx);
    let controllers: Vec<&Node> = topo.by_role(Role::Controller).collect();
    let names: Vec<&str> = controllers.iter().map(|n| n.name.as_str()).collect();
    let mut before = Vec::new();
    for (component, holder) in lease_holders(&admin, &base, &names).await {
        match holder {
            Ok(h) => before.push((component, h)),
            Err(e) => return Outcome::failed(format!("{component} lease: {e}"), API_HINT),
        }
    }
    // Stop the apiserver under the controller-manager leader, so the lease
    // has to move.
    let stopped = before[0].1.clone();
    let Some(node) = controllers.iter().find(|n| n.name == stopped) else {
        return Outcome::failed(format!("{stopped} is not a controller"), API_HINT);
    };
    if let Err(e) = ctx.stop_unit(&stopped, "kube-apiserver").await {
        return Outcome::failed(format!("stopping kube-apiserver on {stopped}: {e}"), "");
    }
    let vip_answered = poll(API_FAILOVER_WAIT, || async {
        readyz(&admin, &base).await.is_ok()
    })
    .await
    .is_some();
    let mut after = lease_holders(&admin, &base, &names).await;
    let moved = |after: &[(&str, std::result::Result<String, String>)]| {
        before.iter().all(|(c, was)| {
            was != &stopped
                || after
                    .iter()
                    .any(|(a, now)| a == c && now.as_ref().is_ok_and(|n| n != &stopped))
        })
    };
    let started = Instant::now();
    while !moved(&after) && started.elapsed() < API_FAILOVER_WAIT {
        tokio::time::sleep(Duration::from_secs(1)).await;
        after = lease_holders(&admin, &base, &names).await;
    }
    let mut problems = api_failover_problems(&stopped, vip_answered, &before, &after);
    // Restore whatever happened, and wait until it serves again.
    let own = format!("https://{}:{}", node.address, topo.api.port);
    match ctx.start_unit(&stopped, "kube-apiserver").await {
        Ok(_) => {
            let back = poll(RETURN_WAIT, || async { readyz(&admin, &own).await.is_ok() }).await;
            if back.is_none() {
                problems.push(format!(
                    "kube-apiserver on {stopped} did not serve /readyz again within {} s",
                    RETURN_WAIT.as_secs()
                ));
            }
        }
        Err(e) => problems.push(format!("starting kube-apiserver on {stopped} again: {e}")),
    }
    let now: Vec<String> = after
        .iter()
        .filter_map(|(c, h)| h.as_ref().ok().map(|h| format!("{c} on {h}")))
        .collect();
    judge(
        problems,
        format!(
            "with kube-apiserver stopped on {stopped} the API answered through the VIP and the leases moved ({}); it serves again",
            now.join(", ")
        ),
        &format!(
            "if it is still stopped: `kubelab lab ssh {stopped} -- sudo systemctl start kube-apiserver`; haproxy's health check must drop it (the api check shows the backends)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_failover_needs_the_vip_to_answer_and_the_leases_to_leave_the_stopped_node() {
        let controllers = ["controller0", "controller1", "controller2"];
        // Leases as the API returns them: the holder is "<node>_<uuid>".
        let lease = |holder: &str| {
            serde_json::json!({
                "kind": "Lease",
                "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}
            })
        };
        let holder = |h: &str| lease_holder(&lease(h), &controllers);
        let before = [
            ("kube-controller-manager", "controller0".to_string()),
            ("kube-scheduler", "controller1".to_string()),
        ];
        let moved = [
            (
                "kube-controller-manager",
                holder("controller2_5d1f6c2e-8a7b-4c1e-9f0a-2b3c4d5e6f70"),
            ),
            (
                "kube-scheduler",
                holder("controller1_0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b"),
            ),
        ];
        assert_eq!(
            api_failover_problems("controller0", true, &before, &moved),
            Vec::<String>::new()
        );
        // The lease stayed on the stopped node, and the VIP went dark.
        let stuck = [
            (
                "kube-controller-manager",
                holder("controller0_5d1f6c2e-8a7b-4c1e-9f0a-2b3c4d5e6f70"),
            ),
            ("kube-scheduler", holder("")),
        ];
        let problems = api_failover_problems("controller0", false, &before, &stuck);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("/readyz through the VIP did not answer"));
        assert!(problems[1].contains("kube-controller-manager lease stayed on controller0"));
        assert_eq!(problems[2], "kube-scheduler lease: no holder");
    }
}
