//! The builder's view of the engine: base images from the store (pulled when missing), `RUN`
//! steps as containers of Berth's runtime, layers and images committed to the store.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_oci::{ImageFiles, NetworkMode, Profile, RunOptions};
use berth_registry::Client;
use berth_runtime::{Bundle, Container, Rootfs, Stdio};
use berth_store::{NewImage, Store, UnpackOptions};
use berth_types::{
    BaseImage, BuildBackend, BuildError, Digest, ImageRef, LayerRef, Platform, RunOutcome, RunStep,
};

use super::host::{random_id, Caller};
use crate::printer::Printer;

pub struct Engine<'a> {
    pub store: &'a Store,
    pub client: Client,
    pub printer: &'a Printer,
    /// `--pull`: pull every base image once per build, even when the store has it.
    pub pull: bool,
    /// The references pulled so far in this build.
    pub pulled: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// `--network`: the network of RUN steps without `--network` of their own.
    pub network: Option<String>,
    /// `--add-host`: lines for the RUN steps' `/etc/hosts`.
    pub add_hosts: Vec<String>,
}

fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest, BuildError> {
    Ok(d.to_string().parse()?)
}

impl BuildBackend for Engine<'_> {
    fn base_image(&self, reference: &str, platform: Option<&str>) -> Result<BaseImage, BuildError> {
        let want = match platform {
            Some(p) => p.parse::<Platform>()?,
            None => Platform::host(),
        };
        let config_of = |img: &berth_store::ImageRecord| -> Result<serde_json::Value, BuildError> {
            Ok(serde_json::from_slice(&self.store.read_blob(&img.id)?)?)
        };
        let fits = |c: &serde_json::Value| {
            want.matches(
                c["os"].as_str().unwrap_or_default(),
                c["architecture"].as_str().unwrap_or_default(),
                c["variant"].as_str(),
            )
        };
        let key = format!("{reference} {want}");
        let must_pull = self.pull
            && !self
                .pulled
                .lock()
                .expect("no panics hold this lock")
                .contains(&key);
        let local = match self.store.lookup(reference) {
            Ok(img) if !must_pull => Some(img),
            _ => None,
        };
        let local = match local {
            // An image of another platform under the name is replaced only when asked for one.
            Some(img) if platform.is_none() || fits(&config_of(&img)?) => Some(img),
            _ => None,
        };
        let img = match local {
            Some(img) => img,
            None => {
                let r = ImageRef::parse(reference)?;
                super::pull::pull(self.store, &self.client, &r, &want, self.printer)?;
                self.pulled
                    .lock()
                    .expect("no panics hold this lock")
                    .insert(key);
                self.store.lookup(reference)?
            }
        };
        let manifest = self.store.manifest(&img)?;
        let config = config_of(&img)?;
        let layers = manifest
            .layers()
            .iter()
            .zip(&img.layers)
            .map(|(l, diff_id)| {
                Ok(LayerRef {
                    diff_id: diff_id.clone(),
                    blob: l.digest().to_string().parse()?,
                    size: l.size(),
                    media_type: l.media_type().to_string(),
                })
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(BaseImage {
            id: img.id,
            config,
            layers,
        })
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.store.layer_path(diff_id)
    }

    fn has_layer(&self, layer: &LayerRef) -> bool {
        self.store.has_blob(&layer.blob) && self.store.has_layer(&layer.diff_id)
    }

    fn scratch_dir(&self) -> Result<PathBuf, BuildError> {
        let dir = self.store.paths().temp("build");
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn run(
        &self,
        step: &RunStep,
        output: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<RunOutcome, BuildError> {
        run_step(self, step, output).map_err(|e| format!("{e:#}").into())
    }

    fn add_layer(
        &self,
        file: &Path,
        blob: &Digest,
        diff_id: &Digest,
        media_type: &str,
    ) -> Result<LayerRef, BuildError> {
        // The builder hashed and synced the file in the store's own temporary directory.
        let size = self.store.adopt_blob(file, blob)?;
        let stored = blob.clone();
        let rootless = super::euid() != 0;
        let report = self
            .store
            .unpack_layer(&stored, diff_id, &UnpackOptions { rootless })?;
        for w in report.warnings {
            self.printer.warn(w);
        }
        Ok(LayerRef {
            diff_id: diff_id.clone(),
            blob: stored,
            size,
            media_type: media_type.to_string(),
        })
    }

    fn commit(
        &self,
        config: &[u8],
        layers: &[LayerRef],
        tags: &[String],
    ) -> Result<Digest, BuildError> {
        use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType};
        let names = tags
            .iter()
            .map(|t| ImageRef::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        let _gc = self.store.hold_gc()?;
        let config_digest = self.store.put_blob(config)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config.len() as u64,
                oci_digest(&config_digest)?,
            ))
            .layers(
                layers
                    .iter()
                    .map(|l| {
                        Ok(Descriptor::new(
                            MediaType::from(l.media_type.as_str()),
                            l.size,
                            oci_digest(&l.blob)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, BuildError>>()?,
            )
            .build()?;
        let bytes = serde_json::to_vec(&serde_json::to_value(&manifest)?)?;
        let manifest_digest = self.store.put_blob(&bytes)?;
        let rec = self.store.commit_image(&NewImage {
            manifest: manifest_digest,
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            index: None,
            config: config_digest,
            names,
            repo_digest_names: Vec::new(),
        })?;
        Ok(rec.id)
    }

    fn download(
        &self,
        url: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<Option<std::time::SystemTime>, BuildError> {
        Ok(self.client.download(url, out)?.last_modified)
    }

    fn cache_index(&self) -> PathBuf {
        self.store.paths().build_cache_index()
    }

    fn run_mode(&self) -> Option<String> {
        let c = Caller::current();
        Some(match (c.uid, c.subuids, c.subgids) {
            (0, _, _) => "RUN steps: root; container ids 0-65535 are the host's".into(),
            (_, Some((u, un)), Some((g, gn))) => format!(
                "RUN steps: user namespace with subordinate ids (uids {u}-{}, gids {g}-{})",
                u + un.saturating_sub(1),
                g + gn.saturating_sub(1)
            ),
            _ => format!(
                "RUN steps: single-id user namespace (no /etc/subuid and /etc/subgid range for {}): \
                 ownership and id changes are faked",
                c.name
            ),
        })
    }
}

/// In a single-id user namespace only root exists, so a RUN under another `USER` runs as
/// root, with that user's home (as Charliecloud does), and says so. Returns the home.
fn run_as_root(
    config: &mut serde_json::Value,
    passwd: Option<&str>,
    output: &(dyn Fn(&[u8]) + Sync),
) -> Option<String> {
    let user = config["config"]["User"]
        .as_str()
        .filter(|u| !u.is_empty())?
        .to_string();
    let name = user.split(':').next().unwrap_or_default();
    if name == "0" || name == "root" {
        return None;
    }
    config["config"]["User"] = serde_json::json!("");
    output(
        format!("note: USER {user}: RUN steps run as root here (single-id user namespace)\n")
            .as_bytes(),
    );
    passwd?.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 5 && (f[0] == name || f[2] == name)).then(|| f[5].to_string())
    })
}

/// Where the fake-root apt setting is bound: under /dev, a tmpfs, so the mount point never
/// lands in the layer.
const FAKE_ROOT_APT_CONF: &str = "/dev/.berth-apt.conf";
const FAKE_ROOT_APT_TEXT: &str = "APT::Sandbox::User \"root\";\n";

/// Whether a map gives the container a single id: then nothing but that id can own a file,
/// and the fake-root filter makes ownership and id changes report success instead.
fn single_id(map: &[(u32, u32, u32)]) -> bool {
    map.iter().map(|m| u64::from(m.2)).sum::<u64>() == 1
}

/// Runs one step as a container: the docker profile (root inside mapped to the caller), the
/// step's layers as overlay lowers and the builder's empty directory as the upper.
fn run_step(
    engine: &Engine<'_>,
    step: &RunStep,
    output: &(dyn Fn(&[u8]) + Sync),
) -> anyhow::Result<RunOutcome> {
    let store = engine.store;
    let caller = Caller::current();
    let lower: Vec<PathBuf> = step
        .layers
        .iter()
        .rev()
        .map(|l| store.layer_path(&l.diff_id))
        .collect();
    let read = |rel: &str| {
        lower
            .iter()
            .map(|d| d.join(rel))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::read_to_string(p).ok())
    };
    let files = ImageFiles {
        passwd: read("etc/passwd"),
        group: read("etc/group"),
    };
    let mut image_config = step.config.clone();
    let mut env = step.env.clone();
    if caller.uid != 0 && (caller.subuids.is_none() || caller.subgids.is_none()) {
        if let Some(home) = run_as_root(&mut image_config, files.passwd.as_deref(), output) {
            env.push(format!("HOME={home}"));
        }
    }
    let config: oci_spec::image::ImageConfiguration =
        serde_json::from_value(image_config).context("invalid stage config")?;
    let network = match step.network.as_deref() {
        Some(own) => own,
        None => engine.network.as_deref().unwrap_or("default"),
    };
    let network = match network {
        "host" | "default" => NetworkMode::Host,
        "none" => NetworkMode::None,
        other => {
            let flag = if step.network.is_some() {
                "RUN --network="
            } else {
                "--network "
            };
            anyhow::bail!("invalid {flag}{other}: expected default, none or host")
        }
    };
    // The image's /etc/hosts (or the usual lines) with `--add-host`'s added.
    let hosts = (!engine.add_hosts.is_empty())
        .then(|| -> anyhow::Result<String> {
            let mut hosts = read("etc/hosts")
                .unwrap_or_else(|| "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n".into());
            if !hosts.ends_with('\n') {
                hosts.push('\n');
            }
            for h in &engine.add_hosts {
                hosts.push_str(&super::run_flags::parse_add_host(h)?);
                hosts.push('\n');
            }
            Ok(hosts)
        })
        .transpose()?;
    let id = random_id();
    let opts = RunOptions {
        profile: Profile::Docker,
        command: step.argv.clone(),
        entrypoint: Some(Vec::new()),
        env,
        network: Some(network),
        caller: berth_oci::Caller {
            uid: caller.uid,
            gid: caller.gid,
            groups: caller.groups.clone(),
            user_name: caller.name.clone(),
            home: caller.home.clone(),
            cwd: caller.cwd.clone(),
            env: caller.env.clone(),
            subuids: caller.subuids,
            subgids: caller.subgids,
        },
        container_id: id.clone(),
        ..RunOptions::default()
    };
    let built = berth_oci::build(&config, &opts, &files)?;
    let state_dir = step.upper.with_file_name("state");
    std::fs::create_dir_all(&state_dir)?;
    let mut spec = built.spec;
    let maps = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> Vec<(u32, u32, u32)> {
        m.map(|v| {
            v.iter()
                .map(|x| (x.container_id(), x.host_id(), x.size()))
                .collect()
        })
        .unwrap_or_default()
    };
    let mut linux = spec.linux().clone().unwrap_or_default();
    let (uid_map, gid_map) = (
        maps(linux.uid_mappings().as_ref()),
        maps(linux.gid_mappings().as_ref()),
    );
    let mut extra_files: Vec<(&str, &[u8], u32)> = Vec::new();
    if let Some(hosts) = &hosts {
        extra_files.push(("/etc/hosts", hosts.as_bytes(), 0o644));
    }
    if single_id(&uid_map) || single_id(&gid_map) {
        linux.set_seccomp(Some(berth_runtime::fake_root_seccomp()));
        spec.set_linux(Some(linux));
        // apt checks that dropping to its sandbox user really changed the ids, which the
        // filter only pretends: an extra configuration file (APT_CONFIG adds to the image's
        // own) keeps apt as root, which is what it is mapped to anyway.
        extra_files.push((FAKE_ROOT_APT_CONF, FAKE_ROOT_APT_TEXT.as_bytes(), 0o644));
        if let Some(process) = spec.process_mut() {
            let mut env = process.env().clone().unwrap_or_default();
            if !env.iter().any(|e| e.starts_with("APT_CONFIG=")) {
                env.push(format!("APT_CONFIG={FAKE_ROOT_APT_CONF}"));
            }
            process.set_env(Some(env));
        }
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let files = built
        .files
        .iter()
        .map(|f| (f.container_path.as_str(), f.contents.as_bytes(), 0o644))
        .chain(extra_files)
        .chain(
            step.files
                .iter()
                .map(|(p, c)| (p.as_str(), c.as_slice(), 0o755)),
        );
    for (path, contents, mode) in files {
        use std::os::unix::fs::PermissionsExt;
        let host = state_dir.join(path.trim_start_matches('/').replace('/', "_"));
        std::fs::write(&host, contents)?;
        // Scripts are executed in place: they need the execute bit.
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))?;
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(path)
                .source(&host)
                .typ("bind")
                .options(vec!["rbind".into(), "ro".into(), "rprivate".into()])
                .build()?,
        );
    }
    for m in &step.mounts {
        let rw = if m.readonly { "ro" } else { "rw" };
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(&m.target)
                .source(&m.source)
                .typ("bind")
                .options(vec!["rbind".into(), rw.into(), "rprivate".into()])
                .build()?,
        );
    }
    spec.set_mounts(Some(mounts));
    let bundle = Bundle {
        rootfs: Rootfs::Overlay {
            lower,
            upper: step.upper.clone(),
            work: step.work.clone(),
            discard: false,
        },
        spec,
        cpu_affinity: None,
        state_dir,
        init: false,
        preserve_fds: Vec::new(),
        default_seccomp: None,
        network_namespace: None,
    };
    let (mut r, w) = std::io::pipe()?;
    let w2 = w.try_clone()?;
    let stdio = Stdio::Files {
        stdin: Some(File::open("/dev/null")?),
        stdout: File::from(std::os::fd::OwnedFd::from(w)),
        stderr: File::from(std::os::fd::OwnedFd::from(w2)),
    };
    let code = std::thread::scope(|s| -> anyhow::Result<i32> {
        // The relay thread comes after the clone: the container's init runs on a copy of
        // this process, where a lock another thread held at that instant is never released.
        super::host::debug_assert_single_threaded();
        let created = Container::create(&bundle, stdio);
        s.spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                output(&buf[..n]);
            }
        });
        let mut c = created?;
        c.start()?;
        let code = c.wait(false)?;
        drop(c);
        Ok(code)
    })?;
    Ok(RunOutcome {
        exit_code: code,
        uid_map,
        gid_map,
    })
}
