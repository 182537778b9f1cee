//! Release binaries: downloaded once per host into the cache shared by every
//! lab (`$XDG_CACHE_HOME/kubelab`), checked against digests pinned here,
//! resumable, then copied to the nodes whose phase needs them. Never N
//! downloads for N VMs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256, Sha512};

use crate::config::{ArtifactSource, Lab};
use crate::error::{Error, Result};
use crate::topology::Phase;

/// A release kubelab knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Etcd,
    /// The Kubernetes server tarball: every control-plane and node binary.
    Kubernetes,
    Containerd,
    Runc,
    CniPlugins,
    Crictl,
}

impl Component {
    /// The lab.yaml field that chooses its version.
    pub fn field(self) -> &'static str {
        match self {
            Component::Etcd => "versions.etcd",
            // crictl follows the Kubernetes minor release (cri-tools v1.N.x
            // goes with Kubernetes 1.N).
            Component::Kubernetes | Component::Crictl => "versions.kubernetes",
            Component::Containerd => "versions.containerd",
            Component::Runc => "versions.runc",
            Component::CniPlugins => "versions.cni_plugins",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::Kubernetes => "kubernetes",
            Component::Containerd => "containerd",
            Component::Runc => "runc",
            Component::CniPlugins => "cni-plugins",
            Component::Crictl => "crictl",
        }
    }

    /// The release file's name and where upstream publishes it.
    fn file_and_url(self, version: &str, arch: &str) -> (String, String) {
        let (file, base) = match self {
            Component::Etcd => (
                format!("etcd-v{version}-linux-{arch}.tar.gz"),
                format!("https://github.com/etcd-io/etcd/releases/download/v{version}"),
            ),
            Component::Kubernetes => (
                format!("kubernetes-server-linux-{arch}.tar.gz"),
                format!("https://dl.k8s.io/v{version}"),
            ),
            Component::Containerd => (
                format!("containerd-{version}-linux-{arch}.tar.gz"),
                format!("https://github.com/containerd/containerd/releases/download/v{version}"),
            ),
            Component::Runc => (
                format!("runc.{arch}"),
                format!("https://github.com/opencontainers/runc/releases/download/v{version}"),
            ),
            Component::CniPlugins => (
                format!("cni-plugins-linux-{arch}-v{version}.tgz"),
                format!(
                    "https://github.com/containernetworking/plugins/releases/download/v{version}"
                ),
            ),
            Component::Crictl => (
                format!("crictl-v{version}-linux-{arch}.tar.gz"),
                format!(
                    "https://github.com/kubernetes-sigs/cri-tools/releases/download/v{version}"
                ),
            ),
        };
        let url = format!("{base}/{file}");
        (file, url)
    }
}

/// A published digest: `sha256:<hex>` or `sha512:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha256(String),
    Sha512(String),
}

impl Checksum {
    fn parse(pin: &str) -> Checksum {
        match pin.split_once(':') {
            Some(("sha512", hex)) => Checksum::Sha512(hex.to_string()),
            Some((_, hex)) => Checksum::Sha256(hex.to_string()),
            None => Checksum::Sha256(pin.to_string()),
        }
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "sha256",
            Checksum::Sha512(_) => "sha512",
        }
    }

    pub fn hex(&self) -> &str {
        match self {
            Checksum::Sha256(h) | Checksum::Sha512(h) => h,
        }
    }

    /// The file's digest in this checksum's algorithm, streamed.
    pub fn of_file(&self, path: &Path) -> Result<String> {
        match self {
            Checksum::Sha256(_) => hash_file::<Sha256>(path),
            Checksum::Sha512(_) => hash_file::<Sha512>(path),
        }
    }
}

/// Kubernetes server binaries, as laid out in kubernetes-server-linux-*.tar.gz.
const SERVER_BIN: &str = "kubernetes/server/bin";
pub const CONTROLLER_BINARIES: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
];
pub const WORKER_BINARIES: [&str; 2] = ["kubelet", "kube-proxy"];

