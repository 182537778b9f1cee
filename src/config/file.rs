//! lab.yaml as written: the serde schema. Every field is optional; `resolve`
//! fills the defaults. Unknown keys are refused (`deny_unknown_fields`), so a
//! typo is reported by `structural` with the closest known key.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;

use super::{ArtifactSource, Provider, ProxyMode, Role};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabFile {
    pub name: Option<String>,
    pub provider: Option<Provider>,
    #[serde(rename = "box", deserialize_with = "null_as_default")]
    pub vm_box: BoxFile,
    #[serde(deserialize_with = "null_as_default")]
    pub network: NetworkFile,
    #[serde(deserialize_with = "null_as_default")]
    pub nodes: NodesFile,
    #[serde(deserialize_with = "null_as_default")]
    pub versions: VersionsFile,
    #[serde(deserialize_with = "null_as_default")]
    pub artifacts: ArtifactsFile,
    #[serde(deserialize_with = "null_as_default")]
    pub certificates: CertificatesFile,
    #[serde(deserialize_with = "null_as_default")]
    pub workload: WorkloadFile,
    pub kube_proxy: KubeProxyFile,
    /// `provider: static` only: the servers, instead of VM sizes.
    pub hosts: Option<Vec<HostFile>>,
}

/// A section left empty (`nodes:` or `nodes: ~`) takes every default, as
/// lab.yaml's comment promises for a deleted key.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// One existing server of a `provider: static` lab.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    pub name: Option<String>,
    pub role: Role,
    pub address: Ipv4Addr,
    pub interface: Option<String>,
    pub ssh_user: Option<String>,
    pub ssh_port: Option<u16>,
    pub ssh_key: Option<String>,
    pub ssh_alias: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoxFile {
    pub name: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkFile {
    pub cidr: Option<Ipv4Net>,
    pub domain: Option<String>,
    pub pod_cidr: Option<Ipv4Net>,
    pub service_cidr: Option<Ipv4Net>,
    pub ssh_port_base: Option<u16>,
    pub dns_forwarders: Option<Vec<Ipv4Addr>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodesFile {
    pub dns: RoleFile,
    pub etcd: RoleFile,
    pub controller: RoleFile,
    pub worker: RoleFile,
    pub lb: LbFile,
    pub registry: RoleFile,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleFile {
    pub count: Option<u32>,
    pub memory: Option<u32>,
    pub cpus: Option<u32>,
    pub first_address: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LbFile {
    pub count: Option<u32>,
    pub memory: Option<u32>,
    pub cpus: Option<u32>,
    pub first_address: Option<Ipv4Addr>,
    pub vip: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VersionsFile {
    pub kubernetes: Option<String>,
    pub etcd: Option<String>,
    pub containerd: Option<String>,
    pub runc: Option<String>,
    pub cni_plugins: Option<String>,
    pub coredns: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeProxyFile {
    pub mode: Option<ProxyMode>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsFile {
    pub etcd: Option<ArtifactSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificatesFile {
    pub validity_days: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadFile {
    pub nginx_replicas: Option<u32>,
}
