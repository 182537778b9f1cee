//! Facts about the machine kubelab runs on. The ones doctor judges (the
//! OS, `uname -m`, the kernel, loaded modules, KVM's parameter, Windows'
//! hypervisor) are read through [`Facts`], so tests feed recorded outputs
//! of the real commands instead of this machine's.

use std::path::Path;

use crate::settings::{ENV_HOST_FACTS, Settings};
use crate::tools::{Invocation, Runner};

/// Total RAM of this host in MB (`KUBELAB_HOST_MEMORY_MB` overrides it).
pub fn memory_mb(settings: &Settings) -> Option<u64> {
    if let Some(mb) = settings.host_memory_mb {
        return Some(mb);
    }
    let meminfo = fs_err::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo_total(&meminfo)
}

fn parse_meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// A host or box architecture, by Vagrant's names for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// From `uname -m` (`x86_64` on Linux and Intel macs, `aarch64` on Linux
    /// arm64, `arm64` on Apple silicon) or Vagrant's own names.
    pub fn parse(machine: &str) -> Option<Arch> {
        match machine.trim() {
            "x86_64" | "amd64" | "x64" => Some(Arch::Amd64),
            "aarch64" | "arm64" | "armv8" => Some(Arch::Arm64),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Memory kubelab leaves to the host itself when sizing a lab.
pub const HOST_RESERVE_MB: u64 = 2048;

/// The host's operating system, as far as VirtualBox cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    #[default]
    Linux,
    Macos,
    Windows,
    /// Linux under WSL2 on Windows: the Windows side runs Hyper-V.
    Wsl,
    Other,
}

impl Os {
    fn parse(text: &str) -> Os {
        match text.trim() {
            "linux" => Os::Linux,
            "macos" => Os::Macos,
            "windows" => Os::Windows,
            "wsl" => Os::Wsl,
            _ => Os::Other,
        }
    }
}

/// What doctor judges the host by: raw outputs of the real commands and
/// files, each `None` where this OS has no such thing or it could not be
/// read. [`Facts::gather`] reads this machine; with `KUBELAB_HOST_FACTS`
/// naming a folder, [`Facts::recorded`] reads the same outputs from files
/// there (`os`, `uname-m`, `uname-r`, `proc-modules`, `enable_virt_at_load`,
/// `proc_translated`, `systeminfo`, `bcdedit`), which is how tests run.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub os: Os,
    /// `uname -m`.
    pub machine: Option<String>,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// `/proc/modules` (or `lsmod`: the module name leads each line in both).
    pub modules: Option<String>,
    /// `/sys/module/kvm/parameters/enable_virt_at_load` (Linux >= 6.12).
    pub kvm_enable_virt_at_load: Option<String>,
    /// `/proc/cpuinfo` (Linux): its `flags` say vmx or svm.
    pub cpuinfo: Option<String>,
    /// `sysctl -n sysctl.proc_translated` on macOS: `1` under Rosetta.
    pub proc_translated: Option<String>,
    /// `systeminfo` on Windows (`systeminfo.exe` from WSL).
    pub systeminfo: Option<String>,
    /// `bcdedit /enum {current}` on Windows (needs an elevated shell).
    pub bcdedit: Option<String>,
}

impl Facts {
    /// Outputs recorded in `dir`, one file per fact.
    pub fn recorded(dir: &Path) -> Facts {
        let read = |name: &str| fs_err::read_to_string(dir.join(name)).ok();
        Facts {
            os: read("os").map(|t| Os::parse(&t)).unwrap_or_default(),
            machine: read("uname-m"),
            kernel: read("uname-r"),
            modules: read("proc-modules"),
            kvm_enable_virt_at_load: read("enable_virt_at_load"),
            cpuinfo: read("proc-cpuinfo"),
            proc_translated: read("proc_translated"),
            systeminfo: read("systeminfo"),
            bcdedit: read("bcdedit"),
        }
    }

    /// This host's facts (or the recorded ones `KUBELAB_HOST_FACTS` names).
    pub async fn gather(settings: &Settings, runner: &Runner, log: &Path) -> Facts {
        if let Some(dir) = &settings.host_facts {
            return Facts::recorded(dir);
        }
        let run = |program: &'static str, args: &'static [&'static str]| async move {
            let bin = crate::tools::find(program, "read a fact about this host").ok()?;
            let inv = Invocation::new(&bin, program, format!("ask `{program}` about this host"))
                .args(args.iter().copied())
                .log(log.to_path_buf());
            runner.run(inv).await.ok().map(|c| c.stdout)
        };
        let read = |path: &str| fs_err::read_to_string(path).ok();
        let os = if cfg!(target_os = "macos") {
            Os::Macos
        } else if cfg!(target_os = "linux") {
            // WSL2 kernels are named `...-microsoft-standard-WSL2`.
            let release = read("/proc/sys/kernel/osrelease").unwrap_or_default();
            if release.to_ascii_lowercase().contains("microsoft") {
                Os::Wsl
            } else {
                Os::Linux
            }
        } else {
            Os::Other
        };
        let mut facts = Facts {
            os,
            machine: run("uname", &["-m"]).await,
            kernel: run("uname", &["-r"]).await,
            ..Facts::default()
        };
        match os {
            Os::Linux => {
                facts.modules = read("/proc/modules");
                facts.kvm_enable_virt_at_load =
                    read("/sys/module/kvm/parameters/enable_virt_at_load");
                facts.cpuinfo = read("/proc/cpuinfo");
            }
            Os::Macos => {
                facts.proc_translated = run("sysctl", &["-n", "sysctl.proc_translated"]).await;
            }
            Os::Wsl | Os::Windows => {
                facts.systeminfo = run("systeminfo.exe", &[]).await;
                facts.bcdedit = run("bcdedit.exe", &["/enum", "{current}"]).await;
            }
            Os::Other => {}
        }
        facts
    }

    /// The host's architecture: `uname -m`, except that an x86 kubelab
    /// under Rosetta runs on an arm64 Mac.
    pub fn arch(&self) -> Option<Arch> {
        if self.proc_translated.as_deref().map(str::trim) == Some("1") {
            return Some(Arch::Arm64);
        }
        self.machine.as_deref().and_then(Arch::parse)
    }
}

/// The architecture lab defaults are chosen for (the box): the recorded
/// `uname-m` when `KUBELAB_HOST_FACTS` names a folder, else the one this
/// kubelab was built for.
pub fn arch() -> Arch {
    if let Some(dir) = std::env::var_os(ENV_HOST_FACTS).filter(|v| !v.is_empty())
        && let Some(arch) = Facts::recorded(Path::new(&dir)).arch()
    {
        return arch;
    }
    Arch::parse(std::env::consts::ARCH).unwrap_or(Arch::Amd64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_memtotal() {
        let text = "MemTotal:       16303428 kB\nMemFree:         1234 kB\n";
        assert_eq!(super::parse_meminfo_total(text), Some(15921));
    }
}
