//! [`FrontierStore`] for [`RedisFrontier`]: each change is one script, each read one
//! command or pipeline.

use trawl_frontier::{
    Ack, Counts, FrontierStore, HostInfo, Lease, NewUrl, Outcome, PageTally, Politeness, ReadyScan,
    RobotsEntry, UrlRecord, UrlState, host_of,
};

use super::*;
use crate::codec::{array, bytes, opt_bytes, text};

/// The most a count argument may say (Redis parses counts as 64-bit integers, and
/// `usize::MAX` is more).
const MAX_COUNT: usize = 1 << 40;

/// Appends the (fingerprint, host key, record) triples of the URLs that have a host
/// and that this process has not sent before ([`Known`](super::Known)).
fn push_urls(sh: &Shared, args: &mut Args, urls: Vec<NewUrl>) -> usize {
    let mut n = 0;
    let mut known = sh.known.lock().unwrap_or_else(|e| e.into_inner());
    for u in urls {
        let Some(host) = host_of(&u.url) else {
            tracing::warn!(url = %u.url, "not enqueued: no scheme://host in it");
            continue;
        };
        let fp = Fingerprint::of(&u.url);
        if !known.first(fp.0) {
            continue;
        }
        args.push(fp.0.to_be_bytes().to_vec());
        args.push(host.as_bytes().to_vec());
        args.push(codec::encode_record(fp, u.priority, u.depth, &u.url, &u.data));
        n += 1;
    }
    n
}

fn fingerprints(b: &[u8]) -> Vec<Fingerprint> {
    b.chunks_exact(16)
        .filter_map(|c| <[u8; 16]>::try_from(c).ok())
        .map(|c| Fingerprint(u128::from_be_bytes(c)))
        .collect()
}

fn host_id(v: Value) -> Result<HostId> {
    let n = number(v)?;
    u32::try_from(n)
        .map(HostId)
        .map_err(|_| codec::corrupt(format!("host id {n} is out of range")))
}

impl FrontierStore for RedisFrontier {
    fn enqueue(&self, urls: Vec<NewUrl>) -> Result<usize> {
        let sh = &*self.shared;
        let mut args = vec![Vec::new(), Vec::new()];
        let n = push_urls(sh, &mut args, urls);
        if n == 0 {
            return Ok(0);
        }
        args[1] = arg(n);
        let mut m = sh.main();
        let op = m.op + 1;
        m.op = op;
        args[0] = arg(op);
        args.insert(1, seen(&m));
        let reply = array(sh.eval(&mut m.link, &sh.scripts.enqueue, &args)?)?.into_iter();
        let new = number(applied(sh, &mut m, op, reply)?.unwrap_or(Value::Nil))?;
        Ok(new as usize)
    }

    fn lease(&self, host: HostId, max: usize) -> Result<Vec<Lease>> {
        let sh = &*self.shared;
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut m = sh.main();
        let op = m.op + 1;
        m.op = op;
        let args = vec![
            arg(op),
            seen(&m),
            arg(host.0),
            arg(max.min(MAX_COUNT)),
            m.page_limit.map_or_else(Vec::new, arg),
        ];
        let sent = Instant::now();
        let mut reply = array(sh.eval(&mut m.link, &sh.scripts.lease, &args)?)?.into_iter();
        let status = text(reply.next().unwrap_or(Value::Nil))?;
        match status.as_str() {
            "ok" => m.applied_op = op,
            "lost" => {
                m.op = op - 1;
                return Err(lost(text(reply.next().unwrap_or(Value::Nil))?));
            }
            "limit" => {
                sh.heard(
                    reply.next().unwrap_or(Value::Nil),
                    reply.next().unwrap_or(Value::Nil),
                )?;
                return Ok(Vec::new());
            }
            "other" => {
                if let Some(c) = sh.claims().get_mut(&host.0) {
                    c.lost = true;
                }
                return Ok(Vec::new());
            }
            "cap" | "empty" => return Ok(Vec::new()),
            other => return Err(codec::corrupt(format!("lease answered {other:?}"))),
        }
        let epoch = number(reply.next().unwrap_or(Value::Nil))?;
        sh.heard(
            reply.next().unwrap_or(Value::Nil),
            reply.next().unwrap_or(Value::Nil),
        )?;
        let leases = reply
            .map(|v| Ok(codec::decode_record(&bytes(v)?)?.into_lease(host)))
            .collect::<Result<Vec<Lease>>>()?;
        for l in &leases {
            m.leases.insert(l.fp, epoch);
        }
        drop(m);
        sh.note_claim(host, epoch, sent);
        Ok(leases)
    }

