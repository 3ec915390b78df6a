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
    let squash = convert::Squash::new(&a.compression, a.compression_level)?;
    // An image of the store is converted from there; another is fetched (blobs only: it is
    // not unpacked, since the conversion reads the compressed layers) and not kept as an image.
    let done = match store.lookup(&a.image) {
        Ok(img) => convert::convert(&store, &img, &a.output, &squash, &p)?,
        Err(StoreError::ImageNotFound(_)) => {
            let r = ImageRef::parse(&a.image)?;
            let platform = match &a.platform {
                Some(x) => x.parse::<Platform>()?,
                None => Platform::host(),
            };
            let client = Client::new(s.registry_options(&a.registry))?;
            let fetched = pull::fetch_blobs(&store, &client, &r, &platform, &p)?;
            convert::convert_fetched(&store, &fetched, &a.output, &squash, &p)?
        }
        Err(e) => return Err(e.into()),
    };
    p.status(format!(
        "{}: {} entries, {} ({})",
        a.output.display(),
        done.flattened.entries,
        humanize::size(done.bytes),
        squash.label
    ));
    p.out(a.output.display());
    Ok(0)
}
