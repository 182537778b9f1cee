//! The releases kubelab pins: for each component, the versions it knows,
//! their download addresses and their digests, each read from an upstream
//! publication named beside it. Config checks lab.yaml's versions against
//! these; `artifacts` fetches them.

use std::path::Path;

use sha2::{Digest, Sha256, Sha512};

use crate::error::Result;

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
    /// The conformance runner `lab verify --conformance` drives from this
    /// host (not a node): see [`HYDROPHONE`].
    Hydrophone,
}

impl Component {
    /// The lab.yaml field that chooses its version.
    pub fn field(self) -> &'static str {
        match self {
            Component::Etcd => "versions.etcd",
            // crictl comes with the row `versions.kubernetes` picks
            // (cri-tools v1.N.x goes with Kubernetes 1.N).
            Component::Kubernetes | Component::Crictl => "versions.kubernetes",
            Component::Containerd => "versions.containerd",
            Component::Runc => "versions.runc",
            Component::CniPlugins => "versions.cni_plugins",
            Component::Hydrophone => "lab verify --conformance",
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
            Component::Hydrophone => "hydrophone",
        }
    }

    /// The release file's name and where upstream publishes it.
    pub(crate) fn file_and_url(self, version: &str, arch: &str) -> (String, String) {
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
            // goreleaser's names: `uname -s`_`uname -m` (Linux_x86_64).
            Component::Hydrophone => (
                format!("hydrophone_{arch}.tar.gz"),
                format!(
                    "https://github.com/kubernetes-sigs/hydrophone/releases/download/v{version}"
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
    pub(crate) fn parse(pin: &str) -> Checksum {
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
pub const SERVER_BIN: &str = "kubernetes/server/bin";
pub const CONTROLLER_BINARIES: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
];
pub const WORKER_BINARIES: [&str; 2] = ["kubelet", "kube-proxy"];

/// One release file's published digests, for the two architectures kubelab
/// runs (`sha256:<hex>` or `sha512:<hex>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub version: &'static str,
    pub amd64: &'static str,
    pub arm64: &'static str,
}

impl Pin {
    pub(crate) fn digest(&self, arch: &str) -> Option<&'static str> {
        match arch {
            "amd64" => Some(self.amd64),
            "arm64" => Some(self.arm64),
            _ => None,
        }
    }
}

/// One row of the bill of materials: a Kubernetes minor release kubelab
/// supports and the releases that go with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// "1.36": what `versions.kubernetes` names to pick this row.
    pub minor: &'static str,
    /// The server tarball's patch releases kubelab pins, newest (the
    /// default) first.
    pub kubernetes: &'static [Pin],
    pub etcd: Pin,
    pub containerd: Pin,
    pub runc: Pin,
    pub cni_plugins: Pin,
    /// cri-tools v1.N.x goes with Kubernetes 1.N.
    pub crictl: Pin,
    /// Container images, pulled through the lab's registry mirror, by
    /// digest where [`IMAGE_DIGESTS`] has one for the tag, else by tag.
    pub coredns: &'static str,
    pub pause: &'static str,
}

// Where the kubespray pins below were read: kubernetes-sigs/kubespray
// roles/kubespray_defaults/vars/main/checksums.yml at commit
// 46dbdd3994b32640bcd806b0097f50e8fdf1d514 ("Patch versions updates
// (#13423)", 2026-08-21). The versions are kubespray's defaults at that
// commit (roles/kubespray_defaults/defaults/main/download.yml and
// vars/main/main.yml: `etcd_supported_versions`, `pod_infra_supported_versions`,
// `coredns_supported_versions`; containerd, runc and CNI: the newest pinned).

// The rows share these: kubespray at that commit uses one containerd, runc
// and CNI plugins release for every Kubernetes minor it supports.

