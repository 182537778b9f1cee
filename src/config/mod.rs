//! lab.yaml: its schema, its defaults and its validation.
//!
//! The repository's top-level `lab.yaml` *is* the default lab: it is compiled
//! into the binary, and a test asserts it equals [`LabFile::default`]. A file is
//! read once, into a [`Lab`]; nothing else in kubelab reads YAML.
//!
//! A file goes through four steps, one file each:
//! - `file.rs`: the serde schema ([`LabFile`]), every field optional;
//! - `structural.rs`: syntax, types and unknown keys, the first such problem;
//! - `resolve.rs`: the defaults applied into a [`Lab`], with the rules each
//!   field has on its own (names, sizes, versions, static hosts' keys);
//! - `words.rs`: the grammar of names and versions (they reach a Vagrantfile,
//!   ssh and scripts);
//! - `networks.rs`: the networks' own rules (special ranges, VirtualBox's
//!   NAT, overlaps, sizes).
//!
//! The rules over the concrete nodes (addresses, SSH ports, pod ranges, as
//! `topology` derives them, once) are in `lab/validate.rs`, and
//! `lab::{load, parse, builtin}` run every step in order, reporting every
//! problem at once: config sits below topology, which reads only the types
//! here, and `lab` joins the two, so no import runs in a circle.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

mod file;
pub(crate) mod networks;
pub(crate) mod resolve;
mod structural;
mod words;

pub use file::{BoxFile, HostFile, LabFile, NetworkFile, NodesFile, VersionsFile};
pub use structural::{closest, parse_structure};
pub use words::{is_interface, is_lab_name};

/// The default lab, commented; also what `kubelab init` writes.
pub const DEFAULT_LAB_YAML: &str = include_str!("../../lab.yaml");

/// The only host-only range VirtualBox >= 6.1.28 accepts without networks.conf.
pub const VIRTUALBOX_ALLOWED: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(192, 168, 56, 0), 21) {
    Ok(net) => net,
    Err(_) => panic!("constant network"),
};

/// The roles a lab is made of, in the order their VMs are listed and created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Dns,
    Etcd,
    Controller,
    Worker,
    Lb,
    Registry,
}

/// Per-role defaults: the table in DESIGN.md, in one place.
pub struct RoleDefaults {
    pub count: u32,
    pub memory: u32,
    pub min_memory: u32,
    pub cpus: u32,
    /// Host part of the first node's address inside the lab network.
    pub first_host: u32,
    pub min_count: u32,
    pub max_count: u32,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Dns,
        Role::Etcd,
        Role::Controller,
        Role::Worker,
        Role::Lb,
        Role::Registry,
    ];

    /// The key under `nodes:` and the prefix of node names (`worker0`).
    pub fn key(self) -> &'static str {
        match self {
            Role::Dns => "dns",
            Role::Etcd => "etcd",
            Role::Controller => "controller",
            Role::Worker => "worker",
            Role::Lb => "lb",
            Role::Registry => "registry",
        }
    }

    pub fn defaults(self) -> RoleDefaults {
        let (count, memory, min_memory, cpus, first_host, min_count, max_count) = match self {
            Role::Dns => (1, 384, 256, 1, 2, 1, 1),
            Role::Etcd => (3, 512, 512, 1, 10, 1, 7),
            Role::Controller => (3, 1024, 1024, 1, 20, 1, 7),
            Role::Worker => (1, 2048, 1024, 2, 30, 1, 250),
            Role::Lb => (2, 384, 256, 1, 51, 1, 9),
            Role::Registry => (0, 512, 512, 1, 60, 0, 1),
        };
        RoleDefaults {
            count,
            memory,
            min_memory,
            cpus,
            first_host,
            min_count,
            max_count,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Host part of the default API VIP (`api.<domain>` with 2+ load balancers).
pub(crate) const DEFAULT_VIP_HOST: u32 = 50;
/// VirtualBox's default host-only DHCP server: .100, leasing .101-.254.
pub(crate) const VBOX_DHCP_FIRST_HOST: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Virtualbox,
    /// Existing servers listed under `hosts:`; no VM is made or powered off.
    Static,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Virtualbox => f.write_str("virtualbox"),
            Provider::Static => f.write_str("static"),
        }
    }
}

/// How long the lab's certificates (and CAs) are valid when lab.yaml does not
/// say (`certificates.validity_days`): one year, as the issue asks.
pub const VALIDITY_DAYS: u32 = 365;

/// How kube-proxy programs Services into the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// Upstream's default, and what the lab's iptables/conntrack tools show.
    #[default]
    Iptables,
    /// GA since Kubernetes 1.33; needs the `nft` command on the workers.
    Nftables,
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Nftables => "nftables",
        })
    }
}

