//! One file per verb; each stays short and leaves the work to the library crates.

mod archive;
mod build;
mod commit;
mod completion;
mod container;
mod convert;
mod cp;
mod df;
mod exec;
mod history;
mod images;
mod info;
mod inspect;
mod login;
mod oci;
mod prune;
mod ps_filter;
mod pull;
mod rmi;
mod run;
mod stats;
mod update;
mod version;
mod volume;

use anyhow::Result;
use berth_cli::{BuilderCommand, Cli, Command, ContainerCommand, ImageCommand, SystemCommand};

use crate::settings::Settings;

/// Runs the parsed command line; the result is the process exit status.
pub fn run(cli: Cli) -> Result<u8> {
    let Cli { global, command } = cli;
    match command {
        Command::Version(a) => return version::run(&a),
        Command::Completion(a) => return completion::run(&a),
        Command::Oci(a) => return oci::run(&global, &a),
        _ => {}
    }
    let s = Settings::resolve(&global)?;
    match command {
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => pull::run(&s, &a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => pull::push_run(&s, &a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::run(&s, &a),
        Command::Inspect(a) => inspect::run(&s, &a, true),
        Command::Image(ImageCommand::Inspect(a)) => inspect::run(&s, &a, false),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => history::run(&s, &a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => rmi::tag(&s, &a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => rmi::rmi(&s, &a),
        Command::Image(ImageCommand::Prune(a)) => rmi::prune(&s, &a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => archive::save(&s, &a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => archive::load(&s, &a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => archive::import(&s, &a),
        Command::Convert(a) => convert::run(&s, &a),
        Command::Build(a) => build::run(&s, &a),
        Command::Builder(BuilderCommand::Prune(a)) => build::prune(&s, &a),
        Command::Login(a) => login::login(&s, &a),
        Command::Logout(a) => login::logout(&s, &a),
        Command::System(SystemCommand::Df(a)) => df::run(&s, &a),
        Command::Info(a) | Command::System(SystemCommand::Info(a)) => info::run(&s, &a),
        Command::System(SystemCommand::Prune(a)) => df::prune(&s, &a),
        Command::Run(a) | Command::Container(ContainerCommand::Run(a)) => run::run(&s, &a),
        Command::Create(a) | Command::Container(ContainerCommand::Create(a)) => {
            run::create_only(&s, &a)
        }
        Command::Start(a) | Command::Container(ContainerCommand::Start(a)) => run::start(&s, &a),
        Command::Commit(a) | Command::Container(ContainerCommand::Commit(a)) => commit::run(&s, &a),
        Command::Export(a) | Command::Container(ContainerCommand::Export(a)) => {
            commit::export(&s, &a)
        }
        Command::Diff(a) | Command::Container(ContainerCommand::Diff(a)) => commit::diff(&s, &a),
        Command::Rename(a) | Command::Container(ContainerCommand::Rename(a)) => {
            container::rename(&s, &a)
        }
        Command::Update(a) | Command::Container(ContainerCommand::Update(a)) => {
            update::update(&s, &a)
        }
        Command::Restart(a) | Command::Container(ContainerCommand::Restart(a)) => {
            container::restart(&s, &a)
        }
        Command::Monitor(a) => run::monitor(&s, &a),
        Command::Unpack(a) => {
            let store = s.open_store()?;
            crate::dispatch::delegate::serve_unpack(&store, &a.blob.parse()?, &a.diff_id.parse()?)?;
            Ok(0)
        }
        Command::RmTree(a) => {
            crate::dispatch::delegate::serve_rmtree(&a.path)?;
            Ok(0)
        }
        Command::Userns(a) => {
            let linger = std::time::Duration::from_secs(a.linger);
            crate::dispatch::shared_userns::serve(&a.lock, a.join.as_deref(), linger)?;
            Ok(0)
        }
        Command::Linger(a) => {
            // Standard input holds the file system (or, for FUSE, a lock on its mount); it
            // goes when this process does.
            std::thread::sleep(std::time::Duration::from_millis(a.millis));
            if let Some(dir) = &a.unmount {
                use std::os::fd::AsFd;
                let lock = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
                crate::dispatch::shared_fuse::unmount_if_unused(&lock, dir);
            }
            Ok(0)
        }
        Command::Exec(a) | Command::Container(ContainerCommand::Exec(a)) => exec::exec(&s, &a),
        Command::Logs(a) | Command::Container(ContainerCommand::Logs(a)) => exec::logs(&s, &a),
        Command::Attach(a) | Command::Container(ContainerCommand::Attach(a)) => {
            exec::attach(&s, &a)
        }
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => container::ps(&s, &a),
        Command::Stop(a) | Command::Container(ContainerCommand::Stop(a)) => container::stop(&s, &a),
        Command::Kill(a) | Command::Container(ContainerCommand::Kill(a)) => container::kill(&s, &a),
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => container::rm(&s, &a),
        Command::Wait(a) | Command::Container(ContainerCommand::Wait(a)) => container::wait(&s, &a),
        Command::Pause(a) | Command::Container(ContainerCommand::Pause(a)) => {
            container::pause(&s, &a, true)
        }
        Command::Unpause(a) | Command::Container(ContainerCommand::Unpause(a)) => {
            container::pause(&s, &a, false)
        }
        Command::Container(ContainerCommand::Inspect(a)) => container::inspect(&s, &a),
        Command::Container(ContainerCommand::Prune(a)) => prune::containers(&s, &a),
        Command::Top(a) => container::top(&s, &a),
        Command::Port(a) => container::port(&s, &a),
        Command::Stats(a) => stats::stats(&s, &a),
        Command::Cp(a) => cp::cp(&s, &a),
        Command::Volume(c) => volume::run(&s, &c),
        Command::Version(_) | Command::Completion(_) | Command::Oci(_) => {
            unreachable!("handled above")
        }
    }
}