// kubespray checksums.yml (commit above), etcd_binary_checksums 3.6.14.
const ETCD_3_6_14: Pin = Pin {
    version: "3.6.14",
    amd64: "sha256:ffe840ff9295808e88cce2794a18a5ac87f12a5203c8314d0bf6aa119b41bac5",
    arm64: "sha256:fa1b80565ee6fc2df1ae6f57a508b221f3ecc7d591c317c581cd8281b0842b3e",
};
// kubespray checksums.yml (commit above), containerd_archive_checksums 2.3.4.
const CONTAINERD_2_3_4: Pin = Pin {
    version: "2.3.4",
    amd64: "sha256:9d68969855fbf676cdb8ed758e420fb048d61f984f61de3e53eddfebe484d168",
    arm64: "sha256:a985fbb7e18fc0362d31a055338f5d7b0e087a3e27f14c70d1c5965399a29f95",
};
// kubespray checksums.yml (commit above), runc_checksums 1.4.3.
const RUNC_1_4_3: Pin = Pin {
    version: "1.4.3",
    amd64: "sha256:f6ae8efc0fa40079e1475e97cbe9d1bd3f106a28d6af78a11d9f1bd565515e60",
    arm64: "sha256:633301e2e32f8a5ad54031aab4901eb00308bec677dd15faa2751e8f9dab5ca4",
};
// kubespray checksums.yml (commit above), cni_binary_checksums 1.9.1.
const CNI_PLUGINS_1_9_1: Pin = Pin {
    version: "1.9.1",
    amd64: "sha256:b98f74a0f8522f0a83867178729c1aa70f2158f90c45a2ca8fa791db1c76b303",
    arm64: "sha256:56171987d3947707c3563db2f4001bccaf50fd63468611b9f3cbecb1375ee7ec",
};

/// The bill of materials, newest minor (the default) first. Kubernetes 1.37
/// has no row: no upstream publication of a GA 1.37 digest could be read.
/// Looked at (2026-12-02): kubernetes/kubernetes CHANGELOG/CHANGELOG-1.37.md,
/// the one stored version (commit df0a31e010eab41eb769fbd6ecb09391707bd2eb),
/// publishes only v1.37.0-alpha.1; CHANGELOG-1.38.md ("Changelog since
/// v1.37.0") carries no 1.37 digests; the newest kubespray snapshot (commit
/// 46dbdd39 above, 2026-08-21, before 1.37.0 shipped) pins no
/// 1.37 kubelet, kubectl or kubeadm; a search of the stored sources for
/// `dl.k8s.io/v1.37.` with kubernetes-server-linux-amd64.tar.gz or
/// kubernetes-node-linux finds only third-party notes, not a publication.
pub const RELEASES: &[Release] = &[
    Release {
        minor: "1.36",
        kubernetes: &[
            // kubernetes/kubernetes CHANGELOG/CHANGELOG-1.36.md, "v1.36.0" >
            // "Server Binaries" (the release notes publish sha512 only).
            Pin {
                version: "1.36.0",
                amd64: "sha512:1c64da92575451c2c7ff97c79b772e603995f8e76da1371a6b0746aaa27b65dce81c4d734cbb50f40e71486a8e08df36f14e12974f97d4d29e41f23a172a6a25",
                arm64: "sha512:7f95e451baedd9368a2fa637afa84c9ed1b958736540ca27a379e5e292e1a10c5d9a29539f833047574bf5d3b6f907f32dee5735acecc11aa4686f078108dcf8",
            },
        ],
        etcd: ETCD_3_6_14,
        containerd: CONTAINERD_2_3_4,
        runc: RUNC_1_4_3,
        cni_plugins: CNI_PLUGINS_1_9_1,
        // kubespray checksums.yml (commit above), crictl_checksums 1.36.0.
        crictl: Pin {
            version: "1.36.0",
            amd64: "sha256:83855e114566a8a8c44c548d515670f51de3a5e1da8b2effb59870e2f10c25a3",
            arm64: "sha256:68328594ccf780a80ae2b092d9f6ce484eec7cf540c275242e8fd954bfd95332",
        },
        // kubespray download.yml coredns_supported_versions['1.36'].
        coredns: "1.14.2",
        // kubespray vars/main/main.yml pod_infra_supported_versions['1.36'].
        pause: "3.10.2",
    },
    Release {
        minor: "1.35",
        kubernetes: &[
            // kubernetes/kubernetes CHANGELOG/CHANGELOG-1.35.md, "v1.35.0" >
            // "Server Binaries".
            Pin {
                version: "1.35.0",
                amd64: "sha512:23af53c49de841a0d5c19d9525d820cecc9d55367c132296a5f381d051438bf06dcddff3d0236df8ba6011a6aa5d0ffc31960d277c7f53a0ad98e66d6f8d6a0a",
                arm64: "sha512:fd245273c6ace20abc893f868d678c4a24c0dbe7d5340087f852d245e59329e66f79afce489dc1b396908d2f005b132eca8d15a7664508fe923627bb2eddee18",
            },
        ],
        etcd: ETCD_3_6_14,
        containerd: CONTAINERD_2_3_4,
        runc: RUNC_1_4_3,
        cni_plugins: CNI_PLUGINS_1_9_1,
        // kubespray checksums.yml (commit above), crictl_checksums 1.35.0.
        crictl: Pin {
            version: "1.35.0",
            amd64: "sha256:2e141e5b22cb189c40365a11807d69b76b9b3caced89fac2f4ec879408ce2177",
            arm64: "sha256:519071de89b64c43e2a1661bb5489c6c3fd5e9e5fcef75e50e542b0c891f1118",
        },
        // kubespray download.yml coredns_supported_versions['1.35'].
        coredns: "1.12.4",
        // kubespray vars/main/main.yml pod_infra_supported_versions['1.35'].
        pause: "3.10.1",
    },
];

