//! Check 16, etcd-member-down (disruptive): with one member stopped, a key
//! written through one member is read back through another; it is started again.

use serde_json::Value;

use crate::config::Role;
use crate::topology::Node;

use super::http::{etcd_client, fetch_json, request};
use super::{Ctx, Outcome, RETURN_WAIT, judge, poll};

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A v3 gateway `kv/range` answer holds `key` with `value`.
fn range_holds(body: &Value, key: &str, value: &str) -> bool {
    body["kvs"].as_array().is_some_and(|kvs| {
        kvs.iter()
            .any(|kv| kv["key"] == b64(key).as_str() && kv["value"] == b64(value).as_str())
    })
}

pub(super) async fn etcd_member_down(ctx: &Ctx<'_>) -> Outcome {
    let client = match etcd_client(&ctx.pki_dir) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, "`kubelab lab render` signs the etcd certificates"),
    };
    let members: Vec<&Node> = ctx.loaded.topo.by_role(Role::Etcd).collect();
    let Some((stopped, rest)) = members.split_last() else {
        return Outcome::Skipped("no etcd members".into());
    };
    let [writer, reader, ..] = rest else {
        return Outcome::Skipped("fewer than 3 etcd members".into());
    };
    let url = |n: &Node, path: &str| format!("https://{}:2379/v3/{path}", n.address);
    let mut nonce = [0u8; 8];
    let _ = getrandom::fill(&mut nonce);
    let key = format!(
        "/kubelab-verify/{}",
        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let value = "written with a member down";
    if let Err(e) = ctx.stop_unit(&stopped.name, "etcd").await {
        return Outcome::failed(format!("stopping etcd on {}: {e}", stopped.name), "");
    }
    let mut problems = Vec::new();
    let put = serde_json::json!({"key": b64(&key), "value": b64(value)}).to_string();
    match fetch_json(
        &client,
        reqwest::Method::POST,
        url(writer, "kv/put"),
        Some(put),
    )
    .await
    {
        Ok(_) => {
            let range = serde_json::json!({"key": b64(&key)}).to_string();
            match fetch_json(
                &client,
                reqwest::Method::POST,
                url(reader, "kv/range"),
                Some(range),
            )
            .await
            {
                Ok(body) if range_holds(&body, &key, value) => {}
                Ok(_) => problems.push(format!(
                    "{} did not return the key {} just written through {}",
                    reader.name, key, writer.name
                )),
                Err(e) => problems.push(e),
            }
            let delete = serde_json::json!({"key": b64(&key)}).to_string();
            if let Err(e) = fetch_json(
                &client,
                reqwest::Method::POST,
                url(writer, "kv/deleterange"),
                Some(delete),
            )
            .await
            {
                problems.push(format!("deleting {key}: {e}"));
            }
        }
        Err(e) => problems.push(format!(
            "with {} stopped, a write through {} failed: {e}",
            stopped.name, writer.name
        )),
    }
    // Restore it, and wait until it is healthy again.
    match ctx.start_unit(&stopped.name, "etcd").await {
        Ok(_) => {
            let health = format!("https://{}:2379/health", stopped.address);
            let back = poll(RETURN_WAIT, || async {
                matches!(
                    request(&client, reqwest::Method::GET, &health, None).await,
                    Ok((200, _))
                )
            })
            .await;
            if back.is_none() {
                problems.push(format!(
                    "etcd on {} was not healthy again within {} s",
                    stopped.name,
                    RETURN_WAIT.as_secs()
                ));
            }
        }
        Err(e) => problems.push(format!("starting etcd on {} again: {e}", stopped.name)),
    }
    judge(
        problems,
        format!(
            "with etcd stopped on {}, a key written through {} was read back through {}; {} is healthy again",
            stopped.name, writer.name, reader.name, stopped.name
        ),
        &format!(
            "if it is still stopped: `kubelab lab ssh {} -- sudo systemctl start etcd`; the etcd check lists the members",
            stopped.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_with_a_member_down_must_be_read_back_as_written() {
        // What etcd's v3 gateway answers to kv/range (keys and values base64).
        let key = "/kubelab-verify/0a1b2c3d4e5f6071";
        let range: Value = serde_json::json!({
            "header": {"cluster_id": "14841639068965178418", "member_id": "10276657743932975437", "revision": "42", "raft_term": "3"},
            "kvs": [{
                "key": "L2t1YmVsYWItdmVyaWZ5LzBhMWIyYzNkNGU1ZjYwNzE=",
                "create_revision": "42", "mod_revision": "42", "version": "1",
                "value": "d3JpdHRlbiB3aXRoIGEgbWVtYmVyIGRvd24="
            }],
            "count": "1"
        });
        assert!(range_holds(&range, key, "written with a member down"));
        assert!(!range_holds(&range, key, "something else"));
        let empty: Value = serde_json::json!({"header": {"revision": "42"}});
        assert!(!range_holds(&empty, key, "written with a member down"));
    }
}
