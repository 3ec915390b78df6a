//! Start-up cost: runs `true` in a busybox root 200 times and prints the median wall time
//! of create + start + wait, in milliseconds. `bench_true [overlay] [seccomp]`; with
//! `seccomp`, Docker's default filter is compiled and installed each time.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use berth_runtime::{Container, Rootfs, Stdio};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let overlay = args.iter().any(|a| a == "overlay");
    let seccomp = args.iter().any(|a| a == "seccomp");
    let f = common::Fixture::new();
    let mut spec = common::spec(&["true"]);
    if seccomp {
        let mut linux = spec.linux().clone().unwrap();
        linux.set_seccomp(Some(berth_runtime::default_seccomp(&[])));
        spec.set_linux(Some(linux));
    }
    let mut bundle = f.bundle(spec);
    if overlay {
        for d in ["upper", "work"] {
            std::fs::create_dir(f.path(d)).unwrap();
        }
        bundle.rootfs = Rootfs::Overlay {
            lower: vec![f.path("rootfs")],
            upper: f.path("upper"),
            work: f.path("work"),
            discard: false,
        };
    }
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        let mut c = Container::create(&bundle, Stdio::Inherit).expect("create");
        c.start().expect("start");
        assert_eq!(c.wait(false).expect("wait"), 0);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "true x200 ({}{}): median {:.2} ms, p10 {:.2} ms, p90 {:.2} ms",
        if overlay { "overlay" } else { "bind" },
        if seccomp { ", seccomp" } else { "" },
        times[100],
        times[20],
        times[180]
    );
}
