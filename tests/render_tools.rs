//! `kubelab lab render` output checked by the programs that will read it on
//! the nodes: named-checkconf/named-checkzone, haproxy, keepalived, openssl
//! and a real 3-member etcd. Namespaced tests stay inside network namespaces
//! they create and delete; nothing touches the machine's own network.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use support::Test;

/// True when `tool` is on PATH. Otherwise prints SKIPPED and returns false,
/// but never in CI, which installs every tool (tests/run) and must not skip.
fn have(tool: &str) -> bool {
    if which::which(tool).is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is missing in CI; tests/run installs it"
    );
    eprintln!("SKIPPED: {tool} is not installed (tests/run installs it)");
    false
}

/// True when running as root (network namespaces need it); else SKIPPED,
/// never in CI, which runs as root.
fn root() -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run as root: network namespaces need it"
    );
    eprintln!("SKIPPED: not root, so no network namespace can be created");
    false
}

/// Renders the lab in `test`'s directory into `out/` and returns that path.
fn render(test: Test) -> (Test, PathBuf) {
    let test = test.args(&["lab", "render", "--out", "out"]);
    let ran = test.run();
    for secret_marker in ["PRIVATE KEY", "secret:"] {
        assert!(
            !ran.stdout.contains(secret_marker) && !ran.stderr.contains(secret_marker),
            "render printed key material:\n{}\n{}",
            ran.stdout,
            ran.stderr
        );
    }
    let out = test.path().join("out");
    (test, out)
}

/// `(path, node, mode)` of every MANIFEST line.
fn manifest(out: &Path) -> Vec<(String, String, u32)> {
    std::fs::read_to_string(out.join("MANIFEST"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (
                cols[0].to_string(),
                cols[1].to_string(),
                u32::from_str_radix(cols[2], 8).unwrap(),
            )
        })
        .collect()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dns_files_pass_named_checkconf_and_named_checkzone() {
    if !have("named-checkconf") || !have("named-checkzone") {
        return;
    }
    let (_test, out) = render(Test::new());
    let bind = out.join("dns0/etc/bind");
    for conf in ["named.conf.options", "named.conf.local"] {
        run_ok(Command::new("named-checkconf").arg(bind.join(conf)));
    }
    // Every zone named.conf.local declares, loaded from the file it names.
    let local = std::fs::read_to_string(bind.join("named.conf.local")).unwrap();
    let mut zones = Vec::new();
    let mut name = None;
    for line in local.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("zone \"") {
            name = rest.split('"').next().map(str::to_string);
        }
        if let Some(rest) = line.strip_prefix("file \"/etc/bind/") {
            let file = rest.split('"').next().unwrap().to_string();
            zones.push((name.take().expect("file inside a zone"), file));
        }
    }
    assert_eq!(zones.len(), 2, "{local}");
    let mut dumped = String::new();
    for (zone, file) in &zones {
        // -D prints the zone in canonical form: absolute names show where a
        // missing or extra trailing dot put a record.
        dumped.push_str(&run_ok(
            Command::new("named-checkzone")
                .args(["-D", "-k", "fail", "-n", "fail", zone])
                .arg(bind.join(file)),
        ));
    }
    for record in [
        "lan.\t300\tIN NS\tdns0.lan.",
        "api.lan.\t300\tIN A\t192.168.56.50",
        "worker0.lan.\t300\tIN A\t192.168.56.30",
        "lb1.lan.\t300\tIN A\t192.168.56.52",
        "2.56.168.192.in-addr.arpa.\t300\tIN PTR\tdns0.lan.",
        "50.56.168.192.in-addr.arpa.\t300\tIN PTR\tapi.lan.",
    ] {
        let normalized: String = dumped
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n");
        let want = record.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(normalized.contains(&want), "missing {want:?} in\n{dumped}");
    }
}

