//! Shell completion scripts and man pages, generated from the clap
//! definitions in `cli`, so they always match `--help`.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Result;
use crate::printer::Printer;

/// Writes the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kubelab", &mut out);
    write_stdout(&out)
}

/// Prints kubelab.1 on stdout, or with `out` writes it and one page per
/// (sub)command into that directory.
pub fn man(out: Option<&Path>, printer: &Printer) -> Result<()> {
    let cmd = Cli::command();
    let Some(dir) = out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        return write_stdout(&page);
    };
    fs_err::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd, dir).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("writing man pages into {}: {e}", dir.display()),
        )
    })?;
    let mut pages: Vec<String> = fs_err::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kubelab") && n.ends_with(".1"))
        .collect();
    pages.sort();
    printer.info(format!(
        "wrote {} man pages into {} (`man kubelab` finds them when the directory is on MANPATH, as ~/.local/share/man is)",
        pages.len(),
        dir.display()
    ));
    for page in pages {
        printer.data(dir.join(page).display().to_string());
    }
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        // `kubelab man | head` closing the pipe early is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
