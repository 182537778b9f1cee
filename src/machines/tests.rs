//! `lab up` (its machines part), `scale`, `destroy`, `status` and `reset`
//! through the recording provider: which provider calls happen, in which
//! order, and what the state records.

use std::sync::Arc;

use super::recording::Recording;
use super::scale::{Request, ScaleOptions};
use super::*;
use crate::config::Role;
use crate::state::NodeState;

/// A lab folder with its lab.yaml, the settings a test gets (hosts file,
/// cache and registry inside it) and a quiet printer.
struct Lab {
    dir: tempfile::TempDir,
    loaded: LoadedLab,
    settings: Settings,
    printer: Printer,
}

impl Lab {
    /// The built-in lab's topology with `workers` workers, from a lab.yaml.
    fn vms(workers: u32) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        Lab::at(dir, &format!("nodes:\n  worker:\n    count: {workers}\n"))
    }

    /// A `provider: static` lab of the default topology with `workers`.
    fn servers(workers: u32) -> Lab {
        let dir = crate::config::tests::key_dir();
        Lab::at(dir, &crate::config::tests::static_lab_yaml("", workers))
    }

    fn at(dir: tempfile::TempDir, yaml: &str) -> Lab {
        let path = dir.path().join("lab.yaml");
        fs_err::write(&path, yaml).unwrap();
        let lab = crate::lab::load(&path).unwrap();
        let topo = crate::topology::Topology::new(&lab);
        let loaded = LoadedLab {
            lab,
            topo,
            dir: dir.path().to_path_buf(),
        };
        fs_err::write(dir.path().join("hosts"), "127.0.0.1 localhost\n").unwrap();
        let settings = Settings {
            hosts_file: dir.path().join("hosts"),
            host_memory_mb: None,
            no_color: true,
            cache_dir: dir.path().join("cache"),
            artifacts_mirror: None,
            user_kubeconfig: None,
            registry: dir.path().join("labs.json"),
            host_facts: None,
            boot_retry: Duration::from_millis(1),
        };
        Lab {
            dir,
            loaded,
            settings,
            printer: Printer::new(true, true),
        }
    }

    fn host(&self, machines: &Arc<Recording>) -> Host<'_> {
        Host {
            loaded: &self.loaded,
            settings: &self.settings,
            printer: &self.printer,
            runner: Runner::new(false),
            machines: machines.clone(),
        }
    }

    fn state(&self) -> State {
        State::load(
            &self.loaded.state_dir().join("state.json"),
            &self.loaded.lab.name,
        )
        .unwrap()
    }

    /// Records every node of the lab as `lab up` made it.
    fn record_all(&self) {
        let mut state = State::new(&self.loaded.lab.name);
        for n in &self.loaded.topo.nodes {
            state.nodes.insert(n.name.clone(), made(n));
        }
        fs_err::create_dir_all(self.loaded.state_dir()).unwrap();
        state
            .save(&self.loaded.state_dir().join("state.json"))
            .unwrap();
    }

    fn names(&self) -> Vec<String> {
        self.loaded
            .topo
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }
}

fn made(n: &crate::topology::Node) -> NodeState {
    NodeState {
        role: n.role.to_string(),
        address: n.address.to_string(),
        machine: MachineStatus::Created,
        vm_id: Some(format!("id-{}", n.name)),
        error: None,
    }
}

fn machines_only() -> UpOptions {
    UpOptions {
        no_hosts: true,
        selection: Selection {
            until: Some(Phase::Machines),
            ..Selection::default()
        },
        ..UpOptions::default()
    }
}

#[tokio::test]
async fn up_creates_every_node_in_the_topologys_order_and_records_each() {
    let lab = Lab::vms(2);
    let double = Arc::new(Recording::default());
    lab.host(&double).up(&machines_only()).await.unwrap();

    let creates: Vec<String> = lab.names().iter().map(|n| format!("create {n}")).collect();
    assert_eq!(double.calls(), creates);
    let state = lab.state();
    assert_eq!(state.lab, lab.loaded.lab.name);
    for n in &lab.loaded.topo.nodes {
        let recorded = &state.nodes[&n.name];
        assert_eq!(recorded.machine, MachineStatus::Created, "{}", n.name);
        assert_eq!(
            recorded.vm_id.as_deref(),
            Some(format!("id-{}", n.name).as_str())
        );
        assert_eq!(recorded.address, n.address.to_string());
    }
    // --no-hosts: the hosts file is left alone.
    assert_eq!(
        fs_err::read_to_string(&lab.settings.hosts_file).unwrap(),
        "127.0.0.1 localhost\n"
    );
}

