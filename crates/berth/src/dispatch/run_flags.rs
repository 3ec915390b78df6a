//! The mount, size and namespace flags of `run`/`create` (`-v`, `--mount`, `--device`,
//! `--memory`, `--ipc`, `--pid`, `--add-host`, `--dns`, ...) parsed into mount specs, numbers
//! and modes, each refusal naming the flag and its value.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_cli::{LimitArgs, RunArgs};
use berth_oci::{IpcMode, MountKind, MountSpec};
use berth_store::Store;

/// `-v SRC:DST[:ro|rw]`: SRC is a host path when it has a `/`, else a named volume.
pub(super) fn parse_volume(store: &Store, v: &str, volumes: &mut Vec<String>) -> Result<MountSpec> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [dst] => (None, *dst, ""),
        [src, dst] => (Some(*src), *dst, ""),
        [src, dst, opts] => (Some(*src), *dst, *opts),
        _ => bail!("invalid volume specification {v:?}: expected SRC:DST[:OPTIONS]"),
    };
    if !dst.starts_with('/') {
        bail!("invalid volume specification {v:?}: the destination must be an absolute path");
    }
    let mut readonly = false;
    let mut options = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "readonly" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" => {}
            o => options.push(o.to_string()),
        }
    }
    let source = match src {
        Some(s) if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') => {
            let p = if let Some(rest) = s.strip_prefix('~') {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest.trim_start_matches('/'))
            } else {
                PathBuf::from(s)
            };
            let p = p
                .canonicalize()
                .with_context(|| format!("invalid volume specification {v:?}: {s}"))?;
            p.display().to_string()
        }
        Some(name) => {
            volumes.push(name.to_string());
            store.create_volume(name)?.display().to_string()
        }
        None => bail!("invalid volume specification {v:?}: anonymous volumes are not supported; name one (NAME:{dst})"),
    };
    Ok(MountSpec {
        kind: MountKind::Bind,
        source,
        target: dst.to_string(),
        readonly,
        options,
    })
}

/// `--device HOST[:CONTAINER[:PERMS]]`: a user namespace may not create device nodes, so the
/// host's node is bind-mounted; without `w` in PERMS it is read-only.
pub(super) fn parse_device(d: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = d.split(':').collect();
    let (host, target, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if c.chars().all(|x| "rwm".contains(x)) => (*h, *h, *c),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => bail!("invalid --device {d:?}: expected HOST[:CONTAINER[:PERMS]]"),
    };
    use std::os::unix::fs::FileTypeExt;
    let m = fs::metadata(host).with_context(|| format!("invalid --device {d:?}: {host}"))?;
    if !(m.file_type().is_char_device() || m.file_type().is_block_device()) {
        bail!("invalid --device {d:?}: {host} is not a device node");
    }
    if !target.starts_with('/') {
        bail!("invalid --device {d:?}: the container path must be absolute");
    }
    Ok(MountSpec {
        kind: MountKind::Bind,
        source: host.to_string(),
        target: target.to_string(),
        readonly: !perms.contains('w'),
        options: Vec::new(),
    })
}

