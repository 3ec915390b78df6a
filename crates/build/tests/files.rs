//! Whole-file tests: multi-stage builds, heredocs, ARG scoping across stages.

use std::collections::BTreeMap;

use berth_build::{parse, parse_with_args, Instruction, MountKind, Pos, Resolved, ShellOrExec};

fn shell(s: &str) -> ShellOrExec {
    ShellOrExec::Shell(s.into())
}

fn exec(v: &[&str]) -> ShellOrExec {
    ShellOrExec::Exec(v.iter().map(|s| s.to_string()).collect())
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn args(v: &[(&str, &str)]) -> BTreeMap<String, String> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const MULTI_STAGE: &str = r#"# syntax=docker/dockerfile:1
ARG DEBIAN=bookworm
FROM debian:${DEBIAN} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make libc6-dev
COPY . /src
WORKDIR /src
RUN make

FROM debian:${DEBIAN}-slim
COPY --from=build /src/app /usr/local/bin/
LABEL org.opencontainers.image.title="minialign" version=0.5.3
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["--help"]
"#;

#[test]
fn multi_stage_compile_then_slim() {
    let df = parse(MULTI_STAGE, "Dockerfile").unwrap();
    assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert!(df.directives.notes[0].contains("ignored"));
    assert_eq!(df.global_args.len(), 1);
    assert_eq!(df.stages.len(), 2);

    let build = &df.stages[0];
    assert_eq!(build.name.as_deref(), Some("build"));
    assert_eq!(build.base, "debian:bookworm");
    assert_eq!(build.pos, Pos { line: 3, col: 1 });
    let ins: Vec<&Instruction> = build.instructions.iter().map(|l| &l.instruction).collect();
    assert_eq!(ins.len(), 4);
    match ins[0] {
        Instruction::Run { cmd, mounts, .. } => {
            assert_eq!(
                *cmd,
                shell("apt-get update  && apt-get install -y --no-install-recommends gcc make libc6-dev")
            );
            assert!(mounts.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(build.instructions[0].pos, Pos { line: 4, col: 1 });
    assert_eq!(build.instructions[0].source, "RUN apt-get update \\");
    assert!(
        matches!(ins[1], Instruction::Copy { srcs, dest, .. } if srcs == &["."] && dest == "/src")
    );
    assert_eq!(*ins[2], Instruction::Workdir("/src".into()));
    assert_eq!(build.instructions[3].pos.line, 8);

    let slim = &df.stages[1];
    assert_eq!(slim.name, None);
    assert_eq!(slim.base, "debian:bookworm-slim");
    match &slim.instructions[0].instruction {
        Instruction::Copy {
            srcs, dest, from, ..
        } => {
            assert_eq!(from.as_deref(), Some("build"));
            assert_eq!(srcs, &["/src/app"]);
            assert_eq!(dest, "/usr/local/bin/");
            assert_eq!(df.find_stage(from.as_deref().unwrap(), 1), Some(0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        slim.instructions[2].instruction,
        Instruction::Entrypoint(exec(&["/usr/local/bin/app"]))
    );
    assert_eq!(
        slim.instructions[3].instruction,
        Instruction::Cmd(exec(&["--help"]))
    );

    // Substitution removes the quotes of LABEL values.
    let r = df.resolve_stage(1, &[]).unwrap();
    assert_eq!(
        r[1].step.instruction,
        Instruction::Label(pairs(&[
            ("org.opencontainers.image.title", "minialign"),
            ("version", "0.5.3")
        ]))
    );

    // A build argument overrides the global default in FROM.
    let df = parse_with_args(MULTI_STAGE, "Dockerfile", &args(&[("DEBIAN", "trixie")])).unwrap();
    assert_eq!(df.stages[0].base, "debian:trixie");
    assert_eq!(df.stages[1].base, "debian:trixie-slim");
}

#[test]
fn heredocs_in_a_file() {
    let text = "FROM busybox\n\
RUN <<EOF\n\
set -e\n\
echo $HOME > /home.txt\n\
EOF\n\
RUN <<-\"SCRIPT\" sh\n\
\techo '$NOT_EXPANDED'\n\
\tSCRIPT\n\
RUN <<A cat > /a && 3<<B cat > /b\n\
one\n\
A\n\
two\n\
B\n\
COPY --chmod=755 <<EOF /usr/local/bin/hello\n\
#!/bin/sh\n\
echo hello\n\
EOF\n\
CMD [\"hello\"]\n";
    let df = parse(text, "Dockerfile").unwrap();
    let st = &df.stages[0];
    assert_eq!(st.instructions.len(), 5);
    match &st.instructions[0].instruction {
        Instruction::Run { cmd, heredocs, .. } => {
            assert_eq!(*cmd, shell("<<EOF"));
            assert_eq!(heredocs[0].name, "EOF");
            assert_eq!(heredocs[0].content, "set -e\necho $HOME > /home.txt\n");
            assert!(heredocs[0].expand);
        }
        other => panic!("{other:?}"),
    }
    match &st.instructions[1].instruction {
        Instruction::Run { heredocs, .. } => {
            assert!(!heredocs[0].expand && heredocs[0].strip_tabs);
            assert_eq!(heredocs[0].text(), "echo '$NOT_EXPANDED'\n");
        }
        other => panic!("{other:?}"),
    }
    match &st.instructions[2].instruction {
        Instruction::Run { heredocs, .. } => {
            let names: Vec<_> = heredocs
                .iter()
                .map(|h| (h.name.as_str(), h.content.as_str()))
                .collect();
            assert_eq!(names, [("A", "one\n"), ("B", "two\n")]);
            assert_eq!(heredocs[1].fd, Some(3));
        }
        other => panic!("{other:?}"),
    }
    match &st.instructions[3].instruction {
        Instruction::Copy {
            srcs,
            dest,
            chmod,
            heredocs,
            ..
        } => {
            assert_eq!(srcs, &["<<EOF"]);
            assert_eq!(dest, "/usr/local/bin/hello");
            assert_eq!(chmod.as_deref(), Some("755"));
            assert_eq!(heredocs[0].content, "#!/bin/sh\necho hello\n");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(st.instructions[4].pos.line, 18);
    // The heredoc source is not substituted; the destination is.
    let r = df.resolve_stage(0, &[]).unwrap();
    assert!(matches!(&r[3].step.instruction, Instruction::Copy { srcs, .. } if srcs == &["<<EOF"]));
}

const SCOPING: &str = r#"ARG VERSION=1.0
ARG BASE=alpine
FROM ${BASE}:3.20 AS one
RUN echo $VERSION
ENV SEEN=v${VERSION}x
ARG VERSION
ENV AFTER=$VERSION

FROM ${BASE} AS two
ARG VERSION=2.0
ARG OTHER
ENV V=${VERSION} O=${OTHER:-none}
ENV VERSION=env-wins
ARG VERSION=3.0
WORKDIR /opt/$VERSION

FROM scratch
ENV P=${http_proxy:-unset}
ARG http_proxy
ENV Q=${http_proxy:-unset}
"#;

fn env_of(r: &[Resolved], i: usize) -> Vec<(String, String)> {
    match &r[i].step.instruction {
        Instruction::Env(p) => p.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn arg_scoping_across_stages() {
    let df = parse(SCOPING, "Dockerfile").unwrap();
    assert_eq!(df.stages[0].base, "alpine:3.20");
    assert_eq!(df.stages[1].base, "alpine");
    assert_eq!(df.stages[2].base, "scratch");
    assert_eq!(
        df.global_arg_values().get("VERSION").map(String::as_str),
        Some("1.0")
    );

    // Stage one: the global VERSION is invisible until redeclared, then has the global value.
    let r = df.resolve_stage(0, &[]).unwrap();
    assert_eq!(
        r[0].step.instruction, df.stages[0].instructions[0].instruction,
        "RUN is untouched"
    );
    assert!(r[0].args.is_empty());
    assert_eq!(env_of(&r, 1), pairs(&[("SEEN", "vx")]));
    assert_eq!(env_of(&r, 3), pairs(&[("AFTER", "1.0")]));
    assert_eq!(r[3].args, pairs(&[("VERSION", "1.0")]));

    // Stage two: its own default; an ARG without value or build arg is unset; ENV beats ARG.
    let r = df.resolve_stage(1, &[]).unwrap();
    assert_eq!(env_of(&r, 2), pairs(&[("V", "2.0"), ("O", "none")]));
    assert_eq!(
        r[5].step.instruction,
        Instruction::Workdir("/opt/env-wins".into())
    );

    // Build arguments win over defaults, inside stages too.
    let ba = args(&[
        ("VERSION", "9"),
        ("OTHER", "o"),
        ("http_proxy", "http://p:3128"),
    ]);
    let df = parse_with_args(SCOPING, "Dockerfile", &ba).unwrap();
    let r = df.resolve_stage(1, &[]).unwrap();
    assert_eq!(env_of(&r, 2), pairs(&[("V", "9"), ("O", "o")]));

    // Proxy arguments reach RUN without declaration but are substituted only once declared.
    let r = df.resolve_stage(2, &[]).unwrap();
    assert_eq!(env_of(&r, 0), pairs(&[("P", "unset")]));
    assert_eq!(r[0].args, pairs(&[("http_proxy", "http://p:3128")]));
    assert_eq!(env_of(&r, 2), pairs(&[("Q", "http://p:3128")]));
}

#[test]
fn image_env_is_visible_to_substitution() {
    let df = parse(
        "FROM golang\nWORKDIR $GOPATH/src\nENV PATH=/x:$PATH",
        "Dockerfile",
    )
    .unwrap();
    let env = pairs(&[("GOPATH", "/go"), ("PATH", "/usr/bin")]);
    let r = df.resolve_stage(0, &env).unwrap();
    assert_eq!(
        r[0].step.instruction,
        Instruction::Workdir("/go/src".into())
    );
    assert_eq!(env_of(&r, 1), pairs(&[("PATH", "/x:/usr/bin")]));
}

#[test]
fn escape_directive_file() {
    let text = "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n  /b\nENV P=c:\\a`$b\n";
    let df = parse(text, "Dockerfile").unwrap();
    let st = &df.stages[0];
    assert!(
        matches!(&st.instructions[0].instruction, Instruction::Copy { dest, .. } if dest == "c:\\")
    );
    assert!(
        matches!(&st.instructions[1].instruction, Instruction::Run { cmd, .. } if *cmd == shell("dir c:\\   /b"))
    );
    let r = df.resolve_stage(0, &[]).unwrap();
    assert_eq!(env_of(&r, 2), pairs(&[("P", "c:\\a$b")]));
}

#[test]
fn run_mounts_and_network() {
    let text = "FROM debian\nARG CACHE=/var/cache/apt\nRUN --mount=type=cache,target=${CACHE},sharing=locked \\\n    --mount=type=secret,id=token,required=true \\\n    --mount=type=bind,from=build,source=/out,target=/in \\\n    --network=none make\n";
    let df = parse(text, "Dockerfile").unwrap();
    let r = df.resolve_stage(0, &[]).unwrap();
    match &r[1].step.instruction {
        Instruction::Run {
            cmd,
            mounts,
            network,
            ..
        } => {
            assert_eq!(*cmd, shell("make"));
            assert_eq!(network.as_deref(), Some("none"));
            let kinds: Vec<_> = mounts.iter().map(|m| m.kind).collect();
            assert_eq!(
                kinds,
                [MountKind::Cache, MountKind::Secret, MountKind::Bind]
            );
            assert_eq!(mounts[0].target.as_deref(), Some("/var/cache/apt"));
            assert!(mounts[1].required);
            assert_eq!(mounts[2].from.as_deref(), Some("build"));
        }
        other => panic!("{other:?}"),
    }
}
