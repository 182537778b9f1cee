//! Check 14, services: the nginx Service by ClusterIP, by name, and from its
//! own endpoint (hairpin).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::http::{api_base, fetch_json};
use super::pods::{Probe, admin, nginx_pods, pod_per_worker, run_probes, workers_without_pod};
use super::{API_HINT, Ctx, Outcome, judge};

/// Probes of the nginx Service from each worker's pod: by ClusterIP, by
/// name through CoreDNS, and the hairpin case: the same pod keeps asking the
/// Service until its own endpoint is chosen (each try picks one of the
/// replicas), which must answer too.
fn service_probes(per_worker: &BTreeMap<&str, (&str, &str)>, cluster_ip: Ipv4Addr) -> Vec<Probe> {
    const NAME: &str = "nginx.default.svc.cluster.local";
    let mut probes = Vec::new();
    for (worker, (pod, _)) in per_worker {
        probes.push(Probe {
            label: format!("{worker}: {pod} to the nginx Service at {cluster_ip}"),
            pod: pod.to_string(),
            command: format!("wget -q -O - -T 5 http://{cluster_ip}/"),
            expect: "pod=nginx".into(),
        });
        probes.push(Probe {
            label: format!("{worker}: {pod} to {NAME}"),
            pod: pod.to_string(),
            command: format!("wget -q -O - -T 5 http://{NAME}/"),
            expect: "pod=nginx".into(),
        });
        probes.push(Probe {
            label: format!("{worker}: {pod} to itself through the Service (hairpin)"),
            pod: pod.to_string(),
            command: format!(
                "i=0; while [ $i -lt 40 ]; do wget -q -O - -T 3 http://{cluster_ip}/ 2>&1 | grep -q \"pod={pod} \" && echo hairpin-answered && exit 0; i=$((i+1)); done; echo never answered by {pod}; exit 1"
            ),
            expect: "hairpin-answered".into(),
        });
    }
    probes
}

pub(super) async fn services(ctx: &Ctx<'_>) -> Outcome {
    let client = match admin(ctx) {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let service = fetch_json(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/namespaces/default/services/nginx", api_base(ctx)),
        None,
    );
    let (service, pods) = match tokio::join!(service, nginx_pods(ctx, &client)) {
        (Ok(s), Ok(p)) => (s, p),
        (Err(e), _) | (_, Err(e)) => return Outcome::failed(e, API_HINT),
    };
    let Some(cluster_ip) = service["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return Outcome::failed(
            "the nginx Service has no IPv4 clusterIP",
            "`kubectl get svc nginx -o yaml`",
        );
    };
    let per_worker = pod_per_worker(&pods);
    let mut problems = workers_without_pod(ctx, &per_worker, " to probe from");
    problems.extend(
        run_probes(
            ctx,
            &service_probes(&per_worker, cluster_ip),
            "probe the nginx Service",
        )
        .await,
    );
    judge(
        problems,
        format!(
            "from a pod on each of {} worker(s) the nginx Service answers at {cluster_ip} and by name, and a pod reaches itself through it (hairpin)",
            per_worker.len()
        ),
        "by IP failing: kube-proxy on the pod's worker; by name only: CoreDNS; hairpin only: `hairpinMode` in /etc/cni/net.d/10-bridge.conflist",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::pods::probe_verdicts;
    use crate::verify::testing::*;

    #[test]
    fn the_service_is_probed_by_ip_by_name_and_from_its_own_endpoint() {
        let pods = nginx_pods_fixture();
        let ip: Ipv4Addr = "10.32.0.57".parse().unwrap();
        let probes = service_probes(&pod_per_worker(&pods), ip);
        assert_eq!(probes.len(), 6, "three per worker");
        assert_eq!(probes[0].command, "wget -q -O - -T 5 http://10.32.0.57/");
        assert_eq!(
            probes[1].command,
            "wget -q -O - -T 5 http://nginx.default.svc.cluster.local/"
        );
        // The hairpin probe waits for its own pod's answer, never any pod's.
        assert!(
            probes[2]
                .command
                .contains("grep -q \"pod=nginx-7c5ddbdf54-2xq8k \"")
        );
        assert_eq!(probes[2].expect, "hairpin-answered");
        // Every command fits in the single quotes of `sh -c '...'`.
        assert!(probes.iter().all(|p| !p.command.contains('\'')));
        // Recorded output: by IP and by name answer from both workers; on
        // worker1 the pod never reaches itself (no hairpinMode).
        let out = "@@probe 0\npod=nginx-7c5ddbdf54-9kfmd node=worker1 ip=10.200.1.3\n@@exit 0\n\
            @@probe 1\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n@@exit 0\n\
            @@probe 2\nhairpin-answered\n@@exit 0\n\
            @@probe 3\npod=nginx-7c5ddbdf54-qj7wz node=worker0 ip=10.200.0.5\n@@exit 0\n\
            @@probe 4\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n@@exit 0\n\
            @@probe 5\nnever answered by nginx-7c5ddbdf54-9kfmd\n@@exit 1\n";
        let verdicts = probe_verdicts(&probes, out);
        assert_eq!(verdicts.len(), 1, "{verdicts:?}");
        assert!(
            verdicts[0].starts_with(
                "worker1: nginx-7c5ddbdf54-9kfmd to itself through the Service (hairpin)"
            ),
            "{}",
            verdicts[0]
        );
    }
}
