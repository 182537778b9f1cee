//! Release binaries: downloaded once per host into the cache shared by every
//! lab (`$XDG_CACHE_HOME/kubelab`), sha256-checked against digests pinned
//! here, resumable, then copied to the nodes that need them. Never N
//! downloads for N VMs.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{ArtifactSource, Lab};
use crate::error::{Error, Result};

/// One file to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub component: &'static str,
    pub version: String,
    pub url: String,
    pub file_name: String,
    pub sha256: String,
}

/// The published sha256 of each release kubelab knows, in one place:
/// (component, version, architecture, sha256).
const PINS: &[(&str, &str, &str, &str)] = &[
    (
        "etcd",
        "3.5.17",
        "amd64",
        "eff6ac621d41711085d0f38fab17d8fa3705f6326c3ff11301a1f5a71fc94edd",
    ),
    (
        "etcd",
        "3.5.17",
        "arm64",
        "7d717a62520bf39fa1115dfbb1df79479ff74b5eda0914f4132bfa60a48b9549",
    ),
    (
        "cni_plugins",
        "1.6.2",
        "amd64",
        "b8e811578fb66023f90d2e238d80cec3bdfca4b44049af74c374d4fae0f9c090",
    ),
    (
        "cni_plugins",
        "1.6.2",
        "arm64",
        "01e0e22acc7f7004e4588c1fe1871cc86d7ab562cd858e1761c4641d89ebfaa4",
    ),
];

/// The VMs' architecture in release file names.
pub fn node_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

fn pinned(component: &str, version: &str, arch: &str) -> Option<&'static str> {
    PINS.iter()
        .find(|(c, v, a, _)| *c == component && *v == version && *a == arch)
        .map(|(_, _, _, sha)| *sha)
}

