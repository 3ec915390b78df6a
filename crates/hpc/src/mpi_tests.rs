use std::collections::HashMap;

use super::*;

/// A host described by maps: links, ELF objects, directories and plain files.
#[derive(Default)]
struct FakeHost {
    links: HashMap<String, String>,
    elves: HashMap<String, ElfDynamic>,
    dirs: HashMap<String, Vec<String>>,
    files: Vec<String>,
}

impl FakeHost {
    fn lib(&mut self, path: &str, soname: &str, needed: &[&str]) {
        self.elves.insert(
            path.to_string(),
            ElfDynamic {
                soname: Some(soname.to_string()),
                needed: needed.iter().map(|s| s.to_string()).collect(),
                search: Vec::new(),
            },
        );
    }
    fn real(&self, path: &str) -> String {
        self.links
            .get(path)
            .cloned()
            .unwrap_or_else(|| path.to_string())
    }
}

impl HostFiles for FakeHost {
    fn elf(&mut self, path: &str) -> Option<ElfDynamic> {
        self.elves.get(&self.real(path)).cloned()
    }
    fn canonical(&mut self, path: &str) -> Option<String> {
        let r = self.real(path);
        (self.elves.contains_key(&r) || self.dirs.contains_key(&r)).then_some(r)
    }
    fn list(&mut self, dir: &str) -> Option<Vec<String>> {
        self.dirs.get(dir).cloned()
    }
    fn is_file(&mut self, path: &str) -> bool {
        self.files.iter().any(|f| f == path)
    }
}

const LIB: &str = "/usr/lib/x86_64-linux-gnu";

/// Debian 12's Open MPI 4.1 as laid out on disk, reduced to a few files.
fn debian_openmpi() -> (FakeHost, Vec<(String, String)>) {
    let mut h = FakeHost::default();
    h.links.insert(
        format!("{LIB}/libmpi.so.40"),
        format!("{LIB}/libmpi.so.40.30.4"),
    );
    h.lib(
        &format!("{LIB}/libmpi.so.40.30.4"),
        "libmpi.so.40",
        &[
            "libopen-rte.so.40",
            "libopen-pal.so.40",
            "libhwloc.so.15",
            "libc.so.6",
        ],
    );
    h.lib(
        &format!("{LIB}/libopen-rte.so.40"),
        "libopen-rte.so.40",
        &["libopen-pal.so.40", "libm.so.6"],
    );
    h.lib(
        &format!("{LIB}/libopen-pal.so.40"),
        "libopen-pal.so.40",
        &["libhwloc.so.15", "libz.so.1"],
    );
    h.lib(
        &format!("{LIB}/libhwloc.so.15"),
        "libhwloc.so.15",
        &["libc.so.6"],
    );
    h.lib(&format!("{LIB}/libz.so.1"), "libz.so.1", &[]);
    let plugins = format!("{LIB}/openmpi/lib/openmpi3");
    h.dirs.insert(
        plugins.clone(),
        vec!["mca_pmix_ext3x.so".into(), "mca_btl_vader.so".into()],
    );
    h.lib(
        &format!("{plugins}/mca_pmix_ext3x.so"),
        "",
        &["libpmix.so.2", "libopen-pal.so.40"],
    );
    h.lib(
        &format!("{plugins}/mca_btl_vader.so"),
        "",
        &["libfabric-missing.so.1"],
    );
    h.links.insert(
        format!("{LIB}/libpmix.so.2"),
        format!("{LIB}/pmix2/lib/libpmix.so.2.6.2"),
    );
    h.lib(
        &format!("{LIB}/pmix2/lib/libpmix.so.2.6.2"),
        "libpmix.so.2",
        &["libevent_core-2.1.so.7"],
    );
    h.lib(
        &format!("{LIB}/libevent_core-2.1.so.7"),
        "libevent_core-2.1.so.7",
        &[],
    );
    h.dirs.insert(
        format!("{LIB}/pmix2/lib/pmix"),
        vec!["pmix_mca_prm_slurm.so".into()],
    );
    h.lib(
        &format!("{LIB}/pmix2/lib/pmix/pmix_mca_prm_slurm.so"),
        "",
        &[],
    );
    h.dirs
        .insert("/usr/share/openmpi".into(), vec!["help-mpi-api.txt".into()]);
    h.dirs.insert(
        "/etc/openmpi".into(),
        vec!["openmpi-mca-params.conf".into()],
    );
    let cache = [
        "libmpi.so.40",
        "libopen-rte.so.40",
        "libopen-pal.so.40",
        "libhwloc.so.15",
        "libz.so.1",
        "libpmix.so.2",
        "libevent_core-2.1.so.7",
    ]
    .iter()
    .map(|n| (n.to_string(), format!("{LIB}/{n}")))
    .collect();
    (h, cache)
}

