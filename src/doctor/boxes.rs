//! The box against this host: its architecture, and whether `vagrant box
//! list` has it for virtualbox (or it is known to be published).

use crate::config::BoxSpec;
use crate::host::Facts;
use crate::platform::{self, Arch, BoxSupport};
use crate::verify::Outcome;

/// The host's architecture against the box's.
pub(super) fn architecture(facts: &Facts, arch: Option<Arch>, vm_box: &BoxSpec) -> Outcome {
    let Some(arch) = arch else {
        return Outcome::Warned {
            why: format!(
                "could not tell this host's architecture from `uname -m` ({:?})",
                facts.machine.as_deref().unwrap_or("").trim()
            ),
            hint: None,
        };
    };
    let rosetta = if facts.proc_translated.as_deref().map(str::trim) == Some("1") {
        " (kubelab itself runs under Rosetta)"
    } else {
        ""
    };
    let b = &vm_box.name;
    let at = vm_box
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    match platform::box_support(b, vm_box.version.as_deref(), arch) {
        BoxSupport::Yes { .. } => Outcome::Passed(format!(
            "host {arch}{rosetta}; {b}{at} has a VirtualBox {arch} build"
        )),
        BoxSupport::No { why } => {
            let d = platform::default_box(arch);
            Outcome::Failed {
                why: format!(
                    "host {arch}{rosetta}, but {b}{at} has no VirtualBox {arch} build: {why}"
                ),
                hint: Some(format!(
                    "remove box.name and box.version from lab.yaml to use the {arch} default, {} {}",
                    d.name, d.version
                )),
            }
        }
        BoxSupport::Unknown => Outcome::Warned {
            why: format!(
                "host {arch}{rosetta}; kubelab does not know whether {b}{at} has a VirtualBox {arch} build"
            ),
            hint: Some(format!(
                "`vagrant box add {b}{} --provider virtualbox --architecture {arch}` tells",
                vm_box
                    .version
                    .as_deref()
                    .map(|v| format!(" --box-version {v}"))
                    .unwrap_or_default()
            )),
        },
    }
}

/// One line of `vagrant box list`: `NAME (PROVIDER, VERSION[, (ARCH, ...)])`
/// (hashicorp/vagrant plugins/commands/box/command/list.rb; the
/// architectures appear from Vagrant 2.4.0 on).
struct ListedBox<'a> {
    name: &'a str,
    provider: &'a str,
    version: &'a str,
    arches: Vec<&'a str>,
}

fn parse_box_list(text: &str) -> Vec<ListedBox<'_>> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(char::is_whitespace)?;
            let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            let (provider, rest) = inner.split_once(',')?;
            let (version, arches) = match rest.split_once(',') {
                Some((v, a)) => (v, a.trim().trim_start_matches('(').trim_end_matches(')')),
                None => (rest, ""),
            };
            Some(ListedBox {
                name,
                provider: provider.trim(),
                version: version.trim(),
                arches: arches
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .collect(),
            })
        })
        .collect()
}

