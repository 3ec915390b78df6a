//! `berth build` with `RUN --mount`: caches kept across builds, bind sources from the context
//! and from stages, secrets that never reach the image or the cache key.

use crate::common::Berth;

fn ctx(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    d
}

fn build(b: &Berth, args: &[&str]) -> String {
    let out = b.cmd().arg("build").args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    err
}

/// Whether `path` exists in `image`.
fn exists(b: &Berth, image: &str, path: &str) -> bool {
    b.run(&["run", "--rm", image, "ls", "-d", path])
        .status
        .success()
}

#[test]
fn cache_mounts_persist_across_builds_and_stay_out_of_the_layer() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    // Each build appends to the cache and records what it saw there.
    let df = |tag: &str| {
        format!(
            "FROM localhost/bb\n\
             RUN --mount=type=cache,target=/var/cache/app,id=app \
             echo {tag} >> /var/cache/app/log && cat /var/cache/app/log > /seen\n\
             RUN --mount=type=cache,target=/cache2,sharing=locked touch /cache2/x && echo ok > /ok\n\
             RUN --mount=type=cache,target=/owned,uid=1000,gid=100,mode=0700,sharing=private \
             stat -c '%u:%g %a' /owned > /owner\n"
        )
    };
    let one = ctx(&[("Dockerfile", &df("one"))]);
    build(&b, &["-t", "c1", one.path().to_str().unwrap()]);
    assert_eq!(b.ok(&["run", "--rm", "c1", "cat", "/seen"]), "one\n");
    assert!(!exists(&b, "c1", "/var/cache/app/log"));
    // A mount point the stage did not have leaves nothing behind.
    assert!(!exists(&b, "c1", "/cache2"));
    assert_eq!(b.ok(&["run", "--rm", "c1", "cat", "/ok"]), "ok\n");
    // As root the container's ids are the host's: uid= and gid= apply (tests run as root).
    assert_eq!(
        b.ok(&["run", "--rm", "c1", "cat", "/owner"]),
        "1000:100 700\n"
    );

    // Another Dockerfile with the same cache id sees the first build's files.
    let two = ctx(&[("Dockerfile", &df("two"))]);
    build(&b, &["-t", "c2", two.path().to_str().unwrap()]);
    assert_eq!(b.ok(&["run", "--rm", "c2", "cat", "/seen"]), "one\ntwo\n");

    // `builder prune --all` empties the caches too.
    b.ok(&["builder", "prune", "--all", "--force"]);
    let three = ctx(&[("Dockerfile", &df("three"))]);
    build(&b, &["-t", "c3", three.path().to_str().unwrap()]);
    assert_eq!(b.ok(&["run", "--rm", "c3", "cat", "/seen"]), "three\n");
}

#[test]
fn bind_mounts_read_the_context_and_stages_without_copying_them() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let df = "FROM localhost/bb AS tools\n\
              RUN mkdir /out && echo from-stage > /out/tool\n\
              FROM localhost/bb\n\
              RUN --mount=type=bind,target=/src cat /src/data.txt > /copied && ls /src > /listing\n\
              RUN --mount=type=bind,from=tools,source=/out,target=/t cat /t/tool > /tool\n\
              RUN --mount=type=bind,source=data.txt,target=/d.txt cat /d.txt > /single\n\
              RUN --mount=type=bind,target=/src sh -c 'echo x > /src/new' 2> /ro || true\n\
              RUN --mount=type=bind,target=/src,rw echo changed > /src/data.txt && cat /src/data.txt > /rw\n";
    let c = ctx(&[
        ("Dockerfile", df),
        ("data.txt", "v1\n"),
        ("skip.log", "no\n"),
        (".dockerignore", "*.log\n"),
    ]);
    let dir = c.path().to_str().unwrap();
    build(&b, &["-t", "bm", dir]);
    let cat = |f: &str| b.ok(&["run", "--rm", "bm", "cat", f]);
    assert_eq!(cat("/copied"), "v1\n");
    assert!(!cat("/listing").contains("skip.log"), "{}", cat("/listing"));
    assert_eq!(cat("/tool"), "from-stage\n");
    assert_eq!(cat("/single"), "v1\n");
    assert!(cat("/ro").contains("Read-only"), "{}", cat("/ro"));
    assert_eq!(cat("/rw"), "changed\n");
    // Writes through a read-write bind are thrown away, and nothing of the mount stays.
    assert_eq!(
        std::fs::read_to_string(c.path().join("data.txt")).unwrap(),
        "v1\n"
    );
    assert!(!exists(&b, "bm", "/src"));
    assert!(!exists(&b, "bm", "/d.txt"));

    // The bound files are part of the cache key: a change reruns the step.
    let err = build(&b, &["-t", "bm", dir]);
    assert!(!err.contains("#4 RUN"), "{err}");
    std::fs::write(c.path().join("data.txt"), "v2\n").unwrap();
    let err = build(&b, &["-t", "bm", dir]);
    assert!(err.contains("#4 RUN"), "{err}");
    assert_eq!(cat("/copied"), "v2\n");
}

