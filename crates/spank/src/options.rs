//! pyxis's `--container-*` options and the `berth` command lines they become. Pure: no Slurm,
//! no processes.

/// One of the options the plugin adds, as registered with Slurm (the index is its `val`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opt {
    /// Long name without the dashes.
    pub name: &'static str,
    /// One-word argument description; `None` for a flag.
    pub arginfo: Option<&'static str>,
    /// Help text.
    pub usage: &'static str,
}

/// Every option, in the order of their `val`.
pub const OPTIONS: [Opt; 11] = [
    Opt {
        name: "container-image",
        arginfo: Some("[USER@][REGISTRY#]IMAGE[:TAG]|PATH"),
        usage: "[berth] the image to run the tasks in: a name, an id, a .sqsh file or a directory",
    },
    Opt {
        name: "container-mounts",
        arginfo: Some("SRC:DST[:FLAGS][,SRC:DST...]"),
        usage: "[berth] bind mount[s] inside the container; FLAGS ro or rw",
    },
    Opt {
        name: "container-workdir",
        arginfo: Some("PATH"),
        usage: "[berth] working directory inside the container",
    },
    Opt {
        name: "container-name",
        arginfo: Some("NAME"),
        usage:
            "[berth] join the running container NAME, or keep this node's for the job's later steps",
    },
    Opt {
        name: "container-env",
        arginfo: Some("NAME[,NAME...]"),
        usage: "[berth] variables whose value from the job's environment beats the image's",
    },
    Opt {
        name: "container-mount-home",
        arginfo: None,
        usage: "[berth] bind mount the user's home directory (default)",
    },
    Opt {
        name: "no-container-mount-home",
        arginfo: None,
        usage: "[berth] do not bind mount the user's home directory",
    },
    Opt {
        name: "container-remap-root",
        arginfo: None,
        usage: "[berth] run as root inside the container (mapped to the user)",
    },
    Opt {
        name: "no-container-remap-root",
        arginfo: None,
        usage: "[berth] run as the user inside the container (default)",
    },
    Opt {
        name: "container-writable",
        arginfo: None,
        usage: "[berth] make the container's root file system writable (default)",
    },
    Opt {
        name: "container-readonly",
        arginfo: None,
        usage: "[berth] make the container's root file system read-only",
    },
];

/// What the user asked for on the srun/sbatch/salloc command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerOptions {
    /// `--container-image`.
    pub image: Option<String>,
    /// `--container-mounts`, as `berth run -v` values.
    pub mounts: Vec<String>,
    /// `--container-workdir`.
    pub workdir: Option<String>,
    /// `--container-name`.
    pub name: Option<String>,
    /// `--container-env` names.
    pub env: Vec<String>,
    /// `--[no-]container-mount-home`.
    pub mount_home: bool,
    /// `--[no-]container-remap-root`.
    pub remap_root: bool,
    /// `--container-readonly` (against `--container-writable`).
    pub readonly: bool,
}

impl ContainerOptions {
    /// The defaults, pyxis's: home mounted, the user's own ids, a writable root.
    pub fn new() -> ContainerOptions {
        ContainerOptions {
            mount_home: true,
            ..ContainerOptions::default()
        }
    }

    /// Applies option number `val` with its argument.
    pub fn set(&mut self, val: usize, arg: Option<&str>) -> Result<(), String> {
        let opt = OPTIONS
            .get(val)
            .ok_or_else(|| format!("unknown option number {val}"))?;
        let need = || {
            arg.filter(|a| !a.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("--{} needs a value", opt.name))
        };
        match opt.name {
            "container-image" => self.image = Some(need()?),
            "container-mounts" => {
                for m in need()?.split(',').filter(|m| !m.is_empty()) {
                    self.mounts.push(volume(m)?);
                }
            }
            "container-workdir" => {
                let w = need()?;
                if !w.starts_with('/') {
                    return Err(format!("--container-workdir {w:?}: not an absolute path"));
                }
                self.workdir = Some(w);
            }
            "container-name" => {
                let n = need()?;
                if !valid_name(&n) {
                    return Err(format!(
                        "--container-name {n:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
                    ));
                }
                self.name = Some(n);
            }
            "container-env" => {
                for e in need()?.split(',').filter(|e| !e.is_empty()) {
                    if e.contains('=') {
                        return Err(format!(
                            "--container-env {e:?}: give variable names; the values come from the job's environment"
                        ));
                    }
                    self.env.push(e.to_string());
                }
            }
            "container-mount-home" => self.mount_home = true,
            "no-container-mount-home" => self.mount_home = false,
            "container-remap-root" => self.remap_root = true,
            "no-container-remap-root" => self.remap_root = false,
            "container-writable" => self.readonly = false,
            "container-readonly" => self.readonly = true,
            _ => unreachable!("every option is handled"),
        }
        Ok(())
    }