    fn ack_new(&self, acks: Vec<Ack>, checkpoints: &[(&str, &[u8])]) -> Result<Vec<Fingerprint>> {
        self.ack_records(acks, checkpoints, 0)
    }

    /// Acks in one script, which also adds `records` to the records written by every
    /// worker (the count a shared page limit is held to).
    fn ack_records(
        &self,
        acks: Vec<Ack>,
        checkpoints: &[(&str, &[u8])],
        records: u64,
    ) -> Result<Vec<Fingerprint>> {
        let sh = &*self.shared;
        let mut m = sh.main();
        let mut args: Args = vec![Vec::new(), arg(m.applied_op), arg(records), arg(acks.len())];
        let mut acked = Vec::with_capacity(acks.len());
        let mut links = Vec::new();
        for a in acks {
            let epoch = m.leases.get(&a.lease.fp).copied().unwrap_or(0);
            args.push(a.lease.fp.0.to_be_bytes().to_vec());
            args.push(arg(a.lease.host.0));
            args.push(arg(epoch));
            let (code, reason) = match a.outcome {
                Outcome::Done => ("d", String::new()),
                Outcome::Failed(r) => ("f", r),
                Outcome::Retry => ("r", String::new()),
            };
            args.push(arg(code));
            args.push(reason.into_bytes());
            acked.push(a.lease.fp);
            links.extend(a.discovered);
        }
        let at = args.len();
        args.push(Vec::new());
        let n = push_urls(sh, &mut args, links);
        args[at] = arg(n);
        args.push(arg(checkpoints.len()));
        for (sink, cp) in checkpoints {
            args.push(sink.as_bytes().to_vec());
            args.push(cp.to_vec());
        }
        // The sequence number is spent whether or not the reply comes back: a resend
        // of the same call carries the same one (see `Link::run`), the next call the
        // next one.
        let seq = m.seq + 1;
        m.seq = seq;
        args[0] = arg(seq);
        let mut reply = array(sh.eval(&mut m.link, &sh.scripts.ack, &args)?)?.into_iter();
        let status = text(reply.next().unwrap_or(Value::Nil))?;
        match status.as_str() {
            "ok" | "retry" => {}
            "lost" => {
                // Nothing was applied, so this number is free again, and the links it
                // carried are not known to be stored.
                m.seq = seq - 1;
                sh.forget_known();
                let reason = text(reply.next().unwrap_or(Value::Nil))?;
                return Err(lost(reason));
            }
            other => return Err(codec::corrupt(format!("ack answered {other:?}"))),
        }
        for fp in &acked {
            m.leases.remove(fp);
        }
        drop(m);
        let new = fingerprints(&bytes(reply.next().unwrap_or(Value::Nil))?);
        let released = array(reply.next().unwrap_or(Value::Nil))?;
        sh.heard(
            reply.next().unwrap_or(Value::Nil),
            reply.next().unwrap_or(Value::Nil),
        )?;
        if !released.is_empty() {
            let mut claims = sh.claims();
            for h in released {
                claims.remove(&host_id(h)?.0);
            }
        }
        Ok(new)
    }

