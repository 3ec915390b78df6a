//! End-to-end tests: the real `berth` binary against real registries, real archives and real
//! peer tools (skopeo, podman, umoci), each test with its own store, config and registry.

mod common;
mod docker_diff;

mod archive;
mod auth;
mod build;
mod cli;
mod exec;
mod hostile;
mod pull_push;
mod rootless;
mod run;
mod run_flags;
mod run_options;
mod slurm;
mod umoci;
