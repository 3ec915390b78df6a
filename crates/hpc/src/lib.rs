//! Scheduler and hardware facts, as data.
//!
//! A container started inside a Slurm step has to behave like the bare process it replaces: it
//! keeps the CPUs the scheduler gave it, it sees no more of them than it may use, and an MPI rank
//! finds the variables its launcher left for it. This crate works those facts out. It never reads
//! a file, mounts anything or makes a system call: callers hand in what they read (the affinity
//! list, the text of `/proc/cpuinfo`, the environment) and get back a [`Contribution`], plain data
//! that `berth-oci` folds into the runtime spec and the runtime applies.
//!
//! Every value in a contribution is [`Sourced`]: it carries the name of the fact it came from
//! (`"--cpus 1.5"`, `"SLURM_PROCID in the caller's environment"`). When a container sees four
//! CPUs instead of eight, `berth run --debug` can say why, instead of leaving the user to guess
//! which of the affinity mask, `--cpuset-cpus` or `--cpus` won.
//!
//! Two rules shape the code:
//! - **Never widen what the scheduler gave.** The caller's current affinity is the ceiling.
//!   `--cpuset-cpus` may pick from it, `--cpus` may take fewer of it; asking for more is an
//!   error that names both lists, never a silent widening and never a silent clamp.
//! - **Limits are visible.** A narrowed container also gets a `/proc/cpuinfo` with only its
//!   processors, a matching `/sys/devices/system/cpu/online`, and `OMP_NUM_THREADS`, so that
//!   programs sizing their thread pools from any of those agree with the affinity mask.
//!
//! Devices follow the same shape: [`Registry`] turns the text of CDI spec files into the
//! [`DeviceEdits`] of the devices `--device vendor.com/class=name` asks for; [`parse_gpus`],
//! [`allocation`], [`select_gpus`] and [`nvidia_driver`] pick `--gpus` from the job's
//! allocation and describe the driver files the container needs.
//!
//! MPI too: [`host_mpi`] and [`check_abi`] decide what `--mpi=host` binds and whether the
//! image's MPI can take the host's in its place; [`launcher`] adds what a rank started by
//! `srun` or `mpirun` needs in any container.
//!
//! The lists of variables and prefixes this crate acts on are constants ([`SLURM_PREFIXES`],
//! [`SLURM_NAMES`]) so that what Berth passes through is written down in one place.
#![deny(missing_docs)]

mod cdi;
mod cpulist;
mod cpus;
mod gpus;
mod mpi;
mod slurm;

pub use cdi::{
    is_qualified_name, parse_qualified, spec_paths, DeviceEdits, DeviceError, DeviceMount,
    DeviceNode, Hook, Registry, SpecText, CDI_SPEC_DIRS,
};
pub use gpus::{
    allocation, devices_list_gpus, devices_list_path, driver_libraries, gpu_env, nvidia_driver,
    parse_gpus, select_gpus, Allocation, DriverFacts, GpuRequest, NVIDIA_BINARIES,
    NVIDIA_CONTROL_NODES, NVIDIA_GPU_KIND, NVIDIA_LIBRARIES,
};

pub use mpi::{
    check_abi, classify, host_libmpi, host_mpi, image_mpi, is_libmpi_soname, job_key, launcher,
    ldconfig_entries, parse_elf, prepend_library_path, ElfDynamic, HostFiles, HostMpi, MpiError,
    MpiFlavour, MpiLibrary, HOST_MPI_DIR, IMAGE_LIB_DIRS, IMAGE_PROVIDED, NO_SINGLE_COPY,
};

pub use cpulist::{format_cpu_list, parse_cpu_list};
pub use cpus::{cpu_visibility, narrows_nothing, CPUINFO_PATH, CPU_ONLINE_PATH};
pub use slurm::{slurm, SLURM_NAMES, SLURM_PREFIXES};

/// A value together with the fact it was derived from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sourced<T> {
    /// The value itself.
    pub value: T,
    /// Where it came from, in words a user recognises: a flag (`"--cpus 1.5"`), a variable
    /// (`"SLURM_CPUS_PER_TASK"`) or a kernel file (`"Cpus_allowed_list in /proc/self/status"`).
    pub source: String,
}

impl<T> Sourced<T> {
    /// Pairs `value` with the `source` it came from.
    pub fn new(value: T, source: impl Into<String>) -> Sourced<T> {
        Sourced {
            value,
            source: source.into(),
        }
    }
}

/// A file the runtime places (bind-mounts) into the container, with generated contents.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneratedFile {
    /// Absolute path inside the container, e.g. `/proc/cpuinfo`.
    pub container_path: String,
    /// The whole contents of the file.
    pub contents: String,
}

/// What one integration adds to a container: data only, applied by `berth-oci` and the runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Contribution {
    /// Variables to set in the container, `(name, value)`. They fill gaps: a variable the user
    /// or the image already set wins over a contribution.
    pub env: Vec<Sourced<(String, String)>>,
    /// Files to place into the container.
    pub files: Vec<Sourced<GeneratedFile>>,
    /// Bind mounts to add, `(host path, container path, read-only)`.
    pub mounts: Vec<Sourced<(String, String, bool)>>,
    /// CPU affinity to apply to the container's first process, when it should change.
    pub cpus: Option<Sourced<Vec<usize>>>,
    /// Things the user should hear about, one line each.
    pub warnings: Vec<String>,
}

impl Contribution {
    /// Appends everything from `other`. A CPU set in `other` replaces this one's, since the
    /// later contribution is the more specific (for example `--cpus` after a Slurm cpuset).
    pub fn extend(&mut self, other: Contribution) {
        self.env.extend(other.env);
        self.files.extend(other.files);
        self.mounts.extend(other.mounts);
        if other.cpus.is_some() {
            self.cpus = other.cpus;
        }
        self.warnings.extend(other.warnings);
    }

    /// The variables as plain pairs, in order, the shape `berth-oci` takes them in.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env.iter().map(|e| e.value.clone()).collect()
    }
}

/// Why a fact could not be worked out. Each message names the input at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HpcError {
    /// A CPU list (`0-3,8`) could not be read.
    #[error("invalid cpu list {input:?}: {reason}")]
    InvalidCpuList {
        /// The list as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--cpuset-cpus` names CPUs the caller may not use.
    #[error("--cpuset-cpus {cpuset} is outside the cpus this process may use ({allowed})")]
    CpusetOutsideAllowed {
        /// `--cpuset-cpus` as given.
        cpuset: String,
        /// The caller's affinity, formatted as a CPU list.
        allowed: String,
    },
    /// `--cpus` is zero, negative or not a number.
    #[error("invalid --cpus {0}: must be a number greater than 0")]
    InvalidCpus(f64),
    /// `--cpus` asks for more CPUs than are available.
    #[error("--cpus {requested} is more than the {count} cpus available ({available})")]
    TooManyCpus {
        /// `--cpus` as given.
        requested: f64,
        /// How many CPUs may be used.
        count: usize,
        /// Those CPUs, formatted as a CPU list.
        available: String,
    },
    /// The caller's affinity list was empty, so there is nothing to narrow.
    #[error("the caller's cpu affinity is empty")]
    NoAllowedCpus,
}