#[test]
fn host_mpi_binds_the_closure_plugins_and_data_but_not_libc() {
    let (mut h, cache) = debian_openmpi();
    let m = host_mpi(&format!("{LIB}/libmpi.so.40"), &cache, &mut h).unwrap();
    assert_eq!(m.library.soname, "libmpi.so.40");
    assert_eq!(m.library.flavour, MpiFlavour::OpenMpi);
    let mounts: Vec<(String, String, bool)> = m
        .contribution
        .mounts
        .iter()
        .map(|s| s.value.clone())
        .collect();
    let at = |target: &str| mounts.iter().find(|m| m.1 == target).map(|m| m.0.clone());
    assert_eq!(
        at("/usr/lib/berth/host-mpi/libmpi.so.40").as_deref(),
        Some("/usr/lib/x86_64-linux-gnu/libmpi.so.40.30.4")
    );
    assert_eq!(
        at("/usr/lib/berth/host-mpi/libpmix.so.2").as_deref(),
        Some("/usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so.2.6.2")
    );
    for name in [
        "libopen-rte.so.40",
        "libopen-pal.so.40",
        "libhwloc.so.15",
        "libz.so.1",
        "libevent_core-2.1.so.7",
    ] {
        assert!(
            at(&format!("{HOST_MPI_DIR}/{name}")).is_some(),
            "{name}: {mounts:?}"
        );
    }
    for dir in [
        "/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3",
        "/usr/lib/x86_64-linux-gnu/pmix2/lib/pmix",
        "/usr/share/openmpi",
        "/etc/openmpi",
    ] {
        assert_eq!(at(dir).as_deref(), Some(dir), "{mounts:?}");
    }
    assert!(mounts.iter().all(|m| m.2), "all read-only");
    assert!(!mounts
        .iter()
        .any(|m| m.1.contains("libc.so") || m.1.contains("libm.so")));
    assert_eq!(
        m.contribution.warnings.len(),
        1,
        "{:?}",
        m.contribution.warnings
    );
    assert!(m.contribution.warnings[0].contains("libfabric-missing.so.1"));
    assert_eq!(
        m.contribution.env_pairs(),
        [("LD_LIBRARY_PATH".to_string(), HOST_MPI_DIR.to_string())]
    );
}

#[test]
fn run_paths_with_origin_are_followed() {
    let mut h = FakeHost::default();
    h.lib(
        "/opt/ompi/lib/libmpi.so.40",
        "libmpi.so.40",
        &["libopen-pal.so.40"],
    );
    h.elves
        .get_mut("/opt/ompi/lib/libmpi.so.40")
        .unwrap()
        .search = vec!["$ORIGIN".into()];
    h.lib("/opt/ompi/lib/libopen-pal.so.40", "libopen-pal.so.40", &[]);
    h.dirs.insert(
        "/opt/ompi/lib/openmpi".into(),
        vec!["mca_btl_self.so".into()],
    );
    h.lib("/opt/ompi/lib/openmpi/mca_btl_self.so", "", &[]);
    h.dirs.insert("/opt/ompi/share/openmpi".into(), vec![]);
    h.files.push("/opt/ompi/etc/openmpi-mca-params.conf".into());
    let m = host_mpi("/opt/ompi/lib/libmpi.so.40", &[], &mut h).unwrap();
    let targets: Vec<String> = m
        .contribution
        .mounts
        .iter()
        .map(|s| s.value.1.clone())
        .collect();
    assert!(
        targets.contains(&format!("{HOST_MPI_DIR}/libopen-pal.so.40")),
        "{targets:?}"
    );
    for t in [
        "/opt/ompi/lib/openmpi",
        "/opt/ompi/share/openmpi",
        "/opt/ompi/etc/openmpi-mca-params.conf",
    ] {
        assert!(targets.contains(&t.to_string()), "{t}: {targets:?}");
    }
    assert!(m.contribution.warnings.is_empty());
}

fn lib(soname: &str, flavour: MpiFlavour) -> MpiLibrary {
    MpiLibrary {
        soname: soname.into(),
        flavour,
        path: format!("/usr/lib/{soname}"),
    }
}

#[test]
fn abi_check_compares_soname_and_flavour() {
    let host = lib("libmpi.so.40", MpiFlavour::OpenMpi);
    assert_eq!(
        check_abi(&host, Some(&lib("libmpi.so.40", MpiFlavour::OpenMpi))),
        Ok(())
    );
    let err = check_abi(&host, Some(&lib("libmpi.so.12", MpiFlavour::MpichAbi))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--mpi=host: the image's MPI (libmpi.so.12, MPICH ABI) does not match the host's (libmpi.so.40, Open MPI)"
    );
    assert_eq!(
        check_abi(&host, None).unwrap_err().to_string(),
        "--mpi=host: the image has no MPI library (no libmpi.so.N in its library directories) \
         to replace with the host's (libmpi.so.40, Open MPI)"
    );
    // Open MPI 1.10 also used soname 12: the flavour tells them apart.
    let old = lib("libmpi.so.12", MpiFlavour::OpenMpi);
    assert!(check_abi(&lib("libmpi.so.12", MpiFlavour::MpichAbi), Some(&old)).is_err());
}

