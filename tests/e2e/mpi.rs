//! MPI: a program built inside an image runs its ranks in containers, started by Slurm's
//! `srun --mpi=pmix` and by the host's `mpirun`, with the image's Open MPI or, with
//! `--mpi=host`, the host's; an image whose MPI does not match the host's is refused.
//!
//! The image is built once per test process (`berth build` of `scripts/mpi/Dockerfile` on the
//! Debian fixture: Open MPI from the package mirror, `scripts/mpi/pingpong.c` compiled inside)
//! into a store the tests share.
//! Each rank is its own `berth run --hpc`, so every run also checks that ranks in separate
//! containers exchange a large message (`pingpong` without arguments sends 4 MiB both ways).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use berth_testkit::SlurmCluster;

use crate::common::{have, Berth};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const IMAGE: &str = "localhost/mpi-pingpong";
const PINGPONG_C: &str = include_str!("../../scripts/mpi/pingpong.c");

const DOCKERFILE: &str = include_str!("../../scripts/mpi/Dockerfile");

/// The store holding [`IMAGE`], built on first use; `None` when the Debian fixture or the
/// mirror is unavailable.
fn image_store() -> Option<&'static Berth> {
    static STORE: OnceLock<Option<Berth>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let Some(deb) = berth_testkit::debian_rootfs_tar() else {
                eprintln!("skipped: Debian fixture unavailable (no debootstrap or mirror)");
                return None;
            };
            remove_stale_stores();
            let b = Berth::in_dir(
                tempfile::Builder::new()
                    .prefix(&format!("{STORE_PREFIX}{}-", std::process::id()))
                    .tempdir()
                    .unwrap(),
            );
            b.ok(&["import", deb.to_str().unwrap(), "localhost/deb"]);
            let ctx = b.dir.path().join("ctx");
            std::fs::create_dir_all(&ctx).unwrap();
            std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
            std::fs::write(ctx.join("pingpong.c"), PINGPONG_C).unwrap();
            b.ok(&["build", "-q", "-t", IMAGE, ctx.to_str().unwrap()]);
            std::fs::create_dir_all(b.dir.path().join("work")).unwrap();
            Some(b)
        })
        .as_ref()
}

/// The shared store lives as long as the test process, and statics are never dropped: each
/// process names its store after its pid and removes those of processes that have ended.
const STORE_PREFIX: &str = "berth-e2e-mpi-";

fn remove_stale_stores() {
    let tmp = std::env::temp_dir();
    for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(STORE_PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `berth run --rm --hpc [EXTRA] IMAGE ARGS...` as words, for a launcher's command line.
fn rank(extra: &[&str], args: &[&str]) -> Vec<String> {
    [BERTH, "run", "--rm", "--hpc"]
        .iter()
        .chain(extra)
        .chain(&[IMAGE])
        .chain(args)
        .map(|s| s.to_string())
        .collect()
}

/// Copies the store's Berth environment onto a launcher, which hands it on to the ranks.
fn with_store(mut c: Command, b: &Berth) -> Command {
    for (k, v) in b.cmd().get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.current_dir(work(b)).stdin(Stdio::null());
    c
}

fn work(b: &Berth) -> PathBuf {
    b.dir.path().join("work")
}

/// `mpirun -n 2` of `berth run` (root may launch only with `--allow-run-as-root`).
fn mpirun(b: &Berth, extra: &[&str], args: &[&str]) -> Output {
    let mut c = with_store(Command::new("mpirun"), b);
    // --timeout: a rank that waits forever for its peer fails the test instead of hanging it.
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "--timeout",
        "120",
        "-n",
        "2",
    ])
    .args(rank(extra, args));
    c.output().expect("run mpirun")
}

/// Both ranks reported, rank 0 checked the exchange, and the launcher exited 0.
fn assert_two_ranks(what: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("rank ")).collect();
    lines.sort();
    assert!(
        out.status.success() && lines == ["rank 0 of 2", "rank 1 of 2"],
        "{what}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("exchange ok"), "{what}: {stdout}");
}

