//! lab.yaml: its schema, its defaults and its validation.
//!
//! The repository's top-level `lab.yaml` *is* the default lab: it is compiled
//! into the binary, and a test asserts it equals [`LabFile::default`]. A file is
//! read once, into a [`Lab`]; nothing else in kubelab reads YAML.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The default lab, commented; also what `kubelab init` writes.
pub const DEFAULT_LAB_YAML: &str = include_str!("../lab.yaml");

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
const DEFAULT_VIP_HOST: u32 = 50;
/// VirtualBox's default host-only DHCP server: .100, leasing .101-.254.
const VBOX_DHCP_FIRST_HOST: u32 = 100;

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

// ---------------------------------------------------------------------------
// The file as written. Every field is optional; `resolve` fills the defaults.
// ---------------------------------------------------------------------------

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

/// One thing wrong (or suspicious) in a lab file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Dotted field path (`nodes.worker.memory`), or empty for the whole file.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    fn new(path: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        Problem {
            path: path.into(),
            message: message.into(),
            hint: (!hint.is_empty()).then_some(hint),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: no such lab file")]
    Missing { path: PathBuf },
    #[error("could not read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name} is invalid:\n{}", render_problems(.problems))]
    Invalid {
        source_name: String,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Missing { path } => Some(format!(
                "run `kubelab init` to write a commented lab file there, or pass --lab with the right path (tried {})",
                path.display()
            )),
            _ => None,
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            p.to_string()
                .lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Reads and validates a lab file.
pub fn load(path: &Path) -> Result<Lab, ConfigError> {
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(err) => {
            return Err(ConfigError::Unreadable {
                path: path.to_path_buf(),
                source: err,
            });
        }
    };
    parse(&text, LabSource::File(path.to_path_buf()))
}

/// The built-in default lab.
pub fn builtin() -> Lab {
    parse(DEFAULT_LAB_YAML, LabSource::BuiltIn)
        .unwrap_or_else(|err| panic!("the built-in lab.yaml is invalid (a kubelab bug): {err}"))
}

/// Parses and validates lab file text.
pub fn parse(text: &str, source: LabSource) -> Result<Lab, ConfigError> {
    // CR-only line ends (old Mac style) are line breaks in YAML, but not to
    // the parser kubelab uses: read them as LF (the file is not changed).
    let cr_only;
    let text = if text.contains('\r') && !text.contains('\n') {
        cr_only = text.replace('\r', "\n");
        cr_only.as_str()
    } else {
        text
    };
    let source_name = source.to_string();
    let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
        source_name: source_name.clone(),
        problems,
    };
    let file = parse_structure(text).map_err(|p| invalid(vec![p]))?;
    resolve(&file, source.clone()).map_err(invalid)
}

/// Syntax, types and unknown keys: the first such problem, with its field path.
pub fn parse_structure(text: &str) -> Result<LabFile, Problem> {
    let meaningful = text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#') && l != "---");
    if !meaningful {
        return Err(Problem::new(
            "",
            "the file is empty",
            "run `kubelab init --force` to write the commented default lab, or delete the file to use the built-in one",
        ));
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let result: Result<LabFile, _> = serde_path_to_error::deserialize(deserializer);
    result.map_err(|err| structural_problem(&err))
}

fn structural_problem(err: &serde_path_to_error::Error<serde_yaml::Error>) -> Problem {
    let path = err.path().to_string();
    let inner = err.inner();
    let location = inner
        .location()
        .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
        .unwrap_or_default();
    let raw = inner.to_string();
    // serde_yaml prefixes the path and appends " at line N column M"; we print
    // both our own way.
    let message = raw.find(" at line ").map_or(raw.as_str(), |i| &raw[..i]);
    let message = plain_words(
        message
            .strip_prefix(&format!("{path}: "))
            .unwrap_or(message),
    );
    // A path is only meaningful when the parser got as far as a value.
    let syntax =
        path == "." || path.contains('?') || inner.location().is_some() && !is_data_error(&message);
    let path = if path == "." || path.contains('?') {
        String::new()
    } else {
        path
    };

    if let Some(unknown) = between(&message, "unknown field `", "`") {
        let expected = expected_fields(&message);
        let full_path = if path.is_empty() {
            unknown.to_string()
        } else {
            // serde_path_to_error already names the unknown key as the last segment.
            path.clone()
        };
        let hint = match closest(unknown, &expected) {
            _ if unknown == "<<" => format!(
                "YAML merge keys (`<<: *anchor`) are not supported: write the values out; known keys here: {}",
                expected.join(", ")
            ),
            Some(best) => format!(
                "did you mean `{best}`? known keys here: {}",
                expected.join(", ")
            ),
            None => format!("known keys here: {}", expected.join(", ")),
        };
        return Problem::new(full_path, format!("unknown key{location}"), hint);
    }
    if let Some(variant) = between(&message, "unknown variant `", "`") {
        let expected = expected_fields(&message);
        return Problem::new(
            path,
            format!("`{variant}` is not a known value{location}"),
            format!("use one of: {}", expected.join(", ")),
        );
    }
    if let Some(field) = between(&message, "missing field `", "`") {
        return Problem::new(
            path,
            format!("`{field}` is missing{location}"),
            format!(
                "add `{field}:` here; the commented default lab.yaml and README show each setting"
            ),
        );
    }
    if message.starts_with("invalid value: integer") {
        return Problem::new(
            path,
            format!("{message}{location}"),
            "use a number in that range; the commented default lab.yaml (`kubelab init`) shows usual values",
        );
    }
    if message.starts_with("duplicate field") {
        return Problem::new(
            path,
            format!("{message}{location}"),
            "each key may appear once in its mapping: delete one of the two lines",
        );
    }
    if message.contains("unknown anchor") {
        return Problem::new(
            path,
            format!("{message}{location}"),
            "define the anchor (`&name`) before using it (`*name`), or write the value out",
        );
    }
    if message.starts_with("invalid type") {
        return Problem::new(
            path,
            format!("{message}{location}"),
            "see the commented default lab.yaml (`kubelab init`) for the type of each setting",
        );
    }
    if syntax {
        let hint = if message.contains("more than one document") {
            "lab.yaml is one YAML document: remove the `---` (or `...`) line and what follows, or merge the documents"
        } else if message.contains("cannot start any token") {
            "YAML indents with spaces, never TABs: replace the TAB at that line with spaces (and check the `key: value` pairs around it)"
        } else {
            "check the indentation and the `key: value` pairs around that line"
        };
        return Problem::new("", format!("YAML syntax error{location}: {message}"), hint);
    }
    let hint = if message.contains("IP") || message.contains("address") {
        "kubelab labs are IPv4 only: write an IPv4 address like 192.168.56.10, or a network like 192.168.56.0/24"
    } else {
        ""
    };
    Problem::new(path, format!("{message}{location}"), hint)
}

/// serde's message in the user's words: no Rust type names.
fn plain_words(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, words) in [
        (
            "expected struct LabFile",
            "expected the lab's settings (`key: value` lines such as `name: mylab`)",
        ),
        (
            "expected struct NodesFile",
            "expected the roles' settings (such as `worker:` with `count: 3` under it)",
        ),
        (
            "expected struct RoleFile",
            "expected a role's settings (such as `count: 3`)",
        ),
        (
            "expected struct LbFile",
            "expected the load balancers' settings (such as `count: 2`)",
        ),
        (
            "expected struct NetworkFile",
            "expected the network settings (such as `cidr: 192.168.56.0/24`)",
        ),
        (
            "expected struct BoxFile",
            "expected the box settings (such as `name: bento/ubuntu-24.04`)",
        ),
        (
            "expected struct VersionsFile",
            "expected component versions (such as `kubernetes: 1.32.3`)",
        ),
        (
            "expected struct ArtifactsFile",
            "expected artifact sources (such as `etcd: upstream`)",
        ),
        (
            "expected struct CertificatesFile",
            "expected certificate settings (such as `validity_days: 365`)",
        ),
        (
            "expected struct WorkloadFile",
            "expected workload settings (such as `nginx_replicas: 3`)",
        ),
        (
            "expected struct HostFile",
            "expected a host's settings (such as `role: worker` and `address:`)",
        ),
        (
            "expected a YAML tag starting with '!'",
            "expected one word (such as `virtualbox`)",
        ),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u64", "expected a whole number"),
        (" as u128", ""),
        ("unit value", "nothing (an empty value)"),
    ] {
        m = m.replace(rust, words);
    }
    m
}

