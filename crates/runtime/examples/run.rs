//! Runs a command in a root directory through the runtime API, forwarding signals:
//! `run ROOTFS STATE_DIR COMMAND [ARG]...`; exits with the container's exit code. With
//! `BERTH_TTY=1` the container gets a pseudo-terminal relayed by the monitor.

#[path = "../tests/common/mod.rs"]
mod common;

use berth_runtime::{Bundle, Container, Rootfs, Stdio};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: run ROOTFS STATE_DIR COMMAND [ARG]...");
        std::process::exit(2);
    }
    let command: Vec<&str> = args[2..].iter().map(String::as_str).collect();
    let bundle = Bundle {
        rootfs: Rootfs::Dir(args[0].clone().into()),
        spec: common::spec(&command),
        cpu_affinity: None,
        state_dir: args[1].clone().into(),
        init: false,
        preserve_fds: Vec::new(),
        default_seccomp: None,
        network_namespace: None,
    };
    let stdio = if std::env::var_os("BERTH_TTY").is_some() {
        Stdio::Tty
    } else {
        Stdio::Inherit
    };
    let code = Container::create(&bundle, stdio)
        .and_then(|mut c| c.start().map(|()| c))
        .and_then(|mut c| c.wait(true))
        .unwrap_or_else(|e| {
            eprintln!("run: {e}");
            e.exit_code()
        });
    std::process::exit(code);
}