#[test]
fn a_broken_zone_is_caught_by_named_checkzone() {
    // The check above can fail: a record pointing out of the zone is refused.
    if !have("named-checkzone") {
        return;
    }
    let (_test, out) = render(Test::new());
    let zone = out.join("dns0/etc/bind/db.lan");
    let text = std::fs::read_to_string(&zone).unwrap();
    std::fs::write(&zone, text.replace("IN\tNS\tdns0.lan.", "IN\tNS\tdns0.lan")).unwrap();
    let out = run(Command::new("named-checkzone").args(["lan"]).arg(&zone));
    assert!(!out.status.success(), "a relative NS target must not load");
}

#[test]
fn haproxy_cfg_passes_haproxy_check_on_every_lb() {
    if !have("haproxy") {
        return;
    }
    for yaml in ["name: two\n", "name: one\nnodes:\n  lb:\n    count: 1\n"] {
        let (_test, out) = render(Test::new().write("lab.yaml", yaml));
        let lbs: Vec<String> = manifest(&out)
            .into_iter()
            .filter(|(p, _, _)| p.ends_with("/etc/haproxy/haproxy.cfg"))
            .map(|(p, _, _)| p)
            .collect();
        assert!(!lbs.is_empty());
        for cfg in lbs {
            run_ok(
                Command::new("haproxy")
                    .arg("-c")
                    .arg("-f")
                    .arg(out.join(&cfg)),
            );
        }
    }
}

static NETNS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace this test created; deleted on drop, even on panic.
struct Netns {
    name: String,
}

