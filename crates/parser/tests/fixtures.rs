//! Data-driven tests: each page in `data/html/` is parsed and compared with the
//! expected output beside it (`NAME.expected.json`) through one `check()` helper.
//!
//! To regenerate the expected files after an intended change, run with
//! `TRAWL_BLESS=1` and review the diff before committing it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trawl_parser::{LinkKind, Page, ParseOptions, Url, decode, parse_page};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Expected {
    charset: String,
    title: Option<String>,
    lang: Option<String>,
    description: Option<String>,
    base: Option<String>,
    noindex: bool,
    nofollow: bool,
    limits: [bool; 3],
    refused_links: u32,
    /// `KIND URL | anchor text` with ` | nofollow` when set.
    links: Vec<String>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/html")
}

fn kind(k: LinkKind) -> &'static str {
    match k {
        LinkKind::Anchor => "a",
        LinkKind::Area => "area",
        LinkKind::Next => "next",
        LinkKind::Prev => "prev",
        LinkKind::Alternate => "alternate",
        LinkKind::Canonical => "canonical",
        LinkKind::Iframe => "iframe",
        LinkKind::Frame => "frame",
        LinkKind::Refresh => "refresh",
    }
}

fn summarize(bytes: &[u8], content_type: Option<&str>, page: &Page) -> Expected {
    let charset = decode(
        bytes,
        content_type.and_then(trawl_parser::charset_from_content_type),
    )
    .encoding
    .name();
    Expected {
        charset: charset.to_string(),
        title: page.title.clone(),
        lang: page.lang.clone(),
        description: page.description.clone(),
        base: page.base.clone(),
        noindex: page.robots.noindex,
        nofollow: page.robots.nofollow,
        limits: [
            page.limits_hit.input,
            page.limits_hit.depth,
            page.limits_hit.links,
        ],
        refused_links: page.refused_links,
        links: page
            .links
            .iter()
            .map(|l| {
                let mut s = format!("{} {} | {}", kind(l.kind), l.url, l.text);
                if l.nofollow {
                    s.push_str(" | nofollow");
                }
                s
            })
            .collect(),
    }
}

/// Parses `data/html/NAME.html` as if fetched from `url` with `content_type`, and
/// compares the result with `data/html/NAME.expected.json`.
fn check(name: &str, url: &str, content_type: Option<&str>, x_robots_tag: Option<&str>) {
    let dir = data_dir();
    let bytes = std::fs::read(dir.join(format!("{name}.html"))).expect("fixture");
    let url = Url::parse(url).expect("fixture url");
    let page = parse_page(&bytes, content_type, &url, x_robots_tag, &ParseOptions::default());
    let got = summarize(&bytes, content_type, &page);
    let expected_path = dir.join(format!("{name}.expected.json"));
    if std::env::var_os("TRAWL_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        std::fs::write(&expected_path, text).expect("bless");
        return;
    }
    let text = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with TRAWL_BLESS=1 to create it",
            expected_path.display()
        )
    });
    let want: Expected = serde_json::from_str(&text).expect("expected json");
    assert_eq!(got, want, "{name} differs from {}", expected_path.display());
}

#[test]
fn news_front_page() {
    check(
        "news-front",
        "https://news.example/",
        Some("text/html; charset=utf-8"),
        None,
    );
}

#[test]
fn forum_thread_with_session_ids() {
    check(
        "forum-thread",
        "http://forum.example/thread.php?t=981&page=2",
        Some("text/html"),
        None,
    );
}

#[test]
fn docs_page_with_base() {
    check(
        "docs-base",
        "https://docs.example/docs/v2/index.html",
        Some("text/html"),
        None,
    );
}

#[test]
fn shift_jis_without_a_declared_charset() {
    check("sjis-undeclared", "http://jp.example/", Some("text/html"), None);
}

#[test]
fn windows_1251_that_claims_utf8() {
    check(
        "cp1251-claims-utf8",
        "http://ru.example/",
        Some("text/html; charset=utf-8"),
        None,
    );
}

#[test]
fn robots_meta_and_refresh() {
    check("robots-noindex", "http://a.example/old", None, None);
}

#[test]
fn x_robots_tag_header() {
    let bytes = b"<html><title>t</title><a href=/x>x</a></html>";
    let url = Url::parse("http://a.example/").expect("url");
    let page = parse_page(bytes, None, &url, Some("noindex"), &ParseOptions::default());
    assert!(page.robots.noindex && !page.robots.nofollow);
}

#[test]
fn mdbook_table_of_contents_in_noscript() {
    // A page of the Rust book as rustup installs it (mdBook): its whole table of
    // contents is `<noscript><iframe src="toc.html">`, markup to a client without
    // scripts.
    let url = "http://127.0.0.1:8000/book/ch01-01-installation.html";
    check("mdbook-noscript", url, Some("text/html"), None);
    let bytes = std::fs::read(data_dir().join("mdbook-noscript.html")).expect("fixture");
    let page = parse_page(
        &bytes,
        None,
        &Url::parse(url).expect("url"),
        None,
        &ParseOptions::default(),
    );
    assert!(
        page.links
            .iter()
            .any(|l| l.url == "http://127.0.0.1:8000/book/toc.html" && l.kind == LinkKind::Iframe),
        "{:?}",
        page.links.iter().map(|l| &l.url).collect::<Vec<_>>()
    );
}

#[test]
fn frames() {
    check("frames", "http://a.example/index.html", None, None);
}

#[test]
fn nesting_16000_deep_is_cut_quickly() {
    check("nested", "http://a.example/", None, None);
}

#[test]
fn malformed_html() {
    check(
        "malformed",
        "http://a.example/bad/malformed",
        Some("text/html"),
        None,
    );
}

#[test]
fn many_links_are_capped_after_dedup() {
    let mut html = String::from("<html><body>");
    for k in 0..100_000 {
        html.push_str(&format!("<a href=\"/t/{}\">{k}</a>", k % 50_000));
    }
    let url = Url::parse("http://a.example/").expect("url");
    let page = parse_page(
        html.as_bytes(),
        None,
        &url,
        None,
        &ParseOptions::default().max_links(1_000),
    );
    assert_eq!(page.links.len(), 1_000);
    assert!(page.limits_hit.links);
    assert_eq!(
        page.limits_hit.links_dropped, 49_000,
        "distinct links past the cap"
    );
    assert_eq!(page.links[999].url, "http://a.example/t/999");
}

#[test]
fn visible_text_skips_scripts_and_is_capped() {
    let html = b"<html><head><title>T</title><style>p{}</style></head><body><script>var x = 1;</script>\
                 <p>Hello   <b>brave</b>\n new</p><p>world</p></body></html>";
    let url = Url::parse("http://a.example/").expect("url");
    let page = parse_page(html, None, &url, None, &ParseOptions::default().max_text(100));
    assert_eq!(page.text.as_deref(), Some("Hello brave new world"));
    let short = parse_page(html, None, &url, None, &ParseOptions::default().max_text(8));
    assert!(
        short.text.as_deref().is_some_and(|t| t.chars().count() <= 9),
        "{:?}",
        short.text
    );
}

#[test]
fn input_size_cap() {
    let html = format!(
        "<html><body>{}<a href=/late>late</a></body></html>",
        "x".repeat(10_000)
    );
    let url = Url::parse("http://a.example/").expect("url");
    let page = parse_page(
        html.as_bytes(),
        None,
        &url,
        None,
        &ParseOptions::default().max_input_bytes(1_000),
    );
    assert!(page.limits_hit.input);
    assert!(page.links.is_empty());
}