/// Errors about a value's content, as opposed to the YAML's shape.
fn is_data_error(message: &str) -> bool {
    ["invalid", "unknown", "missing", "expected", "duplicate"]
        .iter()
        .any(|w| message.contains(w))
        && !message.contains("did not find expected")
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

/// The `expected one of `a`, `b`` list in a serde message.
fn expected_fields(message: &str) -> Vec<String> {
    let Some(i) = message.find("expected") else {
        return Vec::new();
    };
    message[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

// ---------------------------------------------------------------------------
// Semantic validation: every problem is collected, then reported together.
// ---------------------------------------------------------------------------

fn host_addr(net: Ipv4Net, host: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + host)
}

/// Applies defaults and checks every rule, returning all problems at once.
pub fn resolve(file: &LabFile, source: LabSource) -> Result<Lab, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let provider = file.provider.unwrap_or_default();
    let is_static = provider == Provider::Static;
    let hosts = resolve_hosts(file, &source, &mut problems);

    let name = file.name.clone().unwrap_or_else(|| "kubelab".to_string());
    if !is_dns_label(&name) || name.len() > 40 {
        problems.push(Problem::new(
            "name",
            format!("{name:?} is not a valid lab name"),
            "use 1-40 lowercase letters, digits and '-', starting with a letter (it becomes part of VM and host names)",
        ));
    }

    let vm_box = resolve_box(&file.vm_box, is_static, crate::host::arch(), &mut problems);
    if !is_box_name(&vm_box.name) {
        problems.push(Problem::new(
            "box.name",
            format!("{:?} is not a box name", vm_box.name),
            "use a Vagrant box name such as bento/ubuntu-24.04: letters, digits, '.', '_' and '-', with one '/' between owner and box",
        ));
    }
    if let Some(version) = &vm_box.version
        && !is_box_version(version)
    {
        problems.push(Problem::new(
            "box.version",
            format!("{version:?} is not a box version"),
            "use a version such as 202502.21.0, or a constraint such as `>= 202502.21.0, < 202503`; leave it out for the newest",
        ));
    }

    let cidr = file
        .network
        .cidr
        .unwrap_or_else(|| "192.168.56.0/24".parse().expect("constant"));
    let cidr = cidr.trunc();
    let domain = file
        .network
        .domain
        .clone()
        .unwrap_or_else(|| "lan".to_string());
    if !is_domain(&domain) {
        problems.push(Problem::new(
            "network.domain",
            format!("{domain:?} is not a valid DNS domain"),
            "use dot-separated labels of lowercase letters, digits and '-', such as `lan` or `lab.example`",
        ));
    } else if let Some(special) = ["localhost", "local", "arpa"]
        .into_iter()
        .find(|tld| domain == *tld || domain.ends_with(&format!(".{tld}")))
    {
        problems.push(Problem::new(
            "network.domain",
            format!(
                "{domain:?} is under `.{special}`, which {}",
                match special {
                    "local" => "is multicast DNS (RFC 6762): hosts ask the local network, not dns0",
                    // dns0 serves the lab's reverse zone under in-addr.arpa:
                    // a forward zone there clashes with it, and bind9 would
                    // refuse it only once every VM had booted.
                    "arpa" => "holds the reverse zones (dns0 serves the lab's own under in-addr.arpa), not names",
                    _ => "always resolves to the loopback address (RFC 6761), never to the lab",
                }
            ),
            "use another domain, such as `lan` or `lab.example`",
        ));
    }
    let pod_cidr = file
        .network
        .pod_cidr
        .unwrap_or_else(|| "10.200.0.0/16".parse().expect("constant"));
    let service_cidr = file
        .network
        .service_cidr
        .unwrap_or_else(|| "10.32.0.0/24".parse().expect("constant"));
    let ssh_port_base = file.network.ssh_port_base.unwrap_or(2200);
    // VirtualBox's NAT resolver: it follows whatever DNS the host uses.
    let dns_forwarders = file
        .network
        .dns_forwarders
        .clone()
        .unwrap_or_else(|| vec![Ipv4Addr::new(10, 0, 2, 3)]);
    if dns_forwarders.is_empty() {
        problems.push(Problem::new(
            "network.dns_forwarders",
            "the list is empty, so dns0 could resolve nothing outside the lab",
            "list at least one resolver, such as 10.0.2.3 (VirtualBox's NAT resolver)",
        ));
    }

    let special_range = |net: Ipv4Net| {
        let a = net.network();
        if a.is_loopback() {
            Some("loopback (127.0.0.0/8)")
        } else if a.is_multicast() || u32::from(a) >= u32::from(Ipv4Addr::new(240, 0, 0, 0)) {
            Some("multicast or reserved (224.0.0.0/3)")
        } else if a.is_unspecified() || a.octets()[0] == 0 {
            Some("\"this network\" (0.0.0.0/8)")
        } else if a.is_link_local() {
            Some("link-local (169.254.0.0/16)")
        } else {
            None
        }
    };
    for (field, net) in [
        ("network.cidr", cidr),
        ("network.pod_cidr", pod_cidr),
        ("network.service_cidr", service_cidr),
    ] {
        if let Some(what) = special_range(net) {
            problems.push(Problem::new(
                field,
                format!("{net} is {what}: no network can be built there"),
                "use a private range, such as 192.168.56.0/24 for network.cidr, 10.200.0.0/16 for pods, 10.32.0.0/24 for services",
            ));
        }
    }
    // VirtualBox NAT: every VM's eth0 (10.0.2.15) and its DNS forwarder.
    let nat: Ipv4Net = "10.0.2.0/24".parse().expect("constant");
    if !is_static {
        for (field, net) in [
            ("network.cidr", cidr),
            ("network.pod_cidr", pod_cidr),
            ("network.service_cidr", service_cidr),
        ] {
            if net.contains(&nat.network()) || nat.contains(&net.network()) {
                problems.push(Problem::new(
                    field,
                    format!("{net} overlaps 10.0.2.0/24, VirtualBox's NAT network (every VM's first adapter, 10.0.2.15, and its DNS at 10.0.2.3)"),
                    "choose a range that does not contain 10.0.2.0/24, such as 10.200.0.0/16 for pods",
                ));
            }
        }
    }
    if cidr.prefix_len() > 29 {
        problems.push(Problem::new(
            "network.cidr",
            format!("{cidr} is too small for a lab"),
            "use a /24 such as 192.168.56.0/24",
        ));
    }
    if is_static && file.network.dns_forwarders.is_none() {
        warnings.push(Problem::new(
            "network.dns_forwarders",
            "not set, so dns0 forwards to 10.0.2.3, VirtualBox's NAT resolver, which your servers do not have",
            "set it to the resolvers your servers use, such as [192.168.1.1]",
        ));
    }
    if !is_static && !VIRTUALBOX_ALLOWED.contains(&cidr) {
        warnings.push(Problem::new(
            "network.cidr",
            format!("{cidr} is outside 192.168.56.0/21, the only host-only range VirtualBox >= 6.1.28 allows by default"),
            format!("add the line `* {cidr}` to /etc/vbox/networks.conf (create the file if needed), or use a /24 inside 192.168.56.0/21"),
        ));
    }
    for (path, net, other_path, other) in [
        ("network.pod_cidr", pod_cidr, "network.cidr", cidr),
        ("network.service_cidr", service_cidr, "network.cidr", cidr),
        (
            "network.service_cidr",
            service_cidr,
            "network.pod_cidr",
            pod_cidr,
        ),
    ] {
        if net.contains(&other.network()) || other.contains(&net.network()) {
            problems.push(Problem::new(
                path,
                format!("{net} overlaps {other_path} {other}"),
                format!("choose a range that shares no address with {other}"),
            ));
        }
    }
    if pod_cidr.prefix_len() > 16 {
        problems.push(Problem::new(
            "network.pod_cidr",
            format!("{pod_cidr} is too small: every worker takes a /24 out of it"),
            "use a /16 such as 10.200.0.0/16",
        ));
    }
    if service_cidr.prefix_len() > 28 {
        problems.push(Problem::new(
            "network.service_cidr",
            format!("{service_cidr} is too small for the cluster's services"),
            "use a /24 such as 10.32.0.0/24",
        ));
    }

    // Roles: counts, memory, cpus, addresses.
    let mut roles = Vec::new();
    for role in Role::ALL {
        let d = role.defaults();
        let (count, memory, cpus, first) = match role {
            Role::Dns => role_fields(&file.nodes.dns),
            Role::Etcd => role_fields(&file.nodes.etcd),
            Role::Controller => role_fields(&file.nodes.controller),
            Role::Worker => role_fields(&file.nodes.worker),
            Role::Registry => role_fields(&file.nodes.registry),
            Role::Lb => {
                let lb = &file.nodes.lb;
                (lb.count, lb.memory, lb.cpus, lb.first_address)
            }
        };
        let key = role.key();
        if is_static {
            // The hosts list decides the counts and addresses; a VM size
            // would mean nothing.
            // Except how many of the listed workers are in the lab: the
            // number `lab scale` changes, the first N in lab.yaml's order.
            for (field, set) in [
                ("count", count.is_some() && role != Role::Worker),
                ("memory", memory.is_some()),
                ("cpus", cpus.is_some()),
                ("first_address", first.is_some()),
            ] {
                if set {
                    problems.push(Problem::new(
                        format!("nodes.{key}.{field}"),
                        "is for VirtualBox labs; with provider: static the hosts list decides",
                        format!("remove nodes.{key}.{field}; list each {key} server under hosts: with `role: {key}`"),
                    ));
                }
            }
            let listed: Vec<&StaticHost> = hosts.iter().filter(|h| h.role == role).collect();
            let count = listed.len() as u32;
            if file.hosts.is_some()
                && (count < d.min_count
                    || count > d.max_count
                    || (role == Role::Etcd && count >= 1 && count.is_multiple_of(2)))
            {
                let message = if count < d.min_count {
                    format!(
                        "no host has role {key}: a lab needs at least {} {key} host{}",
                        d.min_count,
                        if d.min_count == 1 { "" } else { "s" }
                    )
                } else if count > d.max_count {
                    format!(
                        "{count} hosts have role {key}, more than kubelab supports ({})",
                        d.max_count
                    )
                } else {
                    format!(
                        "{count} hosts have role etcd, an even count: etcd needs a majority ({}) of members up, so {count} members survive no more failures than {}",
                        count / 2 + 1,
                        count - 1
                    )
                };
                let hint = if count < d.min_count {
                    format!("add a host with `role: {key}` to hosts")
                } else if count > d.max_count {
                    format!("list at most {} hosts with `role: {key}`", d.max_count)
                } else {
                    format!(
                        "list an odd number of etcd hosts: {} or {}",
                        count - 1,
                        count + 1
                    )
                };
                problems.push(Problem::new("hosts", message, hint));
            }
            let listed_count = count;
            let count = match (role, file.nodes.worker.count) {
                (Role::Worker, Some(wanted)) if file.hosts.is_some() => {
                    if wanted < d.min_count {
                        problems.push(Problem::new(
                            "nodes.worker.count",
                            format!("{wanted} is too few: a lab needs at least {} worker", d.min_count),
                            "set nodes.worker.count to 1 or more (it is how many of the worker hosts listed under hosts: are in the lab)",
                        ));
                    } else if wanted > listed_count {
                        problems.push(Problem::new(
                            "nodes.worker.count",
                            format!(
                                "{wanted} workers, but only {listed_count} host{} under hosts: {} role worker",
                                if listed_count == 1 { "" } else { "s" },
                                if listed_count == 1 { "has" } else { "have" }
                            ),
                            format!(
                                "list another server under hosts: with `role: worker`, or set nodes.worker.count to at most {listed_count}"
                            ),
                        ));
                    }
                    wanted.min(listed_count)
                }
                _ => listed_count,
            };
            roles.push(RoleSpec {
                role,
                count,
                memory: 0,
                cpus: 0,
                first_address: listed
                    .first()
                    .map(|h| h.address)
                    .unwrap_or_else(|| host_addr(cidr, d.first_host)),
            });
            continue;
        }
        let spec = RoleSpec {
            role,
            count: count.unwrap_or(d.count),
            memory: memory.unwrap_or(d.memory),
            cpus: cpus.unwrap_or(d.cpus),
            first_address: first.unwrap_or_else(|| host_addr(cidr, d.first_host)),
        };
        if spec.count < d.min_count {
            problems.push(Problem::new(
                format!("nodes.{key}.count"),
                format!(
                    "{} is too few: a lab needs at least {} {key} node{}",
                    spec.count,
                    d.min_count,
                    if d.min_count == 1 { "" } else { "s" }
                ),
                format!("set nodes.{key}.count to {} or more", d.min_count),
            ));
        } else if spec.count > d.max_count {
            problems.push(Problem::new(
                format!("nodes.{key}.count"),
                format!(
                    "{} is more than kubelab supports for {key} ({})",
                    spec.count, d.max_count
                ),
                format!("set nodes.{key}.count to at most {}", d.max_count),
            ));
        }
        if role == Role::Etcd && spec.count >= 1 && spec.count.is_multiple_of(2) {
            problems.push(Problem::new(
                "nodes.etcd.count",
                format!(
                    "{} is even: etcd needs a majority ({}) of members up, so {} members survive no more failures than {}",
                    spec.count,
                    spec.count / 2 + 1,
                    spec.count,
                    spec.count - 1
                ),
                format!("use an odd count: {} or {}", spec.count - 1, spec.count + 1),
            ));
        }
        if spec.memory < d.min_memory {
            problems.push(Problem::new(
                format!("nodes.{key}.memory"),
                format!(
                    "{} is below the minimum {} MB for a {key} node",
                    spec.memory, d.min_memory
                ),
                format!("set nodes.{key}.memory to {} or more", d.min_memory),
            ));
        }
        // More than any host kubelab runs on has (and than VirtualBox gives a VM).
        const MAX_MEMORY_MB: u32 = 1024 * 1024;
        if spec.memory > MAX_MEMORY_MB {
            problems.push(Problem::new(
                format!("nodes.{key}.memory"),
                format!(
                    "{} MB is more than any VM can have here (at most {MAX_MEMORY_MB} MB, 1 TiB)",
                    spec.memory
                ),
                format!(
                    "memory is in MB: set nodes.{key}.memory to {} for the default",
                    d.memory
                ),
            ));
        }
        if spec.cpus == 0 || spec.cpus > 32 {
            problems.push(Problem::new(
                format!("nodes.{key}.cpus"),
                format!("{} is not a usable CPU count", spec.cpus),
                "use 1 to 32",
            ));
        }
        roles.push(spec);
    }

    let lb_count = roles[Role::ALL.iter().position(|r| *r == Role::Lb).unwrap_or(0)].count;
    let vip = file
        .nodes
        .lb
        .vip
        .unwrap_or_else(|| host_addr(cidr, DEFAULT_VIP_HOST));

    if lb_count < 2 && file.nodes.lb.vip.is_some() {
        warnings.push(Problem::new(
            "nodes.lb.vip",
            format!("{vip} is not used: with {lb_count} load balancer there is no VIP, and api.{domain} is lb0's address"),
            "set nodes.lb.count to 2 or more for a VIP that keepalived moves between them, or remove nodes.lb.vip",
        ));
    }

    // Every address the lab uses, with the field that chose it.
    let mut taken: Vec<(Ipv4Addr, String)> = Vec::new();
    if lb_count >= 2 {
        taken.push((vip, "nodes.lb.vip".to_string()));
    }
    for (i, h) in hosts.iter().enumerate() {
        taken.push((h.address, format!("hosts[{i}].address ({})", h.name)));
    }
    for spec in roles.iter().filter(|_| !is_static) {
        let key = spec.role.key();
        for i in 0..spec.count {
            let addr = Ipv4Addr::from(u32::from(spec.first_address).saturating_add(i));
            taken.push((addr, format!("nodes.{key}.first_address ({key}{i})")));
        }
    }
    let host = host_addr(cidr, 1);
    let broadcast = cidr.broadcast();
    let mut reported_outside = std::collections::BTreeSet::new();
    // A network too small for a lab is said once above; every address in it
    // would only repeat it.
    let taken_checked: &[(Ipv4Addr, String)] = if cidr.prefix_len() > 29 { &[] } else { &taken };
    for (addr, field) in taken_checked {
        let field_path = field.split(' ').next().unwrap_or(field).to_string();
        if !cidr.contains(addr) || *addr == cidr.network() || *addr == broadcast {
            if reported_outside.insert(field_path.clone()) {
                let role_hint = if field_path == "nodes.lb.vip" {
                    Some(format!(
                        "use a free address inside {cidr}, such as {}",
                        usable_near(cidr, DEFAULT_VIP_HOST)
                    ))
                } else {
                    role_capacity_hint(&field_path, &roles, cidr)
                };
                problems.push(Problem::new(
                    field_path,
                    format!(
                        "{addr} ({}) is outside the usable addresses of network.cidr {cidr}",
                        field
                            .split_once(' ')
                            .map(|x| x.1.trim_matches(|c| c == '(' || c == ')'))
                            .unwrap_or("the VIP")
                    ),
                    role_hint.unwrap_or_else(|| {
                        format!(
                            "use an address between {} and {}",
                            host_addr(cidr, 2),
                            Ipv4Addr::from(u32::from(broadcast) - 1)
                        )
                    }),
                ));
            }
        } else if *addr == host && !is_static {
            problems.push(Problem::new(
                field_path,
                format!("{addr} is the hypervisor's own address on the host-only network"),
                format!(
                    "start at {} or later; .1 belongs to the host",
                    host_addr(cidr, 2)
                ),
            ));
        }
    }
    // Two users of one address.
    let mut sorted: Vec<&(Ipv4Addr, String)> = taken.iter().collect();
    sorted.sort_by_key(|(a, _)| *a);
    let mut capacity_reported = std::collections::BTreeSet::new();
    for pair in sorted.windows(2) {
        if pair[0].0 == pair[1].0 {
            let (a, b) = (&pair[0].1, &pair[1].1);
            let over_range = capacity_problem(b, a, &roles, vip, lb_count, &taken);
            if let Some(problem) = &over_range
                && !capacity_reported.insert(problem.path.clone())
            {
                continue;
            }
            let hint = if is_static {
                "each host needs its own address, and the VIP (nodes.lb.vip) one no host has"
            } else {
                "give each role a first_address whose range does not reach another role's"
            };
            problems.push(over_range.unwrap_or_else(|| {
                Problem::new(
                    b.split(' ').next().unwrap_or(b),
                    format!("{} is used twice: by {b} and by {a}", pair[0].0),
                    hint,
                )
            }));
        }
    }
    dedup_problems(&mut problems);

    let dhcp = host_addr(cidr, VBOX_DHCP_FIRST_HOST);
    if !is_static
        && cidr.prefix_len() <= 24
        && taken.iter().any(|(a, _)| *a >= dhcp && cidr.contains(a))
    {
        let fields: std::collections::BTreeSet<&str> = taken
            .iter()
            .filter(|(a, _)| *a >= dhcp && cidr.contains(a))
            .map(|(_, f)| f.split(' ').next().unwrap_or(f))
            .collect();
        warnings.push(Problem::new(
            fields.into_iter().collect::<Vec<_>>().join(", "),
            format!("addresses at or above {dhcp} collide with VirtualBox's default host-only DHCP server, which sits at .100 and leases .101-.254"),
            "keep node addresses below .100, or remove the DHCP server (`VBoxManage dhcpserver remove --network=HostInterfaceNetworking-vboxnet0`)",
        ));
    }

    // Workers each take a /24 out of the pod range.
    let worker_count = roles
        .iter()
        .find(|r| r.role == Role::Worker)
        .map(|r| r.count)
        .unwrap_or(0);
    if pod_cidr.prefix_len() <= 24 {
        let subnets = 1u64 << (24 - pod_cidr.prefix_len());
        if u64::from(worker_count) > subnets {
            problems.push(Problem::new(
                "nodes.worker.count",
                format!("{worker_count} workers need {worker_count} /24 pod ranges but network.pod_cidr {pod_cidr} holds {subnets}"),
                "lower the worker count or widen network.pod_cidr",
            ));
        }
    }
    let max_port_host = taken
        .iter()
        .map(|(a, _)| u32::from(*a) & 0xff)
        .max()
        .unwrap_or(0);
    if !is_static && (u32::from(ssh_port_base) + max_port_host > 65535 || ssh_port_base < 1024) {
        problems.push(Problem::new(
            "network.ssh_port_base",
            format!("{ssh_port_base} gives SSH ports outside 1024-65535"),
            "use a base such as 2200",
        ));
    }

    let etcd_source = file.artifacts.etcd.unwrap_or_default();
    let versions = resolve_versions(&file.versions, etcd_source, &mut problems);

    let certificate_validity_days = file
        .certificates
        .validity_days
        .unwrap_or(crate::pki::VALIDITY_DAYS);
    if !(1..=3650).contains(&certificate_validity_days) {
        problems.push(Problem::new(
            "certificates.validity_days",
            format!("{certificate_validity_days} is not a usable validity"),
            "use 1 to 3650 days (the default is 365)",
        ));
    }

    let nginx_replicas = file.workload.nginx_replicas.unwrap_or(3);
    if nginx_replicas == 0 || nginx_replicas > 100 {
        problems.push(Problem::new(
            "workload.nginx_replicas",
            format!("{nginx_replicas} is not a usable replica count"),
            "use 1 to 100 (kubelab spreads them over the workers)",
        ));
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Lab {
        name,
        source,
        provider,
        vm_box,
        network: Network {
            cidr,
            domain,
            pod_cidr,
            service_cidr,
            ssh_port_base,
            dns_forwarders,
        },
        roles,
        vip,
        versions,
        etcd_source,
        kube_proxy_mode: file.kube_proxy.mode.unwrap_or_default(),
        certificate_validity_days,
        nginx_replicas,
        hosts,
        warnings,
    })
}

/// `hosts:` of a `provider: static` lab: names, SSH settings and key files.
/// Counts and addresses are checked with the rest of the lab.
/// The box, chosen for the host's architecture and pinned: a box's newest
/// version may have no VirtualBox build (platform::DEFAULT_BOXES). On an
/// arm64 host a box known to have no VirtualBox arm64 build is refused with
/// the choices, never booted.
fn resolve_box(
    file: &BoxFile,
    is_static: bool,
    arch: crate::platform::Arch,
    problems: &mut Vec<Problem>,
) -> BoxSpec {
    let default_box = crate::platform::default_box(arch);
    let box_name = file
        .name
        .clone()
        .unwrap_or_else(|| default_box.name.to_string());
    let vm_box = BoxSpec {
        version: file
            .version
            .clone()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| crate::platform::pinned_version(&box_name, arch).map(str::to_string)),
        name: box_name,
    };
    if vm_box.name.trim().is_empty() || vm_box.name.contains(char::is_whitespace) {
        problems.push(Problem::new(
            "box.name",
            format!("{:?} is not a box name", vm_box.name),
            format!("use a Vagrant box name such as {}", default_box.name),
        ));
    } else if !is_static
        && let crate::platform::BoxSupport::No { why } =
            crate::platform::box_support(&vm_box.name, vm_box.version.as_deref(), arch)
    {
        // Never boot an x86 box on an arm64 host: it fails with "VM session
        // was aborted" after the download.
        let field = if file.version.is_some() && vm_box.name == default_box.name {
            "box.version"
        } else {
            "box.name"
        };
        let choices: Vec<String> = crate::platform::DEFAULT_BOXES
            .iter()
            .filter(|b| b.arch == arch)
            .map(|b| format!("{} (version {})", b.name, b.version))
            .collect();
        problems.push(Problem::new(
            field,
            format!(
                "{}{} has no VirtualBox build for this {arch} host: {why}",
                vm_box.name,
                vm_box.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default()
            ),
            format!(
                "leave box.name and box.version out to get the {arch} default, or choose a box with a VirtualBox {arch} build: {}",
                choices.join(", ")
            ),
        ));
    }

    vm_box
}

