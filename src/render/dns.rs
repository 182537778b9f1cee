//! dns0's bind9 files (options, zones, reverse zones) and every node's
//! systemd-resolved drop-in.

use super::*;

#[derive(Template)]
#[template(path = "bind/named.conf.options", escape = "none")]
pub(super) struct NamedOptionsTemplate<'a> {
    lab: &'a str,
    address: String,
    lab_cidr: String,
    pod_cidr: String,
    forwarders: Vec<String>,
}

pub(super) struct ReverseZone {
    /// `56.168.192.in-addr.arpa`
    pub(super) name: String,
    /// `db.192.168.56`
    pub(super) file: String,
    pub(super) records: Vec<ZoneRecord>,
}

#[derive(Template)]
#[template(path = "bind/named.conf.local", escape = "none")]
pub(super) struct NamedLocalTemplate<'a> {
    lab: &'a str,
    domain: &'a str,
    reverse_zones: &'a [ReverseZone],
}

pub(super) struct ZoneRecord {
    name: String,
    kind: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "bind/zone", escape = "none")]
pub(super) struct ZoneTemplate<'a> {
    lab: &'a str,
    origin: &'a str,
    domain: &'a str,
    primary: &'a str,
    serial: u32,
    records: &'a [ZoneRecord],
}

/// Every name the lab zone holds, with its address: the nodes, then the API.
pub(super) fn lab_names(topo: &Topology) -> Vec<(String, Ipv4Addr)> {
    let mut names: Vec<(String, Ipv4Addr)> = topo
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.address))
        .collect();
    let api_label = topo
        .api
        .name
        .strip_suffix(&format!(".{}", topo.domain))
        .unwrap_or(&topo.api.name)
        .to_string();
    names.push((api_label, topo.api.address));
    names
}

/// One reverse zone per /24 the lab's addresses fall in, whatever the
/// network's prefix, so every address has its PTR record.
pub(super) fn reverse_zones(topo: &Topology) -> Vec<ReverseZone> {
    let mut zones: Vec<ReverseZone> = Vec::new();
    for (label, address) in lab_names(topo) {
        let [a, b, c, d] = address.octets();
        let name = format!("{c}.{b}.{a}.in-addr.arpa");
        let record = ZoneRecord {
            name: d.to_string(),
            kind: "PTR",
            value: format!("{label}.{}.", topo.domain),
        };
        match zones.iter_mut().find(|z| z.name == name) {
            Some(zone) => zone.records.push(record),
            None => zones.push(ReverseZone {
                name,
                file: format!("db.{a}.{b}.{c}"),
                records: vec![record],
            }),
        }
    }
    zones
}

/// The SOA serial: FNV-1a of the records, so it changes whenever a record
/// does and re-rendering an unchanged lab changes no byte. The lab has no
/// secondary servers, so the serial need not grow monotonically.
pub(super) fn zone_serial(records: &[ZoneRecord]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for r in records {
        for byte in format!("{} {} {}\n", r.name, r.kind, r.value).bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    // Serials are 32-bit, but 0 reads as "unset" to some tools; keep 1..2^31.
    hash % 0x7fff_ffff + 1
}

pub(super) fn dns_files(lab: &Lab, topo: &Topology, node: &Node, bundle: &mut Bundle) {
    bundle.text(
        "etc/bind/named.conf.options",
        render_or_bug(
            &NamedOptionsTemplate {
                lab: &lab.name,
                address: node.address.to_string(),
                lab_cidr: lab.network.cidr.to_string(),
                pod_cidr: lab.network.pod_cidr.to_string(),
                forwarders: lab
                    .network
                    .dns_forwarders
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
            "named.conf.options",
        ),
    );
    let reverse = reverse_zones(topo);
    bundle.text(
        "etc/bind/named.conf.local",
        render_or_bug(
            &NamedLocalTemplate {
                lab: &lab.name,
                domain: &topo.domain,
                reverse_zones: &reverse,
            },
            "named.conf.local",
        ),
    );
    let primary = node.fqdn.as_str();
    let forward: Vec<ZoneRecord> = lab_names(topo)
        .into_iter()
        .map(|(name, address)| ZoneRecord {
            name,
            kind: "A",
            value: address.to_string(),
        })
        .collect();
    let mut zones = vec![(format!("db.{}", topo.domain), topo.domain.clone(), forward)];
    for zone in reverse {
        zones.push((zone.file, zone.name, zone.records));
    }
    for (file, origin, records) in zones {
        let text = render_or_bug(
            &ZoneTemplate {
                lab: &lab.name,
                origin: &origin,
                domain: &topo.domain,
                primary,
                serial: zone_serial(&records),
                records: &records,
            },
            &file,
        );
        bundle.text(&format!("etc/bind/{file}"), text);
    }
}

#[derive(Template)]
#[template(path = "resolved/kubelab.conf", escape = "none")]
pub(super) struct ResolvedTemplate<'a> {
    lab: &'a str,
    domain: &'a str,
    dns_address: String,
    routing_domains: Vec<String>,
}

/// systemd-resolved sends only the lab's names to dns0 (`~domain` is a
/// routing-only domain), so every other lookup keeps working as before.
pub(super) fn resolved_dropin(lab: &Lab, topo: &Topology, dns: &Node) -> String {
    let mut routing_domains = vec![topo.domain.clone()];
    routing_domains.extend(reverse_zones(topo).into_iter().map(|z| z.name));
    render_or_bug(
        &ResolvedTemplate {
            lab: &lab.name,
            domain: &topo.domain,
            dns_address: dns.address.to_string(),
            routing_domains,
        },
        "the systemd-resolved drop-in",
    )
}
