//! Basic and Bearer-token registries, `login`/`logout`, and Docker credential helpers.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use berth_testkit::Registry;

use crate::common::Berth;

fn login(b: &Berth, addr: &str, user: &str, pass: &str) -> std::process::Output {
    let mut c = b
        .cmd()
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            user,
            "--password-stdin",
            addr,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{pass}\n").as_bytes())
        .unwrap();
    c.wait_with_output().unwrap()
}

fn exercise(reg: &Registry) {
    let b = Berth::new();
    let name = format!("{}/private/busybox:1", reg.addr());
    b.import_busybox(&name);

    let err = b.fails(&["push", "--tls-verify=false", &name], 1);
    assert!(err.contains(reg.addr()), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let bad = login(&b, reg.addr(), "user", "wrong");
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!b.home().join(".docker/config.json").exists());

    let good = login(&b, reg.addr(), "user", "secret");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("Login Succeeded"));
    let cfg = b.home().join(".docker/config.json");
    let mode = std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert!(v["auths"][reg.addr()]["auth"].is_string(), "{v}");

    b.ok(&["push", "--tls-verify=false", &name]);
    b.ok(&["rmi", &name]);
    b.ok(&["pull", "--tls-verify=false", &name]);

    let out = b.ok(&["logout", reg.addr()]);
    assert!(out.contains("Removing login credentials"), "{out}");
    b.ok(&["rmi", &name]);
    b.fails(&["pull", "--tls-verify=false", &name], 1);
}

#[test]
fn basic_auth_registry() {
    exercise(&Registry::start_htpasswd("user", "secret"));
}

#[test]
fn bearer_token_registry() {
    exercise(&Registry::start_token("user", "secret"));
}

#[test]
fn credential_helper_is_used() {
    let reg = Registry::start_htpasswd("user", "secret");
    let b = Berth::new();
    let name = format!("{}/private/busybox:1", reg.addr());
    b.import_busybox(&name);
    let bin = b.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\n[ \"$1\" = get ] && printf '{\"ServerURL\":\"%s\",\"Username\":\"user\",\"Secret\":\"secret\"}' \"$server\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(b.home().join(".docker")).unwrap();
    std::fs::write(
        b.home().join(".docker/config.json"),
        format!("{{\"credHelpers\": {{\"{}\": \"berthtest\"}}}}", reg.addr()),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = b
        .cmd()
        .env("PATH", path)
        .args(["push", "--tls-verify=false", &name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
