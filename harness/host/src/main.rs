use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bpflab::cli::Cli::parse();
    if let Err(e) = bpflab::interrupt::install() {
        eprintln!("bpflab: warning: Ctrl-C will not clean up: {e:#}");
    }
    match cli.run() {
        Ok(code) => code,
        Err(e) if e.is::<bpflab::interrupt::Interrupted>() => {
            eprintln!("bpflab: {e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("{} {e:#}", console::style("error:").red().bold());
            if let Some(hint) = bpflab::ui::hint(&e) {
                eprintln!("{} {hint}", console::style("hint:").yellow().bold());
            }
            ExitCode::FAILURE
        }
    }
}
