use super::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;

const B64_USER_PASS: &str = "dXNlcjpwYXNz"; // user:pass

/// A directory on PATH holding fake `docker-credential-*` helpers, set up once per process.
fn helpers_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.path().join(format!("docker-credential-{name}"));
            std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(
            "test",
            r#"read url
case "$1" in
get)
  if [ "$url" = "helper.example" ] || [ "$url" = "https://index.docker.io/v1/" ]; then
    printf '{"ServerURL":"%s","Username":"hu","Secret":"hs"}\n' "$url"
  else
    echo "credentials not found in native keychain"; exit 1
  fi;;
*) exit 1;;
esac
"#,
        );
        script(
            "rec",
            r#"d=$(dirname "$0")
case "$1" in
store) cat > "$d/rec-stored";;
erase) read url; echo "$url" > "$d/rec-erased";;
get) echo "credentials not found in native keychain"; exit 1;;
esac
"#,
        );
        script("broken", "echo boom >&2; exit 3\n");
        let path = std::env::var("PATH").unwrap_or_default();
        std::env::set_var("PATH", format!("{}:{path}", dir.path().display()));
        dir
    })
    .path()
}

fn cfg(json: &str) -> DockerConfig {
    DockerConfig::parse(json).unwrap()
}

fn cred(u: &str, p: &str) -> Credential {
    Credential {
        username: u.into(),
        password: p.into(),
    }
}

#[test]
fn debug_hides_password() {
    let s = format!("{:?}", cred("alice", "s3cret"));
    assert!(s.contains("alice") && !s.contains("s3cret"), "{s}");
}

#[test]
fn missing_and_empty_files_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    let c = DockerConfig::load(&dir.path().join("nope.json")).unwrap();
    assert_eq!(c.get("quay.io").unwrap(), None);
    std::fs::write(dir.path().join("e.json"), "\n").unwrap();
    assert!(DockerConfig::load(&dir.path().join("e.json")).is_ok());
    std::fs::write(dir.path().join("bad.json"), "{").unwrap();
    let err = DockerConfig::load(&dir.path().join("bad.json")).unwrap_err();
    assert!(err.to_string().contains("bad.json"), "{err}");
}

#[test]
fn auth_entries_and_key_spellings() {
    let c = cfg(&format!(
        r#"{{"auths": {{
            "https://index.docker.io/v1/": {{"auth": "{B64_USER_PASS}"}},
            "https://reg.lan:5000": {{"auth": "{B64_USER_PASS}"}},
            "http://other.lan/v2/": {{"username": "u2", "password": "p2"}},
            "quay.io": {{"auth": "Ym9iOnB3OndpdGg6Y29sb25z"}},
            "empty.lan": {{}}
        }}}}"#
    ));
    assert_eq!(c.get("docker.io").unwrap(), Some(cred("user", "pass")));
    assert_eq!(
        c.get("index.docker.io").unwrap(),
        Some(cred("user", "pass"))
    );
    assert_eq!(c.get("reg.lan:5000").unwrap(), Some(cred("user", "pass")));
    assert_eq!(c.get("reg.lan").unwrap(), None);
    assert_eq!(c.get("other.lan").unwrap(), Some(cred("u2", "p2")));
    assert_eq!(
        c.get("quay.io").unwrap(),
        Some(cred("bob", "pw:with:colons"))
    );
    assert_eq!(c.get("empty.lan").unwrap(), None);

    for key in ["index.docker.io", "docker.io"] {
        let c = cfg(&format!(
            r#"{{"auths": {{"{key}": {{"auth": "{B64_USER_PASS}"}}}}}}"#
        ));
        assert_eq!(
            c.get("docker.io").unwrap(),
            Some(cred("user", "pass")),
            "{key}"
        );
    }
    let bad = cfg(r#"{"auths": {"x.lan": {"auth": "!!!"}}}"#);
    assert!(bad.get("x.lan").unwrap_err().to_string().contains("x.lan"));
}

#[test]
fn save_roundtrip_keeps_unknown_fields_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("config.json");
    let mut c = cfg(
        r#"{"psFormat": "table {{.ID}}", "auths": {"quay.io": {"auth": "eDp5"}}, "proxies": {"default": {"httpProxy": "http://p:3128"}}}"#,
    );
    c.set("reg.lan:5000", &cred("user", "pass")).unwrap();
    c.set("docker.io", &cred("hub", "pw")).unwrap();
    c.save(&path).unwrap();

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["psFormat"], "table {{.ID}}");
    assert_eq!(v["proxies"]["default"]["httpProxy"], "http://p:3128");
    assert_eq!(v["auths"]["reg.lan:5000"]["auth"], B64_USER_PASS);
    assert!(v["auths"][DOCKER_HUB_KEY]["auth"].is_string());

    let back = DockerConfig::load(&path).unwrap();
    assert_eq!(
        back.get("reg.lan:5000").unwrap(),
        Some(cred("user", "pass"))
    );
    assert_eq!(back.get("docker.io").unwrap(), Some(cred("hub", "pw")));
    assert_eq!(back.get("quay.io").unwrap(), Some(cred("x", "y")));

    let mut back = back;
    assert!(back.erase("reg.lan:5000").unwrap());
    assert!(!back.erase("reg.lan:5000").unwrap());
    back.save(&path).unwrap();
    let again = DockerConfig::load(&path).unwrap();
    assert_eq!(again.get("reg.lan:5000").unwrap(), None);
    assert_eq!(again.get("quay.io").unwrap(), Some(cred("x", "y")));
    // No temporary files are left next to the config.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
}

