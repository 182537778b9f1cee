//! What the checks' unit tests share: the API fixtures and a small HTTPS
//! server with a test CA answering canned routes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http::tls_client;

pub(crate) fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/api")
        .join(name);
    fs_err::read_to_string(path).unwrap()
}

/// The nginx pods of `pods-nginx.json`, as the pod checks get them.
pub(crate) fn nginx_pods_fixture() -> serde_json::Value {
    serde_json::from_str(&fixture("pods-nginx.json")).unwrap()
}

/// Each probe as (pod, command, what its output must contain).
pub(crate) fn shown(probes: &[super::pods::Probe]) -> Vec<(&str, &str, &str)> {
    probes
        .iter()
        .map(|p| (p.pod.as_str(), p.command.as_str(), p.expect.as_str()))
        .collect()
}

/// One canned answer: `path` ending in `*` matches by prefix.
pub(crate) struct Route {
    method: &'static str,
    path: &'static str,
    status: u16,
    body: String,
}

pub(crate) fn route(method: &'static str, path: &'static str, status: u16, body: String) -> Route {
    Route {
        method,
        path,
        status,
        body,
    }
}

/// An HTTPS server on 127.0.0.1 (a port of its own) with a certificate
/// from a fresh test CA, answering `routes` (404 otherwise). Returns its
/// base URL, a pki dir holding the CA as `ca.pem`, and the requests seen.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) pki: tempfile::TempDir,
    pub(crate) seen: Arc<Mutex<Vec<String>>>,
}

pub(crate) async fn serve(routes: Vec<Route>) -> Server {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let pki = tempfile::tempdir().unwrap();
    fs_err::write(pki.path().join("ca.pem"), ca_cert.pem()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let routes = Arc::new(routes);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, routes, log) = (acceptor.clone(), routes.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let mut words = head.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                log.lock().unwrap().push(format!("{method} {path}"));
                let found = routes.iter().find(|r| {
                    r.method == method
                        && match r.path.strip_suffix('*') {
                            Some(prefix) => path.starts_with(prefix),
                            None => r.path == path,
                        }
                });
                let (status, body) = match found {
                    Some(r) => (r.status, r.body.clone()),
                    None => (404, "{\"kind\":\"Status\",\"code\":404}".to_string()),
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Server { base, pki, seen }
}

pub(crate) fn client(server: &Server) -> reqwest::Client {
    tls_client(server.pki.path(), "ca", None, &[]).unwrap()
}
