//! Bring-up benchmark: kubelab's `lab up` (first VM alone, then concurrent)
//! against a plain sequential loop of `vagrant up NAME`, both driving the
//! stand-in vagrant of tests/standin with the same time per VM. Prints both
//! wall times and their ratio, for the default lab and for 3 workers. Then
//! what VirtualBox's races cost: the same `lab up` with some VMs losing one
//! (the stand-in's STANDIN_RACE), each booted again alone after
//! KUBELAB_BOOT_RETRY_MS, against the run without.
//!
//!     cargo bench --bench bring_up
//!     STANDIN_DELAY_MS=3000 KUBELAB_BOOT_RETRY_MS=3000 cargo bench --bench bring_up

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn standin_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin")
}

fn env_path() -> String {
    format!(
        "{}:{}",
        standin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn kubelab_up(
    lab_yaml: &str,
    delay_ms: u64,
    jobs: Option<&str>,
    races: &[(&str, &str)],
) -> (Duration, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("lab.yaml"), lab_yaml).expect("write lab.yaml");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kubelab"))
        .args(["lab", "up", "--until", "machines", "--no-hosts", "-q"])
        .args(jobs.map(|j| ["--jobs", j]).into_iter().flatten())
        .current_dir(dir.path())
        .env("PATH", env_path())
        .env("STANDIN_LOG", dir.path().join("calls.log"))
        .env("KUBELAB_REGISTRY", dir.path().join("labs.json"))
        .env("STANDIN_DELAY_MS", delay_ms.to_string())
        .env(
            "STANDIN_RACE",
            races
                .iter()
                .map(|(node, race)| format!("{node}={race}"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .env("KUBELAB_BOOT_RETRY_MS", retry_ms().to_string())
        .output()
        .expect("run kubelab");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "kubelab lab up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The node names kubelab booted, for the sequential run to boot the same.
    let vagrantfile =
        std::fs::read_to_string(dir.path().join(".kubelab/Vagrantfile")).expect("Vagrantfile");
    let nodes = vagrantfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("config.vm.define \""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect();
    (took, nodes)
}

fn sequential_up(nodes: &[String], delay_ms: u64) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut vagrantfile = String::new();
    for n in nodes {
        vagrantfile.push_str(&format!("  config.vm.define \"{n}\" do |node|\n  end\n"));
    }
    std::fs::write(dir.path().join("Vagrantfile"), vagrantfile).expect("write Vagrantfile");
    let start = Instant::now();
    for n in nodes {
        let status = Command::new(standin_dir().join("vagrant"))
            .args(["up", n, "--no-provision"])
            .env("VAGRANT_CWD", dir.path())
            .env("STANDIN_LOG", dir.path().join("calls.log"))
            .env("STANDIN_DELAY_MS", delay_ms.to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run stand-in vagrant");
        assert!(status.success());
    }
    start.elapsed()
}

/// The first backoff before a VM that lost a race is booted again (kubelab's
/// default is 3000 ms).
fn retry_ms() -> u64 {
    std::env::var("KUBELAB_BOOT_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn main() {
    let delay_ms: u64 = std::env::var("STANDIN_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    println!("stand-in `vagrant up` takes {delay_ms} ms per VM");
    println!(
        "{:<22} {:>6} {:>14} {:>14} {:>7}",
        "lab", "VMs", "kubelab up", "sequential", "ratio"
    );
    for (label, yaml, jobs) in [
        ("default", "name: bench\n", None),
        (
            "3 workers",
            "name: bench\nnodes:\n  worker:\n    count: 3\n",
            None,
        ),
        ("default, --jobs 12", "name: bench\n", Some("12")),
        (
            "3 workers, --jobs 12",
            "name: bench\nnodes:\n  worker:\n    count: 3\n",
            Some("12"),
        ),
    ] {
        let (concurrent, nodes) = kubelab_up(yaml, delay_ms, jobs, &[]);
        let sequential = sequential_up(&nodes, delay_ms);
        println!(
            "{label:<22} {:>6} {:>12.2} s {:>12.2} s {:>6.2}x",
            nodes.len(),
            concurrent.as_secs_f64(),
            sequential.as_secs_f64(),
            sequential.as_secs_f64() / concurrent.as_secs_f64()
        );
    }
    println!(
        "(kubelab boots the first VM alone, then up to --jobs at once: default 2x cores, at most 8)"
    );

    println!();
    println!(
        "VirtualBox races: a VM that loses one is booted again alone after {} ms (doubling, 3 times at most)",
        retry_ms()
    );
    println!(
        "{:<34} {:>14} {:>14} {:>7}",
        "default lab, VMs losing a race once", "with races", "without", "ratio"
    );
    let (clean, _) = kubelab_up("name: bench\n", delay_ms, None, &[]);
    for (label, races) in [
        ("1 (a session lock)", &[("etcd1", "lock")][..]),
        (
            "3 (an import, two locks)",
            &[
                ("etcd1", "import"),
                ("controller2", "lock"),
                ("worker0", "lock"),
            ][..],
        ),
        ("the first VM (its import)", &[("dns0", "import")][..]),
    ] {
        let (raced, _) = kubelab_up("name: bench\n", delay_ms, None, races);
        println!(
            "{label:<34} {:>12.2} s {:>12.2} s {:>6.2}x",
            raced.as_secs_f64(),
            clean.as_secs_f64(),
            raced.as_secs_f64() / clean.as_secs_f64()
        );
    }
    println!("(ratio > 1: the retries' cost, backoff plus one more boot each, run one at a time)");
}
