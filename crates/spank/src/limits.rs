//! The resource limits srun propagates (`PropagateResourceLimits`): srun puts its soft limits
//! in the job's environment as `SLURM_RLIMIT_<NAME>=[U]<value>`, only for the limits it is
//! configured to propagate, and slurmstepd applies them just before its own `execve`, which
//! the plugin replaces with `berth exec`; so the plugin applies them itself, as Slurm would.

/// The prefix of srun's variables.
pub const PREFIX: &str = "SLURM_RLIMIT_";

/// How the C library types a `RLIMIT_*` resource (glibc has an enum of its own).
#[cfg(target_env = "gnu")]
pub type Resource = libc::__rlimit_resource_t;
/// How the C library types a `RLIMIT_*` resource.
#[cfg(not(target_env = "gnu"))]
pub type Resource = libc::c_int;

/// A limit to set: the resource and the soft value srun had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// `RLIMIT_*`.
    pub resource: Resource,
    /// The soft limit (`RLIM_INFINITY` for unlimited).
    pub soft: libc::rlim_t,
}

/// The limits named by `SLURM_RLIMIT_*` entries of `env` (`NAME=value` strings); unknown names
/// and malformed values are skipped, as slurmstepd skips them.
pub fn requested(env: &[String]) -> Vec<Limit> {
    env.iter()
        .filter_map(|kv| {
            let (name, value) = kv.strip_prefix(PREFIX)?.split_once('=')?;
            let resource = match name {
                "CPU" => libc::RLIMIT_CPU,
                "FSIZE" => libc::RLIMIT_FSIZE,
                "DATA" => libc::RLIMIT_DATA,
                "STACK" => libc::RLIMIT_STACK,
                "CORE" => libc::RLIMIT_CORE,
                "RSS" => libc::RLIMIT_RSS,
                "NPROC" => libc::RLIMIT_NPROC,
                "NOFILE" => libc::RLIMIT_NOFILE,
                "MEMLOCK" => libc::RLIMIT_MEMLOCK,
                "AS" => libc::RLIMIT_AS,
                _ => return None,
            };
            // "U" marks a limit the user asked to propagate (srun --propagate).
            let soft = value.strip_prefix('U').unwrap_or(value).parse().ok()?;
            Some(Limit { resource, soft })
        })
        .collect()
}

/// `soft` within `hard`: an unprivileged process cannot raise its hard limit, and slurmstepd
/// then sets the soft limit to the hard one.
pub fn clamp(soft: libc::rlim_t, hard: libc::rlim_t) -> libc::rlim_t {
    if hard != libc::RLIM_INFINITY && (soft == libc::RLIM_INFINITY || soft > hard) {
        hard
    } else {
        soft
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_srun_variables() {
        let env = [
            "SLURM_RLIMIT_NOFILE=777",
            "SLURM_RLIMIT_CORE=U0",
            "SLURM_RLIMIT_AS=18446744073709551615",
            "SLURM_RLIMIT_NICE=1",
            "SLURM_RLIMIT_STACK=x",
            "HOME=/h",
        ]
        .map(String::from);
        assert_eq!(
            requested(&env),
            [
                Limit {
                    resource: libc::RLIMIT_NOFILE,
                    soft: 777
                },
                Limit {
                    resource: libc::RLIMIT_CORE,
                    soft: 0
                },
                Limit {
                    resource: libc::RLIMIT_AS,
                    soft: libc::RLIM_INFINITY
                },
            ]
        );
    }

    #[test]
    fn soft_stays_within_hard() {
        assert_eq!(clamp(10, 20), 10);
        assert_eq!(clamp(30, 20), 20);
        assert_eq!(clamp(libc::RLIM_INFINITY, 20), 20);
        assert_eq!(
            clamp(libc::RLIM_INFINITY, libc::RLIM_INFINITY),
            libc::RLIM_INFINITY
        );
    }
}
