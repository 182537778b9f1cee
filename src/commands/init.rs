//! `kubelab init`: writes a lab.yaml sized to this host.

use std::path::Path;

use crate::cli::InitArgs;
use crate::config::{self, LabSource, Role};
use crate::error::{Error, Result};
use crate::lab::{DEFAULT_LAB_FILE, load_lab};
use crate::printer::Printer;
use crate::settings::Settings;
use crate::{host, yaml_edit};

pub(super) fn init(
    path: Option<&Path>,
    args: &InitArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<()> {
    let path = path.unwrap_or(Path::new(DEFAULT_LAB_FILE));
    if path.exists() && !args.force {
        return Err(Error::usage(
            format!("{} already exists; not overwriting it", path.display()),
            "pass --force to replace it with the default lab (your edits are lost), or edit it",
        ));
    }
    let host_mb = host::memory_mb(settings);
    let (mut text, changes) = sized_default_lab(host_mb);
    let _editing = crate::lab::owner::init_locks(path)?;
    // From picking a free network to recording the lab: one init at a time,
    // so two never take the same network.
    let _registry = settings.host_lock()?;
    crate::registry::check_folder(&settings.registry, path)?;
    if let Some(name) = &args.name {
        if !config::is_lab_name(name) {
            return Err(Error::usage(
                format!("--name {name:?} is not a valid lab name"),
                "use 1-40 lowercase letters, digits and '-', starting with a letter and not ending with '-' (it becomes part of VM and host names), such as `lab2`",
            ));
        }
        let registry = crate::registry::load(&settings.registry)?;
        let dir = std::path::absolute(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
        let (cidr, ssh_port_base) = crate::registry::next_free(&registry, &dir)?;
        text = named_lab(&text, name, cidr, ssh_port_base);
        // A bad name fails here, before anything is written.
        crate::lab::parse(&text, LabSource::File(path.to_path_buf()))?;
        printer.info(format!(
            "lab {name}: network {cidr}, domain {name}.lan, SSH ports from {ssh_port_base} (free among the labs in {})",
            settings.registry.display()
        ));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(parent)?;
    }
    crate::fsutil::write_keeping(path, text.as_bytes(), 0o644)?;
    for change in &changes {
        printer.info(format!("lowered {change}"));
    }
    let loaded = load_lab(Some(path), printer)?;
    if args.name.is_none() {
        crate::registry::init_notes(&settings.registry, &loaded)?
            .iter()
            .for_each(|n| printer.info(n));
    }
    crate::registry::record(
        &settings.registry,
        crate::registry::Entry::of(&loaded, crate::registry::LabState::Defined),
    )?;
    let lab_flag = if path == Path::new(DEFAULT_LAB_FILE) {
        String::new()
    } else {
        let shown = path.display().to_string();
        // Quoted for a shell when it needs it.
        if shown
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
        {
            format!(" --lab {shown}")
        } else {
            format!(" --lab '{}'", shown.replace('\'', "'\\''"))
        }
    };
    printer.info(format!(
        "wrote {}; next: `kubelab{lab_flag} lab plan` to see what it makes",
        path.display()
    ));
    Ok(())
}

/// The default lab text renamed to `name`, on `cidr` (every address moved
/// to the same offset inside it), domain `<name>.lan` and `ssh_port_base`.
pub(super) fn named_lab(
    text: &str,
    name: &str,
    cidr: ipnet::Ipv4Net,
    ssh_port_base: u16,
) -> String {
    let builtin = crate::lab::builtin();
    let moved = |addr: std::net::Ipv4Addr| {
        let offset = u32::from(addr) - u32::from(builtin.network.cidr.network());
        std::net::Ipv4Addr::from(u32::from(cidr.network()) + offset).to_string()
    };
    let mut edits: Vec<(Vec<&str>, String)> = vec![
        (vec!["name"], name.to_string()),
        (vec!["network", "cidr"], cidr.to_string()),
        (vec!["network", "domain"], format!("{name}.lan")),
        (vec!["network", "ssh_port_base"], ssh_port_base.to_string()),
        (vec!["nodes", "lb", "vip"], moved(builtin.vip)),
    ];
    for role in &builtin.roles {
        edits.push((
            vec!["nodes", role.role.key(), "first_address"],
            moved(role.first_address),
        ));
    }
    let mut text = text.to_string();
    for (path, value) in edits {
        if let Some(edited) = yaml_edit::set_scalar(&text, &path, &value) {
            text = edited;
        }
    }
    text
}

/// The default lab text, with memory lowered to fit `host_mb` (minus what the
/// host keeps for itself). Returns the text and what was changed.
pub fn sized_default_lab(host_mb: Option<u64>) -> (String, Vec<String>) {
    let mut text = config::DEFAULT_LAB_YAML.to_string();
    let Some(host_mb) = host_mb else {
        return (text, Vec::new());
    };
    let budget = host_mb.saturating_sub(host::HOST_RESERVE_MB);
    let lab = crate::lab::builtin();
    let mut memory: Vec<(Role, u32, u32)> = lab
        .roles
        .iter()
        .map(|r| (r.role, r.count, r.memory))
        .collect();
    let total = |m: &[(Role, u32, u32)]| {
        m.iter()
            .map(|(_, c, mem)| u64::from(*c) * u64::from(*mem))
            .sum::<u64>()
    };
    let original = total(&memory);
    if original <= budget {
        return (text, Vec::new());
    }
    // Workers first (they have the most slack), then every other role.
    let order = [
        Role::Worker,
        Role::Controller,
        Role::Etcd,
        Role::Lb,
        Role::Dns,
        Role::Registry,
    ];
    for role in order {
        if total(&memory) <= budget {
            break;
        }
        if let Some(entry) = memory.iter_mut().find(|(r, _, _)| *r == role) {
            entry.2 = role.defaults().min_memory;
        }
    }
    let mut changes = Vec::new();
    for ((role, _, before), (_, _, after)) in lab
        .roles
        .iter()
        .map(|r| (r.role, r.count, r.memory))
        .zip(memory.iter())
    {
        if before != *after {
            if let Some(edited) =
                yaml_edit::set_scalar(&text, &["nodes", role.key(), "memory"], &after.to_string())
            {
                text = edited;
            }
            changes.push(format!(
                "nodes.{}.memory from {before} to {after} MB",
                role.key()
            ));
        }
    }
    let now = total(&memory);
    let verdict = if now <= budget {
        format!("the lab's {now} MB fit")
    } else {
        format!(
            "even at the minimums the lab needs {now} MB, more than fits; `kubelab lab plan` shows the sum"
        )
    };
    let header = format!(
        "# kubelab init: this host has {host_mb} MB of RAM ({} MB kept for the host).\n# Lowered to fit: {}; {verdict}.\n#\n",
        host::HOST_RESERVE_MB,
        changes.join(", ")
    );
    text.insert_str(0, &header);
    (text, changes)
}
