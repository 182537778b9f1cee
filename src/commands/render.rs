//! `kubelab lab render`: every generated file, written to a folder to read.

use crate::cli::RenderArgs;
use crate::error::Result;
use crate::lab::{LoadedLab, load_pki, pki_lock};
use crate::printer::Printer;
use crate::render;

pub(super) fn render_cmd(loaded: &LoadedLab, args: &RenderArgs, printer: &Printer) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| loaded.state_dir().join("rendered"));
    let _lock = pki_lock(loaded, "kubelab lab render")?;
    let pki = load_pki(loaded, printer)?;
    let files = render::all(&loaded.lab, &loaded.topo, &pki);
    render::write(&out, &files)?;
    printer.info(format!("wrote {} files and MANIFEST", files.len()));
    printer.data(out.display().to_string());
    Ok(())
}
