//! The synthetic site as pure data: which pages exist, what each page links to, and the
//! ground truth a test compares a crawl against.
//!
//! Nothing here does I/O. The same [`Site`] value drives the HTTP server and answers the
//! tests' questions, so the two can never disagree. Every page is derived on demand from
//! `(seed, page number)`, so a site of a million pages costs no memory until a test asks
//! for a reachability walk.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt::Write as _;

/// How many tree children each page links to. Together with the roots' links to one
/// another this makes every page reachable from the root of host 0.
pub(crate) const BRANCHING: u64 = 8;

/// One private (robots-disallowed) page exists per this many regular pages.
const PRIVATE_EVERY: u64 = 50;

/// URLs per chunk of the sitemap index. Well under the protocol's 50,000.
pub(crate) const SITEMAP_CHUNK: u64 = 10_000;

/// Hard cap of `/sitemap.xml`, the protocol limit.
pub(crate) const SITEMAP_MAX: u64 = 50_000;

/// The splitmix64 finaliser: a fast, well-mixed, deterministic hash of one word.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The name of virtual host `k`: `h{k}.localhost`.
pub fn vhost_name(k: usize) -> String {
    format!("h{k}.localhost")
}

/// The virtual host a `Host` header names (`h{k}.localhost`, with or without a port,
/// any case), if it is one of `hosts`.
pub(crate) fn vhost_of(host_header: &str, hosts: usize) -> Option<usize> {
    let name = host_header.rsplit_once(':').map_or(host_header, |(n, _)| n);
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let k: usize = name.strip_prefix('h')?.strip_suffix(".localhost")?.parse().ok()?;
    // `h01` is not `h1`: one spelling per host.
    (k < hosts && name == format!("h{k}.localhost")).then_some(k)
}

/// Where a link on a synthetic page points.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A regular page of the site, by page number.
    Page(u64),
    /// A page under `/private/`, which robots.txt disallows: `(host index, number)`.
    Private(usize, u64),
    /// A URL on a host outside the site (a `.invalid` name that never resolves).
    Offsite(String),
}

/// One `<a href>` as written on a page, and where it really leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteLink {
    /// The attribute value exactly as it appears in the HTML.
    pub href: String,
    /// The resource the href resolves to after canonicalization.
    pub target: Target,
}

/// The deterministic description of a synthetic site.
///
/// Page `i` lives on host `i % hosts`. Pages `0..hosts` are the hosts' root pages,
/// served at `/`; every other page is served at `/page/{i}`.
#[derive(Debug, Clone)]
pub struct Site {
    seed: u64,
    pages: u64,
    bases: Vec<String>,
    /// Virtual hosts ([`Site::virtual_hosts`]): a broad crawl's shape, small sites
    /// that mostly link within themselves.
    vhosts: bool,
    /// Every page sends validators ([`Site::with_validators_on_every_page`]).
    pub(crate) all_validators: bool,
    /// Some pages link to broken URLs ([`Site::with_broken_links`]).
    pub(crate) broken: bool,
}

/// Links on a virtual host's page besides the tree links: 8 to 16, most of them to
/// pages of the same host.
const VHOST_LINKS: u64 = 8;

/// One in this many of a virtual host's extra links goes to another host.
const VHOST_CROSS_EVERY: u64 = 8;

impl Site {
    /// Describes a site of `pages` pages spread over the hosts whose base URLs are given
    /// (`http://127.0.0.1:PORT`, no trailing slash).
    ///
    /// # Panics
    /// If `bases` is empty or `pages` is smaller than the number of hosts.
    pub fn new(seed: u64, pages: u64, bases: Vec<String>) -> Site {
        assert!(!bases.is_empty(), "a site needs at least one host");
        assert!(
            pages >= bases.len() as u64,
            "a site needs one page per host at least"
        );
        Site {
            seed,
            pages,
            bases,
            vhosts: false,
            all_validators: false,
            broken: false,
        }
    }

