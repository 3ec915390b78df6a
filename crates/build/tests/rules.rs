//! Table-driven tests of instruction rules and of errors.

use std::time::Duration;

use berth_build::{expand, parse, Arg, Healthcheck, Instruction, ShellOrExec};

/// Parses `FROM a` followed by `line` and returns the single instruction.
fn one(line: &str) -> Instruction {
    let df = parse(&format!("FROM a\n{line}\n"), "Dockerfile")
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(df.stages[0].instructions.len(), 1, "{line:?}");
    df.stages[0].instructions[0].instruction.clone()
}

/// Like [`one`], after substitution with no image environment.
fn resolved(line: &str) -> Instruction {
    let df = parse(&format!("FROM a\n{line}\n"), "Dockerfile").unwrap();
    df.resolve_stage(0, &[])
        .unwrap()
        .pop()
        .unwrap()
        .step
        .instruction
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn keywords_are_case_insensitive() {
    for line in ["run x", "Run x", "rUN x"] {
        assert!(matches!(one(line), Instruction::Run { .. }), "{line}");
    }
    let df = parse("from a as Build\ncopy --FROM=build x y", "f").unwrap();
    assert_eq!(df.stages[0].name.as_deref(), Some("build"));
}

#[test]
fn exec_and_shell_forms() {
    let cases: &[(&str, Instruction)] = &[
        (
            "CMD [\"a\", \"b c\"]",
            Instruction::Cmd(ShellOrExec::Exec(s(&["a", "b c"]))),
        ),
        (
            "CMD echo hi",
            Instruction::Cmd(ShellOrExec::Shell("echo hi".into())),
        ),
        // Invalid JSON falls back to the shell form.
        (
            "CMD ['a']",
            Instruction::Cmd(ShellOrExec::Shell("['a']".into())),
        ),
        (
            "ENTRYPOINT [\"a\",]",
            Instruction::Entrypoint(ShellOrExec::Shell("[\"a\",]".into())),
        ),
        (
            "ENTRYPOINT [\"/bin/app\"]",
            Instruction::Entrypoint(ShellOrExec::Exec(s(&["/bin/app"]))),
        ),
        (
            "SHELL [\"/bin/bash\", \"-c\"]",
            Instruction::Shell(s(&["/bin/bash", "-c"])),
        ),
        (
            "VOLUME [\"/a\", \"/b\"]",
            Instruction::Volume(s(&["/a", "/b"])),
        ),
        ("VOLUME /a /b", Instruction::Volume(s(&["/a", "/b"]))),
        (
            "EXPOSE 80/tcp 53/udp",
            Instruction::Expose(s(&["80/tcp", "53/udp"])),
        ),
        ("USER app:app", Instruction::User("app:app".into())),
        ("WORKDIR /my dir", Instruction::Workdir("/my dir".into())),
        (
            "STOPSIGNAL SIGTERM",
            Instruction::Stopsignal("SIGTERM".into()),
        ),
        (
            "MAINTAINER Jane <j@x.org>",
            Instruction::Maintainer("Jane <j@x.org>".into()),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(one(line), *want, "{line}");
    }
    match one("RUN [\"echo\", \"x\"]") {
        Instruction::Run { cmd, .. } => assert_eq!(cmd, ShellOrExec::Exec(s(&["echo", "x"]))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn env_and_label_forms() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("ENV a=b c=d", &[("a", "b"), ("c", "d")]),
        ("ENV a b c", &[("a", "b c")]),
        (
            "ENV a=\"x y\" b='$z' c=x\\ y",
            &[("a", "x y"), ("b", "$z"), ("c", "x y")],
        ),
        ("ENV a=1 b=$a", &[("a", "1"), ("b", "")]),
        (
            "LABEL \"com.example.vendor\"=\"ACME Inc\" x=1",
            &[("com.example.vendor", "ACME Inc"), ("x", "1")],
        ),
        (
            "LABEL description=\"a \\\"quoted\\\" word\"",
            &[("description", "a \"quoted\" word")],
        ),
        ("LABEL legacy value here", &[("legacy", "value here")]),
    ];
    for (line, want) in cases {
        let got = match resolved(line) {
            Instruction::Env(p) | Instruction::Label(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(got, pairs(want), "{line}");
    }
}

#[test]
fn substituted_and_unsubstituted_instructions() {
    let pre = "ENV D=/data U=app\n";
    let cases: &[(&str, Instruction)] = &[
        ("WORKDIR $D/x", Instruction::Workdir("/data/x".into())),
        (
            "USER ${U}:${G:-staff}",
            Instruction::User("app:staff".into()),
        ),
        ("VOLUME $D", Instruction::Volume(s(&["/data"]))),
        ("EXPOSE ${P:-8080}", Instruction::Expose(s(&["8080"]))),
        (
            "STOPSIGNAL ${S:-SIGINT}",
            Instruction::Stopsignal("SIGINT".into()),
        ),
        (
            "CMD echo $D",
            Instruction::Cmd(ShellOrExec::Shell("echo $D".into())),
        ),
        ("SHELL [\"$D\"]", Instruction::Shell(s(&["$D"]))),
        (
            "ONBUILD WORKDIR $D",
            Instruction::Onbuild(Box::new(Instruction::Workdir("$D".into()))),
        ),
    ];
    for (line, want) in cases {
        let df = parse(&format!("FROM a\n{pre}{line}\n"), "f").unwrap();
        let got = df
            .resolve_stage(0, &[])
            .unwrap()
            .pop()
            .unwrap()
            .step
            .instruction;
        assert_eq!(got, *want, "{line}");
    }
    match resolved("RUN echo $HOME ${X:-y}") {
        Instruction::Run { cmd, .. } => {
            assert_eq!(cmd, ShellOrExec::Shell("echo $HOME ${X:-y}".into()))
        }
        other => panic!("{other:?}"),
    }
    let df = parse(
        "FROM a\nENV O=me\nCOPY --chown=$O:$O --from=${S:-0} a$O /d/$O\n",
        "f",
    )
    .unwrap();
    match &df.resolve_stage(0, &[]).unwrap()[1].step.instruction {
        Instruction::Copy {
            srcs,
            dest,
            chown,
            from,
            ..
        } => {
            assert_eq!(srcs, &s(&["ame"]));
            assert_eq!(dest, "/d/me");
            assert_eq!(chown.as_deref(), Some("me:me"));
            assert_eq!(from.as_deref(), Some("0"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn copy_and_add_flags() {
    match one("COPY --from=build --chown=1:2 --chmod=0644 --link --parents --exclude=*.md --exclude=.git a b /dst/") {
        Instruction::Copy { srcs, dest, from, chown, chmod, link, parents, exclude, heredocs } => {
            assert_eq!((srcs, dest), (s(&["a", "b"]), "/dst/".to_string()));
            assert_eq!((from.as_deref(), chown.as_deref(), chmod.as_deref()), (Some("build"), Some("1:2"), Some("0644")));
            assert!(link && parents && heredocs.is_empty());
            assert_eq!(exclude, s(&["*.md", ".git"]));
        }
        other => panic!("{other:?}"),
    }
    match one("ADD --checksum=sha256:abc --keep-git-dir=true --link=false https://x/y.tar.gz /") {
        Instruction::Add {
            srcs,
            checksum,
            keep_git_dir,
            link,
            ..
        } => {
            assert_eq!(srcs, s(&["https://x/y.tar.gz"]));
            assert_eq!(checksum.as_deref(), Some("sha256:abc"));
            assert!(keep_git_dir && !link);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(one("COPY [\"a b\", \"/c\"]"), Instruction::Copy { srcs, .. } if srcs == s(&["a b"]))
    );
}

#[test]
fn arg_healthcheck_onbuild() {
    assert_eq!(
        one("ARG a b=2 c=\"x y\""),
        Instruction::Arg(vec![
            Arg {
                name: "a".into(),
                default: None
            },
            Arg {
                name: "b".into(),
                default: Some("2".into())
            },
            Arg {
                name: "c".into(),
                default: Some("\"x y\"".into())
            },
        ])
    );
    assert_eq!(one("HEALTHCHECK NONE"), Instruction::Healthcheck(None));
    assert_eq!(
        one("HEALTHCHECK --interval=30s --timeout=3s --start-period=1m --retries=3 CMD curl -f http://localhost/ || exit 1"),
        Instruction::Healthcheck(Some(Healthcheck {
            test: ShellOrExec::Shell("curl -f http://localhost/ || exit 1".into()),
            interval: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(3)),
            start_period: Some(Duration::from_secs(60)),
            start_interval: None,
            retries: Some(3),
        }))
    );
    match one("healthcheck cmd [\"/bin/check\"]") {
        Instruction::Healthcheck(Some(h)) => {
            assert_eq!(h.test, ShellOrExec::Exec(s(&["/bin/check"])))
        }
        other => panic!("{other:?}"),
    }
    match one("ONBUILD RUN --mount=type=cache,target=/c make") {
        Instruction::Onbuild(inner) => {
            assert!(matches!(*inner, Instruction::Run { ref mounts, .. } if mounts.len() == 1))
        }
        other => panic!("{other:?}"),
    }
    match one("onbuild copy . /app") {
        Instruction::Onbuild(inner) => assert_eq!(inner.keyword(), "COPY"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn from_forms() {
    let df = parse(
        "ARG P=linux/arm64\nFROM --platform=$P alpine AS a\nFROM a AS b\nFROM scratch\nFROM b\n",
        "f",
    )
    .unwrap();
    assert_eq!(df.stages[0].platform.as_deref(), Some("linux/arm64"));
    assert_eq!(df.stages[1].base, "a");
    assert_eq!(df.find_stage(&df.stages[1].base, 1), Some(0));
    assert_eq!(df.find_stage("b", 2), Some(1));
    assert_eq!(df.find_stage("b", 1), None);
    assert_eq!(df.find_stage("0", 4), Some(0));
    assert_eq!(df.stages[2].base, "scratch");
    assert_eq!(df.find_stage("alpine", 4), None);
}

/// `(file text, expected one-line error)`.
const ERRORS: &[(&str, &str)] = &[
    ("FROM a\nRUNN make", "f:2:1: unknown instruction: RUNN (did you mean RUN?)"),
    ("FROM a\n  cpy a b", "f:2:3: unknown instruction: cpy (did you mean COPY?)"),
    ("FROM a\nFOOBARBAZ x", "f:2:1: unknown instruction: FOOBARBAZ"),
    ("RUN make\nFROM a", "f:1:1: RUN before the first FROM: only ARG may come before FROM"),
    ("ARG x\n", "f:1:1: the file has no FROM instruction: nothing to build"),
    ("FROM a\nRUN", "f:2:1: RUN requires at least one argument"),
    ("FROM a\nCMD", "f:2:1: CMD requires at least one argument"),
    ("FROM a\nUSER", "f:2:1: USER requires exactly one argument"),
    ("FROM a\nUSER a b", "f:2:1: USER requires exactly one argument"),
    ("FROM a\nEXPOSE", "f:2:1: EXPOSE requires at least one argument"),
    ("FROM a\nENV", "f:2:1: ENV requires at least one argument"),
    ("FROM a\nENV a", "f:2:5: ENV must have two arguments"),
    ("FROM a\nENV a=1 b", "f:2:9: syntax error: can't find = in \"b\"; must be of the form name=value"),
    ("FROM a\nLABEL =x", "f:2:7: LABEL names can not be blank"),
    ("FROM a\nCOPY a", "f:2:1: COPY requires at least two arguments, but only one was provided: the destination could not be determined"),
    ("FROM", "f:1:1: FROM requires at least one argument"),
    ("FROM a b", "f:1:1: FROM requires either one or three arguments (FROM image [AS name])"),
    ("FROM a AS 1x", "f:1:11: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"),
    ("FROM --platfrom=x a", "f:1:6: unknown flag for FROM: --platfrom"),
    ("FROM a\nCOPY --form=b x y", "f:2:6: unknown flag for COPY: --form"),
    ("FROM a\nRUN --network=bridge x", "f:2:5: unsupported network mode \"bridge\": use default, none or host"),
    ("FROM a\nRUN --mount=type=cache,tgt=/x x", "f:2:5: unexpected key \"tgt\" in --mount"),
    ("FROM a\nCOPY --chown x y", "f:2:6: missing a value on flag: --chown"),
    ("FROM a\nCOPY --from=a --from=b x y", "f:2:15: duplicate flag: --from"),
    ("FROM a\nCOPY --link=maybe x y", "f:2:6: expecting boolean value for flag --link, not: maybe"),
    ("FROM a\nRUN <<EOF\necho\n", "f:2:1: unterminated heredoc: no line with EOF after it"),
    ("FROM a\nSHELL /bin/sh -c", "f:2:7: SHELL requires the arguments to be in JSON form, like [\"/bin/sh\", \"-c\"]"),
    ("FROM a\nSHELL []", "f:2:7: SHELL requires the arguments to be in JSON form, like [\"/bin/sh\", \"-c\"]"),
    ("FROM a\nWORKDIR ${x", "f:2:9: missing '}' after '${x'"),
    ("FROM a\nENV a=${b/c/d}", "f:2:7: bad substitution: unsupported modifier '/' in '${b...}'"),
    ("FROM ${x", "f:1:6: missing '}' after '${x'"),
    ("ARG B\nFROM ${B}", "f:2:6: base name should not be blank"),
    ("FROM a\nRUN echo \\\n", "f:2:10: unexpected end of file after a line continuation"),
    ("FROM a\nONBUILD ONBUILD RUN x", "f:2:9: chaining ONBUILD via ONBUILD ONBUILD isn't allowed"),
    ("FROM a\nONBUILD FROM b", "f:2:9: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD maintainer me", "f:2:9: MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD", "f:2:1: ONBUILD requires at least one argument"),
    ("FROM a\nHEALTHCHECK --interval=5s NONE", "f:2:1: HEALTHCHECK NONE takes no other arguments"),
    ("FROM a\nHEALTHCHECK RUN x", "f:2:13: unknown type for HEALTHCHECK: RUN (expected CMD or NONE)"),
    ("FROM a\nHEALTHCHECK --interval=5 CMD x", "f:2:13: --interval: invalid duration \"5\""),
    ("FROM a\nHEALTHCHECK --retries=x CMD x", "f:2:13: --retries must be a number, not \"x\""),
    ("FROM a\nHEALTHCHECK CMD", "f:2:1: HEALTHCHECK requires a command after CMD"),
    ("FROM a\nARG =x", "f:2:5: invalid ARG name \"\""),
    ("FROM a AS x\nFROM b AS X", "f:2:1: duplicate stage name \"x\""),
    ("# escape=x\nFROM a", "f:1:10: invalid escape token 'x': it must be ` or \\"),
];

#[test]
fn errors_point_at_the_problem() {
    for (text, want) in ERRORS {
        match parse(text, "f") {
            Ok(df) => panic!("{text:?} parsed: {df:?}"),
            Err(e) => assert_eq!(e.one_line(), *want, "{text:?}"),
        }
    }
}

#[test]
fn error_display_has_caret() {
    let e = parse("FROM a\n    RUNN make\n", "Dockerfile").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:2:5: unknown instruction: RUNN (did you mean RUN?)\n      RUNN make\n      ^"
    );
    let e = parse("FROM a\nCOPY --form=b x y\n", "Dockerfile").unwrap_err();
    let caret = e.to_string().lines().last().unwrap().to_string();
    assert_eq!(caret, format!("  {}^", " ".repeat(5)));
}

#[test]
fn substitution_errors_at_resolve_time() {
    let df = parse("FROM a\nENV A=\"${UNSET:?must be set}\"\n", "f").unwrap();
    let e = df.resolve_stage(0, &[]).unwrap_err();
    assert_eq!(
        e.one_line(),
        "f:2:1: failed to expand \"\\\"${UNSET:?must be set}\\\"\": UNSET: must be set"
    );
    assert_eq!(e.source_line, "ENV A=\"${UNSET:?must be set}\"");
}

#[test]
fn expand_is_public() {
    let vars = |n: &str| (n == "v").then(|| "1".to_string());
    assert_eq!(expand("${v:+on}-${w:-off}", &vars, '\\').unwrap(), "on-off");
    assert!(expand("${v:x}", &vars, '\\').is_err());
}

#[test]
fn no_prefix_of_a_file_panics() {
    let texts = ERRORS.iter().map(|(t, _)| t.to_string()).chain([
        "# escape=`\nFROM a AS b\nRUN <<A cat && 3<<'B' x `\n y\none\nA\ntwo\nB\nCOPY --from=b <<\"C\" /x\n\tc\nC\n".to_string(),
        "ARG V=1\nFROM x:${V:-2} AS é\nENV a=\"é ü\" b='c' \\\n  c=${a:+d}\nHEALTHCHECK --interval=1s CMD [\"x\"]\nONBUILD RUN x".to_string(),
    ]);
    for text in texts {
        for (i, _) in text.char_indices() {
            if let Ok(df) = parse(&text[..i], "f") {
                for n in 0..df.stages.len() {
                    let _ = df.resolve_stage(n, &[]);
                }
            }
        }
    }
}
