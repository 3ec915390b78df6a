//! Ports and a minimal HTTP probe (enough to see whether a server answers).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The kernel picks it (bind to port 0); a process-wide set makes sure two tests in this
/// process never get the same port even if the kernel hands it out twice. Another process can
/// still take it before the caller binds, so servers started on it must be checked (the
/// [`Registry`](crate::Registry) retries on a fresh port).
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let mut set = given.lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(port) {
            return port;
        }
    }
    panic!("no free TCP port found on 127.0.0.1 after 100 tries");
}

/// Sends `GET path` to `addr` ("host:port") over plain HTTP/1.0 and returns the status code.
///
/// Used to wait for servers to come up without pulling an HTTP client into every test that
/// depends on this crate.
pub fn http_get_status(addr: &str, path: &str) -> std::io::Result<u16> {
    let sock: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    // Only the status line matters; stop reading once it is complete.
    while !head.contains(&b'\n') {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP status line: {:?}", line.lines().next()),
            )
        })
}
