//! Every environment variable kubelab reads, declared in one place, and the
//! settings derived from them.

use std::path::PathBuf;

/// `--lab`: the lab file.
pub const ENV_LAB: &str = "KUBELAB_LAB";
/// The hypervisor hosts file kubelab edits (default /etc/hosts); tests point
/// it at a file of their own.
pub const ENV_HOSTS_FILE: &str = "KUBELAB_HOSTS_FILE";
/// Pretend the host has this much RAM (MB): for tests and for planning a lab
/// for another machine.
pub const ENV_HOST_MEMORY_MB: &str = "KUBELAB_HOST_MEMORY_MB";
/// Any value turns colour off (https://no-color.org).
pub const ENV_NO_COLOR: &str = "NO_COLOR";

/// Settings that come from the environment, read once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hosts_file: PathBuf,
    pub host_memory_mb: Option<u64>,
    pub no_color: bool,
}

impl Settings {
    pub fn from_env() -> Settings {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Settings {
            hosts_file: var(ENV_HOSTS_FILE)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/hosts")),
            host_memory_mb: var(ENV_HOST_MEMORY_MB)
                .and_then(|v| v.to_str().and_then(|s| s.trim().parse().ok())),
            no_color: var(ENV_NO_COLOR).is_some(),
        }
    }
}
