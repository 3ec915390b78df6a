//! MPI: `--mpi=host` and what a rank's container needs from its launcher.
//!
//! An MPI program built inside an image carries the image's MPI library, which knows nothing of
//! the site's network fabric or its launcher's quirks. `--mpi=host` swaps in the host's library
//! instead: [`host_mpi`] follows the host's `libmpi.so.N` through its `DT_NEEDED` closure and the
//! plug-in directories of the MPI stack (Open MPI's and PMIx's `mca_*.so`), and returns binds that
//! put each library under [`HOST_MPI_DIR`] (named by its soname, so the image's loader finds it
//! there through `LD_LIBRARY_PATH`) and each plug-in or data directory at its host path, where the
//! host library looks for it. The C library and its companions are left out: they must be the
//! image's, since everything else in the image was linked against them.
//!
//! The swap only works when both libraries have the same ABI, so [`check_abi`] compares the
//! image's `libmpi.so.N` with the host's by soname and flavour (Open MPI or the MPICH ABI shared
//! by MPICH, Intel MPI, MVAPICH and Cray MPICH) before anything starts.
//!
//! [`launcher`] covers both ways of running ranks, with or without `--mpi=host`: the launcher's
//! PMIx directory is bound where the rank expects it, and Open MPI's single-copy transport (CMA)
//! is turned off when each rank has a container of its own, because the kernel refuses
//! `process_vm_readv` between processes of different user namespaces.
//!
//! Like the rest of this crate, nothing here reads a file: the caller answers through
//! [`HostFiles`].

use std::collections::BTreeSet;
use std::fmt;

use crate::{Contribution, Sourced};

/// Container directory that holds the host's MPI libraries, each bound under its soname.
pub const HOST_MPI_DIR: &str = "/usr/lib/berth/host-mpi";

/// Image directories searched for `libmpi.so.N`, relative to the root, in the loader's order.
pub const IMAGE_LIB_DIRS: &[&str] = &[
    "usr/local/lib",
    "usr/local/lib64",
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib64",
    "usr/lib64",
    "lib",
    "usr/lib",
    "usr/lib64/openmpi/lib",
    "usr/lib64/mpich/lib",
];

/// Sonames that belong to the C library: always the image's own, never bound from the host.
pub const IMAGE_PROVIDED: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libmvec.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libanl.so.1",
    "libnsl.so.1",
    "libBrokenLocale.so.1",
    "libthread_db.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "ld-linux.so.2",
];

/// Subdirectories of a library directory where MPI stacks keep their plug-ins: Open MPI's
/// `pkglibdir` (`openmpi`, Debian's `openmpi/lib/openmpi3`), PMIx's and PRRTE's.
const PLUGIN_SUBDIRS: &[&str] = &[
    "openmpi",
    "openmpi3",
    "openmpi/lib/openmpi",
    "openmpi/lib/openmpi3",
    "pmix",
    "prte",
];

/// Data and configuration directories below an installation prefix: help texts the library
/// prints its errors from, and the site's MCA parameters.
const DATA_SUBDIRS: &[&str] = &["share/openmpi", "share/pmix", "etc/openmpi", "etc/pmix"];

/// Configuration files directly in a prefix's `etc`.
const CONFIG_FILES: &[&str] = &["etc/openmpi-mca-params.conf", "etc/pmix-mca-params.conf"];

/// Library name prefixes of the MPI stack itself, whose directories hold plug-ins.
const STACK_PREFIXES: &[&str] = &[
    "libmpi.",
    "libopen-pal.",
    "libopen-rte.",
    "libpmix.",
    "libprrte.",
];

/// Which MPI ABI a `libmpi` implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MpiFlavour {
    /// Open MPI (its `libmpi` needs `libopen-pal`).
    OpenMpi,
    /// The MPICH ABI (`libmpi.so.12`): MPICH, Intel MPI, MVAPICH, Cray MPICH.
    MpichAbi,
    /// Neither could be told.
    Unknown,
}

impl fmt::Display for MpiFlavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MpiFlavour::OpenMpi => "Open MPI",
            MpiFlavour::MpichAbi => "MPICH ABI",
            MpiFlavour::Unknown => "unknown ABI",
        })
    }
}

/// One MPI library: its soname, its flavour and where it was found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MpiLibrary {
    /// `libmpi.so.40`.
    pub soname: String,
    /// What kind of MPI it is.
    pub flavour: MpiFlavour,
    /// Where it was found (a host path, or a path inside the image).
    pub path: String,
}

impl fmt::Display for MpiLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}", self.soname, self.flavour)
    }
}

