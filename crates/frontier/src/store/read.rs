//! Reads that are not part of the engine's interface: the crawl binding, every
//! URL with its record (for exports), the size on disk, and the consistency check.

use super::*;

impl Frontier {
    /// What opening found and repaired.
    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// Every URL with its record: the finished ones in the order they finished, then
    /// the queued ones in queue order, then the ones leased (by this process, or left
    /// leased by an earlier one when read-only). A scan, for exports and checks.
    /// Finished records carry no [`UrlRecord::data`]: the data is for the fetch.
    pub fn urls(&self) -> impl Iterator<Item = Result<UrlRecord>> + '_ {
        let sh = &*self.shared;
        let finished = sh.tree.scan_prefix([codec::FINISHED]).flat_map(move |item| {
            let recs = item.map_err(Error::from).and_then(|(_, v)| {
                let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
                codec::decode_finished(&v, &st.hosts)
            });
            match recs {
                Ok(recs) => recs.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        });
        let queued = QueuedIter::new(sh);
        let leased = sh.tree.scan_prefix([codec::LEASE]).flat_map(move |item| {
            let recs = item.map_err(Error::from).and_then(|(k, v)| {
                let id = codec::parse_seq_key(&k)?;
                let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
                let entries = codec::decode_lease(&v, &st.hosts)?;
                Ok(entries
                    .into_iter()
                    .filter_map(|e| match st.leased.get(&e.fp) {
                        Some(&(lid, attempts)) if lid == id => {
                            let mut rec = finished_record(&e, UrlState::Leased, attempts, None);
                            rec.data = e.data;
                            Some(rec)
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>())
            });
            match recs {
                Ok(recs) => recs.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        });
        finished.chain(queued).chain(leased)
    }

    /// Bytes the state directory takes on disk: sled's files and the seen set's runs.
    pub fn size_on_disk(&self) -> Result<u64> {
        let mut n = self.shared.db.size_on_disk()?;
        if let Ok(dir) = std::fs::read_dir(&self.shared.seen_dir) {
            for e in dir.flatten() {
                n += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        Ok(n)
    }

    /// Scans the whole store and checks that every URL is in exactly one state: a
    /// queued URL sits in exactly one queue segment or tail, a leased one is held by
    /// this process (or, read-only, was left leased) and in no queue, done and failed
    /// ones are in neither and appear once in the finished log, the seen set holds
    /// exactly these URLs (a finished one pointing at its finished record), and the
    /// global and per-host counts match. Returns the counts found. Memory in
    /// proportion to the number of URLs.
    pub fn verify(&self) -> Result<Counts> {
        self.shared.verify()
    }
}

/// The queued URLs in queue order: the segments from sled, each queue's tail after its
/// segments.
pub(super) struct QueuedIter<'a> {
    sh: &'a Shared,
    iter: sled::Iter,
    tails: std::iter::Peekable<std::vec::IntoIter<(QueueId, Result<Vec<Entry>>)>>,
    pending: VecDeque<Result<UrlRecord>>,
    done: bool,
}

impl<'a> QueuedIter<'a> {
    pub(super) fn new(sh: &'a Shared) -> QueuedIter<'a> {
        let st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        let tails: Vec<(QueueId, Result<Vec<Entry>>)> = st
            .tails
            .iter()
            .map(|(q, t)| (*q, st.key(q.0).and_then(|k| t.decode(*q, k))))
            .collect();
        QueuedIter {
            sh,
            iter: sh.tree.scan_prefix([codec::QUEUE]),
            tails: tails.into_iter().peekable(),
            pending: VecDeque::new(),
            done: false,
        }
    }

    pub(super) fn push_tails_before(&mut self, q: Option<QueueId>) {
        while let Some((tq, _)) = self.tails.peek() {
            if q.is_some_and(|q| *tq >= q) {
                break;
            }
            let Some((_, entries)) = self.tails.next() else {
                break;
            };
            match entries {
                Ok(es) => self.pending.extend(es.into_iter().map(|e| Ok(queued_record(e)))),
                Err(e) => self.pending.push_back(Err(e)),
            }
        }
    }
}

pub(super) fn queued_record(e: Entry) -> UrlRecord {
    let mut rec = finished_record(&e, UrlState::Queued, e.attempts, None);
    rec.data = e.data;
    rec
}

impl Iterator for QueuedIter<'_> {
    type Item = Result<UrlRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Some(r);
            }
            if self.done {
                return None;
            }
            match self.iter.next() {
                None => {
                    self.done = true;
                    self.push_tails_before(None);
                }
                Some(item) => {
                    let decoded = item.map_err(Error::from).and_then(|(k, v)| {
                        let (q, _) = codec::parse_queue_key(&k)?;
                        let st = self.sh.state.lock().unwrap_or_else(|e| e.into_inner());
                        Ok((q, codec::decode_segment(&v, q, st.key(q.0)?)?))
                    });
                    match decoded {
                        Ok((q, entries)) => {
                            self.push_tails_before(Some(q));
                            self.pending
                                .extend(entries.into_iter().map(|e| Ok(queued_record(e))));
                        }
                        Err(e) => self.pending.push_back(Err(e)),
                    }
                }
            }
        }
    }
}

impl Shared {
    pub(super) fn verify(&self) -> Result<Counts> {
        let st = self.lock()?;
        let mut per_host: HashMap<u32, Counts> = HashMap::new();
        let mut found = Counts::default();
        let mut tally = |host: HostId, s: UrlState, found: &mut Counts| {
            bump(found, s, true);
            bump(per_host.entry(host.0).or_default(), s, true);
        };
        // Where each URL is: queued (segment or tail), leased, or finished at a seq.
        let mut place: HashMap<Fingerprint, (UrlState, u64)> = HashMap::new();
        let mut put = |fp: Fingerprint, url: &str, state: UrlState, seq: u64| -> Result<()> {
            if let Some((other, _)) = place.insert(fp, (state, seq)) {
                return Err(Error::corrupt(format!("{url} is both {other:?} and {state:?}")));
            }
            Ok(())
        };
        for item in self.tree.scan_prefix([codec::QUEUE]) {
            let (k, v) = item?;
            let (q, _) = codec::parse_queue_key(&k)?;
            for e in codec::decode_segment(&v, q, st.key(q.0)?)? {
                put(e.fp, &e.url, UrlState::Queued, 0)?;
                tally(e.host, UrlState::Queued, &mut found);
            }
        }
        for (q, t) in st.tails.iter() {
            for e in t.decode(*q, st.key(q.0)?)? {
                put(e.fp, &e.url, UrlState::Queued, 0)?;
                tally(e.host, UrlState::Queued, &mut found);
            }
        }
        let mut leased_seen = 0usize;
        for item in self.tree.scan_prefix([codec::LEASE]) {
            let (k, v) = item?;
            let id = codec::parse_seq_key(&k)?;
            for e in codec::decode_lease(&v, &st.hosts)? {
                if st.leased.get(&e.fp).is_some_and(|(lid, _)| *lid == id) {
                    put(e.fp, &e.url, UrlState::Leased, 0)?;
                    tally(e.host, UrlState::Leased, &mut found);
                    leased_seen += 1;
                }
            }
        }
        if leased_seen != st.leased.len() {
            return Err(Error::corrupt(format!(
                "{} URLs are held leased, {leased_seen} of them are in lease records",
                st.leased.len()
            )));
        }
        for item in self.tree.scan_prefix([codec::FINISHED]) {
            let (k, v) = item?;
            let seq = codec::parse_seq_key(&k)?;
            for r in codec::decode_finished(&v, &st.hosts)? {
                if !matches!(r.state, UrlState::Done | UrlState::Failed) {
                    return Err(Error::corrupt(format!("{} is finished as {:?}", r.url, r.state)));
                }
                put(r.fp, &r.url, r.state, seq)?;
                tally(r.host, r.state, &mut found);
            }
        }
        let seen = st.seen.collect_all()?;
        if seen.len() != place.len() {
            return Err(Error::corrupt(format!(
                "the seen set holds {} URLs, the queues, leases and finished log {}",
                seen.len(),
                place.len()
            )));
        }
        for (fp, (state, seq)) in &place {
            let Some(&v) = seen.get(&fp.0) else {
                return Err(Error::corrupt(format!(
                    "{:032x} ({state:?}) is missing from the seen set",
                    fp.0
                )));
            };
            let finished = matches!(state, UrlState::Done | UrlState::Failed);
            if finished != (v & FINISHED != 0) || (finished && v != FINISHED | seq) {
                return Err(Error::corrupt(format!(
                    "{:032x} is {state:?} but its seen-set value is {v:#x}",
                    fp.0
                )));
            }
        }
        if found != st.counters.counts {
            return Err(Error::corrupt(format!(
                "counters say {:?}, records say {found:?}",
                st.counters.counts
            )));
        }
        for (i, h) in st.hosts.iter().enumerate() {
            if per_host.get(&(i as u32)).copied().unwrap_or_default() != h.counts {
                return Err(Error::corrupt(format!(
                    "the counts of host {} disagree with its records",
                    h.key
                )));
            }
            let indexed = match h.ready_at {
                None => !st.ready.open.contains(&(i as u32)) && h.counts.queued == 0,
                Some(0) => st.ready.open.contains(&(i as u32)) && h.counts.queued > 0,
                Some(t) => st.ready.timed.contains(&(t, i as u32)) && h.counts.queued > 0,
            };
            if !indexed {
                return Err(Error::corrupt(format!(
                    "host {} ({} queued) is misplaced in the ready index ({:?})",
                    h.key, h.counts.queued, h.ready_at
                )));
            }
        }
        let (open, timed) = (st.ready.open.len(), st.ready.timed.len());
        let queued_hosts = st.hosts.iter().filter(|h| h.counts.queued > 0).count();
        if open + timed != queued_hosts {
            return Err(Error::corrupt(format!(
                "the ready index holds {open} + {timed} hosts, {queued_hosts} have queued URLs"
            )));
        }
        Ok(found)
    }
}
