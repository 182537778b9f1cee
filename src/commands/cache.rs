//! `kubelab cache clean`: removes every lab's downloads.

use crate::error::Result;
use crate::printer::Printer;
use crate::settings::Settings;

pub(super) fn cache_clean(settings: &Settings, printer: &Printer) -> Result<()> {
    let dir = &settings.cache_dir;
    if !dir.exists() {
        printer.info(format!("{} is empty already", dir.display()));
        return Ok(());
    }
    fs_err::remove_dir_all(dir)?;
    printer.info(format!(
        "removed {} (every lab's downloads; they are fetched again when needed)",
        dir.display()
    ));
    Ok(())
}
