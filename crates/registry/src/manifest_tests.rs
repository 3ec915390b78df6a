use super::*;

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn index_json() -> String {
    format!(
        r#"{{
  "schemaVersion": 2,
  "mediaType": "{DOCKER_MANIFEST_LIST}",
  "manifests": [
    {{"mediaType": "{DOCKER_MANIFEST}", "digest": "{}", "size": 10,
      "platform": {{"architecture": "amd64", "os": "linux"}}}},
    {{"mediaType": "{DOCKER_MANIFEST}", "digest": "{}", "size": 10,
      "platform": {{"architecture": "arm64", "os": "linux"}}}},
    {{"mediaType": "{DOCKER_MANIFEST}", "digest": "{}", "size": 10,
      "platform": {{"architecture": "arm64", "os": "linux", "variant": "v8"}}}},
    {{"mediaType": "{DOCKER_MANIFEST}", "digest": "{}", "size": 10,
      "platform": {{"architecture": "arm", "os": "linux", "variant": "v7"}}}},
    {{"mediaType": "{OCI_MANIFEST}", "digest": "{}", "size": 10,
      "platform": {{"architecture": "unknown", "os": "unknown"}}}}
  ]
}}"#,
        d('a'),
        d('b'),
        d('c'),
        d('e'),
        d('f')
    )
}

#[test]
fn docker_media_types_deserialize() {
    let idx: ImageIndex = serde_json::from_str(&index_json()).unwrap();
    assert_eq!(
        idx.media_type(),
        &Some(MediaType::Other(DOCKER_MANIFEST_LIST.to_string()))
    );
    let m = format!(
        r#"{{"schemaVersion": 2, "mediaType": "{DOCKER_MANIFEST}",
        "config": {{"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": "{}"}},
        "layers": [{{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 9, "digest": "{}"}}]}}"#,
        d('1'),
        d('2')
    );
    let m: ImageManifest = serde_json::from_str(&m).unwrap();
    assert_eq!(
        m.media_type(),
        &Some(MediaType::Other(DOCKER_MANIFEST.to_string()))
    );
    assert_eq!(m.layers().len(), 1);
    assert_eq!(m.config().digest().to_string(), d('1'));
}

#[test]
fn platform_selection() {
    let idx: ImageIndex = serde_json::from_str(&index_json()).unwrap();
    let pick =
        |p: &str| select_platform(&idx, &p.parse().unwrap(), "x").map(|d| d.digest().to_string());
    assert_eq!(pick("linux/amd64").unwrap(), d('a'));
    assert_eq!(pick("linux/x86_64").unwrap(), d('a'));
    // arm64 means arm64/v8: the exact variant wins over the entry without one.
    assert_eq!(pick("linux/arm64").unwrap(), d('c'));
    assert_eq!(pick("linux/arm/v7").unwrap(), d('e'));
    match pick("linux/s390x").unwrap_err() {
        RegistryError::NoPlatform {
            platform,
            available,
            ..
        } => {
            assert_eq!(platform, "linux/s390x");
            assert_eq!(
                available,
                vec![
                    "linux/amd64",
                    "linux/arm64",
                    "linux/arm64/v8",
                    "linux/arm/v7"
                ]
            );
        }
        e => panic!("unexpected {e}"),
    }
    let err = pick("linux/arm/v6").unwrap_err().to_string();
    assert!(
        err.contains("linux/arm/v6") && err.contains("linux/amd64"),
        "{err}"
    );
}

/// (Content-Type, body, expected kind and media type or refused media type).
type Case<'a> = (Option<&'a str>, &'a str, Result<(Kind, &'a str), &'a str>);

#[test]
fn classification() {
    let cases: &[Case] = &[
        (Some(OCI_MANIFEST), "{}", Ok((Kind::Manifest, OCI_MANIFEST))),
        (
            Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
            "{}",
            Ok((Kind::Manifest, DOCKER_MANIFEST)),
        ),
        (Some(OCI_INDEX), "{}", Ok((Kind::Index, OCI_INDEX))),
        (
            Some(DOCKER_MANIFEST_LIST),
            "{}",
            Ok((Kind::Index, DOCKER_MANIFEST_LIST)),
        ),
        (
            Some(DOCKER_SCHEMA1_SIGNED),
            "{}",
            Err(DOCKER_SCHEMA1_SIGNED),
        ),
        (
            Some("application/json"),
            r#"{"schemaVersion":1,"fsLayers":[]}"#,
            Err(DOCKER_SCHEMA1),
        ),
        (
            Some("application/json"),
            r#"{"schemaVersion":2,"manifests":[]}"#,
            Ok((Kind::Index, OCI_INDEX)),
        ),
        (
            None,
            r#"{"schemaVersion":2,"config":{},"layers":[]}"#,
            Ok((Kind::Manifest, OCI_MANIFEST)),
        ),
        (
            Some("text/plain"),
            &format!(r#"{{"mediaType":"{DOCKER_MANIFEST}"}}"#),
            Ok((Kind::Manifest, DOCKER_MANIFEST)),
        ),
        (
            Some("application/vnd.oci.artifact.manifest.v1+json"),
            "{}",
            Err("application/vnd.oci.artifact.manifest.v1+json"),
        ),
    ];
    for (ct, body, want) in cases {
        let got = classify(*ct, body.as_bytes());
        let want = want
            .map(|(k, t)| (k, t.to_string()))
            .map_err(|t| t.to_string());
        assert_eq!(got, want, "{ct:?} {body}");
    }
}

#[test]
fn errors_prefer_registry_unless_unreachable() {
    let nf = |r: &str| RegistryError::NotFound {
        reference: r.into(),
    };
    let unreachable = || RegistryError::Unreachable {
        address: "r".into(),
        source: "down".into(),
    };
    assert!(
        matches!(most_telling(vec![nf("mirror"), nf("origin")]), RegistryError::NotFound { reference } if reference == "origin")
    );
    assert!(
        matches!(most_telling(vec![nf("mirror"), unreachable()]), RegistryError::NotFound { reference } if reference == "mirror")
    );
    assert!(matches!(
        most_telling(vec![unreachable(), unreachable()]),
        RegistryError::Unreachable { .. }
    ));
}
