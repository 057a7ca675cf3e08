//! Model-based test: random sequences of enqueue, lease, ack (done, failed, retry),
//! flush and reopen on a real sled directory, compared step by step with a plain
//! in-memory model of what the frontier promises.
//!
//! Each case also draws the sizes of the in-memory parts (the seen set's memtable, the
//! queue tails) and whether runs are sealed and merged in the background, so that
//! seals, merges, checkpoints and short segments happen within a few operations and
//! every reopen recovers them from the run files and the journal.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use trawl_frontier::{Ack, Frontier, FrontierStore, Lease, NewUrl, Options, Outcome, UrlState};

const HOSTS: u8 = 3;
const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
enum Op {
    Enqueue(Vec<(u8, u8, u8)>),
    Lease(u8, u8),
    Ack(usize, u8, Vec<(u8, u8, u8)>),
    Flush,
    Reopen,
}

fn url(id: u8, host: u8) -> String {
    format!("http://h{}.test/{id}", host % HOSTS)
}

fn links() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    prop::collection::vec((0u8..120, 0u8..HOSTS, 0u8..2), 0..12)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => links().prop_map(Op::Enqueue),
        3 => (0u8..HOSTS, 1u8..4).prop_map(|(h, n)| Op::Lease(h, n)),
        4 => (0usize..8, 0u8..3, links()).prop_map(|(i, o, l)| Op::Ack(i, o, l)),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
struct Rec {
    state: UrlState,
    attempts: u32,
    depth: u16,
    seq: u64,
    /// When it was last leased, to requeue leases in lease order on reopen.
    leased_at: u64,
}

/// What the frontier promises, without sled.
#[derive(Debug, Default)]
struct Model {
    urls: HashMap<String, Rec>,
    /// Per host: queued (depth, seq, url).
    queues: HashMap<String, BTreeSet<(u16, u64, String)>>,
    next_seq: u64,
}

impl Model {
    fn host(u: &str) -> String {
        trawl_frontier::host_of(u).expect("host").to_string()
    }