fn resolve_hosts(
    file: &LabFile,
    source: &LabSource,
    problems: &mut Vec<Problem>,
) -> Vec<StaticHost> {
    let is_static = file.provider == Some(Provider::Static);
    let Some(listed) = &file.hosts else {
        if is_static {
            problems.push(Problem::new(
                "hosts",
                "missing: provider: static needs the list of servers",
                "list each server under hosts: with its role, address, ssh_user and ssh_key (see README, \"Your own servers\")",
            ));
        }
        return Vec::new();
    };
    if !is_static {
        problems.push(Problem::new(
            "hosts",
            "is only for provider: static; this lab makes VirtualBox VMs",
            "set `provider: static` to provision these servers, or remove hosts:",
        ));
        return Vec::new();
    }
    let base = source.dir();
    let mut per_role: std::collections::BTreeMap<Role, u32> = Default::default();
    let mut names: std::collections::BTreeMap<String, usize> = Default::default();
    let mut out = Vec::new();
    for (i, h) in listed.iter().enumerate() {
        let at = |field: &str| format!("hosts[{i}].{field}");
        let index = per_role.entry(h.role).or_insert(0);
        let name = h
            .name
            .clone()
            .unwrap_or_else(|| format!("{}{index}", h.role.key()));
        *index += 1;
        if !is_dns_label(&name) {
            problems.push(Problem::new(
                at("name"),
                format!("{name:?} is not a valid node name"),
                "use lowercase letters, digits and '-', starting with a letter (it becomes the hostname and the Kubernetes node name)",
            ));
        } else if matches!(name.as_str(), "api" | "localhost") {
            // `api` is the API endpoint's record in the lab zone and the
            // hosts block; `localhost` is every machine's own loopback.
            problems.push(Problem::new(
                at("name"),
                format!(
                    "{name:?} is reserved: {}",
                    if name == "api" {
                        "api.<domain> is the lab's API endpoint (the VIP or lb0), so a host of that name would share its DNS record"
                    } else {
                        "it names every machine's own loopback address"
                    }
                ),
                "give the host another name (leave name out for <role><N>)",
            ));
        } else if let Some(first) = names.insert(name.clone(), i) {
            problems.push(Problem::new(
                at("name"),
                format!("{name:?} is also the name of hosts[{first}]"),
                "give every host its own name (leave name out for <role><N>)",
            ));
        }
        if let Some(interface) = &h.interface
            && !is_interface(interface)
        {
            problems.push(Problem::new(
                at("interface"),
                format!("{interface:?} is not a network interface name"),
                format!("name the interface holding {} on the host, as `ip -4 -o addr show` prints it (such as eth1)", h.address),
            ));
        }
        let alias = h.ssh_alias.clone();
        if let Some(a) = &alias
            && !is_ssh_word(a)
        {
            problems.push(Problem::new(
                at("ssh_alias"),
                format!("{a:?} is not an ssh_config Host name"),
                "use a `Host` of your ~/.ssh/config (letters, digits, '.', '_' and '-', not starting with '-'), or remove ssh_alias and give ssh_user and ssh_key",
            ));
        }
        let user = h.ssh_user.clone();
        match &user {
            Some(u) if !is_ssh_word(u) => {
                problems.push(Problem::new(
                    at("ssh_user"),
                    format!("{u:?} is not a user name"),
                    "name the user kubelab logs in as (letters, digits, '.', '_' and '-', not starting with '-'); it needs passwordless sudo",
                ));
            }
            None if alias.is_none() => problems.push(Problem::new(
                at("ssh_user"),
                "missing: kubelab needs the user to log in as",
                "add ssh_user (a user with passwordless sudo), or ssh_alias naming a Host of your ~/.ssh/config that sets User",
            )),
            _ => {}
        }
        if h.ssh_port == Some(0) {
            problems.push(Problem::new(
                at("ssh_port"),
                "0 is not a port",
                "use the port sshd listens on, usually 22",
            ));
        }
        let key = match &h.ssh_key {
            None => {
                if alias.is_none() {
                    problems.push(Problem::new(
                        at("ssh_key"),
                        "missing: kubelab logs in with a key, never a password",
                        "add ssh_key: the private key whose public half is in the user's ~/.ssh/authorized_keys on the host, or ssh_alias naming a Host of your ~/.ssh/config",
                    ));
                }
                None
            }
            Some(raw) => check_key(raw, &base, &at("ssh_key"), problems),
        };
        out.push(StaticHost {
            name,
            role: h.role,
            address: h.address,
            interface: h.interface.clone(),
            ssh: StaticSsh {
                user,
                port: h.ssh_port,
                key,
                alias,
            },
        });
    }
    out
}

