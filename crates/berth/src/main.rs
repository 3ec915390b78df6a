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

use berth_cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let debug = cli.global.debug;
    match commands::run(cli) {
        Ok(code) => {
            dispatch::start::end_by_signal_if_due();
            ExitCode::from(code)
        }
        Err(err) => {
            printer::error(&err, debug);
            ExitCode::from(dispatch::start::exit_code_of(&err) as u8)
        }
    }
}
