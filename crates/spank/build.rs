//! Slurm loads a plugin only when its `plugin_version` matches the running Slurm's
//! `SLURM_VERSION_NUMBER`, which `<slurm/slurm_version.h>` (Debian's libslurm-dev) defines.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_SLURM_INCLUDE");
    let dir = std::env::var_os("BERTH_SLURM_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let header = dir.join("slurm/slurm_version.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let version = std::fs::read_to_string(&header).ok().and_then(|text| {
        text.lines().find_map(|l| {
            let hex = l
                .trim()
                .strip_prefix("#define SLURM_VERSION_NUMBER")?
                .trim()
                .strip_prefix("0x")?;
            u32::from_str_radix(hex, 16).ok()
        })
    });
    let version = version.unwrap_or_else(|| {
        println!(
            "cargo:warning=no SLURM_VERSION_NUMBER in {}: install libslurm-dev (scripts/install-deps); the plugin built now will not load into Slurm",
            header.display()
        );
        0
    });
    println!("cargo:rustc-env=BERTH_SLURM_VERSION_NUMBER={version}");
}