#[tokio::test]
async fn up_records_a_machine_that_failed_and_writes_the_hosts_block_only_when_all_came_up() {
    let lab = Lab::vms(1);
    let double = Arc::new(Recording {
        fail: ["worker0".to_string()].into(),
        ..Recording::default()
    });
    let options = UpOptions {
        no_hosts: false,
        ..machines_only()
    };
    let err = lab.host(&double).up(&options).await.unwrap_err();
    assert!(err.to_string().contains("some machines failed"), "{err}");
    let state = lab.state();
    assert_eq!(state.nodes["worker0"].machine, MachineStatus::Failed);
    assert_eq!(
        state.nodes["worker0"].error.as_deref(),
        Some("told to fail")
    );
    assert_eq!(state.nodes["dns0"].machine, MachineStatus::Created);
    let hosts = fs_err::read_to_string(&lab.settings.hosts_file).unwrap();
    assert!(!hosts.contains("kubelab"), "{hosts}");

    // Once every machine comes up, the block is written.
    let double = Arc::new(Recording::default());
    lab.host(&double).up(&options).await.unwrap();
    assert_eq!(lab.state().nodes["worker0"].machine, MachineStatus::Created);
    let hosts = fs_err::read_to_string(&lab.settings.hosts_file).unwrap();
    assert!(hosts.contains("worker0"), "{hosts}");
}

#[tokio::test]
async fn up_past_the_machines_phase_does_not_ask_the_provider_to_create() {
    let lab = Lab::vms(1);
    let double = Arc::new(Recording::default());
    let options = UpOptions {
        selection: Selection {
            only: vec![Phase::Etcd],
            ..Selection::default()
        },
        ..machines_only()
    };
    // No VM was made: provisioning says so, and nothing was created.
    let err = lab.host(&double).up_locked(&options).await.unwrap_err();
    assert!(err.to_string().contains("no VM for dns0"), "{err}");
    assert_eq!(double.calls(), Vec::<String>::new());
    assert!(lab.state().nodes.is_empty());
}

#[tokio::test]
async fn status_reports_the_providers_states_and_machines_not_in_the_lab() {
    let lab = Lab::vms(1);
    let double = Arc::new(Recording {
        states: [
            ("dns0".to_string(), "running".to_string()),
            ("worker0".to_string(), "poweroff".to_string()),
            ("worker5".to_string(), "running".to_string()),
            ("worker6".to_string(), "not_created".to_string()),
        ]
        .into(),
        ..Recording::default()
    });
    let (rows, extra) = lab.host(&double).status_rows().await.unwrap();
    assert_eq!(double.calls(), ["status"]);
    let state = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| r.state.as_str())
            .unwrap()
    };
    assert_eq!(state("dns0"), "running");
    assert_eq!(state("worker0"), "poweroff");
    assert_eq!(state("etcd0"), "not_created");
    assert_eq!(rows.len(), lab.loaded.topo.nodes.len());
    assert_eq!(extra, ["worker5"]);
}

#[tokio::test]
async fn destroy_of_a_half_created_lab_removes_only_the_recorded_machines() {
    let lab = Lab::vms(2);
    let mut state = State::new(&lab.loaded.lab.name);
    for name in ["dns0", "etcd1", "worker1"] {
        state
            .nodes
            .insert(name.into(), made(lab.loaded.topo.node(name).unwrap()));
    }
    state.nodes.get_mut("worker1").unwrap().machine = MachineStatus::Failed;
    fs_err::create_dir_all(lab.loaded.state_dir()).unwrap();
    state
        .save(&lab.loaded.state_dir().join("state.json"))
        .unwrap();

    let double = Arc::new(Recording::default());
    lab.host(&double).destroy(true).await.unwrap();
    // In lab.yaml's order, whatever order the state holds them in.
    assert_eq!(double.calls(), ["destroy dns0,etcd1,worker1"]);
    assert!(!lab.loaded.state_dir().exists());
}

#[tokio::test]
async fn destroy_hands_the_provider_why_the_state_could_not_be_read() {
    let lab = Lab::vms(1);
    fs_err::create_dir_all(lab.loaded.state_dir()).unwrap();
    fs_err::write(lab.loaded.state_dir().join("state.json"), "{ damaged").unwrap();
    let double = Arc::new(Recording::default());
    let err = lab.host(&double).destroy(true).await.unwrap_err();
    assert!(
        err.to_string().contains("not a kubelab state file"),
        "{err}"
    );
    assert_eq!(double.calls(), Vec::<String>::new());
    // Nothing was removed: the next `lab destroy` tries again.
    assert!(lab.loaded.state_dir().join("state.json").exists());
}