fn meta_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0)
}

/// A private key path as written: `~/` is the home directory, a relative
/// path is relative to lab.yaml's folder. It must exist and be private.
fn check_key(raw: &str, base: &Path, field: &str, problems: &mut Vec<Problem>) -> Option<PathBuf> {
    if raw.trim().is_empty() {
        problems.push(Problem::new(
            field,
            "is empty",
            "give the path of the private key kubelab logs in with, such as ~/.ssh/id_ed25519",
        ));
        return None;
    }
    let path = match raw.strip_prefix("~/") {
        Some(rest) => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(rest),
            None => PathBuf::from(raw),
        },
        None => base.join(raw),
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(&path) {
        Err(_) => problems.push(Problem::new(
            field,
            format!("{raw:?}: no such file ({})", path.display()),
            "give the path of an existing private key (relative paths start at lab.yaml's folder)",
        )),
        Ok(meta) if !meta.is_file() => problems.push(Problem::new(
            field,
            format!("{raw:?} is not a file ({})", path.display()),
            "give the path of the private key file itself",
        )),
        Ok(meta) if meta.len() == 0 => problems.push(Problem::new(
            field,
            format!("{raw:?} is empty ({})", path.display()),
            "give the path of the private key kubelab logs in with, such as ~/.ssh/id_ed25519",
        )),
        Ok(_)
            if nix::unistd::access(&path, nix::unistd::AccessFlags::R_OK).is_err()
                || (meta_mode(&path) & 0o400 == 0) =>
        {
            problems.push(Problem::new(
                field,
                format!("{raw:?} cannot be read by you ({})", path.display()),
                format!(
                    "chmod 600 {} (and own it as the user running kubelab)",
                    path.display()
                ),
            ))
        }
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => problems.push(Problem::new(
            field,
            format!(
                "{raw:?} has mode {:04o}: other users can read it, and ssh refuses such a key",
                meta.permissions().mode() & 0o7777
            ),
            format!("chmod 600 {}", path.display()),
        )),
        Ok(_) => {}
    }
    Some(path)
}

