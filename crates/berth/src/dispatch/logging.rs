//! A container's log, as Docker's `--log-driver` and `--log-opt` shape it: `json-file` (and
//! `local`, kept in the same format) with `max-size`/`max-file` rotation, or `none`. A detached
//! container's monitor writes it; `logs` reads it back, rotated files first.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::run_flags::parse_bytes;

/// `HostConfig.LogConfig` for `--log-driver` and `--log-opt`, checked as Docker checks them.
pub fn log_config(driver: Option<&str>, opts: &[String]) -> Result<Value> {
    let driver = driver.unwrap_or("json-file");
    let mut config = serde_json::Map::new();
    for opt in opts {
        let Some((k, v)) = opt.split_once('=') else {
            bail!("invalid --log-opt {opt:?}: expected KEY=VALUE");
        };
        config.insert(k.to_string(), json!(v));
    }
    match driver {
        "json-file" | "local" => {
            for (k, v) in &config {
                let v = v.as_str().unwrap_or_default();
                match k.as_str() {
                    "max-size" if parse_bytes(v).is_err() => {
                        bail!("invalid --log-opt max-size={v}: not a size (10m, 1g)")
                    }
                    "max-file" if v.parse::<u32>().map_or(true, |n| n < 1) => {
                        bail!("invalid --log-opt max-file={v}: a whole number of files, at least 1")
                    }
                    "labels-regex" | "env-regex" if regex::Regex::new(v).is_err() => {
                        bail!("invalid --log-opt {k}={v}: not a regular expression")
                    }
                    "compress" if v != "false" => {
                        bail!("--log-opt compress={v}: rotated logs are kept uncompressed")
                    }
                    "max-size" | "max-file" | "compress" => {}
                    "labels" | "labels-regex" | "env" | "env-regex" | "tag"
                        if driver == "json-file" => {}
                    other => bail!("unknown log opt '{other}' for {driver} log driver"),
                }
            }
        }
        "none" if !config.is_empty() => bail!("invalid logging opts for driver none"),
        "none" => {}
        other => bail!("logging driver {other:?} is not supported: json-file, local and none are"),
    }
    Ok(json!({"Type": driver, "Config": config}))
}

/// Whether the container's output is kept at all (`--log-driver none` keeps nothing).
pub fn keeps_logs(host_config: &Value) -> bool {
    host_config["LogConfig"]["Type"].as_str() != Some("none")
}

/// The message `logs` fails with for a container that keeps none, as Docker words it.
pub const NOT_READABLE: &str = "configured logging driver does not support reading";