/// The dynamic section of an ELF object, as far as loading it goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfDynamic {
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` and `DT_RPATH` entries, `$ORIGIN` not yet expanded.
    pub search: Vec<String>,
}

/// Why `--mpi=host` cannot be done. Each message is one line naming both sides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpiError {
    /// No `libmpi.so.N` on the host.
    #[error("--mpi=host: no MPI library on this host ({0})")]
    NoHostMpi(String),
    /// The image has no MPI library to replace.
    #[error("--mpi=host: the image has no MPI library (no libmpi.so.N in its library directories) to replace with the host's ({host})")]
    NoImageMpi {
        /// The host's library.
        host: MpiLibrary,
    },
    /// The image's library has another ABI than the host's.
    #[error("--mpi=host: the image's MPI ({image}) does not match the host's ({host})")]
    Mismatch {
        /// The image's library.
        image: MpiLibrary,
        /// The host's library.
        host: MpiLibrary,
    },
    /// A file is not an ELF shared object.
    #[error("{path}: not an ELF shared object: {reason}")]
    NotElf {
        /// The file.
        path: String,
        /// What the parser said.
        reason: String,
    },
}

/// What [`host_mpi`] needs to know about the host's files.
pub trait HostFiles {
    /// The dynamic section of the ELF file at `path`, `None` when it is missing or not ELF.
    fn elf(&mut self, path: &str) -> Option<ElfDynamic>;
    /// `path` with every symbolic link resolved, `None` when it does not exist.
    fn canonical(&mut self, path: &str) -> Option<String>;
    /// The names in directory `dir`, `None` when it is not a readable directory.
    fn list(&mut self, dir: &str) -> Option<Vec<String>>;
    /// Whether `path` is a regular file (after links).
    fn is_file(&mut self, path: &str) -> bool;
}

/// The dynamic section of the ELF bytes of `path`.
pub fn parse_elf(path: &str, bytes: &[u8]) -> Result<ElfDynamic, MpiError> {
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| MpiError::NotElf {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    let mut search: Vec<String> = Vec::new();
    for p in elf.runpaths.iter().chain(elf.rpaths.iter()) {
        search.extend(p.split(':').filter(|s| !s.is_empty()).map(String::from));
    }
    Ok(ElfDynamic {
        soname: elf.soname.map(String::from),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        search,
    })
}

/// Whether `name` is an MPI library's soname, `libmpi.so.N`.
pub fn is_libmpi_soname(name: &str) -> bool {
    name.strip_prefix("libmpi.so.")
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
}

/// The flavour of a `libmpi` from its soname and what it needs: Open MPI's needs its portability
/// layer `libopen-pal`; otherwise soname 12 is the MPICH ABI.
pub fn classify(soname: &str, needed: &[String]) -> MpiFlavour {
    if needed.iter().any(|n| n.starts_with("libopen-pal.so")) {
        MpiFlavour::OpenMpi
    } else if soname == "libmpi.so.12" {
        MpiFlavour::MpichAbi
    } else if soname == "libmpi.so.40" || soname == "libmpi.so.20" {
        MpiFlavour::OpenMpi
    } else {
        MpiFlavour::Unknown
    }
}

/// The 64-bit entries of `ldconfig -p` output, `(soname, path)`, in the cache's order.
pub fn ldconfig_entries(ldconfig: &str) -> Vec<(String, String)> {
    ldconfig
        .lines()
        .filter_map(|line| {
            let (left, path) = line.split_once("=>")?;
            let (soname, arch) = left.trim().split_once(' ').unwrap_or((left.trim(), ""));
            // `(libc6,x86-64)`, `(libc6,AArch64)`: 32-bit entries say only `libc6`.
            let path = path.trim();
            (arch.contains("64") && path.starts_with('/'))
                .then(|| (soname.trim().to_string(), path.to_string()))
        })
        .collect()
}

/// The host's `libmpi.so.N` among ldconfig entries: the highest N, since a host with several
/// usually lists a compatibility library beside its main one.
pub fn host_libmpi(entries: &[(String, String)]) -> Option<(String, String)> {
    entries
        .iter()
        .filter(|(n, _)| is_libmpi_soname(n))
        .max_by_key(|(n, _)| n["libmpi.so.".len()..].parse::<u32>().unwrap_or(0))
        .cloned()
}

/// The image's MPI library among `found`: `(soname, path in the image, its dynamic section if
/// it could be read)`, in search order; the first wins, as it would for the loader.
pub fn image_mpi(found: &[(String, String, Option<ElfDynamic>)]) -> Option<MpiLibrary> {
    let (soname, path, elf) = found.iter().find(|(n, _, _)| is_libmpi_soname(n))?;
    let needed = elf.as_ref().map(|e| e.needed.clone()).unwrap_or_default();
    Some(MpiLibrary {
        soname: soname.clone(),
        flavour: classify(soname, &needed),
        path: path.clone(),
    })
}

/// Refuses a host library the image's programs were not built for.
pub fn check_abi(host: &MpiLibrary, image: Option<&MpiLibrary>) -> Result<(), MpiError> {
    let Some(image) = image else {
        return Err(MpiError::NoImageMpi { host: host.clone() });
    };
    let known = |f: MpiFlavour| f != MpiFlavour::Unknown;
    if image.soname != host.soname
        || (known(image.flavour) && known(host.flavour) && image.flavour != host.flavour)
    {
        return Err(MpiError::Mismatch {
            image: image.clone(),
            host: host.clone(),
        });
    }
    Ok(())
}

/// The host's MPI, ready to bind.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostMpi {
    /// The host's `libmpi`.
    pub library: MpiLibrary,
    /// Binds (read-only) and the `LD_LIBRARY_PATH` entry to prepend, [`HOST_MPI_DIR`].
    pub contribution: Contribution,
}

