//! Check 3, etcd: every member healthy over mutual TLS, the member list is
//! the plan's, and one leader they agree on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::config::Role;
use crate::topology::Node;

use super::http::{etcd_client, fetch_json};
use super::{Ctx, Outcome, judge};

/// uint64 fields come as strings from etcd's JSON gateway.
fn id_string(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::to_string)
        .or_else(|| v.as_u64().map(|n| n.to_string()))
}

/// What one etcd member says about itself and the cluster.
#[derive(Debug, Clone)]
struct EtcdView {
    health: std::result::Result<Value, String>,
    members: std::result::Result<Value, String>,
    status: std::result::Result<Value, String>,
}

async fn etcd_view(client: &reqwest::Client, base: String) -> EtcdView {
    let (health, members, status) = tokio::join!(
        fetch_json(client, reqwest::Method::GET, format!("{base}/health"), None),
        fetch_json(
            client,
            reqwest::Method::POST,
            format!("{base}/v3/cluster/member/list"),
            Some("{}".into())
        ),
        fetch_json(
            client,
            reqwest::Method::POST,
            format!("{base}/v3/maintenance/status"),
            Some("{}".into())
        ),
    );
    EtcdView {
        health,
        members,
        status,
    }
}

/// Every member healthy, every member's list == the plan's etcd nodes at
/// their client URLs, and all agree on one leader that is one of them.
fn judge_etcd(expected: &[(&str, Ipv4Addr)], views: &[(&str, EtcdView)]) -> Outcome {
    let mut problems = Vec::new();
    let want: BTreeSet<&str> = expected.iter().map(|(n, _)| *n).collect();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut leaders: BTreeSet<String> = BTreeSet::new();
    let mut self_ids: BTreeMap<&str, String> = BTreeMap::new();
    for (name, view) in views {
        match &view.health {
            Ok(v) if v["health"] == "true" => {}
            Ok(v) => problems.push(format!("{name} is not healthy: {v}")),
            Err(e) => problems.push(format!("{name} /health: {e}")),
        }
        match &view.members {
            Ok(v) => {
                let members = v["members"].as_array().cloned().unwrap_or_default();
                let listed: BTreeSet<&str> =
                    members.iter().filter_map(|m| m["name"].as_str()).collect();
                if listed != want {
                    problems.push(format!(
                        "{name} lists members {listed:?}, the plan has {want:?}"
                    ));
                }
                for m in &members {
                    let (Some(member), Some(id)) = (m["name"].as_str(), id_string(&m["ID"])) else {
                        continue;
                    };
                    ids.insert(id, member.to_string());
                    if let Some((_, address)) = expected.iter().find(|(n, _)| *n == member) {
                        let url = format!("https://{address}:2379");
                        let urls = m["clientURLs"].as_array().cloned().unwrap_or_default();
                        if !urls.iter().any(|u| u == url.as_str()) {
                            problems.push(format!(
                                "member {member} does not advertise {url} (it lists {urls:?})"
                            ));
                        }
                    }
                }
            }
            Err(e) => problems.push(format!("{name} member list: {e}")),
        }
        match &view.status {
            Ok(v) => {
                match id_string(&v["leader"]) {
                    Some(leader) if leader != "0" => {
                        leaders.insert(leader);
                    }
                    _ => problems.push(format!("{name} knows no leader")),
                }
                if let Some(id) = id_string(&v["header"]["member_id"]) {
                    self_ids.insert(name, id);
                }
            }
            Err(e) => problems.push(format!("{name} status: {e}")),
        }
    }
    let mut leader_name = String::new();
    match leaders.len() {
        0 => {}
        1 => {
            let leader = leaders.iter().next().cloned().unwrap_or_default();
            let claimed: Vec<&&str> = self_ids
                .iter()
                .filter(|(_, id)| **id == leader)
                .map(|(n, _)| n)
                .collect();
            match ids.get(&leader) {
                Some(name) if claimed.len() == 1 => leader_name = name.clone(),
                Some(name) => problems.push(format!(
                    "the leader {name} is not among the members that answered"
                )),
                None => problems.push(format!("the leader {leader} is not in the member list")),
            }
        }
        _ => problems.push(format!(
            "the members disagree on the leader: {} leaders reported",
            leaders.len()
        )),
    }
    judge(
        problems,
        format!(
            "{} members healthy over mutual TLS; member list = {}; one leader: {leader_name}",
            views.len(),
            want.iter().copied().collect::<Vec<_>>().join(", ")
        ),
        "`kubelab lab ssh MEMBER -- sudo journalctl -u etcd` says why",
    )
}

