//! Opening a state directory: checks, the host table, the seen set's runs, the
//! journal's replay, and the leases an earlier process left.

use super::*;

impl Frontier {
    /// Opens (or creates) the frontier in `path`.
    ///
    /// Leases left by an earlier process go back to their queues, with their attempt
    /// counts kept; the ones that used up `max_attempts` are failed as quarantined.
    /// Opening reads the host table, the seen set's filters and indexes, and the
    /// journal written since the last checkpoint; its time does not grow with the
    /// number of URLs.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process has the directory, [`Error::Foreign`] if it
    /// holds something else, [`Error::Schema`] for another layout version,
    /// [`Error::Corrupt`] if sled refuses or panics on it, [`Error::Io`] otherwise.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Frontier> {
        let path = path.as_ref().to_path_buf();
        if path.is_file() {
            return Err(Error::Foreign { path });
        }
        if opts.read_only && !path.is_dir() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            )));
        }
        if path.is_dir() {
            let names: Vec<_> = std::fs::read_dir(&path)
                .map_err(Error::Io)?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            if !names.is_empty() && !names.iter().any(|n| n == "db" || n == "conf") {
                return Err(Error::Foreign { path });
            }
        }
        // sled releases its file lock from its I/O threads a moment after the last handle
        // is dropped, so a reopen in the same process can race it. Retry briefly; a
        // directory held by a live process stays locked and is reported within 300 ms.
        let mut tries = 0;
        let opened = loop {
            let opened = catch_unwind(AssertUnwindSafe(|| Frontier::open_inner(&path, opts.clone())));
            match opened {
                Ok(Err(Error::Locked { .. })) if tries < 30 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other,
            }
        };
        match opened {
            Ok(r) => r,
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "sled panicked while opening it".to_string());
                Err(Error::Corrupt { detail })
            }
        }
    }

    pub(super) fn open_inner(path: &Path, opts: Options) -> Result<Frontier> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(opts.cache_capacity)
            // Durability points are explicit (flush), so that a sink can be made durable
            // first; see the crate docs.
            .flush_every_ms(None)
            .open()
            .map_err(|e| Error::from_open(path, e))?;
        let tree = db.open_tree(TREE)?;
        let mut report = OpenReport::default();
        match tree.get(codec::meta_key("schema"))? {
            Some(v) => {
                let found = codec::Reader::new(&v, "schema").u32()?;
                if found != SCHEMA_VERSION {
                    return Err(Error::Schema {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
            None if tree.is_empty() && db.is_empty() && opts.read_only => {
                report.created = true;
            }
            None if tree.is_empty() && db.is_empty() => {
                let mut b = sled::Batch::default();
                b.insert(codec::meta_key("schema"), &SCHEMA_VERSION.to_be_bytes());
                b.insert(
                    codec::meta_key("counters"),
                    codec::encode_counters(&Counters::default()),
                );
                b.insert(
                    codec::meta_key("seen"),
                    codec::encode_seen_meta(&SeenMeta::default()),
                );
                tree.apply_batch(b)?;
                db.flush()?;
                report.created = true;
            }
            None => {
                return Err(Error::Foreign {
                    path: path.to_path_buf(),
                });
            }
        }
        let counters = match tree.get(codec::meta_key("counters"))? {
            Some(v) => codec::decode_counters(&v)?,
            None if report.created => Counters::default(),
            None => return Err(Error::corrupt("the counters record is missing")),
        };
        let meta = match tree.get(codec::meta_key("seen"))? {
            Some(v) => codec::decode_seen_meta(&v)?,
            None if report.created => SeenMeta::default(),
            None => return Err(Error::corrupt("the seen set's record is missing")),
        };
        let mut hosts = Vec::new();
        let mut host_ids = HostNames::default();
        for item in tree.scan_prefix([codec::HOST]) {
            let (k, v) = item?;
            let id = codec::host_of_key(&k)?;
            if id.0 as usize != hosts.len() {
                return Err(Error::corrupt(format!("host {} is out of sequence", id.0)));
            }
            let (key, politeness) = codec::decode_host(&v)?;
            host_ids.insert(&key, id);
            hosts.push(HostMem {
                key: key.into(),
                counts: Counts::default(),
                politeness,
                ready_at: None,
            });
        }
        if hosts.len() as u64 != u64::from(counters.next_host) {
            return Err(Error::corrupt("the host table does not match the counters"));
        }
        for item in tree.scan_prefix([codec::HOST_COUNTS]) {
            let (k, v) = item?;
            let id = codec::host_of_key(&k)?;
            let h = hosts
                .get_mut(id.0 as usize)
                .ok_or_else(|| Error::corrupt("counts name an unknown host"))?;
            h.counts = codec::decode_host_counts(&v)?;
        }
        let seen_dir = path.join(SEEN_DIR);
        let runs = Frontier::open_runs(&seen_dir, &meta, opts.read_only)?;
        let seen = SeenSet {
            runs: runs.into_iter().map(Arc::new).collect(),
            ..SeenSet::default()
        };
        let shared = Arc::new(Shared {
            db,
            tree,
            path: path.to_path_buf(),
            seen_dir,
            state: Mutex::new(State {
                counters,
                hosts,
                ready: ReadyIndex::default(),
                host_ids,
                cache: SeenCache::new(opts.seen_cache_slots),
                seen,
                meta,
                tails: Tails::default(),
                leased: HashMap::new(),
                lease_remaining: HashMap::new(),
                journal: VecDeque::new(),
                since_ckpt: (0, 0),
                since_seal: 0,
                dirty: HashSet::new(),
                seal_job: None,
                merging: false,
                obsolete: Vec::new(),
                stop: false,
                poisoned: false,
            }),
            wake: Condvar::new(),
            opts,
        });
        shared.replay()?;
        let mut frontier = Frontier {
            shared,
            report,
            worker: None,
        };
        if frontier.shared.opts.read_only {
            frontier.shared.note_leases()?;
        } else {
            if frontier.shared.opts.background {
                let s = frontier.shared.clone();
                let worker = std::thread::Builder::new()
                    .name("trawl-seen".into())
                    .spawn(move || s.work())
                    .map_err(Error::Io)?;
                frontier.worker = Some(worker);
            }
            let (requeued, quarantined) = frontier.shared.return_leases()?;
            frontier.report.requeued = requeued;
            frontier.report.quarantined = quarantined;
        }
        Ok(frontier)
    }

    /// Opens the registered runs; a writable open also deletes every other file in the
    /// directory (a crash's leftovers: a run written but never registered, a merge's
    /// inputs whose removal was not yet durable, a half-written temporary file).
    pub(super) fn open_runs(dir: &Path, meta: &SeenMeta, read_only: bool) -> Result<Vec<Run>> {
        if !read_only {
            std::fs::create_dir_all(dir).map_err(Error::Io)?;
            let registered: HashSet<u64> = meta.runs.iter().copied().collect();
            for e in std::fs::read_dir(dir).map_err(Error::Io)? {
                let e = e.map_err(Error::Io)?;
                let name = e.file_name();
                let keep = name
                    .to_str()
                    .and_then(runs::parse_run_name)
                    .is_some_and(|id| registered.contains(&id));
                if !keep {
                    tracing::debug!(file = ?name, "removing a seen-set file that is not registered");
                    std::fs::remove_file(e.path()).map_err(Error::Io)?;
                }
            }
        }
        meta.runs.iter().map(|id| Run::open(dir, *id)).collect()
    }
}

impl Shared {
    /// Rebuilds the in-memory state from the journal (and the finished log since the
    /// last seal): the memtable, the queue tails and the host counts since the last
    /// checkpoint.
    pub(super) fn replay(&self) -> Result<()> {
        let mut guard = self.lock()?;
        let st = &mut *guard;
        let (w_seen, w_ckpt) = (st.meta.w_seen, st.meta.w_ckpt);
        for item in self.tree.scan_prefix([codec::JOURNAL]) {
            let (k, v) = item?;
            let s = codec::parse_seq_key(&k)?;
            st.journal.push_back(s);
            if s >= w_ckpt {
                st.since_ckpt.0 += 1;
                st.since_ckpt.1 += v.len();
            }
            if s >= w_seen {
                st.since_seal += 1;
            }
            let mut counts: Vec<(u32, Counts)> = Vec::new();
            let State {
                hosts, seen, tails, ..
            } = &mut *st;
            let hosts = &*hosts;
            codec::replay_journal(&v, hosts, |op| {
                match op {
                    Op::Seen(fp, a) if s >= w_seen => seen.mark(fp, u64::from(a)),
                    Op::Append {
                        seen: marks,
                        q,
                        attempts,
                        url,
                        data,
                    } => {
                        if marks && s >= w_seen {
                            seen.mark(Fingerprint::of(&url), u64::from(attempts));
                        }
                        if s >= w_ckpt {
                            let key = hosts
                                .host_key(HostId(q.0))
                                .ok_or_else(|| Error::corrupt("the journal names an unknown host"))?;
                            tails.append(q, key, attempts, &url, data);
                        }
                    }
                    Op::Pop(q, n) if s >= w_ckpt => {
                        let key = hosts
                            .host_key(HostId(q.0))
                            .ok_or_else(|| Error::corrupt("the journal names an unknown host"))?;
                        tails.pop_front(q, n, key)?;
                    }
                    Op::Clear(h) if s >= w_ckpt => {
                        for q in tails.queues_of(h) {
                            tails.take(q);
                        }
                    }
                    Op::Counts(h, c) if s >= w_ckpt => counts.push((h, c)),
                    _ => {}
                }
                Ok(())
            })?;
            for (h, c) in counts {
                let host = st
                    .hosts
                    .get_mut(h as usize)
                    .ok_or_else(|| Error::corrupt("the journal names an unknown host"))?;
                host.counts = c;
                st.dirty.insert(h);
            }
        }
        let from = codec::seq_key(codec::FINISHED, w_seen);
        let to = codec::seq_key(codec::FINISHED, u64::MAX);
        for item in self.tree.range(from..=to) {
            let (k, v) = item?;
            let s = codec::parse_seq_key(&k)?;
            for r in codec::decode_finished(&v, &st.hosts)? {
                st.seen.mark(r.fp, FINISHED | s);
            }
        }
        for h in 0..st.hosts.len() as u32 {
            st.ready.place(&mut st.hosts, h);
        }
        let mut total = Counts::default();
        for h in &st.hosts {
            total.queued += h.counts.queued;
            total.leased += h.counts.leased;
            total.done += h.counts.done;
            total.failed += h.counts.failed;
        }
        if total != st.counters.counts {
            tracing::warn!(stored = ?st.counters.counts, found = ?total, "the frontier's counters disagree with the host counts; using the host counts");
            st.counters.counts = total;
            if !self.opts.read_only {
                self.tree
                    .insert(codec::meta_key("counters"), codec::encode_counters(&st.counters))?;
            }
        }
        Ok(())
    }

    /// Whether an entry of a lease record is still out: not finished and not put back
    /// since. The seen set's value of a URL is the attempts it had when it last went
    /// (back) into a queue, or [`FINISHED`] | seq, so an entry leased with `attempts` is
    /// out exactly when that value is below `attempts`.
    pub(super) fn outstanding(st: &State, e: &Entry) -> Result<bool> {
        match st.seen.get(e.fp)? {
            Some(v) => Ok(v < u64::from(e.attempts)),
            None => Err(Error::corrupt(format!(
                "leased {} is missing from the seen set",
                e.url
            ))),
        }
    }

    /// Read-only: takes note of the leases an earlier process left (the entries not
    /// acked before it stopped), so that they read as leased, without changing them.
    pub(super) fn note_leases(&self) -> Result<()> {
        let mut st = self.lock()?;
        for item in self.tree.scan_prefix([codec::LEASE]) {
            let (k, v) = item?;
            let id = codec::parse_seq_key(&k)?;
            for e in codec::decode_lease(&v, &st.hosts)? {
                if Shared::outstanding(&st, &e)? {
                    st.leased.insert(e.fp, (id, e.attempts));
                }
            }
        }
        Ok(())
    }

    /// Puts back every lease an earlier process left, and flushes.
    pub(super) fn return_leases(&self) -> Result<(u64, u64)> {
        let mut guard = self.write_lock()?;
        let (requeued, quarantined) = self.guarded(&mut guard, |st| {
            let mut ch = Change::default();
            let (mut requeued, mut quarantined) = (0, 0);
            // One batch per 64 lease records: each record is returned whole or not at
            // all, and a crash in between leaves the rest for the next open.
            let mut records = 0;
            for item in self.tree.scan_prefix([codec::LEASE]) {
                let (k, v) = item?;
                records += 1;
                if records % 64 == 0 {
                    self.apply(st, std::mem::take(&mut ch))?;
                }
                ch.batch.remove(k);
                for e in codec::decode_lease(&v, &st.hosts)? {
                    if !Shared::outstanding(st, &e)? {
                        continue;
                    }
                    if e.attempts >= self.opts.max_attempts {
                        let reason = format!(
                            "quarantined: leased {} times without completing (crash loop?)",
                            e.attempts
                        );
                        count(
                            st,
                            &mut ch,
                            e.host,
                            Some(UrlState::Leased),
                            Some(UrlState::Failed),
                        );
                        ch.finished
                            .push(finished_record(&e, UrlState::Failed, e.attempts, Some(reason)));
                        quarantined += 1;
                    } else {
                        count(st, &mut ch, e.host, Some(UrlState::Leased), None);
                        ch.queue(e);
                        requeued += 1;
                    }
                }
            }
            if requeued + quarantined > 0 {
                tracing::info!(requeued, quarantined, "returned the leases of an earlier process");
            }
            self.apply(st, ch)?;
            Ok((requeued, quarantined))
        })?;
        drop(guard);
        self.db.flush()?;
        Ok((requeued, quarantined))
    }
}