    /// Describes `hosts` virtual hosts on one port of loopback, `h0.localhost` to
    /// `h{hosts-1}.localhost` (names that resolve to loopback by RFC 6761), sharing
    /// `pages` pages as [`Site::new`] does (page `i` on host `i % hosts`). The link
    /// structure is a broad crawl's: the root of host `k` links to the roots of hosts
    /// `8k+1` to `8k+8` (so every host is reachable from `h0`, in about log8(hosts)
    /// hops), every page to its eight tree children, and to 8 to 16 more pages, seven
    /// in eight of them on its own host.
    ///
    /// # Panics
    /// If `hosts` is 0 or `pages` is smaller than `hosts`.
    pub fn virtual_hosts(seed: u64, pages: u64, hosts: usize, port: u16) -> Site {
        let bases = (0..hosts)
            .map(|k| format!("http://{}:{port}", vhost_name(k)))
            .collect();
        Site {
            vhosts: true,
            ..Site::new(seed, pages, bases)
        }
    }

    /// Whether the hosts are virtual hosts on one port ([`Site::virtual_hosts`]).
    pub fn is_virtual(&self) -> bool {
        self.vhosts
    }

    /// The seed everything is derived from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The number of regular pages.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The base URLs of the hosts, in host order.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    /// The number of hosts.
    pub fn hosts(&self) -> usize {
        self.bases.len()
    }

    /// The number of private pages per host namespace.
    pub fn private_pages(&self) -> u64 {
        (self.pages / PRIVATE_EVERY).max(1)
    }

    fn h(&self, a: u64, b: u64) -> u64 {
        mix(self.seed ^ mix(a ^ mix(b)))
    }

    /// The host index that serves page `i`.
    pub fn host_of(&self, i: u64) -> usize {
        (i % self.hosts() as u64) as usize
    }

    /// The path of page `i` on its host.
    pub fn page_path(&self, i: u64) -> String {
        if i < self.hosts() as u64 {
            "/".to_string()
        } else {
            format!("/page/{i}")
        }
    }

    /// The canonical absolute URL of page `i`.
    pub fn page_url(&self, i: u64) -> String {
        format!("{}{}", self.bases[self.host_of(i)], self.page_path(i))
    }

    /// The canonical absolute URL of private page `n` on host `host`.
    pub fn private_url(&self, host: usize, n: u64) -> String {
        format!("{}/private/{n}", self.bases[host])
    }

    /// The root URL of host `host`.
    pub fn root_url(&self, host: usize) -> String {
        format!("{}/", self.bases[host])
    }

    /// The page number a request path names on host `host`, if it is a regular page.
    pub fn page_for_path(&self, host: usize, path: &str) -> Option<u64> {
        if path == "/" {
            return Some(host as u64);
        }
        let i: u64 = path.strip_prefix("/page/")?.parse().ok()?;
        (i >= self.hosts() as u64 && i < self.pages && self.host_of(i) == host).then_some(i)
    }

    /// The tree children of page `i` (the links that guarantee reachability).
    fn children(&self, i: u64) -> impl Iterator<Item = u64> {
        let first = (self.hosts() as u64).saturating_add(i.saturating_mul(BRANCHING));
        let end = first.saturating_add(BRANCHING).min(self.pages);
        first..end.max(first)
    }

    /// The links on page `i`, in document order.
    pub fn links(&self, i: u64) -> Vec<SiteLink> {
        let mut targets: Vec<Target> = Vec::with_capacity(40);
        let hosts = self.hosts() as u64;
        if self.vhosts {
            // A tree over the roots, so that no page links to every host.
            if i < hosts {
                let first = i.saturating_mul(BRANCHING).saturating_add(1);
                targets.extend((first..first.saturating_add(BRANCHING).min(hosts)).map(Target::Page));
            }
            targets.extend(self.children(i).map(Target::Page));
            // The pages of this host are `host, host + hosts, host + 2 * hosts, ...`.
            let host = i % hosts;
            let on_host = (self.pages - host).div_ceil(hosts);
            for k in 0..VHOST_LINKS + self.h(i, 1) % (VHOST_LINKS + 1) {
                let r = self.h(i, 100 + k);
                targets.push(Target::Page(if r.is_multiple_of(VHOST_CROSS_EVERY) {
                    (r / VHOST_CROSS_EVERY) % self.pages
                } else {
                    host + hosts * ((r / VHOST_CROSS_EVERY) % on_host)
                }));
            }
        } else {
            if i == 0 {
                targets.extend((1..hosts).map(Target::Page));
            }
            targets.extend(self.children(i).map(Target::Page));
            let total = 20 + self.h(i, 1) % 21;
            let mut k = 0u64;
            while (targets.len() as u64) < total {
                targets.push(Target::Page(self.h(i, 100 + k) % self.pages));
                k += 1;
            }
        }
        if self.h(i, 2).is_multiple_of(4) {
            let n = self.h(i, 3) % self.private_pages();
            targets.push(Target::Private(self.host_of(i), n));
        }
        if self.h(i, 4).is_multiple_of(10) {
            let n = self.h(i, 5) % 7;
            targets.push(Target::Offsite(format!(
                "http://offsite{n}.example.invalid/from/{i}"
            )));
        }
        // Interleave the tree links with the random ones so that no crawler sees only
        // "the first N links" as the tree.
        let len = targets.len() as u64;
        for a in (1..len).rev() {
            let b = self.h(i, 1_000 + a) % (a + 1);
            targets.swap(a as usize, b as usize);
        }
        targets
            .into_iter()
            .enumerate()
            .map(|(k, target)| SiteLink {
                href: self.href(i, k as u64, &target),
                target,
            })
            .collect()
    }