/// The box is downloaded for provider virtualbox, its version and the host's
/// architecture, or known to be downloadable.
pub(super) fn box_available(list: &str, vm_box: &BoxSpec, arch: Option<Arch>) -> Outcome {
    let name = &vm_box.name;
    let version = vm_box.version.as_deref();
    let listed = parse_box_list(list);
    let here = listed.iter().find(|b| {
        b.name == name
            && b.provider == "virtualbox"
            && version.is_none_or(|v| v == b.version)
            // A box added before Vagrant 2.4 lists no architecture.
            && (b.arches.is_empty() || arch.is_none_or(|a| b.arches.contains(&a.as_str())))
    });
    let at = version.map(|v| format!(" {v}")).unwrap_or_default();
    if let Some(b) = here {
        return Outcome::Passed(format!(
            "{name} {} is downloaded for virtualbox{}",
            b.version,
            if b.arches.is_empty() {
                String::new()
            } else {
                format!(" ({})", b.arches.join(", "))
            }
        ));
    }
    let add = format!(
        "`vagrant box add {name}{} --provider virtualbox{}` fetches it now",
        version
            .map(|v| format!(" --box-version {v}"))
            .unwrap_or_default(),
        arch.map(|a| format!(" --architecture {a}"))
            .unwrap_or_default()
    );
    match arch.map(|a| platform::box_support(name, version, a)) {
        Some(BoxSupport::No { .. }) => Outcome::Failed {
            why: format!(
                "{name}{at} is not downloaded, and it has no VirtualBox build for this host (see the architecture check)"
            ),
            hint: Some("choose the box the architecture check names".into()),
        },
        Some(BoxSupport::Yes { .. }) => Outcome::Warned {
            why: format!(
                "{name}{at} is not downloaded yet; it is published for virtualbox on this architecture, and the first `kubelab lab up` fetches it (about 1 GB)"
            ),
            hint: Some(add),
        },
        _ => Outcome::Warned {
            why: format!(
                "{name}{at} is not downloaded yet, and kubelab cannot tell whether it is published for virtualbox on this architecture; the first `kubelab lab up` tries"
            ),
            hint: Some(add),
        },
    }
}

#[cfg(test)]
mod tests {
    //! Each verdict against recorded outputs of the real commands
    //! (tests/fixtures/host/README.md says where each shape comes from).
    use super::*;
    use crate::host::Os;

    fn spec(name: &str, version: Option<&str>) -> BoxSpec {
        BoxSpec {
            name: name.into(),
            version: version.map(Into::into),
        }
    }

    #[test]
    fn an_x86_box_on_an_arm64_host_fails_and_names_the_arm64_default() {
        let facts = Facts {
            os: Os::Macos,
            machine: Some("arm64\n".into()),
            proc_translated: Some("0\n".into()),
            ..Facts::default()
        };
        let arch = facts.arch();
        assert_eq!(arch, Some(Arch::Arm64));
        let c = architecture(
            &facts,
            arch,
            &spec("bento/ubuntu-24.04", Some("202510.26.0")),
        );
        assert_eq!(c.status(), "failed", "{}", c.detail());
        assert!(
            c.hint()
                .unwrap()
                .contains("gusztavvargadr/ubuntu-server-2404-lts 2607.1.0")
        );
        let c = architecture(
            &facts,
            arch,
            &spec("gusztavvargadr/ubuntu-server-2404-lts", Some("2607.1.0")),
        );
        assert_eq!(c.status(), "passed", "{}", c.detail());
        // An x86 kubelab under Rosetta still runs on an arm64 Mac.
        let rosetta = Facts {
            machine: Some("x86_64\n".into()),
            proc_translated: Some("1\n".into()),
            ..facts
        };
        assert_eq!(rosetta.arch(), Some(Arch::Arm64));
    }

    #[test]
    fn the_box_list_is_read_per_provider_version_and_architecture() {
        let list = fixture!("box-list.txt");
        let c = box_available(
            list,
            &spec("bento/ubuntu-24.04", Some("202510.26.0")),
            Some(Arch::Amd64),
        );
        assert_eq!(c.status(), "passed", "{}", c.detail());
        // Listed for vmware_desktop only: not there for VirtualBox, but
        // published for it.
        let arm = spec("gusztavvargadr/ubuntu-server-2404-lts", Some("2607.1.0"));
        let c = box_available(list, &arm, Some(Arch::Arm64));
        assert_eq!(c.status(), "warned", "{}", c.detail());
        assert!(c.hint().unwrap().contains("vagrant box add gusztavvargadr/ubuntu-server-2404-lts --box-version 2607.1.0 --provider virtualbox --architecture arm64"));
        // Another pinned version than the one downloaded.
        let c = box_available(
            list,
            &spec("bento/ubuntu-24.04", Some("202502.21.0")),
            Some(Arch::Amd64),
        );
        assert_eq!(c.status(), "warned");
        // Never downloadable for this host.
        let c = box_available(
            list,
            &spec("bento/ubuntu-24.04", Some("202510.26.0")),
            Some(Arch::Arm64),
        );
        assert_eq!(c.status(), "failed");
    }
}
