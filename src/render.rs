//! Templates -> files. Every generated file has a named askama template under
//! provision/templates/, compiled into the binary. A render error is a bug:
//! config validation rejects anything a template could not express.

mod dns;
mod etcd;
mod kube;
mod lb;

use dns::*;
use etcd::*;
use lb::*;
#[cfg(test)]
mod upstream_facts;
pub use kube::admin_kubeconfig;
pub use kube::{ADMIN_KUBECTL, NGINX_NODE_PORT, cluster_dns_ip};

use std::path::Path;

use askama::Template;

use std::net::Ipv4Addr;

use crate::config::{Lab, Role};
use crate::error::Result;
use crate::pki::{KeyPem, Pki};
use crate::topology::{Node, Phase, Topology};

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
    /// The phase whose step places it on its node; `None` for the
    /// hypervisor's files. Set by the render function that made it.
    pub phase: Option<Phase>,
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
    /// Comment-safe: see `comment_safe`.
    source: String,
    lab_comment: String,
    // The rest are Ruby string literals made by `ruby_literal`.
    box_name: String,
    box_version: Option<String>,
    group: String,
    nodes: Vec<VagrantNode>,
}

/// The Vagrantfile for the whole lab, one `define` per VM.
pub fn vagrantfile(lab: &Lab, topo: &Topology) -> String {
    let nodes = topo
        .nodes
        .iter()
        .map(|n| VagrantNode {
            name: ruby_literal(&n.name),
            address: ruby_literal(&n.address.to_string()),
            ssh_port: n.ssh_port,
            vm_name: ruby_literal(&topo.vm_name(n)),
            memory_mb: n.memory_mb,
            cpus: n.cpus,
        })
        .collect();
    VagrantfileTemplate {
        kubelab_version: env!("CARGO_PKG_VERSION"),
        source: source_label(lab),
        lab_comment: comment_safe(&lab.name),
        box_name: ruby_literal(&lab.vm_box.name),
        box_version: lab.vm_box.version.as_deref().map(ruby_literal),
        group: ruby_literal(&format!("/kubelab-{}", lab.name)),
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

/// The lab file's path as the generated files mention it, in a comment:
/// `comment_safe`, so a path holding a newline stays inside the comment.
fn source_label(lab: &Lab) -> String {
    match &lab.source {
        crate::config::LabSource::File(p) => comment_safe(
            &std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .to_string_lossy(),
        ),
        crate::config::LabSource::BuiltIn => "the built-in default lab".to_string(),
    }
}

/// `s` as one line of plain text for a comment (Ruby, /etc/hosts): control
/// characters (newline, CR, NUL, ...) and Unicode line or paragraph
/// separators become escapes such as `\n`, and a backslash is doubled, so no
/// byte of `s` can end the comment and start code or a hosts entry.
pub fn comment_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// `s` as a single-quoted Ruby string literal. In single quotes Ruby reads
/// only `\\` and `\'` as escapes: no `#{}` interpolation, no `%x()`, and a
/// newline or NUL is just a character of the string, so nothing in `s` runs.
pub fn ruby_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if matches!(c, '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Every file kubelab generates for this lab: the hypervisor's, then each
/// node's bundle in topology order.
pub fn all(lab: &Lab, topo: &Topology, pki: &Pki) -> Vec<RenderedFile> {
    let mut files = vec![
        RenderedFile {
            path: "host/Vagrantfile".to_string(),
            node: None,
            mode: 0o644,
            contents: vagrantfile(lab, topo),
            phase: None,
        },
        RenderedFile {
            path: "host/hosts.block".to_string(),
            node: None,
            mode: 0o644,
            contents: hosts_block(lab, topo),
            phase: None,
        },
    ];
    let host = kube::host_files(lab, topo, pki);
    files.extend(host.iter().cloned());
    let dns = topo.by_role(Role::Dns).next();
    for node in &topo.nodes {
        let mut bundle = Bundle::new(node);
        if let Some(dns) = dns {
            bundle.phase = Phase::Resolv;
            bundle.text(
                "etc/systemd/resolved.conf.d/kubelab.conf",
                resolved_dropin(lab, topo, dns),
            );
        }
        match node.role {
            Role::Dns => bundle.place(Phase::Dns, |b| dns_files(lab, topo, node, b)),
            Role::Lb => bundle.place(Phase::Lb, |b| lb_files(lab, topo, node, b)),
            Role::Etcd => bundle.place(Phase::Etcd, |b| etcd_files(lab, topo, node, pki, b)),
            Role::Controller => {
                bundle.place(Phase::Controllers, |b| {
                    controller_files(node, pki, b);
                    kube::controller_files(lab, topo, node, pki, b)
                });
                if node.index == 0 {
                    kube::cluster_files(topo, &host, &mut bundle);
                }
            }
            Role::Worker => {
                bundle.place(Phase::Workers, |b| {
                    worker_files(node, pki, b);
                    kube::worker_files(lab, topo, node, pki, b)
                });
            }
            Role::Registry => bundle.place(Phase::Registry, |b| kube::registry_files(lab, node, b)),
        }
        bundle.place(Phase::Routes, |b| kube::route_files(lab, topo, node, b));
        files.extend(bundle.files);
    }
    files
}

/// A node's files, each under `<node>/` with its absolute path on the node
/// and the phase that places it: every certificate and key goes with
/// `certs`, everything else with the phase being rendered.
struct Bundle<'a> {
    node: &'a Node,
    files: Vec<RenderedFile>,
    phase: Phase,
}

impl<'a> Bundle<'a> {
    fn new(node: &'a Node) -> Self {
        Bundle {
            node,
            files: Vec::new(),
            phase: Phase::Certs,
        }
    }

    /// Renders `files` as the given phase's.
    fn place(&mut self, phase: Phase, files: impl FnOnce(&mut Self)) {
        self.phase = phase;
        files(self);
    }

    fn add(&mut self, path_on_node: &str, mode: u32, contents: String) {
        // A certificate or key is placed by `certs`, whichever role uses it,
        // so the CA-signed material lands before any daemon reads it.
        let phase = if path_on_node.ends_with(".pem") {
            Phase::Certs
        } else {
            self.phase
        };
        self.files.push(RenderedFile {
            path: format!("{}/{path_on_node}", self.node.name),
            node: Some(self.node.name.clone()),
            mode,
            contents,
            phase: Some(phase),
        });
    }

    fn text(&mut self, path_on_node: &str, contents: String) {
        self.add(path_on_node, 0o644, contents);
    }

    fn secret(&mut self, path_on_node: &str, contents: &KeyPem) {
        self.add(path_on_node, 0o600, contents.expose().to_string());
    }

    /// A certificate and its key, as `<dir>/<stem>.pem` and `<stem>-key.pem`.
    fn cert(&mut self, dir: &str, stem: &str, pki: &Pki, name: &str) {
        let issued = pki
            .cert(name)
            .unwrap_or_else(|| panic!("the PKI has no {name} certificate (a kubelab bug)"));
        self.text(&format!("{dir}/{stem}.pem"), issued.cert_pem.clone());
        self.secret(&format!("{dir}/{stem}-key.pem"), &issued.key);
    }
}

/// Renders a node file; askama drops the template's final newline, so it is
/// put back (every config file here ends in one).
fn render_or_bug(template: &impl Template, what: &str) -> String {
    let mut text = template
        .render()
        .unwrap_or_else(|e| panic!("rendering {what} failed (a kubelab bug): {e}"));
    text.push('\n');
    text
}

// --- certificates for the Kubernetes nodes ----------------------------------

/// Where the control plane keeps its certificates, keys and encryption config.
const KUBE_PKI_DIR: &str = "var/lib/kubernetes";

#[derive(Template)]
#[template(path = "kubernetes/encryption-config.yaml", escape = "none")]
struct EncryptionConfigTemplate<'a> {
    key: &'a str,
}

fn controller_files(node: &Node, pki: &Pki, bundle: &mut Bundle) {
    let dir = KUBE_PKI_DIR;
    bundle.text(&format!("{dir}/ca.pem"), pki.cluster_ca.cert_pem.clone());
    // controller-manager signs kubelet CSRs with the cluster CA.
    bundle.secret(&format!("{dir}/ca-key.pem"), &pki.cluster_ca.key);
    bundle.text(&format!("{dir}/etcd-ca.pem"), pki.etcd_ca.cert_pem.clone());
    bundle.text(
        &format!("{dir}/front-proxy-ca.pem"),
        pki.front_proxy_ca.cert_pem.clone(),
    );
    for name in [
        "kube-apiserver",
        "apiserver-etcd-client",
        "apiserver-kubelet-client",
        "front-proxy-client",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        bundle.cert(dir, name, pki, name);
    }
    for component in ["kube-scheduler", "kube-controller-manager"] {
        bundle.cert(
            dir,
            &format!("{component}-serving"),
            pki,
            &format!("{}-{component}-serving", node.name),
        );
    }
    bundle.text(
        &format!("{dir}/service-accounts.pem"),
        pki.service_account_public_pem.clone(),
    );
    bundle.secret(
        &format!("{dir}/service-accounts-key.pem"),
        &pki.service_account_key,
    );
    let config = render_or_bug(
        &EncryptionConfigTemplate {
            key: pki.encryption_key.expose(),
        },
        "encryption-config.yaml",
    );
    bundle.secret(
        &format!("{dir}/encryption-config.yaml"),
        &KeyPem::new(config),
    );
}

fn worker_files(node: &Node, pki: &Pki, bundle: &mut Bundle) {
    bundle.text("var/lib/kubelet/ca.pem", pki.cluster_ca.cert_pem.clone());
    bundle.cert("var/lib/kubelet", "kubelet", pki, &node.name);
    // kube-proxy verifies the API with the cluster CA too.
    bundle.text("var/lib/kube-proxy/ca.pem", pki.cluster_ca.cert_pem.clone());
    bundle.cert("var/lib/kube-proxy", "kube-proxy", pki, "kube-proxy");
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
            crate::fsutil::create_dir_all_within(dir, parent)?;
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
    use crate::config::LabSource;
    use std::path::PathBuf;

    fn lab(yaml: &str) -> Lab {
        crate::lab::parse(yaml, LabSource::BuiltIn).unwrap()
    }

    #[test]
    fn vagrantfile_default_lab() {
        let lab = crate::lab::builtin();
        insta::assert_snapshot!(vagrantfile(&lab, &Topology::new(&lab)));
    }

    #[test]
    fn vagrantfile_pins_box_version_when_set() {
        let lab = lab("box:\n  name: bento/debian-12\n  version: 202502.21.0\n");
        let text = vagrantfile(&lab, &Topology::new(&lab));
        assert!(text.contains("config.vm.box = 'bento/debian-12'"));
        assert!(text.contains("config.vm.box_version = '202502.21.0'"));
    }

    /// Payloads that run `touch MARKER` if they reach Ruby as code: through
    /// `#{}` interpolation, by closing a double or single quote (also after
    /// a backslash), by ending a comment line (LF, CR LF, NUL, U+2028).
    fn ruby_payloads(marker: &Path) -> Vec<String> {
        let m = marker.display();
        vec![
            format!("#{{%x(touch {m})}}"),
            format!("1\"; system(\"touch {m}\"); \""),
            format!("1'; system('touch {m}'); '"),
            format!("1\\'; system('touch {m}'); #"),
            format!("1\\\"; system('touch {m}'); #"),
            format!("x\nsystem('touch {m}')\n#"),
            format!("x\r\nsystem('touch {m}')\r\n#"),
            format!("x\0\nsystem('touch {m}')\n#"),
            format!("x\u{2028}system('touch {m}')\u{2029}#"),
            format!("__END__\n=begin\n`touch {m}`"),
        ]
    }

    /// The real `vagrant validate` (Debian's, installed by tests/run) on a
    /// Vagrantfile whose every string from lab.yaml or the lab's path holds
    /// an adversarial payload: the file still parses and nothing runs.
    /// Validation refuses these values first; this proves the Vagrantfile is
    /// safe even without it.
    #[test]
    fn no_lab_value_or_path_runs_as_ruby_in_the_vagrantfile() {
        if which::which("vagrant").is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tests/run installs vagrant"
            );
            eprintln!("SKIPPED: vagrant is not installed (tests/run installs it)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let standin = bin.join("VBoxManage");
        std::fs::write(
            &standin,
            "#!/bin/sh\n[ \"$1\" = --version ] && echo 7.0.20r163906\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&standin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let marker = dir.path().join("PWNED");
        let validate = |case: &str, text: &str| {
            let cwd = dir.path().join(case);
            std::fs::create_dir_all(&cwd).unwrap();
            std::fs::write(cwd.join("Vagrantfile"), text).unwrap();
            let out = std::process::Command::new("vagrant")
                .arg("validate")
                .current_dir(dir.path())
                .env("VAGRANT_CWD", &cwd)
                .env("VAGRANT_HOME", dir.path().join("vagrant.d"))
                .env("VAGRANT_CHECKPOINT_DISABLE", "1")
                .env(
                    "PATH",
                    format!(
                        "{}:{}",
                        bin.display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                )
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
        };
        for (i, payload) in ruby_payloads(&marker).into_iter().enumerate() {
            let mut lab = crate::lab::builtin();
            lab.name = payload.clone();
            lab.vm_box.name = payload.clone();
            lab.vm_box.version = Some(payload.clone());
            lab.source = LabSource::File(PathBuf::from(format!("/labs/{payload}/lab.yaml")));
            let text = vagrantfile(&lab, &Topology::new(&lab));
            // Ruby must read the file to its end as written (a payload that
            // broke a literal would stop it, or comment the rest out): the
            // last line, added here, proves it by leaving a file.
            let loaded = dir.path().join(format!("loaded{i}"));
            let probe = format!(
                "{text}\nFile.write({}, 'x')\n",
                ruby_literal(&loaded.to_string_lossy())
            );
            let said = validate(&format!("case{i}"), &probe);
            assert!(!marker.exists(), "payload {payload:?} ran:\n{text}\n{said}");
            assert!(
                loaded.exists(),
                "payload {payload:?} broke the Vagrantfile:\n{text}\n{said}"
            );
            // Ruby took the value as data: Vagrant refuses it as a value.
            assert!(
                said.contains("The format of box version provided"),
                "payload {payload:?}:\n{text}\n{said}"
            );
            // The header is comments to the end of its lines.
            for line in text.lines().take(5) {
                assert!(line.starts_with('#'), "{line:?} of payload {payload:?}");
            }
        }
        // And the same escaping on good values still validates.
        let lab = lab("box:\n  name: bento/debian-12\n  version: '>= 202502.21.0, < 202503'\n");
        let said = validate("good", &vagrantfile(&lab, &Topology::new(&lab)));
        assert!(
            said.contains("Vagrantfile validated successfully"),
            "{said}"
        );
    }

    /// What Ruby reads back from `ruby_literal` is the exact string.
    #[test]
    fn ruby_literals_read_back_as_the_same_bytes() {
        if which::which("ruby").is_err() {
            assert!(std::env::var_os("CI").is_none(), "tests/run installs ruby");
            eprintln!("SKIPPED: ruby is not installed (tests/run installs it)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let payloads = ruby_payloads(&dir.path().join("PWNED"));
        let program: String = payloads
            .iter()
            .map(|p| {
                format!(
                    "STDOUT.write({}.unpack1('H*') + \"\\n\")\n",
                    ruby_literal(p)
                )
            })
            .collect();
        std::fs::write(dir.path().join("t.rb"), program).unwrap();
        let out = std::process::Command::new("ruby")
            .arg(dir.path().join("t.rb"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Ruby reads a CR LF in its source as LF (no code runs either way;
        // validation refuses control characters long before).
        let hex: Vec<String> = payloads
            .iter()
            .map(|p| {
                p.replace("\r\n", "\n")
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .collect::<Vec<_>>(),
            hex
        );
        assert!(!dir.path().join("PWNED").exists());
    }

    /// The hosts block from the same payloads in the lab's path: one comment
    /// line for it, and every other line is a marker or `address<TAB>names`.
    #[test]
    fn no_path_becomes_a_hosts_entry() {
        for payload in ruby_payloads(Path::new("/x")).into_iter().chain([
            "x\n10.6.6.6 bank.example.com\n#".to_string(),
            "x\r10.6.6.6 bank.example.com".to_string(),
        ]) {
            let mut lab = crate::lab::builtin();
            lab.source = LabSource::File(PathBuf::from(format!("/labs/{payload}/lab.yaml")));
            let block = hosts_block(&lab, &Topology::new(&lab));
            let plain = hosts_block(
                &crate::lab::builtin(),
                &Topology::new(&crate::lab::builtin()),
            );
            assert_eq!(block.lines().count(), plain.lines().count(), "{block:?}");
            assert!(!block.contains('\r') && !block.contains('\0'), "{block:?}");
            for line in block.lines() {
                let entry = line.split_once('\t').is_some_and(|(addr, names)| {
                    addr.parse::<std::net::Ipv4Addr>().is_ok() && !names.contains("bank")
                });
                assert!(line.starts_with('#') || entry, "{line:?} in {block:?}");
            }
        }
    }

    #[test]
    fn provider_settings_stay_inside_each_define() {
        // The 2016 lab set memory once for all VMs; here every VM has its own.
        let lab = lab("nodes:\n  worker:\n    count: 2\n    memory: 3072\n");
        let text = vagrantfile(&lab, &Topology::new(&lab));
        let worker1 = text.split("config.vm.define 'worker1'").nth(1).unwrap();
        let worker1 = worker1.split("config.vm.define").next().unwrap();
        assert!(worker1.contains("vb.memory = 3072"));
        assert!(worker1.contains("vb.name = 'kubelab-kubelab-worker1'"));
        assert!(worker1.contains("host: 2231,"));
        let dns = text.split("config.vm.define 'dns0'").nth(1).unwrap();
        let dns = dns.split("config.vm.define").next().unwrap();
        assert!(dns.contains("vb.memory = 384"));
    }

    fn render_lab(lab: &Lab) -> Vec<RenderedFile> {
        let topo = Topology::new(lab);
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::load_or_create(dir.path(), lab, &topo).unwrap();
        all(lab, &topo, &pki)
    }

    fn file<'a>(files: &'a [RenderedFile], path: &str) -> Option<&'a str> {
        files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.contents.as_str())
    }

    #[test]
    fn one_lb_has_no_keepalived_and_binds_only_its_own_address() {
        let files = render_lab(&lab("nodes:\n  lb:\n    count: 1\n"));
        assert!(file(&files, "lb0/etc/keepalived/keepalived.conf").is_none());
        assert!(file(&files, "lb0/etc/sysctl.d/60-kubelab-nonlocal-bind.conf").is_none());
        let haproxy = file(&files, "lb0/etc/haproxy/haproxy.cfg").unwrap();
        assert!(haproxy.contains("\tbind 192.168.56.51:6443\n"));
        assert!(!haproxy.contains("192.168.56.50"));
        // api.lan is lb0 itself.
        let zone = file(&files, "dns0/etc/bind/db.lan").unwrap();
        assert!(zone.contains("api\tIN\tA\t192.168.56.51\n"));
    }

    #[test]
    fn keepalived_prefers_lb0_and_a_failed_haproxy_hands_the_vip_over() {
        let files = render_lab(&lab("nodes:\n  lb:\n    count: 3\n"));
        let priority = |node: &str| -> u32 {
            let conf = file(&files, &format!("{node}/etc/keepalived/keepalived.conf")).unwrap();
            let line = conf
                .lines()
                .find(|l| l.trim().starts_with("priority"))
                .unwrap();
            line.trim()["priority".len()..].trim().parse().unwrap()
        };
        let conf = file(&files, "lb0/etc/keepalived/keepalived.conf").unwrap();
        assert!(priority("lb0") > priority("lb1") && priority("lb1") > priority("lb2"));
        // A failed check is FAULT (no weight): the node leaves the election
        // and says so, rather than waiting for its peers' timers.
        let script = &conf[conf.find("vrrp_script chk_haproxy").unwrap()..];
        let script = &script[..script.find('}').unwrap()];
        assert!(!script.contains("weight"), "{script}");
        assert!(
            script.contains("\tinterval 1\n") && script.contains("\tfall 1\n"),
            "{script}"
        );
        assert!(conf.contains("unicast_peer {\n\t\t192.168.56.52\n\t\t192.168.56.53\n\t}"));
        assert!(
            conf.contains("interface enp0s8"),
            "bento boxes name it enp0s8"
        );
        let test_box = render_lab(&lab("box:\n  name: kubelab/test\n"));
        let conf = file(&test_box, "lb1/etc/keepalived/keepalived.conf").unwrap();
        assert!(conf.contains("interface eth1\n"));
    }

    #[test]
    fn the_zone_serial_follows_the_records() {
        let serial = |yaml: &str| {
            let files = render_lab(&lab(yaml));
            let zone = file(&files, "dns0/etc/bind/db.lan").unwrap().to_string();
            zone.lines()
                .find(|l| l.ends_with("; serial"))
                .unwrap()
                .to_string()
        };
        assert_eq!(serial("name: a\n"), serial("name: a\n"));
        assert_ne!(
            serial("name: a\n"),
            serial("name: a\nnodes:\n  worker:\n    count: 2\n")
        );
    }

    #[test]
    fn secrets_are_0600_and_everything_else_0644() {
        let files = render_lab(&crate::lab::builtin());
        for f in &files {
            let secret = f.contents.contains("PRIVATE KEY")
                || f.contents.contains("aescbc")
                || f.contents.contains("client-key-data");
            assert_eq!(f.mode, if secret { 0o600 } else { 0o644 }, "{}", f.path);
        }
    }

    /// Every rendered file of the default lab, one snapshot: reviewing its
    /// diff is reviewing what the nodes receive. Keys, certificates and the
    /// aescbc key are random, so they are filtered.
    #[test]
    fn every_file_of_the_default_lab() {
        let files = render_lab(&crate::lab::builtin());
        let mut text = String::new();
        for f in &files {
            text.push_str(&format!("===== {} ({:04o})\n", f.path, f.mode));
            text.push_str(&f.contents);
        }
        // The registry's files exist only when it is on: add them too.
        text.push_str("##### with nodes.registry.count: 1, files the default lab lacks\n");
        for f in render_lab(&lab("nodes:\n  registry:\n    count: 1\n")) {
            if !files.iter().any(|g| g.path == f.path) {
                text.push_str(&format!("===== {} ({:04o})\n", f.path, f.mode));
                text.push_str(&f.contents);
            }
        }
        insta::with_settings!({filters => vec![
            (r"-----BEGIN ([A-Z ]+)-----\n[A-Za-z0-9+/=\n]+-----END [A-Z ]+-----\n", "[$1]\n"),
            // A PEM inside YAML (metrics-server's kubelet CA): indented.
            (r"( +)-----BEGIN ([A-Z ]+)-----\n(?: +[A-Za-z0-9+/=]+\n)+ +-----END [A-Z ]+-----\n", "$1[$2]\n"),
            (r"secret: [A-Za-z0-9+/=]{44}", "secret: [AESCBC KEY]"),
            (r"(certificate-authority|client-certificate|client-key)-data: [A-Za-z0-9+/=]+", "$1-data: [BASE64]"),
        ]}, {
            insta::assert_snapshot!(text);
        });
    }

    #[test]
    fn hosts_block_default_lab() {
        let lab = crate::lab::builtin();
        insta::assert_snapshot!(hosts_block(&lab, &Topology::new(&lab)));
    }
}
