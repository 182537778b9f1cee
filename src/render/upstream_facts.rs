//! Every flag and config field kubelab renders, held to the facts read from
//! upstream for the release of each bill-of-materials row
//! (`tests/fixtures/upstream/kubernetes-<minor>.yaml`, each fact naming the
//! upstream file and tag). A row without facts, a flag or field its release
//! does not know, or one it deprecates, fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::artifacts::RELEASES;
use crate::config::LabSource;
use crate::render::RenderedFile;
use crate::topology::Topology;

#[derive(Debug, Deserialize)]
struct Facts {
    release: String,
    tag: String,
    /// binary -> flag -> where upstream registers it.
    flags: BTreeMap<String, BTreeMap<String, String>>,
    deprecated_flags: BTreeMap<String, BTreeMap<String, String>>,
    kinds: BTreeMap<String, Kind>,
    containerd: Containerd,
}

#[derive(Debug, Deserialize)]
struct Kind {
    #[serde(rename = "apiVersion")]
    api_version: String,
    deprecated: Vec<String>,
    fields: BTreeSet<String>,
}

#[derive(Debug, Deserialize)]
struct Containerd {
    version: String,
    config_version: i64,
    deprecated: BTreeMap<String, Vec<String>>,
    sections: BTreeMap<String, BTreeSet<String>>,
}

const BINARIES: [&str; 5] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
];

fn facts(minor: &str) -> Facts {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/upstream/kubernetes-{minor}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "row {minor} has no upstream facts ({}: {e}): read them from upstream at that release before adding the row",
            path.display()
        )
    });
    let facts: Facts = serde_yaml::from_str(&text).unwrap();
    assert_eq!(facts.release, minor, "{}", path.display());
    facts
}

fn render_row(minor: &str) -> Vec<RenderedFile> {
    let lab = crate::lab::parse(
        &format!("versions:\n  kubernetes: \"{minor}\"\n"),
        LabSource::BuiltIn,
    )
    .unwrap();
    let topo = Topology::new(&lab);
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::pki::load_or_create(dir.path(), &lab, &topo).unwrap();
    super::all(&lab, &topo, &pki)
}

/// The `--name`s of a unit's ExecStart, continuation lines joined.
fn unit_flags(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let Some(exec) = joined.lines().find(|l| l.starts_with("ExecStart=")) else {
        return Vec::new();
    };
    exec.split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect()
}

/// Every key path of a YAML document, dotted; a list's items share its path.
fn yaml_paths(value: &serde_yaml::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (k, v) in map {
                let key = k.as_str().unwrap_or_default();
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                out.push(path.clone());
                yaml_paths(v, &path, out);
            }
        }
        serde_yaml::Value::Sequence(items) => {
            for item in items {
                yaml_paths(item, prefix, out);
            }
        }
        _ => {}
    }
}

/// Every key path under a TOML table; a runtime's name becomes `*`.
fn toml_paths(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = if prefix.ends_with("containerd.runtimes") {
            "*"
        } else {
            k.as_str()
        };
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        // A runtime's name is a map key, not a field.
        if key != "*" {
            out.push(path.clone());
        }
        if let toml::Value::Table(t) = v {
            toml_paths(t, &path, out);
        }
    }
}

/// What in `files` the facts of its release do not allow.
fn problems(facts: &Facts, files: &[RenderedFile]) -> (Vec<String>, BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for f in files {
        let name = f.path.rsplit('/').next().unwrap_or_default();
        if let Some(binary) = name.strip_suffix(".service")
            && BINARIES.contains(&binary)
        {
            seen.insert(binary.to_string());
            let known = &facts.flags[binary];
            let deprecated = &facts.deprecated_flags[binary];
            for flag in unit_flags(&f.contents) {
                if let Some(why) = deprecated.get(&flag) {
                    problems.push(format!(
                        "{}: --{flag} is deprecated or removed in {} ({why})",
                        f.path, facts.tag
                    ));
                } else if !known.contains_key(&flag) {
                    problems.push(format!(
                        "{}: --{flag} is not a {binary} flag known for {} (tests/fixtures/upstream/kubernetes-{}.yaml)",
                        f.path, facts.tag, facts.release
                    ));
                }
            }
        }
        if f.path.ends_with(".yaml") {
            for doc in serde_yaml::Deserializer::from_str(&f.contents) {
                let Ok(doc) = serde_yaml::Value::deserialize(doc) else {
                    continue;
                };
                let Some(kind) = doc.get("kind").and_then(|k| k.as_str()) else {
                    continue;
                };
                let Some(facts_kind) = facts.kinds.get(kind) else {
                    continue;
                };
                seen.insert(kind.to_string());
                let api = doc.get("apiVersion").and_then(|a| a.as_str());
                if api != Some(facts_kind.api_version.as_str()) {
                    problems.push(format!(
                        "{}: {kind} apiVersion {api:?}, expected {}",
                        f.path, facts_kind.api_version
                    ));
                }
                let mut paths = Vec::new();
                yaml_paths(&doc, "", &mut paths);
                for p in paths {
                    if p == "apiVersion" || p == "kind" {
                        continue;
                    }
                    if facts_kind.deprecated.contains(&p) {
                        problems.push(format!(
                            "{}: {kind}.{p} is deprecated in {}",
                            f.path, facts.tag
                        ));
                    } else if !facts_kind.fields.contains(&p) {
                        problems.push(format!(
                            "{}: {kind} has no field {p} in {}",
                            f.path, facts.tag
                        ));
                    }
                }
            }
        }
        if f.path.ends_with("etc/containerd/config.toml") {
            seen.insert("containerd".to_string());
            let c = &facts.containerd;
            let config: toml::Table = match f.contents.parse() {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{}: not TOML: {e}", f.path));
                    continue;
                }
            };
            if config.get("version").and_then(|v| v.as_integer()) != Some(c.config_version) {
                problems.push(format!(
                    "{}: containerd {} reads config version {}, not {:?}",
                    f.path,
                    c.version,
                    c.config_version,
                    config.get("version")
                ));
            }
            for key in config.keys() {
                if key != "version" && key != "plugins" {
                    problems.push(format!(
                        "{}: top-level {key} is not checked by the facts",
                        f.path
                    ));
                }
            }
            let plugins = config.get("plugins").and_then(|p| p.as_table());
            for (section, table) in plugins.into_iter().flatten() {
                let Some(allowed) = c.sections.get(section) else {
                    problems.push(format!(
                        "{}: plugin section {section} is not one containerd {} has (or the facts know)",
                        f.path, c.version
                    ));
                    continue;
                };
                let mut paths = Vec::new();
                if let Some(t) = table.as_table() {
                    toml_paths(t, "", &mut paths);
                }
                for p in paths {
                    let deprecated = c.deprecated.get(section).is_some_and(|d| d.contains(&p));
                    if deprecated {
                        problems.push(format!(
                            "{}: [{section}] {p} is deprecated in containerd {}",
                            f.path, c.version
                        ));
                    } else if !allowed.contains(&p) {
                        problems.push(format!(
                            "{}: [{section}] has no key {p} in containerd {}",
                            f.path, c.version
                        ));
                    }
                }
            }
        }
    }
    (problems, seen)
}