/// `--mount type=bind,source=/a,target=/b,readonly`.
pub(super) fn parse_mount(store: &Store, m: &str, volumes: &mut Vec<String>) -> Result<MountSpec> {
    let mut kind = "volume";
    let (mut source, mut target, mut readonly) = (None, None, false);
    let mut options = Vec::new();
    for kv in m.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => kind = v,
            "source" | "src" => source = Some(v.to_string()),
            "target" | "destination" | "dst" => target = Some(v.to_string()),
            "readonly" | "ro" => readonly = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" => options.push(format!("size={v}")),
            "tmpfs-mode" => options.push(format!("mode={v}")),
            "bind-propagation" | "consistency" => {}
            other => bail!("invalid --mount {m:?}: unknown key {other:?}"),
        }
    }
    let target = target.with_context(|| format!("invalid --mount {m:?}: target is required"))?;
    match kind {
        "bind" => {
            let src =
                source.with_context(|| format!("invalid --mount {m:?}: source is required"))?;
            let p = Path::new(&src).canonicalize().with_context(|| {
                format!("invalid --mount {m:?}: bind source path does not exist: {src}")
            })?;
            Ok(MountSpec {
                kind: MountKind::Bind,
                source: p.display().to_string(),
                target,
                readonly,
                options,
            })
        }
        "volume" => {
            let name = source.with_context(|| {
                format!("invalid --mount {m:?}: anonymous volumes are not supported")
            })?;
            volumes.push(name.clone());
            let p = store.create_volume(&name)?;
            Ok(MountSpec {
                kind: MountKind::Bind,
                source: p.display().to_string(),
                target,
                readonly,
                options,
            })
        }
        "tmpfs" => Ok(MountSpec {
            kind: MountKind::Tmpfs,
            source: "tmpfs".into(),
            target,
            readonly,
            options,
        }),
        other => bail!("invalid --mount {m:?}: unknown type {other:?}"),
    }
}

/// Berth is not setuid, so the kernel already stops a caller binding what they cannot read;
/// this check turns that into a clear message before anything is set up.
pub(super) fn check_readable(p: &Path) -> Result<()> {
    let r = if p.is_dir() {
        fs::read_dir(p).map(|_| ())
    } else {
        fs::File::open(p).map(|_| ())
    };
    r.with_context(|| format!("cannot mount {}: not readable by the caller", p.display()))
}

/// `--pid`, `--uts` and `--cgroupns`: `host` (`Some(true)`) or `private`.
pub fn parse_host_or_private(flag: &str, value: Option<&str>) -> Result<Option<bool>> {
    match value {
        None | Some("") => Ok(None),
        Some("host") => Ok(Some(true)),
        Some("private") => Ok(Some(false)),
        Some(other) => bail!("invalid --{flag} {other:?}: expected host or private"),
    }
}

/// `--ipc`: `private`, `shareable`, `host` or `none`. Docker's `container:NAME` is refused.
pub fn parse_ipc(value: Option<&str>) -> Result<Option<IpcMode>> {
    Ok(match value {
        None | Some("") => None,
        Some("private") => Some(IpcMode::Private),
        Some("shareable") => Some(IpcMode::Shareable),
        Some("host") => Some(IpcMode::Host),
        Some("none") => Some(IpcMode::None),
        Some(other) => bail!("invalid --ipc {other:?}: expected private, shareable, host or none"),
    })
}

/// `--add-host HOST:IP` (Docker's `HOST=IP` too) as the `/etc/hosts` line `IP\tHOST`.
pub fn parse_add_host(value: &str) -> Result<String> {
    let (host, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .filter(|(h, ip)| !h.is_empty() && !ip.is_empty())
        .ok_or_else(|| anyhow::anyhow!("invalid --add-host {value:?}: expected HOST:IP"))?;
    // An IPv6 address after the first colon keeps its own colons (`host:::1` is `::1`).
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid --add-host {value:?}: {ip:?} is not an IP address");
    }
    Ok(format!("{ip}\t{host}"))
}