pub(super) async fn etcd(ctx: &Ctx<'_>) -> Outcome {
    let client = match etcd_client(&ctx.pki_dir) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the etcd certificates"),
    };
    let members: Vec<&Node> = ctx.loaded.topo.by_role(Role::Etcd).collect();
    let views = futures_util::future::join_all(
        members
            .iter()
            .map(|n| etcd_view(&client, format!("https://{}:2379", n.address))),
    )
    .await;
    let expected: Vec<(&str, Ipv4Addr)> = members
        .iter()
        .map(|n| (n.name.as_str(), n.address))
        .collect();
    let views: Vec<(&str, EtcdView)> = members.iter().map(|n| n.name.as_str()).zip(views).collect();
    judge_etcd(&expected, &views)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testing::*;

    fn etcd_json(member_id: &str, leader: &str) -> (Value, Value, Value) {
        let members = serde_json::json!({
            "header": {"cluster_id": "14841639068965178418", "member_id": member_id, "raft_term": "2"},
            "members": [
                {"ID": "10276657743932975437", "name": "etcd0", "peerURLs": ["https://192.168.56.10:2380"], "clientURLs": ["https://192.168.56.10:2379"]},
                {"ID": "4503731564478373227", "name": "etcd1", "peerURLs": ["https://192.168.56.11:2380"], "clientURLs": ["https://192.168.56.11:2379"]},
                {"ID": "13258124508946512354", "name": "etcd2", "peerURLs": ["https://192.168.56.12:2380"], "clientURLs": ["https://192.168.56.12:2379"]}
            ]
        });
        let status = serde_json::json!({
            "header": {"cluster_id": "14841639068965178418", "member_id": member_id, "revision": "1", "raft_term": "2"},
            "version": "3.4.23", "dbSize": "20480", "leader": leader, "raftIndex": "9", "raftTerm": "2"
        });
        (
            serde_json::json!({"health": "true", "reason": ""}),
            members,
            status,
        )
    }

    const EXPECTED_ETCD: [(&str, Ipv4Addr); 3] = [
        ("etcd0", Ipv4Addr::new(192, 168, 56, 10)),
        ("etcd1", Ipv4Addr::new(192, 168, 56, 11)),
        ("etcd2", Ipv4Addr::new(192, 168, 56, 12)),
    ];

    fn views(leaders: [&str; 3]) -> Vec<(&'static str, EtcdView)> {
        let ids = [
            "10276657743932975437",
            "4503731564478373227",
            "13258124508946512354",
        ];
        ["etcd0", "etcd1", "etcd2"]
            .into_iter()
            .zip(ids)
            .zip(leaders)
            .map(|((name, id), leader)| {
                let (health, members, status) = etcd_json(id, leader);
                (
                    name,
                    EtcdView {
                        health: Ok(health),
                        members: Ok(members),
                        status: Ok(status),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn etcd_passes_with_one_agreed_leader_and_fails_otherwise() {
        let leader = "4503731564478373227";
        let outcome = judge_etcd(&EXPECTED_ETCD, &views([leader; 3]));
        assert_eq!(
            outcome,
            Outcome::Passed("3 members healthy over mutual TLS; member list = etcd0, etcd1, etcd2; one leader: etcd1".into())
        );
        let split = judge_etcd(
            &EXPECTED_ETCD,
            &views([leader, leader, "10276657743932975437"]),
        );
        assert!(
            split.detail().contains("disagree on the leader"),
            "{split:?}"
        );
        let none = judge_etcd(&EXPECTED_ETCD, &views(["0"; 3]));
        assert!(none.detail().contains("etcd0 knows no leader"), "{none:?}");
        let mut down = views([leader; 3]);
        down[2].1.health = Err("https://192.168.56.12:2379/health: connection refused".into());
        let down = judge_etcd(&EXPECTED_ETCD, &down);
        assert!(down.detail().starts_with("etcd2 /health: "), "{down:?}");
        // A fourth member nobody planned.
        let mut extra = views([leader; 3]);
        if let Ok(m) = &mut extra[0].1.members {
            m["members"].as_array_mut().unwrap().push(
                serde_json::json!({"ID": "1", "name": "etcd9", "clientURLs": ["https://192.168.56.19:2379"]}),
            );
        }
        assert!(matches!(
            judge_etcd(&EXPECTED_ETCD, &extra),
            Outcome::Failed { .. }
        ));
    }

    #[tokio::test]
    async fn etcd_is_asked_through_its_json_gateway() {
        let (health, members, status) = etcd_json("4503731564478373227", "4503731564478373227");
        let server = serve(vec![
            route("GET", "/health", 200, health.to_string()),
            route("POST", "/v3/cluster/member/list", 200, members.to_string()),
            route("POST", "/v3/maintenance/status", 200, status.to_string()),
        ])
        .await;
        let view = etcd_view(&client(&server), server.base.clone()).await;
        assert_eq!(view.health.unwrap()["health"], "true");
        assert_eq!(
            view.members.unwrap()["members"].as_array().unwrap().len(),
            3
        );
        assert_eq!(view.status.unwrap()["leader"], "4503731564478373227");
    }
}