/// The host's Open MPI launcher, or a reason to skip.
fn host_mpirun() -> bool {
    if !have("mpirun") {
        eprintln!("skipped: no mpirun (openmpi-bin; scripts/install-deps installs it)");
        return false;
    }
    true
}

#[test]
fn mpirun_runs_ranks_in_containers() {
    if !host_mpirun() {
        return;
    }
    let Some(b) = image_store() else { return };
    // 4 MiB go through Open MPI's single-copy path (CMA), which only works because the two
    // ranks' containers share one user namespace.
    assert_two_ranks("mpirun", &mpirun(b, &[], &["pingpong"]));
    let out = mpirun(
        b,
        &[],
        &[
            "sh",
            "-c",
            // The sleep keeps both ranks' containers alive together (sh does not wait for its
            // peer in MPI_Init): a namespace is shared only while someone holds it.
            "echo $(readlink /proc/self/ns/user) ${OMPI_MCA_btl_vader_single_copy_mechanism:-cma}; sleep 2",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(out.status.success() && lines.len() == 2, "{stdout}");
    assert_eq!(lines[0], lines[1], "ranks in different user namespaces");
    assert!(lines[0].ends_with(" cma"), "{stdout}");
}

#[test]
fn srun_pmix_runs_ranks_in_containers() {
    let Some(cluster) = SlurmCluster::shared() else {
        return;
    };
    if !has_pmix(cluster) {
        return;
    }
    let Some(b) = image_store() else { return };
    let srun = |extra: &[&str]| {
        let mut srun = with_store(cluster.command("srun"), b);
        srun.args(["-N1", "-n2", "--mpi=pmix", "--time=2", "--chdir"])
            .arg(work(b))
            .args(rank(extra, &["pingpong"]));
        srun.output().unwrap()
    };
    assert_two_ranks("srun --mpi=pmix", &srun(&[]));
    // With the host's MPI library bound in, wired up by Slurm's PMIx server as well.
    if host_has_libmpi() {
        assert_two_ranks("srun --mpi=pmix, --mpi=host", &srun(&["--mpi=host"]));
    }
}

/// Under the SPANK plugin the ranks join one container per node, so they share its user
/// namespace and Open MPI's single-copy transfers stay on.
#[test]
fn srun_container_image_ranks_join_one_container() {
    // Built without libslurm-dev's header, the plugin names no Slurm version.
    if berth_spank::plugin_version == 0 {
        eprintln!("skipped: the plugin was built without libslurm-dev (scripts/install-deps)");
        return;
    }
    let Some(cluster) = SlurmCluster::with_plugstack(crate::spank::NODES, crate::spank::plugstack)
    else {
        return;
    };
    if !has_pmix(cluster) {
        return;
    }
    let Some(b) = image_store() else { return };
    let image = format!("--container-image={IMAGE}");
    let srun = |args: &[&str]| {
        let mut c = with_store(cluster.command("srun"), b);
        c.args(["-N1", "-n2", "--mpi=pmix", "--time=2", &image, "--chdir"])
            .arg(work(b))
            .args(args);
        c.output().unwrap()
    };
    assert_two_ranks("srun --container-image", &srun(&["pingpong"]));
    let out = srun(&[
        "sh",
        "-c",
        "echo ${OMPI_MCA_btl_vader_single_copy_mechanism:-default} $(readlink /proc/self/ns/user)",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.dedup();
    assert_eq!(lines.len(), 1, "one user namespace: {text}");
    assert!(lines[0].starts_with("default user:["), "{text}");
}

/// Whether this Slurm has the mpi/pmix plugin (Debian's Open MPI has no PMI-2 client).
fn has_pmix(cluster: &SlurmCluster) -> bool {
    let list = cluster.command("srun").arg("--mpi=list").output().unwrap();
    let plugins = String::from_utf8_lossy(&list.stdout) + String::from_utf8_lossy(&list.stderr);
    if !plugins.contains("pmix") {
        eprintln!("skipped: this Slurm has no mpi/pmix plugin: {plugins}");
    }
    plugins.contains("pmix")
}

/// The host's `libmpi.so.N` is in the ldconfig cache (`--mpi=host` finds it there).
fn host_has_libmpi() -> bool {
    let out = Command::new("/sbin/ldconfig").arg("-p").output();
    let found = out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("libmpi.so.40 "));
    if !found {
        eprintln!("skipped: no libmpi.so.40 on this host (openmpi-bin installs it)");
    }
    found
}

#[test]
fn mpi_host_loads_the_host_library() {
    if !host_has_libmpi() || !host_mpirun() {
        return;
    }
    let Some(b) = image_store() else { return };
    let ldd = b.ok(&[
        "run",
        "--rm",
        "--hpc",
        "--mpi=host",
        IMAGE,
        "ldd",
        "/usr/local/bin/pingpong",
    ]);
    assert!(
        ldd.contains("libmpi.so.40 => /usr/lib/berth/host-mpi/libmpi.so.40 "),
        "{ldd}"
    );
    // The C library stays the image's.
    let libc = ldd.lines().find(|l| l.contains("libc.so.6 =>"));
    assert!(libc.is_some_and(|l| !l.contains("/host-mpi/")), "{ldd}");
    // The host's MPI is worked out once and kept; a cache that no longer matches the host is
    // worked out again, with the same result.
    let cache = b.root().join("cache/host-mpi.json");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    std::fs::write(
        &cache,
        serde_json::to_vec(&serde_json::json!(["another host", kept[1]])).unwrap(),
    )
    .unwrap();
    let again = b.ok(&[
        "run",
        "--rm",
        "--hpc",
        "--mpi=host",
        IMAGE,
        "ldd",
        "/usr/local/bin/pingpong",
    ]);
    // Load addresses differ from run to run.
    let paths = |out: &str| -> Vec<String> {
        out.lines()
            .map(|l| l.split(" (0x").next().unwrap_or(l).trim().to_string())
            .collect()
    };
    assert_eq!(paths(&again), paths(&ldd));
    let rewritten: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(rewritten[0], kept[0]);
    assert_two_ranks(
        "mpirun --mpi=host",
        &mpirun(b, &["--mpi=host"], &["pingpong"]),
    );
}

#[test]
fn mpi_host_refuses_an_image_with_another_mpi_before_starting() {
    if !host_has_libmpi() {
        return;
    }
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let ctx = b.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // An MPICH-ABI soname; the file's contents do not matter to the check.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb\nRUN mkdir -p /usr/lib && echo not-elf > /usr/lib/libmpi.so.12\n",
    )
    .unwrap();
    b.ok(&[
        "build",
        "-q",
        "-t",
        "localhost/mpich",
        ctx.to_str().unwrap(),
    ]);
    let marker = b.dir.path().join("started");
    let touch = format!("touch {}", marker.display());
    let cases = [
        (
            "localhost/mpich",
            "--mpi=host: the image's MPI (libmpi.so.12, MPICH ABI) does not match the host's \
             (libmpi.so.40, Open MPI)",
        ),
        (
            "localhost/bb",
            "--mpi=host: the image has no MPI library (no libmpi.so.N in its library \
             directories) to replace with the host's (libmpi.so.40, Open MPI)",
        ),
    ];
    for (image, message) in cases {
        let err = b.fails(
            &[
                "run",
                "--rm",
                "--hpc",
                "--mpi=host",
                image,
                "sh",
                "-c",
                &touch,
            ],
            125,
        );
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{image}: {err}");
        assert!(lines[0].ends_with(message), "{image}: {err}");
    }
    assert!(!marker.exists(), "a container started");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "", "containers left");
    // Without --mpi=host the same image runs.
    b.ok(&[
        "run",
        "--rm",
        "--hpc",
        "localhost/mpich",
        "sh",
        "-c",
        &touch,
    ]);
    assert!(marker.exists());
}
