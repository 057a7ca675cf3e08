//! Fuzzes the sitemap reader (XML, gzip and plain text). Nothing may panic and the
//! limits hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_parser::{SitemapLimits, parse_sitemap};

fuzz_target!(|data: &[u8]| {
    let limits = SitemapLimits::default();
    if let Ok(s) = parse_sitemap(data, &limits) {
        assert!(s.entries.len() <= limits.max_urls);
        for l in s.entries.iter().filter_map(|e| e.lastmod) {
            assert!(l.earliest <= l.latest);
        }
    }
});
