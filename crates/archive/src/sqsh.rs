//! The image config carried by a single-file (squashfs) image.
//!
//! `berth convert` appends the image's config after the squashfs file system: the JSON, its
//! length (8 bytes, little-endian) and the 8-byte magic [`TRAILER_MAGIC`]. The kernel,
//! squashfuse and unsquashfs read only the `bytes_used` the superblock names, so the file stays
//! an ordinary squashfs image; `berth run` reads the config from the end without mounting.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// The last 8 bytes of a single-file image that carries a config.
pub const TRAILER_MAGIC: &[u8; 8] = b"BERTHCFG";

/// Configs larger than this are not believed (a corrupt length must not allocate gigabytes).
const MAX_CONFIG: u64 = 16 << 20;

/// Appends `config` (the image config JSON) as the trailer.
pub fn write_config_trailer(out: &mut dyn Write, config: &[u8]) -> io::Result<()> {
    out.write_all(config)?;
    out.write_all(&(config.len() as u64).to_le_bytes())?;
    out.write_all(TRAILER_MAGIC)?;
    out.flush()
}

/// The config JSON at the end of `file`, or `None` when it has no trailer (a squashfs image
/// made by another tool).
pub fn read_config_trailer<F: Read + Seek>(file: &mut F) -> io::Result<Option<Vec<u8>>> {
    let end = file.seek(SeekFrom::End(0))?;
    if end < 16 {
        return Ok(None);
    }
    file.seek(SeekFrom::End(-16))?;
    let mut tail = [0u8; 16];
    file.read_exact(&mut tail)?;
    if &tail[8..] != TRAILER_MAGIC {
        return Ok(None);
    }
    let len = u64::from_le_bytes(tail[..8].try_into().expect("8 bytes"));
    if len > MAX_CONFIG || len > end - 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("config trailer claims {len} bytes"),
        ));
    }
    file.seek(SeekFrom::Start(end - 16 - len))?;
    let mut config = vec![0u8; len as usize];
    file.read_exact(&mut config)?;
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_absent() {
        let mut f = io::Cursor::new(b"hsqs and the file system".to_vec());
        f.seek(SeekFrom::End(0)).unwrap();
        write_config_trailer(&mut f, br#"{"config":{}}"#).unwrap();
        assert_eq!(
            read_config_trailer(&mut f).unwrap().as_deref(),
            Some(&br#"{"config":{}}"#[..])
        );
        let mut plain = io::Cursor::new(vec![7u8; 4096]);
        assert_eq!(read_config_trailer(&mut plain).unwrap(), None);
        let mut lying = io::Cursor::new(b"xx\xff\xff\xff\xff\xff\xff\xff\x7fBERTHCFG".to_vec());
        assert!(read_config_trailer(&mut lying).is_err());
    }
}
