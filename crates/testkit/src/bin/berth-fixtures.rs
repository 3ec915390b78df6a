//! Command-line access to the test fixtures, for shell scripts (demo, benchmarks) that need the
//! same cached root file systems as the Rust tests.
//!
//! ```text
//! berth-fixtures busybox   # prints the path of the busybox rootfs tar (built once, cached)
//! berth-fixtures debian    # prints the path of the Debian minbase rootfs tar; exit 1 if unavailable
//! berth-fixtures port      # prints a free TCP port on 127.0.0.1
//! ```
#![deny(missing_docs)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1).unwrap_or_default();
    match arg.as_str() {
        "busybox" => println!("{}", berth_testkit::busybox_rootfs_tar().display()),
        "debian" => match berth_testkit::debian_rootfs_tar() {
            Some(p) => println!("{}", p.display()),
            None => return ExitCode::FAILURE,
        },
        "big" => println!("{}", berth_testkit::big_image_layers().display()),
        "port" => println!("{}", berth_testkit::free_port()),
        _ => {
            eprintln!("usage: berth-fixtures busybox|debian|big|port");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
