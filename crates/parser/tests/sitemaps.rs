//! Sitemap fixtures from `data/sitemaps/`, plainly and gzipped.

use std::io::Write;
use std::path::Path;

use trawl_parser::{SitemapKind, SitemapLimits, parse_sitemap};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/sitemaps")
            .join(name),
    )
    .expect("fixture")
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn urlset_with_extensions_entities_and_cdata() {
    let want = [
        "https://shop.example/",
        "https://shop.example/catalog?item=12&desc=vacation_hawaii",
        "https://shop.example/café",
        "https://shop.example/cdata?a=1&b=2",
    ];
    for bytes in [fixture("urlset.xml"), gzip(&fixture("urlset.xml"))] {
        let s = parse_sitemap(&bytes, &SitemapLimits::default()).expect("parses");
        assert_eq!(s.kind, SitemapKind::UrlSet);
        assert_eq!(s.locs, want, "image:loc is not a page loc");
        assert!(!s.truncated);
    }
}

#[test]
fn index_and_text_and_broken() {
    let idx = parse_sitemap(&fixture("index.xml"), &SitemapLimits::default()).expect("parses");
    assert_eq!(idx.kind, SitemapKind::Index);
    assert_eq!(idx.locs.len(), 2);
    let txt = parse_sitemap(&fixture("list.txt"), &SitemapLimits::default()).expect("parses");
    assert_eq!((txt.kind, txt.locs.len()), (SitemapKind::Text, 3));
    assert_eq!(txt.locs[2], "https://shop.example/c");
    let broken = parse_sitemap(&fixture("broken.xml"), &SitemapLimits::default()).expect("partial");
    assert_eq!(
        broken.locs,
        ["https://shop.example/ok", "https://shop.example/also-ok"]
    );
}