/// The attributes every record of a container's log carries (`--log-opt labels=`, `env=` and
/// their `-regex` forms): the named labels of its config and variables of its environment.
fn attributes(host_config: &Value, config: &Value) -> serde_json::Map<String, Value> {
    let opts = &host_config["LogConfig"]["Config"];
    let names = |key: &str| -> Vec<String> {
        opts[key]
            .as_str()
            .map(|s| s.split(',').map(|n| n.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let pattern = |key: &str| opts[key].as_str().and_then(|r| regex::Regex::new(r).ok());
    let wanted = |name: &str, list: &[String], re: &Option<regex::Regex>| {
        list.iter().any(|n| n == name) || re.as_ref().is_some_and(|re| re.is_match(name))
    };
    let mut out = serde_json::Map::new();
    let (labels, labels_re) = (names("labels"), pattern("labels-regex"));
    if let Some(all) = config["Labels"].as_object() {
        for (k, v) in all.iter().filter(|(k, _)| wanted(k, &labels, &labels_re)) {
            out.insert(k.clone(), v.clone());
        }
    }
    let (env, env_re) = (names("env"), pattern("env-regex"));
    for item in config["Env"].as_array().into_iter().flatten() {
        let Some((k, v)) = item.as_str().and_then(|s| s.split_once('=')) else {
            continue;
        };
        if wanted(k, &env, &env_re) {
            out.insert(k.to_string(), json!(v));
        }
    }
    out
}

/// The text `logs --details` puts before a record: its attributes as `k=v,k=v` (Docker's
/// order: by name), then a space, also when there are none.
pub fn details(record: &Value) -> String {
    let attrs = record["attrs"].as_object();
    let mut pairs: Vec<String> = attrs
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    format!("{} ", pairs.join(","))
}

/// Appends records to a container's log and rotates it past `max-size`: `container.log` becomes
/// `container.log.1` (and so on up to `max-file` files in all), as Docker's json-file does.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    written: u64,
    max_size: Option<u64>,
    max_files: u32,
    attrs: serde_json::Map<String, Value>,
}

impl LogWriter {
    /// Opens (appending) the log at `path` with the rotation `host_config` asks for, and the
    /// attributes it names from `config` (the record's `Config`).
    pub fn open(path: PathBuf, host_config: &Value, config: &Value) -> io::Result<LogWriter> {
        let cfg = &host_config["LogConfig"]["Config"];
        let max_size = cfg["max-size"]
            .as_str()
            .and_then(|s| parse_bytes(s).ok())
            .filter(|n| *n > 0);
        let max_files = cfg["max-file"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1u32)
            .max(1);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(LogWriter {
            path,
            file,
            written,
            max_size,
            max_files,
            attrs: attributes(host_config, config),
        })
    }

    /// Writes one record, as Docker's json-file does: the text, its stream, the attributes
    /// (when there are any) and the time.
    pub fn record(&mut self, stream: &str, text: &str, time: &str) -> io::Result<()> {
        let mut rec = json!({"log": text, "stream": stream, "time": time});
        if !self.attrs.is_empty() {
            rec["attrs"] = Value::Object(self.attrs.clone());
        }
        self.write_line(&rec.to_string())
    }

    /// Writes one record (a line) and rotates if that made the file too large.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.file, "{line}")?;
        self.written += line.len() as u64 + 1;
        if self.max_size.is_some_and(|max| self.written >= max) {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files > 1 {
            for n in (1..self.max_files - 1).rev() {
                let _ = std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1));
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

/// `container.log.N`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The log's files, oldest first: the rotated ones, then the current one (which may be absent).
pub fn files_oldest_first(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<PathBuf> = (1..)
        .map(|n| numbered(path, n))
        .take_while(|p| p.exists())
        .collect();
    rotated.reverse();
    rotated.push(path.to_path_buf());
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_as_docker_checks_them() {
        let ok = |d: Option<&str>, o: &[&str]| {
            let opts: Vec<String> = o.iter().map(|s| s.to_string()).collect();
            log_config(d, &opts)
        };
        assert_eq!(
            ok(None, &[]).unwrap(),
            json!({"Type": "json-file", "Config": {}})
        );
        assert_eq!(
            ok(Some("local"), &["max-size=1k", "max-file=2"]).unwrap()["Config"],
            json!({"max-size": "1k", "max-file": "2"})
        );
        let err = |d, o| ok(d, o).unwrap_err().to_string();
        assert!(err(None, &["foo=bar"]).contains("unknown log opt 'foo'"));
        assert!(err(Some("local"), &["labels=a"]).contains("for local log driver"));
        assert!(err(None, &["max-size=xx"]).contains("max-size=xx"));
        assert!(err(None, &["max-file=0"]).contains("max-file=0"));
        assert!(err(Some("none"), &["max-size=1k"]).contains("driver none"));
        assert!(err(Some("syslog"), &[]).contains("not supported"));
    }

    #[test]
    fn attributes_from_labels_and_environment() {
        let host = json!({"LogConfig": {"Config": {"labels": "team,none", "env-regex": "^JOB"}}});
        let config = json!({"Labels": {"team": "a", "other": "b"},
                            "Env": ["JOB_ID=42", "HOME=/root", "JOBNAME=x"]});
        let attrs = attributes(&host, &config);
        assert_eq!(
            Value::Object(attrs),
            json!({"team": "a", "JOB_ID": "42", "JOBNAME": "x"})
        );
        assert_eq!(
            details(&json!({"attrs": {"team": "a", "JOB_ID": "42"}})),
            "JOB_ID=42,team=a "
        );
        assert_eq!(details(&json!({})), " ");
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let cfg = json!({"LogConfig": {"Config": {"max-size": "10", "max-file": "3"}}});
        let mut w = LogWriter::open(path.clone(), &cfg, &json!({})).unwrap();
        for i in 0..5 {
            w.write_line(&format!("line {i} ...")).unwrap();
        }
        let files = files_oldest_first(&path);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["container.log.2", "container.log.1", "container.log"]
        );
        let text: Vec<String> = files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect();
        assert_eq!(text, ["line 3 ...\n", "line 4 ...\n", ""]);
    }
}
