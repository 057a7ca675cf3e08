//! The scheduler's per-host state: a host's slot while it is being served (its gate,
//! its leased URLs waiting for the gate, its requests in flight, its timer), and a bit
//! set by host number; and a host's hand-over between workers of a shared frontier
//! (its gate restored from the stored politeness, its claim released with the time its
//! next request may start).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use trawl_fetcher::{GateSnapshot, HostGate};
use trawl_frontier::{HostId, Lease};
use url::Url;

use super::{Shared, now_ms};
use crate::error::Error;

/// Per-host scheduling state, owned by the scheduler, for the hosts it is serving:
/// those with leases in their buffers, requests in flight, or a wait for their gate.
/// A host with none of these has no slot (its gate and its queue wait in the
/// fetcher and the frontier), so the slots are bounded by the work in flight, not by
/// the hosts of the crawl.
pub(super) struct HostSlot {
    pub(super) label: String,
    pub(super) gate: SlotGate,
    /// Leased pages waiting for the gate.
    pub(super) pages: VecDeque<Lease>,
    /// Leased sitemaps waiting for the gate, with the sitemap lane free. Apart from the
    /// pages, so that pages go on; while the lane is full they wait in the scheduler's
    /// `lane_queue` instead, out of any slot.
    pub(super) sitemaps: VecDeque<Lease>,
    /// Jobs dispatched and not yet finished (a finished one is reported through
    /// `Shared::finished`).
    pub(super) in_flight: usize,
    /// When the gate said a start could pass, if the host waits for that.
    pub(super) timer: Option<Instant>,
    /// Whether it is in the runnable queue.
    pub(super) runnable: bool,
    /// The frontier had no more of the host's URLs at the last lease (it gave fewer
    /// than were asked for).
    pub(super) drained: bool,
}

/// A slot's gate, or the host's URL while the fetcher looks up the address its gate
/// is keyed by (`--politeness-key ip`, a name not resolved yet): the lookup runs on
/// the runtime, and the scheduler looks again every `RESOLVE_POLL` (5 ms) meanwhile
/// instead of waiting on one name.
pub(super) enum SlotGate {
    Ready(Arc<HostGate>),
    Resolving(Url),
}

impl HostSlot {
    pub(super) fn buffered(&self) -> usize {
        self.pages.len() + self.sitemaps.len()
    }

    /// Whether a buffered lease could go now, as far as the lane is concerned.
    pub(super) fn dispatchable(&self, lane: &Semaphore) -> bool {
        !self.pages.is_empty() || (!self.sitemaps.is_empty() && lane.available_permits() > 0)
    }

    /// Whether anything will bring the scheduler back to this host.
    pub(super) fn busy(&self) -> bool {
        self.in_flight > 0 || self.timer.is_some() || self.buffered() > 0
    }
}

/// One bit per host number.
#[derive(Debug, Default)]
pub(super) struct Bits(Vec<u64>);

impl Bits {
    pub(super) fn get(&self, h: HostId) -> bool {
        self.0
            .get(h.0 as usize / 64)
            .is_some_and(|w| w & (1 << (h.0 % 64)) != 0)
    }

    pub(super) fn set(&mut self, h: HostId) {
        let i = h.0 as usize / 64;
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] |= 1 << (h.0 % 64);
    }
}

/// Restores a host's gate from the politeness state a shared frontier keeps for it.
pub(super) fn restore_gate(g: &HostGate, p: &trawl_frontier::Politeness) {
    let now = now_ms();
    g.restore(GateSnapshot {
        cool_down: Duration::from_millis(p.earliest_ms().saturating_sub(now)),
        backoff_level: p.backoff_level,
        adaptive_millirate: p.adaptive_millirate,
    });
}

/// Gives a host whose slot closed back to a shared frontier, with the time its
/// next request may start, so the worker that takes it next keeps the pace.
pub(super) fn release(sh: &Shared, id: HostId, slot: &HostSlot) -> Result<(), Error> {
    if sh.frontier.worker().is_none() {
        return Ok(());
    }
    if let SlotGate::Ready(g) = &slot.gate {
        let mut p = sh
            .frontier
            .politeness(id)
            .map_err(|e| sh.state_error(e))?
            .unwrap_or_default();
        let next = now_ms() + g.ready_in().as_millis() as u64;
        if next > p.next_allowed_at_ms {
            p.next_allowed_at_ms = next;
            sh.frontier.set_politeness(id, p).map_err(|e| sh.state_error(e))?;
        }
    }
    sh.frontier.release(id).map_err(|e| sh.state_error(e))
}