/// `/etc/resolv.conf`: the host's, or, given `--dns`, `--dns-search` or `--dns-option`, the
/// file Docker writes then: the search domains, the name servers and the options, each the
/// flag's where given and the host's otherwise.
pub fn resolv_conf(host: &str, dns: &[String], search: &[String], options: &[String]) -> String {
    if dns.is_empty() && search.is_empty() && options.is_empty() {
        return host.to_string();
    }
    let host_values = |keys: &[&str]| -> Vec<String> {
        host.lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                keys.contains(&words.next()?)
                    .then(|| words.collect::<Vec<_>>().join(" "))
            })
            .filter(|v| !v.is_empty())
            .collect()
    };
    let pick = |given: &[String], keys: &[&str]| {
        if given.is_empty() {
            host_values(keys)
        } else {
            given.to_vec()
        }
    };
    let mut out = String::new();
    let search = pick(search, &["search", "domain"]);
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for d in pick(dns, &["nameserver"]) {
        out.push_str(&format!("nameserver {d}\n"));
    }
    let options = pick(options, &["options"]);
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// `--sysctl KEY=VALUE`, as Docker allows them: only parameters that belong to a namespace the
/// container has of its own (`net.*` with its own network, the ipc ones with its own ipc).
pub fn parse_sysctls(
    list: &[String],
    own_net: bool,
    own_ipc: bool,
) -> Result<std::collections::HashMap<String, String>> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let mut out = std::collections::HashMap::new();
    for item in list {
        let Some((key, value)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            bail!("invalid --sysctl {item:?}: expected KEY=VALUE");
        };
        let words_only = !key.contains('/') && key.split('.').all(|w| !w.is_empty());
        let ipc = IPC.contains(&key) || key.starts_with("fs.mqueue.");
        let net = key.starts_with("net.");
        if !words_only || !(ipc || net) {
            bail!(
                "invalid --sysctl {item:?}: not a namespaced parameter (net.*, fs.mqueue.*, \
                 kernel.shm*, kernel.msg*, kernel.sem)"
            );
        }
        if net && !own_net {
            bail!("invalid --sysctl {item:?}: the container shares the host's network");
        }
        if ipc && !own_ipc {
            bail!("invalid --sysctl {item:?}: the container shares the host's ipc namespace");
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// `--restart` and `-p`, which need what Berth does not have: a daemon to restart containers,
/// and a network between host and container. Refused in one line saying what to use instead,
/// except where Docker itself only warns (`-p` with `--network host`, `--restart no`).
pub fn daemon_flags(
    spec: &oci_spec::runtime::Spec,
    a: &RunArgs,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let host_net = !made_namespaces(spec).contains(&oci_spec::runtime::LinuxNamespaceType::Network);
    match a.restart.as_deref() {
        None | Some("no") => {}
        Some(policy) => bail!(
            "--restart {policy}: no daemon restarts Berth's containers; only \"no\" is accepted \
             (a batch system requeues jobs, a shell loop reruns a container)"
        ),
    }
    if !a.disable_content_trust {
        bail!(
            "--disable-content-trust=false: Berth checks images by digest and has no signature \
             server to ask; leave it out"
        );
    }
    if a.publish_all && !host_net {
        bail!(
            "-P: the container's network is its own loopback only, with nothing to publish \
             through; use --network host, where its ports are the host's"
        );
    }
    if let Some(p) = a.publish.first() {
        if !host_net {
            bail!(
                "-p {p}: the container's network is its own loopback only, with nothing to \
                 publish through; use --network host, where its ports are the host's"
            );
        }
        warnings.push("Published ports are discarded when using host network mode".into());
    }
    Ok(())
}

/// `--cpus`, or `--cpu-quota` over `--cpu-period` (Docker's older spelling of the same limit).
pub fn cpus(a: &LimitArgs) -> Result<Option<f64>> {
    let quota = a.cpu_quota.filter(|q| *q > 0);
    if a.cpus.is_some() && (quota.is_some() || a.cpu_period.is_some()) {
        bail!("conflicting options: --cpus and --cpu-period/--cpu-quota cannot both be set");
    }
    let period = a.cpu_period.unwrap_or(100_000);
    if !(1_000..=1_000_000).contains(&period) {
        bail!("invalid --cpu-period {period}: it must be between 1000 and 1000000 microseconds");
    }
    if let Some(q) = quota.filter(|q| *q < 1_000) {
        bail!("invalid --cpu-quota {q}: it must be at least 1000 microseconds");
    }
    Ok(a.cpus.or(quota.map(|q| q as f64 / period as f64)))
}

/// The labels of `--label-file` (lines `KEY=VALUE`; blank and `#` lines skipped) and then of
/// `--label`, which win.
/// The streams a container is attached to (`-a`, `-i`, `-d`), as Docker records them in
/// `Config`: stdin, stdout, stderr.
pub fn attached(a: &RunArgs) -> Result<(bool, bool, bool)> {
    if a.detach {
        if !a.attach.is_empty() {
            // Docker's client refuses this before any work, with its plain failure code.
            return Err(super::start::StartFailed {
                code: 1,
                message: "Conflicting options: -a and -d".into(),
            }
            .into());
        }
        return Ok((false, false, false));
    }
    let named = |s: &str| a.attach.iter().any(|x| x == s);
    let all = a.attach.is_empty();
    Ok((
        a.interactive || named("stdin"),
        all || named("stdout"),
        all || named("stderr"),
    ))
}

pub fn labels(a: &RunArgs) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut add = |item: &str| {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        out.insert(k.to_string(), v.to_string());
    };
    for file in &a.label_file {
        let text = fs::read_to_string(file)
            .with_context(|| format!("cannot read --label-file {}", file.display()))?;
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                add(line);
            }
        }
    }
    for l in &a.label {
        add(l);
    }
    Ok(out)
}