    /// A no-op: every script's effects are in the server's AOF when it returns, and
    /// how soon they are on disk is the server's `appendfsync` setting (`always`: at
    /// once; `everysec`: within a second, and an ack lost in a server crash is
    /// detected by the ack sequence and answered with
    /// [`Error::LostOwnership`](trawl_frontier::Error::LostOwnership)).
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn ready_hosts(&self) -> Result<Vec<(HostId, u64)>> {
        let sh = &*self.shared;
        let mut m = sh.main();
        let reply = array(sh.eval(&mut m.link, &sh.scripts.ready_hosts, &Vec::new())?)?;
        drop(m);
        let mut out = Vec::with_capacity(reply.len() / 2);
        let mut it = reply.into_iter();
        while let (Some(h), Some(t)) = (it.next(), it.next()) {
            out.push((host_id(h)?, number(t)?));
        }
        out.sort_by_key(|(id, t)| (*t, *id));
        Ok(out)
    }

    fn ready_scan(&self, after: Option<HostId>, now_ms: u64, max: usize) -> Result<ReadyScan> {
        let sh = &*self.shared;
        let args = vec![
            after.map_or_else(Vec::new, |a| arg(a.0)),
            arg(now_ms),
            arg(max.min(MAX_COUNT)),
        ];
        let mut m = sh.main();
        let mut reply = array(sh.eval(&mut m.link, &sh.scripts.scan, &args)?)?.into_iter();
        drop(m);
        let hosts = array(reply.next().unwrap_or(Value::Nil))?
            .into_iter()
            .map(host_id)
            .collect::<Result<Vec<_>>>()?;
        let ready = number(reply.next().unwrap_or(Value::Nil))? as usize;
        let next = bytes(reply.next().unwrap_or(Value::Nil))?;
        let next_ms = if next.is_empty() {
            None
        } else {
            Some(number(Value::BulkString(next))?)
        };
        Ok(ReadyScan {
            hosts,
            ready,
            next_ms,
        })
    }

