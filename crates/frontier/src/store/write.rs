//! The write path: a [`Change`] becomes one sled batch with its journal record; the
//! journal is truncated at checkpoints; new URLs are checked against the seen set.

use super::*;

impl Shared {
    /// Writes the new queue entries (whole segments, the rest into the tails), the
    /// finished log, the host counts, the journal record and the counters into the
    /// batch, and applies it.
    pub(super) fn apply(&self, st: &mut State, mut ch: Change) -> Result<usize> {
        let cap = SEGMENT_CAP;
        for (q, entries) in std::mem::take(&mut ch.groups) {
            for _ in &entries {
                count(st, &mut ch, HostId(q.0), None, Some(UrlState::Queued));
            }
            let State {
                hosts,
                tails,
                seen,
                counters,
                ..
            } = &mut *st;
            let key = hosts
                .get(q.0 as usize)
                .map(|h| &*h.key)
                .ok_or_else(|| Error::corrupt("a queue names an unknown host"))?;
            let in_tail = tails.len(q) as usize;
            let mut rest = entries.as_slice();
            if in_tail + rest.len() >= cap {
                let mut seg = tails.take(q).unwrap_or_default();
                if in_tail > 0 {
                    ch.journal.pop(q, in_tail as u32);
                }
                let mut fill = cap - in_tail;
                loop {
                    for e in &rest[..fill] {
                        seg.push(key, e.attempts, &e.url, &e.data);
                        ch.journal.seen(e.fp, e.attempts);
                    }
                    rest = &rest[fill..];
                    let seq = counters.next_seq;
                    counters.next_seq += 1;
                    ch.batch.insert(&codec::queue_key(q, seq), seg.encode());
                    if rest.len() < cap {
                        break;
                    }
                    seg = SegmentBuf::default();
                    fill = cap;
                }
            }
            for e in rest {
                tails.append(q, key, e.attempts, &e.url, &e.data);
                ch.journal.append(true, q, key, e.attempts, &e.url, &e.data);
            }
            for e in &entries {
                seen.mark(e.fp, u64::from(e.attempts));
            }
        }
        if !ch.finished.is_empty() {
            let seq = st.counters.next_seq;
            st.counters.next_seq += 1;
            ch.batch.insert(
                &codec::seq_key(codec::FINISHED, seq),
                codec::encode_finished(&ch.finished, &st.hosts),
            );
            for r in &ch.finished {
                st.seen.mark(r.fp, FINISHED | seq);
            }
        }
        ch.touched.sort_unstable();
        ch.touched.dedup();
        for h in &ch.touched {
            if let Some(host) = st.hosts.get(*h as usize) {
                ch.journal.counts(*h, &host.counts);
                st.dirty.insert(*h);
            }
            st.ready.place(&mut st.hosts, *h);
        }
        if !ch.journal.bytes.is_empty() {
            let seq = st.counters.next_seq;
            st.counters.next_seq += 1;
            st.journal.push_back(seq);
            st.since_ckpt.0 += 1;
            st.since_ckpt.1 += ch.journal.bytes.len();
            st.since_seal += 1;
            ch.batch
                .insert(&codec::seq_key(codec::JOURNAL, seq), ch.journal.bytes);
        }
        ch.batch
            .insert(codec::meta_key("counters"), codec::encode_counters(&st.counters));
        self.tree.apply_batch(ch.batch)?;
        Ok(ch.new)
    }

    /// Deletes the journal records that no watermark needs any more, in batches of
    /// [`BATCH_OPS`]. It runs after the batch that moved the watermark, so by sled's
    /// prefix guarantee no deletion survives a crash without the watermark.
    pub(super) fn truncate_journal(&self, st: &mut State) -> Result<()> {
        let keep_from = st.meta.w_seen.min(st.meta.w_ckpt);
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            while let Some(&s) = st.journal.front() {
                if s >= keep_from || n == BATCH_OPS {
                    break;
                }
                batch.remove(&codec::seq_key(codec::JOURNAL, s));
                st.journal.pop_front();
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.tree.apply_batch(batch)?;
        }
    }

    /// After a change: a checkpoint when the tails or the journal have grown past their
    /// bounds; a seal when the memtable is full (or the journal since the last seal is
    /// long); and, without the background thread, the merges.
    pub(super) fn maintain(&self, st: &mut State) -> Result<()> {
        if st.tails.footprint() > self.opts.tail_bytes
            || st.since_ckpt.0 >= JOURNAL_RECORDS
            || st.since_ckpt.1 >= JOURNAL_BYTES
        {
            self.checkpoint(st)?;
        }
        if st.seen.frozen.is_none()
            && (st.seen.mem.len() >= self.opts.seen_memtable || st.since_seal >= JOURNAL_RECORDS)
        {
            self.freeze(st)?;
        }
        if !self.opts.background {
            while let Some(inputs) = self.pick_merge(st) {
                let id = st.meta.next_run;
                st.meta.next_run += 1;
                let bloom = self.bloom_for(st, inputs.iter().map(|r| r.len()).sum());
                let mut w = RunWriter::create(&self.seen_dir, id, bloom)?;
                let refs: Vec<&Run> = inputs.iter().map(|r| r.as_ref()).collect();
                runs::merge_into(&refs, &mut w, || true)?;
                let run = w.finish()?;
                self.register_merge(st, &inputs, run)?;
            }
        }
        Ok(())
    }

