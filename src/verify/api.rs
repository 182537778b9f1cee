//! Check 4, api: /readyz through the VIP, the API name and every controller;
//! haproxy sees every controller up.

use std::collections::BTreeMap;

use crate::config::Role;
use crate::topology::Node;

use super::http::{admin_client, api_base, excerpt, request};
use super::{API_HINT, Ctx, Outcome, judge};

/// `/readyz?verbose`: 200 is ready; otherwise the failing checks (`[-]` lines).
fn readyz_verdict(status: u16, body: &str) -> std::result::Result<(), String> {
    if status == 200 {
        return Ok(());
    }
    let failing: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("[-]"))
        .map(|l| l.trim_start_matches("[-]"))
        .collect();
    Err(if failing.is_empty() {
        format!("HTTP {status}: {}", excerpt(body.as_bytes()))
    } else {
        format!("HTTP {status}, failing: {}", failing.join(", "))
    })
}

pub(super) async fn readyz(
    client: &reqwest::Client,
    base: &str,
) -> std::result::Result<(), String> {
    let url = format!("{base}/readyz?verbose");
    let (status, body) = request(client, reqwest::Method::GET, &url, None).await?;
    readyz_verdict(status, &String::from_utf8_lossy(&body)).map_err(|e| format!("{url}: {e}"))
}

/// Controllers that haproxy's statistics (CSV) do not show UP in the
/// kube-apiserver backend.
fn haproxy_down(csv: &str, controllers: &[&str]) -> Vec<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
        return vec!["haproxy's statistics have no pxname/svname/status columns".into()];
    };
    let mut status: BTreeMap<&str, &str> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.get(px) == Some(&"kube-apiserver")
            && let (Some(server), Some(state)) = (cells.get(sv), cells.get(st))
        {
            status.insert(server, state);
        }
    }
    controllers
        .iter()
        .filter_map(|c| match status.get(c) {
            Some(state) if state.starts_with("UP") => None,
            Some(state) => Some(format!("{c} is {state}")),
            None => Some(format!("{c} is not in the backend")),
        })
        .collect()
}

pub(super) async fn api(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let client = match admin_client(ctx) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the admin certificate"),
    };
    let controllers: Vec<&Node> = topo.by_role(Role::Controller).collect();
    let mut bases = vec![api_base(ctx), topo.api.url()];
    bases.extend(
        controllers
            .iter()
            .map(|n| format!("https://{}:{}", n.address, topo.api.port)),
    );
    let answers = futures_util::future::join_all(bases.iter().map(|b| readyz(&client, b))).await;
    let mut problems: Vec<String> = answers.into_iter().filter_map(|r| r.err()).collect();
    let names: Vec<&str> = controllers.iter().map(|n| n.name.as_str()).collect();
    let lbs: Vec<&Node> = topo.by_role(Role::Lb).collect();
    let stats = futures_util::future::join_all(lbs.iter().map(|lb| {
        ctx.ssh(
            &lb.name,
            "curl -fsS --max-time 5 'http://127.0.0.1:8404/;csv'",
            "read haproxy's statistics",
        )
    }))
    .await;
    for (lb, got) in lbs.iter().zip(stats) {
        match got {
            Ok(csv) => problems.extend(
                haproxy_down(&csv, &names)
                    .into_iter()
                    .map(|p| format!("haproxy on {}: {p}", lb.name)),
            ),
            Err(e) => problems.push(format!("haproxy statistics on {}: {e}", lb.name)),
        }
    }
    judge(
        problems,
        format!(
            "/readyz answers through {} and {}, and on all {} controllers; haproxy on {} sees every controller up",
            topo.api.address,
            topo.api.name,
            controllers.len(),
            lbs.iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        API_HINT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testing::*;

    #[tokio::test]
    async fn readyz_passes_on_200_and_names_the_failing_checks_otherwise() {
        let server = serve(vec![
            route("GET", "/readyz?verbose", 200, fixture("readyz-healthy.txt")),
            route(
                "GET",
                "/sick/readyz?verbose",
                500,
                fixture("readyz-unhealthy.txt"),
            ),
        ])
        .await;
        let c = client(&server);
        readyz(&c, &server.base).await.unwrap();
        let err = readyz(&c, &format!("{}/sick", server.base))
            .await
            .unwrap_err();
        assert!(
            err.ends_with("HTTP 500, failing: etcd failed: reason withheld, etcd-readiness failed: reason withheld, poststarthook/rbac/bootstrap-roles failed: reason withheld"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_api_that_does_not_listen_is_an_error_naming_the_address() {
        // Bind, learn the port, close: nothing listens there any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = serve(vec![]).await;
        let err = readyz(&client(&server), &format!("https://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{port}/readyz")), "{err}");
        assert!(err.to_lowercase().contains("connect"), "{err}");
    }

    #[test]
    fn haproxy_statistics_show_which_controllers_are_down() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
kube-apiserver,FRONTEND,,,0,0,4096,0,0,0,0,0,0,,,,,OPEN,\n\
kube-apiserver,controller0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1\n\
kube-apiserver,controller1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1\n\
kube-apiserver,controller2,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1\n\
kube-apiserver,BACKEND,0,0,0,0,410,0,0,0,0,0,,0,0,0,0,UP,2\n\
stats,FRONTEND,,,1,1,4096,1,0,0,0,0,0,,,,,OPEN,\n";
        assert_eq!(
            haproxy_down(
                csv,
                &["controller0", "controller1", "controller2", "controller3"]
            ),
            ["controller1 is DOWN", "controller3 is not in the backend"]
        );
        assert!(!haproxy_down("garbage", &["controller0"]).is_empty());
    }
}
