//! The query-variant trap guard ([`crate::Limits::max_query_variants`]).
//!
//! A faceted listing, a sort order or a filter form can link endless near-identical
//! variants of one path (`/list?color=red&size=3&sort=asc&page=7`). Depth bounds how
//! long such a chain gets, not how wide: every page links several more variants. The
//! guard admits at most `max` distinct queries per path of a host and refuses the
//! rest, whichever way they were found.
//!
//! Memory stays bounded on a broad crawl: a path is remembered by a 64-bit hash, with
//! the hashes of its queries (at most `max`); past [`MAX_PATHS`] paths, the paths with
//! a single variant are forgotten (a trap's path, with many, stays). The counts are
//! per run: a resumed crawl may admit `max` more per path.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// Paths remembered before the ones with one variant are forgotten.
const MAX_PATHS: usize = 1 << 16;

/// The distinct queries admitted per path.
#[derive(Debug)]
pub(crate) struct QueryVariants {
    max: Option<u32>,
    paths: Mutex<HashMap<u64, HashSet<u64>>>,
}

fn hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl QueryVariants {
    pub(crate) fn new(max: Option<u32>) -> QueryVariants {
        QueryVariants {
            max,
            paths: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the canonical `url` may be followed: it has no query, its query was
    /// admitted before, or its path has room for another.
    pub(crate) fn admit(&self, url: &str) -> bool {
        let Some(max) = self.max else {
            return true;
        };
        let Some((path, query)) = url.split_once('?') else {
            return true;
        };
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if paths.len() >= MAX_PATHS {
            paths.retain(|_, q| q.len() > 1);
        }
        let queries = paths.entry(hash(path)).or_default();
        let q = hash(query);
        if queries.contains(&q) {
            return true;
        }
        if queries.len() >= max as usize {
            return false;
        }
        queries.insert(q);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_gets_at_most_max_distinct_queries() {
        let g = QueryVariants::new(Some(3));
        for i in 0..3 {
            assert!(g.admit(&format!("http://a.test/list?page={i}")));
        }
        assert!(!g.admit("http://a.test/list?page=3"), "a fourth variant");
        assert!(g.admit("http://a.test/list?page=1"), "one admitted before");
        assert!(g.admit("http://a.test/list"), "no query");
        assert!(g.admit("http://a.test/other?page=9"), "another path");
        assert!(g.admit("http://b.test/list?page=9"), "another host");
        let off = QueryVariants::new(None);
        assert!((0..10_000).all(|i| off.admit(&format!("http://a.test/list?page={i}"))));
    }

    #[test]
    fn many_single_variant_paths_are_forgotten_but_a_trap_is_not() {
        let g = QueryVariants::new(Some(2));
        assert!(g.admit("http://a.test/trap?x=1"));
        assert!(g.admit("http://a.test/trap?x=2"));
        for i in 0..(MAX_PATHS + 10) {
            assert!(g.admit(&format!("http://a.test/p{i}?print=1")));
        }
        assert!(g.paths.lock().unwrap().len() <= MAX_PATHS, "bounded");
        assert!(!g.admit("http://a.test/trap?x=3"), "the trap is still full");
    }
}
