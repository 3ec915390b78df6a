//! The typed messages the monitor and a container process exchange over two pipes, and their
//! wire format: a fixed 10-byte header (tag, step, errno or pid, subject length) and the subject
//! (or, for a seccomp filter, its flags in place of the errno and its instructions).

use std::fs::File;
use std::io::{self, Read, Write};

use crate::error::{Failure, Step};
use crate::seccomp::Filter;

/// Monitor → container process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToInit {
    /// The uid/gid maps are written: the process now has its ids and capabilities.
    MapsWritten,
    /// Exec now.
    Start,
    /// The monitor ran its hooks before `pivot_root`; the container's host pid, for the
    /// state its own hooks are given.
    HooksDone(i32),
}

/// Container process → monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromInit {
    /// Setup finished; the process waits for `Start`.
    Ready,
    /// A setup step failed; the process exits.
    Failed(Failure),
    /// `execve` failed with this errno; the process exits.
    ExecFailed(i32),
    /// The host pid of the process that will exec (used by `exec`, whose helper forks it).
    Pid(i32),
    /// The mounts are in place and `pivot_root` is next: the process waits for `HooksDone`.
    Mounted,
}

const HEADER: usize = 10;
const FILTER_TAG: u8 = 4;
/// The kernel's limit on a filter's length (`BPF_MAXINSNS`), 8 bytes per instruction.
pub(crate) const MAX_FILTER_BYTES: usize = 4096 * 8;
// Keeps a message within PIPE_BUF so one write() is atomic.
const MAX_SUBJECT: usize = 3800;

/// The writing end of a message pipe.
pub(crate) struct Sender(File);

/// The reading end of a message pipe.
pub(crate) struct Receiver(File);

/// A close-on-exec pipe carrying messages.
pub(crate) fn channel() -> io::Result<(Receiver, Sender)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((Receiver(File::from(r)), Sender(File::from(w))))
}

fn encode(tag: u8, step: u8, num: i32, subject: &str) -> Vec<u8> {
    let mut subject = subject.as_bytes();
    if subject.len() > MAX_SUBJECT {
        subject = &subject[..MAX_SUBJECT];
    }
    let mut buf = Vec::with_capacity(HEADER + subject.len());
    buf.push(tag);
    buf.push(step);
    buf.extend_from_slice(&num.to_le_bytes());
    buf.extend_from_slice(&(subject.len() as u32).to_le_bytes());
    buf.extend_from_slice(subject);
    buf
}

impl Sender {
    pub(crate) fn send_to_init(&mut self, msg: ToInit) -> io::Result<()> {
        let (tag, num) = match msg {
            ToInit::MapsWritten => (1, 0),
            ToInit::Start => (2, 0),
            ToInit::HooksDone(pid) => (3, pid),
        };
        self.0.write_all(&encode(tag, 0, num, ""))
    }

    /// Sends the seccomp filter, which the monitor compiles while the container process
    /// mounts its root. At most [`MAX_FILTER_BYTES`] (32 KiB) is within a pipe's usual buffer,
    /// so this normally returns without waiting for the reader.
    pub(crate) fn send_filter(&mut self, filter: &Filter) -> io::Result<()> {
        let (bytes, flags) = filter.to_bytes();
        let mut buf = Vec::with_capacity(HEADER + bytes.len());
        buf.push(FILTER_TAG);
        buf.push(0);
        buf.extend_from_slice(&flags.to_le_bytes());
        buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        buf.extend_from_slice(&bytes);
        self.0.write_all(&buf)
    }

    pub(crate) fn send_from_init(&mut self, msg: &FromInit) -> io::Result<()> {
        let buf = match msg {
            FromInit::Ready => encode(1, 0, 0, ""),
            FromInit::Failed(f) => encode(2, f.step.code(), f.errno, &f.subject),
            FromInit::ExecFailed(errno) => encode(3, 0, *errno, ""),
            FromInit::Pid(pid) => encode(4, 0, *pid, ""),
            FromInit::Mounted => encode(5, 0, 0, ""),
        };
        self.0.write_all(&buf)
    }
}

/// A decoded header plus subject; `None` at end of file.
type Raw = Option<(u8, u8, i32, String)>;

impl Receiver {
    fn read_raw(&mut self) -> io::Result<Raw> {
        let mut header = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            match self.0.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let num = i32::from_le_bytes([header[2], header[3], header[4], header[5]]);
        let len = u32::from_le_bytes([header[6], header[7], header[8], header[9]]) as usize;
        let mut subject = vec![0u8; len.min(MAX_SUBJECT)];
        self.0.read_exact(&mut subject)?;
        Ok(Some((
            header[0],
            header[1],
            num,
            String::from_utf8_lossy(&subject).into_owned(),
        )))
    }

