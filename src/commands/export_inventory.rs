//! `kubelab lab export-inventory`: the lab as an Ansible (or JSON) inventory.

use crate::inventory;

/// `kubelab lab export-inventory`: to stdout, or atomically to `--out`.
pub(super) fn run(
    loaded: &crate::lab::LoadedLab,
    args: &crate::cli::ExportInventoryArgs,
    printer: &crate::printer::Printer,
) -> crate::error::Result<()> {
    if let Some(out) = &args.out {
        let lab_file = crate::lab::owner::lab_file(loaded);
        let out_abs = std::path::absolute(out)?;
        if crate::lab::owner::same_lab_file(&loaded.dir, lab_file.as_deref(), Some(&out_abs)) {
            return Err(crate::error::Error::usage(
                format!(
                    "--out {} is the lab's own file: the inventory would replace the lab definition",
                    out.display()
                ),
                "write the inventory elsewhere, such as `--out inventory.ini`",
            ));
        }
    }
    let machines = crate::machines::of(&loaded.lab);
    let access = machines.access(loaded);
    let missing: Vec<&str> = access
        .iter()
        .filter(|(_, a)| a.key.as_ref().is_some_and(|k| !k.exists()))
        .map(|(n, _)| n.as_str())
        .collect();
    if let Some(note) = Some(&missing)
        .filter(|m| !m.is_empty())
        .and_then(|m| machines.missing_keys(m))
    {
        printer.warn(note);
    }
    let text = inventory::render(&loaded.lab, &loaded.topo, &access, args.format);
    match &args.out {
        None => printer.data(text.trim_end()),
        Some(path) => {
            crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)?;
            printer.info(format!(
                "wrote the inventory of {} nodes; try `ansible-inventory -i {} --graph`",
                loaded.topo.nodes.len(),
                path.display()
            ));
            printer.data(path.display().to_string());
        }
    }
    Ok(())
}
