//! What stands between VirtualBox and the CPU: its driver, the Vagrant x
//! VirtualBox pair, KVM on Linux, Hyper-V on Windows, VT-x/AMD-V.

use crate::host::{Facts, Os};
use crate::platform::{self, Pairing, Version};
use crate::verify::Outcome;

pub(super) fn cpu_virtualization(facts: &Facts) -> Outcome {
    match &facts.cpuinfo {
        Some(info) if info.split_whitespace().any(|w| w == "vmx" || w == "svm") => {
            Outcome::Passed("VT-x/AMD-V present".into())
        }
        Some(_) => Outcome::Warned {
            why: "no vmx/svm flag: VirtualBox will be very slow or refuse 64-bit guests".into(),
            hint: Some(
                "enable VT-x/AMD-V in the firmware, or nested virtualization on a VM host".into(),
            ),
        },
        None => Outcome::Passed("not checked on this OS".into()),
    }
}

/// `VBoxManage --version`: a version, or the warning that its kernel
/// driver is missing (it still prints a version then).
pub(super) fn virtualbox(output: &str) -> Outcome {
    let version = platform::virtualbox_version_line(output).unwrap_or("(no version)");
    if platform::virtualbox_driver_missing(output) {
        return Outcome::Failed { why: format!("VBoxManage {version}, but VirtualBox's kernel driver (vboxdrv) is not loaded: no VM can start"), hint: Some("`sudo /sbin/vboxconfig` builds and loads it (it needs this kernel's headers; with Secure Boot, sign the modules or turn it off)".into()) };
    }
    Outcome::Passed(format!("VBoxManage {version}"))
}

/// The Vagrant x VirtualBox pair against [`platform::DRIVER_SUPPORT`].
pub(super) fn vagrant_virtualbox(vagrant: Version, vbox: Version) -> Outcome {
    let (major, minor) = vbox.minor();
    match platform::pairing(vagrant, vbox) {
        Pairing::Supported { needs } => Outcome::Passed(format!(
            "Vagrant {vagrant} drives VirtualBox {major}.{minor} (it needs Vagrant {needs} or newer)"
        )),
        Pairing::VagrantTooOld { needs, source } => Outcome::Failed {
            why: format!(
                "Vagrant {vagrant} does not know VirtualBox {major}.{minor} and refuses to use it (\"a version of VirtualBox installed that is not supported\"); {major}.{minor} needs Vagrant {needs} or newer ({source})"
            ),
            hint: Some(format!(
                "upgrade Vagrant to {needs} or newer (HashiCorp's downloads or apt repository; `brew upgrade --cask vagrant` on macOS), or install a VirtualBox this Vagrant knows"
            )),
        },
        Pairing::VirtualBoxTooOld => Outcome::Failed {
            why: format!(
                "VirtualBox {vbox} is older than {}, the oldest kubelab runs on (it follows 6.1.28's host-only range rule)",
                platform::OLDEST_VIRTUALBOX
            ),
            hint: Some(
                "install a current VirtualBox (7.1 or 7.2) and a Vagrant that knows it".into(),
            ),
        },
        Pairing::Unknown {
            newest_known: (km, kn),
        } => Outcome::Warned {
            why: format!(
                "VirtualBox {major}.{minor} is newer than kubelab's support table (up to {km}.{kn}); Vagrant refuses a VirtualBox minor it does not know, and {vagrant} may be one of those"
            ),
            hint: Some(format!(
                "if `kubelab lab up` fails with \"not supported\", upgrade Vagrant to a release that names VirtualBox {major}.{minor} in its CHANGELOG, or go back to VirtualBox {km}.{kn}"
            )),
        },
    }
}

/// The modules `/proc/modules` or `lsmod` lists.
fn loaded_modules(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "Module")
        .collect()
}