    /// True when any option other than the image was given, for "needs --container-image".
    pub fn any_besides_image(&self) -> bool {
        let plain = ContainerOptions {
            image: self.image.clone(),
            ..ContainerOptions::new()
        };
        *self != plain
    }

    /// The options given that shape a container only when it is made (its mounts, root file
    /// system and ids), for a step that joins one that exists.
    pub fn made_with(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        if !self.mounts.is_empty() {
            given.push("--container-mounts");
        }
        if self.readonly {
            given.push("--container-readonly");
        }
        if self.remap_root {
            given.push("--container-remap-root");
        }
        if !self.mount_home {
            given.push("--no-container-mount-home");
        }
        given
    }

    /// `berth run` arguments (after `berth`) that start the step's container on this node:
    /// detached, named, in the hpc profile, running `sleep` until the step ends.
    pub fn run_args(&self, image: &str, name: &str) -> Vec<String> {
        let mut a: Vec<String> = ["run", "-d", "--hpc", "--name", name]
            .map(String::from)
            .to_vec();
        for m in &self.mounts {
            a.push("-v".into());
            a.push(m.clone());
        }
        if let Some(w) = &self.workdir {
            a.push("-w".into());
            a.push(w.clone());
        }
        if self.readonly {
            a.push("--read-only".into());
        }
        if self.remap_root {
            a.extend(["--userns=auto", "-u", "0:0"].map(String::from));
        }
        a.extend(["--entrypoint", "", image, "sleep", "infinity"].map(String::from));
        a
    }

    /// Variables to change in `berth run`'s own environment. Without a home mount, `HOME=/`
    /// keeps the hpc profile from binding the user's home (and is the container's `HOME`).
    pub fn run_env(&self) -> Vec<(String, String)> {
        if self.mount_home {
            vec![]
        } else {
            vec![("HOME".into(), "/".into())]
        }
    }

    /// `berth exec` arguments (after `berth`) that run one task's `argv` in container `name`.
    ///
    /// The container was started with the step's environment `start_env`; what the task's own
    /// environment `task_env` adds or changes (Slurm's per-task variables: rank, local id,
    /// PMI) is passed on, and so are the `--container-env` names, whose job values beat the
    /// image's.
    pub fn exec_args(
        &self,
        name: &str,
        argv: &[String],
        task_env: &[String],
        start_env: &[String],
    ) -> Vec<String> {
        let mut a: Vec<String> = ["exec", "-i"].map(String::from).to_vec();
        // Every task's, also in a container made by an earlier step or by the user.
        if let Some(w) = &self.workdir {
            a.push("-w".into());
            a.push(w.clone());
        }
        for kv in task_env {
            let Some((k, _)) = kv.split_once('=') else {
                continue;
            };
            let forced = self.env.iter().any(|e| e == k);
            if forced || (!denied(k) && !start_env.contains(kv)) {
                a.push("-e".into());
                a.push(kv.clone());
            }
        }
        a.push(name.into());
        a.extend(argv.iter().cloned());
        a
    }
}

/// Variables never passed from the task to the container: the ones the hpc profile keeps
/// out (`berth run --hpc`), and the engine's own settings.
fn denied(key: &str) -> bool {
    matches!(
        key,
        "PATH" | "LD_PRELOAD" | "LD_LIBRARY_PATH" | "LD_AUDIT" | "HOME" | "XDG_RUNTIME_DIR"
    ) || ["BERTH_", "BASH_FUNC_", "SPANK_", "_SLURM_SPANK_"]
        .iter()
        .any(|p| key.starts_with(p))
}

