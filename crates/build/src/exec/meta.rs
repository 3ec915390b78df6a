//! Instructions that change only the image configuration.

use serde_json::{json, Value};

use super::{argv, config_obj, obj};
use crate::{Instruction, ShellOrExec};

fn cmd_json(c: &ShellOrExec, shell: &[String]) -> Value {
    json!(argv(c, shell))
}

/// Applies a configuration-only instruction to the image config.
pub(super) fn apply_meta(config: &mut Value, ins: &Instruction, line: &str) {
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
                env.retain(|e| e.split('=').next() != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
            cfg.insert("Env".into(), json!(env));
        }
        Instruction::Cmd(c) => {
            cfg.insert("Cmd".into(), cmd_json(c, &shell));
        }
        Instruction::Entrypoint(c) => {
            cfg.insert("Entrypoint".into(), cmd_json(c, &shell));
            // Docker's rule: a new ENTRYPOINT drops a CMD inherited from the base.
            cfg.remove("Cmd");
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
            for p in ports {
                let p = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
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
                    let ns = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_nanos() as u64);
                    json!({
                        "Test": test, "Interval": ns(h.interval), "Timeout": ns(h.timeout),
                        "StartPeriod": ns(h.start_period), "Retries": h.retries.unwrap_or(0),
                    })
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

/// The time steps are recorded at: `SOURCE_DATE_EPOCH` when set, for reproducible images.
pub(super) fn now() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from a day count (400-year eras).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
