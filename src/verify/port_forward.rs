//! Check 13, port-forward: `kubectl port-forward` to an nginx pod answers as that pod.

use crate::config::Role;
use crate::render::ADMIN_KUBECTL as KUBECTL;

use super::pods::{admin_and_pods, pod_per_worker};
use super::{Ctx, Outcome, judge};

/// The shell line run on a controller: `kubectl port-forward` to `pod` on
/// loopback, polled until it answers (20 s at most), then stopped. Its
/// output ends with `@@answer` and the body, or `@@log` and kubectl's.
fn port_forward_script(pod: &str, port: u16) -> String {
    format!(
        "{KUBECTL} -n default port-forward --address 127.0.0.1 pod/{pod} {port}:80 >/tmp/kubelab-port-forward.log 2>&1 & pf=$!; \
         body=; for i in $(seq 1 100); do body=$(curl -fsS -m 2 http://127.0.0.1:{port}/ 2>/dev/null) && break; body=; sleep 0.2; done; \
         kill $pf 2>/dev/null; wait $pf 2>/dev/null; \
         if [ -n \"$body\" ]; then echo @@answer; echo \"$body\"; else echo @@log; tail -n 5 /tmp/kubelab-port-forward.log; fi"
    )
}

fn port_forward_verdict(pod: &str, out: &str) -> Option<String> {
    match out.split_once("@@answer") {
        Some((_, body)) if body.contains(&format!("pod={pod} ")) => None,
        Some((_, body)) => Some(format!(
            "port-forward to {pod} answered, but not as {pod}: {}",
            body.trim()
        )),
        None => {
            let log = out.split_once("@@log").map_or(out, |(_, l)| l).trim();
            Some(format!(
                "port-forward to {pod} never answered ({})",
                if log.is_empty() { "no output" } else { log }
            ))
        }
    }
}

pub(super) async fn port_forward(ctx: &Ctx<'_>) -> Outcome {
    let (_, pods) = match admin_and_pods(ctx).await {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let Some((_, (pod, _))) = pod_per_worker(&pods).into_iter().next() else {
        return Outcome::failed(
            "no Ready nginx pod to forward to",
            "the workload check says why",
        );
    };
    let Some(controller) = ctx.loaded.topo.by_role(Role::Controller).next() else {
        return Outcome::Skipped("the lab has no controller to run kubectl on".into());
    };
    const PORT: u16 = 18080;
    let problems = match ctx
        .ssh(
            &controller.name,
            port_forward_script(pod, PORT),
            "kubectl port-forward",
        )
        .await
    {
        Ok(out) => port_forward_verdict(pod, &out).into_iter().collect(),
        Err(e) => vec![format!("kubectl port-forward on {}: {e}", controller.name)],
    };
    judge(
        problems,
        format!(
            "`kubectl port-forward pod/{pod}` on {} answered on 127.0.0.1:{PORT} as {pod}",
            controller.name
        ),
        "port-forward goes apiserver -> kubelet -> containerd: the logs-exec check, then `journalctl -u containerd` on the pod's worker",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forward_passes_only_on_the_pods_own_answer() {
        let script = port_forward_script("nginx-7c5ddbdf54-2xq8k", 18080);
        assert!(
            script.contains("port-forward --address 127.0.0.1 pod/nginx-7c5ddbdf54-2xq8k 18080:80")
        );
        assert!(
            script.contains("kill $pf"),
            "the forward is stopped: {script}"
        );
        let pod = "nginx-7c5ddbdf54-2xq8k";
        let good = "@@answer\npod=nginx-7c5ddbdf54-2xq8k node=worker0 ip=10.200.0.4\n";
        assert_eq!(port_forward_verdict(pod, good), None);
        let other = "@@answer\npod=nginx-7c5ddbdf54-9kfmd node=worker1 ip=10.200.1.3\n";
        assert!(port_forward_verdict(pod, other).unwrap().contains("not as"));
        let refused = "@@log\nerror: error upgrading connection: unable to upgrade connection: pod does not exist\n";
        let why = port_forward_verdict(pod, refused).unwrap();
        assert!(
            why.contains("never answered") && why.contains("pod does not exist"),
            "{why}"
        );
        assert!(port_forward_verdict(pod, "").unwrap().contains("no output"));
    }
}
