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
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/provision.rs"))
            .unwrap();
    for script in scripts() {
        let name = script.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.starts_with("#!/usr/bin/env bash\n"), "{name}");
        if name != "lib.sh" {
            assert!(text.contains("set -euo pipefail"), "{name} is not strict");
        }
        assert!(
            engine.contains(&format!("include_str!(\"../provision/scripts/{name}\")")),
            "{name} is not compiled into the binary (SCRIPTS in src/provision.rs)"
        );
    }
}