#[test]
fn secrets_are_mounted_but_never_kept() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let df = "FROM localhost/bb\n\
              RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /len\n\
              RUN --mount=type=secret,id=tok,target=/etc/tok,required test -s /etc/tok && echo seen > /seen\n\
              RUN --mount=type=secret,id=tok,env=TOKEN sh -c 'echo ${#TOKEN} > /env'\n\
              RUN --mount=type=secret,id=absent ls /run/secrets/absent 2> /absent || true\n";
    let c = ctx(&[("Dockerfile", df)]);
    let secrets = tempfile::tempdir().unwrap();
    let tok = secrets.path().join("tok.txt");
    std::fs::write(&tok, "s3cr3t").unwrap();
    let dir = c.path().to_str().unwrap();
    let secret = format!("id=tok,src={}", tok.display());
    build(&b, &["-t", "sec", "--secret", &secret, dir]);
    let cat = |f: &str| b.ok(&["run", "--rm", "sec", "cat", f]);
    assert_eq!(cat("/len").trim(), "6");
    assert_eq!(cat("/seen"), "seen\n");
    assert_eq!(cat("/env"), "6\n");
    assert!(!exists(&b, "sec", "/run/secrets/tok"));
    assert!(!exists(&b, "sec", "/etc/tok"));
    assert!(
        cat("/absent").contains("No such file"),
        "{}",
        cat("/absent")
    );

    // Nothing of the secret is in the stored blobs.
    for f in crate::common::files_under(&b.root()) {
        let f = b.root().join(f);
        if f.is_file() {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(
                !bytes.windows(6).any(|w| w == b"s3cr3t"),
                "secret found in {}",
                f.display()
            );
        }
    }

    // From the environment: env=VAR, or the variable named as the id.
    let c3 = ctx(&[(
        "Dockerfile",
        "FROM localhost/bb\nRUN --mount=type=secret,id=ENVTOK wc -c < /run/secrets/ENVTOK > /n\n",
    )]);
    let out = b
        .cmd()
        .args([
            "build",
            "-t",
            "envsec",
            "--secret",
            "id=ENVTOK,env=MY_TOKEN",
        ])
        .arg(c3.path())
        .env("MY_TOKEN", "12345")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.ok(&["run", "--rm", "envsec", "cat", "/n"]).trim(), "5");
    let out = b
        .cmd()
        .args([
            "build",
            "--no-cache",
            "-t",
            "envsec",
            "--secret",
            "id=ENVTOK",
        ])
        .arg(c3.path())
        .env("ENVTOK", "1234567")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.ok(&["run", "--rm", "envsec", "cat", "/n"]).trim(), "7");

    // A changed secret does not invalidate the cache.
    std::fs::write(&tok, "other!").unwrap();
    let err = build(&b, &["-t", "sec", "--secret", &secret, dir]);
    assert!(!err.contains("#2 RUN"), "{err}");

    // A required secret that is not given fails the build with exit 1.
    let c2 = ctx(&[(
        "Dockerfile",
        "FROM localhost/bb\nRUN --mount=type=secret,id=need,required true\n",
    )]);
    let err = b.fails(&["build", c2.path().to_str().unwrap()], 1);
    assert!(
        err.contains("Dockerfile:2:1") && err.contains("secret need"),
        "{err}"
    );
}