    fn host(&self, id: HostId) -> Result<Option<HostInfo>> {
        let key = self.shared.key(&format!("h:{}", id.0));
        let fields: HashMap<String, Vec<u8>> =
            self.shared.query(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        read::host_info(id, fields)
    }

    fn host_id(&self, key: &str) -> Result<Option<HostId>> {
        let ids = self.shared.key("hostids");
        let v: Value = self
            .shared
            .query(|c| redis::cmd("HGET").arg(&ids).arg(key).query(c))?;
        match v {
            Value::Nil => Ok(None),
            v => host_id(v).map(Some),
        }
    }

    fn hosts(&self) -> Result<Vec<HostInfo>> {
        self.read_hosts()
    }

    fn politeness(&self, id: HostId) -> Result<Option<Politeness>> {
        let key = self.shared.key(&format!("h:{}", id.0));
        let v: Vec<Value> = self.shared.query(|c| {
            redis::cmd("HMGET")
                .arg(&key)
                .arg("k")
                .arg(&codec::POLITENESS_FIELDS[..])
                .query(c)
        })?;
        let mut it = v.into_iter();
        if matches!(it.next(), None | Some(Value::Nil)) {
            return Ok(None);
        }
        let mut next = || number(it.next().unwrap_or(Value::Nil));
        Ok(Some(Politeness {
            next_allowed_at_ms: next()?,
            retry_after_until_ms: next()?,
            backoff_level: next()? as u32,
            consecutive_failures: next()? as u32,
            adaptive_millirate: next()? as u32,
        }))
    }

    fn set_politeness(&self, id: HostId, p: Politeness) -> Result<()> {
        let sh = &*self.shared;
        let mut args = vec![arg(id.0)];
        args.extend(codec::politeness_args(&p).map(String::into_bytes));
        let mut m = sh.main();
        sh.eval(&mut m.link, &sh.scripts.politeness, &args)?;
        Ok(())
    }

    fn robots(&self, id: HostId) -> Result<Option<RobotsEntry>> {
        let key = self.shared.key(&format!("r:{}", id.0));
        let v: Value = self.shared.query(|c| redis::cmd("GET").arg(&key).query(c))?;
        opt_bytes(v)?.map(|b| codec::decode_robots(&b)).transpose()
    }

    fn set_robots(&self, id: HostId, entry: &RobotsEntry) -> Result<()> {
        let key = self.shared.key(&format!("r:{}", id.0));
        let value = codec::encode_robots(entry);
        self.shared
            .query(|c| redis::cmd("SET").arg(&key).arg(&value).query::<()>(c))
    }

    fn fail_host(&self, id: HostId, reason: &str) -> Result<u64> {
        let sh = &*self.shared;
        let mut m = sh.main();
        let op = m.op + 1;
        m.op = op;
        let args = vec![arg(op), seen(&m), arg(id.0)];
        let reply = array(sh.eval(&mut m.link, &sh.scripts.fail_host, &args)?)?.into_iter();
        let n = number(applied(sh, &mut m, op, reply)?.unwrap_or(Value::Nil))?;
        drop(m);
        if n > 0 {
            tracing::debug!(host = id.0, n, reason, "failed the queued URLs of a host");
        }
        Ok(n)
    }

    fn checkpoint(&self, sink: &str) -> Result<Option<Vec<u8>>> {
        self.worker_field(&format!("c:{sink}"))
    }

    fn counts(&self) -> Result<Counts> {
        let key = self.shared.key("counts");
        let v: Vec<Value> = self
            .shared
            .query(|c| redis::cmd("HMGET").arg(&key).arg(&["q", "l", "d", "f"]).query(c))?;
        read::counts(v)
    }

    /// The record of a URL. For a queued or leased URL it is the whole record; for a
    /// done or failed one the seen set keeps only the state and the attempts (the
    /// sinks hold the rest), so its depth is 0, its class
    /// [`Priority::Page`](trawl_frontier::Priority::Page), and it has no reason and no
    /// data.
    ///
    /// A slow path, for tests and tools: a queued URL is looked for among its host's
    /// queue (a scan of it).
    fn get(&self, url: &str) -> Result<Option<UrlRecord>> {
        self.read_url(url)
    }

    fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        let key = self.shared.key(&format!("w:{}", self.shared.opts.worker));
        let field = format!("x:{name}");
        self.shared
            .query(|c| redis::cmd("HSET").arg(&key).arg(&field).arg(value).query::<()>(c))
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.worker_field(&format!("x:{name}"))
    }

    fn worker(&self) -> Option<&str> {
        Some(&self.shared.opts.worker)
    }

    /// True when this process holds the claim on `host` and the claim's expiry, as
    /// this process last renewed it (on its monotonic clock, less a safety margin of
    /// an eighth of the ttl), is more than `within_ms` away.
    fn may_start(&self, host: HostId, within_ms: u64) -> bool {
        let claims = self.shared.claims();
        let Some(c) = claims.get(&host.0) else {
            return false;
        };
        !c.lost && Instant::now() + Duration::from_millis(within_ms) < c.deadline
    }

    /// True when the last renewal found this worker over its share of hosts (workers
    /// joined since it claimed them) and `host` among those to give up.
    fn hand_over(&self, host: HostId) -> bool {
        self.shared.claims().get(&host.0).is_some_and(|c| c.hand_over)
    }

    /// True when this process holds no claim on `host`, or a renewal found it lost, or
    /// its expiry as last renewed (less the margin) has passed.
    fn claim_lost(&self, host: HostId) -> bool {
        let claims = self.shared.claims();
        claims
            .get(&host.0)
            .is_none_or(|c| c.lost || Instant::now() >= c.deadline)
    }

