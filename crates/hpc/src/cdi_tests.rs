use super::*;

const JSON: &str = r#"{
  "cdiVersion": "0.6.0",
  "kind": "example.com/dev",
  "containerEdits": {"env": ["SPEC_WIDE=1"]},
  "devices": [
    {"name": "null", "containerEdits": {
      "deviceNodes": [{"path": "/dev/cdinull", "hostPath": "/dev/null", "type": "c",
                       "major": 1, "minor": 3, "permissions": "rw", "uid": 0, "gid": 0}],
      "mounts": [{"hostPath": "/srv/data", "containerPath": "/data", "options": ["ro", "bind"]}],
      "env": ["DEV=null"]}},
    {"name": "zero", "containerEdits": {"deviceNodes": [{"path": "/dev/zero"}]}}
  ]
}"#;

const YAML: &str = "
cdiVersion: 0.8.0
kind: vendor.com/gpu
devices:
  - name: 0
    containerEdits:
      deviceNodes:
        - path: /dev/vgpu0
  - name: '0:1'
    containerEdits:
      env: [MIG=1]
containerEdits:
  hooks:
    - hookName: createContainer
      path: /usr/bin/vendor-hook
      args: [vendor-hook, update-ldcache]
  additionalGids: [0, 44]
";

fn spec(path: &str, text: &str, priority: usize) -> SpecText {
    SpecText {
        path: path.into(),
        text: text.into(),
        priority,
    }
}

fn registry(files: &[SpecText]) -> Registry {
    Registry::new(&["/etc/cdi".into(), "/var/run/cdi".into()], files)
}

#[test]
fn json_device_edits_come_with_their_source() {
    let r = registry(&[spec("/etc/cdi/ex.json", JSON, 0)]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let e = r.resolve(&["example.com/dev=null".into()]).unwrap();
    let env: Vec<_> = e.env.iter().map(|s| s.value.clone()).collect();
    assert_eq!(
        env,
        [
            ("SPEC_WIDE".into(), "1".into()),
            ("DEV".into(), "null".into())
        ]
    );
    assert_eq!(
        e.env[0].source,
        "cdi spec /etc/cdi/ex.json (example.com/dev)"
    );
    assert_eq!(
        e.env[1].source,
        "cdi device example.com/dev=null in /etc/cdi/ex.json"
    );
    let n = &e.device_nodes[0].value;
    assert_eq!(
        (n.path.as_str(), n.host_path.as_str(), n.kind.as_deref()),
        ("/dev/cdinull", "/dev/null", Some("c"))
    );
    assert_eq!(
        (n.major, n.minor, n.permissions.as_str()),
        (Some(1), Some(3), "rw")
    );
    let m = &e.mounts[0].value;
    assert_eq!(
        (m.host_path.as_str(), m.container_path.as_str()),
        ("/srv/data", "/data")
    );
    assert_eq!(m.options, ["ro", "bind"]);
}

#[test]
fn a_node_without_host_path_or_permissions_takes_the_defaults() {
    let r = registry(&[spec("/etc/cdi/ex.json", JSON, 0)]);
    let e = r.resolve(&["example.com/dev=zero".into()]).unwrap();
    let n = &e.device_nodes[0].value;
    assert_eq!(n.host_path, "/dev/zero");
    assert_eq!(n.permissions, "rwm");
}

#[test]
fn yaml_specs_with_hooks_and_gids() {
    let r = registry(&[spec("/var/run/cdi/v.yaml", YAML, 1)]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let e = r.resolve(&["vendor.com/gpu=0:1".into()]).unwrap();
    assert_eq!(e.hooks.len(), 1);
    assert_eq!(e.hooks[0].value.hook_name, "createContainer");
    assert_eq!(e.hooks[0].value.args, ["vendor-hook", "update-ldcache"]);
    // A gid of 0 is dropped, as the spec says.
    let gids: Vec<u32> = e.additional_gids.iter().map(|g| g.value).collect();
    assert_eq!(gids, [44]);
    assert_eq!(e.env[0].value, ("MIG".to_string(), "1".to_string()));
}

#[test]
fn all_means_every_device_of_the_kind_and_spec_edits_apply_once() {
    let r = registry(&[spec("/etc/cdi/ex.json", JSON, 0)]);
    let e = r
        .resolve(&["example.com/dev=all".into(), "example.com/dev=null".into()])
        .unwrap();
    let paths: Vec<&str> = e
        .device_nodes
        .iter()
        .map(|n| n.value.path.as_str())
        .collect();
    assert_eq!(paths, ["/dev/cdinull", "/dev/zero"]);
    let spec_wide = e.env.iter().filter(|v| v.value.0 == "SPEC_WIDE").count();
    assert_eq!(spec_wide, 1);
}

#[test]
fn unknown_devices_list_what_is_offered() {
    let r = registry(&[
        spec("/etc/cdi/ex.json", JSON, 0),
        spec("/etc/cdi/v.yaml", YAML, 0),
    ]);
    let err = r
        .resolve(&["example.com/dev=nope".into()])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown cdi device example.com/dev=nope: the cdi specs offer example.com/dev=null, \
         example.com/dev=zero, vendor.com/gpu=0, vendor.com/gpu=0:1"
    );
    let err = registry(&[])
        .resolve(&["other.org/x=y".into()])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown cdi device other.org/x=y: no cdi devices are defined in /etc/cdi, /var/run/cdi"
    );
}