impl Netns {
    fn new(purpose: &str) -> Netns {
        let name = format!(
            "kubelab-test-{}-{purpose}-{}",
            std::process::id(),
            NETNS_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The value of `key` (`interface`, `unicast_src_ip`) in keepalived.conf.
fn keepalived_value(conf: &str, key: &str) -> String {
    conf.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} in\n{conf}"))
        .to_string()
}

#[test]
fn keepalived_conf_passes_config_test_where_the_vrrp_interface_exists() {
    if !have("keepalived") || !have("ip") || !root() {
        return;
    }
    for yaml in [
        "name: bento\n",
        "name: testbox\nbox:\n  name: kubelab/test\n",
    ] {
        let (_test, out) = render(Test::new().write("lab.yaml", yaml));
        for lb in ["lb0", "lb1"] {
            let path = out.join(format!("{lb}/etc/keepalived/keepalived.conf"));
            let conf = std::fs::read_to_string(&path).unwrap();
            let interface = keepalived_value(&conf, "interface");

            // Without the interface the check fails: it does look for it.
            let bare = Netns::new("ka");
            let refused = run(bare
                .exec("keepalived")
                .arg("--config-test")
                .arg("-f")
                .arg(&path));
            assert!(!refused.status.success(), "passed without {interface}");
            drop(bare);

            let ns = Netns::new("ka");
            ns.ip(&[
                "link", "add", &interface, "type", "veth", "peer", "name", "kl-peer",
            ]);
            let address = keepalived_value(&conf, "unicast_src_ip");
            ns.ip(&["addr", "add", &format!("{address}/24"), "dev", &interface]);
            run_ok(
                ns.exec("keepalived")
                    .arg("--config-test")
                    .arg("-f")
                    .arg(&path),
            );
        }
    }
}

#[test]
fn every_certificate_verifies_against_its_ca_and_matches_its_key() {
    if !have("openssl") {
        return;
    }
    let (test, out) = render(Test::new());
    let files = manifest(&out);
    let mut checked = 0;
    for (path, _node, mode) in &files {
        let on_disk = std::fs::metadata(out.join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(on_disk, *mode, "{path}");
        if path.ends_with("-key.pem") || path.ends_with("encryption-config.yaml") {
            assert_eq!(*mode, 0o600, "{path} holds a secret");
        }
        let Some(stem) = path.strip_suffix(".pem") else {
            continue;
        };
        let file = Path::new(path).file_name().unwrap().to_str().unwrap();
        if stem.ends_with("-key")
            || ["ca.pem", "etcd-ca.pem", "service-accounts.pem"].contains(&file)
        {
            continue;
        }
        // The CA beside it: etcd certificates verify against the etcd CA.
        let dir = out.join(path).parent().unwrap().to_path_buf();
        let ca = if file.contains("etcd") && dir.join("etcd-ca.pem").exists() {
            dir.join("etcd-ca.pem")
        } else {
            dir.join("ca.pem")
        };
        let cert = out.join(path);
        run_ok(
            Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(&ca)
                .arg(&cert),
        );
        let cert_pub = run_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-pubkey", "-in"])
                .arg(&cert),
        );
        let key_pub = run_ok(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(out.join(format!("{stem}-key.pem"))),
        );
        assert_eq!(cert_pub, key_pub, "{path} and its key do not match");
        checked += 1;
    }
    // 3 etcd nodes x 2, 3 controllers x 7, 1 worker x 2 (kubelet, kube-proxy).
    assert_eq!(checked, 6 + 21 + 2);

    let pki = test.path().join(".kubelab/pki");
    let text = |name: &str, what: &[&str]| {
        run_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-nameopt", "RFC2253"])
                .args(what)
                .arg("-in")
                .arg(pki.join(name)),
        )
    };
    let api = text("kube-apiserver.pem", &["-ext", "subjectAltName"]);
    for san in [
        "IP Address:10.32.0.1",
        "DNS:kubernetes,",
        "DNS:kubernetes.default,",
        "DNS:kubernetes.default.svc,",
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:controller0,",
        "DNS:controller2.lan",
        "IP Address:192.168.56.21",
        "DNS:lb1",
        "IP Address:192.168.56.52",
        "DNS:api.lan",
        "IP Address:192.168.56.50",
        "IP Address:127.0.0.1",
    ] {
        assert!(api.contains(san), "apiserver lacks {san}: {api}");
    }
    let worker = text("worker0.pem", &["-subject", "-ext", "subjectAltName"]);
    assert!(
        worker.contains("subject=CN=system:node:worker0,O=system:nodes"),
        "{worker}"
    );
    assert!(worker.contains("DNS:worker0, DNS:worker0.lan, IP Address:192.168.56.30"));
    let admin = text("admin.pem", &["-subject"]);
    assert!(admin.contains("CN=admin,O=system:masters"), "{admin}");
    let proxy = text("kube-proxy.pem", &["-subject"]);
    assert!(
        proxy.contains("CN=system:kube-proxy,O=system:node-proxier"),
        "{proxy}"
    );

    // Key usages: servers serve, clients are clients, CAs sign.
    let purpose = |name: &str, purpose: &str, ca: &str| {
        run(Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(pki.join(ca))
            .arg(pki.join(name)))
        .status
        .success()
    };
    assert!(purpose("kube-apiserver.pem", "sslserver", "ca.pem"));
    assert!(!purpose("kube-apiserver.pem", "sslclient", "ca.pem"));
    assert!(purpose("admin.pem", "sslclient", "ca.pem"));
    assert!(!purpose("admin.pem", "sslserver", "ca.pem"));
    assert!(purpose("etcd0-etcd-peer.pem", "sslserver", "etcd-ca.pem"));
    assert!(purpose("etcd0-etcd-peer.pem", "sslclient", "etcd-ca.pem"));
    // The two CAs are separate: no kubelet certificate passes as etcd's.
    assert!(!purpose("worker0.pem", "sslclient", "etcd-ca.pem"));
    assert!(!purpose("apiserver-etcd-client.pem", "sslclient", "ca.pem"));

    // A second render signs nothing new.
    let before = std::fs::read(pki.join("kube-apiserver.pem")).unwrap();
    let test = test.then(&["lab", "render", "--out", "out"]);
    let again = test.run();
    assert!(!again.stderr.contains("PKI: wrote"), "{}", again.stderr);
    assert_eq!(
        before,
        std::fs::read(pki.join("kube-apiserver.pem")).unwrap()
    );
}

/// etcd processes this test started, stopped by their PIDs on drop, before
/// their namespaces go.
struct Members {
    children: Vec<Child>,
}

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The flags of the rendered unit's ExecStart, one per `\`-continued line.
fn exec_start_flags(unit: &str) -> Vec<String> {
    let mut lines = unit.lines().skip_while(|l| !l.starts_with("ExecStart="));
    let mut flags = Vec::new();
    for line in lines.by_ref().skip(1) {
        let flag = line.trim().trim_end_matches('\\').trim();
        flags.push(flag.to_string());
        if !line.ends_with('\\') {
            break;
        }
    }
    flags
}

fn flag<'a>(flags: &'a [String], name: &str) -> &'a str {
    flags
        .iter()
        .find_map(|f| f.strip_prefix(&format!("--{name}=")))
        .unwrap_or_else(|| panic!("no --{name} in {flags:?}"))
}

