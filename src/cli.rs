//! Command-line definitions only; the work happens in `app`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::settings::ENV_LAB;

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

When the host has less RAM than the default lab needs, the worker's memory
(then the other roles', down to their minimums) is lowered, and a comment at
the top of the file says what was changed.")]
    Init(InitArgs),

    /// Plan, build and inspect the lab (`kubelab lab --help`)
    #[command(subcommand)]
    Lab(LabCommand),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
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
}
