//! The seen set's background work: sealing memtables into run files and merging runs.

use super::*;

impl Shared {
    /// Freezes the memtable for sealing: the background thread writes it (or, without
    /// one, it is written now). An empty memtable just moves the watermark.
    pub(super) fn freeze(&self, st: &mut State) -> Result<()> {
        let w = st.counters.next_seq;
        st.since_seal = 0;
        if st.seen.mem.is_empty() {
            return self.register_seal(st, None, w);
        }
        let mut entries: Vec<(u128, u64)> = st.seen.mem.drain().collect();
        entries.sort_unstable();
        let entries = Arc::new(entries);
        st.seen.frozen = Some(entries.clone());
        let id = st.meta.next_run;
        st.meta.next_run += 1;
        if self.opts.background {
            st.seal_job = Some(SealJob { entries, w, id });
            self.wake.notify_all();
            Ok(())
        } else {
            let run = self.write_run(&entries, id, self.bloom_for(st, entries.len() as u64))?;
            self.register_seal(st, Some(run), w)
        }
    }

    /// Bytes of Bloom filter for a new run of `n` entries: [`BLOOM_BITS`] per entry, or
    /// its share of [`Options::bloom_bytes`] if that is less.
    pub(super) fn bloom_for(&self, st: &State, n: u64) -> usize {
        let total = (st.seen.run_entries() + n).max(1);
        let budget_bits = (self.opts.bloom_bytes as u64 * 8).saturating_mul(n) / total;
        ((n * BLOOM_BITS).min(budget_bits) / 8) as usize
    }

    pub(super) fn write_run(&self, entries: &[(u128, u64)], id: u64, bloom: usize) -> Result<Run> {
        let mut w = RunWriter::create(&self.seen_dir, id, bloom)?;
        for (fp, v) in entries {
            w.push(*fp, *v)?;
        }
        w.finish()
    }

    /// Registers a sealed run with the new watermark, then deletes the journal records
    /// it covers. The file is already durable, so no flush is needed: if the
    /// registration is lost, the file is an unregistered leftover and the journal is
    /// still there.
    pub(super) fn register_seal(&self, st: &mut State, run: Option<Run>, w: u64) -> Result<()> {
        if let Some(run) = run {
            st.meta.runs.push(run.id);
            st.seen.runs.push(Arc::new(run));
        }
        st.seen.frozen = None;
        st.meta.w_seen = w;
        self.tree
            .insert(codec::meta_key("seen"), codec::encode_seen_meta(&st.meta))?;
        self.wake.notify_all();
        self.truncate_journal(st)
    }

    /// The runs to merge next, if any: the lowest size tier (a factor of 4, from the
    /// memtable's size up) with [`MERGE_FANIN`] runs, or the smallest runs when there
    /// are more than [`MAX_RUNS`].
    pub(super) fn pick_merge(&self, st: &State) -> Option<Vec<Arc<Run>>> {
        if st.merging || st.seen.runs.len() < MERGE_FANIN {
            return None;
        }
        let unit = self.opts.seen_memtable.max(1) as u64;
        let tier = |n: u64| {
            let mut t = 0;
            let mut x = n / unit;
            while x >= 4 {
                x /= 4;
                t += 1;
            }
            t
        };
        let mut by_tier: Vec<(u32, Arc<Run>)> =
            st.seen.runs.iter().map(|r| (tier(r.len()), r.clone())).collect();
        by_tier.sort_by_key(|(t, r)| (*t, r.len()));
        let mut i = 0;
        while i < by_tier.len() {
            let t = by_tier[i].0;
            let same = by_tier[i..].iter().take_while(|(u, _)| *u == t).count();
            if same >= MERGE_FANIN {
                return Some(by_tier[i..i + same].iter().map(|(_, r)| r.clone()).collect());
            }
            i += same;
        }
        if by_tier.len() > MAX_RUNS {
            let mut runs: Vec<Arc<Run>> = by_tier.into_iter().map(|(_, r)| r).collect();
            runs.sort_by_key(|r| r.len());
            runs.truncate(MERGE_FANIN);
            return Some(runs);
        }
        None
    }

    /// Replaces merged runs by their merge, in one batch. The inputs' files are deleted
    /// after the next flush, once no crash can bring back the registry that names them.
    pub(super) fn register_merge(&self, st: &mut State, inputs: &[Arc<Run>], run: Run) -> Result<()> {
        let gone: HashSet<u64> = inputs.iter().map(|r| r.id).collect();
        st.meta.runs.retain(|id| !gone.contains(id));
        st.meta.runs.push(run.id);
        st.seen.runs.retain(|r| !gone.contains(&r.id));
        st.seen.runs.push(Arc::new(run));
        st.obsolete.extend(inputs.iter().map(|r| r.path().to_path_buf()));
        let mut batch = sled::Batch::default();
        batch.insert(codec::meta_key("seen"), codec::encode_seen_meta(&st.meta));
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The background thread: seals frozen memtables (first) and merges runs.
    pub(super) fn work(self: Arc<Shared>) {
        loop {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if st.stop || st.poisoned {
                    return;
                }
                if st.seal_job.is_some() {
                    break;
                }
                if let Some(inputs) = self.pick_merge(&st) {
                    st.merging = true;
                    let id = st.meta.next_run;
                    st.meta.next_run += 1;
                    let bloom = self.bloom_for(&st, inputs.iter().map(|r| r.len()).sum());
                    drop(st);
                    let merged = self.merge(&inputs, id, bloom);
                    st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    st.merging = false;
                    let registered = match merged {
                        Ok(Some(run)) => self.register_merge(&mut st, &inputs, run),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = registered {
                        tracing::error!(error = %e, "merging the seen set's runs failed; the frontier stops");
                        st.poisoned = true;
                        self.wake.notify_all();
                        return;
                    }
                    continue;
                }
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            drop(st);
            if !self.seal_pending() {
                return;
            }
        }
    }

    /// Writes and registers the frozen memtable, if one waits. False once the handle is
    /// poisoned or stopping.
    pub(super) fn seal_pending(&self) -> bool {
        let (job, bloom) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.stop || st.poisoned {
                return false;
            }
            let Some(job) = st.seal_job.take() else {
                return true;
            };
            let bloom = self.bloom_for(&st, job.entries.len() as u64);
            (job, bloom)
        };
        let written = self.write_run(&job.entries, job.id, bloom);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let registered = written.and_then(|run| self.register_seal(&mut st, Some(run), job.w));
        if let Err(e) = registered {
            tracing::error!(error = %e, "sealing the seen set's memtable failed; the frontier stops");
            st.poisoned = true;
            self.wake.notify_all();
            return false;
        }
        !st.stop
    }

    /// Merges runs into a new file; seals waiting memtables as it goes, and gives up
    /// (`None`) when the handle stops.
    pub(super) fn merge(&self, inputs: &[Arc<Run>], id: u64, bloom: usize) -> Result<Option<Run>> {
        let mut w = RunWriter::create(&self.seen_dir, id, bloom)?;
        let refs: Vec<&Run> = inputs.iter().map(|r| r.as_ref()).collect();
        let complete = match runs::merge_into(&refs, &mut w, || self.seal_pending()) {
            Ok(c) => c,
            Err(e) => {
                w.abandon();
                return Err(e);
            }
        };
        if !complete {
            w.abandon();
            return Ok(None);
        }
        tracing::debug!(
            id,
            entries = w.entries(),
            inputs = inputs.len(),
            "merged seen-set runs"
        );
        w.finish().map(Some)
    }
}
