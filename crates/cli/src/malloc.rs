//! Tuning of glibc's allocator, applied once at start-up.
//!
//! A crawl allocates many large, short-lived buffers: response bodies and parse trees
//! of a few hundred KiB to tens of MiB, freed again within milliseconds, on many
//! threads. glibc's default handles that badly. After a large mmap'ed block is freed
//! it raises its mmap threshold to that block's size (up to 32 MiB), so later large
//! buffers come from its per-thread arenas instead, and up to 8 arenas per core hold on
//! to the freed space. Measured on the Rust documentation (BENCHMARKS.md, real sites):
//! peak RSS 297 MiB with the defaults, 142 MiB with a fixed 256 KiB threshold and two
//! arenas. A user's own `GLIBC_TUNABLES`, `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_`
//! wins: then nothing is changed.

/// The size from which allocations get their own mapping, returned to the system on
/// free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 << 10;
/// Arenas: two are enough for trawl's few busy threads on any core count.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: libc::c_int = 2;

/// Applies the tuning, unless the environment already tunes malloc. Call it before
/// any thread is started.
pub(crate) fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = ["GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if !tuned {
            set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            set(libc::M_ARENA_MAX, ARENA_MAX);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set(param: libc::c_int, value: libc::c_int) {
    // SAFETY: mallopt only changes allocator parameters; it is called before other
    // threads exist, with parameters and values glibc documents.
    let ok = unsafe { libc::mallopt(param, value) };
    if ok != 1 {
        tracing::debug!(param, value, "mallopt refused a setting");
    }
}