#[test]
fn later_directories_win_and_equal_priorities_conflict() {
    let other = JSON.replace("DEV=null", "DEV=override");
    let r = registry(&[
        spec("/etc/cdi/ex.json", JSON, 0),
        spec("/var/run/cdi/ex.json", &other, 1),
    ]);
    let e = r.resolve(&["example.com/dev=null".into()]).unwrap();
    assert!(e.env.iter().any(|v| v.value.1 == "override"));
    let r = registry(&[
        spec("/etc/cdi/a.json", JSON, 0),
        spec("/etc/cdi/b.json", &other, 0),
    ]);
    let err = r
        .resolve(&["example.com/dev=null".into()])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cdi device example.com/dev=null is defined twice, in /etc/cdi/a.json and /etc/cdi/b.json"
    );
}

#[test]
fn broken_specs_are_skipped_with_one_line_each() {
    let cases = [
        ("{", "invalid cdi spec /etc/cdi/x.json: EOF while parsing"),
        (
            r#"{"cdiVersion": "0.2.0", "kind": "a.b/c", "devices": [{"name": "d"}]}"#,
            "cdiVersion \"0.2.0\" is not supported (0.3.0 to 0.8.x are)",
        ),
        (
            r#"{"cdiVersion": "0.5.0", "kind": "nokind", "devices": [{"name": "d"}]}"#,
            "kind \"nokind\" is not vendor.com/class",
        ),
        (
            r#"{"cdiVersion": "0.5.0", "kind": "a.b/c", "devices": []}"#,
            "it defines no devices",
        ),
        (
            r#"{"cdiVersion": "0.5.0", "kind": "a.b/c", "devices": [{"name": "d",
               "containerEdits": {"deviceNodes": [{"path": "dev/x"}]}}]}"#,
            "device node path \"dev/x\" is not an absolute path",
        ),
        (
            r#"{"cdiVersion": "0.5.0", "kind": "a.b/c", "devices": [{"name": "d",
               "containerEdits": {"hooks": [{"hookName": "later", "path": "/x"}]}}]}"#,
            "unknown hook name \"later\"",
        ),
        (
            r#"{"cdiVersion": "0.5.0", "kind": "a.b/c", "devices": [{"name": "d",
               "containerEdits": {"env": ["NOVALUE"]}}]}"#,
            "env entry \"NOVALUE\" is not NAME=value",
        ),
    ];
    for (text, want) in cases {
        let r = registry(&[spec("/etc/cdi/x.json", text, 0)]);
        assert_eq!(r.warnings.len(), 1, "{text}");
        assert!(r.warnings[0].contains(want), "{}", r.warnings[0]);
        assert!(!r.warnings[0].contains('\n'), "{}", r.warnings[0]);
    }
    let r = registry(&[spec("/etc/cdi/x.yaml", "kind: [", 0)]);
    assert!(r.warnings[0].starts_with("invalid cdi spec /etc/cdi/x.yaml: "));
    assert!(!r.warnings[0].contains('\n'), "{}", r.warnings[0]);
}

#[test]
fn qualified_names() {
    assert!(is_qualified_name("nvidia.com/gpu=0"));
    assert!(is_qualified_name("vendor.com/class=all"));
    assert!(is_qualified_name("foo.bar.baz/foo-bar123.B_az=x"));
    assert!(!is_qualified_name("/dev/null"));
    assert!(!is_qualified_name("/dev/a=b/c"));
    assert!(!is_qualified_name("foo=bar"));
    assert!(!is_qualified_name("vendor.com/foo/bar=x"));
    assert!(!is_qualified_name("vendor.com/class="));
    assert!(!is_qualified_name("vendor.com/class=-x"));
    assert_eq!(
        parse_qualified("nvidia.com/gpu=GPU-1a2b").unwrap(),
        ("nvidia.com/gpu", "GPU-1a2b")
    );
}

#[test]
fn spec_paths_keep_directory_priority_and_name_order() {
    let dirs = vec![
        (
            "/etc/cdi".to_string(),
            vec![
                "b.yaml".into(),
                "a.json".into(),
                "README".into(),
                ".x.json".into(),
            ],
        ),
        ("/var/run/cdi/".to_string(), vec!["n.yml".into()]),
    ];
    assert_eq!(
        spec_paths(&dirs),
        [
            ("/etc/cdi/a.json".to_string(), 0),
            ("/etc/cdi/b.yaml".to_string(), 0),
            ("/var/run/cdi/n.yml".to_string(), 1),
        ]
    );
}
