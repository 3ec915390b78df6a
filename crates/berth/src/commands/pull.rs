use anyhow::Result;
use berth_cli::{PullArgs, PushArgs};
use berth_registry::Client;
use berth_types::{ImageRef, Platform};

use crate::dispatch;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(s: &Settings, a: &PullArgs) -> Result<u8> {
    let r = ImageRef::parse(&a.image)?;
    let platform = match &a.platform {
        Some(p) => p.parse::<Platform>()?,
        None => Platform::host(),
    };
    let store = s.open_store()?;
    let client = Client::new(s.registry_options(&a.registry))?;
    let p = Printer::new(a.quiet);
    let pulled = dispatch::pull::pull(&store, &client, &r, &platform, &p)?;
    p.status(format!("Digest: {}", pulled.digest));
    if pulled.up_to_date {
        p.status(format!("Status: Image is up to date for {}", display(&r)));
    } else {
        p.status(format!(
            "Status: Downloaded newer image for {}",
            display(&r)
        ));
    }
    p.out(&r);
    Ok(0)
}

fn display(r: &ImageRef) -> String {
    match (r.tag(), r.digest()) {
        (_, Some(d)) => format!("{}@{d}", r.familiar_name()),
        (Some(t), None) => format!("{}:{t}", r.familiar_name()),
        (None, None) => r.familiar_name(),
    }
}

pub fn push_run(s: &Settings, a: &PushArgs) -> Result<u8> {
    let r = ImageRef::parse(&a.image)?;
    let store = s.open_store()?;
    let img = store.lookup(&a.image)?;
    let client = Client::new(s.registry_options(&a.registry))?;
    let p = Printer::new(a.quiet);
    let digest = dispatch::push::push(&store, &client, &img, &r, &p)?;
    if a.quiet {
        p.out(format!("{}@{digest}", r.name()));
    }
    Ok(0)
}
