//! Provisioning transport benchmark, on the end-to-end machines
//! (tests/support/e2e.rs; needs root, prints SKIPPED otherwise):
//!
//! 1. the same N small commands (`sudo -n true`, what every step wraps) on one
//!    machine, through one SSH ControlMaster with the options of kubelab's
//!    transport (src/tools/ssh.rs: ControlMaster=auto, ControlPersist, a
//!    %C ControlPath; the master's own handshake is counted), against one
//!    fresh `ssh` connection per command with multiplexing off, as `vagrant
//!    ssh -c` would (without its Ruby start);
//! 2. the wall time of a no-op `kubelab lab up --until etcd` as a fraction
//!    of the first one, on the default lab.
//!
//! Run it:
//!
//!     cargo bench --bench provision_transport
//!     BENCH_COMMANDS=100 cargo bench --bench provision_transport

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::e2e::E2e;

/// As tests/e2e_default_lab.rs: these machines take etcd from Debian.
const LAB: &str = "name: kubelab\nartifacts:\n  etcd: distro\n";

/// Runs in the hypervisor namespace: times `$n` commands on `$addr` each
/// way, in one bash so that no per-command nsenter skews either side.
const TIMING: &str = r#"
set -euo pipefail
key=$1 n=$2 addr=$3
control=$(mktemp -d /tmp/kubelab-bench-XXXXXX)
trap 'ssh -o ControlPath="$control/%C" -O exit "vagrant@$addr" 2>/dev/null || true; rm -rf "$control"' EXIT
common=(-i "$key" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=20
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
mux=(-o ControlMaster=auto -o ControlPersist=300 -o "ControlPath=$control/%C")
fresh=(-o ControlMaster=no -o ControlPath=none)
now() { date +%s%N; }
start=$(now)
for _ in $(seq "$n"); do ssh "${common[@]}" "${mux[@]}" "vagrant@$addr" -- sudo -n true; done
echo "multiplexed_ns=$(($(now) - start))"
start=$(now)
for _ in $(seq "$n"); do ssh "${common[@]}" "${fresh[@]}" "vagrant@$addr" -- sudo -n true; done
echo "fresh_ns=$(($(now) - start))"
"#;

fn value(out: &str, key: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the timing output:\n{out}"))
}

fn main() {
    let n: u32 = std::env::var("BENCH_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    // E2e::start prints `SKIPPED: why` itself when it cannot run here.
    let Some(e2e) = E2e::start("192.168.56.1") else {
        return;
    };
    std::fs::write(e2e.lab_dir().join("lab.yaml"), LAB).expect("write lab.yaml");

    let started = Instant::now();
    e2e.kubelab(&["lab", "up", "--until", "etcd"]);
    let first = started.elapsed();
    let started = Instant::now();
    let again = e2e.kubelab(&["lab", "up", "--until", "etcd"]);
    let noop = started.elapsed();
    assert!(
        again.stderr.contains("nothing to do"),
        "the second run was not a no-op, so it measures nothing: {}",
        again.stderr
    );

    let out = e2e
        .in_hypervisor("bash")
        .arg("-c")
        .arg(TIMING)
        .arg("timing")
        .arg(e2e.ssh_key())
        .arg(n.to_string())
        .arg("192.168.56.10")
        .output()
        .expect("run the timing script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "timing failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let per = |key: &str| value(&text, key) / 1e6 / f64::from(n);
    let (mux, fresh) = (per("multiplexed_ns"), per("fresh_ns"));

    println!("{n} x `sudo -n true` on etcd0, from the hypervisor namespace:");
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "", "ControlMaster", "fresh ssh", "ratio"
    );
    println!(
        "{:<44} {:>9.1} ms {:>9.1} ms {:>7.1}x",
        "per command",
        mux,
        fresh,
        fresh / mux
    );
    println!("default lab (10 machines), `kubelab lab up --until etcd`:");
    println!(
        "{:<44} {:>9.2} s",
        "first run (machines, facts, dns .. etcd)",
        first.as_secs_f64()
    );
    println!(
        "{:<44} {:>9.2} s {:>21.3} of the first",
        "no-op rerun",
        noop.as_secs_f64(),
        noop.as_secs_f64() / first.as_secs_f64()
    );
    e2e.kubelab(&["lab", "destroy", "--yes"]);
}