/// A pyxis mount (`SRC[:DST[:FLAGS]]`) as a `berth run -v` value.
fn volume(m: &str) -> Result<String, String> {
    let parts: Vec<&str> = m.split(':').collect();
    let (src, dst, flags) = match parts.as_slice() {
        [src] => (*src, *src, ""),
        [src, dst] => (*src, *dst, ""),
        [src, dst, flags] => (*src, *dst, *flags),
        _ => {
            return Err(format!(
                "--container-mounts {m:?}: expected SRC:DST[:FLAGS]"
            ))
        }
    };
    if !src.starts_with('/') || !dst.starts_with('/') {
        return Err(format!(
            "--container-mounts {m:?}: source and destination must be absolute paths"
        ));
    }
    let mut mode = "";
    for f in flags.split('+').filter(|f| !f.is_empty()) {
        match f {
            "ro" | "rw" => mode = f,
            // Binds are recursive and private in berth already.
            "rbind" | "rprivate" | "private" => {}
            _ => {
                return Err(format!(
                    "--container-mounts {m:?}: unsupported flag {f:?} (ro or rw)"
                ))
            }
        }
    }
    Ok(if mode.is_empty() {
        format!("{src}:{dst}")
    } else {
        format!("{src}:{dst}:{mode}")
    })
}

/// Docker's container name rule, which berth follows.
fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(given: &[(&str, Option<&str>)]) -> Result<ContainerOptions, String> {
        let mut o = ContainerOptions::new();
        for (name, arg) in given {
            let val = OPTIONS.iter().position(|x| x.name == *name).unwrap();
            o.set(val, *arg)?;
        }
        Ok(o)
    }

    #[test]
    fn mounts_become_volumes() {
        let o = opts(&[("container-mounts", Some("/a:/b:ro,/c,/d:/e"))]).unwrap();
        assert_eq!(o.mounts, ["/a:/b:ro", "/c:/c", "/d:/e"]);
        for bad in ["a:/b", "/a:/b:exec", "/a:/b:ro:x"] {
            let e = opts(&[("container-mounts", Some(bad))]).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn run_args_follow_the_options() {
        let o = opts(&[
            ("container-mounts", Some("/h:/c:ro")),
            ("container-workdir", Some("/w")),
            ("container-readonly", None),
            ("container-remap-root", None),
        ])
        .unwrap();
        assert_eq!(
            o.run_args("img", "n").join(" "),
            "run -d --hpc --name n -v /h:/c:ro -w /w --read-only --userns=auto -u 0:0 \
             --entrypoint  img sleep infinity"
        );
        assert!(o.any_besides_image());
        assert!(!opts(&[("container-image", Some("x"))])
            .unwrap()
            .any_besides_image());
    }

    #[test]
    fn exec_passes_what_the_task_adds_and_the_named_variables() {
        let o = opts(&[("container-env", Some("FOO"))]).unwrap();
        let start = ["A=1", "FOO=x", "SLURM_JOB_ID=3", "PATH=/bin"].map(String::from);
        let task = [
            "A=1",
            "FOO=x",
            "SLURM_JOB_ID=3",
            "SLURM_PROCID=1",
            "PATH=/usr/bin",
        ]
        .map(String::from);
        let argv = ["cat".to_string(), "/f".to_string()];
        assert_eq!(
            o.exec_args("n", &argv, &task, &start).join(" "),
            "exec -i -e FOO=x -e SLURM_PROCID=1 n cat /f"
        );
    }

    #[test]
    fn workdir_applies_to_every_task_and_creation_options_are_named() {
        let o = opts(&[
            ("container-workdir", Some("/w")),
            ("container-mounts", Some("/a:/b")),
            ("container-readonly", None),
            ("no-container-mount-home", None),
        ])
        .unwrap();
        let argv = ["pwd".to_string()];
        assert_eq!(
            o.exec_args("n", &argv, &[], &[]).join(" "),
            "exec -i -w /w n pwd"
        );
        assert_eq!(
            o.made_with(),
            [
                "--container-mounts",
                "--container-readonly",
                "--no-container-mount-home"
            ]
        );
        assert!(opts(&[("container-workdir", Some("/w"))])
            .unwrap()
            .made_with()
            .is_empty());
    }

    #[test]
    fn names_and_env_are_checked() {
        assert!(opts(&[("container-name", Some("-x"))]).is_err());
        assert!(opts(&[("container-name", Some("a.b-c_1"))]).is_ok());
        assert!(opts(&[("container-env", Some("A=1"))]).is_err());
        assert!(opts(&[("container-workdir", Some("rel"))]).is_err());
        assert!(opts(&[("container-image", Some(""))]).is_err());
    }
}
