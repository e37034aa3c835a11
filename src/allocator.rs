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
pub fn keep_freed_memory() {
    // -1 is this option's documented "no purging at all".
    set_unless_in_environment("MIMALLOC_PURGE_DELAY", MI_OPTION_PURGE_DELAY, -1);
}

/// For a process that runs the transform: objects, and mimalloc pages of objects,
/// over 2 MiB are mapped on their own and unmapped when freed. A round makes and
/// frees large buffers of many sizes on many threads; kept in the shared arena, the
/// spans they freed fitted the next ones badly, and the arena held twice the live
/// bytes (a 10M-event replay peaked at 1.08 GiB, 0.88 GiB with this, and faulted in
/// fewer huge pages). Not for the query service: DataFusion's large buffers made its
/// KPI suite a third slower this way. `MIMALLOC_ARENA_MAX_OBJECT_SIZE` in the
/// environment still decides when set.
pub fn map_large_objects_apart() {
    // This option is a size in KiB.
    set_unless_in_environment(
        "MIMALLOC_ARENA_MAX_OBJECT_SIZE",
        MI_OPTION_ARENA_MAX_OBJECT_SIZE,
        2048,
    );
}

/// Sets a mimalloc option, unless the variable mimalloc reads it from is set: the
/// operator's choice wins.
#[allow(unsafe_code)]
fn set_unless_in_environment(variable: &str, option: mi_option_t, value: std::ffi::c_long) {
    if std::env::var_os(variable).is_none() {
        // SAFETY: mi_option_set stores one option value; the callers pass values
        // this version's mimalloc documents for their option.
        unsafe { mi_option_set(option, value) }
    }
}
