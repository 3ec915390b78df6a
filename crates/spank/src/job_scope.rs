//! Named containers live as long as the job, as pyxis's do by default: a step that ran in
//! one leaves a record in the plugin's runtime directory when it ends on the node, and the
//! job's epilog on that node removes the containers its records name.
//!
//! The epilog runs in slurmd as root, without the job's environment, so a record carries what
//! `berth rm` needs to find the user's store: the binary, the user's ids and the job's
//! environment (`BERTH_ROOT`, `HOME`, `XDG_*`). Fields are NUL-separated because
//! environment values may hold newlines.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where records go unless `plugstack.conf` says `runtime=DIR`: root's, on the node.
pub const DEFAULT_DIR: &str = "/run/berth/spank";

/// What the job epilog needs to remove one container as its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The node the container runs on (the runtime directory may be shared).
    pub host: String,
    /// The container's name.
    pub container: String,
    /// The absolute path of the berth binary.
    pub berth: String,
    /// The user's uid, gid and supplementary groups.
    pub ids: (u32, u32, Vec<u32>),
    /// The job's environment, as the step gave it to `berth run`.
    pub env: Vec<String>,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let groups: Vec<String> = self.ids.2.iter().map(u32::to_string).collect();
        let mut fields = vec![
            "berth-spank-record-1".to_string(),
            self.host.clone(),
            self.container.clone(),
            self.berth.clone(),
            self.ids.0.to_string(),
            self.ids.1.to_string(),
            groups.join(","),
        ];
        fields.extend(self.env.iter().cloned());
        let mut out = Vec::new();
        for f in fields {
            out.extend_from_slice(f.as_bytes());
            out.push(0);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Record> {
        let mut fields = bytes
            .strip_suffix(&[0])?
            .split(|b| *b == 0)
            .map(|f| String::from_utf8_lossy(f).into_owned());
        if fields.next()? != "berth-spank-record-1" {
            return None;
        }
        let (host, container, berth) = (fields.next()?, fields.next()?, fields.next()?);
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        let groups = fields.next()?;
        let groups = groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<u32>, _>>()
            .ok()?;
        Some(Record {
            host,
            container,
            berth,
            ids: (uid, gid, groups),
            env: fields.collect(),
        })
    }
}

/// Writes `rec` for `job` (replacing a record of the same container), atomically so that an
/// epilog never reads half of one.
pub fn save(dir: &Path, job: u32, rec: &Record) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = format!("{job}.{}.{}", rec.host, rec.container);
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&rec.encode())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

/// The records of `job` on `host`, each with its file, for the caller to act on and then
/// delete. Files that are not records are left alone.
pub fn of_job(dir: &Path, job: u32, host: &str) -> Vec<(PathBuf, Record)> {
    let prefix = format!("{job}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, Record)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| {
            let rec = Record::decode(&std::fs::read(e.path()).ok()?)?;
            (rec.host == host).then(|| (e.path(), rec))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str, container: &str) -> Record {
        Record {
            host: host.into(),
            container: container.into(),
            berth: "/usr/bin/berth".into(),
            ids: (1000, 1000, vec![1000, 27]),
            env: vec![
                "HOME=/home/u".into(),
                "BASH_FUNC_f%%=() {  echo a\n}".into(),
                "EMPTY=".into(),
            ],
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let r = record("node1", "keep.node1");
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let mut no_groups = record("n", "c");
        no_groups.ids.2.clear();
        no_groups.env.clear();
        assert_eq!(Record::decode(&no_groups.encode()), Some(no_groups));
        assert_eq!(Record::decode(b"something else\0"), None);
        assert_eq!(Record::decode(b""), None);
    }

    #[test]
    fn records_are_found_by_job_and_host() {
        let dir = std::env::temp_dir().join(format!("berth-spank-records-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (job, host, c) in [
            (7, "node1", "a.node1"),
            (7, "node1", "b.node1"),
            (7, "node1.x", "a.node1.x"),
            (7, "node2", "a.node2"),
            (70, "node1", "a.node1"),
        ] {
            save(&dir, job, &record(host, c)).unwrap();
        }
        // Saving again replaces.
        save(&dir, 7, &record("node1", "a.node1")).unwrap();
        std::fs::write(dir.join("7.node1.junk"), b"not a record").unwrap();
        let names: Vec<String> = of_job(&dir, 7, "node1")
            .into_iter()
            .map(|(_, r)| r.container)
            .collect();
        assert_eq!(names, ["a.node1", "b.node1"]);
        assert!(of_job(&dir, 8, "node1").is_empty());
        assert!(of_job(&dir.join("missing"), 7, "node1").is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
