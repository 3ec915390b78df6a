//! Each registry flavour starts and speaks the distribution protocol as real clients expect.

use base64::Engine as _;
use berth_testkit::{busybox_rootfs_tar, http_get_status, Auth, Registry};
use std::process::Command;

/// Status and headers of a GET, treating 4xx/5xx as answers rather than errors.
fn get(url: &str, authorization: Option<&str>) -> ureq::Response {
    let mut req = ureq::get(url);
    if let Some(a) = authorization {
        req = req.set("Authorization", a);
    }
    match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    }
}

fn basic(user: &str, password: &str) -> String {
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {creds}")
}

/// Extracts `key="value"` from a WWW-Authenticate challenge.
fn challenge_param(challenge: &str, key: &str) -> String {
    let start = challenge
        .find(&format!("{key}=\""))
        .unwrap_or_else(|| panic!("no {key} in {challenge}"))
        + key.len()
        + 2;
    let len = challenge[start..].find('"').expect("closing quote");
    challenge[start..start + len].to_string()
}

#[test]
fn plain_registry_answers_anonymously() {
    let reg = Registry::start();
    assert!(reg.addr().starts_with("127.0.0.1:"));
    assert_eq!(reg.auth(), &Auth::None);
    let r = get(&format!("{}/v2/", reg.url()), None);
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header("Docker-Distribution-Api-Version"),
        Some("registry/2.0")
    );
    assert!(reg.storage_dir().is_dir());
}

#[test]
fn registry_is_gone_after_drop() {
    let reg = Registry::start();
    let addr = reg.addr().to_string();
    let storage = reg.storage_dir().to_path_buf();
    drop(reg);
    assert!(http_get_status(&addr, "/v2/").is_err(), "still answering");
    assert!(!storage.exists(), "temporary directory left behind");
}

#[test]
fn htpasswd_registry_requires_basic_auth() {
    let reg = Registry::start_htpasswd("alice", "s3cret");
    let url = format!("{}/v2/", reg.url());
    let r = get(&url, None);
    assert_eq!(r.status(), 401);
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic "));
    assert_eq!(get(&url, Some(&basic("alice", "wrong"))).status(), 401);
    assert_eq!(get(&url, Some(&basic("alice", "s3cret"))).status(), 200);
    assert_eq!(reg.credentials(), Some(("alice", "s3cret")));
}

#[test]
fn token_registry_issues_scoped_bearer_tokens() {
    let reg = Registry::start_token("bob", "hunter2");
    let Auth::Token { realm, .. } = reg.auth().clone() else {
        panic!("not a token registry")
    };
    let r = get(&format!("{}/v2/test/x/tags/list", reg.url()), None);
    assert_eq!(r.status(), 401);
    let challenge = r.header("WWW-Authenticate").expect("challenge").to_string();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert_eq!(challenge_param(&challenge, "realm"), realm);
    let service = challenge_param(&challenge, "service");
    let scope = challenge_param(&challenge, "scope");
    assert_eq!(scope, "repository:test/x:pull");

    let token_url = format!("{realm}?service={service}&scope={scope}");
    assert_eq!(get(&token_url, None).status(), 401, "anonymous got a token");
    assert_eq!(get(&token_url, Some(&basic("bob", "nope"))).status(), 401);
    let resp = get(&token_url, Some(&basic("bob", "hunter2")));
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.into_json().expect("token json");
    let token = body["token"].as_str().expect("token field");
    assert_eq!(body["access_token"].as_str(), Some(token));
    let bearer = format!("Bearer {token}");

    // The token is accepted, and only for the scope it was issued for.
    assert_eq!(
        get(&format!("{}/v2/", reg.url()), Some(&bearer)).status(),
        200
    );
    let tags = get(&format!("{}/v2/test/x/tags/list", reg.url()), Some(&bearer));
    assert_eq!(
        tags.status(),
        404,
        "authorised, but the repository is empty"
    );
    let other = get(&format!("{}/v2/test/y/tags/list", reg.url()), Some(&bearer));
    assert_eq!(other.status(), 401, "token for test/x must not open test/y");
}

/// skopeo (containers/image) is a real client: if it can push to and read from the token
/// registry, the token server speaks the protocol the way registries and clients expect.
#[test]
fn skopeo_pushes_through_token_auth() {
    let reg = Registry::start_token("carol", "pw");
    let digest = reg.push_image(&busybox_rootfs_tar(), "test/busybox:1");
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(reg.blob_path(&digest).is_file(), "manifest blob not stored");

    let image = format!("docker://{}/test/busybox:1", reg.addr());
    let inspect = |creds: Option<&str>| {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(c) = creds {
            cmd.args(["--creds", c]);
        }
        cmd.arg(&image).output().expect("run skopeo")
    };
    let ok = inspect(Some("carol:pw"));
    assert!(
        ok.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&ok.stderr),
        reg.logs()
    );
    let manifest: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));
    assert!(!inspect(None).status.success(), "anonymous read allowed");
}

#[test]
fn push_image_to_plain_registry() {
    let reg = Registry::start();
    let digest = reg.push_image(&busybox_rootfs_tar(), "lib/busybox:latest");
    // distribution answers 404 for an OCI manifest unless the client says it accepts one.
    let r = ureq::get(&format!("{}/v2/lib/busybox/manifests/{digest}", reg.url()))
        .set("Accept", "application/vnd.oci.image.manifest.v1+json")
        .call()
        .expect("manifest GET");
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
}
