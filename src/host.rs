//! Facts about the machine kubelab runs on.

use crate::settings::Settings;

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

/// Memory kubelab leaves to the host itself when sizing a lab.
pub const HOST_RESERVE_MB: u64 = 2048;

#[cfg(test)]
mod tests {
    #[test]
    fn reads_memtotal() {
        let text = "MemTotal:       16303428 kB\nMemFree:         1234 kB\n";
        assert_eq!(super::parse_meminfo_total(text), Some(15921));
    }
}
