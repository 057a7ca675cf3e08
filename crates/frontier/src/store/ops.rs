//! [`FrontierStore`] for [`Frontier`]: the operations the engine calls.

use super::*;

impl FrontierStore for Frontier {
    fn enqueue(&self, urls: Vec<NewUrl>) -> Result<usize> {
        let sh = &*self.shared;
        let mut st = sh.write_lock()?;
        sh.guarded(&mut st, |st| {
            let mut ch = Change::default();
            sh.enqueue_into(st, &mut ch, urls)?;
            if ch.new == 0 {
                return Ok(0);
            }
            sh.apply(st, ch)
        })
    }

    fn lease(&self, host: HostId, max: usize) -> Result<Vec<Lease>> {
        let sh = &*self.shared;
        let mut st = sh.write_lock()?;
        sh.guarded(&mut st, |st| {
            if st.hosts.get(host.0 as usize).is_none_or(|h| h.counts.queued == 0) || max == 0 {
                return Ok(Vec::new());
            }
            let mut ch = Change::default();
            let key = st.key(host.0)?.to_string();
            let tail_queues = st.tails.queues_of(host.0);
            let mut next_tail = 0;
            let mut taken: Vec<Entry> = Vec::with_capacity(max.min(256));
            // A queue's tail comes after its segments: take the tails of the queues
            // before `before` (all of them for `None`).
            let mut take_tails =
                |st: &mut State, ch: &mut Change, taken: &mut Vec<Entry>, before: Option<QueueId>| {
                    while next_tail < tail_queues.len() && taken.len() < max {
                        let q = tail_queues[next_tail];
                        if before.is_some_and(|b| q >= b) {
                            break;
                        }
                        let n = (st.tails.len(q) as usize).min(max - taken.len()) as u32;
                        taken.extend(st.tails.pop_front(q, n, &key)?);
                        ch.journal.pop(q, n);
                        if st.tails.len(q) == 0 {
                            next_tail += 1;
                        }
                    }
                    Ok::<(), Error>(())
                };
            for item in sh.tree.scan_prefix(codec::host_key(codec::QUEUE, host)) {
                let (k, v) = item?;
                let (q, _) = codec::parse_queue_key(&k)?;
                take_tails(st, &mut ch, &mut taken, Some(q))?;
                if taken.len() >= max {
                    break;
                }
                let mut entries = codec::decode_segment(&v, q, &key)?;
                let want = max - taken.len();
                if entries.len() <= want {
                    ch.batch.remove(k);
                    taken.append(&mut entries);
                } else {
                    let rest = entries.split_off(want);
                    ch.batch.insert(k, codec::encode_segment(&key, rest.iter()));
                    taken.append(&mut entries);
                }
                if taken.len() >= max {
                    break;
                }
            }
            take_tails(st, &mut ch, &mut taken, None)?;
            if taken.is_empty() {
                return Ok(Vec::new());
            }
            let id = st.counters.next_lease;
            st.counters.next_lease += 1;
            for e in taken.iter_mut() {
                e.attempts += 1;
                st.leased.insert(e.fp, (id, e.attempts));
                count(st, &mut ch, host, Some(UrlState::Queued), Some(UrlState::Leased));
            }
            st.lease_remaining.insert(id, taken.len() as u32);
            ch.batch.insert(
                &codec::seq_key(codec::LEASE, id),
                codec::encode_lease(host, &key, &taken),
            );
            sh.apply(st, ch)?;
            Ok(taken.into_iter().map(lease_of).collect())
        })
    }

