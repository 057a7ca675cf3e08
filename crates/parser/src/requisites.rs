//! Page requisites: what a page needs to be shown (images, stylesheets, scripts, and
//! the `url()` references of its inline CSS), collected when
//! [`ParseOptions::requisites`](crate::ParseOptions::requisites) asks, so that an
//! archived page replays with its assets.

/// The `url(...)` references in CSS text, in order: quoted or not, with CSS escapes
/// left as they are. `@import "x.css"` counts too. `data:` URLs are left out.
pub fn css_urls(css: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = css.as_bytes();
    let mut i = 0;
    while i + 4 <= b.len() {
        let rest = &css[i..];
        let (skip, found) = if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case("url(") {
            let inner = &rest[4..];
            let end = inner.find(')').unwrap_or(inner.len());
            (4 + end, Some(inner[..end].trim()))
        } else if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case("@import") {
            let inner = rest[7..].trim_start();
            match inner.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &inner[1..];
                    let end = body.find(q).unwrap_or(body.len());
                    (7, Some(&body[..end]))
                }
                _ => (7, None),
            }
        } else {
            (rest.chars().next().map_or(1, char::len_utf8), None)
        };
        if let Some(u) = found {
            let u = u.trim_matches(['"', '\'']).trim();
            if !u.is_empty() && !u.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
                out.push(u);
            }
        }
        i += skip;
    }
    out
}

/// The URLs of a `srcset` attribute (each candidate's first word).
pub(crate) fn srcset_urls(srcset: &str) -> impl Iterator<Item = &str> {
    srcset
        .split(',')
        .filter_map(|c| c.split_ascii_whitespace().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_css() {
        let css = "body{background:url( 'bg.png' )} @import \"print.css\"; .a{b:URL(x/y.svg)} .d{e:url(data:image/png;base64,AA)} i{u:url()}";
        assert_eq!(css_urls(css), ["bg.png", "print.css", "x/y.svg"]);
        assert_eq!(css_urls("ü url(ä.png)"), ["ä.png"]);
        assert_eq!(
            srcset_urls("a.png 1x, b.png 2x").collect::<Vec<_>>(),
            ["a.png", "b.png"]
        );
    }

    #[test]
    fn requisites_of_a_page_only_when_asked() {
        let html = r#"<html><head><link rel=stylesheet href="/s.css"><style>h1{background:url(bg.png)}</style>
            <script src="a.js"></script></head><body><img src="i.png" srcset="i2.png 2x, i.png 1x"><a href="/p">p</a></body></html>"#;
        let url = url::Url::parse("http://a.test/dir/x").expect("url");
        let opts = crate::ParseOptions::default();
        let on = crate::parse_html(html, &url, None, &opts.clone().requisites(true));
        assert_eq!(
            on.requisites,
            [
                "http://a.test/s.css",
                "http://a.test/dir/bg.png",
                "http://a.test/dir/a.js",
                "http://a.test/dir/i.png",
                "http://a.test/dir/i2.png"
            ]
        );
        assert_eq!(on.links.len(), 1, "requisites are not links");
        let off = crate::parse_html(html, &url, None, &opts);
        assert!(off.requisites.is_empty());
        assert_eq!(off.links, on.links);
    }
}
