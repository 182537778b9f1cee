//! The HTTPS clients the checks use (the lab's CAs, the admin and
//! apiserver-etcd-client identities), one request, and errors on one line.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::Ctx;

/// The apiserver's view of etcd: its client certificate against the etcd CA.
pub(super) fn etcd_client(pki_dir: &Path) -> std::result::Result<reqwest::Client, String> {
    tls_client(pki_dir, "etcd-ca", Some("apiserver-etcd-client"), &[])
}

/// A reqwest client that trusts only the lab CA `ca` (a file stem under
/// pki/) and presents `identity`'s certificate when it is given.
pub(super) fn tls_client(
    pki_dir: &Path,
    ca: &str,
    identity: Option<&str>,
    resolve: &[(&str, SocketAddr)],
) -> std::result::Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |stem: &str| {
        fs_err::read(pki_dir.join(format!("{stem}.pem")))
            .map_err(|e| format!("{e} (`kubelab lab render` signs the lab's certificates)"))
    };
    let ca =
        reqwest::Certificate::from_pem(&read(ca)?).map_err(|e| format!("reading the CA: {e}"))?;
    // Lab addresses are never reached through the host's HTTP(S)_PROXY.
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("kubelab/", env!("CARGO_PKG_VERSION"), " verify"));
    if let Some(stem) = identity {
        let mut pem = read(stem)?;
        pem.extend(read(&format!("{stem}-key"))?);
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("reading the {stem} certificate: {e}"))?;
        builder = builder.identity(id);
    }
    for (name, addr) in resolve {
        builder = builder.resolve(name, *addr);
    }
    builder
        .build()
        .map_err(|e| format!("could not set up TLS: {e}"))
}

/// An error from reqwest on one line: what failed and its innermost cause
/// ("connection refused" hides two levels down). The callers name the URL.
pub(super) fn describe(e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let innermost = causes.last().cloned();
    match innermost {
        Some(cause) if e.is_connect() => format!("cannot connect: {cause}"),
        _ if e.is_timeout() => "no answer in time".to_string(),
        Some(cause) => {
            let mut top = e.to_string();
            if let Some(url) = e.url() {
                top = top.replace(&format!(" for url ({url})"), "");
            }
            format!("{top}: {cause}")
        }
        None => e.to_string(),
    }
}

/// A short, one-line excerpt of a response body for an error message.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 160 {
        format!("{}...", line.chars().take(160).collect::<String>())
    } else {
        line
    }
}

/// Sends a request and returns the status and body; the error names the URL.
pub(super) async fn request(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: impl AsRef<str>,
    body: Option<String>,
) -> std::result::Result<(u16, Vec<u8>), String> {
    let url = url.as_ref();
    let mut req = client.request(method, url);
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    Ok((status, bytes.to_vec()))
}

/// A request that must answer 2xx with JSON.
pub(super) async fn fetch_json(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: impl AsRef<str>,
    body: Option<String>,
) -> std::result::Result<Value, String> {
    let url = url.as_ref();
    let (status, bytes) = request(client, method, url, body).await?;
    if !(200..300).contains(&status) {
        return Err(format!("{url}: HTTP {status}: {}", excerpt(&bytes)));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// A client as `admin`, with the API name pinned to the plan's address so it
/// does not depend on the host's resolver.
pub(super) fn admin_client(ctx: &Ctx) -> std::result::Result<reqwest::Client, String> {
    let api = &ctx.loaded.topo.api;
    tls_client(
        &ctx.pki_dir,
        "ca",
        Some("admin"),
        &[(api.name.as_str(), SocketAddr::from((api.address, api.port)))],
    )
}

/// The API through the VIP (or the single LB's address).
pub(super) fn api_base(ctx: &Ctx) -> String {
    let api = &ctx.loaded.topo.api;
    format!("https://{}:{}", api.address, api.port)
}

#[cfg(test)]
mod tests {
    use crate::verify::api::readyz;
    use crate::verify::testing::*;

    #[tokio::test]
    async fn a_server_outside_the_lab_ca_is_refused() {
        let server = serve(vec![route("GET", "/readyz?verbose", 200, "ok".into())]).await;
        let other = serve(vec![]).await;
        // Trusting another CA: the TLS handshake fails, no answer is read.
        assert!(readyz(&client(&other), &server.base).await.is_err());
        assert!(server.seen.lock().unwrap().is_empty());
    }
}