/// Pinned releases no row defaults to, for `versions.*` overrides.
const OVERRIDES: &[(Component, Pin)] = &[
    // The etcd 3.5 -> 3.6 upgrade path goes through the latest 3.5 patch
    // first. kubespray checksums.yml (commit above), etcd_binary_checksums.
    (
        Component::Etcd,
        Pin {
            version: "3.5.33",
            amd64: "sha256:5025b5b24d81a9616b6e284ccd439b9a3df055ef8fdcdc142af3ec8f6a3b3c95",
            arm64: "sha256:0764c5c0acef155f4bfa0487791cc5776adef66315bf16ec0653883bfd463a90",
        },
    ),
];

/// Image digests an upstream publication states: the image promoter's
/// manifests in kubernetes/k8s.io (`registry.k8s.io/images/<staging
/// project>/images.yaml`, `dmap: "sha256:<digest>": [<tag>]`), as
/// (image under registry.k8s.io, tag, digest). An image kubelab runs at a tag
/// listed here is pulled as `tag@digest`; any other by its tag alone. Only the
/// stored versions of those files could be read: the coredns one at commit
/// 9a1bd547b6a93ef57e6c6f7940b2299e9ee76ee0 lists tags up to v1.13.2, the
/// kubernetes one at commit ecf019a88caa0923c610e8982ca44a460c0303e5 pause up
/// to 3.10.1, the metrics-server one at commit
/// bc1017d811972e111a18438057aedac90a843198 up to v0.8.0. So CoreDNS v1.14.2
/// and pause 3.10.2 (the 1.36 row) and metrics-server v0.8.1 have no digest
/// here and are pulled by tag.
pub const IMAGE_DIGESTS: &[(&str, &str, &str)] = &[
    // k8s-staging-coredns/images.yaml at commit 9a1bd547 (above).
    (
        "coredns/coredns",
        "v1.12.4",
        "sha256:986f04c2e15e147d00bdd51e8c51bcef3644b13ff806be7d2ff1b261d6dfbae1",
    ),
    // k8s-staging-kubernetes/images.yaml at commit ecf019a8 (above), `name: pause`.
    (
        "pause",
        "3.10.1",
        "sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c",
    ),
];

/// `registry.k8s.io/<image>:<tag>`, with `@<digest>` when [`IMAGE_DIGESTS`]
/// has one for that tag.
pub fn image_ref(image: &str, tag: &str) -> String {
    match IMAGE_DIGESTS
        .iter()
        .find(|(i, t, _)| *i == image && *t == tag)
    {
        Some((_, _, digest)) => format!("registry.k8s.io/{image}:{tag}@{digest}"),
        None => format!("registry.k8s.io/{image}:{tag}"),
    }
}

/// hydrophone (kubernetes-sigs/hydrophone), the conformance runner, for
/// the one host platform a digest is published for: kubernetes-sigs/kubespray
/// tests/common_vars.yml, `hydrophone_version: "0.7.0"`, `hydrophone_arch:
/// "x86_64"`, `hydrophone_checksum` (the sha256 of
/// hydrophone_Linux_x86_64.tar.gz), added at commit
/// c138157886c5cfbb1befcd511ebfaccfde2dab90 ("Test: add install hydrophone",
/// 2026-01-31) and unchanged at 46dbdd3994b32640bcd806b0097f50e8fdf1d514.
/// v0.7.0 is hydrophone's newest tag (commit 3de3e886a2f6f09635d8b981c195490af1584d97).
/// No other platform's digest was found published (Homebrew's formula pins
/// the source tarball, to build with Go), so other hosts are refused.
pub const HYDROPHONE: HostTool = HostTool {
    version: "0.7.0",
    platform: "Linux_x86_64",
    digest: "sha256:15a6c09962f9bd4a1587af068b5edef1072327a77012d8fbb84992c7c87c0475",
};

