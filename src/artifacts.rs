//! Release binaries: downloaded once per host into the cache shared by every
//! lab (`$XDG_CACHE_HOME/kubelab`), checked against digests pinned here,
//! resumable, then copied to the nodes whose phase needs them. Never N
//! downloads for N VMs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{ArtifactSource, Lab};
use crate::error::{Error, Result};
use crate::topology::Phase;

pub use crate::releases::*;

/// What one phase copies to its nodes from one release: the whole file, or
/// (the Kubernetes server tarball) binaries extracted from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub phase: Phase,
    pub artifact: Artifact,
    pub binaries: &'static [&'static str],
}

/// The release of `component` this lab asks for, or a usage error naming
/// the lab.yaml field, the value and what kubelab pins. Config validation
/// refuses unpinned versions first; this holds for a `Lab` built otherwise.
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
        Component::Crictl => v.crictl.clone(),
        Component::Hydrophone => {
            return hydrophone(std::env::consts::OS, std::env::consts::ARCH, mirror);
        }
    };
    let digest = pin(component, &version).and_then(|p| p.digest(arch));
    let Some(digest) = digest else {
        let (problem, hint) = unpinned(component, &version);
        return Err(Error::usage(
            format!("{}: {problem} ({arch})", component.field()),
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
        checksum: Checksum::parse(digest),
    })
}

