//! The allocator of the fuzz test binary: it records the largest single request made on each
//! thread, so a case can fail when a loader sizes a buffer from an unchecked header, even when
//! the buffer is never touched (with overcommit an untouched 10 GiB vector costs no RSS and
//! would go unnoticed by a memory check).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

/// Above this a request is not even attempted: it would risk the machine rather than the test.
/// Refusing makes Rust abort the process, so the message below is all that is left to read.
const REFUSE: usize = 4 << 30;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

pub struct Guard;

impl Guard {
    fn note(size: usize) -> bool {
        // try_with: allocations during thread teardown find the slot gone; they are not ours.
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        if size > REFUSE {
            // Stderr is unbuffered and this message is static, so nothing here allocates.
            let _ = std::io::stderr().write_all(
                b"fuzz alloc guard: refused an allocation over 4 GiB; the input is the newest \
                  file in the fuzz scratch folder (target/tmp/fuzz-*)\n",
            );
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
