//! Check 7, nodes: every planned worker registered, Ready, with the plan's pod CIDR.

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::config::Role;

use super::http::{admin_client, api_base, fetch_json};
use super::{API_HINT, Ctx, Outcome, judge};

/// Every planned worker registered, Ready, with the plan's pod CIDR.
fn node_problems(list: &Value, workers: &[(&str, Option<Ipv4Net>)]) -> Vec<String> {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for (name, cidr) in workers {
        let Some(node) = items.iter().find(|i| i["metadata"]["name"] == *name) else {
            problems.push(format!("{name} is not registered"));
            continue;
        };
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned();
        match ready {
            Some(c) if c["status"] == "True" => {}
            Some(c) => problems.push(format!(
                "{name} is not Ready ({}: {})",
                c["reason"].as_str().unwrap_or("no reason"),
                c["message"].as_str().unwrap_or("")
            )),
            None => problems.push(format!("{name} reports no Ready condition")),
        }
        let want = cidr.map(|c| c.to_string()).unwrap_or_default();
        match node["spec"]["podCIDR"].as_str() {
            Some(got) if got == want => {}
            Some(got) => problems.push(format!("{name} has pod CIDR {got}, the plan gives {want}")),
            None => problems.push(format!("{name} has no pod CIDR (the plan gives {want})")),
        }
    }
    problems
}

pub(super) async fn nodes(ctx: &Ctx<'_>) -> Outcome {
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let workers: Vec<(&str, Option<Ipv4Net>)> = ctx
        .loaded
        .topo
        .by_role(Role::Worker)
        .map(|n| (n.name.as_str(), n.pod_cidr))
        .collect();
    let url = format!("{}/api/v1/nodes", api_base(ctx));
    match fetch_json(&client, reqwest::Method::GET, &url, None).await {
        Ok(list) => judge(
            node_problems(&list, &workers),
            format!(
                "all {} workers Ready with the plan's pod CIDRs",
                workers.len()
            ),
            "`kubelab lab ssh WORKER -- journalctl -u kubelet` says why a node is not Ready",
        ),
        Err(e) => Outcome::failed(e, API_HINT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testing::*;

    fn worker0() -> Vec<(&'static str, Option<Ipv4Net>)> {
        vec![("worker0", Some("10.200.0.0/24".parse().unwrap()))]
    }

    #[tokio::test]
    async fn a_ready_node_list_passes_and_a_not_ready_one_says_why() {
        let server = serve(vec![
            route("GET", "/api/v1/nodes", 200, fixture("nodes-ready.json")),
            route(
                "GET",
                "/not-ready/api/v1/nodes",
                200,
                fixture("nodes-notready.json"),
            ),
        ])
        .await;
        let c = client(&server);
        let ready = fetch_json(
            &c,
            reqwest::Method::GET,
            format!("{}/api/v1/nodes", server.base),
            None,
        )
        .await
        .unwrap();
        assert_eq!(node_problems(&ready, &worker0()), Vec::<String>::new());
        // The plan's CIDR differs from the node's: reported.
        let other = [("worker0", Some("10.200.7.0/24".parse().unwrap()))];
        assert_eq!(
            node_problems(&ready, &other),
            ["worker0 has pod CIDR 10.200.0.0/24, the plan gives 10.200.7.0/24"]
        );
        // A worker the API does not know.
        let missing = [("worker1", Some("10.200.1.0/24".parse().unwrap()))];
        assert_eq!(
            node_problems(&ready, &missing),
            ["worker1 is not registered"]
        );

        let not_ready = fetch_json(
            &c,
            reqwest::Method::GET,
            format!("{}/not-ready/api/v1/nodes", server.base),
            None,
        )
        .await
        .unwrap();
        let problems = node_problems(&not_ready, &worker0());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "worker0 is not Ready (KubeletNotReady: container runtime network not ready"
            ),
            "{problems:?}"
        );
    }
}
