//! What kubelab knows about the VirtualBox platform, kept in one place with
//! its sources: which Vagrant release first drives which VirtualBox minor,
//! the KVM setting each VirtualBox release needs on Linux >= 6.12, the box
//! pinned per architecture, and where saved-state snapshots break. Doctor,
//! validation and snapshots read these tables; nothing else restates them.

pub use crate::host::Arch;

/// A dotted version (`7.2.4`, `2.4.10.dev` -> 2.4.10), compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// The leading `X.Y[.Z]` of `text`; anything after the numbers is ignored.
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.trim().split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Version(major, minor, patch))
    }

    pub fn minor(self) -> (u32, u32) {
        (self.0, self.1)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// `vagrant --version` prints `Vagrant 2.4.9` (hashicorp/vagrant bin/vagrant:
/// `puts "Vagrant #{Vagrant::VERSION}"`).
pub fn parse_vagrant_version(output: &str) -> Option<Version> {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with("Vagrant "))?;
    Version::parse(line.trim_start().trim_start_matches("Vagrant "))
}

/// `VBoxManage --version` prints `7.2.4r170995`, `7.0.16_Ubuntur162802` or
/// `4.1.8r1234_OSE`, maybe after a multi-line `WARNING:`; cut at `_`, then
/// at `r`, as Vagrant does (hashicorp/vagrant
/// plugins/providers/virtualbox/driver/meta.rb, `read_version`).
pub fn parse_virtualbox_version(output: &str) -> Option<Version> {
    let line = virtualbox_version_line(output)?;
    let head = line.split('_').next()?;
    Version::parse(head.split('r').next()?)
}

/// The line of `VBoxManage --version` that holds the version: the first
/// one starting with a digit (a warning's continuation lines are indented
/// text).
pub fn virtualbox_version_line(output: &str) -> Option<&str> {
    output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(|c: char| c.is_ascii_digit()))
}

/// `VBoxManage --version` says the kernel driver is missing (Vagrant's
/// meta.rb checks the same two phrases).
pub fn virtualbox_driver_missing(output: &str) -> bool {
    output.contains("vboxdrv kernel module is not loaded")
        || output
            .to_ascii_lowercase()
            .contains("virtualbox kernel modules are not loaded")
}

/// One row of the Vagrant x VirtualBox support table.
pub struct DriverSupport {
    pub virtualbox: (u32, u32),
    /// The first Vagrant release whose VirtualBox driver map knows it.
    pub vagrant: Version,
    pub source: &'static str,
}

/// The Vagrant x VirtualBox pair. Vagrant keeps a hard-coded map from
/// VirtualBox minor to driver and refuses a minor it does not list
/// ("Vagrant has detected that you have a version of VirtualBox installed
/// that is not supported", hashicorp/vagrant
/// plugins/providers/virtualbox/driver/meta.rb `driver_map`); each row is
/// the release that added the minor, from Vagrant's CHANGELOG.md.
pub const DRIVER_SUPPORT: &[DriverSupport] = &[
    DriverSupport {
        virtualbox: (6, 1),
        vagrant: Version(2, 2, 7),
        source: "Vagrant CHANGELOG 2.2.7: VirtualBox 6.1.x support (GH-11250)",
    },
    DriverSupport {
        virtualbox: (7, 0),
        vagrant: Version(2, 3, 2),
        source: "Vagrant CHANGELOG 2.3.2: support for VirtualBox 7.0 (GH-12947)",
    },
    DriverSupport {
        virtualbox: (7, 1),
        vagrant: Version(2, 4, 2),
        source: "Vagrant CHANGELOG 2.4.2: support for VirtualBox 7.1 (GH-13513); 2.4.1 refused it (hashicorp/vagrant#13501)",
    },
    DriverSupport {
        virtualbox: (7, 2),
        vagrant: Version(2, 4, 9),
        source: "Vagrant CHANGELOG 2.4.9: support for VirtualBox 7.2 (GH-13709, hashicorp/vagrant#13707)",
    },
];

/// The oldest VirtualBox kubelab runs on: 6.1.28 introduced the host-only
/// range rule (192.168.56.0/21 unless /etc/vbox/networks.conf) that
/// validation and doctor check against.
pub const OLDEST_VIRTUALBOX: Version = Version(6, 1, 28);

/// What the support table says about a Vagrant and a VirtualBox.
#[derive(Debug, PartialEq, Eq)]
pub enum Pairing {
    Supported {
        needs: Version,
    },
    VagrantTooOld {
        needs: Version,
        source: &'static str,
    },
    VirtualBoxTooOld,
    /// A VirtualBox minor newer than the table: Vagrant may not know it yet.
    Unknown {
        newest_known: (u32, u32),
    },
}