/// The etcd release tarball for this lab, when the lab takes etcd from the
/// release (not from the distribution).
pub fn etcd(lab: &Lab, mirror: Option<&str>) -> Result<Option<Artifact>> {
    if lab.etcd_source != ArtifactSource::Release {
        return Ok(None);
    }
    let version = &lab.versions.etcd;
    let arch = node_arch();
    let file_name = format!("etcd-v{version}-linux-{arch}.tar.gz");
    let url = match mirror {
        Some(m) => format!("{}/{file_name}", m.trim_end_matches('/')),
        None => format!("https://github.com/etcd-io/etcd/releases/download/v{version}/{file_name}"),
    };
    let sha256 = pinned("etcd", version, arch).ok_or_else(|| {
        Error::usage(
            format!("kubelab has no pinned sha256 for etcd {version} ({arch})"),
            "use versions.etcd: 3.5.17, or `artifacts: {etcd: distro}` to use the node's etcd-server package",
        )
    })?;
    Ok(Some(Artifact {
        component: "etcd",
        version: version.clone(),
        url,
        file_name,
        sha256: sha256.to_string(),
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file's sha256, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Where a verified artifact lives in the cache.
pub fn cached_path(cache: &Path, a: &Artifact) -> PathBuf {
    cache.join("sha256").join(&a.sha256).join(&a.file_name)
}

/// An HTTP client on the one crypto provider kubelab uses (ring, as rcgen).
pub fn client() -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("kubelab/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| Error::other(format!("could not set up HTTPS: {e}"), ""))
}

/// Makes sure `a` is in the cache, downloading (or resuming) it when it is
/// not, and returns its path. `progress(done, total)` is called as bytes arrive.
pub async fn fetch(
    client: &reqwest::Client,
    cache: &Path,
    a: &Artifact,
    offline: bool,
    progress: &(dyn Fn(u64, Option<u64>) + Sync),
) -> Result<PathBuf> {
    let done = cached_path(cache, a);
    if done.exists() {
        return Ok(done);
    }
    if offline {
        return Err(Error::other(
            format!(
                "{} {} is not in the cache ({})",
                a.component,
                a.version,
                done.display()
            ),
            "run `kubelab artifacts fetch` while online, or drop --offline",
        ));
    }
    let dir = done.parent().unwrap_or(cache);
    fs_err::create_dir_all(dir)?;
    let partial = dir.join(format!("{}.partial", a.file_name));
    let mut offset = fs_err::metadata(&partial).map(|m| m.len()).unwrap_or(0);

    let mut request = client.get(&a.url);
    if offset > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
    }
    let net_error = |e: reqwest::Error| {
        Error::other(
            format!("downloading {} failed: {e}", a.url),
            "run the command again: the download resumes where it stopped",
        )
    };
    let response = request.send().await.map_err(net_error)?;
    let status = response.status();
    let append = match status.as_u16() {
        206 => true,
        200 => {
            offset = 0;
            false
        }
        // The partial file is already whole: verify it below.
        416 => true,
        code => {
            return Err(Error::other(
                format!("downloading {} failed: HTTP {code}", a.url),
                "check the version in lab.yaml exists upstream, or your mirror (KUBELAB_ARTIFACTS_MIRROR)",
            ));
        }
    };
    let total = response.content_length().map(|len| len + offset);
    let mut file = fs_err::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&partial)?;
    if status.as_u16() != 416 {
        use futures_util::StreamExt;
        let mut stream = response.bytes_stream();
        let mut received = offset;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(net_error)?;
            file.write_all(&chunk)?;
            received += chunk.len() as u64;
            progress(received, total);
        }
    }
    file.sync_all()?;
    drop(file);

    let actual = sha256_file(&partial)?;
    if actual != a.sha256 {
        fs_err::remove_file(&partial)?;
        return Err(Error::other(
            format!(
                "{} does not match its pinned checksum: expected sha256 {}, got {actual}; the download was deleted",
                a.url, a.sha256
            ),
            "run again to download it afresh; if it fails again the file upstream (or your mirror's copy) is not the release kubelab pins",
        ));
    }
    fs_err::rename(&partial, &done)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A one-file HTTP server on loopback that honours `Range` and records
    /// each request's Range header. It stops after `max_requests`.
    fn serve(body: Vec<u8>, max_requests: usize) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/file.tar.gz", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max_requests) {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut range = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        range = Some(v.trim().trim_end_matches('-').to_string());
                    }
                }
                log.lock().unwrap().push(range.clone());
                let start: usize = range.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0);
                let part = &body[start.min(body.len())..];
                let status = if start > 0 {
                    "206 Partial Content"
                } else {
                    "200 OK"
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    part.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(part);
                let _ = stream.read(&mut [0u8; 1]);
            }
        });
        (url, seen)
    }

    fn artifact(url: String, body: &[u8]) -> Artifact {
        Artifact {
            component: "etcd",
            version: "9.9.9".into(),
            url,
            file_name: "file.tar.gz".into(),
            sha256: hex(&Sha256::digest(body)),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn downloads_once_verifies_and_reuses_the_cache() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (url, seen) = serve(body.clone(), 2);
        let cache = tempfile::tempdir().unwrap();
        let a = artifact(url, &body);
        let client = client().unwrap();
        let calls = Mutex::new(0u32);
        let path = rt()
            .block_on(fetch(&client, cache.path(), &a, false, &|_, _| {
                *calls.lock().unwrap() += 1
            }))
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), body);
        assert!(*calls.lock().unwrap() > 0, "progress was reported");
        // Second time: from the cache, no request.
        let again = rt()
            .block_on(fetch(&client, cache.path(), &a, false, &|_, _| {}))
            .unwrap();
        assert_eq!(again, path);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_partial_download_resumes_with_a_range_request() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
        let (url, seen) = serve(body.clone(), 1);
        let cache = tempfile::tempdir().unwrap();
        let a = artifact(url, &body);
        let dir = cache.path().join("sha256").join(&a.sha256);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file.tar.gz.partial"), &body[..40_000]).unwrap();
        let path = rt()
            .block_on(fetch(
                &client().unwrap(),
                cache.path(),
                &a,
                false,
                &|_, _| {},
            ))
            .unwrap();
        assert_eq!(std::fs::read(path).unwrap(), body);
        assert_eq!(*seen.lock().unwrap(), [Some("40000".to_string())]);
    }

    #[test]
    fn a_mismatch_is_deleted_and_reported_with_both_digests() {
        let body = b"not the release".to_vec();
        let (url, _) = serve(body.clone(), 1);
        let cache = tempfile::tempdir().unwrap();
        let mut a = artifact(url.clone(), &body);
        a.sha256 = "0".repeat(64);
        let err = rt()
            .block_on(fetch(
                &client().unwrap(),
                cache.path(),
                &a,
                false,
                &|_, _| {},
            ))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&url), "{err}");
        assert!(err.contains(&"0".repeat(64)), "{err}");
        assert!(err.contains(&hex(&Sha256::digest(&body))), "{err}");
        let dir = cache.path().join("sha256").join("0".repeat(64));
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "nothing left behind"
        );
    }

    #[test]
    fn offline_names_what_is_missing() {
        let cache = tempfile::tempdir().unwrap();
        let a = artifact("http://127.0.0.1:9/x".into(), b"x");
        let err = rt()
            .block_on(fetch(
                &client().unwrap(),
                cache.path(),
                &a,
                true,
                &|_, _| {},
            ))
            .unwrap_err();
        assert!(
            err.to_string().contains("etcd 9.9.9 is not in the cache"),
            "{err}"
        );
    }

    #[test]
    fn the_pinned_etcd_is_known_and_distro_needs_no_download() {
        let lab = crate::config::builtin();
        let a = etcd(&lab, None).unwrap().unwrap();
        assert!(
            a.url
                .starts_with("https://github.com/etcd-io/etcd/releases/download/v3.5.17/")
        );
        assert_eq!(a.sha256.len(), 64);
        let distro = crate::config::parse(
            "artifacts:\n  etcd: distro\n",
            crate::config::LabSource::BuiltIn,
        )
        .unwrap();
        assert_eq!(etcd(&distro, None).unwrap(), None);
        let unknown = crate::config::parse(
            "versions:\n  etcd: 3.4.1\n",
            crate::config::LabSource::BuiltIn,
        )
        .unwrap();
        assert!(
            etcd(&unknown, None)
                .unwrap_err()
                .to_string()
                .contains("no pinned sha256 for etcd 3.4.1")
        );
    }
}
