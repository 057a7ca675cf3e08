//! The host-name index: `scheme://host[:port]` to [`HostId`], without a second copy of
//! the names.
//!
//! The host table already holds every name; a `HashMap<String, HostId>` beside it kept
//! each one twice (about 60 bytes a host with the map's own overhead, which a broad
//! crawl of 100,000 hosts felt). This index keeps a 64-bit hash of the name and the
//! host number, and a lookup compares the name in the table. Names whose hashes
//! collide (not expected in practice, but possible) go to a small map of their own,
//! so a lookup is always exact.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use crate::types::HostId;

/// Hash of a host name to its host number. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct HostNames {
    by_hash: HashMap<u64, u32>,
    /// Names whose hash another name already has.
    collided: HashMap<Box<str>, u32>,
}

/// A fixed hash (SipHash with zero keys): the same name gives the same hash in every
/// process. The maps' own buckets are still placed by a random seed.
fn hash(name: &str) -> u64 {
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
    h.write(name.as_bytes());
    h.finish()
}

impl HostNames {
    /// The host number of `name`; `key_of` gives the name of a host number.
    pub(crate) fn get<'a>(&self, name: &str, key_of: impl Fn(u32) -> Option<&'a str>) -> Option<HostId> {
        let id = *self.by_hash.get(&hash(name))?;
        if key_of(id) == Some(name) {
            return Some(HostId(id));
        }
        self.collided.get(name).map(|id| HostId(*id))
    }

    /// Adds a name that [`HostNames::get`] did not find.
    pub(crate) fn insert(&mut self, name: &str, id: HostId) {
        match self.by_hash.entry(hash(name)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id.0);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(name.into(), id.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_and_tells_colliding_ones_apart() {
        let names = ["http://a", "http://b:8080", "https://c.example"];
        let mut idx = HostNames::default();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(idx.get(n, |i| names.get(i as usize).copied()), None);
            idx.insert(n, HostId(i as u32));
        }
        for (i, n) in names.iter().enumerate() {
            assert_eq!(
                idx.get(n, |i| names.get(i as usize).copied()),
                Some(HostId(i as u32))
            );
        }
        assert_eq!(idx.get("http://d", |i| names.get(i as usize).copied()), None);
        // A collision, forced: a fourth name filed under the first one's hash.
        let mut all = names.to_vec();
        all.push("http://forced");
        idx.by_hash.insert(hash("http://forced"), 0);
        assert_eq!(idx.get("http://forced", |i| all.get(i as usize).copied()), None);
        idx.insert("http://forced", HostId(3));
        assert_eq!(idx.collided.len(), 1);
        assert_eq!(
            idx.get("http://forced", |i| all.get(i as usize).copied()),
            Some(HostId(3))
        );
        assert_eq!(
            idx.get("http://a", |i| all.get(i as usize).copied()),
            Some(HostId(0))
        );
    }
}