    fn enqueue(&mut self, items: &[(u8, u8, u8)]) -> usize {
        let mut n = 0;
        for &(id, h, d) in items {
            let u = url(id, h);
            if self.urls.contains_key(&u) {
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.urls.insert(
                u.clone(),
                Rec {
                    state: UrlState::Queued,
                    attempts: 0,
                    depth: d.into(),
                    seq,
                    leased_at: 0,
                },
            );
            self.queues
                .entry(Model::host(&u))
                .or_default()
                .insert((d.into(), seq, u));
            n += 1;
        }
        n
    }

    fn lease(&mut self, host: &str, n: usize) -> Vec<String> {
        let q = self.queues.entry(host.to_string()).or_default();
        let taken: Vec<_> = q.iter().take(n).cloned().collect();
        let mut out = Vec::new();
        for item in taken {
            q.remove(&item);
            let r = self.urls.get_mut(&item.2).expect("queued url is known");
            r.state = UrlState::Leased;
            r.attempts += 1;
            r.leased_at = self.next_seq;
            self.next_seq += 1;
            out.push(item.2);
        }
        out
    }

    fn ack(&mut self, u: &str, outcome: &Outcome) {
        let r = self.urls.get_mut(u).expect("leased url is known");
        r.state = match outcome {
            Outcome::Done => UrlState::Done,
            Outcome::Failed(_) => UrlState::Failed,
            Outcome::Retry if r.attempts >= MAX_ATTEMPTS => UrlState::Failed,
            Outcome::Retry => UrlState::Queued,
        };
        if r.state == UrlState::Queued {
            // A retry goes to the back of its class.
            r.seq = self.next_seq;
            self.next_seq += 1;
            let item = (r.depth, r.seq, u.to_string());
            self.queues.entry(Model::host(u)).or_default().insert(item);
        }
    }

    /// Leases come back in the order they were handed out, at the back of their class.
    fn reopen(&mut self) {
        let mut leased: Vec<(u64, String)> = self
            .urls
            .iter()
            .filter(|(_, r)| r.state == UrlState::Leased)
            .map(|(u, r)| (r.leased_at, u.clone()))
            .collect();
        leased.sort();
        for (_, u) in leased {
            let r = self.urls.get_mut(&u).expect("known");
            if r.attempts >= MAX_ATTEMPTS {
                r.state = UrlState::Failed;
            } else {
                r.state = UrlState::Queued;
                r.seq = self.next_seq;
                self.next_seq += 1;
                let item = (r.depth, r.seq, u.clone());
                self.queues.entry(Model::host(&u)).or_default().insert(item);
            }
        }
    }

    fn count(&self, s: UrlState) -> u64 {
        self.urls.values().filter(|r| r.state == s).count() as u64
    }
}

fn new_urls(items: &[(u8, u8, u8)]) -> Vec<NewUrl> {
    items
        .iter()
        .map(|&(id, h, d)| NewUrl::page(url(id, h), d.into()))
        .collect()
}

/// The sizes of the in-memory parts: (memtable fingerprints, tail bytes, background).
type Sizes = (usize, usize, bool);

fn sizes() -> impl Strategy<Value = Sizes> {
    (
        prop_oneof![Just(1usize), Just(3), Just(200_000)],
        prop_oneof![Just(0usize), Just(600), Just(8 << 20)],
        any::<bool>(),
    )
}

fn opts((memtable, tail_bytes, background): Sizes) -> Options {
    Options::default()
        .max_attempts(MAX_ATTEMPTS)
        .cache_capacity(4 << 20)
        .seen_cache_slots(16)
        .seen_memtable(memtable)
        .tail_bytes(tail_bytes)
        .background(background)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 500, ..ProptestConfig::default() })]

    #[test]
    fn frontier_matches_the_model(ops in prop::collection::vec(op(), 1..60), sizes in sizes()) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut f = Frontier::open(dir.path(), opts(sizes)).expect("open");
        let mut model = Model::default();
        let mut outstanding: Vec<Lease> = Vec::new();
        let mut last_checkpoint: Option<Vec<u8>> = None;
        for op in ops {
            match op {
                Op::Enqueue(items) => {
                    let n = f.enqueue(new_urls(&items)).expect("enqueue");
                    prop_assert_eq!(n, model.enqueue(&items));
                }
                Op::Lease(h, n) => {
                    let host = format!("http://h{h}.test");
                    let got: Vec<Lease> = match f.host_id(&host).expect("read") {
                        Some(id) => f.lease(id, n.into()).expect("lease"),
                        None => Vec::new(),
                    };
                    let want = model.lease(&host, n.into());
                    prop_assert_eq!(got.iter().map(|l| l.url.clone()).collect::<Vec<_>>(), want);
                    for l in &got {
                        prop_assert_eq!(l.attempts, model.urls[&l.url].attempts);
                    }
                    outstanding.extend(got);
                }
                Op::Ack(i, o, discovered) => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let lease = outstanding.remove(i % outstanding.len());
                    let outcome = match o {
                        0 => Outcome::Done,
                        1 => Outcome::Failed("boom".into()),
                        _ => Outcome::Retry,
                    };
                    model.ack(&lease.url, &outcome);
                    model.enqueue(&discovered);
                    let cp = model.next_seq.to_be_bytes();
                    last_checkpoint = Some(cp.to_vec());
                    f.ack(vec![Ack { lease, outcome, discovered: new_urls(&discovered) }], &[("s", &cp)])
                        .expect("ack");
                }
                Op::Flush => f.flush().expect("flush"),
                Op::Reopen => {
                    f.flush().expect("flush");
                    drop(f);
                    f = Frontier::open(dir.path(), opts(sizes)).expect("reopen");
                    model.reopen();
                    outstanding.clear();
                    prop_assert_eq!(f.checkpoint("s").expect("cp"), last_checkpoint.clone());
                }
            }
            let c = f.counts().expect("read");
            prop_assert_eq!(c.queued, model.count(UrlState::Queued));
            prop_assert_eq!(c.leased, model.count(UrlState::Leased));
            prop_assert_eq!(c.done, model.count(UrlState::Done));
            prop_assert_eq!(c.failed, model.count(UrlState::Failed));
            // The ready index holds exactly the hosts with queued URLs.
            let mut want: Vec<String> = model
                .urls
                .iter()
                .filter(|(_, r)| r.state == UrlState::Queued)
                .filter_map(|(u, _)| trawl_frontier::host_of(u).map(String::from))
                .collect();
            want.sort();
            want.dedup();
            let scan = f.ready_scan(None, u64::MAX, usize::MAX).expect("read");
            prop_assert_eq!(scan.ready, want.len());
            let mut got: Vec<String> = scan.hosts.iter().filter_map(|h| f.host(*h).expect("read").map(|i| i.key)).collect();
            got.sort();
            prop_assert_eq!(got, want);
        }
        prop_assert_eq!(f.verify().expect("consistent").total(), model.urls.len() as u64);
        let listed: HashMap<String, UrlState> = f
            .urls()
            .map(|r| {
                let r = r.expect("decodes");
                (r.url, r.state)
            })
            .collect();
        prop_assert_eq!(listed.len(), model.urls.len());
        for (u, r) in &model.urls {
            prop_assert_eq!(listed.get(u), Some(&r.state));
            let rec = f.get(u).expect("get").expect("known");
            prop_assert_eq!(rec.state, r.state);
            prop_assert_eq!(rec.attempts, r.attempts);
        }
    }
}
