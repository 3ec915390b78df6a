use anyhow::Result;
use berth_cli::ConvertArgs;
use berth_registry::Client;
use berth_store::StoreError;
use berth_types::{ImageRef, Platform};

use crate::dispatch::{convert, pull};
use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(s: &Settings, a: &ConvertArgs) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(a.quiet);
    let img = match store.lookup(&a.image) {
        Ok(img) => img,
        Err(StoreError::ImageNotFound(_)) => {
            let r = ImageRef::parse(&a.image)?;
            let platform = match &a.platform {
                Some(x) => x.parse::<Platform>()?,
                None => Platform::host(),
            };
            let client = Client::new(s.registry_options(&a.registry))?;
            pull::pull(&store, &client, &r, &platform, &p)?;
            store.lookup(&r.to_string())?
        }
        Err(e) => return Err(e.into()),
    };
    let done = convert::convert(&store, &img, &a.output, &a.compression, &p)?;
    p.status(format!(
        "{}: {} entries, {} ({})",
        a.output.display(),
        done.flattened.entries,
        humanize::size(done.bytes),
        a.compression
    ));
    p.out(a.output.display());
    Ok(0)
}