fn role_fields(r: &RoleFile) -> (Option<u32>, Option<u32>, Option<u32>, Option<Ipv4Addr>) {
    (r.count, r.memory, r.cpus, r.first_address)
}

/// When `later` collides because a role's range runs into the next user of the
/// address space, say how many nodes fit instead of just "used twice".
fn capacity_problem(
    later: &str,
    earlier: &str,
    roles: &[RoleSpec],
    vip: Ipv4Addr,
    lb_count: u32,
    taken: &[(Ipv4Addr, String)],
) -> Option<Problem> {
    let key_of = |field: &str| {
        field
            .strip_prefix("nodes.")
            .and_then(|rest| rest.split('.').next())
            .map(str::to_string)
    };
    // Find which side's range grew into the other: the role whose first address
    // is lower is the one that ran out of room.
    let candidates = [key_of(later), key_of(earlier)];
    let mut best: Option<(&RoleSpec, Ipv4Addr)> = None;
    for key in candidates.iter().flatten() {
        let Some(spec) = roles.iter().find(|r| r.role.key() == key) else {
            continue;
        };
        // The first address above this role's start that someone else owns.
        let mut limit: Option<Ipv4Addr> = None;
        let mut others: Vec<Ipv4Addr> = roles
            .iter()
            .filter(|r| r.role != spec.role && r.count > 0)
            .map(|r| r.first_address)
            .collect();
        if lb_count >= 2 {
            others.push(vip);
        }
        for addr in others {
            if addr > spec.first_address && limit.is_none_or(|l| addr < l) {
                limit = Some(addr);
            }
        }
        if let Some(limit) = limit {
            let fit = u32::from(limit) - u32::from(spec.first_address);
            if spec.count > fit && best.is_none_or(|(b, _)| spec.first_address < b.first_address) {
                best = Some((spec, limit));
            }
        }
    }
    let (spec, limit) = best?;
    let key = spec.role.key();
    let fit = u32::from(limit) - u32::from(spec.first_address);
    let last = Ipv4Addr::from(u32::from(spec.first_address) + spec.count - 1);
    // Whoever owns the address the range ran into.
    let other = taken
        .iter()
        .find(|(a, f)| *a == limit && key_of(f).as_deref() != Some(key))
        .map(|(_, f)| f.as_str())
        .unwrap_or(later);
    let other_field = other.split(' ').next().unwrap_or(other);
    Some(Problem::new(
        format!("nodes.{key}.count"),
        format!(
            "{} {key} nodes need {} to {last}, but {limit} is {other}; at most {fit} fit from {}",
            spec.count, spec.first_address, spec.first_address
        ),
        format!(
            "lower nodes.{key}.count to {fit}, or move nodes.{key}.first_address or {other_field}"
        ),
    ))
}