/// The published digest of each release kubelab knows, in one place:
/// (component, version, architecture, digest). Each was read from the
/// publication named above it, never computed here.
const PINS: &[(Component, &str, &str, &str)] = &[
    // kubernetes-sigs/kubespray roles/kubespray_defaults/vars/main/checksums.yml
    // (commit 005bdce7f1867958838a2d0bb4f7e67893d98f64), etcd_binary_checksums.
    (
        Component::Etcd,
        "3.5.17",
        "amd64",
        "sha256:eff6ac621d41711085d0f38fab17d8fa3705f6326c3ff11301a1f5a71fc94edd",
    ),
    (
        Component::Etcd,
        "3.5.17",
        "arm64",
        "sha256:7d717a62520bf39fa1115dfbb1df79479ff74b5eda0914f4132bfa60a48b9549",
    ),
    // kubernetes/kubernetes CHANGELOG/CHANGELOG-1.32.md, "v1.32.3" > "Server
    // Binaries" (the release notes publish sha512 only).
    (
        Component::Kubernetes,
        "1.32.3",
        "amd64",
        "sha512:866457fdf161f50e403c2d43eabc8e8533a4fe8f75914ca47759279dda0186c0ebf93ec53076cd0b2efaf3e396628fcd431b2217fbdfbb41c852d10f0480d345",
    ),
    (
        Component::Kubernetes,
        "1.32.3",
        "arm64",
        "sha512:1f7929b175c914892308dce4378ed6b1da25aa0e4a30a869b7dd6297d424bf75aff2cbf668fec9a9c002ec2ab00a437d3371a4f935ca57953fec8c572fa175f5",
    ),
    // kubespray checksums.yml (commit 005bdce7f1867958838a2d0bb4f7e67893d98f64),
    // containerd_archive_checksums.
    (
        Component::Containerd,
        "2.0.4",
        "amd64",
        "sha256:e1c64c5fd60ecd555e750744eaef150b6f78d7f750da5c08c52825aa6b791737",
    ),
    (
        Component::Containerd,
        "2.0.4",
        "arm64",
        "sha256:0fde98b24bb55363a54150732e0ac99a43bccf2a9711371bd5470f32790316f2",
    ),
    // kubespray checksums.yml (same commit), runc_checksums.
    (
        Component::Runc,
        "1.2.6",
        "amd64",
        "sha256:0774f49d1b1eebb5849e644db5e4dc6f2b06cee05f13b3d17d5d6ba62d6f2ebc",
    ),
    (
        Component::Runc,
        "1.2.6",
        "arm64",
        "sha256:12c612e2ebe6ca198de676ce75ed557e79fe6109032209bb8e25166c967fe170",
    ),
    // kubespray checksums.yml (same commit), cni_binary_checksums.
    (
        Component::CniPlugins,
        "1.6.2",
        "amd64",
        "sha256:b8e811578fb66023f90d2e238d80cec3bdfca4b44049af74c374d4fae0f9c090",
    ),
    (
        Component::CniPlugins,
        "1.6.2",
        "arm64",
        "sha256:01e0e22acc7f7004e4588c1fe1871cc86d7ab562cd858e1761c4641d89ebfaa4",
    ),
    // kubespray checksums.yml (commit 118b2dce02d3e5730461c8ba8c91cd9dd5dc0b10;
    // later commits dropped 1.32), crictl_checksums.
    (
        Component::Crictl,
        "1.32.0",
        "amd64",
        "sha256:f050b71d3a73a91a4e0990b90143ed04dcd100cc66f953736fcb6a2730e283c4",
    ),
    (
        Component::Crictl,
        "1.32.0",
        "arm64",
        "sha256:f2f4e20658b72d00897f41e4b57093c8080e2d800ee894a5f4351f31d1833e30",
    ),
];

/// One file to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub component: Component,
    pub version: String,
    pub url: String,
    pub file_name: String,
    pub checksum: Checksum,
}

impl Artifact {
    /// "containerd 2.0.4", as messages name it.
    pub fn label(&self) -> String {
        format!("{} {}", self.component.name(), self.version)
    }
}

