//! registry0's pull-through caches, one per upstream registry.

use askama::Template;

use super::{BIN_DIR, Component, on_node, unit};
use crate::config::Lab;
use crate::render::{Bundle, render_or_bug};
use crate::topology::Node;

/// A registry the lab's cache proxies: the name containerd knows it by, the
/// upstream URL and the cache's port on registry0.
pub struct Upstream {
    pub registry: &'static str,
    pub url: &'static str,
    pub port: u16,
}

/// One cache per upstream: a distribution proxy serves exactly one.
pub const UPSTREAMS: [Upstream; 2] = [
    Upstream {
        registry: "docker.io",
        url: "https://registry-1.docker.io",
        port: 5000,
    },
    Upstream {
        registry: "registry.k8s.io",
        url: "https://registry.k8s.io",
        port: 5001,
    },
];

#[derive(Template)]
#[template(path = "registry/config.yml", escape = "none")]
struct RegistryConfigTemplate<'a> {
    lab: &'a str,
    node: &'a str,
    registry: &'a str,
    storage: String,
    address: String,
    port: u16,
    upstream: &'a str,
}

/// The unit name of the cache of `upstream` (`registry-docker-io.service`).
pub fn registry_unit(upstream: &Upstream) -> String {
    format!("registry-{}.service", upstream.registry.replace('.', "-"))
}

/// registry0: one distribution pull-through cache per upstream.
pub fn registry_files(lab: &Lab, node: &Node, bundle: &mut Bundle) {
    for upstream in &UPSTREAMS {
        let config = format!("etc/kubelab-registry/{}.yml", upstream.registry);
        bundle.text(
            &config,
            render_or_bug(
                &RegistryConfigTemplate {
                    lab: &lab.name,
                    node: &node.name,
                    registry: upstream.registry,
                    storage: format!("/var/lib/kubelab-registry/{}", upstream.registry),
                    address: node.address.to_string(),
                    port: upstream.port,
                    upstream: upstream.url,
                },
                "registry config.yml",
            ),
        );
        unit(
            lab,
            node,
            Component {
                unit: &registry_unit(upstream),
                description: format!(
                    "Pull-through cache of {} on {} of lab {}",
                    upstream.registry, node.name, lab.name
                ),
                documentation: "https://distribution.github.io/distribution/about/configuration/",
                after: vec![],
                requires: vec![],
                binary: format!("{BIN_DIR}/registry"),
                flags: vec!["serve".to_string(), on_node(&config)],
            },
            bundle,
        );
    }
}