pub fn pairing(vagrant: Version, virtualbox: Version) -> Pairing {
    if virtualbox < OLDEST_VIRTUALBOX {
        return Pairing::VirtualBoxTooOld;
    }
    match DRIVER_SUPPORT
        .iter()
        .find(|row| row.virtualbox == virtualbox.minor())
    {
        Some(row) if vagrant >= row.vagrant => Pairing::Supported { needs: row.vagrant },
        Some(row) => Pairing::VagrantTooOld {
            needs: row.vagrant,
            source: row.source,
        },
        None => Pairing::Unknown {
            newest_known: DRIVER_SUPPORT
                .last()
                .map(|r| r.virtualbox)
                .unwrap_or((0, 0)),
        },
    }
}

/// From VirtualBox 7.2.10 on, KVM may stay loaded with
/// `enable_virt_at_load=1`, and `0` (the fix for older releases) breaks it:
/// "either kvm_intel/kvm_amd must be absent (lsmod), or enable_virt_at_load
/// must have value 1 now" (VirtualBox/virtualbox#711, 2026-06).
pub const KVM_FLIP: Version = Version(7, 2, 10);

/// Linux 6.12 made KVM take VT-x/AMD-V when its module loads
/// (`kvm.enable_virt_at_load`, default on), so VirtualBox fails with
/// VERR_VMX_IN_VMX_ROOT_MODE / VERR_SVM_IN_USE (NixOS/nixpkgs#363887,
/// VirtualBox/virtualbox#141, #81).
pub const KVM_AT_LOAD_KERNEL: (u32, u32) = (6, 12);

/// A box kubelab knows has a VirtualBox build for an architecture.
pub struct KnownBox {
    pub arch: Arch,
    pub name: &'static str,
    pub version: &'static str,
    pub source: &'static str,
}

/// The default box per host architecture, pinned: a box version's
/// VirtualBox builds come and go (bento/ubuntu-24.04 202407.22.0 and
/// 202407.23.0 have none, chef/bento#1588; a later refresh failed too,
/// chef/bento#1595), so "newest" is not a box that exists.
pub const DEFAULT_BOXES: &[KnownBox] = &[
    KnownBox {
        arch: Arch::Amd64,
        name: "bento/ubuntu-24.04",
        version: "202510.26.0",
        source: "`vagrant box add bento/ubuntu-24.04 --provider=virtualbox --architecture=amd64` adds v202510.26.0 for 'virtualbox (amd64)' (Varying-Vagrant-Vagrants/VVV#2789, 2026-01-10)",
    },
    KnownBox {
        arch: Arch::Arm64,
        name: "gusztavvargadr/ubuntu-server-2404-lts",
        version: "2607.1.0",
        source: "\"This version provides AMD64 and ARM64 artifacts for VirtualBox and VMware\" (gusztavvargadr/packer docs/site/images/ubuntu-server/2404-lts/index.md, 2607.1.0; 2607.0.0 had ARM64 for VMware only)",
    },
];

/// The first version of [`DEFAULT_BOXES`]' arm64 box with a VirtualBox
/// arm64 build (same source).
const GUSZTAVVARGADR_ARM64_SINCE: &str = "2607.1.0";

/// The pinned default box for `arch`.
pub fn default_box(arch: Arch) -> &'static KnownBox {
    DEFAULT_BOXES
        .iter()
        .find(|b| b.arch == arch)
        .unwrap_or(&DEFAULT_BOXES[0])
}

/// The pinned version of a box kubelab knows, for `arch`.
pub fn pinned_version(name: &str, arch: Arch) -> Option<&'static str> {
    DEFAULT_BOXES
        .iter()
        .find(|b| b.arch == arch && b.name == name)
        .map(|b| b.version)
}