/// The hydrophone release for a host running `os`/`arch` (Rust's names), or
/// a usage error naming the one platform kubelab pins it for.
pub fn hydrophone(os: &str, arch: &str, mirror: Option<&str>) -> Result<Artifact> {
    let platform = match (os, arch) {
        ("linux", "x86_64") => "Linux_x86_64",
        ("linux", "aarch64") => "Linux_arm64",
        ("macos", "x86_64") => "Darwin_x86_64",
        ("macos", "aarch64") => "Darwin_arm64",
        _ => "",
    };
    if platform != HYDROPHONE.platform {
        return Err(Error::usage(
            format!(
                "lab verify --conformance: kubelab pins hydrophone {} only for {} (the one build whose sha256 is published where kubelab reads digests); this host is {os}/{arch}",
                HYDROPHONE.version, HYDROPHONE.platform
            ),
            format!(
                "run it from a Linux x86_64 host, or run hydrophone {} yourself with the lab's admin kubeconfig (`kubelab lab kubeconfig`): hydrophone --conformance --kubeconfig FILE",
                HYDROPHONE.version
            ),
        ));
    }
    let version = HYDROPHONE.version.to_string();
    let (file_name, upstream) = Component::Hydrophone.file_and_url(&version, platform);
    let url = match mirror {
        Some(m) => format!("{}/{file_name}", m.trim_end_matches('/')),
        None => upstream,
    };
    Ok(Artifact {
        component: Component::Hydrophone,
        version,
        url,
        file_name,
        checksum: Checksum::parse(HYDROPHONE.digest),
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
    extract_binaries(cache, a, SERVER_BIN, binaries)
}

/// Extracts `<dir>/<name>` for each of `binaries` (`dir` "" for the
/// archive's top level) from the verified tarball `a` into the cache, mode
/// 0755, leaving every other member alone. Binaries already extracted are kept.
pub fn extract_binaries(cache: &Path, a: &Artifact, dir: &str, binaries: &[&str]) -> Result<()> {
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
            .strip_prefix(dir)
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
                "{} has no {} under {dir}/",
                archive_path.display(),
                absent.join(", ")
            ),
            format!(
                "the file is not the {} release; delete it (`kubelab cache clean`) and fetch it again",
                a.label()
            ),
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
            "check the network (or set KUBELAB_ARTIFACTS_MIRROR to a mirror you can reach), then run the command again: the download resumes where it stopped; `--offline` uses only the files already in the cache",
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
    use crate::releases::{hex, pins};
    use sha2::{Digest, Sha256, Sha512};
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
            return crate::lab::builtin();
        }
        crate::lab::parse(yaml, crate::config::LabSource::BuiltIn).unwrap()
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
            ["etcd-v3.6.14-linux-amd64.tar.gz"]
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
                "containerd-2.3.4-linux-amd64.tar.gz",
                "runc.amd64",
                "cni-plugins-linux-amd64-v1.9.1.tgz",
                "crictl-v1.36.0-linux-amd64.tar.gz"
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
            "https://dl.k8s.io/v1.36.0/kubernetes-server-linux-amd64.tar.gz"
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
        // The distribution's etcd takes any version: nothing is downloaded.
        let odd = lab("artifacts:\n  etcd: distro\nversions:\n  etcd: 3.4.30\n");
        assert_eq!(needs(&odd, &until_etcd, "amd64", None).unwrap(), []);
        // The release etcd is the one download up to etcd.
        let release = needs(&lab(""), &until_etcd, "amd64", None).unwrap();
        assert_eq!(release.len(), 1);
        assert_eq!(release[0].artifact.component, Component::Etcd);
    }

    #[test]
    fn every_row_is_pinned_for_both_architectures() {
        assert_eq!(RELEASES[0].minor, "1.36", "the default is the newest row");
        for row in RELEASES {
            let yaml = format!("versions:\n  kubernetes: \"{}\"\n", row.minor);
            for arch in ["amd64", "arm64"] {
                let all = needs(&lab(&yaml), &|_| true, arch, None).unwrap();
                let downloads = distinct(&all);
                assert_eq!(downloads.len(), 6, "{} {arch}", row.minor);
                let server = downloads
                    .iter()
                    .find(|a| a.component == Component::Kubernetes)
                    .unwrap();
                assert_eq!(server.version, row.kubernetes[0].version);
                assert!(server.file_name.contains(arch));
            }
        }
        // Each pin is a whole digest of its algorithm, lower-case hex, and
        // the two architectures differ (a copied line would not).
        let components = [
            Component::Etcd,
            Component::Kubernetes,
            Component::Containerd,
            Component::Runc,
            Component::CniPlugins,
            Component::Crictl,
        ];
        for c in components {
            for p in pins(c) {
                assert_ne!(p.amd64, p.arm64, "{c:?} {}", p.version);
                for digest in [p.amd64, p.arm64] {
                    let sum = Checksum::parse(digest);
                    let len = if sum.algorithm() == "sha512" { 128 } else { 64 };
                    assert_eq!(sum.hex().len(), len, "{c:?} {}", p.version);
                    assert!(
                        sum.hex()
                            .chars()
                            .all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch)),
                        "{c:?} {}",
                        p.version
                    );
                }
            }
        }
    }

    #[test]
    fn a_minor_picks_its_row_and_a_pinned_patch_picks_itself() {
        let (row, pin) = release_for("1.35").unwrap();
        assert_eq!((row.minor, pin.version), ("1.35", "1.35.0"));
        let (row, pin) = release_for("1.36.0").unwrap();
        assert_eq!((row.minor, pin.version), ("1.36", "1.36.0"));
        let (problem, hint) = release_for("1.36.9").unwrap_err();
        assert!(
            problem.contains("no published checksum for Kubernetes 1.36.9"),
            "{problem}"
        );
        assert!(hint.contains("use 1.36"), "{hint}");
        let (problem, hint) = release_for("1.32.3").unwrap_err();
        assert!(
            problem.contains("not a Kubernetes release kubelab supports"),
            "{problem}"
        );
        assert!(hint.contains("1.36, 1.35"), "{hint}");
        // 1.37 has no published release in the stored upstream material.
        assert!(release_for("1.37").is_err());
    }

    #[test]
    fn hydrophone_is_taken_from_the_top_of_its_archive_and_nothing_else() {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, bytes) in [
            ("LICENSE", &b"license"[..]),
            ("README.md", b"readme"),
            ("hydrophone", b"#!/bin/sh\necho hydrophone\n"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, path, bytes).unwrap();
        }
        let gz = tar.into_inner().unwrap().finish().unwrap();
        let (url, _) = serve(gz.clone(), 1);
        let cache = tempfile::tempdir().unwrap();
        let mut a = artifact(url, &gz);
        a.component = Component::Hydrophone;
        a.file_name = "hydrophone_Linux_x86_64.tar.gz".into();
        fetch_now(cache.path(), &a, false).unwrap();
        extract_binaries(cache.path(), &a, "", &["hydrophone"]).unwrap();
        let bin = extracted_path(cache.path(), &a, "hydrophone");
        assert_eq!(fs_err::read(&bin).unwrap(), b"#!/bin/sh\necho hydrophone\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs_err::metadata(&bin).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let names: Vec<String> = fs_err::read_dir(bin.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["hydrophone"]);
        let err = extract_binaries(cache.path(), &a, "", &["kubectl"])
            .unwrap_err()
            .hint()
            .unwrap_or_default();
        assert!(err.contains("not the hydrophone"), "{err}");
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
        // Config validation refuses these; a Lab built past it still cannot
        // download an unchecked file.
        let mut odd = lab("");
        odd.versions.kubernetes = "1.31.0".into();
        let err = needs(&odd, &|p| p == Phase::Controllers, "amd64", None).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = format!("{err:?}");
        assert!(
            text.contains(
                "versions.kubernetes: kubelab has no published checksum for kubernetes 1.31.0"
            ),
            "{text}"
        );
        assert!(text.contains("use 1.36.0 or 1.35.0"), "{text}");

        let (problem, hint) = unpinned(Component::Etcd, "3.4.1");
        assert!(problem.contains("etcd 3.4.1"), "{problem}");
        assert!(hint.contains("use 3.6.14 or 3.5.33"), "{hint}");
        assert!(hint.contains("etcd: distro"), "{hint}");

        let (_, hint) = unpinned(Component::Containerd, "1.7.0");
        assert!(hint.contains("use 2.3.4 "), "{hint}");
        assert!(hint.contains("leave versions.containerd out"), "{hint}");
    }
}
