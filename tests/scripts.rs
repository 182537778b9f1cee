//! The role scripts that run on the nodes: valid bash, shellcheck-clean, and
//! every one compiled into the binary.

use std::path::Path;
use std::process::Command;

fn scripts() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("provision/scripts");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    out.sort();
    assert!(out.len() >= 6, "scripts missing from {}", dir.display());
    out
}

#[test]
fn every_script_parses_with_bash_n() {
    for script in scripts() {
        let out = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_script_is_shellcheck_clean() {
    if which::which("shellcheck").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tests/run installs shellcheck; CI must have it"
        );
        eprintln!("SKIPPED: shellcheck is not installed (apt-get install shellcheck)");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("provision/scripts");
    for script in scripts() {
        // From the scripts' folder, so `source=lib.sh` directives resolve.
        let out = Command::new("shellcheck")
            .args(["-x", "-S", "style"])
            .arg(script.file_name().unwrap())
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn every_script_is_strict_and_compiled_in() {
    let engine =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/provision/mod.rs"))
            .unwrap();
    for script in scripts() {
        let name = script.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.starts_with("#!/usr/bin/env bash\n"), "{name}");
        // Sourced, never run: the running script's strict mode holds.
        if name != "lib.sh" && name != "packages.sh" {
            assert!(text.contains("set -euo pipefail"), "{name} is not strict");
        }
        assert!(
            engine.contains(&format!("include_str!(\"../../provision/scripts/{name}\")")),
            "{name} is not compiled into the binary (SCRIPTS in src/provision/mod.rs)"
        );
    }
}

/// Every package a role installs exists under that name on Ubuntu 24.04,
/// the default box (Debian 12 and 13 are checked by the box recipe, which
/// downloads each one). The list is read by bash from packages.sh itself.
#[test]
fn every_role_package_exists_on_ubuntu_24_04() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(". provision/scripts/packages.sh && all_role_packages")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wanted: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(wanted.len() >= 10, "{wanted:?}");
    let noble =
        std::fs::read_to_string(dir.join("tests/fixtures/packages/ubuntu-24.04.txt")).unwrap();
    let known: std::collections::BTreeSet<&str> = noble
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|p| !known.contains(p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not known to exist on Ubuntu 24.04 (tests/fixtures/packages/ubuntu-24.04.txt): {missing:?}"
    );
}

/// Every role installs through packages.sh's lists, never a name of its own.
#[test]
fn no_role_script_names_a_package_outside_packages_sh() {
    for script in scripts() {
        let text = std::fs::read_to_string(&script).unwrap();
        for line in text.lines().filter(|l| l.contains("ensure_packages ")) {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with("ensure_packages()") {
                continue;
            }
            // A script's own `packages` array, built from packages.sh's.
            let built = line.contains("ensure_packages \"${packages[@]}\"")
                && text
                    .lines()
                    .filter(|l| l.contains("packages=(") || l.contains("packages+=("))
                    .all(|l| l.contains("\"${packages_"));
            assert!(
                line.contains("ensure_packages \"${packages_") || built,
                "{}: {line}: name the packages in provision/scripts/packages.sh",
                script.display()
            );
        }
    }
}