/// A release that runs on this host, pinned for one platform (`uname -s`_`uname -m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTool {
    pub version: &'static str,
    pub platform: &'static str,
    pub digest: &'static str,
}

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

/// The VMs' architecture in release file names.
pub fn node_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

/// The row `versions.kubernetes` picks and the server release in it: a
/// minor ("1.36") takes the row's newest pinned patch, a full version
/// ("1.36.0") must be one the row pins. Else the problem and its hint.
pub fn release_for(
    kubernetes: &str,
) -> std::result::Result<(&'static Release, Pin), (String, String)> {
    let minors: Vec<&str> = RELEASES.iter().map(|r| r.minor).collect();
    let parts: Vec<&str> = kubernetes.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit()));
    if !numeric || !(2..=3).contains(&parts.len()) {
        return Err((
            format!("{kubernetes:?} is not a MAJOR.MINOR or MAJOR.MINOR.PATCH version"),
            format!(
                "write it like {} or {} (no leading `v`)",
                RELEASES[0].minor, RELEASES[0].kubernetes[0].version
            ),
        ));
    }
    let minor = format!("{}.{}", parts[0], parts[1]);
    let Some(row) = RELEASES.iter().find(|r| r.minor == minor) else {
        return Err((
            format!("{kubernetes:?} is not a Kubernetes release kubelab supports"),
            format!(
                "use one of {} (a row of kubelab's bill of materials; {} is the default), or a patch release it pins",
                minors.join(", "),
                RELEASES[0].minor
            ),
        ));
    };
    if kubernetes == row.minor {
        return Ok((row, row.kubernetes[0]));
    }
    match row.kubernetes.iter().find(|p| p.version == kubernetes) {
        Some(pin) => Ok((row, *pin)),
        None => {
            let patches: Vec<&str> = row.kubernetes.iter().map(|p| p.version).collect();
            Err((
                format!("kubelab has no published checksum for Kubernetes {kubernetes}"),
                format!(
                    "use {} (the newest patch it pins), or one of: {}",
                    row.minor,
                    patches.join(", ")
                ),
            ))
        }
    }
}

/// Every pinned release of `component`: each row's, then the overrides.
pub(crate) fn pins(component: Component) -> Vec<Pin> {
    let mut out: Vec<Pin> = Vec::new();
    for r in RELEASES {
        let from_row: Vec<Pin> = match component {
            Component::Kubernetes => r.kubernetes.to_vec(),
            Component::Etcd => vec![r.etcd],
            Component::Containerd => vec![r.containerd],
            Component::Runc => vec![r.runc],
            Component::CniPlugins => vec![r.cni_plugins],
            Component::Crictl => vec![r.crictl],
            // A host tool, in no row: see HYDROPHONE.
            Component::Hydrophone => Vec::new(),
        };
        out.extend(from_row);
    }
    out.extend(
        OVERRIDES
            .iter()
            .filter(|(c, _)| *c == component)
            .map(|(_, p)| *p),
    );
    let mut seen = Vec::new();
    out.retain(|p| {
        let new = !seen.contains(&p.version);
        seen.push(p.version);
        new
    });
    out
}

/// The pin of `component` at `version`, if kubelab has one.
pub fn pin(component: Component, version: &str) -> Option<Pin> {
    pins(component).into_iter().find(|p| p.version == version)
}

/// Why `version` of `component` cannot be used and which can, for a
/// `versions.*` override kubelab has no pin for.
pub fn unpinned(component: Component, version: &str) -> (String, String) {
    let pinned: Vec<&str> = pins(component).iter().map(|p| p.version).collect();
    let mut hint = format!(
        "use {} (the version{} kubelab pins a published checksum for), or leave {} out to take the row's",
        pinned.join(" or "),
        if pinned.len() == 1 { "" } else { "s" },
        component.field(),
    );
    if component == Component::Etcd {
        hint.push_str(", or `artifacts: {etcd: distro}` to use the node's etcd-server package");
    }
    (
        format!(
            "kubelab has no published checksum for {} {version}; an unknown version is refused",
            component.name()
        ),
        hint,
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
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
