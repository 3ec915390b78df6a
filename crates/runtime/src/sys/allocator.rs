//! The memory allocator: a bump arena for a process's first allocations, then the platform's
//! allocator behind it (dlmalloc in a musl build, glibc's malloc otherwise).
//!
//! A `berth run` makes thousands of small allocations before its container starts (JSON of
//! the record and the spec, paths, strings), most of them freed again within microseconds.
//! dlmalloc and its lock took a fifth of the monitor's CPU time up to the clone (`perf`, frame
//! pointers). The arena hands out memory by moving an offset, lock-free; a block freed while
//! it is the last one handed out (the usual fate of a temporary) gives its space back, any
//! other stays unused. The arena is small (1 MiB of address space, resident only as touched)
//! and takes blocks of up to 64 KiB: a long-lived process soon fills it and goes on with the
//! platform's allocator, so what it can hold unused is bounded.
//!
//! Why dlmalloc in a musl build: musl's own allocator hands freed memory back to the kernel at
//! once (a bare `berth --version` made 120 `mmap` and 114 `munmap` calls with it); dlmalloc
//! keeps it, as glibc's allocator does.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Address space the arena reserves.
const ARENA_BYTES: usize = 1 << 20;
/// Blocks larger than this go to the platform's allocator: buffers, not start-up chatter.
const ARENA_MAX_BLOCK: usize = 64 << 10;

#[cfg(target_env = "musl")]
static FALLBACK: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
#[cfg(not(target_env = "musl"))]
static FALLBACK: std::alloc::System = std::alloc::System;

/// The process's allocator.
struct Allocator {
    arena: Arena,
}

#[global_allocator]
static ALLOCATOR: Allocator = Allocator {
    arena: Arena::new(),
};

// SAFETY: blocks come from the arena, whose blocks never overlap while they are live (see
// Arena), or else from the platform's allocator, which gets back exactly the blocks it gave.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() <= ARENA_MAX_BLOCK {
            if let Some(p) = self.arena.take(layout) {
                return p;
            }
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { FALLBACK.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.arena.contains(ptr) {
            self.arena.give_back(ptr, layout.size());
        } else {
            // SAFETY: not the arena's, so the platform's allocator gave it, with this layout.
            unsafe { FALLBACK.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.arena.contains(ptr) {
            // SAFETY: the platform's block, with the caller's layout and size.
            return unsafe { FALLBACK.realloc(ptr, layout, new_size) };
        }
        if self.arena.resize_last(ptr, layout.size(), new_size) {
            return ptr;
        }
        // SAFETY: the caller guarantees new_size, rounded up to the alignment, fits an isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero size (the caller's contract for realloc).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            self.arena.give_back(ptr, layout.size());
        }
        new
    }
}

/// A region handed out front to back. `next` is the offset of the first free byte; a block
/// is taken by moving it forward (compare-and-swap, so threads need no lock, and a fork's
/// child, which copies the region, finds it consistent).
struct Arena {
    /// The region's address; 0 until first used, `usize::MAX` when it could not be mapped.
    base: AtomicUsize,
    next: AtomicUsize,
    len: usize,
}

const UNMAPPED: usize = 0;
const FAILED: usize = usize::MAX;

impl Arena {
    const fn new() -> Arena {
        Arena {
            base: AtomicUsize::new(UNMAPPED),
            next: AtomicUsize::new(0),
            len: ARENA_BYTES,
        }
    }

    /// The region's address, mapped on first use.
    fn base(&self) -> Option<usize> {
        match self.base.load(Ordering::Acquire) {
            FAILED => None,
            UNMAPPED => {
                let mapped = super::memory::reserve(self.len).map_or(FAILED, |p| p as usize);
                match self.base.compare_exchange(
                    UNMAPPED,
                    mapped,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => (mapped != FAILED).then_some(mapped),
                    // Another thread mapped one first: ours goes.
                    Err(theirs) => {
                        if mapped != FAILED {
                            super::memory::release(mapped as *mut u8, self.len);
                        }
                        (theirs != FAILED).then_some(theirs)
                    }
                }
            }
            base => Some(base),
        }
    }