/// `cidr`'s host `preferred` when that is a usable address of it (not the
/// network or broadcast address, not past the end), else its last usable one.
fn usable_near(cidr: Ipv4Net, preferred: u32) -> Ipv4Addr {
    let addr = host_addr(cidr, preferred);
    if cidr.contains(&addr) && addr != cidr.network() && addr != cidr.broadcast() {
        addr
    } else {
        Ipv4Addr::from(u32::from(cidr.broadcast()).saturating_sub(1))
    }
}

fn role_capacity_hint(field_path: &str, roles: &[RoleSpec], cidr: Ipv4Net) -> Option<String> {
    let key = field_path.strip_prefix("nodes.")?.split('.').next()?;
    let spec = roles.iter().find(|r| r.role.key() == key)?;
    if !cidr.contains(&spec.first_address) {
        return Some(format!(
            "use a first_address inside {cidr} (network.cidr), such as {}",
            usable_near(cidr, spec.role.defaults().first_host)
        ));
    }
    if spec.first_address == cidr.network() || spec.first_address == cidr.broadcast() {
        return Some(format!(
            "{} is {cidr}'s own {} address, which no host may use: start nodes.{key}.first_address at {} or later",
            spec.first_address,
            if spec.first_address == cidr.network() {
                "network"
            } else {
                "broadcast"
            },
            host_addr(cidr, 2)
        ));
    }
    let last_usable = u32::from(cidr.broadcast()) - 1;
    let fit = last_usable.saturating_sub(u32::from(spec.first_address)) + 1;
    Some(format!(
        "{} {key} nodes from {} run past the end of {cidr}: lower nodes.{key}.count to {fit} or move first_address",
        spec.count, spec.first_address
    ))
}

