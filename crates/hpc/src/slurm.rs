//! Slurm: what a job step leaves in the environment, and which of it a container needs.
//!
//! `srun` tells each task who it is through variables: `SLURM_PROCID`, `SLURM_LOCALID`,
//! `SLURM_STEP_NODELIST`…, and the process-management interface an MPI library wires up with
//! (`PMI_*` for PMI-1/2, `PMIX_*` for PMIx, `OMPI_*` when Open MPI's own launcher or its PMIx
//! component is involved). A containerised rank that loses them starts as a singleton and the
//! job silently runs N copies of rank 0. So they pass through in both profiles: the hpc profile
//! passes most of the environment anyway, but the docker profile starts from the image's, and
//! must still carry these.

use crate::{Contribution, Sourced};

/// Prefixes of the variables passed into a container when the caller runs inside a Slurm job.
pub const SLURM_PREFIXES: &[&str] = &["SLURM_", "PMI_", "PMIX_", "OMPI_"];

/// Single variables passed along with [`SLURM_PREFIXES`]: `SLURMD_NODENAME` names the node as
/// Slurm knows it, which can differ from the host name, and does not share the `SLURM_` prefix.
pub const SLURM_NAMES: &[&str] = &["SLURMD_NODENAME"];

/// The variable whose presence means "inside a Slurm job". `SLURM_JOBID` is its older spelling,
/// still set by Slurm, so either counts.
const JOB_ID: &[&str] = &["SLURM_JOB_ID", "SLURM_JOBID"];

/// The Slurm and process-management variables of `env` to pass into the container, in the order
/// given, each sourced to its own name. Outside a Slurm job (no `SLURM_JOB_ID`) the result is
/// empty, so that stray `OMPI_*` settings in a login shell do not leak into every container.
pub fn slurm(env: &[(String, String)]) -> Contribution {
    let job = env
        .iter()
        .find(|(k, _)| JOB_ID.contains(&k.as_str()))
        .map(|(_, v)| v.clone());
    let Some(job) = job else {
        return Contribution::default();
    };
    let env = env
        .iter()
        .filter(|(key, _)| {
            SLURM_PREFIXES.iter().any(|p| key.starts_with(p)) || SLURM_NAMES.contains(&key.as_str())
        })
        .map(|(key, value)| {
            Sourced::new(
                (key.clone(), value.clone()),
                format!("{key} in the caller's environment (Slurm job {job})"),
            )
        })
        .collect();
    Contribution {
        env,
        ..Contribution::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn outside_a_job_nothing_passes() {
        let env = vars(&[("OMPI_MCA_btl", "self"), ("PMI_RANK", "0"), ("HOME", "/h")]);
        assert_eq!(slurm(&env), Contribution::default());
    }

    #[test]
    fn inside_a_job_the_launcher_variables_pass() {
        let env = vars(&[
            ("HOME", "/home/alice"),
            ("SLURM_JOB_ID", "42"),
            ("SLURM_PROCID", "3"),
            ("SLURMD_NODENAME", "node7"),
            ("PMI_FD", "5"),
            ("PMIX_RANK", "3"),
            ("OMPI_MCA_btl", "self,vader"),
            ("SLURMX", "no"),
            ("PMIXED", "no"),
            ("LD_LIBRARY_PATH", "/opt/lib"),
            ("MY_SLURM_THING", "no"),
        ]);
        let c = slurm(&env);
        let keys: Vec<&str> = c.env.iter().map(|e| e.value.0.as_str()).collect();
        assert_eq!(
            keys,
            [
                "SLURM_JOB_ID",
                "SLURM_PROCID",
                "SLURMD_NODENAME",
                "PMI_FD",
                "PMIX_RANK",
                "OMPI_MCA_btl"
            ]
        );
        assert_eq!(c.env[1].value.1, "3");
        assert_eq!(
            c.env[1].source,
            "SLURM_PROCID in the caller's environment (Slurm job 42)"
        );
        assert!(c.files.is_empty() && c.mounts.is_empty() && c.cpus.is_none());
        assert_eq!(c.env_pairs()[4], ("PMIX_RANK".to_string(), "3".to_string()));
    }

    #[test]
    fn the_older_job_id_spelling_counts() {
        let c = slurm(&vars(&[("SLURM_JOBID", "7"), ("PMI_RANK", "1")]));
        assert_eq!(c.env.len(), 2);
    }

    #[test]
    fn contributions_extend_in_order() {
        let mut a = slurm(&vars(&[("SLURM_JOB_ID", "1")]));
        let mut b = Contribution {
            cpus: Some(Sourced::new(vec![1], "--cpus 1")),
            warnings: vec!["w".into()],
            ..Contribution::default()
        };
        b.env
            .push(Sourced::new(("OMP_NUM_THREADS".into(), "1".into()), "x"));
        a.extend(b);
        assert_eq!(a.env.len(), 2);
        assert_eq!(a.cpus.unwrap().value, vec![1]);
        assert_eq!(a.warnings, ["w"]);
    }
}
