//! A global allocator that wipes memory before giving it back.
//!
//! Keys pass through many buffers the gateway does not own (TLS records in
//! rustls, strings of a parsed SDP, a `Vec` that grew and moved): each is
//! freed at some point, and without this its bytes stay in the heap until
//! reused. [`WipeOnFree`] wraps the system allocator and zeroes every
//! block when it is freed and when `realloc` moves it: one `memset`, then
//! the pointer goes through `black_box`, so the compiler cannot drop the
//! stores as dead before `free` (byte-wise volatile writes, as `zeroize`
//! does, made a boot under emulation almost 2 s slower). The
//! `dialgate` binary installs it:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: dialgate_wipe::WipeOnFree = dialgate_wipe::WipeOnFree;
//! ```
//!
//! The media path does not allocate per packet, so the cost is a `memset`
//! per freed block of signalling data.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// The system allocator, wiping every block before it is freed.
#[derive(Debug, Default, Clone, Copy)]
pub struct WipeOnFree;

/// Zeroes `size` bytes at `ptr`.
///
/// # Safety
/// `ptr` must be valid for writes of `size` bytes.
unsafe fn wipe(ptr: *mut u8, size: usize) {
    if size == 0 {
        return;
    }
    // SAFETY: the caller guarantees `ptr` is valid for `size` bytes; no
    // other reference to the block exists while it is being freed.
    unsafe { std::ptr::write_bytes(ptr, 0, size) };
    // The zeroes may be read through the pointer as far as the compiler
    // knows: the memset stays.
    std::hint::black_box(ptr);
}

// SAFETY: every method forwards to `System` with the same layouts, so the
// `GlobalAlloc` contract holds as it does for `System`; wiping only writes
// within blocks the caller owns.
unsafe impl GlobalAlloc for WipeOnFree {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes that the
        // caller gives up (`dealloc`'s contract).
        unsafe { wipe(ptr, layout.size()) };
        // SAFETY: the same block and layout it was allocated with.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A move must not leave the old copy behind: allocate, copy, wipe
        // and free the old block (never the system's in-place realloc,
        // which may copy and free without wiping).
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `new_layout` has a non-zero size (the caller's contract
        // for `realloc`) and a valid alignment.
        let new = unsafe { System.alloc(new_layout) };
        if new.is_null() {
            return new;
        }
        let keep = layout.size().min(new_size);
        // SAFETY: both blocks are live, at least `keep` bytes long, and
        // distinct (the new one was just allocated).
        unsafe { std::ptr::copy_nonoverlapping(ptr, new, keep) };
        // SAFETY: `ptr` is the caller's live block of `layout`; it is given
        // up here, as `realloc` does.
        unsafe { self.dealloc(ptr, layout) };
        new
    }
}

/// For benchmarks only (`bench wipe`): [`WipeOnFree`] while
/// [`set_wiping`] says so, the plain system allocator (with its own
/// `realloc`) otherwise, so that one process can measure what the wiping
/// costs. Starts **off**, so that a benchmark binary installing it keeps
/// the system allocator's figures elsewhere. Never the gateway's
/// allocator: it installs [`WipeOnFree`].
#[derive(Debug, Default, Clone, Copy)]
pub struct BenchSwitch;

static WIPING: AtomicBool = AtomicBool::new(false);

/// Turns [`BenchSwitch`]'s wiping on or off (blocks allocated before are
/// freed by whichever mode is on then: both free through `System`).
pub fn set_wiping(on: bool) {
    WIPING.store(on, Ordering::SeqCst);
}

// SAFETY: each method forwards to `WipeOnFree` or `System`, both of which
// allocate and free through `System` with the caller's layouts, so a block
// allocated in one mode may be freed or grown in the other.
unsafe impl GlobalAlloc for BenchSwitch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WIPING.load(Ordering::Relaxed) {
            // SAFETY: forwarded unchanged; the caller's live block.
            unsafe { WipeOnFree.dealloc(ptr, layout) }
        } else {
            // SAFETY: forwarded unchanged; the caller's live block.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WIPING.load(Ordering::Relaxed) {
            // SAFETY: forwarded unchanged; the caller upholds the contract.
            unsafe { WipeOnFree.realloc(ptr, layout, new_size) }
        } else {
            // SAFETY: forwarded unchanged; the caller upholds the contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_allocated_grown_and_freed_with_their_contents_kept() {
        let a = WipeOnFree;
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: a non-zero layout.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: the block is live, 64 bytes, and not aliased.
        let block = unsafe { std::slice::from_raw_parts_mut(p, 64) };
        for (i, b) in block.iter_mut().enumerate() {
            *b = i as u8;
        }
        // SAFETY: the live block, its layout, a non-zero new size.
        let q = unsafe { a.realloc(p, layout, 4096) };
        assert!(!q.is_null());
        // SAFETY: the grown block is live and at least 64 bytes.
        let grown = unsafe { std::slice::from_raw_parts(q, 64) };
        for (i, b) in grown.iter().enumerate() {
            assert_eq!(*b, i as u8);
        }
        // SAFETY: the live block and its layout.
        unsafe { a.dealloc(q, Layout::from_size_align(4096, 8).unwrap()) };
    }

    #[test]
    fn the_bench_switch_frees_blocks_of_either_mode_in_either_mode() {
        let a = BenchSwitch;
        let layout = Layout::from_size_align(32, 8).unwrap();
        for (alloc_on, free_on) in [(false, false), (false, true), (true, false), (true, true)] {
            set_wiping(alloc_on);
            // SAFETY: a non-zero layout.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: the block is live, 32 bytes, not aliased.
            unsafe { std::ptr::write_bytes(p, 0xA5, 32) };
            // SAFETY: the live block, its layout, a non-zero new size.
            let q = unsafe { a.realloc(p, layout, 256) };
            assert!(!q.is_null());
            // SAFETY: the grown block is live and at least 32 bytes.
            let kept = unsafe { std::slice::from_raw_parts(q, 32) };
            assert!(
                kept.iter().all(|b| *b == 0xA5),
                "contents kept across realloc"
            );
            set_wiping(free_on);
            // SAFETY: the live block and its layout.
            unsafe { a.dealloc(q, Layout::from_size_align(256, 8).unwrap()) };
        }
        set_wiping(false);
    }
}
