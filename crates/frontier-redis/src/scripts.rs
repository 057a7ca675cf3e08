//! The Lua scripts, each one atomic on the server, and the key layout they share.
//!
//! Every key of a crawl starts with `trawl:{crawl}:` (the prefix, `P` below):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P counts` | hash | `q` `l` `d` `f`: URLs by state, across every worker; `pg` records written |
//! | `P meta` | hash | `next_host` |
//! | `P config` | hash | `buckets`: the seen set's layout, fixed at the first open |
//! | `P hostids` | hash | host key to host id |
//! | `P h:{id}` | hash | `k` key; `q` `l` `d` `f` counts; `s` queue sequence; `e` claim epoch; `o` owner; `rp` release pending; `pn` `pr` `pb` `pc` `pa` politeness; `ix` `ra` where it is in the ready index |
//! | `P q:{id}` | sorted set | the host's queued URL records, scored by class, depth and sequence |
//! | `P s:{bucket}` | hash | the seen set: 8 bytes of fingerprint to attempts * 4 + state |
//! | `P l:{worker}:{id}` | hash | a worker's leases of a host: fingerprint to lease order, epoch and record |
//! | `P claims` | sorted set | claimed hosts by expiry (server ms) |
//! | `P wc:{worker}` | set | the hosts a worker claims |
//! | `P workers` | sorted set | workers by last heartbeat (server ms) |
//! | `P active` | set | hosts with queued or leased URLs (for the fairness cap) |
//! | `P open`, `P timed` | sorted sets | unclaimed hosts with queued URLs: by id, or by the time they open |
//! | `P open:{worker}`, `P timed:{worker}` | sorted sets | the same for a worker's claimed hosts |
//! | `P w:{worker}` | hash | `seq` last ack and `af` its answer; `op` last op id and `or` its answer; `ls` lease order; `c:{sink}` checkpoints; `x:{name}` meta; for status: `ttl`, `n` records, `rn` `rt` `pn` `pt` rate windows, `at` last ack, `left` when it stopped |
//! | `P r:{id}` | string | the host's cached robots.txt |
//!
//! Invariants the scripts keep (each helper in `lua/common.lua` keeps them whole):
//! - a URL is in exactly one of its host's queue, one lease hash, or neither (done or
//!   failed), and its seen-set value says which, with its attempts;
//! - a host is claimed by worker `o` exactly when `h:{id}` has `o`, the host is in
//!   `claims` and in `wc:{o}`; only the owner has leases of it; a claim on a host with
//!   neither queued nor leased URLs ends by itself;
//! - a host with queued URLs is in exactly one open or timed index, its owner's (or
//!   the global one when unclaimed), and `ix`/`ra` say which.
//!
//! The scripts touch keys they do not declare (only the prefix is in `KEYS`), so the
//! store needs a single Redis server, not Redis Cluster.

use redis::Script;

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(include_str!("lua/common.lua"), include_str!($file)))
    };
}

/// The scripts, loaded once per server (EVALSHA, with a reload after NOSCRIPT, as
/// after a server restart).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) open: Script,
    pub(crate) leave: Script,
    pub(crate) enqueue: Script,
    pub(crate) lease: Script,
    pub(crate) ack: Script,
    pub(crate) release: Script,
    pub(crate) renew: Script,
    pub(crate) scan: Script,
    pub(crate) politeness: Script,
    pub(crate) fail_host: Script,
    pub(crate) ready_hosts: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            open: script!("lua/open.lua"),
            leave: script!("lua/leave.lua"),
            enqueue: script!("lua/enqueue.lua"),
            lease: script!("lua/lease.lua"),
            ack: script!("lua/ack.lua"),
            release: script!("lua/release.lua"),
            renew: script!("lua/renew.lua"),
            scan: script!("lua/scan.lua"),
            politeness: script!("lua/politeness.lua"),
            fail_host: script!("lua/fail_host.lua"),
            ready_hosts: script!("lua/ready_hosts.lua"),
        }
    }
}
