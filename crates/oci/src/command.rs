//! What runs, where, under which name: arguments, working directory and hostname.

use oci_spec::image::Config;

use crate::{OciError, Profile, RunOptions};

/// The process's arguments in two parts, entrypoint and command (as `inspect` shows them in
/// `Config.Entrypoint` and `Config.Cmd`), as Docker combines `ENTRYPOINT`, `CMD`,
/// `--entrypoint` and the arguments after the image name:
///
/// - the entrypoint is `--entrypoint` when given, else the image's;
/// - the command is the arguments after the image when there are any, else the image's `CMD`,
///   except that `--entrypoint` drops the image's `CMD` (it was written for the old
///   entrypoint, and `docker run --entrypoint` documents exactly this);
/// - `--entrypoint ""` clears the entrypoint.
pub(crate) fn entrypoint_and_cmd(
    image: &Config,
    opts: &RunOptions,
) -> Result<(Vec<String>, Vec<String>), OciError> {
    let (entrypoint, image_cmd) = match &opts.entrypoint {
        Some(ep) => (cleared(ep), Vec::new()),
        None => (
            image.entrypoint().clone().unwrap_or_default(),
            image.cmd().clone().unwrap_or_default(),
        ),
    };
    let cmd = if opts.command.is_empty() {
        image_cmd
    } else {
        opts.command.clone()
    };
    if entrypoint.is_empty() && cmd.is_empty() {
        return Err(OciError::NoCommand);
    }
    Ok((entrypoint, cmd))
}

/// `--entrypoint ""` reaches us either as no words or as one empty word; both clear it.
fn cleared(ep: &[String]) -> Vec<String> {
    if ep.len() == 1 && ep[0].is_empty() {
        Vec::new()
    } else {
        ep.to_vec()
    }
}

/// The working directory: `-w`, else the profile's default. In the docker profile that is the
/// image's `WORKDIR`, else `/`; in the hpc profile it is the caller's own working directory,
/// which is bound into the container so that relative paths on the command line keep working.
pub(crate) fn workdir(image: &Config, opts: &RunOptions) -> Result<String, OciError> {
    let dir = match (&opts.workdir, opts.profile) {
        (Some(w), _) if !w.is_empty() => w.clone(),
        (_, Profile::Hpc) if !opts.caller.cwd.is_empty() => opts.caller.cwd.clone(),
        _ => match image.working_dir() {
            Some(w) if !w.is_empty() => w.clone(),
            _ => "/".to_string(),
        },
    };
    if !dir.starts_with('/') {
        return Err(OciError::RelativeWorkdir(dir));
    }
    Ok(dir)
}

/// The hostname inside a new UTS namespace: `-h`, else the short container id, as Docker does.
pub(crate) fn hostname(opts: &RunOptions) -> String {
    match &opts.hostname {
        Some(h) if !h.is_empty() => h.clone(),
        _ => opts.container_id.chars().take(12).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(image: &Config, opts: &RunOptions) -> Result<Vec<String>, OciError> {
        let (entrypoint, cmd) = entrypoint_and_cmd(image, opts)?;
        Ok(entrypoint.into_iter().chain(cmd).collect())
    }

    use oci_spec::image::ConfigBuilder;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn image(entrypoint: Option<&str>, cmd: Option<&str>) -> Config {
        let mut b = ConfigBuilder::default();
        if let Some(ep) = entrypoint {
            b = b.entrypoint(words(ep));
        }
        if let Some(c) = cmd {
            b = b.cmd(words(c));
        }
        b.build().unwrap()
    }

    /// Docker's matrix: image ENTRYPOINT/CMD against `--entrypoint` and run arguments.
    #[test]
    fn entrypoint_and_cmd_combine_as_docker_documents() {
        type Case = (
            Option<&'static str>, // image ENTRYPOINT
            Option<&'static str>, // image CMD
            Option<&'static str>, // --entrypoint ("" clears)
            &'static str,         // arguments after the image
            Option<&'static str>, // expected args, None: "no command specified"
        );
        let cases: &[Case] = &[
            (None, None, None, "", None),
            (None, Some("c1 c2"), None, "", Some("c1 c2")),
            (Some("e1 e2"), None, None, "", Some("e1 e2")),
            (Some("e1"), Some("c1"), None, "", Some("e1 c1")),
            (None, Some("c1"), None, "a1 a2", Some("a1 a2")),
            (Some("e1"), Some("c1"), None, "a1", Some("e1 a1")),
            (Some("e1"), None, None, "a1", Some("e1 a1")),
            (Some("e1"), Some("c1"), Some("x"), "", Some("x")),
            (Some("e1"), Some("c1"), Some("x"), "a1", Some("x a1")),
            (None, Some("c1"), Some("x"), "", Some("x")),
            (Some("e1"), Some("c1"), Some(""), "", None),
            (Some("e1"), Some("c1"), Some(""), "a1 a2", Some("a1 a2")),
            (None, Some("c1"), Some(""), "", None),
        ];
        for (ep, cmd, flag, run, want) in cases {
            let opts = RunOptions {
                entrypoint: flag.map(|f| if f.is_empty() { vec![] } else { words(f) }),
                command: words(run),
                ..RunOptions::default()
            };
            let got = args(&image(*ep, *cmd), &opts);
            let case = format!("image {ep:?}/{cmd:?}, --entrypoint {flag:?}, run {run:?}");
            match want {
                Some(w) => assert_eq!(got.unwrap(), words(w), "{case}"),
                None => assert_eq!(got.unwrap_err(), OciError::NoCommand, "{case}"),
            }
        }
    }

    #[test]
    fn an_empty_entrypoint_word_clears_too() {
        let opts = RunOptions {
            entrypoint: Some(vec![String::new()]),
            command: words("sh"),
            ..RunOptions::default()
        };
        assert_eq!(args(&image(Some("e1"), None), &opts).unwrap(), ["sh"]);
    }

    #[test]
    fn workdir_follows_flag_then_profile() {
        let with_wd = ConfigBuilder::default()
            .working_dir("/app")
            .build()
            .unwrap();
        let plain = Config::default();
        let mut opts = RunOptions::default();
        opts.caller.cwd = "/scratch/run1".into();
        assert_eq!(workdir(&with_wd, &opts).unwrap(), "/app");
        assert_eq!(workdir(&plain, &opts).unwrap(), "/");
        opts.profile = Profile::Hpc;
        assert_eq!(workdir(&with_wd, &opts).unwrap(), "/scratch/run1");
        opts.workdir = Some("/data".into());
        assert_eq!(workdir(&with_wd, &opts).unwrap(), "/data");
        opts.workdir = Some("data".into());
        assert_eq!(
            workdir(&with_wd, &opts).unwrap_err(),
            OciError::RelativeWorkdir("data".into())
        );
    }

    #[test]
    fn hostname_is_the_flag_or_the_short_id() {
        let mut opts = RunOptions {
            container_id: "0123456789abcdef0123".into(),
            ..RunOptions::default()
        };
        assert_eq!(hostname(&opts), "0123456789ab");
        opts.hostname = Some("box".into());
        assert_eq!(hostname(&opts), "box");
    }
}