/// Linux: KVM holding VT-x/AMD-V while VirtualBox is the provider, with the
/// fix for the installed VirtualBox ([`platform::KVM_FLIP`]).
pub(super) fn kvm(facts: &Facts, vbox: Option<Version>) -> Outcome {
    let Some(modules) = &facts.modules else {
        return Outcome::Warned {
            why: "could not read /proc/modules".into(),
            hint: None,
        };
    };
    let modules = loaded_modules(modules);
    let Some(&module) = modules
        .iter()
        .find(|m| **m == "kvm_intel" || **m == "kvm_amd")
    else {
        return Outcome::Passed(
            "no kvm_intel or kvm_amd module loaded: VirtualBox has VT-x/AMD-V to itself".into(),
        );
    };
    let code = if module == "kvm_amd" {
        "VERR_SVM_IN_USE"
    } else {
        "VERR_VMX_IN_VMX_ROOT_MODE"
    };
    let kernel = facts.kernel.as_deref().map(str::trim).unwrap_or("unknown");
    let new_kernel =
        Version::parse(kernel).is_some_and(|v| v.minor() >= platform::KVM_AT_LOAD_KERNEL);
    // Linux >= 6.12 takes VT-x when kvm loads unless the parameter says no.
    let at_load = match facts.kvm_enable_virt_at_load.as_deref().map(str::trim) {
        Some("Y" | "y" | "1") => true,
        Some("N" | "n" | "0") => false,
        _ => new_kernel,
    };
    let unload = format!("`sudo modprobe -r {module} kvm`");
    let (km, kn) = platform::KVM_AT_LOAD_KERNEL;
    let flip = platform::KVM_FLIP;
    match vbox {
        Some(v) if v >= flip => {
            if at_load || !new_kernel {
                Outcome::Passed(format!(
                    "{module} is loaded (kernel {kernel}); VirtualBox {v} works beside it as long as no KVM VM (libvirt, QEMU) runs at the same time"
                ))
            } else {
                Outcome::Failed {
                    why: format!(
                        "{module} is loaded with kvm.enable_virt_at_load=0 (kernel {kernel}): VirtualBox {flip} and newer need it at 1 or KVM unloaded (VirtualBox/virtualbox#711), so VMs fail to start"
                    ),
                    hint: Some(format!(
                        "remove `enable_virt_at_load=0` (the fix older VirtualBox needed) from /etc/modprobe.d/ and the kernel command line, then reload KVM (`sudo modprobe -r {module} kvm && sudo modprobe {module}`); or unload it: {unload}"
                    )),
                }
            }
        }
        _ if !at_load => Outcome::Passed(if new_kernel {
            format!(
                "{module} is loaded with kvm.enable_virt_at_load=0 (kernel {kernel}): VirtualBox{} can take VT-x/AMD-V; do not run KVM VMs at the same time",
                vbox.map(|v| format!(" {v}")).unwrap_or_default()
            )
        } else {
            format!(
                "{module} is loaded, but kernel {kernel} (< {km}.{kn}) takes VT-x/AMD-V only while a KVM VM runs; do not run one beside the lab"
            )
        }),
        Some(v) => Outcome::Failed {
            why: format!(
                "{module} is loaded and kernel {kernel} (>= {km}.{kn}) enables virtualization when it loads: VirtualBox {v} cannot start a VM ({code})"
            ),
            hint: Some(format!(
                "{unload} now; to keep it so after a reboot, `echo 'options kvm enable_virt_at_load=0' | sudo tee /etc/modprobe.d/kvm-virtualbox.conf` (for VirtualBox before {flip}; from {flip} on, KVM loaded with the default 1 works)"
            )),
        },
        None => Outcome::Warned {
            why: format!(
                "{module} is loaded and kernel {kernel} enables virtualization when it loads; whether VirtualBox can start VMs depends on its version, which could not be read"
            ),
            hint: Some(format!(
                "VirtualBox before {flip}: {unload}, or `options kvm enable_virt_at_load=0` in /etc/modprobe.d/; {flip} and newer: leave it at 1"
            )),
        },
    }
}

