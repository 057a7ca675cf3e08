//! Parser throughput on one core: the pages of the testsite synthetic site (8–20 KB,
//! 20–40 links each) through decode, scraper parse, link extraction and
//! canonicalization. Reports MB/s and pages/s, and the split between scraper's DOM
//! build and the rest.
//!
//! ```sh
//! cargo bench -p trawl-parser --bench parse                 # 2,000 pages x 5 runs
//! cargo bench -p trawl-parser --bench parse -- --pages 5000 --runs 3
//! ```

use std::time::Instant;

use trawl_parser::{ParseOptions, Url, decode, parse_page};
use trawl_testsite::Site;

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n = arg("--pages").unwrap_or(2_000);
    let runs = arg("--runs").unwrap_or(5);
    let site = Site::new(
        1,
        n.max(10),
        vec![
            "http://127.0.0.1:8080".to_string(),
            "http://127.0.0.1:8081".to_string(),
        ],
    );
    let pages: Vec<(Url, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                Url::parse(&site.page_url(i)).expect("url"),
                site.html(i).into_bytes(),
            )
        })
        .collect();
    let bytes: usize = pages.iter().map(|(_, b)| b.len()).sum();
    let opts = ParseOptions::default();
    println!(
        "{n} testsite pages, {:.1} MB, mean {:.1} KB",
        bytes as f64 / 1e6,
        bytes as f64 / n as f64 / 1e3
    );

    let mut full = Vec::new();
    let mut dom = Vec::new();
    let mut dec = Vec::new();
    let mut links = 0usize;
    for _ in 0..runs {
        let t = Instant::now();
        links = 0;
        for (url, body) in &pages {
            let page = parse_page(body, Some("text/html; charset=utf-8"), url, None, &opts);
            links += page.links.len();
        }
        full.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        for (_, body) in &pages {
            std::hint::black_box(decode(body, Some("utf-8")));
        }
        dec.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        for (_, body) in &pages {
            let text = std::str::from_utf8(body).expect("utf-8");
            std::hint::black_box(scraper::Html::parse_document(text));
        }
        dom.push(t.elapsed().as_secs_f64());
    }
    let (full, dom, dec) = (median(full), median(dom), median(dec));
    println!(
        "full parse_page: median {:.1} MB/s, {:.0} pages/s, {:.3} ms/page ({links} links kept)",
        bytes as f64 / full / 1e6,
        n as f64 / full,
        full * 1e3 / n as f64
    );
    // The hostile case: 16,000 nested <ul><li>, cut by the pre-scan before html5ever.
    let nested = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/html/nested.html"
    ))
    .expect("fixture");
    let url = Url::parse("http://a.example/").expect("url");
    let times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(parse_page(&nested, None, &url, None, &opts));
            t.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "16,000-deep nesting ({} KB): median {:.2} ms",
        nested.len() / 1024,
        median(times) * 1e3
    );
    println!(
        "split per page: decode {:.3} ms, scraper DOM build {:.3} ms ({:.0}%), extraction + canonicalization {:.3} ms",
        dec * 1e3 / n as f64,
        dom * 1e3 / n as f64,
        dom / full * 100.0,
        (full - dom - dec).max(0.0) * 1e3 / n as f64
    );
}
