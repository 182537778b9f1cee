//! `kubelab lab kubeconfig`: the admin kubeconfig's path, merged into the
//! user's kubeconfig on request.

use crate::error::Result;
use crate::kubeconfig::{merge, user_file, write_admin};
use crate::lab::LoadedLab;
use crate::printer::Printer;
use crate::settings::Settings;

/// `kubelab lab kubeconfig [--merge] [--use]`: prints the admin kubeconfig's
/// path on stdout; merges it into the user's kubeconfig on request.
pub(super) fn run(
    loaded: &LoadedLab,
    args: &crate::cli::KubeconfigArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<()> {
    let admin = write_admin(loaded, printer)?;
    if args.merge || args.use_it {
        let file = user_file(settings)?;
        // Two labs merging at once must not lose one's entries.
        let _host = settings.host_lock()?;
        let merged = merge(&file, &admin, &loaded.lab.name, args.use_it)?;
        let backup = merged
            .backup
            .map(|b| format!(" (the previous file is {})", b.display()))
            .unwrap_or_default();
        printer.info(format!(
            "merged cluster, user and context {} into {}{backup}",
            merged.context,
            merged.file.display(),
        ));
        printer.info(if args.use_it {
            format!("current context: {}", merged.context)
        } else {
            format!("use it: kubectl config use-context {}", merged.context)
        });
    }
    printer.data(admin.display().to_string());
    Ok(())
}
