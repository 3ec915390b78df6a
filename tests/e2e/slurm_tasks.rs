//! What a task's process gets from srun besides its arguments, bare and in containers side by
//! side on the real Slurm of `slurm.rs`: the report of a signal death, and the PMI-2 socket.

use std::process::{Child, Output};

use crate::slurm::{setup, Mode, SpawnOutput, ALL_MODES};

/// A program killed by a signal: srun names the signal and exits as for the bare program, in
/// the hpc profile (the docker profile keeps Docker's exit status 128+N).
#[test]
fn a_signal_death_is_reported_like_the_bare_program() {
    let Some(s) = setup() else { return };
    let results: Vec<(Mode, Output)> = [Mode::Bare, Mode::Hpc]
        .map(|m| (m, s.srun(m, &["sh", "-c", "kill -USR1 $$"]).spawn_output()))
        .into_iter()
        .map(|(m, c)| (m, c.wait_with_output().unwrap()))
        .collect();
    let srun_says = |out: &Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("task 0"))
            .map(|l| l.rsplit("task 0").next().unwrap_or_default().to_string())
            .collect()
    };
    let (_, bare) = &results[0];
    assert!(
        srun_says(bare)
            .iter()
            .any(|l| l.contains("User defined signal 1")),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    for (mode, out) in &results[1..] {
        assert_eq!(out.status.code(), bare.status.code(), "{mode:?}: {out:?}");
        assert_eq!(srun_says(out), srun_says(bare), "{mode:?}");
    }
}

/// `srun --mpi=pmi2` gives each task a socket to slurmstepd's PMI server and names it in
/// `PMI_FD`; an MPI library (MPICH, Intel MPI, MVAPICH) wires up through it. The rank in a
/// container must get that descriptor at the same number: here it speaks PMI-1's wire
/// protocol (which Slurm's pmi2 plugin also serves) and must get slurmstepd's answers.
#[test]
fn pmi2_socket_reaches_the_rank() {
    let Some(s) = setup() else { return };
    let list = s.client("srun").arg("--mpi=list").output().unwrap();
    if !String::from_utf8_lossy(&[list.stdout, list.stderr].concat()).contains("pmi2") {
        eprintln!("skipped: this Slurm has no mpi/pmi2 plugin");
        return;
    }
    // busybox's shell, bare too: dash refuses descriptors above 9 in redirections.
    let script = "echo cmd=init pmi_version=1 pmi_subversion=1 >&$PMI_FD && \
                  read -r r <&$PMI_FD && echo \"$r\" && \
                  echo cmd=finalize >&$PMI_FD && read -r r <&$PMI_FD && echo \"$r\"";
    let results: Vec<(Mode, Child)> = ALL_MODES
        .map(|m| {
            let mut c = s.client("srun");
            c.args(["-N1", "-n1", "--mpi=pmi2", "--chdir", s.work_str()])
                .args(s.prefix(m))
                .args(["busybox", "sh", "-c", script]);
            (m, c.spawn_output())
        })
        .into_iter()
        .collect();
    for (mode, child) in results {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode:?}: {stdout} {stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{mode:?}: {stdout} {stderr}");
        assert!(
            lines[0].contains("cmd=response_to_init") && lines[0].contains("rc=0"),
            "{mode:?}: {stdout}"
        );
        assert!(lines[1].contains("cmd=finalize_ack"), "{mode:?}: {stdout}");
    }
}
