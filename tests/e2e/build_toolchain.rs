//! A multi-stage build in the style of HPC application images: a toolchain from the Debian
//! package mirror compiles a program in one stage, and only the binary goes into a slim one.

use crate::common::Berth;

const HELLO_C: &str = r#"#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        printf("hello, %s\n", argv[i]);
    return argc - 1 == 0 ? 3 : 0;
}
"#;

const DOCKERFILE: &str = r#"FROM localhost/deb AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev
WORKDIR /src
COPY hello.c .
RUN gcc -O2 -static -o /hello hello.c && strip /hello

FROM scratch
COPY --from=build /hello /usr/local/bin/hello
LABEL org.opencontainers.image.title=hello
ENTRYPOINT ["/usr/local/bin/hello"]
CMD ["world"]
"#;

#[test]
fn toolchain_stage_feeds_a_scratch_image() {
    let Some(deb) = berth_testkit::debian_rootfs_tar() else {
        eprintln!("Debian fixture unavailable (no debootstrap or mirror): skipped");
        return;
    };
    let b = Berth::new();
    b.ok(&["import", deb.to_str().unwrap(), "localhost/deb"]);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.path().join("hello.c"), HELLO_C).unwrap();
    let out = b.run(&["build", "-t", "hello", ctx.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(b.ok(&["run", "--rm", "hello"]), "hello, world\n");
    assert_eq!(
        b.ok(&["run", "--rm", "hello", "HPC", "users"]),
        "hello, HPC\nhello, users\n"
    );
    let out = b.run(&[
        "run",
        "--rm",
        "--entrypoint",
        "/usr/local/bin/hello",
        "hello",
    ]);
    assert_eq!(out.status.code(), Some(3));

    // Only the binary's layer: nothing of the toolchain stage.
    let v = b.inspect("hello");
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 1, "{v}");
    assert!((v["Size"].as_u64().unwrap()) < 2_000_000, "{v}");
    let cfg = &v["Config"];
    assert_eq!(cfg["Labels"]["org.opencontainers.image.title"], "hello");
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/usr/local/bin/hello"])
    );
    assert_eq!(cfg["Cmd"], serde_json::json!(["world"]));
}
