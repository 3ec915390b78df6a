//! One file per verb; each stays short and leaves the work to the library crates.

mod archive;
mod completion;
mod df;
mod history;
mod images;
mod inspect;
mod login;
mod pull;
mod rmi;
mod version;

use anyhow::Result;
use berth_cli::{Cli, Command, ImageCommand, SystemCommand};

use crate::settings::Settings;

/// Runs the parsed command line; the result is the process exit status.
pub fn run(cli: Cli) -> Result<u8> {
    let Cli { global, command } = cli;
    match command {
        Command::Version(a) => return version::run(&a),
        Command::Completion(a) => return completion::run(&a),
        _ => {}
    }
    let s = Settings::resolve(&global)?;
    match command {
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => pull::run(&s, &a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => pull::push_run(&s, &a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::run(&s, &a),
        Command::Inspect(a) | Command::Image(ImageCommand::Inspect(a)) => inspect::run(&s, &a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => history::run(&s, &a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => rmi::tag(&s, &a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => rmi::rmi(&s, &a),
        Command::Image(ImageCommand::Prune(a)) => rmi::prune(&s, &a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => archive::save(&s, &a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => archive::load(&s, &a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => archive::import(&s, &a),
        Command::Login(a) => login::login(&s, &a),
        Command::Logout(a) => login::logout(&s, &a),
        Command::System(SystemCommand::Df(a)) => df::run(&s, &a),
        Command::Version(_) | Command::Completion(_) => unreachable!("handled above"),
    }
}
