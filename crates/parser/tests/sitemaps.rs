//! Sitemap fixtures from `data/sitemaps/`, plainly and gzipped.

use std::io::Write;
use std::path::Path;

use trawl_parser::{Lastmod, SitemapKind, SitemapLimits, parse_sitemap};

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
        assert_eq!(s.locs().collect::<Vec<_>>(), want, "image:loc is not a page loc");
        assert!(!s.truncated);
        let lastmods: Vec<_> = s.entries.iter().map(|e| e.lastmod).collect();
        assert_eq!(
            lastmods,
            [
                Lastmod::parse("2026-11-01"),
                Lastmod::parse("2026-11-02T08:15:00Z"),
                None,
                None
            ],
            "the third has a lastmod that is not a date"
        );
    }
}

#[test]
fn index_and_text_and_broken() {
    let idx = parse_sitemap(&fixture("index.xml"), &SitemapLimits::default()).expect("parses");
    assert_eq!(idx.kind, SitemapKind::Index);
    assert_eq!(idx.entries.len(), 2);
    assert_eq!(idx.entries[0].lastmod, Lastmod::parse("2026-11-20"));
    let txt = parse_sitemap(&fixture("list.txt"), &SitemapLimits::default()).expect("parses");
    assert_eq!((txt.kind, txt.entries.len()), (SitemapKind::Text, 3));
    assert_eq!(txt.entries[2].loc, "https://shop.example/c");
    assert!(txt.entries.iter().all(|e| e.lastmod.is_none()));
    let broken = parse_sitemap(&fixture("broken.xml"), &SitemapLimits::default()).expect("partial");
    assert_eq!(
        broken.locs().collect::<Vec<_>>(),
        ["https://shop.example/ok", "https://shop.example/also-ok"]
    );
}
