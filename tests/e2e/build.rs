//! `berth build` on real Dockerfiles over the busybox fixture image.

use std::time::Instant;

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

const TWO_STAGES: &str = "FROM localhost/bb AS one
ARG WHO=nobody
RUN mkdir -p /out && echo hello > /out/greeting && echo $WHO > /out/who && rm /bin/vi
COPY . /ctx/
FROM localhost/bb
COPY --from=0 /out/greeting /greeting
COPY --from=one /out/who /who
COPY --from=one /ctx /ctx
ENV A=1 B=two
WORKDIR /app
LABEL org.example=yes
ENTRYPOINT [\"cat\"]
CMD [\"/greeting\"]
";

#[test]
fn two_stage_build_runs_and_caches() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[
        ("Dockerfile", TWO_STAGES),
        ("keep.txt", "kept\n"),
        ("skip.log", "no\n"),
        (".dockerignore", "*.log\n"),
    ]);
    let dir = c.path().to_str().unwrap();
    let t = Instant::now();
    b.ok(&["build", "-t", "img:1", "--build-arg", "WHO=alice", dir]);
    eprintln!("cold build: {:?}", t.elapsed());
    assert_eq!(b.ok(&["run", "--rm", "img:1"]), "hello\n");
    assert_eq!(b.ok(&["run", "--rm", "img:1", "/who"]), "alice\n");
    assert_eq!(b.ok(&["run", "--rm", "img:1", "/ctx/keep.txt"]), "kept\n");
    let ls = b.run(&["run", "--rm", "--entrypoint", "ls", "img:1", "/ctx"]);
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("skip.log"));
    let v = b.inspect("img:1");
    let cfg = &v["Config"];
    assert_eq!(cfg["WorkingDir"], "/app", "{v}");
    assert_eq!(cfg["Entrypoint"][0], "cat");
    assert_eq!(cfg["Cmd"][0], "/greeting");
    assert_eq!(cfg["Labels"]["org.example"], "yes");
    assert!(cfg["Env"].to_string().contains("B=two"), "{v}");

    // A whiteout: the file the RUN deleted is gone from stage one.
    b.ok(&["build", "-q", "--target", "one", "-t", "one", dir]);
    let out = b.run(&["run", "--rm", "one", "ls", "/bin/vi"]);
    assert!(!out.status.success());

    let t = Instant::now();
    let out = b
        .cmd()
        .args(["build", "-t", "img:2", "--build-arg", "WHO=alice", dir])
        .output()
        .unwrap();
    let took = t.elapsed();
    eprintln!("cached build: {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("#3 RUN"), "{err}");
    assert!(err.contains("CACHED"), "{err}");
    assert_eq!(b.inspect("img:1")["Id"], b.inspect("img:2")["Id"]);
}

#[test]
fn failures_exit_1_without_an_image() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[("Dockerfile", "FROM localhost/bb\nRUN echo boom && exit 3\n")]);
    let err = b.fails(&["build", "-t", "bad", c.path().to_str().unwrap()], 1);
    assert!(
        err.contains("RUN echo boom && exit 3") && err.contains("exit code 3"),
        "{err}"
    );
    assert!(err.contains("boom"), "{err}");
    assert!(b.run(&["image", "inspect", "bad"]).status.code() != Some(0));
    let c = ctx(&[("Dockerfile", "FROM localhost/bb\nFROB x\n")]);
    let err = b.fails(&["build", "-t", "bad", c.path().to_str().unwrap()], 1);
    assert!(err.contains("Dockerfile:2:1"), "{err}");
}