/// What one phase copies to its nodes from one release: the whole file, or
/// (the Kubernetes server tarball) binaries extracted from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub phase: Phase,
    pub artifact: Artifact,
    pub binaries: &'static [&'static str],
}

/// The VMs' architecture in release file names.
pub fn node_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

/// The release of `component` this lab asks for, or a usage error naming
/// the lab.yaml field, the value and what kubelab pins.
pub fn artifact(
    lab: &Lab,
    component: Component,
    arch: &str,
    mirror: Option<&str>,
) -> Result<Artifact> {
    let v = &lab.versions;
    let version = match component {
        Component::Etcd => v.etcd.clone(),
        Component::Kubernetes => v.kubernetes.clone(),
        Component::Containerd => v.containerd.clone(),
        Component::Runc => v.runc.clone(),
        Component::CniPlugins => v.cni_plugins.clone(),
        Component::Crictl => {
            let minor: Vec<&str> = v.kubernetes.split('.').take(2).collect();
            format!("{}.0", minor.join("."))
        }
    };
    let pin = PINS
        .iter()
        .find(|(c, ver, a, _)| *c == component && *ver == version && *a == arch);
    let Some((_, _, _, pin)) = pin else {
        let pinned: Vec<&str> = PINS
            .iter()
            .filter(|(c, _, a, _)| *c == component && *a == arch)
            .map(|(_, ver, _, _)| *ver)
            .collect();
        let field = component.field();
        let value = if component == Component::Crictl {
            format!("{} (crictl {version})", v.kubernetes)
        } else {
            version.clone()
        };
        let mut hint = if component == Component::Crictl {
            let minors: Vec<String> = pinned
                .iter()
                .map(|p| format!("{}.x", p.rsplit_once('.').map_or(*p, |(m, _)| m)))
                .collect();
            format!(
                "use a {field} whose minor release kubelab pins crictl for: {}",
                minors.join(" or ")
            )
        } else {
            format!(
                "use {field}: {} (the version{} kubelab pins a published checksum for)",
                pinned.join(" or "),
                if pinned.len() == 1 { "" } else { "s" }
            )
        };
        if component == Component::Etcd {
            hint.push_str(", or `artifacts: {etcd: distro}` to use the node's etcd-server package");
        }
        return Err(Error::usage(
            format!(
                "{field}: kubelab has no pinned checksum for {} {value} ({arch})",
                component.name()
            ),
            hint,
        ));
    };
    let (file_name, upstream) = component.file_and_url(&version, arch);
    let url = match mirror {
        Some(m) => format!("{}/{file_name}", m.trim_end_matches('/')),
        None => upstream,
    };
    Ok(Artifact {
        component,
        version,
        url,
        file_name,
        checksum: Checksum::parse(pin),
    })
}

/// What the selected phases copy to their nodes: etcd's tarball for the etcd
/// phase (unless the lab takes the distribution's), the control-plane
/// binaries for controllers, and kubelet, kube-proxy, containerd, runc, the
/// CNI plugins and crictl for workers. Phases before etcd need nothing.
pub fn needs(
    lab: &Lab,
    selected: &dyn Fn(Phase) -> bool,
    arch: &str,
    mirror: Option<&str>,
) -> Result<Vec<Need>> {
    let mut out = Vec::new();
    let mut need = |phase, component, binaries: &'static [&'static str]| -> Result<()> {
        out.push(Need {
            phase,
            artifact: artifact(lab, component, arch, mirror)?,
            binaries,
        });
        Ok(())
    };
    if selected(Phase::Etcd) && lab.etcd_source == ArtifactSource::Release {
        need(Phase::Etcd, Component::Etcd, &[])?;
    }
    if selected(Phase::Controllers) {
        need(
            Phase::Controllers,
            Component::Kubernetes,
            &CONTROLLER_BINARIES,
        )?;
    }
    if selected(Phase::Workers) {
        need(Phase::Workers, Component::Kubernetes, &WORKER_BINARIES)?;
        for c in [
            Component::Containerd,
            Component::Runc,
            Component::CniPlugins,
            Component::Crictl,
        ] {
            need(Phase::Workers, c, &[])?;
        }
    }
    Ok(out)
}

