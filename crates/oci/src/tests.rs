//! Whole-spec tests: each module tests its own rule; these check that `build` wires them.

use oci_spec::image::{ConfigBuilder, ImageConfiguration, ImageConfigurationBuilder};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::*;

fn image(user: Option<&str>) -> ImageConfiguration {
    let mut c = ConfigBuilder::default()
        .cmd(vec!["sh".to_string()])
        .env(vec!["PATH=/usr/bin:/bin".to_string()])
        .working_dir("/srv");
    if let Some(u) = user {
        c = c.user(u);
    }
    ImageConfigurationBuilder::default()
        .config(c.build().unwrap())
        .build()
        .unwrap()
}

fn files() -> ImageFiles {
    ImageFiles {
        passwd: Some("root:x:0:0:root:/root:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n".into()),
        group: Some("root:x:0:\nweb:x:33:\n".into()),
    }
}

fn alice(subids: Option<(u32, u32)>) -> Caller {
    Caller {
        uid: 1000,
        gid: 1000,
        groups: vec![1000, 2000],
        user_name: "alice".into(),
        home: "/home/alice".into(),
        cwd: "/project/run".into(),
        env: vec![
            ("LANG".into(), "C.UTF-8".into()),
            ("LD_PRELOAD".into(), "/x.so".into()),
        ],
        subuids: subids,
        subgids: subids,
    }
}

fn namespaces(spec: &Spec) -> Vec<LinuxNamespaceType> {
    let linux = spec.linux().as_ref().unwrap();
    linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect()
}

fn env(spec: &Spec) -> Vec<String> {
    spec.process().as_ref().unwrap().env().clone().unwrap()
}

#[test]
fn docker_profile_is_root_in_a_full_sandbox() {
    let opts = RunOptions {
        caller: alice(Some((100000, 65536))),
        container_id: "abcdef0123456789".into(),
        tty: true,
        ..RunOptions::default()
    };
    let built = build(&image(None), &opts, &files()).unwrap();
    let spec = &built.spec;
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().as_ref().unwrap(), &["sh"]);
    assert_eq!((process.user().uid(), process.user().gid()), (0, 0));
    assert_eq!(process.cwd().to_str(), Some("/srv"));
    assert_eq!(process.terminal(), Some(true));
    assert_eq!(process.no_new_privileges(), Some(true));
    assert_eq!(spec.hostname().as_deref(), Some("abcdef012345"));
    assert_eq!(
        env(spec),
        [
            "PATH=/usr/bin:/bin",
            "HOSTNAME=abcdef012345",
            "TERM=xterm",
            "HOME=/root"
        ]
    );
    use LinuxNamespaceType::*;
    assert_eq!(
        namespaces(spec),
        [User, Mount, Pid, Ipc, Uts, Network, Cgroup]
    );
    let linux = spec.linux().as_ref().unwrap();
    let uids = linux.uid_mappings().as_ref().unwrap();
    assert_eq!(uids.len(), 2);
    assert_eq!(
        (uids[0].container_id(), uids[0].host_id(), uids[0].size()),
        (0, 1000, 1)
    );
    assert_eq!(
        (uids[1].container_id(), uids[1].host_id(), uids[1].size()),
        (1, 100000, 65536)
    );
    assert_eq!(
        linux.masked_paths().as_ref().unwrap().len(),
        MASKED_PATHS.len()
    );
    assert!(linux.resources().is_none());
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));
    assert!(spec.annotations().is_none());
    assert!(built.files.is_empty() && built.warnings.is_empty());
    assert_eq!(spec.mounts().as_ref().unwrap().len(), 6);
}

#[test]
fn docker_profile_image_user_needs_subordinate_ids() {
    let opts = RunOptions {
        caller: alice(None),
        ..RunOptions::default()
    };
    let err = build(&image(Some("web")), &opts, &files()).unwrap_err();
    assert!(
        matches!(
            err,
            OciError::Unmapped {
                what: "uid",
                id: 33,
                ..
            }
        ),
        "{err}"
    );

    let opts = RunOptions {
        caller: alice(Some((100000, 65536))),
        ..RunOptions::default()
    };
    let built = build(&image(Some("web")), &opts, &files()).unwrap();
    let user = built.spec.process().as_ref().unwrap().user().clone();
    assert_eq!((user.uid(), user.gid()), (33, 33));
    assert!(env(&built.spec).contains(&"HOME=/var/www".to_string()));
    let caps = built
        .spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    assert!(caps.effective().as_ref().unwrap().is_empty());
}