#[test]
fn flavour_and_image_library() {
    assert_eq!(
        classify("libmpi.so.40", &["libopen-pal.so.40".into()]),
        MpiFlavour::OpenMpi
    );
    assert_eq!(
        classify("libmpi.so.12", &["libopen-pal.so.12".into()]),
        MpiFlavour::OpenMpi
    );
    assert_eq!(
        classify("libmpi.so.12", &["libfabric.so.1".into()]),
        MpiFlavour::MpichAbi
    );
    assert_eq!(classify("libmpi.so.7", &[]), MpiFlavour::Unknown);
    assert!(is_libmpi_soname("libmpi.so.40"));
    assert!(!is_libmpi_soname("libmpi.so"));
    assert!(!is_libmpi_soname("libmpi.so.40.30.4"));
    assert!(!is_libmpi_soname("libmpi_cxx.so.40"));
    let found = vec![
        (
            "libmpi_cxx.so.40".to_string(),
            "/usr/lib/libmpi_cxx.so.40".to_string(),
            None,
        ),
        (
            "libmpi.so.12".to_string(),
            "/usr/lib/libmpi.so.12".to_string(),
            None,
        ),
    ];
    assert_eq!(
        image_mpi(&found),
        Some(lib("libmpi.so.12", MpiFlavour::MpichAbi))
    );
    assert_eq!(image_mpi(&found[..1]), None);
}

#[test]
fn ldconfig_picks_64_bit_libmpi() {
    let text = "1234 libs found in cache `/etc/ld.so.cache'\n\
        \tlibmpi.so.40 (libc6,x86-64) => /lib/x86_64-linux-gnu/libmpi.so.40\n\
        \tlibmpi.so.40 (libc6) => /lib/i386-linux-gnu/libmpi.so.40\n\
        \tlibmpi.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libmpi.so\n\
        \tlibmpi.so.12 (libc6,x86-64) => /opt/compat/libmpi.so.12\n";
    let entries = ldconfig_entries(text);
    assert_eq!(entries.len(), 3);
    assert_eq!(
        host_libmpi(&entries),
        Some((
            "libmpi.so.40".into(),
            "/lib/x86_64-linux-gnu/libmpi.so.40".into()
        ))
    );
    assert_eq!(host_libmpi(&entries[1..2]), None);
}

#[test]
fn launcher_binds_pmix_and_turns_cma_off_for_ranks() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(launcher(&env(&[("HOME", "/h")])), Contribution::default());
    let c = launcher(&env(&[
        ("PMIX_RANK", "1"),
        ("PMIX_SERVER_TMPDIR", "/var/spool/slurmd/pmix.5.0/"),
    ]));
    assert_eq!(
        c.mounts[0].value,
        (
            "/var/spool/slurmd/pmix.5.0".into(),
            "/var/spool/slurmd/pmix.5.0".into(),
            false
        )
    );
    assert_eq!(
        c.env_pairs(),
        [(
            "OMPI_MCA_btl_vader_single_copy_mechanism".to_string(),
            "none".to_string()
        )]
    );
    assert!(c.env[0].source.starts_with("PMIX_RANK"));
    assert_eq!(prepend_library_path("/a", Some("/b:/c")), "/a:/b:/c");
    assert_eq!(prepend_library_path("/a", Some("")), "/a");
    assert_eq!(prepend_library_path("/a", None), "/a");
}

#[test]
fn parse_elf_reads_a_real_library_and_refuses_text() {
    // The test binary itself is an ELF object that needs the C library.
    let exe = std::env::current_exe().unwrap();
    let bytes = std::fs::read(&exe).unwrap();
    let e = parse_elf(exe.to_str().unwrap(), &bytes).unwrap();
    assert!(e.needed.iter().any(|n| n.starts_with("libc.so")), "{e:?}");
    let err = parse_elf("/x/libmpi.so.12", b"not an ELF file").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/x/libmpi.so.12: not an ELF shared object"),
        "{err}"
    );
}

#[test]
fn job_keys_need_a_rank_and_a_job() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(job_key(&env(&[("PMIX_NAMESPACE", "ns1")])), None);
    assert_eq!(
        job_key(&env(&[("PMIX_RANK", "0"), ("PMIX_NAMESPACE", "ns1")])),
        Some("pmix-ns1".to_string())
    );
    assert_eq!(
        job_key(&env(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_MCA_ess_base_jobid", "123"),
            ("SLURM_JOB_ID", "9"),
        ])),
        Some("ompi-123".to_string())
    );
    assert_eq!(
        job_key(&env(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_JOB_ID", "9"),
            ("SLURM_STEP_ID", "2")
        ])),
        Some("slurm-9.2".to_string())
    );
    assert_eq!(job_key(&env(&[("PMI_RANK", "0")])), None);
}
