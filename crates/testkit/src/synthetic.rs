//! Layers for a large multi-layer image (about 1 GB of files), generated deterministically so
//! that every machine benchmarks the same bytes without downloading anything.
//!
//! The mix imitates what large scientific images carry on top of a distribution: shared
//! libraries and tools (binary-like, about half compressible), many small text files
//! (documentation, headers, Python sources) and a few big data files (model weights, mostly
//! incompressible).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cache::cached;

/// Bumped when the generated content changes.
const VERSION: u32 = 2;
/// Fixed mtime of every entry, so the tars (and the layers' digests) are reproducible.
const MTIME: u64 = 1_700_000_000;

/// One layer: a name, and (directory, file count, smallest and largest size, content kind).
struct LayerSpec {
    name: &'static str,
    groups: &'static [(&'static str, usize, usize, usize, Kind)],
}

#[derive(Clone, Copy)]
enum Kind {
    Binary,
    Text,
    Data,
}

const LAYERS: &[LayerSpec] = &[
    LayerSpec {
        name: "libs",
        groups: &[
            ("opt/sci/lib", 1200, 8 << 10, 1 << 20, Kind::Binary),
            (
                "opt/sci/lib/python3/site-packages",
                2500,
                1 << 10,
                48 << 10,
                Kind::Text,
            ),
        ],
    },
    LayerSpec {
        name: "tools",
        groups: &[
            ("opt/sci/bin", 150, 256 << 10, 3 << 20, Kind::Binary),
            ("opt/sci/include", 6000, 512, 24 << 10, Kind::Text),
        ],
    },
    LayerSpec {
        name: "share",
        groups: &[("opt/sci/share/doc", 14000, 256, 16 << 10, Kind::Text)],
    },
    LayerSpec {
        name: "data",
        groups: &[("opt/sci/data", 8, 32 << 20, 48 << 20, Kind::Data)],
    },
];

/// A directory holding `<n>-<name>.tar` for each generated layer (uncompressed tars, bottom
/// first), built once and cached: about 1 GB, 24,000 files.
pub fn big_image_layers() -> PathBuf {
    let name = format!("big-image-layers-v{VERSION}");
    cached(&name, |tmp| {
        fs::create_dir(tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
        for (i, layer) in LAYERS.iter().enumerate() {
            let path = tmp.join(format!("{}-{}.tar", i + 1, layer.name));
            write_layer(layer, i as u64, &path)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"))
}

fn write_layer(spec: &LayerSpec, seed: u64, path: &Path) -> std::io::Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (seed + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, File::create(path)?));
    let mut buf = Vec::new();
    let mut made = std::collections::BTreeSet::new();
    for &(dir, count, min, max, kind) in spec.groups {
        for n in 0..count {
            // About 40 files per directory, two levels deep, like package trees.
            let sub = format!("{dir}/p{:03}/m{:02}", n / 40, (n / 8) % 5);
            for d in ancestors(&sub) {
                if made.insert(d.clone()) {
                    let mut h = header(tar::EntryType::Directory, 0o755, 0);
                    tar.append_data(&mut h, format!("{d}/"), std::io::empty())?;
                }
            }
            // Sizes spread log-uniformly between min and max, as real file sizes are.
            let f = rng.unit();
            let size = (min as f64 * (max as f64 / min as f64).powf(f)) as usize;
            fill(&mut rng, kind, size, &mut buf);
            let (ext, mode) = match kind {
                Kind::Binary => ("so", 0o755),
                Kind::Text => ("txt", 0o644),
                Kind::Data => ("bin", 0o644),
            };
            let mut h = header(tar::EntryType::Regular, mode, buf.len() as u64);
            tar.append_data(&mut h, format!("{sub}/f{n:05}.{ext}"), &buf[..])?;
        }
    }
    tar.into_inner()?.flush()
}

fn ancestors(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..=parts.len()).map(|i| parts[..i].join("/")).collect()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Content of `size` bytes of the given kind into `out`.
fn fill(rng: &mut Rng, kind: Kind, size: usize, out: &mut Vec<u8>) {
    out.clear();
    while out.len() < size {
        let want = (size - out.len()).min(4096);
        let random = match kind {
            Kind::Binary => rng.unit() < 0.15,
            Kind::Text => false,
            Kind::Data => rng.unit() < 0.9,
        };
        if random {
            for _ in 0..want {
                out.push(rng.next() as u8);
            }
        } else if matches!(kind, Kind::Text) || rng.unit() < 0.4 {
            // Text, or a binary's strings and symbol tables.
            words(rng, want, out);
        } else {
            // Code: short sequences that recur, as instruction patterns do.
            for _ in 0..want.div_ceil(32) {
                let phrase = rng.next() % 256;
                let mut v = phrase.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                for _ in 0..32 {
                    v ^= v << 13;
                    v ^= v >> 7;
                    v ^= v << 17;
                    out.push(v as u8);
                }
            }
        }
    }
    out.truncate(size);
}

/// Words from a fixed vocabulary of 512, separated by spaces and newlines.
fn words(rng: &mut Rng, want: usize, out: &mut Vec<u8>) {
    let end = out.len() + want;
    while out.len() < end {
        let w = rng.next() % 512;
        let mut v = w.wrapping_mul(0x2545_f491_4f6c_dd1d);
        for _ in 0..(3 + w % 8) {
            out.push(b'a' + (v % 26) as u8);
            v /= 26;
        }
        out.push(if rng.next().is_multiple_of(12) {
            b'\n'
        } else {
            b' '
        });
    }
}

/// xorshift64*: fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
