use anyhow::Result;
use berth_cli::{Cli, CompletionArgs};
use clap::CommandFactory;

pub fn run(a: &CompletionArgs) -> Result<u8> {
    clap_complete::generate(
        a.shell,
        &mut Cli::command(),
        "berth",
        &mut std::io::stdout(),
    );
    Ok(0)
}
