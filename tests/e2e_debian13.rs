//! End to end on a second stock box, Debian 13 (trixie): its systemd and
//! systemd-resolved are closer to Ubuntu 24.04's (the default box) than
//! Debian 12's are. `lab up --until etcd` installs every role package from
//! the lab network's repository and brings up bind9, haproxy behind the
//! keepalived VIP and a 3-member TLS etcd; `lab verify` passes what runs
//! here; the lab survives a reboot. Needs root.

mod support;

use support::e2e::{DEBIAN_13, DEFAULT_LAB, E2e};

const LAB: &str = "name: kubelab\nartifacts:\n  etcd: distro\n";

#[test]
fn a_stock_debian_13_box_is_provisioned_verified_and_survives_a_reboot() {
    let Some(e2e) = E2e::start_on(DEBIAN_13, "192.168.56.1") else {
        return;
    };
    assert_eq!(e2e.release(), "trixie");
    std::fs::write(e2e.lab_dir().join("lab.yaml"), LAB).unwrap();
    e2e.kubelab(&["lab", "up", "--until", "etcd"]);
    e2e.kubelab(&["lab", "up", "--only", "routes"]);

    for (name, address) in DEFAULT_LAB {
        let release = e2e.ssh_ok(address, ". /etc/os-release && echo $VERSION_CODENAME");
        assert_eq!(release.trim(), "trixie", "{name}");
    }
    e2e.assert_fetched_from_repository(&[
        "bind9",
        "haproxy",
        "keepalived",
        "etcd-server",
        "systemd-resolved",
    ]);
    let getent = e2e.ssh_ok("192.168.56.30", "getent hosts etcd2.lan controller1.lan");
    assert!(
        getent.contains("192.168.56.12") && getent.contains("192.168.56.21"),
        "{getent}"
    );

    e2e.survives_a_reboot();

    e2e.kubelab(&["lab", "destroy", "--yes"]);
    assert_eq!(e2e.leftovers(), Vec::<String>::new());
}
