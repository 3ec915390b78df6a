//! `--container-name` under the SPANK plugin: a container the user runs is joined, and one the
//! plugin makes under a name is kept for the job's later steps (with its files), started
//! again when Slurm stopped it, and removed by the job's epilog, as pyxis's named containers.

use std::time::{Duration, Instant};

use crate::spank::{setup, success, BERTH, IMAGE};

#[test]
fn a_named_running_container_is_joined_and_kept() {
    let Some(s) = setup() else { return };
    // The store records which host runs a container, so the container is started, looked
    // at and removed on the node its tasks run on, by steps without the plugin's options.
    let on_node1 =
        |args: &[&str]| success(&s.run(&[&["-w", "node1", "-n1", BERTH], args].concat()));
    on_node1(&[
        "run", "-d", "--hpc", "--name", "keep", IMAGE, "sleep", "600",
    ]);
    let want = on_node1(&["exec", "keep", "readlink", "/proc/self/ns/mnt"]);
    let out = success(&s.run(&[
        "-w",
        "node1",
        "-n2",
        "--container-name=keep",
        "readlink",
        "/proc/self/ns/mnt",
    ]));
    assert_eq!(out, format!("{want}{want}"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(on_node1(&["ps", "-q"]).lines().count(), 1, "kept");
    on_node1(&["rm", "-f", "keep"]);
}

#[test]
fn a_named_container_lasts_for_the_job_on_each_node() {
    let Some(s) = setup() else { return };
    // The batch script runs on node1. The hpc profile binds the host's /tmp, shared here by
    // both nodes, so the steps write in the container's /etc. Between steps it stops node1's container, as Slurm's
    // proctrack/cgroup does at the end of the step that started it (the test cluster's
    // proctrack/linuxproc leaves it running).
    let script = format!(
        "#!/bin/sh\n\
         srun -N2 --ntasks-per-node=1 --container-image={IMAGE} --container-name=work \
           sh -c 'hostname > /etc/made-on; echo first'\n\
         srun -N2 --ntasks-per-node=1 --container-name=work sh -c 'echo kept $(cat /etc/made-on)'\n\
         {BERTH} kill work.node1 >/dev/null\n\
         srun -N1 -w node1 --container-name=work sh -c 'echo restarted $(cat /etc/made-on)'\n\
         srun -N1 -w node1 --container-name=work --container-workdir=/etc \
           --container-mounts=/tmp:/mnt sh -c 'echo in $(pwd)'\n\
         srun -N1 -w node1 --container-image={IMAGE} sh -c 'cat /etc/made-on || echo fresh'\n\
         srun -N1 -w node1 --container-name=other true; echo other $?\n\
         {BERTH} ps -a --format '{{{{.Names}}}} {{{{.State}}}}' | sort\n\
         srun -N1 -w node2 {BERTH} inspect --format 'on node2: {{{{.State.Status}}}}' work.node2\n"
    );
    std::fs::write(s.work.join("job.sh"), script).unwrap();
    let out = s
        .client("sbatch")
        .args([
            "--parsable",
            "-N2",
            "-o",
            "out.txt",
            "-e",
            "err.txt",
            "job.sh",
        ])
        .output()
        .unwrap();
    let job: u32 = success(&out).trim().parse().unwrap();
    let end = s.cluster.wait_job_end(job, Duration::from_secs(120));
    let read = |f: &str| std::fs::read_to_string(s.work.join(f)).unwrap_or_default();
    let (out, err) = (read("out.txt"), read("err.txt"));
    assert_eq!(end.exit_code, 0, "{end:?}\n{out}\n{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    // Two-node steps print in either order.
    lines[0..2].sort();
    lines[2..4].sort();
    assert_eq!(
        lines,
        [
            "first",
            "first",
            "kept node1",
            "kept node2",
            "restarted node1",
            "in /etc",
            "fresh",
            "other 125",
            // A record whose monitor runs on another host reads as exited.
            "work.node1 running",
            "work.node2 exited",
            "on node2: running",
        ],
        "{out}\n{err}"
    );
    assert!(
        err.contains(
            "--container-mounts apply only when a container is made; container work.node1 \
             keeps its own"
        ),
        "{err}"
    );
    assert!(
        err.contains("cat: can't open '/etc/made-on': No such file or directory"),
        "{err}"
    );
    assert!(
        err.contains(
            "--container-name other: no container other runs on this node and no earlier \
             step of the job made other.node1; give --container-image too"
        ),
        "{err}"
    );
    // The epilog runs on each node after the job.
    let runtime = s.cluster.state_dir().join("spank/runtime");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ps = s.b.ok(&["ps", "-a", "-q"]);
        let records: Vec<_> = std::fs::read_dir(&runtime)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        if ps.trim().is_empty() && records.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after the job: containers {ps}, records {records:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
