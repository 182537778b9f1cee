//! Check 2, dns: dns0 answers every name and reverse record from the host,
//! every node resolves the others, and the hypervisor's hosts block is the plan's.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::config::Role;
use crate::lab::LoadedLab;
use crate::topology::Node;

use super::dns_client::{self, Record};
use super::{Ctx, Outcome, judge};

const DNS_WAIT: Duration = Duration::from_secs(2);

pub(super) async fn dns(ctx: &Ctx<'_>) -> Outcome {
    let LoadedLab { lab, topo, .. } = ctx.loaded;
    let Some(dns0) = topo.by_role(Role::Dns).next() else {
        return Outcome::Skipped("the lab has no DNS node".into());
    };
    let server = SocketAddr::from((dns0.address, 53));
    let mut problems = Vec::new();

    // From the host: every name and reverse record, as dns0 answers them.
    let mut names: Vec<(String, Ipv4Addr)> = topo
        .nodes
        .iter()
        .map(|n| (n.fqdn.clone(), n.address))
        .collect();
    names.push((topo.api.name.clone(), topo.api.address));
    let forward = futures_util::future::join_all(
        names
            .iter()
            .map(|(name, _)| dns_client::query(server, name, dns_client::TYPE_A, DNS_WAIT)),
    )
    .await;
    for ((name, want), got) in names.iter().zip(forward) {
        match got {
            Ok(records) if records == [Record::A(*want)] => {}
            Ok(records) => problems.push(format!(
                "{} answers {name} with {records:?}, not {want}",
                dns0.name
            )),
            Err(e) => problems.push(format!("{} on {name}: {e}", dns0.name)),
        }
    }
    let reverse = futures_util::future::join_all(topo.nodes.iter().map(|n| {
        dns_client::query(
            server,
            dns_client::reverse_name(n.address),
            dns_client::TYPE_PTR,
            DNS_WAIT,
        )
    }))
    .await;
    for (n, got) in topo.nodes.iter().zip(reverse) {
        let want = Record::Ptr(format!("{}.", n.fqdn));
        match got {
            Ok(records) if records == [want.clone()] => {}
            Ok(records) => problems.push(format!(
                "{} answers the reverse of {} with {records:?}, not {}.",
                dns0.name, n.address, n.fqdn
            )),
            Err(e) => problems.push(format!(
                "{} on the reverse of {}: {e}",
                dns0.name, n.address
            )),
        }
    }

    // On every node: the others resolve through its resolver.
    let resolved = futures_util::future::join_all(topo.nodes.iter().map(|n| {
        let others: Vec<&str> = topo
            .nodes
            .iter()
            .filter(|o| o.name != n.name)
            .map(|o| o.fqdn.as_str())
            .collect();
        let command = format!(
            "for name in {}; do getent hosts \"$name\" || echo \"- $name\"; done",
            others.join(" ")
        );
        ctx.ssh(&n.name, command, "resolve the other nodes")
    }))
    .await;
    for (n, got) in topo.nodes.iter().zip(resolved) {
        match got {
            Ok(out) => problems.extend(
                resolution_problems(&out, topo.nodes.iter().filter(|o| o.name != n.name))
                    .into_iter()
                    .map(|p| format!("on {}: {p}", n.name)),
            ),
            Err(e) => problems.push(format!("on {}: {e}", n.name)),
        }
    }

    // The hypervisor's hosts block is the one the plan makes.
    let want = crate::render::hosts_block(lab, topo);
    match crate::hosts_file::read(&ctx.hosts_file) {
        Ok(text) => match lab_block(&text, &lab.name) {
            Some(block) if block == crate::hosts_file::unambiguous(&want, &text, &lab.name) => {}
            Some(_) => problems.push(format!(
                "the lab's block in {} differs from the plan",
                ctx.hosts_file.display()
            )),
            None => problems.push(format!(
                "no block for lab {} in {}",
                lab.name,
                ctx.hosts_file.display()
            )),
        },
        Err(e) => problems.push(format!("could not read {}: {e}", ctx.hosts_file.display())),
    }

    judge(
        problems,
        format!(
            "{} answers {} names and {} reverse records; every node resolves the other {}; the block in {} matches the plan",
            dns0.name,
            names.len(),
            topo.nodes.len(),
            topo.nodes.len().saturating_sub(1),
            ctx.hosts_file.display()
        ),
        "`kubelab lab ssh dns0 -- sudo journalctl -u named` and `resolvectl status` on a node say why; `kubelab lab up` (without --no-hosts) rewrites the hosts block",
    )
}

/// What is wrong in `getent hosts` output (one line per name, `- NAME` for
/// a name that did not resolve) against the nodes that should be there.
fn resolution_problems<'a>(out: &str, expected: impl Iterator<Item = &'a Node>) -> Vec<String> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for line in out.lines() {
        let mut words = line.split_whitespace();
        if let (Some(address), Some(name)) = (words.next(), words.next()) {
            seen.insert(name.trim_end_matches('.'), address);
        }
    }
    expected
        .filter_map(|n| match seen.get(n.fqdn.as_str()) {
            Some(&"-") | None => Some(format!("{} does not resolve", n.fqdn)),
            Some(address) if *address != n.address.to_string() => Some(format!(
                "{} resolves to {address}, not {}",
                n.fqdn, n.address
            )),
            Some(_) => None,
        })
        .collect()
}

/// The lab's marked block in a hosts file, with `\n` line ends.
fn lab_block(text: &str, lab: &str) -> Option<String> {
    let begin = format!("# BEGIN kubelab {lab}");
    let end = format!("# END kubelab {lab}");
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if !inside && line == begin {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
            if line == end {
                return Some(out);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_block_is_read_back_whatever_the_line_ends() {
        let block = "# BEGIN kubelab lab\n192.168.56.2 dns0.lan dns0\n# END kubelab lab\n";
        let text = format!("127.0.0.1 localhost\n{block}::1 localhost\n");
        assert_eq!(lab_block(&text, "lab").unwrap(), block);
        assert_eq!(
            lab_block(&text.replace('\n', "\r\n"), "lab").unwrap(),
            block
        );
        assert_eq!(lab_block(block.trim_end(), "lab").unwrap(), block);
        assert!(lab_block(&text, "other").is_none());
        assert!(lab_block("# BEGIN kubelab lab\n1.2.3.4 x\n", "lab").is_none());
    }

    #[test]
    fn getent_output_is_compared_with_the_plan() {
        let lab = crate::lab::builtin();
        let topo = crate::topology::Topology::new(&lab);
        let nodes: Vec<&Node> = ["etcd0", "etcd1", "worker0"]
            .iter()
            .filter_map(|n| topo.node(n))
            .collect();
        let out = "192.168.56.10   etcd0.lan\n192.168.56.99   etcd1.lan\n- worker0.lan\n";
        assert_eq!(
            resolution_problems(out, nodes.into_iter()),
            [
                "etcd1.lan resolves to 192.168.56.99, not 192.168.56.11",
                "worker0.lan does not resolve"
            ]
        );
    }
}