/// Where a component's binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactSource {
    /// The pinned upstream release, downloaded once into kubelab's cache.
    #[default]
    Release,
    /// The node's own distribution package.
    Distro,
}

impl fmt::Display for ArtifactSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArtifactSource::Release => "release",
            ArtifactSource::Distro => "distro",
        })
    }
}
// ---------------------------------------------------------------------------
// The resolved lab: every default applied, every rule checked.
// ---------------------------------------------------------------------------

/// Where a lab's definition came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabSource {
    File(PathBuf),
    BuiltIn,
}

impl LabSource {
    /// The folder lab.yaml is in (relative paths in it start there, and
    /// `.kubelab/` goes there); `.` for the built-in lab.
    pub fn dir(&self) -> PathBuf {
        match self {
            LabSource::File(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            LabSource::BuiltIn => PathBuf::from("."),
        }
    }
}

impl fmt::Display for LabSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabSource::File(path) => write!(f, "{}", path.display()),
            LabSource::BuiltIn => f.write_str("the built-in default lab"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoxSpec {
    pub name: String,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    pub cidr: Ipv4Net,
    pub domain: String,
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub ssh_port_base: u16,
    /// Where dns0 sends lookups outside the lab domain.
    pub dns_forwarders: Vec<Ipv4Addr>,
}

impl Network {
    /// The hypervisor's own address on the host-only network (.1).
    pub fn host_address(&self) -> Ipv4Addr {
        host_addr(self.cidr, 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleSpec {
    pub role: Role,
    pub count: u32,
    pub memory: u32,
    pub cpus: u32,
    pub first_address: Ipv4Addr,
}

/// The releases a lab runs: the bill-of-materials row `versions.kubernetes`
/// picks, with any pinned override from lab.yaml applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Versions {
    /// The row's Kubernetes minor release ("1.36").
    pub release: String,
    pub kubernetes: String,
    pub etcd: String,
    pub containerd: String,
    pub runc: String,
    pub cni_plugins: String,
    /// From the row (cri-tools follows the Kubernetes minor).
    pub crictl: String,
    pub coredns: String,
    /// The pod sandbox image's tag, from the row.
    pub pause: String,
    /// The lab.yaml fields that override the row (`versions.etcd`, ...).
    pub overrides: Vec<String>,
}

/// How kubelab reaches a static host over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticSsh {
    /// The login user; `None` leaves it to the user's ssh_config (alias only).
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Absolute path of the private key, checked to exist with mode 0600.
    pub key: Option<PathBuf>,
    /// A `Host` of the user's ssh_config, connected to instead of `address`.
    pub alias: Option<String>,
}

/// One server of a `provider: static` lab, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticHost {
    pub name: String,
    pub role: Role,
    pub address: Ipv4Addr,
    /// The interface holding `address`, when lab.yaml names it (the facts
    /// phase reads the real one from the host either way).
    pub interface: Option<String>,
    pub ssh: StaticSsh,
}

/// A validated lab definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    pub name: String,
    pub source: LabSource,
    pub provider: Provider,
    pub vm_box: BoxSpec,
    pub network: Network,
    /// One entry per role, in [`Role::ALL`] order.
    pub roles: Vec<RoleSpec>,
    /// The API VIP; only used when there are 2 or more load balancers.
    pub vip: Ipv4Addr,
    pub versions: Versions,
    /// Where etcd's binary comes from.
    pub etcd_source: ArtifactSource,
    /// kube-proxy's `mode`.
    pub kube_proxy_mode: ProxyMode,
    /// How long the lab's certificates (and CAs) are valid, in days.
    pub certificate_validity_days: u32,
    pub nginx_replicas: u32,
    /// `provider: static`: the listed servers, in lab.yaml's order (empty
    /// for a VirtualBox lab).
    pub hosts: Vec<StaticHost>,
    /// Things that are allowed but probably not meant (printed on stderr).
    pub warnings: Vec<Problem>,
}

impl Lab {
    pub fn role(&self, role: Role) -> &RoleSpec {
        // `roles` always holds every role: `resolve` builds it from Role::ALL.
        &self.roles[Role::ALL.iter().position(|r| *r == role).unwrap_or(0)]
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

pub use crate::error::{ConfigError, Problem};

/// The address `host` places into `net` (`host_addr(192.168.56.0/24, 1)` is
/// 192.168.56.1).
pub(crate) fn host_addr(net: Ipv4Net, host: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + host)
}

#[cfg(test)]
pub(crate) mod tests;
