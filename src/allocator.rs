//! Tuning of mimalloc, the allocator of the `techmon` binary.

/// `mi_option_purge_delay` in the `mi_option_e` of libmimalloc-sys 0.1.49's
/// mimalloc v3 (the version is pinned for this number).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory instead of handing it back to the OS: the transform frees a
/// round's buffers and makes them again, and faulting them back in (zeroing huge
/// pages) took a quarter of its time. Memory stays bounded by the largest round.
/// `MIMALLOC_PURGE_DELAY` in the environment still decides when set.
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores one option value; -1 is a documented value
        // of this option ("no purging at all").
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}