    /// The filter [`Sender::send_filter`] sent, which must be the next message; `None` when
    /// the monitor closed the pipe instead.
    pub(crate) fn recv_filter(&mut self) -> io::Result<Option<Filter>> {
        let mut header = [0u8; HEADER];
        match self.0.read_exact(&mut header) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            other => other?,
        }
        let flags = u32::from_le_bytes([header[2], header[3], header[4], header[5]]);
        let len = u32::from_le_bytes([header[6], header[7], header[8], header[9]]) as usize;
        if header[0] != FILTER_TAG || len > MAX_FILTER_BYTES {
            return Err(io::ErrorKind::InvalidData.into());
        }
        let mut bytes = vec![0u8; len];
        self.0.read_exact(&mut bytes)?;
        Filter::from_bytes(&bytes, flags)
            .map(Some)
            .ok_or_else(|| io::ErrorKind::InvalidData.into())
    }

    /// The next message for the container process; `None` when the monitor closed the pipe.
    pub(crate) fn recv_to_init(&mut self) -> io::Result<Option<ToInit>> {
        Ok(match self.read_raw()? {
            None => None,
            Some((1, ..)) => Some(ToInit::MapsWritten),
            Some((2, ..)) => Some(ToInit::Start),
            Some((3, _, pid, _)) => Some(ToInit::HooksDone(pid)),
            Some(_) => return Err(io::ErrorKind::InvalidData.into()),
        })
    }

    /// The next message from the container process; `None` when it closed the pipe, which
    /// after `Start` means `execve` succeeded (the pipe is close-on-exec).
    pub(crate) fn recv_from_init(&mut self) -> io::Result<Option<FromInit>> {
        Ok(match self.read_raw()? {
            None => None,
            Some((1, ..)) => Some(FromInit::Ready),
            Some((2, step, errno, subject)) => Some(FromInit::Failed(Failure {
                step: Step::from_code(step),
                subject,
                errno,
            })),
            Some((3, _, errno, _)) => Some(FromInit::ExecFailed(errno)),
            Some((4, _, pid, _)) => Some(FromInit::Pid(pid)),
            Some((5, ..)) => Some(FromInit::Mounted),
            Some(_) => return Err(io::ErrorKind::InvalidData.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (mut rx, mut tx) = channel().unwrap();
        let failure = Failure {
            step: Step::Mount,
            subject: "proc on /proc".into(),
            errno: 1,
        };
        tx.send_from_init(&FromInit::Failed(failure.clone()))
            .unwrap();
        tx.send_from_init(&FromInit::ExecFailed(2)).unwrap();
        tx.send_from_init(&FromInit::Ready).unwrap();
        tx.send_from_init(&FromInit::Pid(42)).unwrap();
        drop(tx);
        assert_eq!(
            rx.recv_from_init().unwrap(),
            Some(FromInit::Failed(failure))
        );
        assert_eq!(rx.recv_from_init().unwrap(), Some(FromInit::ExecFailed(2)));
        assert_eq!(rx.recv_from_init().unwrap(), Some(FromInit::Ready));
        assert_eq!(rx.recv_from_init().unwrap(), Some(FromInit::Pid(42)));
        assert_eq!(rx.recv_from_init().unwrap(), None);
    }

    #[test]
    fn a_filter_round_trips_after_other_messages() {
        let filter = Filter::compile(&crate::seccomp::default_seccomp(&[])).unwrap();
        let (mut rx, mut tx) = channel().unwrap();
        tx.send_to_init(ToInit::MapsWritten).unwrap();
        tx.send_filter(&filter).unwrap();
        tx.send_to_init(ToInit::Start).unwrap();
        drop(tx);
        assert_eq!(rx.recv_to_init().unwrap(), Some(ToInit::MapsWritten));
        let got = rx.recv_filter().unwrap().unwrap();
        assert_eq!(got.to_bytes(), filter.to_bytes());
        assert_eq!(rx.recv_to_init().unwrap(), Some(ToInit::Start));
        assert!(rx.recv_filter().unwrap().is_none());
        // Anything else where the filter should be is refused.
        let (mut rx, mut tx) = channel().unwrap();
        tx.send_to_init(ToInit::Start).unwrap();
        assert!(rx.recv_filter().is_err());
    }

    #[test]
    fn control_messages_round_trip() {
        let (mut rx, mut tx) = channel().unwrap();
        tx.send_to_init(ToInit::MapsWritten).unwrap();
        tx.send_to_init(ToInit::Start).unwrap();
        drop(tx);
        assert_eq!(rx.recv_to_init().unwrap(), Some(ToInit::MapsWritten));
        assert_eq!(rx.recv_to_init().unwrap(), Some(ToInit::Start));
        assert_eq!(rx.recv_to_init().unwrap(), None);
    }
}
