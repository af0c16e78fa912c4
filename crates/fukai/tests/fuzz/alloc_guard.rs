//! The allocator of the fuzz test binary: it records the largest single request made on each
//! thread, so a case can fail when a loader sizes a buffer from an unchecked header, even when
//! the buffer is never touched (with overcommit an untouched 10 GiB vector costs no RSS and
//! would go unnoticed by a memory check).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::io::Write;

/// Above this a request is not even attempted: it would risk the machine rather than the test.
/// Refusing makes Rust abort the process, so the message below (naming the case and its input
/// file) is all that is left to read.
const REFUSE: usize = 4 << 30;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// What this thread is running, for the refusal message (a fixed buffer: the allocator
    /// must not allocate to report).
    static CASE: RefCell<([u8; 512], usize)> = const { RefCell::new(([0; 512], 0)) };
}

/// Records the case this thread runs next, for the refusal message.
pub fn set_case(desc: &str) {
    CASE.with(|c| {
        let mut c = c.borrow_mut();
        let n = desc.len().min(c.0.len());
        c.0[..n].copy_from_slice(&desc.as_bytes()[..n]);
        c.1 = n;
    });
}

pub struct Guard;

impl Guard {
    fn note(size: usize) -> bool {
        // try_with: allocations during thread teardown find the slot gone; they are not ours.
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        if size > REFUSE {
            // Stderr is unbuffered and the text is in fixed buffers, so nothing here allocates.
            let mut err = std::io::stderr();
            let _ = err.write_all(b"fuzz alloc guard: refused an allocation over 4 GiB in ");
            let _ = CASE.try_with(|c| {
                let c = c.borrow();
                let _ = err.write_all(&c.0[..c.1]);
            });
            let _ = err.write_all(b"\n");
            return false;
        }
        true
    }
}

/// Resets this thread's record and returns the largest request since the previous call.
pub fn take_largest() -> usize {
    LARGEST.with(|l| l.replace(0))
}

// SAFETY: forwards to the system allocator unchanged; refusing (null) is allowed by the trait.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System through alloc/alloc_zeroed/realloc above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Self::note(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