/// `--sysctl`, `--domainname`, `--oom-score-adj` and `--annotation` into the spec, checked
/// against the namespaces it makes.
pub fn spec_extras(spec: &mut oci_spec::runtime::Spec, a: &RunArgs) -> Result<()> {
    if let Some(adj) = a.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            bail!("invalid --oom-score-adj {adj}: it must be between -1000 and 1000");
        }
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_oom_score_adj(Some(adj));
        spec.set_process(Some(process));
    }
    if !a.annotation.is_empty() {
        let mut annotations = spec.annotations().clone().unwrap_or_default();
        for item in &a.annotation {
            let Some((k, v)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                bail!("invalid --annotation {item:?}: expected KEY=VALUE");
            };
            annotations.insert(k.to_string(), v.to_string());
        }
        spec.set_annotations(Some(annotations));
    }
    use oci_spec::runtime::LinuxNamespaceType as Ns;
    let made = made_namespaces(spec);
    let mut linux = spec.linux().clone().unwrap_or_default();
    if let Some(name) = a.domainname.as_deref().filter(|n| !n.is_empty()) {
        if !made.contains(&Ns::Uts) {
            bail!("--domainname {name}: the container shares the host's hostname (give it one with -h, or leave out --uts=host and --network host)");
        }
        spec.set_domainname(Some(name.to_string()));
    }
    if !a.sysctl.is_empty() {
        let own = |n: Ns| made.contains(&n);
        linux.set_sysctl(Some(parse_sysctls(
            &a.sysctl,
            own(Ns::Network),
            own(Ns::Ipc),
        )?));
        spec.set_linux(Some(linux));
    }
    Ok(())
}