/// Windows (or WSL2 on it): Hyper-V or VBS holding the hypervisor.
pub(super) fn hyper_v(facts: &Facts) -> Outcome {
    let cost = "VirtualBox then runs every VM through Windows' hypervisor (its slow \"Native Execution Manager\" mode, the green turtle): boots take several times longer and a 10-VM lab may time out (MicrosoftDocs/WSL#798, jmunixusers/cs-vm-build#406)";
    let Some(info) = &facts.systeminfo else {
        if facts.os == Os::Wsl {
            return Outcome::Warned { why: format!("kubelab runs inside WSL2, which needs Hyper-V: {cost}"), hint: Some("run kubelab, Vagrant and VirtualBox from Windows itself, with Hyper-V off, for full speed".into()) };
        }
        return Outcome::Warned {
            why: "could not run `systeminfo`".into(),
            hint: None,
        };
    };
    if info.contains("A hypervisor has been detected") {
        let launch_off = facts.bcdedit.as_deref().is_some_and(|b| {
            b.lines().any(|l| {
                let mut f = l.split_whitespace();
                f.next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("hypervisorlaunchtype"))
                    && f.next().is_some_and(|v| v.eq_ignore_ascii_case("off"))
            })
        });
        let fix = if launch_off {
            "hypervisorlaunchtype is already Off, so Virtualization-based security holds it: turn off Memory Integrity (Windows Security > Device security > Core isolation) and Credential Guard, then reboot".to_string()
        } else {
            "in an administrator shell `bcdedit /set hypervisorlaunchtype off`, turn off Memory Integrity (Windows Security > Device security > Core isolation), reboot; this stops WSL2 and Hyper-V VMs until `bcdedit /set hypervisorlaunchtype auto`".to_string()
        };
        return Outcome::Warned {
            why: format!(
                "a hypervisor is running (Hyper-V, WSL2, Memory Integrity/VBS or Windows Sandbox): {cost}"
            ),
            hint: Some(fix),
        };
    }
    let says_no = |field: &str| {
        info.lines()
            .any(|l| l.contains(field) && l.trim_end().ends_with("No"))
    };
    if says_no("Virtualization Enabled In Firmware") {
        return Outcome::Failed { why: "no hypervisor is running, but virtualization is disabled in the firmware: VirtualBox cannot start 64-bit VMs".into(), hint: Some("enable Intel VT-x / AMD-V (SVM) in the BIOS/UEFI setup".into()) };
    }
    Outcome::Passed("no hypervisor is running: VirtualBox has VT-x/AMD-V to itself".into())
}

#[cfg(test)]
mod tests {
    //! Each verdict against recorded outputs of the real commands
    //! (tests/fixtures/host/README.md says where each shape comes from).
    use super::*;

    fn vbox(text: &str) -> Option<Version> {
        platform::parse_virtualbox_version(text)
    }

    fn linux(kernel: &str, modules: &str, at_load: Option<&str>) -> Facts {
        Facts {
            os: Os::Linux,
            machine: Some("x86_64\n".into()),
            kernel: Some(format!("{kernel}\n")),
            modules: Some(modules.into()),
            kvm_enable_virt_at_load: at_load.map(|v| format!("{v}\n")),
            ..Facts::default()
        }
    }

    #[test]
    fn vagrant_too_old_for_the_virtualbox_minor_fails_with_the_release_to_get() {
        let vagrant =
            platform::parse_vagrant_version(fixture!("vagrant-version-2.4.1.txt")).unwrap();
        let c = vagrant_virtualbox(
            vagrant,
            vbox(fixture!("vboxmanage-version-7.1.6.txt")).unwrap(),
        );
        assert_eq!(c.status(), "failed", "{}", c.detail());
        assert!(
            c.detail()
                .contains("Vagrant 2.4.1 does not know VirtualBox 7.1"),
            "{}",
            c.detail()
        );
        assert!(
            c.hint()
                .unwrap()
                .contains("upgrade Vagrant to 2.4.2 or newer")
        );

        let c = vagrant_virtualbox(
            vagrant,
            vbox(fixture!("vboxmanage-version-7.2.4.txt")).unwrap(),
        );
        assert_eq!(c.status(), "failed");
        assert!(c.hint().unwrap().contains("2.4.9"));

        let vagrant =
            platform::parse_vagrant_version(fixture!("vagrant-version-2.4.9.txt")).unwrap();
        let c = vagrant_virtualbox(
            vagrant,
            vbox(fixture!("vboxmanage-version-7.2.14.txt")).unwrap(),
        );
        assert_eq!(c.status(), "passed", "{}", c.detail());
    }

    #[test]
    fn a_missing_vboxdrv_fails_even_though_a_version_is_printed() {
        let out = fixture!("vboxmanage-version-no-vboxdrv.txt");
        assert_eq!(vbox(out), Some(Version(7, 2, 4)));
        let c = virtualbox(out);
        assert_eq!(c.status(), "failed");
        assert!(c.hint().unwrap().contains("/sbin/vboxconfig"));
        assert_eq!(
            virtualbox(fixture!("vboxmanage-version-7.2.4.txt")).status(),
            "passed"
        );
    }

    #[test]
    fn kvm_loaded_on_a_new_kernel_fails_before_virtualbox_7_2_10_with_the_old_fix() {
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("Y"),
        );
        let c = kvm(&facts, vbox(fixture!("vboxmanage-version-7.2.4.txt")));
        assert_eq!(c.status(), "failed", "{}", c.detail());
        assert!(
            c.detail().contains("VERR_VMX_IN_VMX_ROOT_MODE"),
            "{}",
            c.detail()
        );
        let fix = c.hint().unwrap();
        assert!(fix.contains("sudo modprobe -r kvm_intel kvm"), "{fix}");
        assert!(fix.contains("options kvm enable_virt_at_load=0"), "{fix}");

