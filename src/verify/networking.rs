//! Check 9, networking: pod to pod across every pair of workers, and names
//! through CoreDNS, from the nginx pods.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::config::Role;
use crate::lab::LoadedLab;

use super::pods::{Probe, admin_and_pods, pod_per_worker, run_probes};
use super::{Ctx, Outcome, judge};

/// The probes of check 9 over the nginx pods (one Ready pod per worker, by
/// name): from each worker's pod, an HTTP GET of every other worker's pod
/// (the pod routes), and `kubernetes.default` through CoreDNS; from one pod,
/// dns0's name in the lab domain. Also what makes a probe impossible.
fn networking_probes(
    pods: &Value,
    workers: &[&str],
    kubernetes_ip: Ipv4Addr,
    dns0: Option<(&str, Ipv4Addr)>,
) -> (Vec<Probe>, Vec<String>) {
    let per_worker = pod_per_worker(pods);
    let mut problems = Vec::new();
    let probes = Vec::new();
    for w in workers {
        if !per_worker.contains_key(w) {
            problems.push(format!("no Ready nginx pod on {w} to probe from"));
        }
    }
    networking_probes_from(&per_worker, workers, kubernetes_ip, dns0, probes, problems)
}

fn networking_probes_from(
    per_worker: &BTreeMap<&str, (&str, &str)>,
    workers: &[&str],
    kubernetes_ip: Ipv4Addr,
    dns0: Option<(&str, Ipv4Addr)>,
    mut probes: Vec<Probe>,
    problems: Vec<String>,
) -> (Vec<Probe>, Vec<String>) {
    for from in workers {
        let Some((pod, _)) = per_worker.get(from) else {
            continue;
        };
        for to in workers.iter().filter(|t| *t != from) {
            let Some((target, ip)) = per_worker.get(to) else {
                continue;
            };
            probes.push(Probe {
                label: format!("{from} -> {to}: pod {pod} to {target} at {ip}"),
                pod: pod.to_string(),
                command: format!("wget -q -O - -T 5 http://{ip}/"),
                expect: format!("pod={target} "),
            });
        }
        probes.push(Probe {
            label: format!("{from}: kubernetes.default through CoreDNS from {pod}"),
            pod: pod.to_string(),
            command: "nslookup kubernetes.default.svc.cluster.local".into(),
            expect: kubernetes_ip.to_string(),
        });
    }
    if let (Some((name, address)), Some((_, (pod, _)))) = (dns0, per_worker.iter().next()) {
        probes.push(Probe {
            label: format!("the lab domain from {pod}: {name}"),
            pod: pod.to_string(),
            command: format!("nslookup {name}"),
            expect: address.to_string(),
        });
    }
    (probes, problems)
}

