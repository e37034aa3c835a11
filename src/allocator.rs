//! Tuning of mimalloc, the allocator of the `techmon` binary.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// Numbers from the `mi_option_e` of libmimalloc-sys 0.1.49's mimalloc v3 (the
/// version is pinned for them).
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// What a process spends its memory on, which decides how long it keeps what it frees.
#[derive(Debug, Clone, Copy)]
pub enum Workload {
    /// The transform over a backlog of any size (`transform`, `replay`).
    Transform,
    /// The transform and the query API in one process (`serve`).
    TransformAndQueries,
    /// Everything else: queries alone, pushes, benchmarks, the demo's small lake.
    Other,
}

/// Keeps freed memory instead of handing it back to the OS at once: the transform
/// frees a round's buffers and makes them again, and faulting them back in (zeroing
/// the pages) took a large share of its time. Large buffers stay in mimalloc's arenas
/// too (its default): mapped on their own, they were faulted in again every round, at
/// a cost in system time.
///
/// Kept forever, the arenas of a long replay grow as freed spans fit the next buffers
/// badly; so the transform alone hands back what it has not reused for a second (a
/// round takes less), which keeps it smaller at the cost of a little system time.
/// `serve` also answers queries, whose memory comes back between one query and the
/// next: handed back after a second, the KPI views ran clearly slower than after ten
/// seconds (and kept forever, faster still), so it waits ten seconds, at the cost of
/// a higher peak in a replay. Other commands keep everything.
/// `MIMALLOC_PURGE_DELAY` in the environment still decides when set.
pub fn keep_freed_memory(workload: Workload) {
    // In milliseconds; -1 is this option's documented "no purging at all".
    let purge_delay = match workload {
        Workload::Transform => 1000,
        Workload::TransformAndQueries => 10_000,
        Workload::Other => -1,
    };
    set_unless_in_environment("MIMALLOC_PURGE_DELAY", MI_OPTION_PURGE_DELAY, purge_delay);
}

/// Turns transparent huge pages off for the process. mimalloc asks for them on every
/// span it maps (`MADV_HUGEPAGE`), so a first touch zeroes 2 MiB, and compacts memory
/// first when the machine has no free huge page: the query suite often spent far more
/// system time that way (how much depended on the machine's free memory) and peaked
/// higher; the transform's replay ran faster without them too. `MIMALLOC_ALLOW_THP`
/// in the environment still decides when set.
#[allow(unsafe_code)]
pub fn no_transparent_huge_pages() {
    // The switch is Linux's, as are transparent huge pages.
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE sets a flag of the process from an integer and
        // reads or writes none of its memory.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
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
