//! The command a container process execs, prepared by the monitor so the process needs no
//! allocation and no lookups of its own: argv, envp and the candidate paths for `args[0]`
//! searched in the container's `PATH`, as `execvpe` does.

use std::ffi::CString;

use oci_spec::runtime::Process;

use crate::error::RuntimeError;
use crate::sys::{self, CStringArray};

/// Docker's default `PATH`, used when the environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A ready-to-exec command.
pub(crate) struct Command {
    /// `args[0]` as given, for error messages.
    pub(crate) arg0: String,
    argv: CStringArray,
    envp: CStringArray,
    candidates: Vec<CString>,
}

impl Command {
    /// Prepares `process.args` with `process.env`.
    pub(crate) fn from_process(p: &Process) -> Result<Command, RuntimeError> {
        let args = p.args().as_deref().unwrap_or_default();
        let Some(arg0) = args.first() else {
            return Err(RuntimeError::InvalidSpec("process.args is empty".into()));
        };
        let env = p.env().as_deref().unwrap_or_default();
        let nul = |what: &str| RuntimeError::InvalidSpec(format!("nul byte in {what}"));
        let argv = CStringArray::new(args).ok_or_else(|| nul("process.args"))?;
        let envp = CStringArray::new(env).ok_or_else(|| nul("process.env"))?;
        let candidates = if arg0.contains('/') {
            vec![CString::new(arg0.as_str()).map_err(|_| nul("process.args"))?]
        } else {
            let path = env
                .iter()
                .rev()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or(DEFAULT_PATH);
            path.split(':')
                .map(|dir| if dir.is_empty() { "." } else { dir })
                .map(|dir| CString::new(format!("{}/{arg0}", dir.trim_end_matches('/'))))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| nul("PATH"))?
        };
        Ok(Command {
            arg0: arg0.clone(),
            argv,
            envp,
            candidates,
        })
    }

    /// Execs the command; returns the errno that explains the failure otherwise. Like
    /// `execvpe`, a permission error on one candidate wins over "not found" on the others.
    pub(crate) fn exec(&self) -> i32 {
        let mut denied = false;
        for path in &self.candidates {
            let err = sys::execve(path, &self.argv, &self.envp);
            match err.raw_os_error().unwrap_or(libc::EIO) {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                other => return other,
            }
        }
        if denied {
            libc::EACCES
        } else {
            libc::ENOENT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::ProcessBuilder;

    #[test]
    fn candidates_follow_container_path() {
        let p = ProcessBuilder::default()
            .args(vec!["sh".to_string()])
            .env(vec!["PATH=/bin:/usr/bin/".to_string()])
            .build()
            .unwrap();
        let c = Command::from_process(&p).unwrap();
        let got: Vec<_> = c.candidates.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(got, ["/bin/sh", "/usr/bin/sh"]);
    }

    #[test]
    fn empty_args_rejected() {
        let p = ProcessBuilder::default()
            .args(Vec::<String>::new())
            .build()
            .unwrap();
        assert!(Command::from_process(&p).is_err());
    }
}