fn dedup_problems(problems: &mut Vec<Problem>) {
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert((p.path.clone(), p.message.clone())));
}

/// A lab name: a DNS label of at most 40 characters.
pub fn is_lab_name(s: &str) -> bool {
    is_dns_label(s) && s.len() <= 40
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_domain(s: &str) -> bool {
    s.len() <= 200
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        && s.split('.')
            .next_back()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
}

/// `versions:`: the row `kubernetes` picks (the newest by default), then each
/// override, which must be a release kubelab pins a published checksum for
/// (etcd from the distribution is not downloaded, so any version goes).
fn resolve_versions(
    v: &VersionsFile,
    etcd_source: ArtifactSource,
    problems: &mut Vec<Problem>,
) -> Versions {
    use crate::artifacts::{self, Component};
    let newest = &artifacts::RELEASES[0];
    let asked = v
        .kubernetes
        .clone()
        .unwrap_or_else(|| newest.minor.to_string());
    let (row, server) = match artifacts::release_for(&asked) {
        Ok(found) => found,
        Err((message, hint)) => {
            problems.push(Problem::new("versions.kubernetes", message, hint));
            (newest, newest.kubernetes[0])
        }
    };
    let mut overrides = Vec::new();
    let mut pick =
        |name: &str, value: &Option<String>, component: Option<Component>, default: &str| {
            let Some(value) = value else {
                return default.to_string();
            };
            let path = format!("versions.{name}");
            if !is_semver(value) {
                problems.push(Problem::new(
                &path,
                format!("{value:?} is not a MAJOR.MINOR.PATCH version"),
                format!(
                    "write it like {default} (no leading `v`), or leave it out to take the row's"
                ),
            ));
            } else if let Some(c) = component {
                let downloaded = !(c == Component::Etcd && etcd_source == ArtifactSource::Distro);
                if downloaded && artifacts::pin(c, value).is_none() {
                    let (message, hint) = artifacts::unpinned(c, value);
                    problems.push(Problem::new(&path, message, hint));
                }
            }
            if value != default {
                overrides.push(path);
            }
            value.clone()
        };
    let etcd = pick("etcd", &v.etcd, Some(Component::Etcd), row.etcd.version);
    let containerd = pick(
        "containerd",
        &v.containerd,
        Some(Component::Containerd),
        row.containerd.version,
    );
    let runc = pick("runc", &v.runc, Some(Component::Runc), row.runc.version);
    let cni_plugins = pick(
        "cni_plugins",
        &v.cni_plugins,
        Some(Component::CniPlugins),
        row.cni_plugins.version,
    );
    // An image tag: pulled from the registry, no digest to pin.
    let coredns = pick("coredns", &v.coredns, None, row.coredns);
    Versions {
        release: row.minor.to_string(),
        kubernetes: server.version.to_string(),
        etcd,
        containerd,
        runc,
        cni_plugins,
        crictl: row.crictl.version.to_string(),
        coredns,
        pause: row.pause.to_string(),
        overrides,
    }
}

/// A Vagrant box name: `owner/box` or a local `box`, each part letters,
/// digits, '.', '_' and '-', starting with a letter or digit. It is what the
/// Vagrantfile and `vagrant box` commands take, with nothing a shell or Ruby
/// would read specially.
fn is_box_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    s.len() <= 128
        && parts.len() <= 2
        && parts.iter().all(|p| {
            p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

/// A box version or Vagrant's constraint list: comma-separated items, each an
/// optional operator (`=`, `!=`, `>`, `<`, `>=`, `<=`, `~>`) and a version
/// of dot-separated parts (digits first, then letters or digits: `1.2.3.rc1`).
fn is_box_version(s: &str) -> bool {
    s.len() <= 100
        && s.split(',').all(|item| {
            let item = item.trim_matches(' ');
            let version = ["~>", ">=", "<=", "!=", "=", ">", "<"]
                .iter()
                .find_map(|op| item.strip_prefix(op))
                .unwrap_or(item)
                .trim_start_matches(' ');
            let mut parts = version.split('.');
            parts
                .next()
                .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        })
}

/// A user or ssh_config Host name as ssh's destination argument: nothing ssh
/// could read as an option (a leading '-') or a second `user@`, nothing a
/// shell or an inventory would split or quote.
fn is_ssh_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A Linux network interface name (at most 15 bytes), limited to what
/// systemd and `ip` print for real interfaces, so it is safe in a config line
/// or a shell word.
pub fn is_interface(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn is_semver(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
pub(crate) mod tests;
