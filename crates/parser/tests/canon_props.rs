//! Property tests of canonicalization: it never panics, never returns a URL over the
//! length cap, and is idempotent.

use proptest::prelude::*;
use trawl_parser::{CanonOptions, Url, canonicalize};

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._~-]{0,12}",
        "%[0-9a-fA-F]{2}",
        Just("%zz".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just(";jsessionid=X1".to_string()),
        "[ -~]{0,6}",
        "\\PC{0,4}",
    ]
}

fn url_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("http://"),
        Just("HTTPS://"),
        Just("ftp://"),
        Just(""),
        Just("//"),
        Just("mailto:")
    ];
    let host = prop_oneof![
        Just("example.com".to_string()),
        Just("EXAMPLE.com.".to_string()),
        Just("bücher.example".to_string()),
        Just("127.0.0.1:8080".to_string()),
        Just("[::1]".to_string()),
        Just("user:pw@example.com".to_string()),
        "[a-z]{1,8}\\.[a-z]{2,3}",
    ];
    let path = prop::collection::vec(piece(), 0..8).prop_map(|v| v.join("/"));
    let query = prop::collection::vec(
        (
            prop_oneof![
                Just("utm_source".to_string()),
                Just("PHPSESSID".to_string()),
                "[a-z]{1,5}"
            ],
            piece(),
        ),
        0..5,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(k, val)| format!("{k}={val}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    let frag = prop_oneof![Just(String::new()), "#[ -~]{0,8}"];
    (scheme, host, path, prop::option::of(query), frag).prop_map(|(s, h, p, q, f)| {
        let q = q.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{s}{h}/{p}{q}{f}")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn canonical_urls_are_stable_and_capped(raw in url_like()) {
        let opts = CanonOptions::default().max_len(200);
        let base = Url::parse("http://base.example/dir/page").expect("base");
        for b in [None, Some(&base)] {
            if let Ok(c) = canonicalize(&raw, b, &opts) {
                prop_assert!(c.len() <= 200, "{} is {} bytes", c, c.len());
                prop_assert_eq!(canonicalize(&c, None, &opts), Ok(c.clone()), "not idempotent for {}", raw);
                prop_assert!(c.starts_with("http://") || c.starts_with("https://"));
                prop_assert!(!c.contains('#'));
            }
        }
    }

    #[test]
    fn arbitrary_input_never_panics(raw in "\\PC{0,300}") {
        let base = Url::parse("http://base.example/").expect("base");
        let _ = canonicalize(&raw, Some(&base), &CanonOptions::default());
        let _ = canonicalize(&raw, None, &CanonOptions::default());
    }

    #[test]
    fn arbitrary_html_never_panics(html in "(<[a-z]{1,6}( [a-z]{1,5}=\"[^\"]{0,20}\")?>|</[a-z]{1,6}>|[^<]{0,20}|<a href=\"[ -~]{0,30}\">){0,60}") {
        let url = Url::parse("http://base.example/").expect("base");
        let page = trawl_parser::parse_html(&html, &url, None, &trawl_parser::ParseOptions::default());
        prop_assert!(page.links.len() <= 60);
    }
}
