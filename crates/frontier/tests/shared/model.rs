//! The model every frontier store is held to: random sequences of enqueue, lease, ack
//! (done, failed, retry), flush and reopen, compared step by step with a plain
//! in-memory model of what the frontier promises.
//!
//! Shared by the sled store's test (`crates/frontier/tests/model.rs`) and the Redis
//! store's (`crates/frontier-redis/tests/model.rs`), which include this file with
//! `#[path]`; each gives a [`Harness`] that opens (and reopens) its store.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use trawl_frontier::{Ack, FrontierStore, Lease, NewUrl, Outcome, UrlState};

pub const HOSTS: u8 = 3;
pub const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub enum Op {
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

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => links().prop_map(Op::Enqueue),
        3 => (0u8..HOSTS, 1u8..4).prop_map(|(h, n)| Op::Lease(h, n)),
        4 => (0usize..8, 0u8..3, links()).prop_map(|(i, o, l)| Op::Ack(i, o, l)),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
pub struct Rec {
    pub state: UrlState,
    pub attempts: u32,
    depth: u16,
    seq: u64,
    /// When it was last leased, to requeue leases in lease order on reopen.
    leased_at: u64,
}

/// What the frontier promises, without a store.
#[derive(Debug, Default)]
pub struct Model {
    pub urls: HashMap<String, Rec>,
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

    pub fn count(&self, s: UrlState) -> u64 {
        self.urls.values().filter(|r| r.state == s).count() as u64
    }
}

fn new_urls(items: &[(u8, u8, u8)]) -> Vec<NewUrl> {
    items
        .iter()
        .map(|&(id, h, d)| NewUrl::page(url(id, h), d.into()))
        .collect()
}

/// A store under test.
pub trait Harness {
    type Store: FrontierStore;
    /// Opens the store; called again (after the old one is dropped) for `Reopen`.
    fn open(&mut self) -> Self::Store;
    /// Checks of the store's own after the last op.
    fn finish(&mut self, store: &Self::Store, model: &Model) -> Result<(), TestCaseError>;
}

/// Runs `ops` on the harness's store and on the model, comparing them after each op:
/// leases, counts, the ready index, checkpoints after a reopen, and at the end every
/// URL's state and attempts.
pub fn check<H: Harness>(h: &mut H, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut f = h.open();
    let mut model = Model::default();
    let mut outstanding: Vec<Lease> = Vec::new();
    let mut last_checkpoint: Option<Vec<u8>> = None;
    for op in ops {
        match op {
            Op::Enqueue(items) => {
                let n = f.enqueue(new_urls(&items)).expect("enqueue");
                prop_assert_eq!(n, model.enqueue(&items));
            }
            Op::Lease(hn, n) => {
                let host = format!("http://h{hn}.test");
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
                f.ack(
                    vec![Ack {
                        lease,
                        outcome,
                        discovered: new_urls(&discovered),
                    }],
                    &[("s", &cp)],
                )
                .expect("ack");
            }
            Op::Flush => f.flush().expect("flush"),
            Op::Reopen => {
                f.flush().expect("flush");
                drop(f);
                f = h.open();
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
        let mut got: Vec<String> = scan
            .hosts
            .iter()
            .filter_map(|h| f.host(*h).expect("read").map(|i| i.key))
            .collect();
        got.sort();
        prop_assert_eq!(got, want);
    }
    h.finish(&f, &model)?;
    for (u, r) in &model.urls {
        let rec = f.get(u).expect("get").expect("known");
        prop_assert_eq!(rec.state, r.state);
        prop_assert_eq!(rec.attempts, r.attempts);
    }
    Ok(())
}