#[test]
fn hpc_profile_is_the_caller_on_the_host() {
    let opts = RunOptions {
        profile: Profile::Hpc,
        caller: alice(None),
        extra_env: vec![("OMP_NUM_THREADS".into(), "2".into())],
        site_mounts: vec![MountSpec {
            kind: MountKind::Bind,
            source: "/softs".into(),
            target: "/softs".into(),
            readonly: true,
            options: vec![],
        }],
        container_id: "abcdef0123456789".into(),
        ..RunOptions::default()
    };
    let built = build(&image(Some("web")), &opts, &files()).unwrap();
    let spec = &built.spec;
    let process = spec.process().as_ref().unwrap();
    assert_eq!((process.user().uid(), process.user().gid()), (1000, 1000));
    assert_eq!(process.cwd().to_str(), Some("/project/run"));
    assert!(spec.hostname().is_none());
    use LinuxNamespaceType::*;
    assert_eq!(namespaces(spec), [User, Mount]);
    let linux = spec.linux().as_ref().unwrap();
    let gids = linux.gid_mappings().as_ref().unwrap();
    assert_eq!(gids.len(), 1);
    assert_eq!(
        (gids[0].container_id(), gids[0].host_id(), gids[0].size()),
        (1000, 1000, 1)
    );
    let env = env(spec);
    assert!(env.contains(&"LANG=C.UTF-8".to_string()));
    assert!(env.contains(&"HOME=/home/alice".to_string()));
    assert!(env.contains(&"OMP_NUM_THREADS=2".to_string()));
    assert!(!env.iter().any(|e| e.starts_with("LD_PRELOAD=")));
    assert_eq!(
        spec.annotations()
            .as_ref()
            .unwrap()
            .get(KEEP_GROUPS_ANNOTATION)
            .map(String::as_str),
        Some("1")
    );
    let dests: Vec<String> = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        dests[5..],
        ["/home/alice", "/tmp", "/var/tmp", "/project/run", "/softs"]
    );
    assert_eq!(dests[0], "/proc");
    assert_eq!(built.files.len(), 1, "alice is not in the image's passwd");
}

#[test]
fn hpc_flags_win_over_the_profile() {
    let opts = RunOptions {
        profile: Profile::Hpc,
        caller: alice(Some((100000, 65536))),
        network: Some(NetworkMode::Private),
        pid_host: Some(false),
        hostname: Some("node".into()),
        userns: Some(UsernsMode::Auto),
        ..RunOptions::default()
    };
    let built = build(&image(None), &opts, &files()).unwrap();
    use LinuxNamespaceType::*;
    assert_eq!(namespaces(&built.spec), [User, Mount, Pid, Uts, Network]);
    assert_eq!(built.spec.hostname().as_deref(), Some("node"));
    let user = built.spec.process().as_ref().unwrap().user().clone();
    assert_eq!(
        user.uid(),
        0,
        "--userns=auto makes the image's USER apply again"
    );
    let mounts = built.spec.mounts().clone().unwrap();
    assert_eq!(mounts[0].typ().as_deref(), Some("proc"));
    assert_eq!(mounts[4].typ().as_deref(), Some("sysfs"));
}

#[test]
fn privileged_read_only_and_limits_reach_the_spec() {
    let opts = RunOptions {
        caller: alice(None),
        privileged: true,
        read_only: true,
        ulimits: vec![("nofile".into(), 100, 200)],
        ..RunOptions::default()
    };
    let built = build(&image(None), &opts, &files()).unwrap();
    let spec = &built.spec;
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.no_new_privileges(), Some(false));
    assert_eq!(process.rlimits().as_ref().unwrap().len(), 1);
    let caps = process.capabilities().as_ref().unwrap();
    assert_eq!(caps.bounding().as_ref().unwrap().len(), ALL_CAPS.len());
    assert!(spec
        .linux()
        .as_ref()
        .unwrap()
        .masked_paths()
        .as_ref()
        .unwrap()
        .is_empty());
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
}

#[test]
fn errors_surface_from_build() {
    let none = ImageConfiguration::default();
    let opts = RunOptions {
        caller: alice(None),
        ..RunOptions::default()
    };
    assert_eq!(
        build(&none, &opts, &files()).unwrap_err(),
        OciError::NoCommand
    );
    let opts = RunOptions {
        caller: alice(None),
        userns: Some(UsernsMode::Host),
        ..RunOptions::default()
    };
    assert_eq!(
        build(&image(None), &opts, &files()).unwrap_err(),
        OciError::UsernsHostNeedsRoot(1000)
    );
    let opts = RunOptions {
        caller: Caller::default(),
        userns: Some(UsernsMode::Host),
        ..RunOptions::default()
    };
    let built = build(&image(None), &opts, &files()).unwrap();
    assert!(built
        .spec
        .linux()
        .as_ref()
        .unwrap()
        .uid_mappings()
        .is_none());
    assert!(!namespaces(&built.spec).contains(&LinuxNamespaceType::User));
}

#[test]
fn spec_serialises_as_runtime_json() {
    let opts = RunOptions {
        caller: alice(None),
        ..RunOptions::default()
    };
    let built = build(&image(None), &opts, &files()).unwrap();
    let json = serde_json::to_value(&built.spec).unwrap();
    assert_eq!(json["ociVersion"], oci_spec::runtime::VERSION);
    assert_eq!(json["root"]["path"], "rootfs");
    assert_eq!(json["linux"]["uidMappings"][0]["hostID"], 1000);
    assert_eq!(json["process"]["user"]["uid"], 0);
}
