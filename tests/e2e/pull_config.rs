//! Pulls shaped by the config file and flags: `insecure_registries`, `registry_mirrors` and
//! `--platform` choosing from a multi-platform index, through the real binary.

use berth_registry::{Client, RegistryOptions, OCI_INDEX, OCI_MANIFEST};
use berth_testkit::Registry;
use berth_types::ImageRef;

use crate::common::Berth;

/// Pushes the busybox fixture as `name` for `platform`; returns the manifest digest and size.
fn push_as(b: &Berth, name: &str, platform: &str) -> (String, u64) {
    let tar = berth_testkit::busybox_rootfs_tar();
    b.ok(&[
        "import",
        "--platform",
        platform,
        "-c",
        &format!("ENV BUILT_FOR={platform}"),
        tar.to_str().unwrap(),
        name,
    ]);
    let out = b.ok(&["push", "-q", "--tls-verify=false", name]);
    let digest = out.trim().rsplit('@').next().unwrap().to_string();
    let blob = b
        .root()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    (digest, std::fs::metadata(blob).unwrap().len())
}

fn config(b: &Berth, text: &str) {
    let dir = b.home().join(".config/berth");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

fn env_of(b: &Berth, name: &str) -> String {
    b.inspect(name)["Config"]["Env"].to_string()
}

#[test]
fn platform_from_an_index_and_insecure_registry_from_config() {
    let reg = Registry::start();
    let seed = Berth::new();
    let amd = push_as(&seed, &format!("{}/t/multi:amd", reg.addr()), "linux/amd64");
    let arm = push_as(&seed, &format!("{}/t/multi:arm", reg.addr()), "linux/arm64");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},
{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#,
        amd.0, amd.1, arm.0, arm.1
    );
    let multi = format!("{}/t/multi:1", reg.addr());
    let client = Client::new(RegistryOptions {
        insecure: vec![reg.addr().to_string()],
        ..RegistryOptions::default()
    })
    .unwrap();
    client
        .put_manifest(
            &ImageRef::parse(&multi).unwrap(),
            OCI_INDEX,
            index.as_bytes(),
        )
        .unwrap();

    // No --tls-verify flag: the config names the registry as insecure (loopback registries
    // are reached over plain HTTP anyway, as Docker does for 127.0.0.0/8).
    let b = Berth::new();
    config(&b, &format!("insecure_registries = [{:?}]\n", reg.addr()));
    b.ok(&["pull", "-q", "--platform", "linux/arm64", &multi]);
    assert!(env_of(&b, &multi).contains("BUILT_FOR=linux/arm64"));
    assert_eq!(b.inspect(&multi)["Architecture"], "arm64");
    b.ok(&["rmi", &multi]);
    if cfg!(target_arch = "x86_64") {
        b.ok(&["pull", "-q", &multi]);
        assert!(env_of(&b, &multi).contains("BUILT_FOR=linux/amd64"));
        // run --platform never runs a local image of another platform as if it were: it
        // pulls the one asked for, or with --pull never refuses in one line.
        let run_never = [
            "run",
            "--rm",
            "--pull",
            "never",
            "--platform",
            "linux/arm64",
        ];
        let err = b.fails(&[&run_never[..], &[multi.as_str(), "true"]].concat(), 125);
        assert!(
            err.contains("linux/amd64") && err.contains("linux/arm64"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        b.ok(&["pull", "-q", "--platform", "linux/arm64", &multi]);
        let out = b.ok(&["run", "--rm", "--platform", "linux/amd64", &multi, "env"]);
        assert!(out.contains("BUILT_FOR=linux/amd64"), "{out}");
        assert_eq!(b.inspect(&multi)["Architecture"], "amd64");
    }
    let err = b.fails(&["pull", "--platform", "linux/s390x", &multi], 1);
    assert!(err.contains("s390x"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn mirror_from_config_serves_a_registry_that_lacks_the_image() {
    let mirror = Registry::start();
    let origin = Registry::start();
    let seed = Berth::new();
    push_as(&seed, &format!("{}/t/only:1", mirror.addr()), "linux/amd64");
    let b = Berth::new();
    config(
        &b,
        &format!(
            "insecure_registries = [{:?}, {:?}]\n[registry_mirrors]\n{:?} = [{:?}]\n",
            mirror.addr(),
            origin.addr(),
            origin.addr(),
            mirror.addr()
        ),
    );
    let name = format!("{}/t/only:1", origin.addr());
    b.ok(&["pull", "-q", &name]);
    assert!(env_of(&b, &name).contains("BUILT_FOR=linux/amd64"));
}
