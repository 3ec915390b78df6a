//! `docker import`: one root filesystem tar becomes a one-layer OCI image.

use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use berth_types::{rfc3339, Digest, DigestWriter, Platform};
use flate2::write::GzEncoder;
use oci_spec::image::{
    Arch, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageManifestBuilder, MediaType,
    Os, RootFsBuilder,
};

use crate::common;
use crate::error::ArchiveError;
use crate::stream::{self, HashingWriter};
use crate::{changes, model, ImageSink, ImportOptions, LoadedImage};

/// What errors name as the file.
const INPUT: &str = "import input";

/// Level 1: an import compresses a whole root filesystem at once, and deflate's fastest level
/// is several times faster than the default (6) for a layer only some ten per cent larger.
const GZIP_LEVEL: u32 = 1;

/// Stores `rootfs_tar` (plain, gzip or zstd) as a gzip layer and builds an OCI image around it.
///
/// The tar is read once: the uncompressed bytes are hashed for the diff id while they are
/// compressed into a temporary file, whose own digest the store then verifies.
pub fn import_rootfs(
    rootfs_tar: &mut dyn Read,
    opts: &ImportOptions,
    sink: &mut dyn ImageSink,
) -> Result<LoadedImage, ArchiveError> {
    // Refuse bad --change lines before reading what may be gigabytes.
    let config_changes = changes::apply(&opts.changes)?;
    let created = created_time(opts)?;

    let io_err = |what: &'static str| move |e| ArchiveError::io(INPUT, what, e);
    let (compression, reader) = stream::sniff(rootfs_tar).map_err(io_err("reading"))?;
    let mut input =
        stream::decompress(BufReader::new(reader), compression).map_err(io_err("decompressing"))?;
    let mut spool = tempfile::tempfile().map_err(io_err("creating a temporary file"))?;
    let mut diff_id = DigestWriter::sha256();
    let mut encoder = GzEncoder::new(
        HashingWriter::new(BufWriter::new(&mut spool)),
        flate2::Compression::new(GZIP_LEVEL),
    );
    let mut buf = vec![0u8; 128 << 10];
    let mut head = Vec::with_capacity(512);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::io(INPUT, "reading", e)),
        };
        if head.len() < 512 {
            let take = (512 - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        diff_id.update(&buf[..n]);
        encoder
            .write_all(&buf[..n])
            .map_err(io_err("compressing"))?;
    }
    check_tar_header(&head)?;
    let HashingWriter { mut inner, hash } = encoder.finish().map_err(io_err("compressing"))?;
    inner.flush().map_err(io_err("compressing"))?;
    drop(inner);
    let blob_digest = hash.finish();
    let diff_id = diff_id.finish();

    spool
        .rewind()
        .map_err(io_err("reading the temporary file"))?;
    let (stored, layer_size) = sink
        .put_blob(&mut BufReader::new(spool), Some(&blob_digest))
        .map_err(|e| ArchiveError::sink(INPUT, format!("layer {blob_digest}"), e))?;
    if stored != blob_digest {
        return Err(ArchiveError::DigestMismatch {
            file: INPUT.to_string(),
            entry: "layer".to_string(),
            expected: blob_digest,
            actual: stored,
        });
    }

    let host = Platform::host();
    let arch = non_empty(&opts.architecture).unwrap_or(&host.architecture);
    let os = non_empty(&opts.os).unwrap_or(&host.os);
    let mut history = HistoryBuilder::default()
        .created(created.clone())
        .created_by("berth import");
    if let Some(m) = opts.message.as_deref().filter(|m| !m.is_empty()) {
        history = history.comment(m);
    }
    let mut config = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::from(arch))
        .os(Os::from(os))
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id.to_string()])
                .build()
                .expect("rootfs has every field"),
        )
        .history(vec![history.build().expect("history has every field")]);
    if let Some(c) = config_changes {
        config = config.config(c);
    }
    let config = config.build().expect("config has every required field");
    let config_bytes = canonical_json(&config);
    let config_digest = common::put_bytes(sink, INPUT, "config", &config_bytes)?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            oci_digest(&config_digest),
        ))
        .layers(vec![Descriptor::new(
            MediaType::ImageLayerGzip,
            layer_size,
            oci_digest(&blob_digest),
        )])
        .build()
        .expect("manifest has every required field");
    let manifest_bytes = canonical_json(&manifest);
    let manifest_digest = common::put_bytes(sink, INPUT, "manifest", &manifest_bytes)?;

    let image = LoadedImage {
        manifest_digest,
        manifest_media_type: model::OCI_MANIFEST.to_string(),
        config: config_digest,
        names: opts.names.clone(),
    };
    sink.add_image(image.clone())
        .map_err(|e| ArchiveError::sink(INPUT, format!("image {}", image.manifest_digest), e))?;
    Ok(image)
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn oci_digest(d: &Digest) -> oci_spec::image::Digest {
    d.to_string()
        .parse()
        .expect("a berth digest is an oci digest")
}

/// JSON with object keys sorted: `oci-spec` keeps labels in a `HashMap`, whose order changes
/// from run to run, and the same input must give the same image id.
fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("oci-spec types serialise");
    serde_json::to_vec(&value).expect("a json value serialises")
}

/// Refuses input that is not a tar: `docker import` of a random file must not make an image
/// whose every run fails later in unpacking. The first block is a header or the end marker.
fn check_tar_header(head: &[u8]) -> Result<(), ArchiveError> {
    let not_tar = |why: &str| {
        ArchiveError::invalid(INPUT, "first block", format!("not a tar archive: {why}"))
    };
    if head.len() < 512 {
        return Err(not_tar("shorter than one tar block"));
    }
    if head.iter().all(|&b| b == 0) {
        return Ok(());
    }
    let stored = tar::Header::from_byte_slice(head)
        .cksum()
        .map_err(|_| not_tar("unreadable header checksum"))?;
    let unsigned: u32 = head
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    // Some old tars summed signed bytes.
    let signed: i64 = head
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    if stored == unsigned || i64::from(stored) == signed {
        Ok(())
    } else {
        Err(not_tar("bad header checksum"))
    }
}

/// The image's creation time: as given, else `SOURCE_DATE_EPOCH`, else now.
fn created_time(opts: &ImportOptions) -> Result<String, ArchiveError> {
    if let Some(c) = &opts.created {
        return Ok(c.clone());
    }
    // Reproducible builds set SOURCE_DATE_EPOCH so that the same input gives the same id.
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: i64 = epoch.trim().parse().map_err(|_| {
            ArchiveError::invalid(
                INPUT,
                "SOURCE_DATE_EPOCH",
                format!("{epoch:?} is not a number of seconds"),
            )
        })?;
        return Ok(rfc3339(secs));
    }
    Ok(rfc3339(berth_types::unix_now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn refuses_non_tar() {
        assert!(check_tar_header(b"hello").is_err());
        assert!(check_tar_header(&[7u8; 512]).is_err());
        assert!(check_tar_header(&[0u8; 512]).is_ok());
    }
}
