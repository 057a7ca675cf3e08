//! Crash points for the kill -9 tests, compiled in only with the `fault-injection`
//! feature (the e2e tests turn it on; a release `trawl` never reads `TRAWL_FAULT`).
//!
//! With `TRAWL_FAULT=<point>:<n>` in the environment, the process aborts (no
//! destructors, no flush: like `kill -9`) the `n`th time the commit path reaches
//! `<point>`: `enqueue-chunk` (between the batches of a large link set),
//! `mid-sink-write` (after the second record of a batch), `before-ack` (records handed
//! to the OS, ack not written), `after-ack` (acked, not flushed) or `after-flush`.

/// A named crash point.
#[cfg(feature = "fault-injection")]
pub(crate) fn point(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static FAULT: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let spec = FAULT.get_or_init(|| {
        let v = std::env::var("TRAWL_FAULT").ok()?;
        let (p, n) = v.rsplit_once(':')?;
        Some((p.to_string(), n.parse().ok()?))
    });
    if let Some((p, n)) = spec
        && p == name
        && SEEN.fetch_add(1, Relaxed) + 1 == *n
    {
        eprintln!("trawl: TRAWL_FAULT: crashing at {name} ({n})");
        std::process::abort();
    }
}

/// A named crash point: nothing without the `fault-injection` feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point(_name: &str) {}
