//! Berth's test fixtures: local registry, tiny images, unprivileged user, Slurm cluster.
//!
//! Everything here drives real components installed from Debian packages (see
//! `scripts/install-deps`): `docker-registry` (CNCF distribution), `busybox-static`,
//! `debootstrap`, `umoci`, `skopeo`, `htpasswd`, and the system `/usr/bin/python3` with
//! `python3-cryptography` for the token server, `slurmctld`/`slurmd`/`slurm-client`/`munge` for
//! the Slurm cluster. Helpers panic with a readable message when something is missing, because
//! a test cannot do anything useful without its fixture ([`SlurmCluster::shared`] instead
//! returns `None` when Slurm is not installed, so its tests can skip).
//!
//! Fixtures that are expensive to build (root file system tarballs) are cached under
//! [`cache_dir`]; tests run in parallel threads and processes, so every cache entry is built
//! under a file lock and published by an atomic rename.
#![deny(missing_docs)]

mod cache;
mod fixtures;
mod net;
mod registry;
mod slurm;
mod synthetic;
mod user;

pub use cache::cache_dir;
pub use fixtures::{busybox_rootfs_tar, debian_rootfs_tar, oci_layout_from_tar};
pub use net::{free_port, http_get_status};
pub use registry::{Auth, Registry};
pub use slurm::{sigtrap, slurm_installed, JobEnd, SlurmCluster};
pub use synthetic::big_image_layers;
pub use user::{as_user, run_as, unprivileged_user, unprivileged_user_without_subids, TestUser};