#[test]
fn etcd_cluster_runs_from_the_rendered_flags_and_admits_only_etcd_ca_clients() {
    if !have("etcd") || !have("etcdctl") || !have("ip") || !root() {
        return;
    }
    let (test, out) = render(Test::new());
    let data = test.path().join("etcd-data");

    // A switch namespace with a bridge, one namespace per member joined to it
    // by a veth named like the host-only NIC and holding the member's address.
    let switch = Netns::new("sw");
    switch.ip(&["link", "add", "kbr0", "type", "bridge"]);
    switch.ip(&["link", "set", "kbr0", "up"]);
    let mut namespaces = Vec::new();
    let mut members = Members {
        children: Vec::new(),
    };
    for i in 0..3 {
        let node = format!("etcd{i}");
        let unit =
            std::fs::read_to_string(out.join(format!("{node}/etc/systemd/system/etcd.service")))
                .unwrap();
        let flags = exec_start_flags(&unit);
        let peer_url = flag(&flags, "initial-advertise-peer-urls");
        let address = peer_url
            .trim_start_matches("https://")
            .split(':')
            .next()
            .unwrap()
            .to_string();
        let ns = Netns::new(&node);
        let port = format!("p{i}");
        switch.ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", "eth1", "netns", &ns.name,
        ]);
        switch.ip(&["link", "set", &port, "master", "kbr0", "up"]);
        ns.ip(&["addr", "add", &format!("{address}/24"), "dev", "eth1"]);
        ns.ip(&["link", "set", "eth1", "up"]);

        // The rendered flags, with the node's paths pointing into its bundle.
        let bundle = out.join(&node);
        let args: Vec<String> = flags
            .iter()
            .map(|f| {
                if f.starts_with("--data-dir=") {
                    format!("--data-dir={}", data.join(&node).display())
                } else {
                    f.replace("=/etc/", &format!("={}/etc/", bundle.display()))
                }
            })
            .collect();
        let log = std::fs::File::create(test.path().join(format!("{node}.log"))).unwrap();
        let child = ns
            .exec("etcd")
            .args(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        members.children.push(child);
        namespaces.push((ns, address));
    }

    let pki = test.path().join(".kubelab/pki");
    let endpoints = namespaces
        .iter()
        .map(|(_, a)| format!("https://{a}:2379"))
        .collect::<Vec<_>>()
        .join(",");
    let health = |cert: &str| {
        run(namespaces[0]
            .0
            .exec("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg(format!("--cacert={}", pki.join("etcd-ca.pem").display()))
            .arg(format!(
                "--cert={}",
                pki.join(format!("{cert}.pem")).display()
            ))
            .arg(format!(
                "--key={}",
                pki.join(format!("{cert}-key.pem")).display()
            ))
            .args([
                "--dial-timeout=2s",
                "--command-timeout=3s",
                "endpoint",
                "health",
            ])
            .stdin(Stdio::null()))
    };

    // Poll until all three answer, with a deadline; say what was awaited.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = health("apiserver-etcd-client");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && text.matches("is healthy").count() == 3 {
            break;
        }
        if Instant::now() > deadline {
            let logs: String = (0..3)
                .map(|i| {
                    std::fs::read_to_string(test.path().join(format!("etcd{i}.log")))
                        .unwrap_or_default()
                })
                .collect();
            panic!("the 3 etcd members were not all healthy within 60 s:\n{text}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // A kubelet's certificate is from the cluster CA: etcd refuses it.
    let refused = health("worker0");
    assert!(
        !refused.status.success(),
        "etcd accepted a kubelet certificate:\n{}",
        String::from_utf8_lossy(&refused.stdout)
    );

    drop(members);
    drop(namespaces);
    drop(switch);
}
