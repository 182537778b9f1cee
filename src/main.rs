//! kubelab: a highly-available Kubernetes lab on one workstation.

mod artifacts;
mod cli;
mod commands;
mod completions;
mod config;
mod doctor;
mod error;
mod fsutil;
mod host;
mod hosts_file;
mod inventory;
mod kubeconfig;
mod lab;
mod machines;
mod named;
mod pki;
mod platform;
mod printer;
mod provision;
mod registry;
mod releases;
mod render;
mod settings;
mod state;
mod timings;
mod tools;
mod topology;
mod verify;
mod yaml_edit;

use clap::Parser;

/// What a user of vagrant, kind or minikube likely meant by a command
/// kubelab does not have (clap's own guess can be a destructive one).
fn subcommand_hint(args: &[String]) -> Option<String> {
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--lab" {
            it.next();
        } else if !a.starts_with('-') {
            words.push(a.as_str());
        }
    }
    const LAB: &[&str] = &[
        "up",
        "destroy",
        "status",
        "plan",
        "halt",
        "ssh",
        "verify",
        "scale",
        "reset",
        "render",
        "certs",
        "kubeconfig",
        "snapshot",
        "timings",
    ];
    match words.as_slice() {
        [word, ..] if LAB.contains(word) => Some(format!("did you mean `kubelab lab {word}`?")),
        ["lab", "delete" | "remove" | "rm", ..] => {
            Some("`kubelab lab destroy` removes a lab".into())
        }
        ["lab", "start" | "create" | "run", ..] => {
            Some("`kubelab lab up` creates and starts a lab".into())
        }
        ["lab", "stop", ..] => Some("`kubelab lab halt` stops a lab's VMs".into()),
        ["lab", "list" | "ls", ..] | ["list" | "ls", ..] => {
            Some("`kubelab labs` lists this host's labs".into())
        }
        ["lab", "logs", ..] => {
            Some("each step's log is .kubelab/logs/<node>/<phase>.log beside lab.yaml".into())
        }
        ["version", ..] => Some("`kubelab --version`".into()),
        _ => None,
    }
}

fn main() {
    let cli = cli::Cli::try_parse().unwrap_or_else(|err| {
        let hint = (err.kind() == clap::error::ErrorKind::InvalidSubcommand)
            .then(|| subcommand_hint(&std::env::args().skip(1).collect::<Vec<_>>()))
            .flatten();
        let _ = err.print();
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
        std::process::exit(err.exit_code());
    });
    let settings = settings::Settings::from_env();
    let printer = printer::Printer::new(cli.quiet, settings.no_color).verbose(cli.verbose > 0);
    let code = match commands::run(cli, &settings, &printer) {
        Ok(code) => code,
        Err(err) => {
            printer.error(&err);
            err.exit_code()
        }
    };
    std::process::exit(code);
}
