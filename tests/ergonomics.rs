//! Everyday ergonomics with the real binary: shell completions, man pages,
//! the admin kubeconfig merged into the user's kubeconfig.

mod support;

use std::path::Path;
use std::process::Command;

use support::Test;

/// True when `tool` is on PATH. Otherwise prints SKIPPED and returns false,
/// but never in CI, which installs every tool (tests/run) and must not skip.
fn have(tool: &str) -> bool {
    if which::which(tool).is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is missing in CI; tests/run installs it"
    );
    eprintln!("SKIPPED: {tool} is not installed (tests/run installs it)");
    false
}

/// Sources `script` in a fresh bash and asks its completion function for
/// the words that complete `line` (the last word being completed).
fn bash_complete(script: &Path, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\n\
         spec=$(complete -p kubelab) || exit 3\n\
         func=$(sed -E 's/.*-F ([^ ]+).*/\\1/' <<<\"$spec\")\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE='{line}'\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         \"$func\" kubelab '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "bash completion failed for {line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completion_is_valid_and_completes_subcommands_and_flags() {
    let test = Test::new().args(&["completions", "bash"]);
    let ran = test.run();
    let script = test.path().join("kubelab.bash");
    std::fs::write(&script, &ran.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );

    assert_eq!(bash_complete(&script, "kubelab do"), ["doctor"]);
    assert_eq!(bash_complete(&script, "kubelab la"), ["lab", "labs"]);
    let lab = bash_complete(&script, "kubelab lab ");
    for sub in ["plan", "up", "verify", "destroy", "snapshot"] {
        assert!(lab.iter().any(|w| w == sub), "{sub} missing from {lab:?}");
    }
    assert_eq!(
        bash_complete(&script, "kubelab lab snapshot re"),
        ["restore"]
    );
    assert!(
        bash_complete(&script, "kubelab lab up --no")
            .iter()
            .any(|w| w == "--no-hosts")
    );
    assert_eq!(bash_complete(&script, "kubelab completions fi"), ["fish"]);
}

#[test]
fn zsh_and_fish_scripts_name_every_top_level_command() {
    for (shell, marker) in [("zsh", "#compdef kubelab"), ("fish", "complete -c kubelab")] {
        let ran = Test::new().args(&["completions", shell]).run();
        assert!(ran.stdout.contains(marker), "{shell}: {}", ran.stdout);
        for cmd in ["init", "doctor", "lab", "completions", "man"] {
            assert!(ran.stdout.contains(cmd), "{shell} script misses {cmd}");
        }
    }
    let ran = Test::new().args(&["completions", "tcsh"]).status(2).run();
    assert!(ran.stderr.contains("tcsh"), "{}", ran.stderr);
}

/// Renders a man page with groff, every warning on; returns the text.
fn groff(page: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("groff")
        .args(["-man", "-Tutf8", "-wall"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start groff");
    child.stdin.take().unwrap().write_all(page).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "groff warned about the page"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn man_page_renders_with_groff_and_man() {
    if !have("groff") || !have("man") {
        return;
    }
    let ran = Test::new().args(&["man"]).run();
    let text = groff(ran.stdout.as_bytes());
    // groff marks bold with backspaces on a terminal device; drop them.
    let plain = strip_overstrike(&text);
    for expected in ["NAME", "kubelab", "SYNOPSIS", "lab", "completions", "130"] {
        assert!(plain.contains(expected), "{expected} missing:\n{plain}");
    }

    let test = Test::new().args(&["man", "--out", "man1"]);
    let ran = test.run();
    let dir = test.path().join("man1");
    for page in [
        "kubelab.1",
        "kubelab-lab.1",
        "kubelab-lab-up.1",
        "kubelab-man.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} not written");
        assert!(
            ran.stdout.contains(page),
            "{page} not listed: {}",
            ran.stdout
        );
    }
    let up = Command::new("man")
        .arg("-l")
        .arg(dir.join("kubelab-lab-up.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(up.status.success());
    let up = strip_overstrike(&String::from_utf8_lossy(&up.stdout));
    for expected in ["kubelab-lab-up", "--no-hosts", "--jobs", "Examples:"] {
        assert!(up.contains(expected), "{expected} missing:\n{up}");
    }
}

fn strip_overstrike(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

/// A kubeconfig that already holds someone else's cluster, user and context.
const OTHER_CLUSTERS: &str = "apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
- name: kind-dev
  cluster:
    server: https://127.0.0.1:36443
users:
- name: alice
  user:
    token: t0k3n
contexts:
- name: prod
  context:
    cluster: prod
    user: alice
    namespace: web
- name: kind-dev
  context:
    cluster: kind-dev
    user: alice
current-context: prod
";

fn kubectl(config: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .arg("--kubeconfig")
        .arg(config)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn kubeconfig_needs_the_lab_certificates_first() {
    let ran = Test::new()
        .write("lab.yaml", "name: k\n")
        .args(&["lab", "kubeconfig"])
        .status(1)
        .run();
    assert!(
        ran.stderr.contains("lab k has no certificates yet"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("kubelab lab up"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty());
}

#[test]
fn kubeconfig_merges_beside_other_clusters_uses_and_destroy_removes_it() {
    if !have("kubectl") {
        return;
    }
    let test = Test::new()
        .write("lab.yaml", "name: k\n")
        .write("kube/config", OTHER_CLUSTERS)
        .standins()
        .args(&["lab", "render"]);
    test.run();
    let user_config = test.path().join("kube/config");

    // The path alone: a kubeconfig kubectl reads, to the API name, 0600.
    let test = test.then(&["lab", "kubeconfig"]);
    let ran = test.run();
    let admin = std::path::PathBuf::from(ran.stdout.trim());
    assert_eq!(admin, test.path().join(".kubelab/admin.kubeconfig"));
    assert_eq!(mode(&admin), 0o600);
    assert_eq!(
        kubectl(
            &admin,
            &[
                "config",
                "view",
                "-o",
                "jsonpath={.clusters[0].cluster.server}"
            ]
        ),
        "https://api.lan:6443"
    );
    assert_eq!(
        std::fs::read_to_string(&user_config).unwrap(),
        OTHER_CLUSTERS,
        "no --merge: the user's file is untouched"
    );

    let test = test.then(&["lab", "kubeconfig", "--merge"]);
    let ran = test.run();
    assert_eq!(ran.stdout.trim(), admin.display().to_string());
    assert!(
        ran.stderr.contains("kubectl config use-context kubelab-k"),
        "{}",
        ran.stderr
    );
    let backup = test.path().join("kube/config.kubelab.bak");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), OTHER_CLUSTERS);
    assert_eq!(mode(&user_config), 0o600);
    assert_eq!(mode(&backup), 0o600);
    let contexts = kubectl(&user_config, &["config", "get-contexts", "-o", "name"]);
    assert_eq!(
        contexts.lines().collect::<Vec<_>>(),
        ["kind-dev", "kubelab-k", "prod"]
    );
    let clusters = kubectl(&user_config, &["config", "get-clusters"]);
    for name in ["prod", "kind-dev", "kubelab-k"] {
        assert!(clusters.lines().any(|l| l == name), "{name}: {clusters}");
    }
    let users = kubectl(&user_config, &["config", "get-users"]);
    for name in ["alice", "kubelab-k"] {
        assert!(users.lines().any(|l| l == name), "{name}: {users}");
    }
    assert_eq!(
        kubectl(&user_config, &["config", "current-context"]),
        "prod"
    );
    assert_eq!(
        kubectl(
            &user_config,
            &[
                "config",
                "view",
                "-o",
                "jsonpath={.contexts[?(@.name==\"prod\")].context.namespace}"
            ]
        ),
        "web"
    );
    // kubectl sees the same credentials as the lab's own file.
    let key = |f: &Path, user: &str| {
        kubectl(
            f,
            &[
                "config",
                "view",
                "--raw",
                "-o",
                &format!("jsonpath={{.users[?(@.name==\"{user}\")].user.client-key-data}}"),
            ],
        )
    };
    assert!(!key(&admin, "admin").is_empty());
    assert_eq!(key(&user_config, "kubelab-k"), key(&admin, "admin"));

    let test = test.then(&["lab", "kubeconfig", "--use"]);
    test.run();
    assert_eq!(
        kubectl(&user_config, &["config", "current-context"]),
        "kubelab-k"
    );
    assert_eq!(
        kubectl(&user_config, &["config", "get-contexts", "-o", "name"])
            .lines()
            .count(),
        3,
        "merging twice adds nothing twice"
    );

    let test = test.then(&["lab", "destroy", "--yes"]);
    let ran = test.run();
    assert!(
        ran.stderr.contains("removed context kubelab-k from"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        kubectl(&user_config, &["config", "get-contexts", "-o", "name"])
            .lines()
            .collect::<Vec<_>>(),
        ["kind-dev", "prod"]
    );
    let clusters = kubectl(&user_config, &["config", "get-clusters"]);
    assert!(!clusters.contains("kubelab-k"), "{clusters}");
    let users = kubectl(&user_config, &["config", "get-users"]);
    assert!(!users.contains("kubelab-k"), "{users}");
}

fn labs_json(test: &Test) -> serde_json::Value {
    let ran = Test::new()
        .env(
            "KUBELAB_REGISTRY",
            &test.path().join("labs.json").display().to_string(),
        )
        .args(&["labs", "--json"])
        .run();
    serde_json::from_str(&ran.stdout).expect("JSON")
}

#[test]
fn a_second_lab_gets_its_own_network_and_a_colliding_one_is_refused_by_name() {
    let first = Test::new().standins().args(&["init", "--name", "alpha"]);
    first.run();
    let registry = first.path().join("labs.json").display().to_string();
    // One hosts file for the host, as /etc/hosts is.
    let hosts = first.path().join("etc-hosts");
    let hosts_env = hosts.display().to_string();
    let first = first.then(&["lab", "up", "--until", "machines"]);
    first.run();

    // The second lab, in its own directory, sharing the host's registry.
    let second = Test::new()
        .standins()
        .env("KUBELAB_REGISTRY", &registry)
        .env("KUBELAB_HOSTS_FILE", &hosts_env)
        .args(&["init", "--name", "beta"]);
    second.run();
    let second = second.then(&["lab", "plan", "--json"]);
    let plan = second.run();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["nodes"][0]["address"], "192.168.57.2");
    assert_eq!(plan["nodes"][0]["fqdn"], "dns0.beta.lan");
    assert_eq!(plan["nodes"][0]["ssh_port"], 2302);
    assert_eq!(plan["api"]["url"], "https://api.beta.lan:6443");
    assert_eq!(plan["api"]["address"], "192.168.57.50");
    let second = second.then(&["lab", "up", "--until", "machines"]);
    second.run();

    // Both blocks are in the hosts file; the short names stay alpha's.
    let text = std::fs::read_to_string(&hosts).unwrap();
    assert!(
        text.contains("192.168.56.2\tdns0.alpha.lan dns0\n"),
        "{text}"
    );
    assert!(text.contains("192.168.57.2\tdns0.beta.lan\n"), "{text}");
    assert!(text.contains("192.168.57.50\tapi.beta.lan\n"), "{text}");
    let short_claims = text
        .lines()
        .filter(|l| l.split_whitespace().skip(1).any(|n| n == "etcd0"))
        .count();
    assert_eq!(short_claims, 1, "{text}");

    let doc = labs_json(&first);
    assert_eq!(doc["schema_version"], 1);
    let rows: Vec<(String, String, String, String)> = doc["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["state"].as_str().unwrap().to_string(),
                l["cidr"].as_str().unwrap().to_string(),
                l["ssh_ports"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "alpha".into(),
                "up".into(),
                "192.168.56.0/24".into(),
                "2202-2252".into()
            ),
            (
                "beta".into(),
                "up".into(),
                "192.168.57.0/24".into(),
                "2302-2352".into()
            ),
        ]
    );
    assert_eq!(
        doc["labs"][1]["lab_file"],
        second.path().join("lab.yaml").display().to_string()
    );

    // A third lab written without --name takes the default network: refused
    // while alpha is up, naming alpha and its lab file, with nothing started.
    let third = Test::new()
        .standins()
        .env("KUBELAB_REGISTRY", &registry)
        .env("KUBELAB_HOSTS_FILE", &hosts_env)
        .write("lab.yaml", "name: gamma\n")
        .args(&["lab", "up", "--until", "machines"])
        .status(2);
    let ran = third.run();
    assert!(
        ran.stderr.contains("lab gamma clashes with lab alpha"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains(&first.path().join("lab.yaml").display().to_string()),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("network.cidr 192.168.56.0/24 overlaps"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("SSH ports"), "{}", ran.stderr);
    assert!(third.started().is_empty(), "{:?}", third.started());
    let third = third.then(&["doctor", "--json"]).status(1);
    let doctor = third.run();
    let doc: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    let check = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "other-labs")
        .expect("an other-labs check");
    assert_eq!(check["status"], "failed");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("clashes with lab alpha"),
        "{check}"
    );

    // Once alpha is halted its network is free for gamma.
    let first = first.then(&["lab", "halt"]);
    first.run();
    let third = third.then(&["lab", "up", "--until", "machines"]);
    third.run();

    // Destroy takes a lab out of the registry.
    second.then(&["lab", "destroy", "--yes"]).run();
    let names: Vec<String> = labs_json(&first)["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["name"].as_str().unwrap(),
                l["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["alpha halted", "gamma up"]);
    // A lab whose directory was deleted is listed as gone.
    drop(third);
    assert_eq!(labs_json(&first)["labs"][1]["state"], "gone");
}

#[test]
fn lab_up_says_where_its_time_went_and_keeps_the_last_runs() {
    let test = Test::new()
        .write("lab.yaml", "name: t\n")
        .standins()
        .env("STANDIN_FAIL", "worker0")
        .args(&["lab", "up", "--until", "machines", "--no-hosts"])
        .status(1);
    let ran = test.run();
    assert!(
        ran.stderr.contains("lab up took ") && ran.stderr.contains(" (failed): "),
        "{}",
        ran.stderr
    );
    let test =
        test.env("STANDIN_FAIL", "")
            .then(&["lab", "up", "--until", "machines", "--no-hosts"]);
    let ran = test.run();
    let summary = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("lab up took "))
        .unwrap_or_else(|| panic!("no summary in {}", ran.stderr));
    assert!(summary.contains(": machines "), "{summary}");
    assert!(summary.ends_with(" s"), "{summary}");

    let test = test.then(&["lab", "timings", "--json"]);
    let ran = test.run();
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    let runs = doc["runs"].as_array().unwrap();
    let outcomes: Vec<&str> = runs
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "ok"]);
    for run in runs {
        let parts: Vec<&str> = run["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let sum: u64 = run["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["ms"].as_u64().unwrap())
            .sum();
        assert_eq!(sum, run["total_ms"].as_u64().unwrap(), "{run}");
        assert_eq!(parts, ["machines", "other"], "{run}");
    }
    // Kept in state.json, where the next `lab up` finds them.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(test.path().join(".kubelab/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["runs"].as_array().unwrap().len(), 2);

    let ran = test.then(&["lab", "timings"]).run();
    let header = ran.stdout.lines().next().unwrap();
    for column in ["STARTED (UTC)", "OUTCOME", "TOTAL", "machines", "other"] {
        assert!(header.contains(column), "{header}");
    }
    assert_eq!(ran.stdout.lines().count(), 3, "{}", ran.stdout);
}

/// Every key path of a JSON document with the type of its value, arrays'
/// elements merged: the document's shape, independent of this host's values.
/// A key some elements lack is marked `(optional)`.
fn shape(doc: &serde_json::Value) -> String {
    use serde_json::Value;
    use std::collections::BTreeMap;
    fn walk(path: &str, v: &Value, out: &mut BTreeMap<String, (String, usize)>, seen: usize) {
        let kind = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let entry = out.entry(path.to_string()).or_insert((String::new(), 0));
        if !entry.0.split(" | ").any(|k| k == kind) {
            entry.0 = if entry.0.is_empty() {
                kind.to_string()
            } else {
                format!("{} | {kind}", entry.0)
            };
        }
        entry.1 += seen;
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    walk(&format!("{path}.{k}"), child, out, 1);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(&format!("{path}[]"), item, out, 1);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk("", doc, &mut out, 1);
    // How often each parent was seen, to tell optional keys.
    let counts: BTreeMap<String, usize> = out.iter().map(|(k, (_, n))| (k.clone(), *n)).collect();
    out.iter()
        .filter(|(path, _)| !path.is_empty())
        .map(|(path, (kind, n))| {
            let parent = &path[..path.rfind('.').unwrap_or(0)];
            let optional = counts.get(parent).is_some_and(|p| n < p);
            format!(
                "{path}: {kind}{}",
                if optional { " (optional)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn json_of(ran: &support::Ran) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", ran.stdout, ran.stderr));
    assert_eq!(doc["schema_version"], 1, "{doc}");
    doc
}

/// The documented `--json` shapes: a change to one is a change for every
/// script that reads it, and shows here as a snapshot diff.
#[test]
fn json_documents_keep_their_shape() {
    let test = Test::new()
        .write("lab.yaml", "name: t\n")
        .standins()
        .args(&["lab", "plan", "--json"]);
    insta::assert_snapshot!("plan_json", shape(&json_of(&test.run())));

    let test = test.then(&["lab", "render"]);
    test.run();
    let test = test.then(&["lab", "certs", "--json"]);
    insta::assert_snapshot!("certs_json", shape(&json_of(&test.run())));

    let test = test.then(&["lab", "up", "--until", "machines", "--no-hosts"]);
    test.run();
    let test = test.then(&["lab", "status", "--json"]);
    insta::assert_snapshot!("status_json", shape(&json_of(&test.run())));

    // Only the check that reads .kubelab/pki: no network is touched.
    let test = test.then(&["lab", "verify", "--json", "--only", "certificates"]);
    insta::assert_snapshot!("verify_json", shape(&json_of(&test.run())));

    let test = test.then(&["lab", "timings", "--json"]);
    insta::assert_snapshot!("timings_json", shape(&json_of(&test.run())));

    let test = test.then(&["labs", "--json"]);
    insta::assert_snapshot!("labs_json", shape(&json_of(&test.run())));

    // A DHCP server on the lab's addresses makes one check fail with a fix,
    // whatever else this host has.
    let test = test
        .env(
            "STANDIN_DHCPSERVERS",
            "NetworkName:    HostInterfaceNetworking-vboxnet0\\nDhcpd IP:       192.168.56.2\\nLowerIPAddress: 192.168.56.3\\nUpperIPAddress: 192.168.56.254\\nNetworkMask:    255.255.255.0\\nEnabled:        Yes\\n",
        )
        .then(&["doctor", "--json"])
        .status(1);
    insta::assert_snapshot!("doctor_json", shape(&json_of(&test.run())));
}

/// A static lab's `plan --json` (no box, no memory, nodes without VM sizes
/// and with how kubelab logs in) and `doctor --json` (the same document as
/// for VirtualBox, one check per host).
#[test]
fn static_json_documents_keep_their_shape() {
    let test = Test::new().static_lab().args(&["lab", "plan", "--json"]);
    insta::assert_snapshot!("plan_json_static", shape(&json_of(&test.run())));

    let test = test.then(&["doctor", "--json"]).status(1);
    insta::assert_snapshot!("doctor_json_static", shape(&json_of(&test.run())));
}

/// D8: `init --name` picks a network and records it under one host-wide
/// lock, so labs initialised at the same moment never share a network and
/// no entry is lost.
#[test]
fn concurrent_inits_get_distinct_networks_and_every_entry() {
    let base = Test::new();
    let registry = base.path().join("labs.json").display().to_string();
    let names = ["c1", "c2", "c3", "c4"];
    let tests: Vec<Test> = names
        .iter()
        .map(|name| {
            Test::new()
                .env("KUBELAB_REGISTRY", &registry)
                .args(&["init", "--name", name])
        })
        .collect();
    let children: Vec<_> = tests.iter().map(Test::spawn).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let doc = labs_json(&base);
    let mut cidrs: Vec<String> = doc["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["cidr"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cidrs.len(), names.len(), "{doc}");
    cidrs.sort();
    cidrs.dedup();
    assert_eq!(cidrs.len(), names.len(), "one network twice: {doc}");
}

/// S1: a `lab up` that fails before any VM exists (here: no vagrant on
/// PATH) leaves the registry as it was: the lab stays `defined`, and a lab
/// that was never recorded is not recorded as up.
#[test]
fn a_failed_up_before_any_vm_leaves_the_registry_as_it_was() {
    let test = Test::new()
        .env("PATH", "/nonexistent")
        .args(&["init", "--name", "failup"]);
    test.run();
    let test = test.then(&["lab", "up"]).status(1);
    test.run();
    let doc = labs_json(&test);
    assert_eq!(doc["labs"][0]["name"], "failup", "{doc}");
    assert_eq!(doc["labs"][0]["state"], "defined", "{doc}");

    let builtin = Test::new()
        .env("PATH", "/nonexistent")
        .args(&["lab", "up"])
        .status(1);
    builtin.run();
    assert_eq!(labs_json(&builtin)["labs"], serde_json::json!([]));
}

/// D5: two labs merging into one kubeconfig at the same moment both end up
/// in it (the merges take a host-wide lock; before, one context was lost in
/// most runs).
#[test]
fn concurrent_kubeconfig_merges_keep_both_labs() {
    let test = Test::new()
        .write("a/lab.yaml", "name: a\n")
        .write("b/lab.yaml", "name: b\nnetwork:\n  cidr: 192.168.57.0/24\n  ssh_port_base: 2300\n")
        .write("kube/config", "apiVersion: v1\nkind: Config\n# mine\ncontexts:\n- name: prod\n  context: {cluster: prod, user: me}\n");
    for lab in ["a", "b"] {
        let lab_file = format!("{lab}/lab.yaml");
        let out = test
            .spawn_args(&["--lab", &lab_file, "lab", "render"])
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for round in 0..4 {
        let children: Vec<_> = ["a", "b"]
            .iter()
            .map(|lab| {
                let lab_file = format!("{lab}/lab.yaml");
                test.spawn_args(&["--lab", &lab_file, "lab", "kubeconfig", "--merge"])
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(test.path().join("kube/config")).unwrap();
        for name in ["name: kubelab-a", "name: kubelab-b", "name: prod", "# mine"] {
            assert_eq!(
                text.matches(name).count(),
                if name.starts_with("name: kubelab") {
                    3
                } else {
                    1
                },
                "round {round}: {name}\n{text}"
            );
        }
    }
}

/// S1: a lab whose lab.yaml went away while it was `up` blocks every lab
/// with its name; the clash names `kubelab labs forget`, which drops it.
/// A lab whose folder is still there is refused (destroy is the way).
#[test]
fn labs_forget_drops_an_entry_whose_lab_yaml_is_gone() {
    let test = Test::new()
        .standins()
        .write("old/lab.yaml", "name: ghost\n");
    let registry = test.path().join("labs.json").display().to_string();
    let test = test.args(&["--lab", "old/lab.yaml", "lab", "up", "--until", "machines"]);
    test.run();
    std::fs::remove_file(test.path().join("old/lab.yaml")).unwrap();

    let other = Test::new()
        .standins()
        .env("KUBELAB_REGISTRY", &registry)
        .write(
            "lab.yaml",
            "name: ghost\nnetwork:\n  cidr: 192.168.58.0/24\n  ssh_port_base: 2400\n",
        )
        .args(&["lab", "up", "--until", "machines"])
        .status(2);
    let ran = other.run();
    assert!(
        ran.stderr
            .contains("`kubelab labs forget ghost` drops its entry"),
        "{}",
        ran.stderr
    );

    let refused = other.then(&["labs", "forget", "nosuch"]).status(2);
    assert!(
        refused
            .run()
            .stderr
            .contains("hint: `kubelab labs` lists them: ghost")
    );
    let forget = refused.then(&["labs", "forget", "ghost"]);
    let ran = forget.run();
    assert!(ran.stderr.contains("forgot lab ghost"), "{}", ran.stderr);
    let other = forget.then(&["lab", "up", "--until", "machines"]);
    other.run();
    // The lab that is there is not forgotten without --force.
    let alive = other.then(&["labs", "forget", "ghost"]).status(2);
    assert!(
        alive
            .run()
            .stderr
            .contains("lab destroy` removes it properly")
    );
}

/// A plain `init` beside a lab made with `init --name` (which took the
/// first network) says that the two clash, and how to pick free ones.
#[test]
fn a_plain_init_notes_the_lab_whose_network_it_shares() {
    let test = Test::new().args(&["--lab", "a/lab.yaml", "init", "--name", "a"]);
    test.run();
    let test = test.then(&["--lab", "b/lab.yaml", "init"]);
    let ran = test.run();
    assert!(
        ran.stderr.contains("note: this lab clashes with lab a in")
            && ran.stderr.contains("network.cidr 192.168.56.0/24 overlaps")
            && ran.stderr.contains("`kubelab init --name NAME --force`"),
        "{}",
        ran.stderr
    );
    // A lab made with --name picks free ones: no note.
    let test = test.then(&["--lab", "c/lab.yaml", "init", "--name", "c"]);
    assert!(!test.run().stderr.contains("clashes"));
}

/// `labs forget` says what it leaves: the lab's hosts block (its lines)
/// and how to remove it.
#[test]
fn labs_forget_names_the_hosts_block_it_leaves() {
    let test = Test::new()
        .standins()
        .write("etc-hosts", "127.0.0.1 localhost\n")
        .write("old/lab.yaml", "name: ghost\n")
        .args(&["--lab", "old/lab.yaml", "lab", "up", "--until", "machines"]);
    test.run();
    std::fs::remove_file(test.path().join("old/lab.yaml")).unwrap();
    let test = test.then(&["labs", "forget", "ghost"]);
    let ran = test.run();
    assert!(
        ran.stderr.contains("its block stays in")
            && ran.stderr.contains("(lines 2-")
            && ran
                .stderr
                .contains("delete those lines if its VMs are gone"),
        "{}",
        ran.stderr
    );
    assert!(
        std::fs::read_to_string(test.path().join("etc-hosts"))
            .unwrap()
            .contains("# BEGIN kubelab ghost"),
        "nothing removed"
    );
}

/// D8: two labs of one name (in two folders) brought up at the same moment:
/// the clash check and the claim happen under one lock, so exactly one goes
/// up and the other is refused naming it (both used to succeed and share one
/// hosts block).
#[test]
fn two_same_name_labs_brought_up_at_once_one_is_refused() {
    let x = Test::new().standins().write("lab.yaml", "name: dup\n");
    let registry = x.path().join("labs.json").display().to_string();
    let hosts = x.path().join("etc-hosts").display().to_string();
    let y = Test::new()
        .standins()
        .env("KUBELAB_REGISTRY", &registry)
        .env("KUBELAB_HOSTS_FILE", &hosts)
        .write("lab.yaml", "name: dup\n");
    let children = [
        x.spawn_args(&["lab", "up", "--until", "machines"]),
        y.spawn_args(&["lab", "up", "--until", "machines"]),
    ];
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap_or(-1)).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [0, 2],
        "{codes:?}\n{}\n{}",
        String::from_utf8_lossy(&outs[0].stderr),
        String::from_utf8_lossy(&outs[1].stderr)
    );
    let refused = &outs[codes.iter().position(|c| *c == 2).unwrap()];
    assert!(String::from_utf8_lossy(&refused.stderr).contains("clashes with lab dup"));
    let text = std::fs::read_to_string(&hosts).unwrap();
    assert_eq!(text.matches("# BEGIN kubelab dup").count(), 1, "{text}");
}
