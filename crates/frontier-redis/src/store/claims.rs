//! The renewal thread: every quarter of the claim ttl it heartbeats the worker and
//! renews this process's claims on its own connection, and remembers the claims it
//! finds lost so that `may_start` says no for them.

use super::*;

/// Starts the renewal thread.
pub(crate) fn spawn(shared: Arc<Shared>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let link = Link::new(&shared.opts.url, shared.opts.timeout, shared.opts.reconnect_for);
    std::thread::Builder::new()
        .name("trawl-redis-renew".into())
        .spawn(move || {
            let mut link = match link {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "claim renewal cannot start; claims will run out");
                    return;
                }
            };
            let every = shared.opts.claim_ttl / 4;
            loop {
                {
                    let g = shared.sleep.0.lock().unwrap_or_else(|e| e.into_inner());
                    if shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let _ = shared.sleep.1.wait_timeout(g, every);
                }
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(e) = shared.renew(&mut link) {
                    tracing::warn!(error = %e, "claim renewal failed");
                }
            }
        })
}

impl Shared {
    /// One renewal: heartbeat, reap, extend the claims held, mark the lost ones.
    pub(crate) fn renew(&self, link: &mut Link) -> Result<()> {
        // The claims to renew are those this process knew of before sending: a claim
        // made since is not in the list, so a missing one really is lost.
        let held: Vec<(u32, u64)> = self
            .claims()
            .iter()
            .filter(|(_, c)| !c.lost)
            .map(|(h, c)| (*h, c.epoch))
            .collect();
        let mut args = Args::with_capacity(held.len() * 2);
        for (h, e) in &held {
            args.push(arg(h));
            args.push(arg(e));
        }
        let sent = Instant::now();
        let reply = self.eval(link, &self.scripts.renew, &args)?;
        let mut reply = codec::array(reply)?.into_iter();
        let mut ids = || -> Result<Vec<u64>> {
            codec::array(reply.next().unwrap_or(Value::Nil))?
                .into_iter()
                .map(number)
                .collect()
        };
        let lost = ids()?;
        let give = ids()?;
        let deadline = sent + self.opts.claim_ttl - margin(self.opts.claim_ttl);
        let mut claims = self.claims();
        for (h, e) in held {
            let Some(c) = claims.get_mut(&h) else { continue };
            if c.epoch != e {
                continue;
            }
            if lost.contains(&u64::from(h)) {
                if !c.lost {
                    tracing::warn!(host = h, epoch = e, "lost the claim on a host");
                }
                c.lost = true;
            } else {
                c.deadline = c.deadline.max(deadline);
            }
        }
        for (h, c) in claims.iter_mut() {
            let over = give.contains(&u64::from(*h));
            if over && !c.hand_over {
                tracing::debug!(host = h, "handing a host over: more workers share the crawl now");
            }
            c.hand_over = over;
        }
        Ok(())
    }

    /// Takes note of a claim a lease answered with: a new one (new epoch) gets a
    /// deadline from the time the lease was sent; the same one keeps its deadline
    /// (leasing does not renew).
    pub(crate) fn note_claim(&self, host: HostId, epoch: u64, sent: Instant) {
        let mut claims = self.claims();
        match claims.get(&host.0) {
            Some(c) if c.epoch == epoch => {}
            old => {
                if let Some(c) = old
                    && !c.lost
                    && sent >= c.deadline
                {
                    // The claim ran out before a renewal could say so (this process
                    // was paused, say), and this lease took the host again.
                    tracing::warn!(host = host.0, epoch = c.epoch, "lost the claim on a host");
                }
                claims.insert(
                    host.0,
                    Claim {
                        epoch,
                        deadline: sent + self.opts.claim_ttl - margin(self.opts.claim_ttl),
                        lost: false,
                        hand_over: false,
                    },
                );
            }
        }
    }

    /// Renews this process's claims now, on the main connection (for tests, and for
    /// a caller that wants a fresh deadline before a long fetch).
    pub(crate) fn renew_now(&self) -> Result<()> {
        let mut m = self.main();
        self.renew(&mut m.link)
    }
}

impl RedisFrontier {
    /// Heartbeats this worker and renews its claims now, instead of waiting for the
    /// renewal thread (which does it every quarter of the claim ttl); claims found
    /// lost are remembered, so that `may_start` says no for them.
    pub fn renew(&self) -> Result<()> {
        self.shared.renew_now()
    }
}
