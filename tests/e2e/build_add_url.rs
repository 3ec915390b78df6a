//! `ADD` of `http://` sources, served by a small HTTP/1.1 server inside the test: where
//! downloads land, their modes, owners and times, `--checksum`, failures, and the step cache.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::Berth;

/// `Last-Modified` of every file served, and the same instant in seconds since the epoch.
const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const LAST_MODIFIED_SECS: u64 = 784111777;

/// Serves `files` by path with `Content-Length` and `Last-Modified`; `/redirect` sends to
/// `/data/hello.txt`, `/broken` answers 500 and anything else 404. Every request is counted.
struct Server {
    addr: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn start(files: &[(&str, &[u8])]) -> Server {
        let files: HashMap<String, Vec<u8>> = files
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect();
        let files = Arc::new(Mutex::new(files));
        let hits = Arc::new(AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (f, h) = (files.clone(), hits.clone());
        // Left running: it dies with the test process, and holds nothing but its socket.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req);
                let target = text.split_whitespace().nth(1).unwrap_or("");
                let path = target.split('?').next().unwrap_or("").to_string();
                let body = f.lock().unwrap().get(&path).cloned();
                let (status, extra, body) = match (path.as_str(), body) {
                    ("/redirect", _) => ("302 Found", "Location: /data/hello.txt\r\n", vec![]),
                    ("/broken", _) => ("500 Internal Server Error", "", b"oops".to_vec()),
                    (_, Some(b)) => ("200 OK", "", b),
                    _ => ("404 Not Found", "", b"no such file".to_vec()),
                };
                let lm = if status.starts_with("200") {
                    format!("Last-Modified: {LAST_MODIFIED}\r\n")
                } else {
                    String::new()
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{lm}{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(head.as_bytes());
                let _ = c.write_all(&body);
            }
        });
        Server { addr, files, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn sha256(data: &[u8]) -> String {
    berth_types::Digest::sha256_of(data).to_string()
}

/// Writes a context with `Dockerfile` and `files`; runs `berth build -t tag` in it. Returns
/// whether it succeeded, and stdout and stderr together.
fn build(b: &Berth, tag: &str, dockerfile: &str, files: &[(&str, &str)]) -> (bool, String) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    let out = b.run(&["build", "-t", tag, d.path().to_str().unwrap()]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), all)
}

/// One file of an image as its layers record it.
#[derive(Debug, Clone)]
struct Entry {
    mode: u32,
    owner: (u64, u64),
    mtime: u64,
    data: Vec<u8>,
    is_file: bool,
}

/// The entries of all layers of `image` by path, upper layers winning, read from `berth save`.
fn image_files(b: &Berth, image: &str) -> BTreeMap<String, Entry> {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("img.tar");
    b.ok(&["save", "-o", tar.to_str().unwrap(), image]);
    archive_files(&std::fs::read(&tar).unwrap())
}

/// The same for a `docker save` archive (either engine's), whose layers are plain tars.
fn archive_files(archive: &[u8]) -> BTreeMap<String, Entry> {
    let mut members: HashMap<String, Vec<u8>> = HashMap::new();
    let mut ar = tar::Archive::new(archive);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        members.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
    let mut out = BTreeMap::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let mut ar = tar::Archive::new(&members[layer.as_str().unwrap()][..]);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(
                format!("/{}", name.trim_start_matches("./")),
                Entry {
                    mode: h.mode().unwrap(),
                    owner: (h.uid().unwrap(), h.gid().unwrap()),
                    mtime: h.mtime().unwrap(),
                    data,
                    is_file: h.entry_type().is_file(),
                },
            );
        }
    }
    out
}

/// The line of the build's output that carries its error.
fn error_line(out: &str) -> &str {
    let errs: Vec<&str> = out.lines().filter(|l| l.starts_with("berth: ")).collect();
    assert_eq!(errs.len(), 1, "one error line expected:\n{out}");
    errs[0]
}

