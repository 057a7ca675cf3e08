//! Model-based test of the sled store: the shared model (`shared/model.rs`) on a real
//! sled directory.
//!
//! Each case also draws the sizes of the in-memory parts (the seen set's memtable, the
//! queue tails) and whether runs are sealed and merged in the background, so that
//! seals, merges, checkpoints and short segments happen within a few operations and
//! every reopen recovers them from the run files and the journal.

use std::collections::HashMap;

use proptest::prelude::*;
use trawl_frontier::{Frontier, Options, UrlState};

#[path = "shared/model.rs"]
mod model;

use model::{Harness, MAX_ATTEMPTS, Model};

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

struct Sled {
    dir: tempfile::TempDir,
    sizes: Sizes,
}

impl Harness for Sled {
    type Store = Frontier;

    fn open(&mut self) -> Frontier {
        Frontier::open(self.dir.path(), opts(self.sizes)).expect("open")
    }

    fn finish(&mut self, f: &Frontier, model: &Model) -> Result<(), TestCaseError> {
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
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 500, ..ProptestConfig::default() })]

    #[test]
    fn frontier_matches_the_model(ops in prop::collection::vec(model::op(), 1..60), sizes in sizes()) {
        let mut h = Sled { dir: tempfile::tempdir().expect("tmp"), sizes };
        model::check(&mut h, ops)?;
    }
}
