//! kubelab: a highly-available Kubernetes lab on one workstation.

mod app;
mod artifacts;
mod cli;
mod completions;
mod config;
mod dns_client;
mod doctor;
mod error;
mod fsutil;
mod host;
mod hosts_file;
mod inventory;
mod kubeconfig;
mod machines;
mod pki;
mod platform;
mod printer;
mod provision;
mod registry;
mod render;
mod settings;
mod state;
mod timings;
mod tools;
mod topology;
mod verify;
mod yaml_edit;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let settings = settings::Settings::from_env();
    let printer = printer::Printer::new(cli.quiet, settings.no_color);
    let code = match app::run(cli, &settings, &printer) {
        Ok(code) => code,
        Err(err) => {
            printer.error(&err);
            err.exit_code()
        }
    };
    std::process::exit(code);
}
