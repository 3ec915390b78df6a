//! `berth build` compared with Docker's legacy builder (`DOCKER_BUILDKIT=0 docker build` against
//! Debian's `dockerd`): the same Dockerfiles over the same busybox base must give the same image
//! configuration and, loosely, the same history. Docker's images then go through `docker save`
//! and `berth load` unchanged.

use serde_json::{json, Map, Value};

use crate::common::Berth;
use crate::dockerd::Dockerd;

/// Name, Dockerfile and build arguments. Images are tagged `localhost/NAME` in both engines, so
/// a later case may build on an earlier one.
const CASES: &[(&str, &str, &[&str])] = &[
    (
        "meta",
        r#"FROM localhost/bb
ENV A=1 B="two words"
ENV C $A-x
ENV A=3
ENV PATH=/opt/bin:$PATH D=/data
WORKDIR $D/x
LABEL org.example.a=1 "org.example.b"="two words"
LABEL org.example.a=2
EXPOSE 80 53/udp 8080/tcp 8000-8002 9000-9001/udp
VOLUME /data /more
VOLUME ["/cache"]
USER 1000:1000
WORKDIR /srv
WORKDIR app
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD wget -q localhost || exit 1
"#,
        &[],
    ),
    (
        "shell-forms",
        "FROM localhost/bb
RUN echo made > /made
ENTRYPOINT echo \"$HOME\"
CMD [\"ignored\", \"by a shell-form entrypoint\"]
HEALTHCHECK CMD [\"cat\", \"/made\"]
",
        &[],
    ),
    (
        "json-forms",
        "FROM localhost/bb
CMD echo first
ENTRYPOINT [\"/bin/sh\", \"-c\"]
CMD [\"echo $0\", \"second\"]
",
        &[],
    ),
    (
        "cmd-then-entrypoint",
        "FROM localhost/bb
CMD [\"kept\"]
ENTRYPOINT [\"echo\"]
",
        &[],
    ),
    (
        "inherited-cmd",
        "FROM localhost/cmd-then-entrypoint
ENTRYPOINT [\"printf\", \"%s\\\\n\"]
",
        &[],
    ),
    (
        "custom-shell",
        "FROM localhost/bb
SHELL [\"/bin/sh\", \"-xc\"]
RUN echo hi > /hi
CMD cat /hi
HEALTHCHECK --start-period=1m CMD test -f /hi
STOPSIGNAL 9
",
        &[],
    ),
    (
        "args",
        "ARG BASE=localhost/bb
FROM $BASE
ARG V=default
ARG W
ARG PORT=9000
LABEL v=$V w=${W:-unset} both=\"$V $W\"
ENV E=${V}-e PORT=$PORT
RUN echo $V > /v
WORKDIR /w/$V
USER ${V}
EXPOSE $PORT
CMD [\"$V\"]
",
        &["V=cli", "PORT=7000"],
    ),
    (
        "arg-scopes",
        "ARG G=global
ARG U=1000
FROM localhost/bb AS base
LABEL before=\"[$G]\"
ARG G
LABEL after=\"[$G]\"
ENV OLD form with spaces
env lower=case
ARG U
USER $U:$U
VOLUME /v/$U
FROM base AS final
ARG G=final
label g=$G
onbuild run echo lower-case trigger
ENTRYPOINT sh -c 'echo \"$@\"' --
",
        &["U=42"],
    ),
    (
        "onbuild-parent",
        "FROM localhost/bb
ONBUILD RUN echo triggered > /triggered
ONBUILD LABEL from.trigger=yes
ONBUILD COPY hello.txt /hello.txt
LABEL parent=yes
CMD [\"sh\"]
",
        &[],
    ),
    (
        "onbuild-child",
        "FROM localhost/onbuild-parent
LABEL child=yes
HEALTHCHECK NONE
",
        &[],
    ),
    (
        "multi-stage",
        "FROM localhost/bb AS build
RUN mkdir /out && echo built > /out/a
ENV STAGE=one
LABEL stage=one
ENTRYPOINT [\"false\"]
FROM localhost/bb
COPY --from=build /out/a /a
COPY hello.txt /hello.txt
WORKDIR /app
COPY hello.txt .
COPY --from=build /out/a sub/
RUN test -f /app/hello.txt && test -f /app/sub/a
ENV STAGE=two
CMD cat /a /hello.txt
",
        &[],
    ),
];

/// `Config` as both engines report it, minus what legitimately differs.
fn config(inspect: &Value) -> Value {
    let mut c: Map<String, Value> = inspect["Config"].as_object().cloned().unwrap_or_default();
    // Docker's legacy builder commits each step from a container: `Hostname` is that
    // container's id and `Image` the id of the step's parent image. Neither means anything
    // in a built image (BuildKit leaves both empty).
    c.remove("Hostname");
    c.remove("Image");
    // Go writes a nil and an empty list or map differently (`null`, `[]`, `{}`), and omits
    // some empty fields altogether; all of them mean "none".
    c.retain(|_, v| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    });
    Value::Object(c)
}

/// The history as (instruction, empty layer) pairs. The two builders spell `created_by`
/// differently (the legacy builder writes `/bin/sh -c #(nop)  ENV …`, `|1 V=x /bin/sh -c …`
/// for a RUN with build arguments and `COPY file:<digest> in /dest`), so only the instruction
/// is compared.
fn history(entries: &[Value]) -> Vec<Value> {
    entries
        .iter()
        .map(|h| {
            let by = h["created_by"].as_str().unwrap_or_default();
            json!([instruction(by), h["empty_layer"].as_bool().unwrap_or(false)])
        })
        .collect()
}

/// The history in Docker's image config, read from `docker save` (`docker image inspect`
/// leaves it out).
fn docker_history(docker: &Dockerd, name: &str) -> Vec<Value> {
    let out = docker.docker(&["save", name]);
    assert!(out.status.success(), "docker save {name}");
    let mut ar = tar::Archive::new(&out.stdout[..]);
    let mut files = std::collections::BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        files.insert(path, data);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let cfg_name = manifest[0]["Config"].as_str().unwrap();
    let cfg: Value = serde_json::from_slice(&files[cfg_name]).unwrap();
    cfg["history"].as_array().cloned().unwrap_or_default()
}

fn instruction(created_by: &str) -> String {
    if let Some((_, rest)) = created_by.split_once("#(nop)") {
        return rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
    }
    let first = created_by.split_whitespace().next().unwrap_or_default();
    if first.chars().all(|c| c.is_ascii_uppercase()) && !first.is_empty() {
        return first.to_string();
    }
    if created_by.starts_with('|') || created_by.starts_with('/') {
        // The legacy builder's RUN: the shell command line, maybe after `|N K=V…`.
        return "RUN".into();
    }
    created_by.to_string()
}

#[test]
fn built_image_configs_match_docker() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let Some(d) = Dockerd::start() else { return };
    d.load_from(&b, "localhost/bb");
    let mut differences = Vec::new();
    for (name, dockerfile, build_args) in CASES {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        std::fs::write(ctx.path().join("hello.txt"), "hello\n").unwrap();
        let tag = format!("localhost/{name}");
        let mut berth_args = vec!["build", "-q", "-t", &tag];
        let mut docker_args = vec!["build", "-q", "--network", "none", "-t", &tag];
        for a in *build_args {
            berth_args.extend(["--build-arg", a]);
            docker_args.extend(["--build-arg", a]);
        }
        berth_args.push(ctx.path().to_str().unwrap());
        docker_args.push(ctx.path().to_str().unwrap());
        b.ok(&berth_args);
        let out = d
            .cmd()
            .env("DOCKER_BUILDKIT", "0")
            .args(&docker_args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker build {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours = b.inspect(&tag);
        let theirs: Value =
            serde_json::from_slice(&d.docker(&["image", "inspect", &tag]).stdout).unwrap();
        let theirs = &theirs[0];
        let (oc, tc) = (config(&ours), config(theirs));
        let keys: std::collections::BTreeSet<&String> = oc
            .as_object()
            .unwrap()
            .keys()
            .chain(tc.as_object().unwrap().keys())
            .collect();
        for k in keys {
            if oc[k] != tc[k] {
                differences.push(format!(
                    "{name} Config.{k}:\n  docker {}\n  berth  {}",
                    tc[k], oc[k]
                ));
            }
        }
        let (oh, th) = (
            history(ours["History"].as_array().unwrap()),
            history(&docker_history(&d, &tag)),
        );
        if oh != th {
            differences.push(format!(
                "{name} history:\n  docker {}\n  berth  {}",
                json!(th),
                json!(oh)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );

    // Docker's own images, as `docker save` writes them, load into Berth unchanged: same id,
    // same configuration, and they run.
    let archive = tempfile::NamedTempFile::new().unwrap();
    let names = ["localhost/shell-forms", "localhost/json-forms"];
    let out = d.docker(
        &[
            &["save", "-o", archive.path().to_str().unwrap()][..],
            &names,
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = Berth::new();
    other.ok(&["load", "-i", archive.path().to_str().unwrap()]);
    for name in names {
        let theirs: Value =
            serde_json::from_slice(&d.docker(&["image", "inspect", name]).stdout).unwrap();
        let ours = other.inspect(name);
        assert_eq!(ours["Id"], theirs[0]["Id"], "{name}");
        assert_eq!(config(&ours), config(&theirs[0]), "{name}");
    }
    assert_eq!(other.ok(&["run", "--rm", names[0]]), "/root\n");
    assert_eq!(
        other.ok(&["run", "--rm", "--entrypoint", "cat", names[0], "/made"]),
        "made\n"
    );
    assert_eq!(other.ok(&["run", "--rm", names[1]]), "second\n");
}
