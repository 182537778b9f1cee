//! Command-line definitions only; the work happens in `app`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::settings::ENV_LAB;
use crate::topology::Phase;

#[derive(Debug, Parser)]
#[command(
    name = "kubelab",
    version,
    about = "Build a highly-available Kubernetes lab on one workstation, the hard way",
    long_about = "kubelab turns one lab.yaml into VirtualBox VMs (through Vagrant) and the \
                  pieces of a highly-available Kubernetes cluster: bind9 DNS, haproxy + \
                  keepalived, a TLS etcd cluster, three control-plane nodes and workers.",
    after_long_help = ROOT_HELP,
    after_help = "Start with `kubelab init`, then `kubelab lab plan`. More with --help."
)]
pub struct Cli {
    /// The lab file [default: ./lab.yaml, else the built-in default lab]
    #[arg(long, global = true, value_name = "FILE", env = ENV_LAB)]
    pub lab: Option<PathBuf>,

    /// Show more detail (the underlying commands and their output)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print only data and errors: no progress
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

const ROOT_HELP: &str = "Examples:
  kubelab init                 write a commented lab.yaml sized for this host
  kubelab lab plan             what the lab will be: VMs, addresses, memory, phases
  kubelab lab render --out r/  every generated file, no VM touched
  kubelab doctor               can this host run it?
  kubelab lab up               create and boot the VMs, write /etc/hosts
  kubelab lab verify           check that the lab works, piece by piece
  kubelab lab destroy          remove it all
  kubelab lab certs            the lab's certificates, their names and expiry

Exit codes: 0 ok, 1 a step or check failed, 2 bad input (lab file, flags), 130 interrupted.
stdout carries data (tables, JSON); stderr carries progress and diagnostics.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented lab.yaml for this host
    #[command(after_long_help = "Examples:
  kubelab init                  ./lab.yaml, the default lab sized for this host's RAM
  kubelab init --force          overwrite an existing lab.yaml
  kubelab --lab labs/a.yaml init
  kubelab --lab ../b/lab.yaml init --name b   a second lab beside the first

With --name, the lab gets the domain NAME.lan, the first /24 inside
192.168.56.0/21 and the first block of 100 SSH ports from 2200 that no lab
in `kubelab labs` uses, so two labs can run at once.

When the host has less RAM than the default lab needs, the worker's memory
(then the other roles', down to their minimums) is lowered, and a comment at
the top of the file says what was changed.")]
    Init(InitArgs),

    /// Check this host can run the lab: Vagrant, VirtualBox, network, ports, RAM
    #[command(after_long_help = "Examples:
  kubelab doctor
  kubelab doctor --json | jq '.checks[] | select(.status != \"passed\")'
  kubelab doctor --only memory,disk

Each check prints Passed, Warned or Failed with the fix. Exit 1 on any Failed.
A static lab (provider: static) gets ssh, other-labs and, per host, the SSH and
sudo check `lab up` starts with (`host NODE`).")]
    Doctor(DoctorArgs),

    /// Plan, build and inspect the lab (`kubelab lab --help`)
    #[command(subcommand)]
    Lab(LabCommand),

    /// Download the lab's release files into the shared cache ahead of time
    #[command(subcommand)]
    Artifacts(ArtifactsCommand),

    /// The download cache shared by every lab on this host
    #[command(subcommand)]
    Cache(CacheCommand),

    /// The labs this host knows: name, state, network and where lab.yaml lives
    #[command(after_long_help = "Examples:
  kubelab labs
  kubelab labs --json | jq -r '.labs[] | select(.state == \"up\") | .lab_file'

`kubelab init` records a lab, `lab up` and `lab halt` update its state and
`lab destroy` removes it; the list lives in $XDG_DATA_HOME/kubelab/labs.json
(KUBELAB_REGISTRY). A lab whose directory was deleted shows as gone.
`kubelab labs forget NAME` drops an entry whose lab.yaml is gone (moved,
renamed, on a disk that is no longer mounted), so it no longer holds its
name, network and ports.")]
    Labs(LabsArgs),

    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    #[command(after_long_help = "Examples:
  kubelab completions bash > ~/.local/share/bash-completion/completions/kubelab
  kubelab completions zsh > ~/.zfunc/_kubelab     # with fpath+=~/.zfunc in ~/.zshrc
  kubelab completions fish > ~/.config/fish/completions/kubelab.fish
  source <(kubelab completions bash)              # this shell only")]
    Completions(CompletionsArgs),

    /// Print kubelab's man page, or write one per command into a directory
    #[command(after_long_help = "Examples:
  kubelab man | man -l -
  kubelab man --out ~/.local/share/man/man1     # then `man kubelab-lab-up`

Generated from the same definitions as --help, so it never lags behind.")]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write kubelab.1 and a page per command (kubelab-lab-up.1, ...) here
    /// instead of printing kubelab.1
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// Fetch (or resume) every release file the lab needs, checksum-verified
    #[command(after_long_help = "Examples:
  kubelab artifacts fetch
  kubelab artifacts fetch --offline
  KUBELAB_ARTIFACTS_MIRROR=http://mirror.local/kubelab kubelab artifacts fetch

Fetches etcd (unless artifacts.etcd: distro), the Kubernetes server tarball,
containerd, runc, the CNI plugins and crictl. Files land once per host in
$XDG_CACHE_HOME/kubelab (KUBELAB_CACHE_DIR) and are copied to the VMs whose
role needs them; a broken download resumes. A file whose sha256/sha512
differs from the one kubelab pins is deleted and reported.")]
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Download nothing: list every release file missing from the cache
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Delete every downloaded file (all labs share them)
    #[command(after_long_help = "Examples:
  kubelab cache clean")]
    Clean,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,

    /// Name the lab, and give it the domain NAME.lan, the first /24 of
    /// 192.168.56.0/21 and SSH port block no other lab on this host uses
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Show what the lab is made of: VMs, addresses, memory, phases
    #[command(after_long_help = "Examples:
  kubelab lab plan
  kubelab lab plan --json | jq '.nodes[] | .address'
  kubelab --lab other.yaml lab plan

Nothing is created. The memory line compares the VMs' sum with this host's RAM.")]
    Plan(JsonArgs),

    /// Write every generated file to a directory, touching no VM
    #[command(after_long_help = "Examples:
  kubelab lab render                 into .kubelab/rendered/ beside lab.yaml
  kubelab lab render --out /tmp/r    anywhere else

Files for the hypervisor go under host/ (the Vagrantfile, the /etc/hosts
block); MANIFEST lists every file with the node that receives it and its mode.
")]
    Render(RenderArgs),

    /// List the lab's certificates: subject, names and expiry
    #[command(after_long_help = "Examples:
  kubelab lab certs
  kubelab lab certs --json | jq '.certificates[] | select(.name == \"kube-apiserver\") | .sans'

Reads .kubelab/pki/ beside lab.yaml and signs nothing (`kubelab lab render`
signs what is missing). Keys are never shown. A certificate the topology
needs but that is not signed yet is listed as missing.")]
    Certs(JsonArgs),
    /// Create and boot the lab's VMs and write the hypervisor's hosts block
    #[command(after_long_help = "Examples:
  kubelab lab up                 boot every VM that is not running
  kubelab lab up --jobs 2        at most two `vagrant up` at once
  kubelab lab up --no-hosts      leave /etc/hosts alone
  kubelab lab up --until etcd    stop after the etcd phase
  kubelab lab up --only lb --node lb1   re-run one phase on one node
  kubelab lab up --snapshot base  then verify, and snapshot it for `lab reset`

The first VM boots alone (box import, linked-clone master), the rest
concurrently. Then each phase provisions its nodes over one SSH connection
per node (`kubelab lab plan` lists the phases). Every finished step is
recorded with a hash of its inputs, so a second `lab up` does nothing, a
changed file re-runs only the steps that use it, and after a failure or
Ctrl-C it resumes where it stopped. Writing /etc/hosts asks for sudo once
when you are not root. With --snapshot, the checks of the phases the lab
has done must pass before the snapshot is taken (`kubelab lab reset`
returns to it).")]
    Up(UpArgs),

    /// Print the path of the lab's admin kubeconfig; merge it into yours
    #[command(after_long_help = "Examples:
  kubectl --kubeconfig \"$(kubelab lab kubeconfig)\" get nodes
  kubelab lab kubeconfig --merge       add context kubelab-<lab> to ~/.kube/config
  kubelab lab kubeconfig --use         the same, and make it the current context

The kubeconfig (.kubelab/admin.kubeconfig, 0600: it holds the admin's client
key) reaches the API through its name, https://api.<domain>:6443, which the
lab's /etc/hosts block points at the VIP. --merge writes $KUBECONFIG's first
file, else ~/.kube/config: the cluster, user and context kubelab-<lab> are
added or replaced, every other entry is kept, the previous file is copied to
<file>.kubelab.bak first, and the file is left 0600. `kubelab lab destroy`
removes the three entries again.")]
    Kubeconfig(KubeconfigArgs),

    /// Each VM's state, address, role and the phases done
    #[command(after_long_help = "Examples:
  kubelab lab status
  kubelab lab status --json")]
    Status(JsonArgs),

    /// Where the last `lab up` runs spent their time: machines, each phase
    #[command(after_long_help = "Examples:
  kubelab lab timings
  kubelab lab timings --json | jq '.runs[-1].parts'

`lab up` ends with the same summary for its own run and keeps the last 10
runs in .kubelab/state.json, so a slower phase after a change shows here.
`other` is what no part accounts for: reading facts, SSH set-up, rendering.")]
    Timings(JsonArgs),

    /// Shut every VM down (`kubelab lab up` boots them again)
    #[command(after_long_help = "Examples:
  kubelab lab halt")]
    Halt,

    /// Remove every VM, the lab's hosts block and .kubelab/
    #[command(after_long_help = "Examples:
  kubelab lab destroy            asks first on a terminal
  kubelab lab destroy --yes      for scripts

Uses the Vagrantfile the VMs were made from, so it works after lab.yaml was
edited and on half-created labs. The shared download cache stays.")]
    Destroy(DestroyArgs),

    /// Log in to a node, or run one command there
    #[command(after_long_help = "Examples:
  kubelab lab ssh etcd0
  kubelab lab ssh worker0 -- sudo crictl ps

The exit code is the remote command's.")]
    Ssh(SshArgs),

    /// Save, restore, list or delete a snapshot of the whole lab
    #[command(subcommand)]
    Snapshot(SnapshotCommand),

    /// Check that the lab works: VMs, DNS, etcd, the API, failover, certificates
    #[command(after_long_help = "Examples:
  kubelab lab verify
  kubelab lab verify --only etcd
  kubelab lab verify --no-disruptive
  kubelab lab verify --json | jq '.checks[] | select(.status == \"failed\")'
  kubelab lab verify --conformance
  kubelab lab verify --conformance --focus '\\[sig-network\\].*\\[Conformance\\]'

Checks (`--only NAME[,NAME]`): machines, dns, etcd, api, lb-failover, control-plane,
nodes, secrets, networking, workload, certificates, logs-exec, port-forward,
services, api-failover, etcd-member-down. They run at once, each under its
own deadline, from this host over the host-only network with the lab's
certificates (and over SSH where the host cannot see the thing). The three
disruptive ones run alone after the others, each restoring what it stopped:
lb-failover stops haproxy on the VIP holder, api-failover a kube-apiserver,
etcd-member-down an etcd member (`--no-disruptive` skips them); Ctrl-C stops
the checks, starts again whatever one had stopped, and exits 130. A Kubernetes
check whose phase has not run on the lab is Skipped, naming the phase. Each
ends Passed, Warned, Skipped (with why) or Failed (with a hint). Exit 1 on
any Failed.

--conformance runs the upstream conformance suite instead, through
hydrophone 0.7.0 (fetched once into the artifacts cache, its sha256 pinned;
Linux x86_64 hosts only) with the lab's admin kubeconfig and the conformance
image of the lab's Kubernetes release. A full run takes an hour or more;
--focus REGEX runs only the specs it matches. It prints progress every minute
and each failure as it happens; the results (e2e.log, junit_01.xml and
hydrophone's whole output) go to .kubelab/conformance/<time>/. Exit 1 when a
spec fails.")]
    Verify(VerifyArgs),

    /// Add or remove workers; nothing else in the lab is disturbed
    #[command(after_long_help = "Examples:
  kubelab lab scale workers=3 --dry-run   show what would change
  kubelab lab scale workers=3             add worker1 and worker2
  kubelab lab scale workers=1 --yes       drain and remove them again

Up: only the new VMs boot; only their certificates are signed; they are
provisioned through the same phases as the rest of the lab (`--until` caps
that); every other node gets only their routes, dns0 their records (bind9
reloads), the hosts file their entries, and the nginx workload spreads onto
them where it runs. Down: the removed workers are drained and their Nodes
deleted (where Kubernetes runs), their VMs destroyed, and their routes,
records, hosts entries and certificates removed. lab.yaml's
nodes.worker.count is edited in place (comments kept), so a later
`kubelab lab up` has nothing to do. etcd, controllers and load balancers are
not scaled: the error says why and what to do instead.

On a `provider: static` lab the workers are the hosts listed under hosts:
with `role: worker`; nodes.worker.count picks the first N. Up brings in the
next listed ones; down uninstalls kubelab from the removed ones, which keep
running and stay listed.")]
    Scale(ScaleArgs),

    /// Go back to a snapshot (default `base`) and wait until the lab answers
    #[command(after_long_help = "Examples:
  kubelab lab up --snapshot base   build the lab, verify it, snapshot it as `base`
  kubelab lab reset                back to `base` after an experiment
  kubelab lab reset before-upgrade

Restores every VM (VMs created since the snapshot are destroyed), lab.yaml's
node counts, kubelab's state, the hosts block and the VMs' clocks, then waits
until the checks of the phases the lab has done pass again and says how long
it took. `kubelab lab destroy` is the full teardown.")]
    Reset(ResetArgs),

    /// Write the lab as an Ansible inventory: groups per role, SSH details, lab variables
    #[command(after_long_help = "Examples:
  kubelab lab export-inventory > inventory.ini
  kubelab lab export-inventory --format ansible-yaml --out inventory.yaml
  ansible-inventory -i inventory.yaml --graph

Groups dns, etcd, controllers, workers, lb and registry; each host carries
ansible_host/ansible_port/ansible_user/ansible_ssh_private_key_file (what
`kubelab lab ssh` uses) and its lab address; `all` carries the network, the
API endpoint and the versions as kubelab_* variables.")]
    ExportInventory(ExportInventoryArgs),
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The new size, as ROLE=COUNT (workers=3; only workers can be scaled)
    #[arg(value_name = "ROLE=COUNT", value_parser = crate::machines::scale::parse_request)]
    pub request: crate::machines::scale::Request,

    /// Print what would change and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Do not ask before removing workers
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Print the plan (and, after the change, what was done) as JSON on stdout
    #[arg(long)]
    pub json: bool,

    /// At most this many `vagrant up` at once
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,

    /// Do not write the lab's block into the hosts file
    #[arg(long)]
    pub no_hosts: bool,

    /// Apply the change through this phase at most [default: the phases the lab has done]
    #[arg(long, value_name = "PHASE", value_parser = parse_phase)]
    pub until: Option<Phase>,

    /// Use only files already in the download cache
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The snapshot to go back to
    #[arg(default_value = "base")]
    pub name: String,

    /// Do not write the lab's block into the hosts file
    #[arg(long)]
    pub no_hosts: bool,
}

#[derive(Debug, Args)]
pub struct ExportInventoryArgs {
    /// The inventory format
    #[arg(long, value_enum, default_value = "ansible-ini")]
    pub format: crate::inventory::Format,

    /// Write to this file instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Add the lab's cluster, user and context (kubelab-<lab>) to $KUBECONFIG's first file or ~/.kube/config
    #[arg(long)]
    pub merge: bool,

    /// Merge, and make kubelab-<lab> the current context
    #[arg(long = "use")]
    pub use_it: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Print JSON on stdout (every document carries `schema_version`)
    #[arg(long)]
    pub json: bool,

    /// Run only these checks (comma-separated)
    #[arg(long, value_name = "NAME[,NAME]")]
    pub only: Option<String>,

    /// Skip the checks that disturb the lab (LB, API and etcd failover)
    #[arg(long)]
    pub no_disruptive: bool,

    /// Run the upstream conformance suite through hydrophone instead of the checks (an hour or more)
    #[arg(long, conflicts_with_all = ["only", "json", "no_disruptive"])]
    pub conformance: bool,

    /// With --conformance: run only the specs matching this Go (RE2) regular expression, checked before anything runs
    #[arg(long, value_name = "REGEX", requires = "conformance", value_parser = parse_focus)]
    pub focus: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// At most this many `vagrant up` at once [default: from cores and free RAM]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,

    /// Do not write the lab's block into the hosts file
    #[arg(long)]
    pub no_hosts: bool,

    /// Start at this phase (earlier ones are taken as done)
    #[arg(long, value_name = "PHASE", value_parser = parse_phase, conflicts_with = "only")]
    pub from: Option<Phase>,

    /// Stop after this phase
    #[arg(long, value_name = "PHASE", value_parser = parse_phase, conflicts_with = "only")]
    pub until: Option<Phase>,

    /// Run only these phases (comma-separated)
    #[arg(long, value_name = "PHASE,...", value_parser = parse_phase, value_delimiter = ',')]
    pub only: Vec<Phase>,

    /// Provision only this node
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// Use only files already in the download cache
    #[arg(long)]
    pub offline: bool,

    /// When the lab verifies afterwards, save (or replace) this snapshot
    #[arg(long, value_name = "NAME")]
    pub snapshot: Option<String>,

    /// Print what `lab up` would do (machines, certificates, facts,
    /// downloads, and each step on each node with why) and change nothing
    #[arg(long, conflicts_with = "snapshot")]
    pub dry_run: bool,

    /// With --dry-run: print the plan as JSON on stdout
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

fn parse_phase(s: &str) -> Result<Phase, String> {
    Phase::ALL
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| {
            let names: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
            format!(
                "no phase named {s:?}; the phases, in order: {}",
                names.join(", ")
            )
        })
}

/// `--focus`: checked here, not an hour into the suite. Ginkgo reads it
/// as a Go (RE2) regular expression. It is parsed, not compiled (a
/// compiled `\w{500}` passes the regex crate's size limit only in RE2),
/// with RE2's nesting limit and octal escapes; RE2's `\Q...\E` quoting,
/// which the parser lacks, is turned into escapes first. A few that RE2
/// refuses pass here (the flags `x` and `u`, a repeat over 1,000, a lone
/// `\1`); Ginkgo still refuses those at the start of the run.
fn parse_focus(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("it is empty: give a regular expression, or leave --focus out to run every [Conformance] spec".into());
    }
    let parsed = regex_syntax::ParserBuilder::new()
        .octal(true)
        .nest_limit(1000)
        .build()
        .parse(&unquoted(s));
    match parsed {
        Ok(_) => Ok(s.to_string()),
        Err(e) => Err(format!(
            "it is not a regular expression ({}); brackets in spec names need a backslash: '\\[sig-network\\]'",
            e.to_string()
                .lines()
                .last()
                .unwrap_or("unparsable")
                .trim()
                .trim_start_matches("error: ")
        )),
    }
}

/// `s` with each RE2 `\Q...\E` (or `\Q` to the end) written as escapes.
fn unquoted(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(q) = rest.find("\\Q") {
        // A `\Q` preceded by an odd run of backslashes is an escaped one.
        let backslashes = rest[..q].chars().rev().take_while(|c| *c == '\\').count();
        if backslashes % 2 == 1 {
            out.push_str(&rest[..q + 2]);
            rest = &rest[q + 2..];
            continue;
        }
        out.push_str(&rest[..q]);
        let quoted = &rest[q + 2..];
        let (literal, after) = quoted.split_once("\\E").unwrap_or((quoted, ""));
        out.push_str(&regex_syntax::escape(literal));
        rest = after;
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// The node, by short name (etcd0, worker1, ...)
    pub node: String,

    /// A command to run instead of a shell (after `--`)
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Pause every VM, snapshot them all, resume: one consistent point
    #[command(after_long_help = "Examples:
  kubelab lab snapshot save base")]
    Save(SnapshotName),

    /// Return the whole lab to a snapshot (VMs created since are destroyed)
    #[command(after_long_help = "Examples:
  kubelab lab snapshot restore base

lab.yaml's node counts and kubelab's state go back to the snapshot's too, and
every VM's clock is set to now.")]
    Restore(SnapshotName),

    /// List the lab's snapshots
    #[command(after_long_help = "Examples:
  kubelab lab snapshot list --json")]
    List(JsonArgs),

    /// Delete a snapshot from every VM
    #[command(after_long_help = "Examples:
  kubelab lab snapshot delete base")]
    Delete(SnapshotName),
}

#[derive(Debug, Args)]
pub struct SnapshotName {
    /// Letters, digits, '-', '_' and '.'
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LabsArgs {
    #[command(subcommand)]
    pub command: Option<LabsCommand>,
    #[command(flatten)]
    pub json: JsonArgs,
}

#[derive(Debug, Subcommand)]
pub enum LabsCommand {
    /// Drop a lab from the list without touching its files or VMs (for a lab whose lab.yaml is gone)
    #[command(after_long_help = "Examples:
  kubelab labs forget failup
  kubelab labs forget /old/place/of/the/lab

NAME is the lab's name as `kubelab labs` shows it, or its directory. A lab
whose folder is still there is refused: `kubelab --lab <its lab.yaml> lab
destroy` removes it properly, VMs included.")]
    Forget(ForgetArgs),
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The lab's name, or its directory
    #[arg(value_name = "LAB")]
    pub name: String,
    /// Forget it even though its folder is still there
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON on stdout (every document carries `schema_version`)
    #[arg(long)]
    pub json: bool,

    /// Run only these checks (comma-separated; `host` is every host of a
    /// static lab)
    #[arg(long, value_name = "NAME[,NAME]")]
    pub only: Option<String>,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON on stdout (every document carries `schema_version`)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Directory to write into [default: .kubelab/rendered beside lab.yaml]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// RE2's `\Q...\E` becomes escapes; an escaped `\\Q` stays as it is.
    #[test]
    fn quoted_focus_text_is_turned_into_escapes() {
        for (focus, unquoted) in [
            (r"\Q[sig-network]\E.*x", r"\[sig\-network\].*x"),
            (r"a\Q.*", r"a\.\*"),
            (r"\\Q[a]", r"\\Q[a]"),
            (r"\[plain\]", r"\[plain\]"),
        ] {
            assert_eq!(super::unquoted(focus), unquoted, "{focus}");
        }
    }
}
