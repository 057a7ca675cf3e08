//! Fuzzes the bytes-to-links path: decode, nesting pre-scan, scraper, extraction and
//! canonicalization. Nothing may panic, and every link must be a canonical http(s) URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl_parser::{ParseOptions, Url, canonicalize, parse_page};

fuzz_target!(|data: &[u8]| {
    let url = Url::parse("http://fuzz.example/dir/page.html").expect("url");
    let opts = ParseOptions::default();
    let page = parse_page(data, Some("text/html"), &url, None, &opts);
    for link in &page.links {
        assert!(link.url.starts_with("http://") || link.url.starts_with("https://"));
        assert_eq!(canonicalize(&link.url, None, &opts.canon).as_deref(), Ok(link.url.as_str()));
    }
});