    /// Takes a checkpoint, so that the journal before it is no longer needed for the
    /// tails and the host counts:
    ///
    /// 1. while the tails are over [`Options::tail_bytes`], the biggest are written as
    ///    short segments (ordinary journaled batches);
    /// 2. the counts of the hosts changed since the last checkpoint are written. This
    ///    may precede the watermark: if it survives a crash without it, replaying the
    ///    journal from the old watermark overwrites each of those hosts' counts again;
    /// 3. one batch writes a journal record re-journaling the tails and moves the
    ///    watermark to it;
    /// 4. the journal records no watermark needs are deleted.
    pub(super) fn checkpoint(&self, st: &mut State) -> Result<()> {
        if st.tails.footprint() > self.opts.tail_bytes {
            let mut ch = Change::default();
            let mut n = 0;
            for q in st.tails.largest() {
                if st.tails.footprint() <= self.opts.tail_bytes / 2 {
                    break;
                }
                let Some(t) = st.tails.take(q) else { continue };
                let s = st.counters.next_seq;
                st.counters.next_seq += 1;
                ch.batch.insert(&codec::queue_key(q, s), t.encode());
                ch.journal.pop(q, t.n);
                n += 1;
                if n == BATCH_OPS {
                    self.apply(st, std::mem::take(&mut ch))?;
                    n = 0;
                }
            }
            if n > 0 {
                self.apply(st, ch)?;
            }
        }
        let dirty: Vec<u32> = std::mem::take(&mut st.dirty).into_iter().collect();
        for chunk in dirty.chunks(BATCH_OPS) {
            let mut batch = sled::Batch::default();
            for h in chunk {
                if let Some(host) = st.hosts.get(*h as usize) {
                    batch.insert(
                        &codec::host_key(codec::HOST_COUNTS, HostId(*h)),
                        codec::encode_host_counts(&host.counts),
                    );
                }
            }
            self.tree.apply_batch(batch)?;
        }
        let mut batch = sled::Batch::default();
        let seq = st.counters.next_seq;
        st.counters.next_seq += 1;
        let mut journal = Journal::default();
        for (q, t) in st.tails.iter() {
            let key = st.key(q.0)?;
            for e in t.decode(*q, key)? {
                journal.append(false, *q, key, e.attempts, &e.url, &e.data);
            }
        }
        if !journal.bytes.is_empty() {
            st.journal.push_back(seq);
            batch.insert(&codec::seq_key(codec::JOURNAL, seq), journal.bytes);
        }
        st.meta.w_ckpt = seq;
        st.since_ckpt = (0, 0);
        batch.insert(codec::meta_key("seen"), codec::encode_seen_meta(&st.meta));
        batch.insert(codec::meta_key("counters"), codec::encode_counters(&st.counters));
        self.tree.apply_batch(batch)?;
        self.truncate_journal(st)
    }

    /// Adds the unseen URLs of `urls` to `ch`.
    pub(super) fn enqueue_into(&self, st: &mut State, ch: &mut Change, urls: Vec<NewUrl>) -> Result<()> {
        for u in urls {
            let fp = Fingerprint::of(&u.url);
            if ch.fresh.contains(&fp) || st.cache.contains(fp) {
                continue;
            }
            if st.seen.contains(fp)? {
                st.cache.insert(fp);
                continue;
            }
            let Some(host_name) = host_of(&u.url) else {
                tracing::warn!(url = %u.url, "not enqueued: no scheme://host in it");
                continue;
            };
            let host = match st.host_ids.get(host_name, |i| st.hosts.host_key(HostId(i))) {
                Some(id) => id,
                None => {
                    let id = HostId(st.counters.next_host);
                    st.counters.next_host += 1;
                    st.host_ids.insert(host_name, id);
                    ch.batch
                        .insert(codec::host_name_key(host_name), &id.0.to_be_bytes());
                    let p = Politeness::default();
                    ch.batch.insert(
                        &codec::host_key(codec::HOST, id),
                        codec::encode_host(host_name, &p),
                    );
                    st.hosts.push(HostMem {
                        key: host_name.into(),
                        counts: Counts::default(),
                        politeness: p,
                        ready_at: None,
                    });
                    id
                }
            };
            ch.queue(Entry {
                fp,
                host,
                priority: u.priority,
                depth: u.depth,
                attempts: 0,
                url: u.url,
                data: u.data,
            });
            ch.fresh.insert(fp);
            st.cache.insert(fp);
            ch.new += 1;
        }
        Ok(())
    }
}
