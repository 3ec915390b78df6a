//! Bearer-token authentication and redirected blob downloads against a scripted server.

#[path = "support/fake.rs"]
mod fake;

use berth_registry::credentials::{Credential, DockerConfig};
use berth_registry::{Client, RegistryError, RegistryOptions, OCI_MANIFEST};
use berth_types::{Digest, ImageRef, Platform};
use fake::{Answer, Fake};

const BASIC_USER_PASS: &str = "Basic dXNlcjpwYXNz";

fn manifest() -> String {
    let d = Digest::sha256_of(b"c");
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":1}},"layers":[]}}"#
    )
}

#[test]
fn bearer_token_is_fetched_cached_and_not_leaked_on_redirect() {
    let cdn = Fake::start(|_| Answer::new(200, "blob-bytes"));
    let cdn_addr = cdn.addr.clone();
    let registry = Fake::start(move |req| {
        let realm_host = req.headers.get("host").cloned().unwrap_or_default();
        if req.target.starts_with("/token") {
            return if req.headers.get("authorization").map(String::as_str) == Some(BASIC_USER_PASS)
            {
                Answer::new(200, r#"{"access_token":"tok","expires_in":300}"#)
            } else {
                Answer::new(401, "")
            };
        }
        if req.headers.get("authorization").map(String::as_str) != Some("Bearer tok") {
            return Answer::new(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}"#).header(
                "WWW-Authenticate",
                &format!(
                    r#"Bearer realm="http://{realm_host}/token",service="fake, svc",scope="repository:app:pull""#
                ),
            );
        }
        if req.target.contains("/manifests/") {
            return Answer::new(200, manifest()).header("Content-Type", OCI_MANIFEST);
        }
        if req.target.contains("/blobs/") {
            return Answer::new(307, "").header("Location", &format!("http://{cdn_addr}/data"));
        }
        Answer::new(200, "{}")
    });

    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("config.json");
    let mut cfg = DockerConfig::default();
    cfg.set(
        &registry.addr,
        &Credential {
            username: "user".into(),
            password: "pass".into(),
        },
    )
    .unwrap();
    cfg.save(&cfg_path).unwrap();
    let client = Client::new(RegistryOptions {
        insecure: vec![registry.addr.clone()],
        docker_config: Some(cfg_path),
        ..RegistryOptions::default()
    })
    .unwrap();

    let image = ImageRef::parse(&format!("{}/app:v1", registry.addr)).unwrap();
    let r = client.resolve(&image, &Platform::host()).unwrap();
    assert_eq!(r.manifest.digest, Digest::sha256_of(manifest().as_bytes()));
    client.resolve(&image, &Platform::host()).unwrap();

    let token_requests: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.target.starts_with("/token"))
        .collect();
    assert_eq!(token_requests.len(), 1, "the token is cached");
    let t = &token_requests[0].target;
    assert!(t.contains("service=fake%2C+svc"), "{t}");
    assert!(t.contains("scope=repository%3Aapp%3Apull"), "{t}");
    assert!(t.contains("account=user"), "{t}");

    let mut blob = client
        .blob(&image, &Digest::sha256_of(b"blob-bytes"), 0)
        .unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut blob, &mut got).unwrap();
    assert_eq!(got, "blob-bytes");
    let cdn_seen = cdn.requests();
    assert_eq!(cdn_seen.len(), 1);
    assert_eq!(cdn_seen[0].method, "GET");
    assert!(
        !cdn_seen[0].headers.contains_key("authorization"),
        "registry credentials must not follow a redirect to another host"
    );

    // Login: the token server judges the password.
    client.check_login(&registry.addr, "user", "pass").unwrap();
    assert!(matches!(
        client.check_login(&registry.addr, "user", "nope"),
        Err(RegistryError::Unauthorized { .. })
    ));
}

#[test]
fn schema1_is_refused_and_tag_digest_is_checked() {
    let registry = Fake::start(|req| {
        if req.target.ends_with("/old") {
            return Answer::new(200, r#"{"schemaVersion":1,"fsLayers":[]}"#).header(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
            );
        }
        Answer::new(200, manifest())
            .header("Content-Type", OCI_MANIFEST)
            .header(
                "Docker-Content-Digest",
                &Digest::sha256_of(b"other").to_string(),
            )
    });
    let client = Client::new(RegistryOptions {
        insecure: vec![registry.addr.clone()],
        docker_config: Some("/nonexistent/config.json".into()),
        ..RegistryOptions::default()
    })
    .unwrap();
    let old = ImageRef::parse(&format!("{}/app:old", registry.addr)).unwrap();
    let err = client.resolve(&old, &Platform::host()).unwrap_err();
    assert!(
        matches!(err, RegistryError::UnsupportedManifest { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("v1+prettyjws"), "{err}");
    let lying = ImageRef::parse(&format!("{}/app:v1", registry.addr)).unwrap();
    let err = client.resolve(&lying, &Platform::host()).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
}
