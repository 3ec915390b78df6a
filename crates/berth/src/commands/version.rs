use anyhow::Result;
use berth_cli::VersionArgs;
use serde_json::json;

use crate::printer::Printer;

pub fn run(a: &VersionArgs) -> Result<u8> {
    let p = Printer::new(false);
    let info = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": "1.41",
        "Os": std::env::consts::OS,
        "Arch": berth_types::Platform::host().architecture,
        "Platform": berth_types::Platform::host().to_string(),
    });
    match a.format.as_deref() {
        None => p.raw(&format!(
            "berth version {}\nOS/Arch: {}\n",
            env!("CARGO_PKG_VERSION"),
            berth_types::Platform::host()
        )),
        Some(f) => p.rows(Some(f), "", std::slice::from_ref(&info))?,
    }
    Ok(0)
}
