//! `VBoxManage`: version, host-only interfaces, DHCP servers, pause/resume.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::{Invocation, Runner, find};
use crate::error::Result;

pub struct VBoxManage {
    bin: PathBuf,
    log: PathBuf,
    runner: Runner,
}

/// A host-only interface (`vboxnet0`) and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOnlyIf {
    pub name: String,
    pub address: Option<Ipv4Addr>,
    pub netmask: Option<Ipv4Addr>,
}

/// A VirtualBox DHCP server and the range it leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpServer {
    pub network: String,
    pub server: Option<Ipv4Addr>,
    pub lower: Option<Ipv4Addr>,
    pub upper: Option<Ipv4Addr>,
    pub enabled: bool,
}

impl VBoxManage {
    pub fn find(log: PathBuf, runner: &Runner) -> Result<VBoxManage> {
        Ok(VBoxManage {
            bin: find("VBoxManage", "talk to VirtualBox")?,
            log,
            runner: runner.clone(),
        })
    }

    fn invocation(&self, purpose: impl Into<String>) -> Invocation {
        Invocation::new(&self.bin, "VBoxManage", purpose).log(self.log.clone())
    }

    pub async fn version(&self) -> Result<String> {
        let out = self
            .runner
            .run(
                self.invocation("ask VirtualBox its version")
                    .arg("--version"),
            )
            .await?;
        Ok(out.stdout.trim().to_string())
    }

    pub async fn host_only_interfaces(&self) -> Result<Vec<HostOnlyIf>> {
        let out = self
            .runner
            .run(
                self.invocation("list host-only interfaces")
                    .args(["list", "hostonlyifs"]),
            )
            .await?;
        Ok(parse_hostonlyifs(&out.stdout))
    }

    pub async fn dhcp_servers(&self) -> Result<Vec<DhcpServer>> {
        let out = self
            .runner
            .run(
                self.invocation("list DHCP servers")
                    .args(["list", "dhcpservers"]),
            )
            .await?;
        Ok(parse_dhcpservers(&out.stdout))
    }

    /// `controlvm VM pause|resume`.
    pub async fn control(&self, vm: &str, action: &str) -> Result<()> {
        self.runner
            .run(
                self.invocation(format!("{action} VM {vm}"))
                    .args(["controlvm", vm, action]),
            )
            .await?;
        Ok(())
    }
}

/// Splits `Key:   value` blocks separated by blank lines.
fn blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn get<'a>(block: &'a [(String, String)], key: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub fn parse_hostonlyifs(text: &str) -> Vec<HostOnlyIf> {
    blocks(text)
        .iter()
        .filter_map(|b| {
            Some(HostOnlyIf {
                name: get(b, "Name")?.to_string(),
                address: get(b, "IPAddress").and_then(|v| v.parse().ok()),
                netmask: get(b, "NetworkMask").and_then(|v| v.parse().ok()),
            })
        })
        .collect()
}

pub fn parse_dhcpservers(text: &str) -> Vec<DhcpServer> {
    blocks(text)
        .iter()
        .filter_map(|b| {
            Some(DhcpServer {
                network: get(b, "NetworkName")?.to_string(),
                server: get(b, "Dhcpd IP").and_then(|v| v.parse().ok()),
                lower: get(b, "LowerIPAddress").and_then(|v| v.parse().ok()),
                upper: get(b, "UpperIPAddress").and_then(|v| v.parse().ok()),
                enabled: get(b, "Enabled").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listings() {
        let ifs = "Name:            vboxnet0\nGUID:            786f6276-656e-4074-8000-0a0027000000\nDHCP:            Disabled\nIPAddress:       192.168.56.1\nNetworkMask:     255.255.255.0\n\n";
        assert_eq!(
            parse_hostonlyifs(ifs),
            [HostOnlyIf {
                name: "vboxnet0".into(),
                address: Some(Ipv4Addr::new(192, 168, 56, 1)),
                netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            }]
        );
        let dhcp = "NetworkName:    HostInterfaceNetworking-vboxnet0\nDhcpd IP:       192.168.56.100\nLowerIPAddress: 192.168.56.101\nUpperIPAddress: 192.168.56.254\nNetworkMask:    255.255.255.0\nEnabled:        Yes\n";
        let servers = parse_dhcpservers(dhcp);
        assert_eq!(servers[0].lower, Some(Ipv4Addr::new(192, 168, 56, 101)));
        assert!(servers[0].enabled);
    }
}