/// Each release the needs name, once.
pub fn distinct(needs: &[Need]) -> Vec<Artifact> {
    let mut seen = BTreeMap::new();
    for n in needs {
        seen.entry((n.artifact.component, n.artifact.version.clone()))
            .or_insert_with(|| n.artifact.clone());
    }
    seen.into_values().collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_file<D: Digest>(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = fs_err::File::open(path)?;
    let mut hasher = D::new();
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
    cache
        .join(a.checksum.algorithm())
        .join(a.checksum.hex())
        .join(&a.file_name)
}

/// Where a binary extracted from the verified `a` lives in the cache.
pub fn extracted_path(cache: &Path, a: &Artifact, binary: &str) -> PathBuf {
    cached_path(cache, a).with_file_name("bin").join(binary)
}

/// The files each phase copies to its nodes: (path on the node, file in the
/// cache). Everything must be fetched (and extracted) already.
pub fn uploads(cache: &Path, needs: &[Need]) -> BTreeMap<Phase, Vec<(String, PathBuf)>> {
    let mut out: BTreeMap<Phase, Vec<(String, PathBuf)>> = BTreeMap::new();
    for n in needs {
        let files = out.entry(n.phase).or_default();
        let a = &n.artifact;
        if n.binaries.is_empty() {
            files.push((
                format!("var/lib/kubelab/artifacts/{}", a.file_name),
                cached_path(cache, a),
            ));
        }
        for b in n.binaries {
            files.push((
                format!("var/lib/kubelab/artifacts/{b}"),
                extracted_path(cache, a, b),
            ));
        }
    }
    out
}

/// Extracts `kubernetes/server/bin/<name>` for each of `binaries` from the
/// verified server tarball into the cache, mode 0755, leaving every other
/// member alone. Binaries already extracted are kept.
pub fn extract_server_binaries(cache: &Path, a: &Artifact, binaries: &[&str]) -> Result<()> {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|b| !extracted_path(cache, a, b).exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let archive_path = cached_path(cache, a);
    let bin_dir = extracted_path(cache, a, "x")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cache.to_path_buf());
    fs_err::create_dir_all(&bin_dir)?;
    let broken = |e: std::io::Error| {
        Error::other(
            format!("could not read {}: {e}", archive_path.display()),
            "delete it (`kubelab cache clean`) and fetch it again",
        )
    };
    let file = fs_err::File::open(&archive_path)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = Vec::new();
    for entry in tar.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let path = entry.path().map_err(broken)?.into_owned();
        let Some(name) = path
            .strip_prefix(SERVER_BIN)
            .ok()
            .and_then(|p| p.to_str())
            .filter(|p| missing.contains(p))
            .map(str::to_string)
        else {
            continue;
        };
        let partial = bin_dir.join(format!("{name}.partial"));
        let mut out = fs_err::File::create(&partial)?;
        std::io::copy(&mut entry, &mut out).map_err(broken)?;
        out.flush()?;
        drop(out);
        fs_err::set_permissions(
            &partial,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        fs_err::rename(&partial, bin_dir.join(&name))?;
        found.push(name);
    }
    let absent: Vec<&str> = missing
        .into_iter()
        .filter(|m| !found.iter().any(|f| f == m))
        .collect();
    if !absent.is_empty() {
        return Err(Error::other(
            format!(
                "{} has no {} under {SERVER_BIN}/",
                archive_path.display(),
                absent.join(", ")
            ),
            "the file is not a Kubernetes server release; delete it (`kubelab cache clean`) and fetch it again",
        ));
    }
    Ok(())
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
            format!("{} is not in the cache ({})", a.label(), done.display()),
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

    let actual = a.checksum.of_file(&partial)?;
    if actual != a.checksum.hex() {
        fs_err::remove_file(&partial)?;
        return Err(Error::other(
            format!(
                "{} does not match its pinned checksum: expected {} {}, got {actual}; the download was deleted",
                a.url,
                a.checksum.algorithm(),
                a.checksum.hex()
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
            component: Component::Etcd,
            version: "9.9.9".into(),
            url,
            file_name: "file.tar.gz".into(),
            checksum: Checksum::Sha256(hex(&Sha256::digest(body))),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// `fetch` without progress, on a runtime of its own.
    fn fetch_now(cache: &Path, a: &Artifact, offline: bool) -> Result<PathBuf> {
        rt().block_on(fetch(&client().unwrap(), cache, a, offline, &|_, _| {}))
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
        let dir = cache.path().join("sha256").join(a.checksum.hex());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file.tar.gz.partial"), &body[..40_000]).unwrap();
        let path = fetch_now(cache.path(), &a, false).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), body);
        assert_eq!(*seen.lock().unwrap(), [Some("40000".to_string())]);
    }

    #[test]
    fn a_mismatch_is_deleted_and_reported_with_both_digests() {
        let body = b"not the release".to_vec();
        let (url, _) = serve(body.clone(), 1);
        let cache = tempfile::tempdir().unwrap();
        let mut a = artifact(url.clone(), &body);
        a.checksum = Checksum::Sha256("0".repeat(64));
        let err = fetch_now(cache.path(), &a, false).unwrap_err().to_string();
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
        let err = fetch_now(cache.path(), &a, true).unwrap_err();
        assert!(
            err.to_string().contains("etcd 9.9.9 is not in the cache"),
            "{err}"
        );
    }

    #[test]
    fn a_sha512_pin_is_verified_with_sha512_and_cached_under_it() {
        let body: Vec<u8> = (0..50_000u32).map(|i| (i % 7) as u8).collect();
        let (url, _) = serve(body.clone(), 2);
        let cache = tempfile::tempdir().unwrap();
        let mut a = artifact(url, &body);
        a.checksum = Checksum::Sha512(hex(&Sha512::digest(&body)));
        let path = fetch_now(cache.path(), &a, false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), body);
        assert!(path.starts_with(cache.path().join("sha512").join(a.checksum.hex())));

        // The same bytes against another sha512: deleted, reported as sha512.
        let other = tempfile::tempdir().unwrap();
        a.checksum = Checksum::Sha512("f".repeat(128));
        let err = fetch_now(other.path(), &a, false).unwrap_err().to_string();
        assert!(
            err.contains(&format!("expected sha512 {}", "f".repeat(128))),
            "{err}"
        );
        assert!(err.contains(&hex(&Sha512::digest(&body))), "{err}");
        assert!(err.contains("the download was deleted"), "{err}");
        let dir = other.path().join("sha512").join("f".repeat(128));
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
    }

    /// A gzipped tarball laid out like kubernetes-server-linux-*.tar.gz:
    /// each binary under kubernetes/server/bin/, plus things kubelab must
    /// leave alone (image tarballs, docs).
    fn server_tarball() -> (Vec<u8>, BTreeMap<String, Vec<u8>>) {
        let mut binaries = BTreeMap::new();
        for name in CONTROLLER_BINARIES.iter().chain(WORKER_BINARIES.iter()) {
            binaries.insert(
                name.to_string(),
                format!("#!/bin/sh\necho {name}\n").into_bytes(),
            );
        }
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut add = |path: &str, mode: u32, bytes: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(mode);
            h.set_cksum();
            tar.append_data(&mut h, path, bytes).unwrap();
        };
        add("kubernetes/LICENSES/LICENSE", 0o644, b"license");
        add(
            "kubernetes/server/bin/kube-apiserver.tar",
            0o644,
            b"an image",
        );
        add("kubernetes/server/bin/kubeadm", 0o755, b"not wanted");
        for (name, bytes) in &binaries {
            add(&format!("kubernetes/server/bin/{name}"), 0o755, bytes);
        }
        let gz = tar.into_inner().unwrap().finish().unwrap();
        (gz, binaries)
    }

    #[test]
    fn the_server_tarball_gives_exactly_the_needed_binaries_executable() {
        use std::os::unix::fs::PermissionsExt;
        let (gz, binaries) = server_tarball();
        let (url, _) = serve(gz.clone(), 1);
        let cache = tempfile::tempdir().unwrap();
        let a = Artifact {
            component: Component::Kubernetes,
            version: "1.32.3".into(),
            url,
            file_name: "kubernetes-server-linux-amd64.tar.gz".into(),
            checksum: Checksum::Sha512(hex(&Sha512::digest(&gz))),
        };
        fetch_now(cache.path(), &a, false).unwrap();
        extract_server_binaries(cache.path(), &a, &CONTROLLER_BINARIES).unwrap();
        let bin = extracted_path(cache.path(), &a, "x")
            .parent()
            .unwrap()
            .to_path_buf();
        let mut names: Vec<String> = std::fs::read_dir(&bin)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubectl"
            ]
        );
        for name in CONTROLLER_BINARIES {
            let path = bin.join(name);
            assert_eq!(std::fs::read(&path).unwrap(), binaries[name]);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{name}");
        }
        // The workers' two come from the same verified file, no download.
        extract_server_binaries(cache.path(), &a, &WORKER_BINARIES).unwrap();
        assert_eq!(std::fs::read_dir(&bin).unwrap().count(), 6);
        assert_eq!(
            std::fs::read(bin.join("kubelet")).unwrap(),
            binaries["kubelet"]
        );

        // A member the archive lacks is an error naming it.
        let err = extract_server_binaries(cache.path(), &a, &["kube-nothing"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no kube-nothing under kubernetes/server/bin/"),
            "{err}"
        );
    }

    /// The built-in lab with `yaml` applied ("" is the default lab).
    fn lab(yaml: &str) -> Lab {
        if yaml.is_empty() {
            return crate::config::builtin();
        }
        crate::config::parse(yaml, crate::config::LabSource::BuiltIn).unwrap()
    }

    fn remote_names(files: &[(String, PathBuf)]) -> Vec<&str> {
        files
            .iter()
            .map(|(remote, _)| remote.trim_start_matches("var/lib/kubelab/artifacts/"))
            .collect()
    }

    #[test]
    fn each_phase_sends_its_role_only_what_it_needs() {
        let lab = lab("");
        let all = needs(&lab, &|_| true, "amd64", None).unwrap();
        let up = uploads(Path::new("/cache"), &all);
        assert_eq!(
            up.keys().copied().collect::<Vec<_>>(),
            [Phase::Etcd, Phase::Controllers, Phase::Workers]
        );
        assert_eq!(
            remote_names(&up[&Phase::Etcd]),
            ["etcd-v3.5.17-linux-amd64.tar.gz"]
        );
        assert_eq!(
            remote_names(&up[&Phase::Controllers]),
            [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubectl"
            ]
        );
        assert_eq!(
            remote_names(&up[&Phase::Workers]),
            [
                "kubelet",
                "kube-proxy",
                "containerd-2.0.4-linux-amd64.tar.gz",
                "runc.amd64",
                "cni-plugins-linux-amd64-v1.6.2.tgz",
                "crictl-v1.32.0-linux-amd64.tar.gz"
            ]
        );
        // One download for the server tarball both roles take binaries from.
        let downloads = distinct(&all);
        assert_eq!(downloads.len(), 6);
        let server = downloads
            .iter()
            .find(|a| a.component == Component::Kubernetes)
            .unwrap();
        assert_eq!(
            server.url,
            "https://dl.k8s.io/v1.32.3/kubernetes-server-linux-amd64.tar.gz"
        );
        assert_eq!(server.checksum.algorithm(), "sha512");
        // Extracted binaries come from the cache beside the verified tarball.
        assert_eq!(
            up[&Phase::Controllers][0].1,
            Path::new("/cache/sha512")
                .join(server.checksum.hex())
                .join("bin/kube-apiserver")
        );

        // Only the workers: no etcd, no control-plane binaries.
        let workers = needs(&lab, &|p| p == Phase::Workers, "arm64", None).unwrap();
        let up = uploads(Path::new("/cache"), &workers);
        assert_eq!(up.keys().copied().collect::<Vec<_>>(), [Phase::Workers]);
        assert!(remote_names(&up[&Phase::Workers]).contains(&"runc.arm64"));
    }

    #[test]
    fn up_to_etcd_with_the_distro_etcd_needs_nothing() {
        let distro = lab("artifacts:\n  etcd: distro\n");
        let until_etcd = |p: Phase| p <= Phase::Etcd;
        assert_eq!(needs(&distro, &until_etcd, "amd64", None).unwrap(), []);
        // Even with versions kubelab does not pin for the later phases.
        let odd = lab("artifacts:\n  etcd: distro\nversions:\n  kubernetes: 1.20.0\n");
        assert_eq!(needs(&odd, &until_etcd, "amd64", None).unwrap(), []);
        // The release etcd is the one download up to etcd.
        let release = needs(&lab(""), &until_etcd, "amd64", None).unwrap();
        assert_eq!(release.len(), 1);
        assert_eq!(release[0].artifact.component, Component::Etcd);
    }

    #[test]
    fn every_default_version_is_pinned_for_both_architectures() {
        for arch in ["amd64", "arm64"] {
            let all = needs(&lab(""), &|_| true, arch, None).unwrap();
            assert_eq!(distinct(&all).len(), 6, "{arch}");
        }
        // Each pin is a whole digest of its algorithm, lower-case hex.
        for (c, v, a, pin) in PINS {
            let sum = Checksum::parse(pin);
            let len = if sum.algorithm() == "sha512" { 128 } else { 64 };
            assert_eq!(sum.hex().len(), len, "{c:?} {v} {a}");
            assert!(
                sum.hex()
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch)),
                "{c:?} {v} {a}"
            );
        }
    }

    #[test]
    fn a_mirror_serves_the_same_file_names() {
        let all = needs(&lab(""), &|_| true, "amd64", Some("http://m.local/k/")).unwrap();
        for a in distinct(&all) {
            assert_eq!(a.url, format!("http://m.local/k/{}", a.file_name));
        }
    }

    #[test]
    fn an_unpinned_version_names_the_field_the_value_and_the_pins() {
        let err = needs(
            &lab("versions:\n  kubernetes: 1.31.0\n"),
            &|p| p == Phase::Controllers,
            "amd64",
            None,
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains(
                "versions.kubernetes: kubelab has no pinned checksum for kubernetes 1.31.0"
            ),
            "{text}"
        );
        let hint = format!("{err:?}");
        assert!(hint.contains("use versions.kubernetes: 1.32.3"), "{hint}");

        let err = format!(
            "{:?}",
            needs(&lab("versions:\n  etcd: 3.4.1\n"), &|_| true, "amd64", None).unwrap_err()
        );
        assert!(
            err.contains("versions.etcd: kubelab has no pinned checksum for etcd 3.4.1"),
            "{err}"
        );
        assert!(err.contains("etcd: distro"), "{err}");

        let err = format!(
            "{:?}",
            needs(
                &lab("versions:\n  containerd: 1.7.0\n"),
                &|p| p == Phase::Workers,
                "amd64",
                None
            )
            .unwrap_err()
        );
        assert!(err.contains("versions.containerd"), "{err}");
        assert!(err.contains("use versions.containerd: 2.0.4"), "{err}");

        // crictl follows the Kubernetes minor release.
        let err = format!(
            "{:?}",
            super::artifact(
                &lab("versions:\n  kubernetes: 1.33.1\n"),
                Component::Crictl,
                "amd64",
                None
            )
            .unwrap_err()
        );
        assert!(
            err.contains("versions.kubernetes: kubelab has no pinned checksum for crictl 1.33.1 (crictl 1.33.0)"),
            "{err}"
        );
        assert!(
            err.contains("minor release kubelab pins crictl for: 1.32.x"),
            "{err}"
        );
    }
}