    /// Gives up the claim on `host`, at once if this worker holds no leases of it,
    /// otherwise with the ack that completes the last of them.
    fn release(&self, host: HostId) -> Result<()> {
        let sh = &*self.shared;
        let mut m = sh.main();
        let v = sh.eval(&mut m.link, &sh.scripts.release, &vec![arg(host.0)])?;
        drop(m);
        match text(v)?.as_str() {
            "released" | "none" => {
                sh.claims().remove(&host.0);
            }
            _ => {}
        }
        Ok(())
    }

    fn finished(&self) -> Result<bool> {
        let key = self.shared.key("counts");
        let (queued, leased, written): (Option<u64>, Option<u64>, Option<u64>) = self
            .shared
            .query(|c| redis::cmd("HMGET").arg(&key).arg(&["q", "l", "pg"]).query(c))?;
        let mut tally = self.shared.tally.lock().unwrap_or_else(|e| e.into_inner());
        if tally.is_some() {
            *tally = Some(PageTally {
                written: written.unwrap_or(0),
                leased: leased.unwrap_or(0),
            });
        }
        Ok(queued.unwrap_or(0) == 0 && leased.unwrap_or(0) == 0)
    }

    /// Holds this worker's leases to `max` with every other worker's (each worker
    /// given a limit holds it; they should be given the same one).
    fn share_page_limit(&self, max: u64) -> Result<bool> {
        self.shared.main().page_limit = Some(max);
        *self.shared.tally.lock().unwrap_or_else(|e| e.into_inner()) = Some(PageTally::default());
        self.finished()?;
        Ok(true)
    }

    fn shared_pages(&self) -> Option<PageTally> {
        *self.shared.tally.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The op id and ack number this process last saw stored, for a script's rewind check
/// (`rewound` in `lua/common.lua`).
fn seen(m: &Main) -> Vec<u8> {
    arg(format!("{}:{}", m.applied_op, m.seq))
}

/// The answer of an op script (enqueue, fail_host): `{'ok', value}` notes the op as
/// stored and gives the value; `{'lost', reason}` gives the op id back (nothing was
/// applied) and is [`Error::LostOwnership`].
fn applied(
    sh: &Shared,
    m: &mut Main,
    op: u64,
    mut reply: impl Iterator<Item = Value>,
) -> Result<Option<Value>> {
    let status = text(reply.next().unwrap_or(Value::Nil))?;
    match status.as_str() {
        "ok" => {
            m.applied_op = op;
            Ok(reply.next())
        }
        "lost" => {
            m.op = op - 1;
            sh.forget_known();
            Err(lost(text(reply.next().unwrap_or(Value::Nil))?))
        }
        other => Err(codec::corrupt(format!("an op answered {other:?}"))),
    }
}

impl RedisFrontier {
    fn worker_field(&self, field: &str) -> Result<Option<Vec<u8>>> {
        let key = self.shared.key(&format!("w:{}", self.shared.opts.worker));
        let v: Value = self
            .shared
            .query(|c| redis::cmd("HGET").arg(&key).arg(field).query(c))?;
        opt_bytes(v)
    }

    /// A URL's seen-set entry: its state and attempts, if known. It goes down the
    /// bucket's chain as the scripts do (`seen_find` in `lua/common.lua`).
    pub(crate) fn seen_state(&self, fp: Fingerprint) -> Result<Option<(UrlState, u32)>> {
        let sh = &*self.shared;
        let (bucket, field) = codec::seen_at(fp, sh.opts.seen_buckets);
        let base = sh.key(&format!("s:{bucket}"));
        for level in 0u64.. {
            let key = if level == 0 {
                base.clone()
            } else {
                format!("{base}:{level}")
            };
            let (v, len): (Value, u64) = sh.query(|c| {
                redis::pipe()
                    .cmd("HGET")
                    .arg(&key)
                    .arg(&field[..])
                    .cmd("HLEN")
                    .arg(&key)
                    .query(c)
            })?;
            match v {
                Value::Nil if len < sh.seen_cap => return Ok(None),
                Value::Nil => {}
                v => return codec::decode_seen(number(v)?).map(Some),
            }
        }
        Ok(None)
    }
}
