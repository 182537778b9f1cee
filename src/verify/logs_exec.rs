//! Check 12, logs-exec: the API serves a pod's log and runs `kubectl exec` in
//! a pod on each worker (apiserver -> kubelet).

use std::collections::BTreeMap;

use super::http::{api_base, excerpt, request};
use super::pods::{Probe, admin_and_pods, pod_per_worker, run_probes, workers_without_pod};
use super::{Ctx, Outcome, judge};

/// A pod's log as the API returns it (through the kubelet): it must answer
/// 200 with something in it.
fn log_verdict(pod: &str, status: u16, body: &[u8]) -> Option<String> {
    match status {
        200 if !String::from_utf8_lossy(body).trim().is_empty() => None,
        200 => Some(format!("the log of {pod} came back empty")),
        _ => Some(format!(
            "GET the log of {pod}: HTTP {status} ({})",
            excerpt(body)
        )),
    }
}

/// `kubectl exec` into each worker's pod: its hostname is its name.
fn exec_probes(per_worker: &BTreeMap<&str, (&str, &str)>) -> Vec<Probe> {
    per_worker
        .iter()
        .map(|(worker, (pod, _))| Probe {
            label: format!("exec in {pod} on {worker}"),
            pod: pod.to_string(),
            command: "cat /etc/hostname".into(),
            expect: pod.to_string(),
        })
        .collect()
}

pub(super) async fn logs_exec(ctx: &Ctx<'_>) -> Outcome {
    let (client, pods) = match admin_and_pods(ctx).await {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let per_worker = pod_per_worker(&pods);
    let mut problems = workers_without_pod(ctx, &per_worker, "");
    for (_, (pod, _)) in per_worker.iter() {
        let url = format!(
            "{}/api/v1/namespaces/default/pods/{pod}/log?tailLines=20",
            api_base(ctx)
        );
        match request(&client, reqwest::Method::GET, &url, None).await {
            Ok((status, body)) => problems.extend(log_verdict(pod, status, &body)),
            Err(e) => problems.push(e),
        }
    }
    problems.extend(
        run_probes(
            ctx,
            &exec_probes(&per_worker),
            "kubectl exec into the nginx pods",
        )
        .await,
    );
    judge(
        problems,
        format!(
            "the API served the logs of and ran `kubectl exec` in a pod on each of {} worker(s) (apiserver -> kubelet authentication and RBAC)",
            per_worker.len()
        ),
        "403: the addons phase binds system:kube-apiserver-to-kubelet; a TLS error: the kubelet's serving certificate and --kubelet-certificate-authority",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::pods::probe_verdicts;
    use crate::verify::testing::*;

    #[test]
    fn logs_must_come_back_and_exec_must_land_in_the_pod() {
        assert_eq!(
            log_verdict("p", 200, b"/docker-entrypoint.sh: Configuration complete\n"),
            None
        );
        assert_eq!(
            log_verdict("p", 200, b"  \n").unwrap(),
            "the log of p came back empty"
        );
        // What the API says when the apiserver may not reach the kubelet.
        let forbidden = br#"{"kind":"Status","message":"Forbidden (user=kube-apiserver-kubelet-client, verb=get, resource=nodes, subresource=proxy)"}"#;
        let why = log_verdict("p", 403, forbidden).unwrap();
        assert!(
            why.contains("HTTP 403") && why.contains("Forbidden"),
            "{why}"
        );

        let pods = nginx_pods_fixture();
        let probes = exec_probes(&pod_per_worker(&pods));
        let shown = shown(&probes);
        assert_eq!(
            shown,
            [
                (
                    "nginx-7c5ddbdf54-2xq8k",
                    "cat /etc/hostname",
                    "nginx-7c5ddbdf54-2xq8k"
                ),
                (
                    "nginx-7c5ddbdf54-9kfmd",
                    "cat /etc/hostname",
                    "nginx-7c5ddbdf54-9kfmd"
                ),
            ]
        );
        let out = "@@probe 0\nnginx-7c5ddbdf54-2xq8k\n@@exit 0\n\
            @@probe 1\nerror: unable to upgrade connection: Forbidden\n@@exit 1\n";
        let verdicts = probe_verdicts(&probes, out);
        assert_eq!(verdicts.len(), 1, "{verdicts:?}");
        assert!(
            verdicts[0].contains("unable to upgrade connection"),
            "{}",
            verdicts[0]
        );
    }
}
