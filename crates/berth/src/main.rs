//! `berth`: daemonless, rootless containers for HPC clusters, with Docker's command line.
//!
//! This binary stays thin: `settings` resolves flags, config files and environment once;
//! `commands/<verb>.rs` call the library crates; `dispatch` wires store and registry together
//! for work that needs both; `printer` owns every byte written to the terminal.

mod commands;
mod dispatch;
mod gotmpl;
mod humanize;
mod oci_runtime;
mod printer;
mod settings;
mod template;

use std::process::ExitCode;

use berth_cli::{Cli, Command, ContainerCommand};

fn main() -> ExitCode {
    berth_runtime::keep_allocator_usable_after_fork();
    let cli = Cli::parse_args();
    let debug = cli.global.debug;
    let failure = FailureCode::of(&cli.command);
    match commands::run(cli) {
        Ok(code) => {
            dispatch::start::end_by_signal_if_due();
            ExitCode::from(code)
        }
        Err(err) => {
            printer::error(&err, debug);
            let code = match failure {
                FailureCode::Run => dispatch::start::exit_code_of(&err, 125),
                FailureCode::Exec => dispatch::start::exit_code_of(&err, 1),
                FailureCode::Other => 1,
            };
            ExitCode::from(code as u8)
        }
    }
}

/// Docker's exit status for a failed command: `run` gives 125 when the engine fails and 126 or
/// 127 when the program cannot be started; `exec` 1, or 126/127 for the program; every other
/// command 1.
enum FailureCode {
    Run,
    Exec,
    Other,
}

impl FailureCode {
    fn of(c: &Command) -> FailureCode {
        match c {
            Command::Run(_) | Command::Container(ContainerCommand::Run(_)) => FailureCode::Run,
            Command::Exec(_) | Command::Container(ContainerCommand::Exec(_)) => FailureCode::Exec,
            _ => FailureCode::Other,
        }
    }
}
