//! Tuning of mimalloc, the allocator of the `techmon` binary.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// Numbers from the `mi_option_e` of libmimalloc-sys 0.1.49's mimalloc v3 (the
/// version is pinned for them).
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;
const MI_OPTION_ARENA_MAX_OBJECT_SIZE: mi_option_t = 45;

/// Keeps freed memory instead of handing it back to the OS: the transform frees a
/// round's buffers and makes them again, and faulting them back in (zeroing huge
/// pages) took a quarter of its time. Memory stays bounded by the largest round.
/// `MIMALLOC_PURGE_DELAY` in the environment still decides when set.
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores one option value; -1 is a documented value
        // of this option ("no purging at all").
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}

/// For a process that runs the transform: objects, and mimalloc pages of objects,
/// over 2 MiB are mapped on their own and unmapped when freed. A round makes and
/// frees large buffers of many sizes on many threads; kept in the shared arena, the
/// spans they freed fitted the next ones badly, and the arena held twice the live
/// bytes (a 10M-event replay peaked at 1.08 GiB, 0.88 GiB with this, and faulted in
/// fewer huge pages). Not for the query service: DataFusion's large buffers made its
/// KPI suite a third slower this way. `MIMALLOC_ARENA_MAX_OBJECT_SIZE` in the
/// environment still decides when set.
#[allow(unsafe_code)]
pub fn map_large_objects_apart() {
    if std::env::var_os("MIMALLOC_ARENA_MAX_OBJECT_SIZE").is_none() {
        // SAFETY: mi_option_set stores one option value; this option is a size in KiB.
        unsafe { mi_option_set(MI_OPTION_ARENA_MAX_OBJECT_SIZE, 2048) }
    }
}
