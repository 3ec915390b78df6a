//! `stats`: CPU, memory, network and block I/O of running containers, as `docker stats` shows
//! them, read from `/proc` without a daemon: CPU % is the container's CPU time between two
//! samples over the host's, times the number of CPUs (Docker's formula), so one busy thread
//! reads 100%.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use berth_store::{ContainerRecord, Store};
use serde_json::{json, Value};

use super::container::container_pids;
use crate::dispatch::host::effective_status;
use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

/// Between the two samples of `--no-stream`; a stream samples once a second, as Docker does.
const NO_STREAM_INTERVAL: Duration = Duration::from_millis(500);
const STREAM_INTERVAL: Duration = Duration::from_secs(1);

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
];

/// One container's counters at one instant.
#[derive(Clone, Copy, Default)]
struct Sample {
    /// CPU time of its processes, reaped children included, in clock ticks.
    cpu_ticks: u64,
    rss: u64,
    net: (u64, u64),
    block: (u64, u64),
    pids: usize,
}

pub fn stats(s: &Settings, a: &berth_cli::StatsArgs) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(false);
    let named: Vec<ContainerRecord> = a
        .containers
        .iter()
        .map(|n| store.lookup_container(n))
        .collect::<Result<_, _>>()?;
    // Docker's `Container` column: the name or id as given, else the short id.
    let given: Vec<(String, &str)> = named
        .iter()
        .zip(&a.containers)
        .map(|(r, n)| (r.id.clone(), n.as_str()))
        .collect();
    let mem_total = meminfo_total();
    // The host's CPUs, as the host's time counts them: this process's own affinity (a
    // Slurm step's few CPUs) would understate every container.
    let ncpus = host_cpus().max(1) as f64;
    let mut before = sample_all(&store, &named, a.all)?;
    let mut host_before = host_ticks();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        std::thread::sleep(if a.no_stream {
            NO_STREAM_INTERVAL
        } else {
            STREAM_INTERVAL
        });
        let now = sample_all(&store, &named, a.all)?;
        let host_now = host_ticks();
        let host_delta = host_now.saturating_sub(host_before) as f64;
        let rows: Vec<Value> = now
            .iter()
            .map(|(rec, cur)| {
                let prev = before
                    .iter()
                    .find(|(r, _)| r.id == rec.id)
                    .map_or(*cur, |(_, s)| *s);
                let cpu = cur.cpu_ticks.saturating_sub(prev.cpu_ticks) as f64;
                let cpu_perc = if host_delta > 0.0 {
                    cpu / host_delta * ncpus * 100.0
                } else {
                    0.0
                };
                let as_given = given.iter().find(|(id, _)| *id == rec.id).map(|g| g.1);
                let mut r = row(rec, as_given, cur, cpu_perc, mem_total);
                if a.no_trunc {
                    r["ID"] = rec.id.clone().into();
                }
                r
            })
            .collect();
        if !a.no_stream && tty {
            // Each frame replaces the last, as in `docker stats`.
            print!("\x1b[2J\x1b[H");
        }
        p.rows_headed(a.format.as_deref(), DEFAULT_FORMAT, &rows, HEADERS)?;
        std::io::stdout().flush()?;
        if a.no_stream {
            return Ok(0);
        }
        before = now;
        host_before = host_now;
    }
}

