//! Templates -> files. Every generated file has a named askama template under
//! provision/templates/, compiled into the binary. A render error is a bug:
//! config validation rejects anything a template could not express.

use std::path::Path;

use askama::Template;

use crate::config::Lab;
use crate::error::Result;
use crate::topology::Topology;

/// One generated file, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Path under the render directory: `host/...` for the hypervisor,
    /// `<node>/...` for a node's bundle.
    pub path: String,
    /// The node that receives it; `None` for the hypervisor.
    pub node: Option<String>,
    /// Unix permissions; 0o600 for anything secret.
    pub mode: u32,
    pub contents: String,
}

struct VagrantNode {
    name: String,
    address: String,
    ssh_port: u16,
    vm_name: String,
    memory_mb: u32,
    cpus: u32,
}

#[derive(Template)]
#[template(path = "Vagrantfile", escape = "none")]
struct VagrantfileTemplate<'a> {
    kubelab_version: &'a str,
    source: String,
    lab: &'a str,
    box_name: &'a str,
    box_version: Option<&'a str>,
    nodes: Vec<VagrantNode>,
}

/// The Vagrantfile for the whole lab, one `define` per VM.
pub fn vagrantfile(lab: &Lab, topo: &Topology) -> String {
    let nodes = topo
        .nodes
        .iter()
        .map(|n| VagrantNode {
            name: n.name.clone(),
            address: n.address.to_string(),
            ssh_port: n.ssh_port,
            vm_name: topo.vm_name(n),
            memory_mb: n.memory_mb,
            cpus: n.cpus,
        })
        .collect();
    VagrantfileTemplate {
        kubelab_version: env!("CARGO_PKG_VERSION"),
        source: source_label(lab),
        lab: &lab.name,
        box_name: &lab.vm_box.name,
        box_version: lab.vm_box.version.as_deref(),
        nodes,
    }
    .render()
    .unwrap_or_else(|e| panic!("rendering the Vagrantfile failed (a kubelab bug): {e}"))
}

struct HostsEntry {
    address: String,
    names: String,
}

#[derive(Template)]
#[template(path = "hosts.block", escape = "none")]
struct HostsBlockTemplate<'a> {
    lab: &'a str,
    source: String,
    entries: Vec<HostsEntry>,
}

/// The lab's block for the hypervisor's /etc/hosts, markers included, ending
/// in a newline.
pub fn hosts_block(lab: &Lab, topo: &Topology) -> String {
    let mut entries: Vec<HostsEntry> = topo
        .nodes
        .iter()
        .map(|n| HostsEntry {
            address: n.address.to_string(),
            names: format!("{} {}", n.fqdn, n.name),
        })
        .collect();
    entries.push(HostsEntry {
        address: topo.api.address.to_string(),
        names: topo.api.name.clone(),
    });
    let mut text = HostsBlockTemplate {
        lab: &lab.name,
        source: source_label(lab),
        entries,
    }
    .render()
    .unwrap_or_else(|e| panic!("rendering the hosts block failed (a kubelab bug): {e}"));
    text.push('\n');
    text
}

/// The lab file's path as the generated files mention it.
fn source_label(lab: &Lab) -> String {
    match &lab.source {
        crate::config::LabSource::File(p) => std::path::absolute(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string(),
        crate::config::LabSource::BuiltIn => "the built-in default lab".to_string(),
    }
}

/// Every file kubelab generates for this lab.
pub fn all(lab: &Lab, topo: &Topology) -> Vec<RenderedFile> {
    vec![
        RenderedFile {
            path: "host/Vagrantfile".to_string(),
            node: None,
            mode: 0o644,
            contents: vagrantfile(lab, topo),
        },
        RenderedFile {
            path: "host/hosts.block".to_string(),
            node: None,
            mode: 0o644,
            contents: hosts_block(lab, topo),
        },
    ]
}

/// The `MANIFEST` listing: one line per file with its node and mode.
pub fn manifest(files: &[RenderedFile]) -> String {
    let mut out = String::from("# path\tnode\tmode\n");
    for f in files {
        out.push_str(&format!(
            "{}\t{}\t{:04o}\n",
            f.path,
            f.node.as_deref().unwrap_or("host"),
            f.mode
        ));
    }
    out
}

/// Writes `files` and their MANIFEST under `dir`, with each file's mode.
pub fn write(dir: &Path, files: &[RenderedFile]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        crate::fsutil::write_atomic(&path, f.contents.as_bytes(), f.mode)?;
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))?;
    }
    crate::fsutil::write_atomic(&dir.join("MANIFEST"), manifest(files).as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, LabSource};

    fn lab(yaml: &str) -> Lab {
        config::parse(yaml, LabSource::BuiltIn).unwrap()
    }

    #[test]
    fn vagrantfile_default_lab() {
        let lab = config::builtin();
        insta::assert_snapshot!(vagrantfile(&lab, &Topology::new(&lab)));
    }

    #[test]
    fn vagrantfile_pins_box_version_when_set() {
        let lab = lab("box:\n  name: bento/debian-12\n  version: 202502.21.0\n");
        let text = vagrantfile(&lab, &Topology::new(&lab));
        assert!(text.contains("config.vm.box = \"bento/debian-12\""));
        assert!(text.contains("config.vm.box_version = \"202502.21.0\""));
    }

    #[test]
    fn provider_settings_stay_inside_each_define() {
        // The 2016 lab set memory once for all VMs; here every VM has its own.
        let lab = lab("nodes:\n  worker:\n    count: 2\n    memory: 3072\n");
        let text = vagrantfile(&lab, &Topology::new(&lab));
        let worker1 = text.split("config.vm.define \"worker1\"").nth(1).unwrap();
        let worker1 = worker1.split("config.vm.define").next().unwrap();
        assert!(worker1.contains("vb.memory = 3072"));
        assert!(worker1.contains("vb.name = \"kubelab-kubelab-worker1\""));
        assert!(worker1.contains("host: 2231,"));
        let dns = text.split("config.vm.define \"dns0\"").nth(1).unwrap();
        let dns = dns.split("config.vm.define").next().unwrap();
        assert!(dns.contains("vb.memory = 384"));
    }

    #[test]
    fn hosts_block_default_lab() {
        let lab = config::builtin();
        insta::assert_snapshot!(hosts_block(&lab, &Topology::new(&lab)));
    }
}
