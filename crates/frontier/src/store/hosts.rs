//! The host table in memory and the index of hosts with queued URLs.

use super::*;

#[derive(Debug)]
pub(super) struct HostMem {
    pub(super) key: Box<str>,
    pub(super) counts: Counts,
    pub(super) politeness: Politeness,
    /// Where the host is in [`ReadyIndex`]: `None` (no queued URL), `Some(0)` (in
    /// `open`) or `Some(t)` (in `timed` at `t`).
    pub(super) ready_at: Option<u64>,
}

/// The hosts with queued URLs, so that finding hosts to lease from costs what is
/// asked for, not a pass over every host. Hosts whose persisted politeness names no
/// time (or one that has passed, once a scan has seen it pass) are in `open`, the
/// others in `timed` by that time. Derived from the host counts and politeness: never
/// stored, rebuilt on open, kept up to date by every batch and `set_politeness`.
#[derive(Debug, Default)]
pub(super) struct ReadyIndex {
    pub(super) open: BTreeSet<u32>,
    pub(super) timed: BTreeSet<(u64, u32)>,
}

impl ReadyIndex {
    /// Puts host `h` where its counts and politeness say.
    pub(super) fn place(&mut self, hosts: &mut [HostMem], h: u32) {
        let Some(host) = hosts.get_mut(h as usize) else {
            return;
        };
        let want = (host.counts.queued > 0).then(|| host.politeness.earliest_ms());
        if host.ready_at == want {
            return;
        }
        match host.ready_at {
            Some(0) => {
                self.open.remove(&h);
            }
            Some(t) => {
                self.timed.remove(&(t, h));
            }
            None => {}
        }
        match want {
            Some(0) => {
                self.open.insert(h);
            }
            Some(t) => {
                self.timed.insert((t, h));
            }
            None => {}
        }
        host.ready_at = want;
    }

    /// Moves the hosts whose time has come (at `now_ms`) to `open`.
    pub(super) fn advance(&mut self, hosts: &mut [HostMem], now_ms: u64) {
        while let Some(&(t, h)) = self.timed.first() {
            if t > now_ms {
                break;
            }
            self.timed.pop_first();
            self.open.insert(h);
            if let Some(host) = hosts.get_mut(h as usize) {
                host.ready_at = Some(0);
            }
        }
    }
}

impl HostKeys for Vec<HostMem> {
    fn host_key(&self, id: HostId) -> Option<&str> {
        self.get(id.0 as usize).map(|h| &*h.key)
    }
}
