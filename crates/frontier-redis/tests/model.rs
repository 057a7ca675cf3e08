//! Model-based test of the Redis store: the sled store's model
//! (`crates/frontier/tests/shared/model.rs`) on one real redis-server, a fresh crawl
//! name per case. `Reopen` drops the store and opens it again with the same worker
//! name, which recovers the worker's leases as sled's reopen does.
//!
//! The runner is driven by hand rather than through `proptest!`, so that the server
//! is a local of the test and is killed when it ends.

use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use trawl_frontier_redis::testing::RedisServer;
use trawl_frontier_redis::{RedisFrontier, RedisOptions};

#[path = "../../frontier/tests/shared/model.rs"]
mod model;

use model::{Harness, MAX_ATTEMPTS, Model};

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

#[test]
fn redis_frontier_matches_the_model() {
    // Hashes of 8 fields, so that the seen set's buckets grow chains of several
    // hashes within a case.
    let server = RedisServer::start_with(&["--hash-max-listpack-entries", "8"]).expect("redis-server");
    let config = Config {
        cases: 64,
        max_shrink_iters: 500,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        ..Config::default()
    };
    let case = Cell::new(0u64);
    let strategy = (
        prop::collection::vec(model::op(), 1..60),
        prop_oneof![Just(1u32), Just(7), Just(64)],
    );
    let result = TestRunner::new(config).run(&strategy, |(ops, buckets)| {
        case.set(case.get() + 1);
        let opts = server
            .options(&format!("model-{}", case.get()), "w1")
            .max_attempts(MAX_ATTEMPTS)
            .seen_buckets(buckets);
        model::check(&mut Redis { opts }, ops)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
