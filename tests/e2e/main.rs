//! End-to-end tests: the real `berth` binary against real registries, real archives and real
//! peer tools (skopeo, podman, umoci, Slurm, Open MPI), each test with its own store, config
//! and registry.

mod common;
mod docker_diff;
mod dockerd;
mod exit_codes_docker_diff;

mod archive;
mod attach;
mod auth;
mod build;
mod build_add_url;
mod build_docker_diff;
mod build_flags;
mod build_mounts;
mod build_toolchain;
mod cdi;
mod cli;
mod cp;
mod cp_docker_diff;
mod exec;
mod hostile;
mod lifecycle_docker_diff;
mod mpi;
mod oci_runtime;
mod pull_config;
mod pull_push;
mod rootless;
mod rootless_owners;
mod rootless_userns;
mod run;
mod run_cpus;
mod run_flags;
mod run_layer;
mod run_limits;
mod run_logging;
mod run_more_flags;
mod run_namespaces;
mod run_options;
mod run_security;
mod run_signals;
mod run_volumes_from;
mod shared_store;
mod single_file;
mod slurm;
mod slurm_tasks;
mod spank;
mod spank_named;
mod umoci;
mod update;
