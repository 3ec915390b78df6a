//! Installing a seccomp BPF program on the calling process.
#![allow(unsafe_code)]

use std::io;

/// A BPF program in the kernel's `struct sock_filter` layout, with its filter flags.
#[derive(Clone)]
pub(crate) struct Program {
    insns: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("len", &self.insns.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl Program {
    /// Builds the program from `(code, jt, jf, k)` instructions.
    pub(crate) fn new(insns: impl Iterator<Item = (u16, u8, u8, u32)>, flags: u32) -> Program {
        Program {
            insns: insns
                .map(|(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
                .collect(),
            flags: libc::c_ulong::from(flags),
        }
    }

    /// The instructions as `(code, jt, jf, k)`.
    pub(crate) fn instructions(&self) -> impl ExactSizeIterator<Item = (u16, u8, u8, u32)> + '_ {
        self.insns.iter().map(|i| (i.code, i.jt, i.jf, i.k))
    }

    /// The `seccomp(2)` flags the program is installed with.
    pub(crate) fn flags(&self) -> u32 {
        self.flags as u32
    }

    /// `seccomp(SECCOMP_SET_MODE_FILTER)`: from now on every syscall of this process and its
    /// future children goes through the program.
    pub(crate) fn install(&self) -> io::Result<()> {
        let len = u16::try_from(self.insns.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let prog = libc::sock_fprog {
            len,
            filter: self.insns.as_ptr().cast_mut(),
        };
        // SAFETY: prog points to `len` initialised sock_filter values owned by self, alive for
        // the whole call; the kernel copies the program and never writes through the pointer.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