    fn take(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.base()?;
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            // Alignments are powers of two; the region is page-aligned.
            let start = (next + layout.align() - 1) & !(layout.align() - 1);
            let end = start.checked_add(layout.size())?;
            if end > self.len {
                return None;
            }
            match self
                .next
                .compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some((base + start) as *mut u8),
                Err(now) => next = now,
            }
        }
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let base = self.base.load(Ordering::Acquire);
        base != UNMAPPED && base != FAILED && (ptr as usize).wrapping_sub(base) < self.len
    }

    /// A freed block: its space comes back only if it is the last one taken.
    fn give_back(&self, ptr: *mut u8, size: usize) {
        let start = ptr as usize - self.base.load(Ordering::Acquire);
        let _ =
            self.next
                .compare_exchange(start + size, start, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Grows or shrinks the last block taken where it lies; false for any other block, or
    /// when the region has no room.
    fn resize_last(&self, ptr: *mut u8, size: usize, new_size: usize) -> bool {
        let start = ptr as usize - self.base.load(Ordering::Acquire);
        match start.checked_add(new_size) {
            Some(end) if end <= self.len => self
                .next
                .compare_exchange(start + size, end, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok(),
            _ => false,
        }
    }
}

/// Keeps the allocator usable in the child of a `fork(2)` that another thread raced with an
/// allocation (glibc's allocator does this by itself). Call it first in `main`, while the process
/// has one thread.
pub fn keep_allocator_usable_after_fork() {
    #[cfg(target_env = "musl")]
    // SAFETY: called while the process has a single thread, so no other thread can hold the
    // allocator's lock while the fork handlers are registered; registering them twice is
    // harmless (the function remembers it did).
    unsafe {
        dlmalloc::enable_alloc_after_fork()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_apart_and_the_last_one_comes_back() {
        let a = Arena::new();
        let p = a.take(layout(3, 1)).unwrap();
        let q = a.take(layout(16, 16)).unwrap();
        assert_eq!(q as usize % 16, 0);
        assert!(q as usize >= p as usize + 3);
        assert!(a.contains(p) && a.contains(q));
        // Not the last: nothing comes back.
        let before = a.next.load(Ordering::Relaxed);
        a.give_back(p, 3);
        assert_eq!(a.next.load(Ordering::Relaxed), before);
        // The last: its space is taken again.
        a.give_back(q, 16);
        assert_eq!(a.take(layout(16, 16)).unwrap(), q);
        super::super::memory::release(a.base().unwrap() as *mut u8, a.len);
    }

    #[test]
    fn the_last_block_grows_in_place_until_the_region_is_full() {
        let a = Arena::new();
        let p = a.take(layout(100, 8)).unwrap();
        assert!(a.resize_last(p, 100, 4000));
        let q = a.take(layout(8, 8)).unwrap();
        assert!(q as usize >= p as usize + 4000);
        // p is no longer last.
        assert!(!a.resize_last(p, 4000, 8000));
        assert!(!a.resize_last(q, 8, ARENA_BYTES));
        assert!(a.take(layout(ARENA_BYTES, 8)).is_none());
        super::super::memory::release(a.base().unwrap() as *mut u8, a.len);
    }

    #[test]
    fn the_process_allocator_serves_and_copies_across_both() {
        // Small blocks from the arena, a large one from the platform's allocator; a block
        // grown past the arena's limit keeps its bytes.
        let mut v: Vec<u8> = (0..=255).collect();
        let s = "x".repeat(ARENA_MAX_BLOCK * 2);
        v.extend_from_slice(s.as_bytes());
        assert_eq!(&v[..256], &(0..=255).collect::<Vec<u8>>()[..]);
        assert_eq!(v.len(), 256 + 2 * ARENA_MAX_BLOCK);
        let boxes: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
        assert!(boxes.iter().enumerate().all(|(i, b)| **b == i as u64));
    }
}
