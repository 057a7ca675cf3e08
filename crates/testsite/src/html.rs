//! Rendering of synthetic pages as realistic HTML of 8 to 20 KB.
//!
//! Text comes from a small pool of paragraphs built once per process, so rendering a page
//! is a handful of string copies: the server must never be the bottleneck of a benchmark.

use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::site::{Site, mix};

const WORDS: &[&str] = &[
    "crawler", "frontier", "harbour", "lantern", "meadow", "quarry", "ribbon", "saddle", "thistle", "velvet",
    "anchor", "bramble", "cobalt", "drizzle", "ember", "fathom", "granite", "hollow", "inlet", "juniper",
    "kestrel", "lattice", "marrow", "nettle", "orchard", "pebble", "quill", "russet", "spindle", "tundra",
    "umber", "willow", "the", "of", "and", "a", "to", "in", "is", "that", "for", "with", "as", "on", "by",
    "river", "station", "archive", "letter", "market", "signal", "winter", "garden",
];

/// Paragraphs of 300 to 700 characters, made once.
fn pool() -> &'static [String] {
    static POOL: OnceLock<Vec<String>> = OnceLock::new();
    POOL.get_or_init(|| {
        (0..64u64)
            .map(|p| {
                let target = 300 + (mix(p) % 400) as usize;
                let mut s = String::with_capacity(target + 16);
                let mut k = 0u64;
                while s.len() < target {
                    let w = WORDS[(mix(p * 1_000 + k) % WORDS.len() as u64) as usize];
                    if s.is_empty() {
                        let mut c = w.chars();
                        if let Some(f) = c.next() {
                            s.extend(f.to_uppercase());
                            s.push_str(c.as_str());
                        }
                    } else {
                        s.push(' ');
                        s.push_str(w);
                    }
                    k += 1;
                }
                s.push('.');
                s
            })
            .collect()
    })
}

/// Escapes the few characters that matter inside a double-quoted attribute.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;")
}

/// The HTML of regular page `i`. `bad_index` adds a link to the adversarial index.
pub(crate) fn render_page(site: &Site, i: u64, bad_index: bool) -> String {
    let pool = pool();
    let target = 8_000 + (mix(i ^ 0xA11CE) % 12_000) as usize;
    let links = site.links(i);
    let title_word = WORDS[(mix(i) % 32) as usize];
    let mut out = String::with_capacity(target + 2_048);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Page {i}: the {title_word} collection</title>\n\
         <meta name=\"description\" content=\"Synthetic page {i} of the trawl test site.\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"stylesheet\" href=\"/static/site.css\">\n\
         <style>.brand{{background:url(/static/brand.png) no-repeat}}</style>\n</head>\n<body>\n\
         <header><nav class=\"top\"><img src=\"/static/logo.png\" alt=\"\"><span class=\"brand\">trawl testsite</span></nav></header>\n\
         <main>\n<article id=\"page-{i}\">\n<h1>The {title_word} collection, part {i}</h1>\n"
    );
    if bad_index && i < site.hosts() as u64 {
        out.push_str("<p><a href=\"/bad/\">Hostile endpoints</a></p>\n");
    }
    // Spread the links through the text in small lists, as real pages do.
    let mut p = 0u64;
    for chunk in links.chunks(5) {
        let para = &pool[(mix(i * 131 + p) % pool.len() as u64) as usize];
        let _ = write!(
            out,
            "<section>\n<h2>Section {p}</h2>\n<p>{para}</p>\n<ul class=\"links\">\n"
        );
        for (k, link) in chunk.iter().enumerate() {
            let word = WORDS[(mix(i + p * 7 + k as u64) % WORDS.len() as u64) as usize];
            let _ = writeln!(
                out,
                "<li><a href=\"{}\" class=\"item\">{word} {}</a></li>",
                attr(&link.href),
                p * 5 + k as u64
            );
        }
        out.push_str("</ul>\n</section>\n");
        p += 1;
    }
    let broken = site.broken_links(i);
    if !broken.is_empty() {
        out.push_str("<section class=\"elsewhere\">\n<ul>\n");
        for b in broken {
            let _ = writeln!(out, "<li><a href=\"{}\">{}</a></li>", attr(&b.href), b.anchor);
        }
        out.push_str("</ul>\n</section>\n");
    }
    // Pad with prose up to the target size.
    while out.len() < target {
        let para = &pool[(mix(i * 131 + p) % pool.len() as u64) as usize];
        let _ = writeln!(out, "<p class=\"prose\">{para}</p>");
        p += 1;
    }
    let _ = write!(
        out,
        "</article>\n</main>\n<footer><p>Generated page {i}. Nothing here is real.</p></footer>\n\
         </body>\n</html>\n"
    );
    out
}

/// The HTML of private page `n`: robots.txt disallows it, so a polite crawler never
/// sees this text.
pub(crate) fn render_private(n: u64) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>Private {n}</title></head><body>\
         <p>This page is disallowed by robots.txt.</p><a href=\"/private/{}\">next</a>\
         <a href=\"/\">home</a></body></html>\n",
        n + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_8_to_20_kb_and_carry_their_links() {
        let bases = vec!["http://127.0.0.1:1".to_string(), "http://127.0.0.1:2".to_string()];
        let site = Site::new(3, 500, bases);
        for i in [0, 1, 2, 77, 499] {
            let html = render_page(&site, i, false);
            assert!(
                (8_000..=22_000).contains(&html.len()),
                "page {i}: {} bytes",
                html.len()
            );
            for link in site.links(i) {
                assert!(html.contains(&format!("href=\"{}\"", attr(&link.href))));
            }
        }
    }
}
