//! argon2 working memory on transparent huge pages.
//!
//! An argon2id hash with Sen's parameters reads 19 MiB of blocks in a
//! data-dependent order. On 4 KiB pages that is ~4,900 pages, far more
//! than the TLB holds, so nearly every block access walks the page table,
//! and every request the server handles between two blocks evicts more of
//! the TLB. On 2 MiB pages the same memory is ten TLB entries. Measured on
//! the 2-core bench machine, alternating rounds with huge pages off and
//! on: one hashing thread 54 → 58 hashes/s, two threads 105 → 109 (and
//! 123 → 136 in an earlier pair of runs), so every login costs less CPU.
//!
//! Linux gives anonymous memory huge pages only when asked (`madvise`
//! mode, the common default) and only for 2 MiB-aligned ranges, which
//! neither `Vec` nor the argon2 crate's own allocation asks for or
//! guarantees; no maintained crate offers an aligned, advised allocation
//! of `argon2::Block`s, hence these few lines of unsafe code.

use std::alloc::{Layout, alloc, dealloc};
use std::ptr::NonNull;

use argon2::Block;

/// A huge page's size on x86-64 and aarch64 (4 KiB base pages).
pub const HUGE_PAGE: usize = 2 * 1024 * 1024;

/// Zero-initialised argon2 blocks in 2 MiB-aligned memory advised onto
/// transparent huge pages (plain pages where the kernel says no).
pub struct HugeBlocks {
    ptr: NonNull<Block>,
    len: usize,
    layout: Layout,
}

// SAFETY: `HugeBlocks` owns its allocation exclusively (like `Vec<Block>`,
// which is `Send`); nothing else holds the pointer.
unsafe impl Send for HugeBlocks {}

impl HugeBlocks {
    /// `len` zeroed blocks (at least one); `None` when the allocation
    /// fails or `len` is 0.
    pub fn new(len: usize) -> Option<Self> {
        if len == 0 {
            return None;
        }
        let bytes = len
            .checked_mul(size_of::<Block>())?
            .checked_next_multiple_of(HUGE_PAGE)?;
        let layout = Layout::from_size_align(bytes, HUGE_PAGE).ok()?;
        // SAFETY: `layout` has a non-zero size (len >= 1).
        let raw = unsafe { alloc(layout) };
        let ptr = NonNull::new(raw)?;
        advise_huge_pages(ptr, bytes);
        // Touched only now, after the advice, so the first faults can take
        // huge pages. SAFETY: `ptr` is valid for `bytes` writes (just
        // allocated with that size), and all-zero bytes are a valid
        // `Block` (an array of `u64`).
        unsafe { raw.write_bytes(0, bytes) };
        Some(Self {
            ptr: ptr.cast(),
            len,
            layout,
        })
    }

    /// How many blocks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none (never: `new` refuses 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of the first block (for tests that inspect the mapping).
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
}

impl AsMut<[Block]> for HugeBlocks {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: `ptr` points to `len` initialised blocks (zeroed in
        // `new`, since then only written through this exclusive borrow),
        // suitably aligned (2 MiB >= align_of::<Block>()), and owned by
        // `self`, which `&mut self` borrows exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HugeBlocks {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc(self.layout)` and is freed once.
        unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

/// Asks Linux to back `[ptr, ptr + bytes)` with transparent huge pages.
/// Advice only: failure (an old kernel, THP disabled) changes nothing.
fn advise_huge_pages(ptr: NonNull<u8>, bytes: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: the range is one live allocation of `bytes` bytes owned by
    // the caller, page-aligned (2 MiB alignment); MADV_HUGEPAGE changes
    // neither its contents nor its validity.
    unsafe {
        libc::madvise(ptr.as_ptr().cast(), bytes, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, bytes);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn blocks_are_zeroed_aligned_and_writable() {
        let mut m = HugeBlocks::new(19 * 1024).unwrap();
        assert_eq!(m.len(), 19 * 1024);
        assert_eq!(m.addr() % HUGE_PAGE, 0);
        let blocks = m.as_mut();
        assert_eq!(blocks.len(), 19 * 1024);
        assert!(blocks.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)));
        blocks[19 * 1024 - 1].as_mut()[127] = 7;
        assert_eq!(m.as_mut()[19 * 1024 - 1].as_ref()[127], 7);
        assert!(HugeBlocks::new(0).is_none());
    }

    /// The mapping holding the blocks is eligible for huge pages (where
    /// the kernel offers them at all): the advice reached the kernel.
    #[cfg(target_os = "linux")]
    #[test]
    fn memory_is_advised_onto_huge_pages() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if thp.is_empty() || thp.contains("[never]") {
            return; // this kernel gives no huge pages to anyone
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if status
            .lines()
            .any(|l| l.starts_with("THP_enabled:") && l.ends_with('0'))
        {
            return; // huge pages are switched off for this process (prctl)
        }
        let m = HugeBlocks::new(19 * 1024).unwrap();
        let addr = m.addr();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut eligible = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo <= addr && addr < hi;
                continue;
            }
            if inside && let Some(v) = line.strip_prefix("THPeligible:") {
                eligible = Some(v.trim().to_string());
            }
        }
        assert_eq!(
            eligible.as_deref(),
            Some("1"),
            "mapping of {addr:#x} not THP-eligible"
        );
    }
}