pub(super) async fn networking(ctx: &Ctx<'_>) -> Outcome {
    let LoadedLab { lab, topo, .. } = ctx.loaded;
    let (_, pods) = match admin_and_pods(ctx).await {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let workers: Vec<&str> = topo
        .by_role(Role::Worker)
        .map(|n| n.name.as_str())
        .collect();
    let dns0 = topo
        .by_role(Role::Dns)
        .next()
        .map(|n| (n.fqdn.as_str(), n.address));
    let (probes, mut problems) =
        networking_probes(&pods, &workers, crate::pki::first_service_ip(lab), dns0);
    if topo.by_role(Role::Controller).next().is_none() {
        return Outcome::Skipped("the lab has no controller to run kubectl on".into());
    }
    problems.extend(run_probes(ctx, &probes, "probe pod networking").await);
    let crossings = probes
        .iter()
        .filter(|p| p.command.starts_with("wget"))
        .count();
    judge(
        problems,
        format!(
            "{crossings} pod-to-pod request(s) across workers answered; kubernetes.default resolves through CoreDNS from every worker's pod{}",
            if dns0.is_some() {
                ", and the lab domain too"
            } else {
                ""
            }
        ),
        "pod-to-pod failing: `ip route` on the workers (the routes phase); names failing: `kubectl -n kube-system logs deploy/coredns`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::pods::{probe_script, probe_verdicts};
    use crate::verify::testing::*;

    #[test]
    fn networking_probes_cross_every_pair_of_workers_and_ask_coredns() {
        let pods = nginx_pods_fixture();
        let kubernetes: Ipv4Addr = "10.32.0.1".parse().unwrap();
        let dns0 = Some(("dns0.lan", "192.168.56.2".parse().unwrap()));
        let (probes, problems) =
            networking_probes(&pods, &["worker0", "worker1"], kubernetes, dns0);
        assert!(problems.is_empty(), "{problems:?}");
        let shown = shown(&probes);
        // worker0 runs two pods: the first by name is the one probed.
        assert_eq!(
            shown,
            [
                (
                    "nginx-7c5ddbdf54-2xq8k",
                    "wget -q -O - -T 5 http://10.200.1.3/",
                    "pod=nginx-7c5ddbdf54-9kfmd "
                ),
                (
                    "nginx-7c5ddbdf54-2xq8k",
                    "nslookup kubernetes.default.svc.cluster.local",
                    "10.32.0.1"
                ),
                (
                    "nginx-7c5ddbdf54-9kfmd",
                    "wget -q -O - -T 5 http://10.200.0.4/",
                    "pod=nginx-7c5ddbdf54-2xq8k "
                ),
                (
                    "nginx-7c5ddbdf54-9kfmd",
                    "nslookup kubernetes.default.svc.cluster.local",
                    "10.32.0.1"
                ),
                (
                    "nginx-7c5ddbdf54-2xq8k",
                    "nslookup dns0.lan",
                    "192.168.56.2"
                ),
            ]
        );
        // A worker without a Ready pod cannot be probed: that is a problem.
        let (probes, problems) =
            networking_probes(&pods, &["worker0", "worker1", "worker2"], kubernetes, None);
        assert_eq!(problems, ["no Ready nginx pod on worker2 to probe from"]);
        assert_eq!(probes.len(), 4);
    }

    #[test]
    fn networking_verdicts_come_from_each_probes_output_and_exit_code() {
        let pods = nginx_pods_fixture();
        let (probes, _) = networking_probes(
            &pods,
            &["worker0", "worker1"],
            "10.32.0.1".parse().unwrap(),
            Some(("dns0.lan", "192.168.56.2".parse().unwrap())),
        );
        let script = probe_script(&probes);
        assert!(script.contains(
            "exec nginx-7c5ddbdf54-2xq8k -- sh -c 'wget -q -O - -T 5 http://10.200.1.3/'"
        ));
        assert_eq!(script.matches("@@probe").count(), probes.len());
        // What the script prints when every probe answers.
        let good = "@@probe 0\npod=nginx-7c5ddbdf54-9kfmd node=worker1 ip=10.200.1.3\n@@exit 0\n\
            @@probe 1\nServer:\t\t10.32.0.10\nName:\tkubernetes.default.svc.cluster.local\nAddress: 10.32.0.1\n@@exit 0\n\
            @@probe 2\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n@@exit 0\n\
            @@probe 3\nAddress: 10.32.0.1\n@@exit 0\n\
            @@probe 4\nName:\tdns0.lan\nAddress: 192.168.56.2\n@@exit 0\n";
        assert_eq!(probe_verdicts(&probes, good), Vec::<String>::new());
        // A missing route times out; CoreDNS answering NXDOMAIN; a cut-off run.
        let bad = "@@probe 0\nwget: download timed out\n@@exit 1\n\
            @@probe 1\n** server can't find kubernetes.default.svc.cluster.local: NXDOMAIN\n@@exit 1\n\
            @@probe 2\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n@@exit 0\n\
            @@probe 3\nAddress: 10.32.0.1\n@@exit 0\n";
        let verdicts = probe_verdicts(&probes, bad);
        assert_eq!(verdicts.len(), 3, "{verdicts:#?}");
        assert!(
            verdicts[0].starts_with("worker0 -> worker1"),
            "{}",
            verdicts[0]
        );
        assert!(verdicts[0].contains("exited 1") && verdicts[0].contains("timed out"));
        assert!(verdicts[1].contains("NXDOMAIN"), "{}", verdicts[1]);
        assert!(verdicts[2].ends_with("did not run"), "{}", verdicts[2]);
    }

    #[test]
    fn pod_names_with_shell_characters_are_never_probed() {
        let pods = serde_json::json!({"items": [{
            "metadata": {"name": "x'; rm -rf /; '"},
            "spec": {"nodeName": "worker0"},
            "status": {"podIP": "10.200.0.4", "conditions": [{"type": "Ready", "status": "True"}]}
        }]});
        let (probes, problems) =
            networking_probes(&pods, &["worker0"], "10.32.0.1".parse().unwrap(), None);
        assert!(probes.is_empty());
        assert_eq!(problems, ["no Ready nginx pod on worker0 to probe from"]);
    }
}