#[test]
fn set_replaces_other_spellings() {
    let mut c = cfg(r#"{"auths": {"https://reg.lan": {"auth": "eDp5"}}}"#);
    c.set("reg.lan", &cred("new", "pw")).unwrap();
    assert_eq!(c.registries(), vec!["reg.lan".to_string()]);
    assert_eq!(c.get("reg.lan").unwrap(), Some(cred("new", "pw")));
}

#[test]
fn save_through_symlink_keeps_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.json");
    std::fs::write(&real, "{}").unwrap();
    let link = dir.path().join("config.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut c = DockerConfig::load(&link).unwrap();
    c.set("reg.lan", &cred("a", "b")).unwrap();
    c.save(&link).unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real).unwrap().contains("reg.lan"));
}

#[test]
fn helper_lookup_order() {
    helpers_dir();
    let c = cfg(&format!(
        r#"{{
        "credHelpers": {{"helper.example": "test"}},
        "credsStore": "definitely-not-installed-xyz",
        "auths": {{
            "helper.example": {{"auth": "{B64_USER_PASS}"}},
            "plain.example": {{"auth": "{B64_USER_PASS}"}}
        }}}}"#
    ));
    // credHelpers wins over auths.
    assert_eq!(c.get("helper.example").unwrap(), Some(cred("hu", "hs")));
    // A credsStore that is not installed is skipped, auths still answer.
    assert_eq!(c.get("plain.example").unwrap(), Some(cred("user", "pass")));
    assert_eq!(c.get("none.example").unwrap(), None);

    // credsStore is asked for every registry; "not found" falls through to auths.
    let c = cfg(&format!(
        r#"{{"credsStore": "test", "auths": {{"plain.example": {{"auth": "{B64_USER_PASS}"}}}}}}"#
    ));
    assert_eq!(c.get("docker.io").unwrap(), Some(cred("hu", "hs")));
    assert_eq!(c.get("plain.example").unwrap(), Some(cred("user", "pass")));

    // A helper that fails for another reason is an error naming it.
    let c = cfg(r#"{"credsStore": "broken"}"#);
    let err = c.get("x.example").unwrap_err();
    assert!(
        matches!(err, RegistryError::CredentialHelper { ref helper, .. } if helper == "broken")
    );
    assert!(err.to_string().contains("boom"), "{err}");
}

#[test]
fn set_and_erase_through_helper() {
    let dir = helpers_dir();
    let mut c = cfg(r#"{"credHelpers": {"reg.lan": "rec"}}"#);
    c.set("reg.lan", &cred("u", "p")).unwrap();
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rec-stored")).unwrap()).unwrap();
    assert_eq!(stored["ServerURL"], "reg.lan");
    assert_eq!(stored["Username"], "u");
    assert_eq!(stored["Secret"], "p");
    // The password is not written to the file.
    assert_eq!(c.raw["auths"]["reg.lan"], serde_json::json!({}));
    assert!(c.erase("reg.lan").unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.join("rec-erased"))
            .unwrap()
            .trim(),
        "reg.lan"
    );
    assert!(c.registries().is_empty());

    let mut missing = cfg(r#"{"credsStore": "definitely-not-installed-xyz"}"#);
    assert!(missing.set("reg.lan", &cred("u", "p")).is_err());
}

#[test]
fn default_path_honours_docker_config() {
    let old = std::env::var_os("DOCKER_CONFIG");
    std::env::set_var("DOCKER_CONFIG", "/tmp/dc");
    assert_eq!(
        DockerConfig::default_path(),
        PathBuf::from("/tmp/dc/config.json")
    );
    match old {
        Some(v) => std::env::set_var("DOCKER_CONFIG", v),
        None => std::env::remove_var("DOCKER_CONFIG"),
    }
    assert_eq!(server_key("docker.io"), DOCKER_HUB_KEY);
    assert_eq!(server_key("index.docker.io"), DOCKER_HUB_KEY);
    assert_eq!(server_key("reg.lan:5000"), "reg.lan:5000");
}