fn row(
    rec: &ContainerRecord,
    as_given: Option<&str>,
    cur: &Sample,
    cpu_perc: f64,
    mem_total: u64,
) -> Value {
    // A container that is not running has no limit in force (Docker shows 0B).
    let limit = match cur.pids {
        0 => 0,
        _ => rec.host_config["Memory"]
            .as_u64()
            .filter(|m| *m > 0)
            .unwrap_or(mem_total),
    };
    let mem_perc = if limit > 0 {
        cur.rss as f64 * 100.0 / limit as f64
    } else {
        0.0
    };
    json!({
        "ID": rec.id[..12],
        "Container": as_given.unwrap_or(&rec.id[..12]),
        "Name": rec.name,
        "CPUPerc": format!("{cpu_perc:.2}%"),
        "MemUsage": format!("{} / {}", humanize::binary_size(cur.rss), humanize::binary_size(limit)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", humanize::size(cur.net.0), humanize::size(cur.net.1)),
        "BlockIO": format!("{} / {}", humanize::size(cur.block.0), humanize::size(cur.block.1)),
        // A string, as Docker's json has it.
        "PIDs": cur.pids.to_string(),
    })
}

/// The named containers (any state), or every running one (every one with `all`), each with
/// its counters: zeros for a container that is not running, as Docker shows it.
fn sample_all(
    store: &Store,
    named: &[ContainerRecord],
    all: bool,
) -> Result<Vec<(ContainerRecord, Sample)>> {
    let (recs, all) = if named.is_empty() {
        (store.containers()?, all)
    } else {
        (named.to_vec(), true)
    };
    let mut out = Vec::new();
    for rec in recs {
        let st = store.container_state(&rec.id)?;
        if matches!(effective_status(&st).as_str(), "running" | "paused") {
            out.push((rec, sample(st.pid)));
        } else if all {
            out.push((rec, Sample::default()));
        }
    }
    Ok(out)
}

fn sample(pid: i32) -> Sample {
    let pids = container_pids(pid);
    let mut s = Sample {
        pids: pids.len(),
        net: network(pid),
        ..Default::default()
    };
    for p in &pids {
        s.cpu_ticks += cpu_ticks(*p);
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        s.rss += field(&status, "VmRSS:") * 1024;
        let io = std::fs::read_to_string(format!("/proc/{p}/io")).unwrap_or_default();
        s.block.0 += field(&io, "read_bytes:");
        s.block.1 += field(&io, "write_bytes:");
    }
    s
}

/// utime + stime + cutime + cstime of one process: a child's time moves to its parent's
/// c-fields when reaped, so the sum over the container's live processes keeps what its
/// finished processes used.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after it are plain numbers.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), utime 14 ... cstime 17.
    f.get(11..15)
        .map(|t| t.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0)
}

/// The host's CPU time, all CPUs and states, in clock ticks (the first line of /proc/stat).
/// The host's online CPUs, the `cpuN` lines of /proc/stat.
fn host_cpus() -> usize {
    std::fs::read_to_string("/proc/stat")
        .map(|s| {
            s.lines()
                .filter(|l| {
                    l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
                })
                .count()
        })
        .unwrap_or(1)
}

fn host_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum()
            })
        })
        .unwrap_or(0)
}

/// Bytes received and sent on the container's own network interfaces other than loopback
/// (none for `--network none` or the private loopback-only network; Docker shows 0B for
/// `--network host` too).
fn network(pid: i32) -> (u64, u64) {
    let ns = |p: &str| std::fs::read_link(p).ok();
    if ns(&format!("/proc/{pid}/ns/net")) == ns("/proc/self/ns/net") {
        return (0, 0);
    }
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let mut total = (0, 0);
    for line in dev.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let c: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if c.len() >= 9 {
            total.0 += c[0];
            total.1 += c[8];
        }
    }
    total
}

fn meminfo_total() -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    field(&m, "MemTotal:") * 1024
}

/// The number after `name` on its line of a `/proc` key-value file.
fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_proc_files() {
        let io = "rchar: 10\nread_bytes: 4096\nwrite_bytes: 8192\n";
        assert_eq!(field(io, "read_bytes:"), 4096);
        assert_eq!(field(io, "write_bytes:"), 8192);
        assert_eq!(field(io, "missing:"), 0);
        assert_eq!(field("VmRSS:\t  1234 kB\n", "VmRSS:"), 1234);
    }

    #[test]
    fn own_cpu_time_is_counted() {
        let me = std::process::id() as i32;
        let start = cpu_ticks(me);
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_ticks(me) > start);
        assert!(host_ticks() > 0);
        assert!(host_cpus() >= std::thread::available_parallelism().unwrap().get());
    }
}
