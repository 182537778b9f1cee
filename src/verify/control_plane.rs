//! Check 6, control-plane: scheduler and controller-manager healthz on every
//! controller, and their leases held by controllers.

use serde_json::Value;

use crate::config::Role;
use crate::topology::Node;

use super::http::{admin_client, api_base, excerpt, fetch_json, request, tls_client};
use super::{API_HINT, Ctx, Outcome, judge};

/// Who holds a leader-election Lease: the controller named before `_` in
/// its holderIdentity (`controller0_0b9c...`).
pub(super) fn lease_holder(
    lease: &Value,
    controllers: &[&str],
) -> std::result::Result<String, String> {
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or_default();
    if holder.is_empty() {
        return Err("no holder".into());
    }
    let node = holder.split('_').next().unwrap_or_default();
    if controllers.contains(&node) {
        Ok(node.to_string())
    } else {
        Err(format!("held by {holder:?}, not one of the controllers"))
    }
}

pub(super) async fn control_plane(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let (ca_client, admin) = match (tls_client(&ctx.pki_dir, "ca", None, &[]), admin_client(ctx)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Outcome::failed(e, "`kubelab lab render` signs the lab's certificates");
        }
    };
    let controllers: Vec<&Node> = topo.by_role(Role::Controller).collect();
    let mut urls = Vec::new();
    for n in &controllers {
        urls.push(format!("https://{}:10259/healthz", n.address));
        urls.push(format!("https://{}:10257/healthz", n.address));
    }
    let answers = futures_util::future::join_all(
        urls.iter()
            .map(|u| request(&ca_client, reqwest::Method::GET, u, None)),
    )
    .await;
    let mut problems = Vec::new();
    for (url, got) in urls.iter().zip(answers) {
        match got {
            Ok((200, _)) => {}
            Ok((status, body)) => {
                problems.push(format!("{url}: HTTP {status}: {}", excerpt(&body)))
            }
            Err(e) => problems.push(e),
        }
    }
    let names: Vec<&str> = controllers.iter().map(|n| n.name.as_str()).collect();
    let base = api_base(ctx);
    let mut leaders = Vec::new();
    for component in ["kube-scheduler", "kube-controller-manager"] {
        let url =
            format!("{base}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{component}");
        match fetch_json(&admin, reqwest::Method::GET, &url, None).await {
            Ok(lease) => match lease_holder(&lease, &names) {
                Ok(node) => leaders.push(format!("{component} on {node}")),
                Err(e) => problems.push(format!("{component} lease: {e}")),
            },
            Err(e) => problems.push(e),
        }
    }
    judge(
        problems,
        format!(
            "scheduler and controller-manager healthz answer over TLS on all {} controllers; leaders: {}",
            controllers.len(),
            leaders.join(", ")
        ),
        API_HINT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_holders_must_be_controllers() {
        let lease = serde_json::json!({"kind": "Lease", "spec": {"holderIdentity": "controller1_6f1f8c0e-5a8b-4c4e-9d7e-0e1c2b3a4d5f", "leaseDurationSeconds": 15}});
        assert_eq!(
            lease_holder(&lease, &["controller0", "controller1"]).unwrap(),
            "controller1"
        );
        assert!(lease_holder(&lease, &["controller0"]).is_err());
        assert!(lease_holder(&serde_json::json!({"spec": {}}), &["controller0"]).is_err());
    }
}