fn scale_options() -> ScaleOptions {
    ScaleOptions {
        dry_run: false,
        yes: true,
        json: false,
        jobs: None,
        no_hosts: true,
        offline: false,
        until: None,
    }
}

#[tokio::test]
async fn scale_down_removes_the_workers_last_first_then_brings_the_rest_up() {
    let lab = Lab::vms(3);
    lab.record_all();
    let double = Arc::new(Recording::default());
    let request = Request {
        role: Role::Worker,
        count: 1,
    };
    lab.host(&double)
        .scale(&request, &scale_options())
        .await
        .unwrap();

    let smaller = Lab::vms(1);
    let mut expected = vec!["remove worker2,worker1".to_string()];
    expected.extend(smaller.names().iter().map(|n| format!("create {n}")));
    assert_eq!(double.calls(), expected);
    let state = lab.state();
    assert!(!state.nodes.contains_key("worker1") && !state.nodes.contains_key("worker2"));
    assert_eq!(state.nodes["worker0"].machine, MachineStatus::Created);
    let text = fs_err::read_to_string(lab.dir.path().join("lab.yaml")).unwrap();
    assert!(text.contains("count: 1"), "{text}");
}

#[tokio::test]
async fn scale_up_creates_the_new_worker_and_removes_nothing() {
    let lab = Lab::vms(1);
    lab.record_all();
    let double = Arc::new(Recording::default());
    let request = Request {
        role: Role::Worker,
        count: 2,
    };
    lab.host(&double)
        .scale(&request, &scale_options())
        .await
        .unwrap();
    let bigger = Lab::vms(2);
    let creates: Vec<String> = bigger
        .names()
        .iter()
        .map(|n| format!("create {n}"))
        .collect();
    assert_eq!(double.calls(), creates);
    assert_eq!(lab.state().nodes["worker1"].machine, MachineStatus::Created);
}

#[tokio::test]
async fn scale_of_a_lab_never_brought_up_asks_the_provider_nothing() {
    let lab = Lab::vms(1);
    let double = Arc::new(Recording::default());
    let request = Request {
        role: Role::Worker,
        count: 3,
    };
    lab.host(&double)
        .scale(&request, &scale_options())
        .await
        .unwrap();
    assert_eq!(double.calls(), Vec::<String>::new());
    let text = fs_err::read_to_string(lab.dir.path().join("lab.yaml")).unwrap();
    assert!(text.contains("count: 3"), "{text}");
    assert!(!lab.loaded.state_dir().exists());
}

#[tokio::test]
async fn reset_is_refused_where_the_provider_has_no_snapshots() {
    let lab = Lab::servers(1);
    let double = Arc::new(Recording::default());
    let err = lab.host(&double).reset("base", true).await.unwrap_err();
    assert!(err.to_string().contains("lab reset"), "{err}");
    assert_eq!(double.calls(), Vec::<String>::new());
    // Refused before the lock: no .kubelab/ appears.
    assert!(!lab.loaded.state_dir().exists());

    // The static provider's own words.
    let host = Host::new(&lab.loaded, &lab.settings, &lab.printer, false);
    let err = host.reset("base", true).await.unwrap_err();
    assert!(err.to_string().contains("provider: static"), "{err}");
}

#[tokio::test]
async fn reset_restores_through_the_provider_then_waits_for_what_the_lab_had_done() {
    let lab = Lab::servers(1);
    let double = Arc::new(Recording {
        snapshots: true,
        ..Recording::default()
    });
    // No snapshot of that name: nothing is asked.
    let err = lab.host(&double).reset("base", true).await.unwrap_err();
    assert!(err.to_string().contains("no snapshot named"), "{err}");
    assert_eq!(double.calls(), Vec::<String>::new());

    let snapshot = lab.loaded.state_dir().join("snapshots/base");
    fs_err::create_dir_all(&snapshot).unwrap();
    fs_err::write(snapshot.join("snapshot.json"), "{}").unwrap();
    lab.host(&double).reset("base", true).await.unwrap();
    // Then the checks of what the lab had done (none yet) reach it once.
    assert_eq!(double.calls(), ["restore base", "reach"]);
}

#[tokio::test]
async fn halt_goes_to_the_provider_or_is_refused_by_it() {
    let lab = Lab::vms(1);
    let double = Arc::new(Recording {
        snapshots: true,
        ..Recording::default()
    });
    lab.host(&double).halt().await.unwrap();
    assert_eq!(double.calls(), ["halt"]);

    let without = Arc::new(Recording::default());
    let err = lab.host(&without).halt().await.unwrap_err();
    assert!(err.to_string().contains("lab halt"), "{err}");
    assert_eq!(without.calls(), Vec::<String>::new());
}
