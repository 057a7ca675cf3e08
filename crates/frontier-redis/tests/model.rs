//! Model-based test of the Redis store: the sled store's model
//! (`crates/frontier/tests/shared/model.rs`) on one real redis-server, a fresh crawl
//! name per case. `Reopen` drops the store and opens it again with the same worker
//! name, which recovers the worker's leases as sled's reopen does.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use trawl_frontier_redis::testing::RedisServer;
use trawl_frontier_redis::{RedisFrontier, RedisOptions};

#[path = "../../frontier/tests/shared/model.rs"]
mod model;

use model::{Harness, MAX_ATTEMPTS, Model};

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    // Hashes of 8 fields, so that the seen set's buckets grow chains of several
    // hashes within a case.
    SERVER
        .get_or_init(|| RedisServer::start_with(&["--hash-max-listpack-entries", "8"]).expect("redis-server"))
}

struct Redis {
    opts: RedisOptions,
}

impl Harness for Redis {
    type Store = RedisFrontier;

    fn open(&mut self) -> RedisFrontier {
        RedisFrontier::open(self.opts.clone()).expect("open")
    }

    fn finish(&mut self, f: &RedisFrontier, model: &Model) -> Result<(), TestCaseError> {
        prop_assert_eq!(f.verify().expect("consistent").total(), model.urls.len() as u64);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 500, ..ProptestConfig::default() })]

    #[test]
    fn redis_frontier_matches_the_model(ops in prop::collection::vec(model::op(), 1..60), buckets in prop_oneof![Just(1u32), Just(7), Just(64)]) {
        static CASE: AtomicU64 = AtomicU64::new(0);
        let crawl = format!("model-{}", CASE.fetch_add(1, Ordering::Relaxed));
        let opts = server()
            .options(&crawl, "w1")
            .max_attempts(MAX_ATTEMPTS)
            .seen_buckets(buckets);
        model::check(&mut Redis { opts }, ops)?;
    }
}