    /// Writes `target` the way page `i` spells its `k`th link: relative, root-relative,
    /// absolute, with a fragment, or as a variant that canonicalizes to the same URL.
    fn href(&self, i: u64, k: u64, target: &Target) -> String {
        let here = self.host_of(i);
        let variant = self.h(i, 10_000 + k) % 10;
        match target {
            Target::Offsite(url) => url.clone(),
            Target::Private(_, n) => format!("/private/{n}"),
            Target::Page(j) => {
                let (host, path) = (self.host_of(*j), self.page_path(*j));
                if host != here {
                    let base = &self.bases[host];
                    return match variant {
                        0..=5 => format!("{base}{path}"),
                        6 | 7 => format!("{}{path}", base.replacen("http://", "HTTP://", 1)),
                        _ => format!("{base}{path}#from-{i}"),
                    };
                }
                if path == "/" {
                    return match variant {
                        0..=6 => "/".to_string(),
                        _ => format!("{}/", self.bases[host]),
                    };
                }
                let id = path.trim_start_matches("/page/");
                match variant {
                    0..=2 => path,
                    // Relative to this page's own directory.
                    3 | 4 if i >= self.hosts() as u64 => id.to_string(),
                    3 | 4 => format!("page/{id}"),
                    5 => format!("{}{path}", self.bases[host]),
                    6 => format!("{path}#part-{k}"),
                    7 => format!("{path}?utm_source=trawl-test"),
                    // Percent-encode the first digit: an unreserved character.
                    8 => {
                        let mut s = String::from("/page/");
                        let mut chars = id.chars();
                        if let Some(c) = chars.next() {
                            let _ = write!(s, "%{:02X}", c as u32);
                        }
                        s.push_str(chars.as_str());
                        s
                    }
                    _ => format!("{path}?"),
                }
            }
        }
    }

    /// The HTML the server sends for regular page `i` (without the link to `/bad/`), for
    /// benchmarks and tests that need pages without a server.
    pub fn html(&self, i: u64) -> String {
        crate::html::render_page(self, i, false)
    }

    /// The canonical URL of a link target.
    pub fn target_url(&self, target: &Target) -> String {
        match target {
            Target::Page(j) => self.page_url(*j),
            Target::Private(h, n) => self.private_url(*h, *n),
            Target::Offsite(u) => u.clone(),
        }
    }

    /// Walks the site breadth-first from `seeds` (page numbers), following only links to
    /// regular pages on hosts for which `in_scope(host index)` holds, and never entering
    /// a robots-disallowed page. This is what a polite crawler must find.
    pub fn crawl_truth(&self, seeds: &[u64], in_scope: &dyn Fn(usize) -> bool) -> CrawlTruth {
        let mut depth: BTreeMap<u64, u32> = BTreeMap::new();
        let mut disallowed = HashSet::new();
        let mut out_of_scope = HashSet::new();
        let mut queue = VecDeque::new();
        for &s in seeds {
            if in_scope(self.host_of(s)) && !depth.contains_key(&s) {
                depth.insert(s, 0);
                queue.push_back(s);
            }
        }
        while let Some(i) = queue.pop_front() {
            let d = depth[&i];
            for link in self.links(i) {
                match link.target {
                    Target::Page(j) if in_scope(self.host_of(j)) => {
                        if let std::collections::btree_map::Entry::Vacant(e) = depth.entry(j) {
                            e.insert(d + 1);
                            queue.push_back(j);
                        }
                    }
                    Target::Private(h, n) => {
                        disallowed.insert(self.private_url(h, n));
                    }
                    other => {
                        out_of_scope.insert(self.target_url(&other));
                    }
                }
            }
        }
        CrawlTruth {
            pages: depth.into_iter().map(|(i, d)| (self.page_url(i), d)).collect(),
            disallowed,
            out_of_scope,
        }
    }
}