        // The parameter file missing on a 6.14 kernel means its default, on.
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("proc-modules-kvm-amd.txt"),
            None,
        );
        let c = kvm(&facts, vbox(fixture!("vboxmanage-version-7.1.6.txt")));
        assert_eq!(c.status(), "failed");
        assert!(c.detail().contains("VERR_SVM_IN_USE"), "{}", c.detail());
        assert!(c.hint().unwrap().contains("sudo modprobe -r kvm_amd kvm"));

        // With the old fix applied, VirtualBox 7.2.4 is fine.
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("N"),
        );
        assert_eq!(
            kvm(&facts, vbox(fixture!("vboxmanage-version-7.2.4.txt"))).status(),
            "passed"
        );
    }

    #[test]
    fn from_virtualbox_7_2_10_the_old_kvm_fix_is_the_problem() {
        let v7214 = vbox(fixture!("vboxmanage-version-7.2.14.txt"));
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("N"),
        );
        let c = kvm(&facts, v7214);
        assert_eq!(c.status(), "failed", "{}", c.detail());
        assert!(
            c.detail().contains("enable_virt_at_load=0"),
            "{}",
            c.detail()
        );
        assert!(c.hint().unwrap().contains("remove `enable_virt_at_load=0`"));

        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("Y"),
        );
        assert_eq!(kvm(&facts, v7214).status(), "passed");
    }

    #[test]
    fn kvm_is_harmless_on_an_old_kernel_and_absent_modules_pass() {
        let v724 = vbox(fixture!("vboxmanage-version-7.2.4.txt"));
        let facts = linux("6.8.0-45-generic", fixture!("lsmod-kvm-intel.txt"), None);
        let c = kvm(&facts, v724);
        assert_eq!(c.status(), "passed", "{}", c.detail());
        assert!(c.detail().contains("only while a KVM VM runs"));
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("proc-modules-no-kvm.txt"),
            Some("Y"),
        );
        assert_eq!(kvm(&facts, v724).status(), "passed");
        // The version unknown: a warning with both fixes.
        let facts = linux(
            "6.14.0-29-generic",
            fixture!("lsmod-kvm-intel.txt"),
            Some("Y"),
        );
        assert_eq!(kvm(&facts, None).status(), "warned");
    }

    #[test]
    fn hyper_v_running_is_a_warning_with_its_cost_and_the_fix() {
        let mut facts = Facts {
            os: Os::Windows,
            systeminfo: Some(fixture!("systeminfo-hypervisor.txt").into()),
            ..Facts::default()
        };
        let c = hyper_v(&facts);
        assert_eq!(c.status(), "warned");
        assert!(c.detail().contains("green turtle"), "{}", c.detail());
        assert!(
            c.hint()
                .as_deref()
                .unwrap()
                .contains("bcdedit /set hypervisorlaunchtype off")
        );
        // The launch type off already: Memory Integrity (VBS) holds it.
        facts.bcdedit = Some(fixture!("bcdedit-hypervisor-off.txt").into());
        let fix = hyper_v(&facts).hint().unwrap();
        assert!(fix.contains("already Off"), "{fix}");
        assert!(fix.contains("Memory Integrity"), "{fix}");

        let facts = Facts {
            os: Os::Windows,
            systeminfo: Some(fixture!("systeminfo-no-hypervisor.txt").into()),
            ..Facts::default()
        };
        assert_eq!(hyper_v(&facts).status(), "passed");
        let facts = Facts {
            os: Os::Windows,
            systeminfo: Some(
                fixture!("systeminfo-no-hypervisor.txt")
                    .replace("In Firmware: Yes", "In Firmware: No"),
            ),
            ..Facts::default()
        };
        assert_eq!(hyper_v(&facts).status(), "failed");
    }

    #[test]
    fn cpu_virtualization_reads_the_recorded_flags() {
        let with = Facts {
            cpuinfo: Some(fixture!("cpuinfo-intel-vmx.txt").into()),
            ..Facts::default()
        };
        assert_eq!(cpu_virtualization(&with).status(), "passed");
        let without = Facts {
            cpuinfo: Some(fixture!("cpuinfo-no-vmx.txt").into()),
            ..Facts::default()
        };
        assert_eq!(cpu_virtualization(&without).status(), "warned");
    }
}
