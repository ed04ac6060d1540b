use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bpflab::cli::Cli::parse();
    if let Err(e) = bpflab::interrupt::install() {
        eprintln!("bpflab: warning: Ctrl-C will not clean up: {e:#}");
    }
    match cli.run() {
        Ok(code) => code,
        // Whatever broke once Ctrl-C arrived (a child that the same Ctrl-C stopped, a read
        // it cut short) broke because of it.
        Err(e) if e.is::<bpflab::interrupt::Interrupted>() || bpflab::interrupt::interrupted() => {
            eprintln!("bpflab: {}", bpflab::interrupt::Interrupted);
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("{} {e:#}", console::style("error:").red().bold());
            if let Some(hint) = bpflab::term::hint(&e) {
                eprintln!("{} {hint}", console::style("hint:").yellow().bold());
            }
            ExitCode::FAILURE
        }
    }
}
