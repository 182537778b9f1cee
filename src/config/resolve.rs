//! Defaults applied into a [`Lab`], with the rules each field has on its own:
//! the name, the box, the domain and resolvers, each role's count and size,
//! a static lab's hosts and their key files, the versions, the certificates'
//! validity and the workload. The networks' ranges and the concrete nodes
//! are `validate`'s rules.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::words::{
    is_box_name, is_box_version, is_dns_label, is_domain, is_interface, is_semver, is_ssh_word,
};
use super::{
    ArtifactSource, BoxFile, BoxSpec, DEFAULT_VIP_HOST, HostFile, Lab, LabFile, LabSource, Network,
    NetworkFile, NodesFile, Problem, Provider, Role, RoleSpec, StaticHost, StaticSsh,
    VALIDITY_DAYS, Versions, VersionsFile, host_addr, networks,
};

/// A lab with every default applied, and what is wrong with its fields.
pub(crate) struct Resolved {
    /// Its `warnings` are the fields' own; `validate` adds the nodes'.
    pub lab: Lab,
    /// The problems of `hosts:` and of the sections up to `nodes:`.
    pub problems: Vec<Problem>,
    /// The problems of the sections after `nodes:` (versions, certificates,
    /// workload): reported after the nodes' addresses, in lab.yaml's order.
    pub later: Vec<Problem>,
}

/// Applies the defaults and checks each field; the problems of the concrete
/// nodes come from `validate::nodes` over the result.
pub(crate) fn resolve(file: &LabFile, source: LabSource) -> Resolved {
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
    check_box_words(&vm_box, &mut problems);
    let network = resolve_network(&file.network, provider, &mut problems, &mut warnings);
    let roles = resolve_roles(file, &hosts, network.cidr, &mut problems);

    let lb_count = roles[Role::ALL.iter().position(|r| *r == Role::Lb).unwrap_or(0)].count;
    let vip = file
        .nodes
        .lb
        .vip
        .unwrap_or_else(|| host_addr(network.cidr, DEFAULT_VIP_HOST));
    if lb_count < 2 && file.nodes.lb.vip.is_some() {
        warnings.push(Problem::new(
            "nodes.lb.vip",
            format!("{vip} is not used: with {lb_count} load balancer there is no VIP, and api.{} is lb0's address", network.domain),
            "set nodes.lb.count to 2 or more for a VIP that keepalived moves between them, or remove nodes.lb.vip",
        ));
    }

    let mut later = Vec::new();
    let etcd_source = file.artifacts.etcd.unwrap_or_default();
    let versions = resolve_versions(&file.versions, etcd_source, &mut later);

    let certificate_validity_days = file.certificates.validity_days.unwrap_or(VALIDITY_DAYS);
    if !(1..=3650).contains(&certificate_validity_days) {
        later.push(Problem::new(
            "certificates.validity_days",
            format!("{certificate_validity_days} is not a usable validity"),
            "use 1 to 3650 days (the default is 365)",
        ));
    }

    let nginx_replicas = file.workload.nginx_replicas.unwrap_or(3);
    if nginx_replicas == 0 || nginx_replicas > 100 {
        later.push(Problem::new(
            "workload.nginx_replicas",
            format!("{nginx_replicas} is not a usable replica count"),
            "use 1 to 100 (kubelab spreads them over the workers)",
        ));
    }

    let lab = Lab {
        name,
        source,
        provider,
        vm_box,
        network,
        roles,
        vip,
        versions,
        etcd_source,
        kube_proxy_mode: file.kube_proxy.mode.unwrap_or_default(),
        certificate_validity_days,
        nginx_replicas,
        hosts,
        warnings,
    };
    Resolved {
        lab,
        problems,
        later,
    }
}

/// `box.name` and `box.version` reach the Vagrantfile: a strict grammar.
fn check_box_words(vm_box: &BoxSpec, problems: &mut Vec<Problem>) {
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
}

