//! The end-to-end fixture's own checks, without a lab: the stand-ins and
//! the box recipe pass shellcheck, and the conffiles kubelab writes are the
//! known ones on both stock boxes. The lab itself runs in
//! tests/e2e_default_lab.rs (and e2e_phases, e2e_static, e2e_debian13).

mod support;

use support::e2e::{DEBIAN_12, DEBIAN_13};

/// The stand-ins, the box recipe and the test command pass shellcheck: they
/// are the test's own code, and a quoting slip in them would leak or break
/// machines silently.
#[test]
fn e2e_scripts_pass_shellcheck() {
    if which::which("shellcheck").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run shellcheck, but it is missing (tests/run installs it)"
        );
        eprintln!("SKIPPED: shellcheck is missing (tests/run installs it)");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("shellcheck")
        .args(["-x", "-P", "SCRIPTDIR"])
        .args([
            "tests/e2e-standin/vagrant",
            "tests/e2e-standin/VBoxManage",
            "tests/e2e-standin/lib.sh",
            "boxes/test-debian/bake",
            "tests/run",
            ".ci/run",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The files kubelab places before a step's packages are installed must not
/// make dpkg ask (the class of the bind9 conffile prompt): every rendered
/// path that a package of the lab's repository ships as a conffile is one
/// lib.sh knows to keep (`--force-confold`, and the README names it), on
/// both stock boxes. A new template at a packaged conffile's path fails
/// here until that is decided.
#[test]
fn the_only_packaged_conffiles_kubelab_writes_are_the_known_three() {
    const KNOWN: [&str; 3] = [
        "/etc/bind/named.conf.local",
        "/etc/bind/named.conf.options",
        "/etc/haproxy/haproxy.cfg",
    ];
    // Every role's files: a lab with a registry and three LBs.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lab.yaml"),
        "name: conffiles\nnodes:\n  registry:\n    count: 1\n  lb:\n    count: 3\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::kubelab_bin())
        .args(["lab", "render", "--out", "out"])
        .current_dir(dir.path())
        .env("KUBELAB_HOSTS_FILE", dir.path().join("hosts"))
        .env("KUBELAB_REGISTRY", dir.path().join("labs.json"))
        .env_remove("KUBELAB_LAB")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut placed = std::collections::BTreeSet::new();
    for node in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let node = node.unwrap().path();
        if node.file_name().is_some_and(|n| n == "host") {
            continue;
        }
        let listing = std::process::Command::new("find")
            .arg(&node)
            .args(["-type", "f"])
            .output()
            .unwrap();
        for path in String::from_utf8_lossy(&listing.stdout).lines() {
            placed.insert(
                path.strip_prefix(node.to_str().unwrap())
                    .unwrap()
                    .to_string(),
            );
        }
    }
    assert!(placed.contains("/etc/haproxy/haproxy.cfg"), "{placed:?}");
    for release in [DEBIAN_12, DEBIAN_13] {
        let Some(box_dir) = support::e2e::baked_box(release) else {
            return;
        };
        let mut clashes = std::collections::BTreeSet::new();
        for deb in std::fs::read_dir(box_dir.join("repo")).unwrap() {
            let deb = deb.unwrap().path();
            if deb.extension().is_none_or(|e| e != "deb") {
                continue;
            }
            let conffiles = std::process::Command::new("sh")
                .arg("-c")
                .arg("dpkg-deb --ctrl-tarfile \"$1\" | tar -xO ./conffiles 2>/dev/null || true")
                .arg("sh")
                .arg(&deb)
                .output()
                .unwrap();
            for conffile in String::from_utf8_lossy(&conffiles.stdout).lines() {
                let conffile = conffile.trim_start_matches("remove-on-upgrade ").trim();
                if placed.contains(conffile) {
                    clashes.insert(conffile.to_string());
                }
            }
        }
        let known: std::collections::BTreeSet<String> =
            KNOWN.iter().map(|s| s.to_string()).collect();
        assert_eq!(clashes, known, "on {release}");
    }
}
