//! `--change` lines of `docker import`: the Dockerfile instructions that only set config.

use std::collections::HashMap;

use oci_spec::image::Config;

use crate::error::ArchiveError;

/// Applies `lines` in order to a fresh config, as `docker import --change` does.
pub(crate) fn apply(lines: &[String]) -> Result<Option<Config>, ArchiveError> {
    if lines.is_empty() {
        return Ok(None);
    }
    let mut config = Config::default();
    for line in lines {
        apply_one(&mut config, line)?;
    }
    Ok(Some(config))
}

/// Applies `lines` in order to `config`, as `docker commit --change` does.
pub fn apply_to(config: &mut Config, lines: &[String]) -> Result<(), ArchiveError> {
    lines.iter().try_for_each(|l| apply_one(config, l))
}

fn apply_one(config: &mut Config, line: &str) -> Result<(), ArchiveError> {
    let err = |reason: &str| ArchiveError::Change {
        line: line.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = line.trim();
    let (keyword, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((k, r)) => (k, r.trim()),
        None => (trimmed, ""),
    };
    let keyword = keyword.to_ascii_uppercase();
    if keyword.is_empty() {
        return Err(err("empty instruction"));
    }
    if rest.is_empty() {
        return Err(err(&format!("{keyword} needs an argument")));
    }
    match keyword.as_str() {
        "CMD" => {
            config.set_cmd(Some(command(rest).map_err(|r| err(&r))?));
        }
        "ENTRYPOINT" => {
            config.set_entrypoint(Some(command(rest).map_err(|r| err(&r))?));
        }
        "ENV" => {
            let pairs = pairs(rest, true).map_err(|r| err(&r))?;
            let mut env = config.env().clone().unwrap_or_default();
            for (key, value) in pairs {
                // A later ENV for the same variable replaces it, as in a Dockerfile.
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
                env.push(format!("{key}={value}"));
            }
            config.set_env(Some(env));
        }
        "LABEL" => {
            let pairs = pairs(rest, false).map_err(|r| err(&r))?;
            let mut labels: HashMap<String, String> = config.labels().clone().unwrap_or_default();
            labels.extend(pairs);
            config.set_labels(Some(labels));
        }
        "WORKDIR" => {
            // A relative WORKDIR is relative to the previous one, as in a Dockerfile.
            let dir = if rest.starts_with('/') {
                rest.to_string()
            } else {
                let base = config.working_dir().clone().unwrap_or_else(|| "/".into());
                format!("{}/{rest}", base.trim_end_matches('/'))
            };
            config.set_working_dir(Some(dir));
        }
        "USER" => {
            config.set_user(Some(rest.to_string()));
        }
        "STOPSIGNAL" => {
            config.set_stop_signal(Some(rest.to_string()));
        }
        "EXPOSE" => {
            let mut ports = config.exposed_ports().clone().unwrap_or_default();
            for word in words(rest).map_err(|r| err(&r))? {
                let port = port(&word).ok_or_else(|| err(&format!("invalid port {word:?}")))?;
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
            config.set_exposed_ports(Some(ports));
        }
        "VOLUME" => {
            let list = if rest.starts_with('[') {
                json_array(rest).map_err(|r| err(&r))?
            } else {
                words(rest).map_err(|r| err(&r))?
            };
            let mut volumes = config.volumes().clone().unwrap_or_default();
            for v in list {
                if !volumes.contains(&v) {
                    volumes.push(v);
                }
            }
            config.set_volumes(Some(volumes));
        }
        other => {
            return Err(err(&format!(
                "{other} is not supported; use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or WORKDIR"
            )))
        }
    }
    Ok(())
}

/// Exec form (`["a","b"]`) as is; shell form run by `/bin/sh -c`, as Docker does.
fn command(rest: &str) -> Result<Vec<String>, String> {
    if rest.starts_with('[') {
        json_array(rest)
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
    }
}

fn json_array(rest: &str) -> Result<Vec<String>, String> {
    serde_json::from_str(rest).map_err(|e| format!("invalid json array: {e}"))
}

/// `80`, `80/tcp`, `53/udp`, `8000-8010/tcp` → with the protocol spelled out.
fn port(word: &str) -> Option<String> {
    let (range, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
    let lo: u16 = lo.parse().ok()?;
    let hi: u16 = hi.parse().ok()?;
    (lo <= hi).then(|| format!("{range}/{proto}"))
}

/// `k=v k2="v 2"`; for ENV also the old `KEY value with spaces` form.
fn pairs(rest: &str, legacy_form: bool) -> Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if legacy_form && !first.contains('=') {
        let value = rest[first.len()..].trim();
        return Ok(vec![(first.to_string(), unquote_all(value)?)]);
    }
    words(rest)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("expected key=value, got {w:?}")),
        })
        .collect()
}

fn unquote_all(s: &str) -> Result<String, String> {
    Ok(split(s, false)?.concat())
}

/// Splits on unquoted whitespace, removing quotes and backslash escapes as a shell would.
fn words(s: &str) -> Result<Vec<String>, String> {
    split(s, true)
}

fn split(s: &str, on_space: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if on_space && c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lines: &[&str]) -> Config {
        let lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        apply(&lines).unwrap().unwrap()
    }

    #[test]
    fn instructions() {
        let c = cfg(&[
            "CMD [\"/bin/sh\"]",
            "ENTRYPOINT echo hi",
            "ENV A=1 B=\"two words\"",
            "ENV C three words",
            "env A=replaced",
            "WORKDIR /app",
            "WORKDIR sub",
            "USER 1000:1000",
            "LABEL org.x=\"y z\"",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
        ]);
        assert_eq!(c.cmd().as_deref(), Some(&["/bin/sh".to_string()][..]));
        assert_eq!(c.entrypoint().as_ref().unwrap()[2], "echo hi");
        assert_eq!(
            c.env().as_ref().unwrap(),
            &["B=two words", "C=three words", "A=replaced"]
        );
        assert_eq!(c.working_dir().as_deref(), Some("/app/sub"));
        assert_eq!(c.user().as_deref(), Some("1000:1000"));
        assert_eq!(c.labels().as_ref().unwrap()["org.x"], "y z");
        assert_eq!(c.exposed_ports().as_ref().unwrap(), &["80/tcp", "53/udp"]);
        assert_eq!(c.volumes().as_ref().unwrap(), &["/data"]);
    }

    #[test]
    fn refuses_unsupported_and_malformed() {
        for bad in [
            "RUN echo",
            "EXPOSE http",
            "CMD",
            "CMD [\"a\"",
            "LABEL novalue",
            "",
        ] {
            let e = apply(&[bad.to_string()]).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
