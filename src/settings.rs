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
/// The shared download cache (default `$XDG_CACHE_HOME/kubelab`).
pub const ENV_CACHE_DIR: &str = "KUBELAB_CACHE_DIR";
/// Download release files from this base URL instead of their upstream
/// release pages (a local mirror): `<mirror>/<file name>`.
pub const ENV_ARTIFACTS_MIRROR: &str = "KUBELAB_ARTIFACTS_MIRROR";
/// kubectl's kubeconfig search path; `lab kubeconfig --merge` edits its
/// first file (default ~/.kube/config), as kubectl itself does.
pub const ENV_KUBECONFIG: &str = "KUBECONFIG";
/// The registry of this host's labs (default
/// `$XDG_DATA_HOME/kubelab/labs.json`); tests point it at a file of their own.
pub const ENV_REGISTRY: &str = "KUBELAB_REGISTRY";
/// A folder of recorded host facts (`uname-m`, `proc-modules`, ...) that
/// doctor and the lab defaults read instead of this machine's (tests).
pub const ENV_HOST_FACTS: &str = "KUBELAB_HOST_FACTS";

/// The first wait, in milliseconds, before a VM whose `vagrant up` lost
/// one of VirtualBox's races is booted again alone (it doubles each time).
pub const ENV_BOOT_RETRY_MS: &str = "KUBELAB_BOOT_RETRY_MS";

/// Any value turns colour off (https://no-color.org).
pub const ENV_NO_COLOR: &str = "NO_COLOR";

/// Settings that come from the environment, read once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hosts_file: PathBuf,
    pub host_memory_mb: Option<u64>,
    pub no_color: bool,
    pub cache_dir: PathBuf,
    pub artifacts_mirror: Option<String>,
    /// The kubeconfig `lab kubeconfig --merge` edits; None without $HOME.
    pub user_kubeconfig: Option<PathBuf>,
    /// The labs this host knows (`kubelab labs`).
    pub registry: PathBuf,
    /// Recorded host facts to judge instead of this machine's.
    pub host_facts: Option<PathBuf>,
    /// The first backoff before a VM that lost a VirtualBox race is retried.
    pub boot_retry: std::time::Duration,
}

impl Settings {
    pub fn from_env() -> Settings {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let cache_dir = var(ENV_CACHE_DIR).map(PathBuf::from).unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("kubelab")
        });
        let registry = var(ENV_REGISTRY).map(PathBuf::from).unwrap_or_else(|| {
            var("XDG_DATA_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_else(std::env::temp_dir)
                .join("kubelab/labs.json")
        });
        Settings {
            host_facts: var(ENV_HOST_FACTS).map(PathBuf::from),
            boot_retry: std::time::Duration::from_millis(
                var(ENV_BOOT_RETRY_MS)
                    .and_then(|v| v.to_str().and_then(|s| s.trim().parse().ok()))
                    .unwrap_or(3000),
            ),
            registry,
            cache_dir,
            artifacts_mirror: var(ENV_ARTIFACTS_MIRROR).and_then(|v| v.into_string().ok()),
            hosts_file: var(ENV_HOSTS_FILE)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/hosts")),
            host_memory_mb: var(ENV_HOST_MEMORY_MB)
                .and_then(|v| v.to_str().and_then(|s| s.trim().parse().ok())),
            no_color: var(ENV_NO_COLOR).is_some(),
            user_kubeconfig: var(ENV_KUBECONFIG)
                .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".kube/config"))),
        }
    }
}