/// What a correct crawl of a [`Site`] finds, as computed by [`Site::crawl_truth`].
#[derive(Debug, Clone)]
pub struct CrawlTruth {
    /// Every reachable in-scope page's canonical URL, with its depth (link hops from the
    /// nearest seed).
    pub pages: BTreeMap<String, u32>,
    /// Robots-disallowed URLs linked from reachable pages. None may be requested.
    pub disallowed: HashSet<String>,
    /// Links from reachable pages that leave the scope (other hosts of the site that
    /// are not in scope, and off-site hosts). None may be requested.
    pub out_of_scope: HashSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(pages: u64, hosts: usize) -> Site {
        let bases = (0..hosts)
            .map(|h| format!("http://127.0.0.1:{}", 9000 + h))
            .collect();
        Site::new(7, pages, bases)
    }

    #[test]
    fn links_are_deterministic_and_sized() {
        let (a, b) = (site(1_000, 3), site(1_000, 3));
        for i in [0, 1, 5, 500, 999] {
            let la = a.links(i);
            assert_eq!(la, b.links(i));
            assert!((20..=43).contains(&la.len()), "page {i} has {} links", la.len());
        }
        let other = Site::new(8, 1_000, a.bases().to_vec());
        assert_ne!(a.links(500), other.links(500), "the seed changes the site");
    }

    #[test]
    fn every_page_is_reachable_from_the_first_root() {
        let s = site(2_000, 3);
        let truth = s.crawl_truth(&[0], &|_| true);
        assert_eq!(truth.pages.len(), 2_000);
        assert!(!truth.disallowed.is_empty());
        assert!(truth.out_of_scope.iter().all(|u| u.contains(".invalid")));
    }

    #[test]
    fn scope_limits_the_walk() {
        let s = site(2_000, 3);
        let truth = s.crawl_truth(&[0], &|h| h == 0);
        assert!(
            truth
                .pages
                .keys()
                .all(|u| u.starts_with("http://127.0.0.1:9000/"))
        );
        assert!(truth.out_of_scope.iter().any(|u| u.contains(":9001/")));
    }

    #[test]
    fn every_virtual_host_is_reachable_from_h0_without_a_page_linking_to_all() {
        let s = Site::virtual_hosts(3, 4_000, 1_000, 8080);
        assert_eq!(s.root_url(5), "http://h5.localhost:8080/");
        let truth = s.crawl_truth(&[0], &|_| true);
        assert_eq!(truth.pages.len(), 4_000);
        let mut same_host = 0;
        let mut links = 0;
        for i in 0..4_000 {
            let l = s.links(i);
            assert!(l.len() <= 40, "page {i} has {} links", l.len());
            for link in l {
                if let Target::Page(j) = link.target {
                    links += 1;
                    same_host += usize::from(s.host_of(j) == s.host_of(i));
                }
            }
        }
        assert!(
            same_host * 4 > links,
            "{same_host} of {links} links stay on their host"
        );
        // The deepest host is a few hops down the tree of roots.
        assert!(
            truth.pages.values().all(|d| *d <= 12),
            "{:?}",
            truth.pages.values().max()
        );
    }

    #[test]
    fn virtual_host_names_have_one_spelling() {
        assert_eq!(vhost_of("h7.localhost:8080", 10), Some(7));
        assert_eq!(vhost_of("H7.LOCALHOST", 10), Some(7));
        assert_eq!(vhost_of("h07.localhost", 10), None);
        assert_eq!(vhost_of("h10.localhost", 10), None);
        assert_eq!(vhost_of("localhost", 10), None);
        assert_eq!(vhost_of("h1.example.com", 10), None);
    }

    #[test]
    fn paths_round_trip() {
        let s = site(100, 4);
        for i in 0..100 {
            assert_eq!(s.page_for_path(s.host_of(i), &s.page_path(i)), Some(i));
        }
        assert_eq!(s.page_for_path(0, "/page/1"), None, "page 1 is on host 1");
        assert_eq!(s.page_for_path(0, "/page/100"), None);
    }
}