/// Whether a box (at a version) has a VirtualBox build for `arch`.
#[derive(Debug, PartialEq, Eq)]
pub enum BoxSupport {
    Yes { source: &'static str },
    No { why: String },
    Unknown,
}

pub fn box_support(name: &str, version: Option<&str>, arch: Arch) -> BoxSupport {
    if let Some(known) = DEFAULT_BOXES
        .iter()
        .find(|b| b.arch == arch && b.name == name && version.is_none_or(|v| v == b.version))
    {
        return BoxSupport::Yes {
            source: known.source,
        };
    }
    if arch == Arch::Arm64 {
        if name.starts_with("bento/") {
            return BoxSupport::No {
                why: "bento publishes no working VirtualBox arm64 box (arm64 builds for parallels and vmware_desktop only: chef/bento#1582, #1594)".into(),
            };
        }
        if name.starts_with("ubuntu/") {
            return BoxSupport::No {
                why: "Canonical's ubuntu/* boxes are x86 only, and an x86 box fails on Apple silicon with \"VM session was aborted\" (hashicorp/vagrant#13545, #13588)".into(),
            };
        }
        if name == default_box(Arch::Arm64).name
            && let (Some(v), Some(since)) = (
                version.and_then(Version::parse),
                Version::parse(GUSZTAVVARGADR_ARM64_SINCE),
            )
            && v < since
        {
            return BoxSupport::No {
                why: format!(
                    "{name} has VirtualBox arm64 builds from {GUSZTAVVARGADR_ARM64_SINCE} on only"
                ),
            };
        }
    }
    BoxSupport::Unknown
}

/// Why live (saved-state) snapshots must not be used on this host, if they
/// must not: VirtualBox 7.2 on Apple silicon loses guest networking (and
/// the keyboard) when it restores a saved state (VirtualBox/virtualbox#788,
/// 7.2.14 on arm64 macOS).
pub fn saved_state_breaks(
    os: crate::host::Os,
    arch: Option<Arch>,
    virtualbox: Option<Version>,
) -> Option<&'static str> {
    let broken = os == crate::host::Os::Macos
        && arch == Some(Arch::Arm64)
        && virtualbox.is_some_and(|v| v.minor() == (7, 2));
    broken.then_some(
        "VirtualBox 7.2 on Apple silicon loses guest networking when it restores a saved state (VirtualBox/virtualbox#788)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_as_vagrant_does() {
        assert_eq!(
            parse_vagrant_version("Vagrant 2.4.9\n"),
            Some(Version(2, 4, 9))
        );
        assert_eq!(
            parse_vagrant_version("Vagrant 2.4.10.dev\n"),
            Some(Version(2, 4, 10))
        );
        assert_eq!(
            parse_virtualbox_version("7.2.4r170995\n"),
            Some(Version(7, 2, 4))
        );
        assert_eq!(
            parse_virtualbox_version("7.0.16_Ubuntur162802\n"),
            Some(Version(7, 0, 16))
        );
        assert_eq!(
            parse_virtualbox_version("4.1.8r1234_OSE\n"),
            Some(Version(4, 1, 8))
        );
    }

    #[test]
    fn the_support_table_knows_the_two_recent_minors() {
        let v = |s| Version::parse(s).unwrap();
        assert!(matches!(
            pairing(v("2.4.1"), v("7.1.6")),
            Pairing::VagrantTooOld { needs, .. } if needs == Version(2, 4, 2)
        ));
        assert!(matches!(
            pairing(v("2.4.2"), v("7.1.6")),
            Pairing::Supported { .. }
        ));
        assert!(matches!(
            pairing(v("2.4.8"), v("7.2.4")),
            Pairing::VagrantTooOld { needs, .. } if needs == Version(2, 4, 9)
        ));
        assert!(matches!(
            pairing(v("2.4.9"), v("7.2.14")),
            Pairing::Supported { .. }
        ));
        assert!(matches!(
            pairing(v("2.4.9"), v("7.3.0")),
            Pairing::Unknown {
                newest_known: (7, 2)
            }
        ));
        assert_eq!(pairing(v("2.4.9"), v("6.1.26")), Pairing::VirtualBoxTooOld);
    }

    #[test]
    fn the_default_box_is_pinned_per_architecture_and_has_a_virtualbox_build() {
        for arch in [Arch::Amd64, Arch::Arm64] {
            let b = default_box(arch);
            assert_eq!(b.arch, arch);
            assert!(Version::parse(b.version).is_some(), "{}", b.version);
            assert!(matches!(
                box_support(b.name, Some(b.version), arch),
                BoxSupport::Yes { .. }
            ));
        }
        // Never an x86 box on arm64.
        assert!(matches!(
            box_support("bento/ubuntu-24.04", Some("202510.26.0"), Arch::Arm64),
            BoxSupport::No { .. }
        ));
        assert!(matches!(
            box_support("ubuntu/jammy64", None, Arch::Arm64),
            BoxSupport::No { .. }
        ));
        assert!(matches!(
            box_support(
                "gusztavvargadr/ubuntu-server-2404-lts",
                Some("2607.0.0"),
                Arch::Arm64
            ),
            BoxSupport::No { .. }
        ));
        assert_eq!(
            box_support("someone/own-box", None, Arch::Arm64),
            BoxSupport::Unknown
        );
    }

    #[test]
    fn saved_state_snapshots_break_only_on_virtualbox_72_on_apple_silicon() {
        use crate::host::Os;
        let v72 = Version::parse("7.2.14");
        let v71 = Version::parse("7.1.6");
        assert!(saved_state_breaks(Os::Macos, Some(Arch::Arm64), v72).is_some());
        assert!(saved_state_breaks(Os::Macos, Some(Arch::Arm64), v71).is_none());
        assert!(saved_state_breaks(Os::Macos, Some(Arch::Amd64), v72).is_none());
        assert!(saved_state_breaks(Os::Linux, Some(Arch::Arm64), v72).is_none());
    }
}