/// Works out the host MPI around `libmpi` (a host path, such as ldconfig lists), with `cache`
/// the ldconfig entries used to resolve what it needs.
pub fn host_mpi(
    libmpi: &str,
    cache: &[(String, String)],
    fs: &mut impl HostFiles,
) -> Result<HostMpi, MpiError> {
    let source = format!("--mpi=host: the host's {libmpi}");
    let elf = fs
        .elf(libmpi)
        .ok_or_else(|| MpiError::NoHostMpi(format!("{libmpi} is not a readable ELF library")))?;
    let soname = elf
        .soname
        .clone()
        .unwrap_or_else(|| basename(libmpi).to_string());
    let library = MpiLibrary {
        flavour: classify(&soname, &elf.needed),
        soname,
        path: libmpi.to_string(),
    };

    // Libraries by soname, plug-in directories and the objects still to follow.
    let mut libs: Vec<(String, String)> = Vec::new();
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    let mut scanned: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<(String, ElfDynamic)> = vec![(libmpi.to_string(), elf)];
    let mut unresolved: Vec<String> = Vec::new();
    libs.push((library.soname.clone(), libmpi.to_string()));
    while let Some((path, elf)) = queue.pop() {
        let origin = parent(&fs.canonical(&path).unwrap_or_else(|| path.clone())).to_string();
        if STACK_PREFIXES
            .iter()
            .any(|p| basename(&path).starts_with(p))
        {
            for dir in [parent(&path).to_string(), origin.clone()] {
                if !scanned.insert(dir.clone()) {
                    continue;
                }
                for plugins in stack_dirs(&dir, fs) {
                    if dirs.insert(plugins.clone()) {
                        for name in fs.list(&plugins).unwrap_or_default() {
                            let p = format!("{plugins}/{name}");
                            if name.ends_with(".so") {
                                if let Some(e) = fs.elf(&p) {
                                    queue.push((p, e));
                                }
                            }
                        }
                    }
                }
            }
        }
        for need in &elf.needed {
            if IMAGE_PROVIDED.contains(&need.as_str()) || libs.iter().any(|(n, _)| n == need) {
                continue;
            }
            match resolve(need, &elf.search, &origin, cache, fs) {
                Some((found, dep)) => {
                    libs.push((need.clone(), found.clone()));
                    queue.push((found, dep));
                }
                None => unresolved.push(format!("{need} (needed by {path})")),
            }
        }
    }

    let mut contribution = Contribution::default();
    for (name, path) in &libs {
        let real = fs.canonical(path).unwrap_or_else(|| path.clone());
        contribution.mounts.push(Sourced::new(
            (real, format!("{HOST_MPI_DIR}/{name}"), true),
            &source,
        ));
    }
    for d in &dirs {
        contribution
            .mounts
            .push(Sourced::new((d.clone(), d.clone(), true), &source));
    }
    contribution.env.push(Sourced::new(
        ("LD_LIBRARY_PATH".to_string(), HOST_MPI_DIR.to_string()),
        &source,
    ));
    contribution.warnings.extend(
        unresolved
            .into_iter()
            .map(|u| format!("--mpi=host: {u} was not found on this host; not bound")),
    );
    Ok(HostMpi {
        library,
        contribution,
    })
}

/// `LD_LIBRARY_PATH` with `dir` in front of what it was.
pub fn prepend_library_path(dir: &str, existing: Option<&str>) -> String {
    match existing.filter(|e| !e.is_empty()) {
        Some(e) => format!("{dir}:{e}"),
        None => dir.to_string(),
    }
}