#[test]
fn add_url_names_modes_times_and_checksums() {
    let hello = b"hello over http\n";
    let tgz = b"\x1f\x8b\x08\x00not really a tarball";
    let srv = Server::start(&[("/data/hello.txt", hello), ("/data/app.tar.gz", tgz)]);
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let hello_url = srv.url("/data/hello.txt");
    let df = format!(
        "FROM localhost/bb
ADD {hello_url} /hello
ADD {hello_url}?v=1#frag /dir/
ADD --chmod=644 --chown=7:8 {hello_url} /chmod.txt
ADD {redirect} /redirected
ADD {tgz_url} /archives/
ADD {hello_url} local.txt /mixed
ADD --checksum={sum} {hello_url} /summed
",
        redirect = srv.url("/redirect"),
        tgz_url = srv.url("/data/app.tar.gz"),
        sum = sha256(hello),
    );
    let (ok, out) = build(&b, "urls", &df, &[("local.txt", "local\n")]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("downloading {hello_url}")), "{out}");
    let files = image_files(&b, "urls");
    let downloaded = |path: &str, mode: u32, owner: (u64, u64), data: &[u8]| {
        let e = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing: {files:?}"));
        assert!(e.is_file, "{path}: {e:?}");
        assert_eq!(e.data, data, "{path}");
        assert_eq!((e.mode & 0o7777, e.owner), (mode, owner), "{path}");
        assert_eq!(
            e.mtime, LAST_MODIFIED_SECS,
            "{path}: mtime from Last-Modified"
        );
    };
    for path in [
        "/hello",
        "/dir/hello.txt",
        "/redirected",
        "/mixed/hello.txt",
        "/summed",
    ] {
        downloaded(path, 0o600, (0, 0), hello);
    }
    downloaded("/chmod.txt", 0o644, (7, 8), hello);
    // A remote archive is not unpacked.
    downloaded("/archives/app.tar.gz", 0o600, (0, 0), tgz);
    assert_eq!(files["/mixed/local.txt"].data, b"local\n");
    assert!(files["/dir"].mode & 0o7777 == 0o755 && !files["/dir"].is_file);
}