/// `HostConfig` fields of `inspect` for the namespace, name-service and limit flags, with
/// Docker's names and defaults.
pub fn host_config_extras(
    a: &RunArgs,
    shm_size: Option<u64>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::{json, Value};
    let list = |v: &[String]| -> Value {
        if v.is_empty() {
            Value::Null
        } else {
            json!(v)
        }
    };
    let kv = |v: &[String]| -> Value {
        if v.is_empty() {
            return Value::Null;
        }
        v.iter()
            .map(|i| i.split_once('=').unwrap_or((i, "")))
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let mode = |v: &Option<String>| json!(v.clone().unwrap_or_default());
    let entries = [
        (
            "IpcMode",
            json!(a.ipc.clone().unwrap_or_else(|| "private".into())),
        ),
        ("PidMode", mode(&a.pid)),
        ("UTSMode", mode(&a.uts)),
        ("ShmSize", json!(shm_size.unwrap_or(64 << 20))),
        ("ExtraHosts", list(&a.add_host)),
        ("Dns", json!(a.dns)),
        ("DnsSearch", json!(a.dns_search)),
        ("DnsOptions", json!(a.dns_option)),
        ("GroupAdd", list(&a.group_add)),
        ("Sysctls", kv(&a.sysctl)),
        ("Annotations", kv(&a.annotation)),
        ("OomScoreAdj", json!(a.oom_score_adj.unwrap_or(0))),
        ("CpuQuota", json!(a.limits.cpu_quota.unwrap_or(0))),
        ("CpuPeriod", json!(a.limits.cpu_period.unwrap_or(0))),
        ("PublishAllPorts", json!(a.publish_all)),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// `Config.ExposedPorts`: the image's, and those of `--expose` (`80`, `53/udp`, `8000-8002`),
/// as `PORT/PROTO` keys; `null` when there are none, as Docker shows it.
pub fn exposed_ports(image: &serde_json::Value, expose: &[String]) -> Result<serde_json::Value> {
    let mut ports = image.as_object().cloned().unwrap_or_default();
    for item in expose {
        let (range, proto) = item.split_once('/').unwrap_or((item, "tcp"));
        let bad = || anyhow::anyhow!("invalid --expose {item:?}: expected PORT[-PORT][/PROTO]");
        if !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(bad());
        }
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let (lo, hi): (u16, u16) = (
            lo.parse().map_err(|_| bad())?,
            hi.parse().map_err(|_| bad())?,
        );
        if lo > hi {
            return Err(bad());
        }
        for port in lo..=hi {
            ports.insert(format!("{port}/{proto}"), serde_json::json!({}));
        }
    }
    Ok(if ports.is_empty() {
        serde_json::Value::Null
    } else {
        ports.into()
    })
}

/// The namespaces the spec has the container make (not join).
fn made_namespaces(spec: &oci_spec::runtime::Spec) -> Vec<oci_spec::runtime::LinuxNamespaceType> {
    let linux = spec.linux().as_ref();
    linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter(|n| n.path().is_none())
        .map(|n| n.typ())
        .collect()
}

/// The variables of `--env-file` files, in order, with Docker's rules (a bare `KEY` takes this
/// process's value).
pub fn read_env_files(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for f in files {
        let text = fs::read_to_string(f)
            .with_context(|| format!("cannot read env file {}", f.display()))?;
        let lookup = |k: &str| std::env::var(k).ok();
        env.extend(berth_oci::parse_env_file(
            &text,
            &f.display().to_string(),
            &lookup,
        )?);
    }
    Ok(env)
}

/// `512m`, `2g`, `1024` → bytes.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resolv_conf_replaces_what_the_flags_give() {
        let host =
            "# made by hand\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch lab\noptions edns0\n";
        assert_eq!(resolv_conf(host, &[], &[], &[]), host);
        assert_eq!(
            resolv_conf(host, &v(&["9.9.9.9"]), &[], &[]),
            "search lab\nnameserver 9.9.9.9\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf(host, &[], &v(&["a.org", "b.org"]), &v(&["ndots:2"])),
            "search a.org b.org\nnameserver 10.0.0.1\nnameserver 10.0.0.2\noptions ndots:2\n"
        );
    }

    #[test]
    fn add_host_forms() {
        assert_eq!(parse_add_host("db:10.0.0.5").unwrap(), "10.0.0.5\tdb");
        assert_eq!(parse_add_host("db=10.0.0.5").unwrap(), "10.0.0.5\tdb");
        assert_eq!(parse_add_host("six:::1").unwrap(), "::1\tsix");
        assert_eq!(parse_add_host("six:[fe80::1]").unwrap(), "fe80::1\tsix");
        assert!(parse_add_host("db").is_err());
        assert!(parse_add_host(":10.0.0.5").is_err());
        assert!(parse_add_host("db:nope").is_err());
    }
}
