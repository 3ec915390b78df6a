//! Platforms in a build: BuildKit's platform arguments, and the refusal to run a stage of
//! another platform than the host's.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{BuildFailure, BuildOptions};

/// The build arguments with BuildKit's platform ones added (`BUILDPLATFORM`, `TARGETARCH`, …):
/// the build's is the host, the target's `--platform` or the host. Given values win.
pub(super) fn with_platform_args(
    opts: &BuildOptions,
) -> Result<BTreeMap<String, String>, BuildFailure> {
    let host = berth_types::Platform::host();
    let target = match &opts.platform {
        Some(p) => p
            .parse::<berth_types::Platform>()
            .map_err(|e| BuildFailure::Other(format!("--platform: {e}")))?,
        None => host.clone(),
    };
    let mut args = opts.build_args.clone();
    for (prefix, p) in [("BUILD", &host), ("TARGET", &target)] {
        let values = [
            ("PLATFORM", p.to_string()),
            ("OS", p.os.clone()),
            ("ARCH", p.architecture.clone()),
            ("VARIANT", p.variant.clone().unwrap_or_default()),
        ];
        for (k, v) in values {
            args.entry(format!("{prefix}{k}")).or_insert(v);
        }
    }
    Ok(args)
}

/// Refuses a `RUN` in a stage of another platform than the host's: there is no emulation.
pub(super) fn foreign_platform(config: &Value) -> Result<(), String> {
    let host = berth_types::Platform::host();
    let (os, arch) = (
        config["os"].as_str().unwrap_or(&host.os),
        config["architecture"]
            .as_str()
            .unwrap_or(&host.architecture),
    );
    let variant = config["variant"].as_str();
    if host.matches(os, arch, variant) {
        return Ok(());
    }
    let theirs = [Some(os), Some(arch), variant]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    Err(format!(
        "cannot run a {} stage on this {}/{} host: berth build does not emulate other platforms",
        theirs.join("/"),
        host.os,
        host.architecture
    ))
}
