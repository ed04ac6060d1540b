//! The command line: [`args`] says what each command accepts; this module only sends each
//! command to its body in [`crate::commands`].

use std::process::ExitCode;

pub mod args;

pub use args::Cli;
use args::{Command, KernelsAction, ToolsAction};

use crate::commands::{bench, doctor, kernels, lesson, matrix, new};

impl Cli {
    /// Runs the command; the exit code says whether everything passed.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Lesson(args) => lesson::run(args),
            Command::Lessons => lesson::list(),
            Command::New { number, name } => new::run(number, &name),
            Command::Kernels { action: None } => kernels::list(),
            Command::Kernels {
                action:
                    Some(KernelsAction::Build {
                        series,
                        flavour,
                        arch,
                        jobs,
                    }),
            } => kernels::build(&series, flavour, arch, jobs),
            Command::Kernels {
                action: Some(KernelsAction::Update { series, arch }),
            } => kernels::update(&series, arch),
            Command::Doctor => doctor::run(),
            Command::Tools {
                action: ToolsAction::Update { releases, arch },
            } => doctor::update(&releases, &arch),
            Command::Matrix(args) => matrix::run(args),
            Command::MergeReports {
                reports,
                report_dir,
                expect,
            } => matrix::merge(&reports, &report_dir, expect),
            Command::Bench {
                kernel,
                arch,
                runs,
                no_cold,
                accel,
                peers,
                rounds,
            } => {
                let code = bench::run(kernel.clone(), arch, runs, !no_cold, accel)?;
                if peers {
                    bench::peers(kernel, arch, rounds, accel)?;
                }
                Ok(code)
            }
        }
    }
}