/// `network:`: the defaults, the domain and the resolvers, then the ranges
/// (`validate::networks`).
fn resolve_network(
    file: &NetworkFile,
    provider: Provider,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Network {
    let cidr = file
        .cidr
        .unwrap_or_else(|| "192.168.56.0/24".parse().expect("constant"));
    let cidr = cidr.trunc();
    let domain = file.domain.clone().unwrap_or_else(|| "lan".to_string());
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
        .pod_cidr
        .unwrap_or_else(|| "10.200.0.0/16".parse().expect("constant"));
    let service_cidr = file
        .service_cidr
        .unwrap_or_else(|| "10.32.0.0/24".parse().expect("constant"));
    let ssh_port_base = file.ssh_port_base.unwrap_or(2200);
    // VirtualBox's NAT resolver: it follows whatever DNS the host uses.
    let dns_forwarders = file
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
    if provider == Provider::Static && file.dns_forwarders.is_none() {
        warnings.push(Problem::new(
            "network.dns_forwarders",
            "not set, so dns0 forwards to 10.0.2.3, VirtualBox's NAT resolver, which your servers do not have",
            "set it to the resolvers your servers use, such as [192.168.1.1]",
        ));
    }
    let network = Network {
        cidr,
        domain,
        pod_cidr,
        service_cidr,
        ssh_port_base,
        dns_forwarders,
    };
    networks::networks(&network, provider, problems, warnings);
    network
}

/// What `nodes.<role>` sets.
#[derive(Debug, Clone, Copy)]
struct RoleFields {
    count: Option<u32>,
    memory: Option<u32>,
    cpus: Option<u32>,
    first_address: Option<Ipv4Addr>,
}

fn role_fields(nodes: &NodesFile, role: Role) -> RoleFields {
    let r = match role {
        Role::Dns => &nodes.dns,
        Role::Etcd => &nodes.etcd,
        Role::Controller => &nodes.controller,
        Role::Worker => &nodes.worker,
        Role::Registry => &nodes.registry,
        Role::Lb => {
            let lb = &nodes.lb;
            return RoleFields {
                count: lb.count,
                memory: lb.memory,
                cpus: lb.cpus,
                first_address: lb.first_address,
            };
        }
    };
    RoleFields {
        count: r.count,
        memory: r.memory,
        cpus: r.cpus,
        first_address: r.first_address,
    }
}

/// `nodes:`: every role in [`Role::ALL`] order, sized by lab.yaml and the
/// defaults, or (provider: static) counted from the hosts list.
fn resolve_roles(
    file: &LabFile,
    hosts: &[StaticHost],
    cidr: Ipv4Net,
    problems: &mut Vec<Problem>,
) -> Vec<RoleSpec> {
    let is_static = file.provider == Some(Provider::Static);
    let mut roles = Vec::new();
    for role in Role::ALL {
        let fields = role_fields(&file.nodes, role);
        roles.push(if is_static {
            static_role(file, role, fields, hosts, cidr, problems)
        } else {
            vm_role(role, fields, cidr, problems)
        });
    }
    roles
}

/// A static lab's role: the hosts list decides the count and addresses, and
/// a VM size would mean nothing. Except how many of the listed workers are in
/// the lab: the number `lab scale` changes, the first N in lab.yaml's order.
fn static_role(
    file: &LabFile,
    role: Role,
    fields: RoleFields,
    hosts: &[StaticHost],
    cidr: Ipv4Net,
    problems: &mut Vec<Problem>,
) -> RoleSpec {
    let d = role.defaults();
    let key = role.key();
    for (field, set) in [
        ("count", fields.count.is_some() && role != Role::Worker),
        ("memory", fields.memory.is_some()),
        ("cpus", fields.cpus.is_some()),
        ("first_address", fields.first_address.is_some()),
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
    RoleSpec {
        role,
        count,
        memory: 0,
        cpus: 0,
        first_address: listed
            .first()
            .map(|h| h.address)
            .unwrap_or_else(|| host_addr(cidr, d.first_host)),
    }
}

/// A VirtualBox lab's role: lab.yaml's count, memory, cpus and first address,
/// or the defaults, each within kubelab's limits.
fn vm_role(role: Role, fields: RoleFields, cidr: Ipv4Net, problems: &mut Vec<Problem>) -> RoleSpec {
    let d = role.defaults();
    let key = role.key();
    let spec = RoleSpec {
        role,
        count: fields.count.unwrap_or(d.count),
        memory: fields.memory.unwrap_or(d.memory),
        cpus: fields.cpus.unwrap_or(d.cpus),
        first_address: fields
            .first_address
            .unwrap_or_else(|| host_addr(cidr, d.first_host)),
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
    spec
}

/// The box, chosen for the host's architecture and pinned: a box's newest
/// version may have no VirtualBox build (platform::DEFAULT_BOXES). On an
/// arm64 host a box known to have no VirtualBox arm64 build is refused with
/// the choices, never booted.
pub(super) fn resolve_box(
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

/// `hosts:` of a `provider: static` lab: names, SSH settings and key files.
/// Counts and addresses are checked with the rest of the lab.
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
        let ssh = host_ssh(i, h, &base, problems);
        out.push(StaticHost {
            name,
            role: h.role,
            address: h.address,
            interface: h.interface.clone(),
            ssh,
        });
    }
    out
}

/// A static host's SSH settings: an ssh_config alias, or a user and a key
/// (a port of its own is kept).
fn host_ssh(i: usize, h: &HostFile, base: &Path, problems: &mut Vec<Problem>) -> StaticSsh {
    let at = |field: &str| format!("hosts[{i}].{field}");
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
        Some(raw) => check_key(raw, base, &at("ssh_key"), problems),
    };
    StaticSsh {
        user,
        port: h.ssh_port,
        key,
        alias,
    }
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

/// `versions:`: the row `kubernetes` picks (the newest by default), then each
/// override, which must be a release kubelab pins a published checksum for
/// (etcd from the distribution is not downloaded, so any version goes).
fn resolve_versions(
    v: &VersionsFile,
    etcd_source: ArtifactSource,
    problems: &mut Vec<Problem>,
) -> Versions {
    use crate::releases::{self, Component};
    let newest = &releases::RELEASES[0];
    let asked = v
        .kubernetes
        .clone()
        .unwrap_or_else(|| newest.minor.to_string());
    let (row, server) = match releases::release_for(&asked) {
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
                if downloaded && releases::pin(c, value).is_none() {
                    let (message, hint) = releases::unpinned(c, value);
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
