//! Zeroed memory for the tables the CPU engines read at random: it starts on a cache line (so a
//! row padded to whole lines shares none with its neighbours) and, on Unix, on a 2 MiB boundary,
//! which on Linux the kernel is asked to back with 2 MiB pages (transparent huge pages in `madvise`
//! mode): with 4 KiB pages nearly every random read of a large table also misses the TLB. A `Vec`
//! could not do both: one aligned beyond 16 bytes is zeroed by writing it, which backs it with
//! 4 KiB pages before any advice.

/// Bytes in a cache line.
pub(crate) const LINE: usize = 64;

/// Floats in a cache line.
pub(crate) const FLOATS_PER_LINE: usize = LINE / std::mem::size_of::<f32>();

/// `len` zeroed floats, aligned as the module says; they deref to a slice.
pub(crate) struct Aligned {
    len: usize,
    #[cfg(unix)]
    map: Mapping,
    #[cfg(not(unix))]
    lines: Vec<Line>,
}

impl Aligned {
    /// `len` zeroed floats.
    pub fn zeroed(len: usize) -> Aligned {
        #[cfg(unix)]
        return Aligned { len, map: Mapping::new(len) };
        #[cfg(not(unix))]
        Aligned { len, lines: vec![Line([0.0; FLOATS_PER_LINE]); len.div_ceil(FLOATS_PER_LINE)] }
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        #[cfg(unix)]
        let start = self.map.start.cast_const();
        #[cfg(not(unix))]
        let start = self.lines.as_ptr().cast::<f32>();
        // SAFETY: `start` is followed by at least `len` initialised floats (zeroed by the kernel, or
        // the lines' arrays of floats, contiguous), owned by `self` and living as long as it.
        unsafe { std::slice::from_raw_parts(start, self.len) }
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        #[cfg(unix)]
        let start = self.map.start;
        #[cfg(not(unix))]
        let start = self.lines.as_mut_ptr().cast::<f32>();
        // SAFETY: as `deref`; `&mut self` makes this slice the only reference to the floats.
        unsafe { std::slice::from_raw_parts_mut(start, self.len) }
    }
}

/// One cache line of floats.
#[cfg(not(unix))]
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; FLOATS_PER_LINE]);

/// A private anonymous mapping (`bytes` from `base`, owned) whose floats start at `start`.
#[cfg(unix)]
struct Mapping {
    base: *mut libc::c_void,
    bytes: usize,
    start: *mut f32,
}

/// A 2 MiB page: the floats start on such a boundary.
#[cfg(unix)]
const HUGE: usize = 2 << 20;

// SAFETY: the mapping is owned by one `Aligned` and reached only through it, as a `Vec`'s buffer.
#[cfg(unix)]
unsafe impl Send for Mapping {}
// SAFETY: as `Send`; shared references only read it.
#[cfg(unix)]
unsafe impl Sync for Mapping {}

#[cfg(unix)]
impl Mapping {
    fn new(len: usize) -> Mapping {
        let used = (len * std::mem::size_of::<f32>()).next_multiple_of(4096).max(4096);
        let bytes = used + HUGE;
        let (prot, flags) = (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
        // SAFETY: a fresh private anonymous mapping at an address the kernel chooses: it aliases
        // no memory of this process.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), bytes, prot, flags, -1, 0) };
        if base == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align(bytes, HUGE).expect("a table's size"));
        }
        let start = (base as usize).next_multiple_of(HUGE);
        #[cfg(target_os = "linux")]
        if used >= HUGE {
            // SAFETY: advice only, on whole pages inside this mapping; it changes no contents.
            unsafe { libc::madvise(start as *mut libc::c_void, used, libc::MADV_HUGEPAGE) };
        }
        Mapping { base, bytes, start: start as *mut f32 }
    }
}

#[cfg(unix)]
impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Mapping::new`, unmapped once; no slice of it outlives the
        // `Aligned` that owns it.
        unsafe { libc::munmap(self.base, self.bytes) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floats start zeroed on a cache line, and hold what is written, small or large.
    #[test]
    fn aligned_memory_is_zeroed_on_a_line_and_writable() {
        for len in [0, 1, 17, 3 << 20] {
            let mut a = Aligned::zeroed(len);
            assert!(a.len() == len && (a.as_ptr() as usize).is_multiple_of(LINE));
            assert!(a.iter().all(|&x| x == 0.0));
            a.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
            assert!(a.iter().enumerate().all(|(i, &x)| x == i as f32));
        }
    }
}
