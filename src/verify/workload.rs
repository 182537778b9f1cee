//! Check 10, workload: the nginx Deployment Ready over the workers, and its
//! NodePort answered by different pods on every worker.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::config::Role;
use crate::lab::LoadedLab;
use crate::topology::Node;

use super::http::{admin_client, api_base, fetch_json, request};
use super::{API_HINT, Ctx, Outcome, judge};

/// The nginx Deployment is fully Ready and its Ready pods cover every worker
/// (as far as the replica count allows).
fn workload_problems(
    deployment: &Value,
    pods: &Value,
    workers: &[&str],
    replicas: u32,
) -> Vec<String> {
    let mut problems = Vec::new();
    let spec = deployment["spec"]["replicas"].as_u64().unwrap_or(0);
    let ready = deployment["status"]["readyReplicas"].as_u64().unwrap_or(0);
    if spec != u64::from(replicas) {
        problems.push(format!(
            "the Deployment asks for {spec} replicas, lab.yaml for {replicas}"
        ));
    }
    if ready < spec {
        problems.push(format!("{ready} of {spec} replicas Ready"));
    }
    let on: BTreeSet<&str> = pods["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .filter_map(|p| p["spec"]["nodeName"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let expected = workers.len().min(replicas as usize);
    let missing: Vec<&&str> = workers.iter().filter(|w| !on.contains(**w)).collect();
    if on.len() < expected {
        problems.push(format!(
            "Ready pods on {} worker(s), expected {expected}; none on {missing:?}",
            on.len()
        ));
    }
    problems
}

/// The pod names in NodePort answers (`pod=NAME node=... ip=...`).
fn answering_pods(bodies: &[String]) -> BTreeSet<String> {
    bodies
        .iter()
        .filter_map(|b| {
            b.split_whitespace()
                .find_map(|w| w.strip_prefix("pod="))
                .map(str::to_string)
        })
        .collect()
}

pub(super) async fn workload(ctx: &Ctx<'_>) -> Outcome {
    let LoadedLab { lab, topo, .. } = ctx.loaded;
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let base = api_base(ctx);
    let deployment = fetch_json(
        &client,
        reqwest::Method::GET,
        format!("{base}/apis/apps/v1/namespaces/default/deployments/nginx"),
        None,
    );
    let pods = fetch_json(
        &client,
        reqwest::Method::GET,
        format!(
            "{base}/api/v1/namespaces/default/pods?labelSelector=app.kubernetes.io%2Fname%3Dnginx"
        ),
        None,
    );
    let (deployment, pods) = match tokio::join!(deployment, pods) {
        (Ok(d), Ok(p)) => (d, p),
        (Err(e), _) | (_, Err(e)) => return Outcome::failed(e, API_HINT),
    };
    let workers: Vec<&Node> = topo.by_role(Role::Worker).collect();
    let names: Vec<&str> = workers.iter().map(|n| n.name.as_str()).collect();
    let mut problems = workload_problems(&deployment, &pods, &names, lab.nginx_replicas);
    let plain = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Outcome::failed(format!("could not set up HTTP: {e}"), ""),
    };
    // Several rounds over every worker's NodePort: kube-proxy spreads them.
    let port = crate::render::NGINX_NODE_PORT;
    let mut bodies = Vec::new();
    for _ in 0..(lab.nginx_replicas.max(2) * 2) {
        for w in &workers {
            let url = format!("http://{}:{port}/", w.address);
            match request(&plain, reqwest::Method::GET, &url, None).await {
                Ok((200, body)) => bodies.push(String::from_utf8_lossy(&body).into_owned()),
                Ok((status, _)) => problems.push(format!("{url}: HTTP {status}")),
                Err(e) => problems.push(e),
            }
        }
    }
    let answered = answering_pods(&bodies);
    if lab.nginx_replicas > 1 && answered.len() < 2 {
        problems.push(format!(
            "{} requests through the NodePort were all answered by {answered:?}",
            bodies.len()
        ));
    }
    problems.dedup();
    judge(
        problems,
        format!(
            "{} replicas Ready over {} worker(s); the NodePort {port} answers on every worker, from {} different pods",
            lab.nginx_replicas,
            workers.len(),
            answered.len()
        ),
        "`kubectl describe deployment nginx` and `kubectl get pods -o wide` say why",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testing::*;

    #[tokio::test]
    async fn the_nginx_deployment_is_judged_from_its_status_and_pods() {
        let server = serve(vec![
            route(
                "GET",
                "/apis/apps/v1/namespaces/default/deployments/nginx",
                200,
                fixture("deployment-nginx.json"),
            ),
            route(
                "GET",
                "/api/v1/namespaces/default/pods*",
                200,
                fixture("pods-nginx.json"),
            ),
        ])
        .await;
        let c = client(&server);
        let d = fetch_json(
            &c,
            reqwest::Method::GET,
            format!(
                "{}/apis/apps/v1/namespaces/default/deployments/nginx",
                server.base
            ),
            None,
        )
        .await
        .unwrap();
        let p = fetch_json(
            &c,
            reqwest::Method::GET,
            format!(
                "{}/api/v1/namespaces/default/pods?labelSelector=x",
                server.base
            ),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            workload_problems(&d, &p, &["worker0", "worker1"], 3),
            Vec::<String>::new()
        );
        // A third worker with no pod on it.
        assert_eq!(
            workload_problems(&d, &p, &["worker0", "worker1", "worker2"], 3),
            ["Ready pods on 2 worker(s), expected 3; none on [\"worker2\"]"]
        );
        // Two of three replicas Ready.
        let mut partly = d.clone();
        partly["status"]["readyReplicas"] = 2.into();
        assert_eq!(
            workload_problems(&partly, &p, &["worker0", "worker1"], 3),
            ["2 of 3 replicas Ready"]
        );
        assert_eq!(
            answering_pods(&[
                "pod=nginx-a node=worker0 ip=10.200.0.4\n".into(),
                "pod=nginx-b node=worker1 ip=10.200.1.3\n".into(),
                "pod=nginx-a node=worker0 ip=10.200.0.4\n".into(),
            ])
            .len(),
            2
        );
    }
}
