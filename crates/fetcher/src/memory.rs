//! A budget for the bodies a [`Fetcher`](crate::Fetcher) holds in memory.
//!
//! With [`FetcherBuilder::body_memory`](crate::FetcherBuilder::body_memory), every body
//! takes its share of one budget before it is read, and keeps it, as the
//! [`Fetched::memory`](crate::Fetched::memory) reservation, until the caller drops it.
//! The bodies being read, and those the caller still holds, then stay within the
//! budget, whatever their sizes and however many fetches run at once.
//!
//! - A body with a `Content-Length` reserves that much (at most the body cap, at most
//!   the whole budget) before its first byte is read, waiting for room: a body larger
//!   than the budget is read when it is alone.
//! - A body that grows past its reservation (no `Content-Length`, or decompression)
//!   takes more while there is room and is read on regardless when there is none: a
//!   fetch that already holds part of the budget never waits for more, so fetches can
//!   never wait on each other in a cycle. That overdraft is counted
//!   ([`BodyMemory::overdrawn`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The unit of the budget.
const UNIT: u64 = 1024;

/// The shared budget of one fetcher.
#[derive(Debug)]
pub(crate) struct BodyMemory {
    sem: Arc<Semaphore>,
    units: u64,
    overdrawn: AtomicU64,
}

impl BodyMemory {
    pub(crate) fn new(bytes: u64) -> BodyMemory {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64 / 2);
        BodyMemory {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
            overdrawn: AtomicU64::new(0),
        }
    }

    /// Waits for room for `bytes` (capped at the whole budget).
    pub(crate) async fn reserve(self: &Arc<Self>, bytes: u64) -> MemoryReservation {
        let n = bytes.div_ceil(UNIT).clamp(1, self.units) as u32;
        let permit = self.sem.clone().acquire_many_owned(n).await.ok();
        MemoryReservation {
            permit: permit.map(Arc::new),
            budget: self.clone(),
            bytes: u64::from(n) * UNIT,
        }
    }

    /// Bytes that bodies grew past their reservations while the budget was full.
    pub(crate) fn overdrawn(&self) -> u64 {
        self.overdrawn.load(Relaxed)
    }
}

/// A body's share of its fetcher's body-memory budget
/// ([`FetcherBuilder::body_memory`](crate::FetcherBuilder::body_memory)). The share
/// returns to the budget when the last clone of this reservation is dropped: keep it
/// as long as the body is held, drop it when the body is.
#[derive(Debug, Clone)]
pub struct MemoryReservation {
    permit: Option<Arc<OwnedSemaphorePermit>>,
    budget: Arc<BodyMemory>,
    bytes: u64,
}

impl MemoryReservation {
    /// The bytes this reservation covers: its share of the budget, plus what the body
    /// overdrew when the budget was full (that part is not held, and returns nothing).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Grows the reservation to cover `len` bytes if the budget has room, without
    /// waiting; what does not fit is counted as overdrawn.
    pub(crate) fn grow_to(&mut self, len: u64) {
        if len <= self.bytes {
            return;
        }
        let want = (len - self.bytes).div_ceil(UNIT).max(16);
        let got = self
            .budget
            .sem
            .clone()
            .try_acquire_many_owned(want.min(u64::from(u32::MAX)) as u32);
        match (got, self.permit.as_mut().and_then(Arc::get_mut)) {
            (Ok(more), Some(mine)) => {
                mine.merge(more);
                self.bytes += want * UNIT;
            }
            (Ok(more), None) => {
                // Shared already (never, while a body is read): keep the new units in
                // a fresh permit of their own.
                self.permit = Some(Arc::new(more));
                self.bytes = want * UNIT;
            }
            (Err(_), _) => {
                self.budget.overdrawn.fetch_add(len - self.bytes, Relaxed);
                self.bytes = len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_budget_makes_a_reservation_wait() {
        let b = Arc::new(BodyMemory::new(64 * 1024));
        let first = b.reserve(40 * 1024).await;
        assert_eq!(first.bytes(), 40 * 1024);
        let b2 = b.clone();
        let waiting = tokio::spawn(async move { b2.reserve(40 * 1024).await.bytes() });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no room: the second body waits");
        drop(first);
        assert_eq!(waiting.await.unwrap(), 40 * 1024);
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_takes_all_of_it() {
        let b = Arc::new(BodyMemory::new(64 * 1024));
        let big = b.reserve(10 << 20).await;
        assert_eq!(big.bytes(), 64 * 1024);
        assert_eq!(b.sem.available_permits(), 0);
        drop(big);
        assert_eq!(b.sem.available_permits(), 64);
    }

    #[tokio::test]
    async fn growth_takes_room_or_overdraws_without_waiting() {
        let b = Arc::new(BodyMemory::new(64 * 1024));
        let mut r = b.reserve(0).await;
        r.grow_to(20 * 1024);
        assert_eq!(b.overdrawn(), 0);
        assert!(r.bytes() >= 20 * 1024);
        let other = b.reserve(64 * 1024 - r.bytes()).await;
        r.grow_to(r.bytes() + 8 * 1024);
        assert_eq!(b.overdrawn(), 8 * 1024, "no room: read on, counted");
        drop((r, other));
        assert_eq!(b.sem.available_permits(), 64, "everything returned");
    }
}
