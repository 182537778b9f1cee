//! Check 8, secrets: a new Secret is stored encrypted in etcd.

use crate::config::Role;

use super::http::{admin_client, api_base, etcd_client, fetch_json};
use super::{API_HINT, Ctx, Outcome};

const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:aescbc:v1:";

/// Creates a throwaway Secret through the API, reads its raw value from etcd
/// and deletes it. The value is never printed: only whether it is encrypted.
async fn secret_at_rest(
    api: &reqwest::Client,
    api_base: &str,
    etcd: &reqwest::Client,
    etcd_base: &str,
) -> Outcome {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut random = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut random) {
        return Outcome::failed(format!("no randomness for a name: {e}"), "");
    }
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("kubelab-verify-{suffix}");
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubelab"}},
        "data": {"probe": b64.encode(random)},
    });
    let secrets = format!("{api_base}/api/v1/namespaces/default/secrets");
    if let Err(e) = fetch_json(api, reqwest::Method::POST, &secrets, Some(body.to_string())).await {
        return Outcome::failed(e, API_HINT);
    }
    let key = format!("/registry/secrets/default/{name}");
    let range = fetch_json(
        etcd,
        reqwest::Method::POST,
        &format!("{etcd_base}/v3/kv/range"),
        Some(serde_json::json!({"key": b64.encode(&key)}).to_string()),
    )
    .await;
    let deleted = fetch_json(
        api,
        reqwest::Method::DELETE,
        &format!("{secrets}/{name}"),
        None,
    )
    .await;
    let raw = range.and_then(|v| {
        v["kvs"][0]["value"]
            .as_str()
            .ok_or_else(|| format!("etcd has no key {key}"))
            .and_then(|s| {
                b64.decode(s)
                    .map_err(|e| format!("etcd's value is not base64: {e}"))
            })
    });
    let verdict = match raw {
        Ok(raw) if raw.starts_with(ENCRYPTED_PREFIX) => Outcome::Passed(format!(
            "a new Secret is stored in etcd as k8s:enc:aescbc:v1:... (read from {key}, then deleted)"
        )),
        Ok(_) => Outcome::failed(
            format!(
                "{key} is stored in etcd without the k8s:enc:aescbc:v1: prefix: Secrets are not encrypted at rest"
            ),
            "the apiserver needs --encryption-provider-config; `kubelab lab up --only controllers` provisions it",
        ),
        Err(e) => Outcome::failed(e, "`kubelab lab verify --only etcd` checks etcd itself"),
    };
    match (verdict, deleted) {
        (Outcome::Passed(_), Err(e)) => Outcome::failed(
            format!("the Secret is encrypted, but deleting {name} failed: {e}"),
            format!("delete it by hand: kubectl delete secret {name}"),
        ),
        (verdict, _) => verdict,
    }
}

pub(super) async fn secrets(ctx: &Ctx<'_>) -> Outcome {
    let (api, etcd) = match (admin_client(ctx), etcd_client(&ctx.pki_dir)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Outcome::failed(e, "`kubelab lab render` signs the lab's certificates");
        }
    };
    let Some(member) = ctx.loaded.topo.by_role(Role::Etcd).next() else {
        return Outcome::Skipped("the lab has no etcd".into());
    };
    secret_at_rest(
        &api,
        &api_base(ctx),
        &etcd,
        &format!("https://{}:2379", member.address),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testing::*;

    fn secret_routes(stored: &[u8]) -> Vec<Route> {
        use base64::Engine;
        let value = base64::engine::general_purpose::STANDARD.encode(stored);
        vec![
            route(
                "POST",
                "/api/v1/namespaces/default/secrets",
                201,
                r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"kubelab-verify-x","namespace":"default"},"type":"Opaque"}"#.into(),
            ),
            route(
                "POST",
                "/v3/kv/range",
                200,
                format!(
                    r#"{{"header":{{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"912","raft_term":"2"}},"kvs":[{{"key":"L3JlZ2lzdHJ5","create_revision":"912","mod_revision":"912","version":"1","value":"{value}"}}],"count":"1"}}"#
                ),
            ),
            route(
                "DELETE",
                "/api/v1/namespaces/default/secrets/kubelab-verify-*",
                200,
                r#"{"kind":"Status","apiVersion":"v1","status":"Success"}"#.into(),
            ),
        ]
    }

    #[tokio::test]
    async fn a_secret_stored_encrypted_passes_and_a_plain_one_fails_and_both_are_deleted() {
        let encrypted = serve(secret_routes(b"k8s:enc:aescbc:v1:key1:\x8a\x01\x02\x03")).await;
        let c = client(&encrypted);
        let outcome = secret_at_rest(&c, &encrypted.base, &c, &encrypted.base).await;
        assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
        let seen = encrypted.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[2].starts_with("DELETE /api/v1/namespaces/default/secrets/kubelab-verify-"));

        let plain = serve(secret_routes(b"k8s\x00\n\x0c\n\x02v1\x12\x06Secret")).await;
        let c = client(&plain);
        let outcome = secret_at_rest(&c, &plain.base, &c, &plain.base).await;
        let Outcome::Failed { why, .. } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(why.contains("not encrypted at rest"), "{why}");
        assert!(
            !why.contains("Secret\u{12}"),
            "the raw value is never printed: {why}"
        );
        assert!(plain.seen.lock().unwrap()[2].starts_with("DELETE "));
    }
}