    fn ack_new(&self, acks: Vec<Ack>, checkpoints: &[(&str, &[u8])]) -> Result<Vec<Fingerprint>> {
        let sh = &*self.shared;
        let mut st = sh.write_lock()?;
        sh.guarded(&mut st, |st| {
            let mut ch = Change::default();
            for ack in acks {
                let l = ack.lease;
                let Some((id, attempts)) = st.leased.remove(&l.fp) else {
                    tracing::warn!(url = %l.url, "ack of a URL that is not leased here; ignored");
                    continue;
                };
                if let Some(n) = st.lease_remaining.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        st.lease_remaining.remove(&id);
                        ch.batch.remove(&codec::seq_key(codec::LEASE, id));
                    }
                }
                let (state, reason) = match ack.outcome {
                    Outcome::Done => (UrlState::Done, None),
                    Outcome::Failed(r) => (UrlState::Failed, Some(r)),
                    Outcome::Retry if attempts >= sh.opts.max_attempts => (
                        UrlState::Failed,
                        Some(format!("gave up after {attempts} attempts")),
                    ),
                    Outcome::Retry => (UrlState::Queued, None),
                };
                let entry = Entry {
                    fp: l.fp,
                    host: l.host,
                    priority: l.priority,
                    depth: l.depth,
                    attempts,
                    url: l.url,
                    data: l.data,
                };
                if state == UrlState::Queued {
                    count(st, &mut ch, l.host, Some(UrlState::Leased), None);
                    ch.queue(entry);
                } else {
                    count(st, &mut ch, l.host, Some(UrlState::Leased), Some(state));
                    ch.finished.push(finished_record(&entry, state, attempts, reason));
                }
                sh.enqueue_into(st, &mut ch, ack.discovered)?;
            }
            for (sink, cp) in checkpoints {
                ch.batch.insert(codec::meta_key(&format!("c:{sink}")), *cp);
            }
            let new: Vec<Fingerprint> = ch.fresh.iter().copied().collect();
            sh.apply(st, ch)?;
            Ok(new)
        })
    }

    fn flush(&self) -> Result<()> {
        let obsolete = {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut st.obsolete)
        };
        self.shared.db.flush()?;
        for p in obsolete {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::debug!(file = %p.display(), error = %e, "could not remove a merged run");
            }
        }
        Ok(())
    }

    fn ready_hosts(&self) -> Result<Vec<(HostId, u64)>> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = |h: u32| st.hosts.get(h as usize).map_or(0, |h| h.politeness.earliest_ms());
        let mut out: Vec<(HostId, u64)> = st
            .ready
            .open
            .iter()
            .map(|h| (HostId(*h), earliest(*h)))
            .chain(st.ready.timed.iter().map(|(t, h)| (HostId(*h), *t)))
            .collect();
        out.sort_by_key(|(id, t)| (*t, *id));
        Ok(out)
    }

    fn ready_scan(&self, after: Option<HostId>, now_ms: u64, max: usize) -> Result<ReadyScan> {
        let mut guard = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        st.ready.advance(&mut st.hosts, now_ms);
        let open = &st.ready.open;
        let from = after.map_or(0, |a| a.0.saturating_add(1));
        let hosts = open
            .range(from..)
            .chain(open.range(..from))
            .take(max)
            .map(|h| HostId(*h))
            .collect();
        Ok(ReadyScan {
            hosts,
            ready: open.len(),
            next_ms: st.ready.timed.first().map(|(t, _)| *t),
        })
    }

    fn host(&self, id: HostId) -> Result<Option<HostInfo>> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(st.hosts.get(id.0 as usize).map(|h| HostInfo {
            id,
            key: h.key.to_string(),
            counts: h.counts,
            politeness: h.politeness,
        }))
    }

    fn host_id(&self, key: &str) -> Result<Option<HostId>> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(st.host_ids.get(key, |i| st.hosts.host_key(HostId(i))))
    }

    fn hosts(&self) -> Result<Vec<HostInfo>> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(st
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| HostInfo {
                id: HostId(i as u32),
                key: h.key.to_string(),
                counts: h.counts,
                politeness: h.politeness,
            })
            .collect())
    }

    fn politeness(&self, id: HostId) -> Result<Option<Politeness>> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(st.hosts.get(id.0 as usize).map(|h| h.politeness))
    }

    fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        let _st = self.shared.write_lock()?;
        self.shared
            .tree
            .insert(codec::meta_key(&format!("x:{name}")), value)?;
        Ok(())
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .shared
            .tree
            .get(codec::meta_key(&format!("x:{name}")))?
            .map(|v| v.to_vec()))
    }

    fn set_politeness(&self, id: HostId, p: Politeness) -> Result<()> {
        let mut st = self.shared.write_lock()?;
        let Some(h) = st.hosts.get_mut(id.0 as usize) else {
            return Ok(());
        };
        h.politeness = p;
        let value = codec::encode_host(&h.key, &p);
        if let Err(e) = self.shared.tree.insert(codec::host_key(codec::HOST, id), value) {
            st.poisoned = true;
            return Err(e.into());
        }
        let st = &mut *st;
        st.ready.place(&mut st.hosts, id.0);
        Ok(())
    }

    fn robots(&self, id: HostId) -> Result<Option<RobotsEntry>> {
        match self.shared.tree.get(codec::host_key(codec::ROBOTS, id))? {
            Some(v) => Ok(Some(codec::decode_robots(&v)?)),
            None => Ok(None),
        }
    }

    fn set_robots(&self, id: HostId, entry: &RobotsEntry) -> Result<()> {
        let _st = self.shared.write_lock()?;
        self.shared
            .tree
            .insert(codec::host_key(codec::ROBOTS, id), codec::encode_robots(entry))?;
        Ok(())
    }

    fn fail_host(&self, id: HostId, reason: &str) -> Result<u64> {
        let sh = &*self.shared;
        let mut st = sh.write_lock()?;
        sh.guarded(&mut st, |st| {
            if id.0 as usize >= st.hosts.len() {
                return Ok(0);
            }
            let key = st.key(id.0)?.to_string();
            let mut ch = Change::default();
            let mut n = 0;
            let mut fail = |st: &mut State, ch: &mut Change, e: Entry| {
                ch.finished.push(finished_record(
                    &e,
                    UrlState::Failed,
                    e.attempts,
                    Some(reason.to_string()),
                ));
                count(st, ch, id, Some(UrlState::Queued), Some(UrlState::Failed));
                n += 1;
            };
            // One batch per 256 segments: a crash in between leaves the rest queued.
            let mut segments = 0;
            for item in sh.tree.scan_prefix(codec::host_key(codec::QUEUE, id)) {
                let (k, v) = item?;
                let (q, _) = codec::parse_queue_key(&k)?;
                segments += 1;
                if segments % 256 == 0 {
                    sh.apply(st, std::mem::take(&mut ch))?;
                }
                ch.batch.remove(k);
                for e in codec::decode_segment(&v, q, &key)? {
                    fail(st, &mut ch, e);
                }
            }
            let queues = st.tails.queues_of(id.0);
            if !queues.is_empty() {
                ch.journal.clear(id.0);
            }
            for q in queues {
                if let Some(t) = st.tails.take(q) {
                    for e in t.decode(q, &key)? {
                        fail(st, &mut ch, e);
                    }
                }
            }
            sh.apply(st, ch)?;
            Ok(n)
        })
    }

    fn checkpoint(&self, sink: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .shared
            .tree
            .get(codec::meta_key(&format!("c:{sink}")))?
            .map(|v| v.to_vec()))
    }

    fn counts(&self) -> Result<Counts> {
        Ok(self
            .shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters
            .counts)
    }

    /// The record of a URL: its state, attempts, depth, class, host and failure reason,
    /// and for a queued or leased URL its data.
    ///
    /// A slower path than the others, for tests and tools (the crawl never needs it):
    /// the seen set says whether the URL is known and, once it is finished, which
    /// finished-log record holds it (one sled read); a queued URL is looked for among
    /// its host's queue segments (a scan of that host's queue).
    fn get(&self, url: &str) -> Result<Option<UrlRecord>> {
        let sh = &*self.shared;
        let fp = Fingerprint::of(url);
        let st = sh.lock()?;
        let Some(v) = st.seen.get(fp)? else {
            return Ok(None);
        };
        let find = |entries: Vec<Entry>| entries.into_iter().find(|e| e.url == url);
        if v & FINISHED != 0 {
            let seq = v & !FINISHED;
            let rec = sh
                .tree
                .get(codec::seq_key(codec::FINISHED, seq))?
                .map(|v| codec::decode_finished(&v, &st.hosts))
                .transpose()?
                .and_then(|recs| recs.into_iter().find(|r| r.url == url));
            return rec
                .map(Some)
                .ok_or_else(|| Error::corrupt(format!("finished {url} is missing from the finished log")));
        }
        if let Some(&(id, attempts)) = st.leased.get(&fp) {
            let entry = sh
                .tree
                .get(codec::seq_key(codec::LEASE, id))?
                .map(|v| codec::decode_lease(&v, &st.hosts))
                .transpose()?
                .and_then(find)
                .ok_or_else(|| Error::corrupt(format!("leased {url} is missing from its lease record")))?;
            let mut rec = finished_record(&entry, UrlState::Leased, attempts, None);
            rec.data = entry.data;
            return Ok(Some(rec));
        }
        let host = host_of(url)
            .and_then(|h| st.host_ids.get(h, |i| st.hosts.host_key(HostId(i))))
            .ok_or_else(|| Error::corrupt(format!("queued {url} names an unknown host")))?;
        let key = st.key(host.0)?;
        for q in st.tails.queues_of(host.0) {
            if let Some(t) = st.tails.get(q)
                && let Some(e) = find(t.decode(q, key)?)
            {
                return Ok(Some(queued_record(e)));
            }
        }
        for item in sh.tree.scan_prefix(codec::host_key(codec::QUEUE, host)) {
            let (k, v) = item?;
            let (q, _) = codec::parse_queue_key(&k)?;
            if let Some(e) = find(codec::decode_segment(&v, q, key)?) {
                return Ok(Some(queued_record(e)));
            }
        }
        Err(Error::corrupt(format!("queued {url} is in no queue")))
    }
}