#[test]
fn add_url_failures_are_one_line_and_tag_nothing() {
    let hello = b"hello over http\n";
    let srv = Server::start(&[("/data/hello.txt", hello)]);
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let url = srv.url("/data/hello.txt");
    let wrong = sha256(b"something else");
    // A port that was just free, where nothing listens.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/f", l.local_addr().unwrap())
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("ADD --checksum={wrong} {url} /f"),
            vec![
                format!(
                    "checksum mismatch for {url}: expected {wrong}, got {}",
                    sha256(hello)
                ),
                "Dockerfile:2".into(),
            ],
        ),
        (
            format!("ADD {} /f", srv.url("/missing.txt")),
            vec![srv.url("/missing.txt"), "404".into()],
        ),
        (
            format!("ADD {} /f", srv.url("/broken")),
            vec![srv.url("/broken"), "500".into()],
        ),
        (
            format!("ADD {} /d/", srv.url("/")),
            vec!["no file name".into()],
        ),
        (
            format!("ADD --checksum={wrong} local.txt /f"),
            vec!["local.txt: --checksum applies to http:// and https:// sources only".into()],
        ),
        (
            format!("ADD --checksum=md5:abc {url} /f"),
            vec!["invalid --checksum=md5:abc".into()],
        ),
        (
            "ADD https://example.invalid/repo.git#main /src".into(),
            vec!["Git sources are not supported".into()],
        ),
        (
            format!("COPY {url} /f"),
            vec![format!("{url}: COPY cannot download a URL; use ADD")],
        ),
        (
            format!("ADD {closed} /f"),
            vec![format!("cannot download {closed}")],
        ),
        (
            "ADD git@example.invalid:repo /src".into(),
            vec!["Git sources are not supported".into()],
        ),
    ];
    for (i, (line, want)) in cases.iter().enumerate() {
        let tag = format!("bad{i}");
        let df = format!("FROM localhost/bb\n{line}\n");
        let (ok, out) = build(&b, &tag, &df, &[("local.txt", "local\n")]);
        assert!(!ok, "{line}: built\n{out}");
        let err = error_line(&out);
        for w in want {
            assert!(err.contains(w.as_str()), "{line}: {w:?} not in {err:?}");
        }
        assert!(
            !out.contains("panicked") && !out.contains("RUST_BACKTRACE"),
            "{out}"
        );
        assert!(
            !b.run(&["image", "inspect", &tag]).status.success(),
            "{line}: tagged anyway"
        );
    }
    // Downloads wait in the store's tmp/ until the layer is written; a failure leaves none.
    let leftovers: Vec<_> = std::fs::read_dir(b.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn add_url_cache_follows_checksum_or_content() {
    let srv = Server::start(&[("/a.txt", b"one\n"), ("/b.txt", b"first\n")]);
    let b = Berth::new();
    b.import_busybox("localhost/bb");

    // With --checksum the key is the checksum: a cached rebuild makes no request at all.
    let summed = format!(
        "FROM localhost/bb\nADD --checksum={} {} /a.txt\n",
        sha256(b"one\n"),
        srv.url("/a.txt")
    );
    let (ok, out) = build(&b, "summed", &summed, &[]);
    assert!(ok, "{out}");
    assert_eq!(srv.hits(), 1);
    let (ok, out) = build(&b, "summed", &summed, &[]);
    assert!(ok && out.contains("CACHED ADD"), "{out}");
    assert_eq!(
        srv.hits(),
        1,
        "a cached rebuild with --checksum downloaded:\n{out}"
    );

    // Without it the file is fetched each time, and new content makes a new layer.
    let plain = format!("FROM localhost/bb\nADD {} /b.txt\n", srv.url("/b.txt"));
    let (ok, out) = build(&b, "plain", &plain, &[]);
    assert!(ok && !out.contains("CACHED ADD"), "{out}");
    let (ok, out) = build(&b, "plain", &plain, &[]);
    assert!(ok && out.contains("CACHED ADD"), "{out}");
    assert_eq!(srv.hits(), 3);
    srv.files
        .lock()
        .unwrap()
        .insert("/b.txt".into(), b"second\n".to_vec());
    let (ok, out) = build(&b, "plain", &plain, &[]);
    assert!(
        ok && !out.contains("CACHED ADD"),
        "changed content was cached:\n{out}"
    );
    assert_eq!(image_files(&b, "plain")["/b.txt"].data, b"second\n");
}

/// The files Docker's legacy builder downloads for the same `ADD`s (it knows no `--checksum`
/// and no `--chmod`) carry the same mode, owner, time and content.
#[test]
fn add_url_files_match_docker() {
    let hello = b"hello over http\n";
    let srv = Server::start(&[("/data/hello.txt", hello)]);
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let Some(d) = crate::dockerd::Dockerd::start() else {
        return;
    };
    d.load_from(&b, "localhost/bb");
    let url = srv.url("/data/hello.txt");
    let ctx = tempfile::tempdir().unwrap();
    let df = format!(
        "FROM localhost/bb\nADD {url} /hello\nADD {url} /dir/\nADD {url} local.txt /mixed/\n"
    );
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    std::fs::write(ctx.path().join("local.txt"), "local\n").unwrap();
    let dir = ctx.path().to_str().unwrap();
    b.ok(&["build", "-q", "-t", "localhost/urls", dir]);
    let out = d
        .cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args([
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            "localhost/urls",
            dir,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = d.docker(&["save", "localhost/urls"]);
    assert!(saved.status.success(), "docker save");
    let theirs = archive_files(&saved.stdout);
    let ours = image_files(&b, "localhost/urls");
    for path in ["/hello", "/dir/hello.txt", "/mixed/hello.txt"] {
        let (o, t) = (&ours[path], &theirs[path]);
        assert_eq!(
            (o.mode & 0o7777, o.owner, o.mtime, &o.data),
            (t.mode & 0o7777, t.owner, t.mtime, &t.data),
            "{path}: berth {o:?}, docker {t:?}"
        );
    }
}

/// Without root and without subordinate ids, a 0600 download is still readable by `RUN` and
/// by the container, which are the caller in both cases.
#[test]
fn add_url_rootless_single_id() {
    use crate::rootless::AsUser;
    let hello = b"hello over http\n";
    let srv = Server::start(&[("/data/hello.txt", hello)]);
    let u = AsUser::new(berth_testkit::unprivileged_user_without_subids());
    u.ok(&["import", u.tar.to_str().unwrap(), "localhost/bb"]);
    let ctx = u.home.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let df = format!(
        "FROM localhost/bb\nADD --checksum={} {} /f\nRUN cat /f > /copy && stat -c %a /f > /mode\n",
        sha256(hello),
        srv.url("/data/hello.txt")
    );
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let owner = format!("{}:{}", u.user.uid, u.user.gid);
    let chown = std::process::Command::new("chown")
        .args(["-R", &owner])
        .arg(&ctx)
        .status()
        .unwrap();
    assert!(chown.success());
    u.ok(&["build", "-t", "urls", ctx.to_str().unwrap()]);
    let cat = |p: &str| u.ok(&["run", "--rm", "urls", "cat", p]);
    assert_eq!(cat("/f").as_bytes(), hello);
    assert_eq!(cat("/copy").as_bytes(), hello);
    assert_eq!(cat("/mode").trim(), "600");
}
