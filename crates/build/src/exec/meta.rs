//! Instructions that change only the image configuration.

use serde_json::{json, Value};

use super::{argv, config_obj, obj};
use crate::{Instruction, ShellOrExec};

/// The `PATH` that Docker's builders give a stage whose base image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Sets `k` in an environment list: in place where it is already set (so the order stays as
/// Docker keeps it), else at the end.
fn set_env(env: &mut Vec<String>, k: &str, v: &str) {
    let entry = format!("{k}={v}");
    match env.iter_mut().find(|e| e.split('=').next() == Some(k)) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// Adds the default `PATH` to a stage's config when its base has none, as both Docker's
/// legacy builder and BuildKit do, so RUN steps and the built image find the usual programs.
pub(super) fn default_path(config: &mut Value) {
    let cfg = config_obj(config);
    let mut env: Vec<Value> = cfg
        .get("Env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has_path = env
        .iter()
        .any(|e| e.as_str().is_some_and(|e| e.starts_with("PATH=")));
    if !has_path {
        env.push(json!(format!("PATH={DEFAULT_PATH}")));
        cfg.insert("Env".into(), json!(env));
    }
}

/// An EXPOSE port as Docker records it: `PORT/PROTO`, TCP by default, a range `A-B` as each of
/// its ports.
fn expand_ports(spec: &str) -> Vec<String> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let range = ports
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)));
    match range {
        Some((a, b)) if a <= b => (a..=b).map(|p| format!("{p}/{proto}")).collect(),
        _ => vec![format!("{ports}/{proto}")],
    }
}

fn cmd_json(c: &ShellOrExec, shell: &[String]) -> Value {
    json!(argv(c, shell))
}

/// Applies a configuration-only instruction to the image config; `cmd_set` says whether an
/// earlier CMD of the same stage set the command.
pub(super) fn apply_meta(config: &mut Value, ins: &Instruction, line: &str, cmd_set: bool) {
    let shell: Vec<String> = config["config"]["Shell"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
    let cfg = config_obj(config);
    match ins {
        Instruction::Env(kvs) => {
            let mut env: Vec<String> = cfg
                .get("Env")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in kvs {
                set_env(&mut env, k, v);
            }
            cfg.insert("Env".into(), json!(env));
        }
        Instruction::Cmd(c) => {
            cfg.insert("Cmd".into(), cmd_json(c, &shell));
        }
        Instruction::Entrypoint(c) => {
            cfg.insert("Entrypoint".into(), cmd_json(c, &shell));
            // Docker's rule: a new ENTRYPOINT drops a CMD inherited from the base, but not
            // one that this stage set.
            if !cmd_set {
                cfg.remove("Cmd");
            }
        }
        Instruction::Label(kvs) => {
            let l = obj(cfg, "Labels");
            for (k, v) in kvs {
                l.insert(k.clone(), json!(v));
            }
        }
        Instruction::Maintainer(m) => {
            obj(cfg, "Labels").insert("maintainer".into(), json!(m));
        }
        Instruction::Expose(ports) => {
            let e = obj(cfg, "ExposedPorts");
            for p in ports.iter().flat_map(|p| expand_ports(p)) {
                e.insert(p, json!({}));
            }
        }
        Instruction::Volume(vs) => {
            let e = obj(cfg, "Volumes");
            for v in vs {
                e.insert(v.clone(), json!({}));
            }
        }
        Instruction::User(u) => {
            cfg.insert("User".into(), json!(u));
        }
        Instruction::Stopsignal(s) => {
            cfg.insert("StopSignal".into(), json!(s));
        }
        Instruction::Shell(s) => {
            cfg.insert("Shell".into(), json!(s));
        }
        Instruction::Healthcheck(h) => {
            let v = match h {
                None => json!({"Test": ["NONE"]}),
                Some(h) => {
                    let test = match &h.test {
                        ShellOrExec::Exec(v) => std::iter::once("CMD".to_string())
                            .chain(v.iter().cloned())
                            .collect::<Vec<_>>(),
                        ShellOrExec::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                    };
                    // Unset durations and retries are left out, as Docker's `omitempty`
                    // fields are, rather than written as 0.
                    let mut v = json!({ "Test": test });
                    let ns = |d: Option<std::time::Duration>| d.map(|d| d.as_nanos() as u64);
                    for (k, d) in [
                        ("Interval", h.interval),
                        ("Timeout", h.timeout),
                        ("StartPeriod", h.start_period),
                        ("StartInterval", h.start_interval),
                    ] {
                        if let Some(n) = ns(d).filter(|n| *n > 0) {
                            v[k] = json!(n);
                        }
                    }
                    if let Some(r) = h.retries.filter(|r| *r > 0) {
                        v["Retries"] = json!(r);
                    }
                    v
                }
            };
            cfg.insert("Healthcheck".into(), v);
        }
        Instruction::Onbuild(_) => {
            // Recorded as written; a build that uses this image as its base runs it.
            let trigger = line
                .split_once(char::is_whitespace)
                .map_or("", |(_, t)| t.trim());
            let mut list: Vec<Value> = cfg
                .get("OnBuild")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            list.push(json!(trigger));
            cfg.insert("OnBuild".into(), json!(list));
        }
        _ => {}
    }
}

/// `SOURCE_DATE_EPOCH`, from a build argument of that name (as BuildKit reads it) or else
/// the environment: the time every step is recorded at, and the newest modification time a
/// layer records, so that rebuilding the same inputs gives the same image digest.
pub(super) fn source_date_epoch(
    build_args: &std::collections::BTreeMap<String, String>,
) -> Result<Option<i64>, String> {
    let Some(v) = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    match v.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(format!(
            "SOURCE_DATE_EPOCH={v:?}: expected a non-negative number of seconds"
        )),
    }
}

/// The time steps are recorded at: `epoch` when set, else the current time.
pub(super) fn now(epoch: Option<i64>) -> String {
    berth_types::rfc3339(epoch.unwrap_or_else(berth_types::unix_now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_environment_as_docker_writes_them() {
        assert_eq!(expand_ports("80"), ["80/tcp"]);
        assert_eq!(expand_ports("53/udp"), ["53/udp"]);
        assert_eq!(expand_ports("7-9/udp"), ["7/udp", "8/udp", "9/udp"]);
        let mut env = vec!["A=1".to_string(), "B=2".to_string()];
        set_env(&mut env, "A", "3");
        set_env(&mut env, "C", "4");
        assert_eq!(env, ["A=3", "B=2", "C=4"]);
    }
}