#[test]
fn every_row_renders_only_flags_and_fields_its_release_knows() {
    for row in RELEASES {
        let facts = facts(row.minor);
        let files = render_row(row.minor);
        assert_eq!(
            facts.containerd.version, row.containerd.version,
            "the facts of {} are for another containerd",
            row.minor
        );
        let (problems, seen) = problems(&facts, &files);
        assert!(
            problems.is_empty(),
            "row {}:\n  {}",
            row.minor,
            problems.join("\n  ")
        );
        // Nothing was skipped: every binary, kind and the containerd config
        // was found and checked.
        let mut expected: BTreeSet<String> = BINARIES.iter().map(|b| b.to_string()).collect();
        expected.extend(facts.kinds.keys().cloned());
        expected.insert("containerd".into());
        assert_eq!(seen, expected, "row {}", row.minor);
    }
}

#[test]
fn a_flag_or_field_the_release_does_not_know_is_caught() {
    let row = &RELEASES[0];
    let facts = facts(row.minor);
    let mut files = render_row(row.minor);
    for f in &mut files {
        if f.path.ends_with("kube-apiserver.service") {
            f.contents = f.contents.replace(
                "--v=2",
                "--v=2 \\\n  --insecure-port=0 \\\n  --no-such-flag=1",
            );
        }
        if f.path.ends_with("kubelet-config.yaml") {
            f.contents
                .push_str("streamingConnectionIdleTimeout: 4h\nnoSuchField: 1\n");
        }
        if f.path.ends_with("etc/containerd/config.toml") {
            f.contents = f.contents.replace("version = ", "version = 1");
        }
    }
    let (problems, _) = problems(&facts, &files);
    let text = problems.join("\n");
    for expected in [
        "--insecure-port is deprecated or removed",
        "--no-such-flag is not a kube-apiserver flag",
        "KubeletConfiguration.streamingConnectionIdleTimeout is deprecated",
        "KubeletConfiguration has no field noSuchField",
        "reads config version",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

/// CoreDNS and pause are pulled by the digest the image promoter's manifest
/// states where one was read (the 1.35 row's), by tag otherwise; never a
/// digest for a tag it was not published for.
#[test]
fn images_with_a_published_digest_are_pulled_by_it() {
    let text = |files: &[RenderedFile], path: &str| {
        files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.contents.clone())
            .unwrap_or_else(|| panic!("no {path}"))
    };
    let old = render_row("1.35");
    assert!(
        text(&old, "host/manifests/coredns.yaml").contains(
            "image: registry.k8s.io/coredns/coredns:v1.12.4@sha256:986f04c2e15e147d00bdd51e8c51bcef3644b13ff806be7d2ff1b261d6dfbae1"
        )
    );
    assert!(
        text(&old, "worker0/etc/containerd/config.toml").contains(
            "sandbox = 'registry.k8s.io/pause:3.10.1@sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c'"
        )
    );
    // The default row's tags have no digest read from upstream: by tag.
    let new = render_row(RELEASES[0].minor);
    let coredns = text(&new, "host/manifests/coredns.yaml");
    assert!(
        coredns.contains(&format!(
            "image: registry.k8s.io/coredns/coredns:v{}\n",
            RELEASES[0].coredns
        )),
        "{coredns}"
    );
    assert!(!text(&new, "host/manifests/metrics-server.yaml").contains("@sha256:"));
    for (image, tag, digest) in crate::releases::IMAGE_DIGESTS {
        assert_eq!(digest.len(), "sha256:".len() + 64, "{image}:{tag}");
        assert!(digest.starts_with("sha256:"), "{image}:{tag}");
    }
}
