//! `berth oci …`: the OCI runtime verbs. Errors exit 1, as runc's do, except a program that
//! cannot be run (126, 127).

use anyhow::Result;
use berth_cli::{GlobalArgs, OciArgs, OciCommand};

use crate::oci_runtime as rt;

pub fn run(global: &GlobalArgs, a: &OciArgs) -> Result<u8> {
    // Under `oci`, --root is the runtime's state directory, as with runc.
    let root = global.root.clone().unwrap_or_else(rt::default_root);
    let r = match &a.command {
        OciCommand::Create(c) => rt::create(&root, c),
        OciCommand::Start(c) => rt::start(&root, &c.id),
        OciCommand::State(c) => rt::state(&root, &c.id),
        OciCommand::Kill(c) => rt::kill(&root, c),
        OciCommand::Delete(c) => rt::delete(&root, c),
        OciCommand::Run(c) => rt::run(&root, c),
        OciCommand::Monitor(c) => rt::monitor(&root, c),
    };
    r.or_else(|e| {
        crate::printer::error(&e, global.debug);
        Ok(match crate::dispatch::start::exit_code_of(&e, 1) {
            c @ (126 | 127) => c as u8,
            _ => 1,
        })
    })
}