/// The plug-in and data directories (and configuration files) of an MPI stack whose libraries
/// live in `libdir`.
fn stack_dirs(libdir: &str, fs: &mut impl HostFiles) -> Vec<String> {
    let mut out = Vec::new();
    for sub in PLUGIN_SUBDIRS {
        let d = format!("{libdir}/{sub}");
        let has_plugins = fs
            .list(&d)
            .is_some_and(|n| n.iter().any(|f| f.contains("mca_") && f.ends_with(".so")));
        if has_plugins {
            out.push(d);
        }
    }
    // The installation prefix is an ancestor of the library directory: `/opt/ompi` for
    // `/opt/ompi/lib`, `/usr` (and `/` for `/etc`) for `/usr/lib/x86_64-linux-gnu`.
    let mut prefix = libdir.to_string();
    for _ in 0..3 {
        prefix = parent(&prefix).to_string();
        let base = prefix.trim_end_matches('/');
        for sub in DATA_SUBDIRS {
            let d = format!("{base}/{sub}");
            if fs.list(&d).is_some() {
                out.push(d);
            }
        }
        for f in CONFIG_FILES {
            let p = format!("{base}/{f}");
            if fs.is_file(&p) {
                out.push(p);
            }
        }
        if base.is_empty() {
            break;
        }
    }
    out
}

/// Finds `need` as the loader would: the object's run paths, then the ldconfig cache.
fn resolve(
    need: &str,
    search: &[String],
    origin: &str,
    cache: &[(String, String)],
    fs: &mut impl HostFiles,
) -> Option<(String, ElfDynamic)> {
    if need.contains('/') {
        return fs.elf(need).map(|e| (need.to_string(), e));
    }
    let from_search = search
        .iter()
        .map(|d| d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin))
        .map(|d| format!("{}/{need}", d.trim_end_matches('/')));
    let from_cache = cache
        .iter()
        .filter(|(n, _)| n == need)
        .map(|(_, p)| p.clone());
    for candidate in from_search.chain(from_cache) {
        if let Some(e) = fs.elf(&candidate) {
            return Some((candidate, e));
        }
    }
    None
}

/// What a rank's container needs from its launcher, seen in the caller's `env`: the PMIx
/// server's directory (Slurm's `mpi/pmix` keeps it in its spool directory, which containers
/// do not otherwise see), and CMA turned off when this container holds one rank of several.
pub fn launcher(env: &[(String, String)]) -> Contribution {
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut c = Contribution::default();
    if let Some(dir) = var("PMIX_SERVER_TMPDIR").filter(|d| d.starts_with('/')) {
        let dir = dir.trim_end_matches('/').to_string();
        if !dir.is_empty() {
            c.mounts.push(Sourced::new(
                (dir.clone(), dir, false),
                "PMIX_SERVER_TMPDIR in the caller's environment",
            ));
        }
    }
    let rank = ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
        .into_iter()
        .find(|k| var(k).is_some());
    if let Some(rank) = rank {
        c.env.push(Sourced::new(
            (NO_SINGLE_COPY.0.to_string(), NO_SINGLE_COPY.1.to_string()),
            format!(
                "{rank} in the caller's environment: one rank per container, and the kernel \
                 refuses single-copy (CMA) between user namespaces"
            ),
        ));
    }
    c
}

/// The MPI single-copy setting [`launcher`] adds for a rank in a container of its own.
pub const NO_SINGLE_COPY: (&str, &str) = ("OMPI_MCA_btl_vader_single_copy_mechanism", "none");

/// The job a launcher started this rank for, when it says so: `PMIX_NAMESPACE` (Open MPI 5,
/// PMIx launchers and `srun --mpi=pmix`), `OMPI_MCA_ess_base_jobid` (Open MPI 4's `mpirun`) or
/// Slurm's job and step ids, and only with a rank variable beside it. Containers of one job on
/// a node may share a user namespace under this key, which keeps single-copy (CMA) working
/// between their ranks.
pub fn job_key(env: &[(String, String)]) -> Option<String> {
    let var = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    [
        "OMPI_COMM_WORLD_RANK",
        "PMIX_RANK",
        "PMI_RANK",
        "SLURM_PROCID",
    ]
    .into_iter()
    .find_map(var)?;
    if let Some(ns) = var("PMIX_NAMESPACE") {
        return Some(format!("pmix-{ns}"));
    }
    if let Some(job) = var("OMPI_MCA_ess_base_jobid") {
        return Some(format!("ompi-{job}"));
    }
    let job = var("SLURM_JOB_ID")?;
    Some(format!(
        "slurm-{job}.{}",
        var("SLURM_STEP_ID").unwrap_or("batch")
    ))
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn parent(path: &str) -> &str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((p, _)) => p,
        None => ".",
    }
}

#[cfg(test)]
#[path = "mpi_tests.rs"]
mod tests;
