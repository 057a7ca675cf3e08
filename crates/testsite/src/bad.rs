//! The adversarial endpoints under `/bad/`: every kind of hostile input that
//! `../shared/DESIGN.md` says trawl must survive, each at a fixed path.
//!
//! [`ENDPOINTS`] is the ground truth: the path, what the endpoint does, and what a
//! correct client does with it. The server answers these paths on every regular host.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::body::{Reply, stream_reply};

/// One hostile endpoint, as listed in the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEndpoint {
    /// The path (and query) on any regular host, starting with `/bad/`.
    pub path: &'static str,
    /// A short name for the kind of hostility.
    pub kind: &'static str,
    /// What the endpoint does, and what a correct crawler makes of it.
    pub expect: &'static str,
}

/// Every adversarial endpoint, in the order the `/bad/` index links them.
pub const ENDPOINTS: &[BadEndpoint] = &[
    BadEndpoint {
        path: "/bad/calendar/2026/1",
        kind: "trap-calendar",
        expect: "links to the next and previous month forever; a depth or budget limit must stop it",
    },
    BadEndpoint {
        path: "/bad/session?PHPSESSID=1",
        kind: "trap-session",
        expect: "links to itself with a new session id every time; canonicalization that strips session ids makes it one URL",
    },
    BadEndpoint {
        path: "/bad/facets?color=1",
        kind: "trap-query-variants",
        expect: "a faceted listing: every page links four near-identical variants (one facet changed or added) without end; a per-path limit on query variants stops it",
    },
    BadEndpoint {
        path: "/bad/mirror/a/b/",
        kind: "trap-repeated-segments",
        expect: "relative links that repeat a path pattern (/a/b/a/b/…) with a fresh segment each time; a repeated-segment limit stops it",
    },
    BadEndpoint {
        path: "/bad/deep/a/",
        kind: "trap-deep",
        expect: "links one path segment deeper forever; depth or path-segment limits stop it",
    },
    BadEndpoint {
        path: "/bad/redirect-loop/a",
        kind: "redirect-loop",
        expect: "302 to /bad/redirect-loop/b, which redirects back; dedup or a hop limit ends it",
    },
    BadEndpoint {
        path: "/bad/redirect-chain/20",
        kind: "redirect-chain",
        expect: "20 hops of 302 before a 200 page; a client with a hop limit below 20 stops with too many redirects",
    },
    BadEndpoint {
        path: "/bad/bomb/gzip",
        kind: "bomb-gzip",
        expect: "gzip of 1 GiB of zeros, sent whatever Accept-Encoding says; the body cap must stop it",
    },
    BadEndpoint {
        path: "/bad/bomb/br",
        kind: "bomb-br",
        expect: "brotli of 1 GiB of zeros; the body cap must stop it",
    },
    BadEndpoint {
        path: "/bad/bomb/zstd",
        kind: "bomb-zstd",
        expect: "zstd of 1 GiB of zeros; the body cap must stop it",
    },
    BadEndpoint {
        path: "/bad/huge",
        kind: "too-large",
        expect: "a 64 MiB uncompressed body with Content-Length; the body cap must stop it",
    },
    BadEndpoint {
        path: "/bad/endless",
        kind: "endless-body",
        expect: "a chunked HTML body that never ends; the body cap or total timeout must stop it",
    },
    BadEndpoint {
        path: "/bad/trickle",
        kind: "slow-trickle",
        expect: "one byte a second for 120 s; a total timeout must stop it, since no read is ever idle",
    },
    BadEndpoint {
        path: "/bad/stall",
        kind: "stall",
        expect: "headers, then nothing at all; an idle-read timeout must stop it",
    },
    BadEndpoint {
        path: "/bad/charset/mislabelled",
        kind: "charset-mislabelled",
        expect: "windows-1251 text sent as charset=utf-8; decoding replaces bad bytes and never fails",
    },
    BadEndpoint {
        path: "/bad/charset/undeclared-sjis",
        kind: "charset-undeclared",
        expect: "Shift_JIS text with no charset anywhere; detection should find Shift_JIS",
    },
    BadEndpoint {
        path: "/bad/nested",
        kind: "deep-nesting",
        expect: "16,000 nested <ul><li>; a nesting pre-scan caps the depth in milliseconds (tags beyond it left out), keeping the content and links after it",
    },
    BadEndpoint {
        path: "/bad/many-links",
        kind: "many-links",
        expect: "100,000 distinct links; a links-per-page cap keeps only the first ones",
    },
    BadEndpoint {
        path: "/bad/malformed",
        kind: "malformed-html",
        expect: "an unterminated attribute swallows the first links, then misnested and unclosed tags; \
                 parsing never fails and, by HTML5 error recovery, yields only the link to /bad/urls",
    },
    BadEndpoint {
        path: "/bad/long-url",
        kind: "long-urls",
        expect: "links of 3 KiB and 20 KiB; a URL length cap refuses the second",
    },
    BadEndpoint {
        path: "/bad/urls",
        kind: "odd-urls",
        expect: "invalid URLs, IDN and mixed-case hosts, default ports and non-http schemes",
    },
    BadEndpoint {
        path: "/bad/status/429?after=2",
        kind: "retry-after-seconds",
        expect: "429 with Retry-After: 2 on the first request, 200 afterwards",
    },
    BadEndpoint {
        path: "/bad/status/503?after=2&date=1",
        kind: "retry-after-date",
        expect: "503 with Retry-After as an HTTP date 2 s ahead on the first request, 200 afterwards",
    },
    BadEndpoint {
        path: "/bad/flaky",
        kind: "flapping-5xx",
        expect: "odd-numbered requests get 500 or 503, even ones 200; a retry succeeds",
    },
    BadEndpoint {
        path: "/bad/always-500",
        kind: "always-5xx",
        expect: "always 500; retries end in a failed record",
    },
    BadEndpoint {
        path: "/bad/not-html",
        kind: "not-html",
        expect: "application/octet-stream; a content-type allow list refuses it before the body",
    },
    BadEndpoint {
        path: "/bad/binary",
        kind: "binary",
        expect: "10 MiB of application/octet-stream, streamed in 64 KiB chunks (chunked, no Content-Length); \
                 a crawler that parses only HTML closes the connection after the headers and reads none of it",
    },
    BadEndpoint {
        path: "/bad/empty",
        kind: "empty",
        expect: "200 with an empty text/html body",
    },
    BadEndpoint {
        path: "/bad/ssrf",
        kind: "ssrf-links",
        expect: "links to loopback, private, link-local, CGNAT, documentation, multicast and IPv4-mapped addresses; all must be refused",
    },
    BadEndpoint {
        path: "/bad/redirect-to/metadata",
        kind: "ssrf-redirect",
        expect: "302 to http://169.254.169.254/latest/meta-data/; the hop must be refused",
    },
    BadEndpoint {
        path: "/bad/redirect-to/decimal",
        kind: "ssrf-redirect",
        expect: "302 to http://2130706433/ (127.0.0.1 as one number); refused unless that is a seed's address",
    },
    BadEndpoint {
        path: "/bad/redirect-to/mapped",
        kind: "ssrf-redirect",
        expect: "302 to http://[::ffff:a9fe:a9fe]/ (169.254.169.254 mapped into IPv6); the hop must be refused",
    },
];

/// The size of `/bad/binary`'s body: 10 MiB, the default body cap of trawl.
pub const BINARY_BYTES: u64 = 10 << 20;
/// The chunks `/bad/binary` is streamed in: 64 KiB each, so [`BINARY_BYTES`] takes 160.
pub const BINARY_CHUNK: usize = 64 << 10;

/// The special-purpose addresses `/bad/ssrf` links to.
pub const SSRF_LINKS: &[&str] = &[
    "http://127.0.0.1:1/",
    "http://localhost:1/admin",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/router",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://192.0.2.10/",
    "http://198.51.100.7/",
    "http://203.0.113.9/",
    "http://224.0.0.1/",
    "http://0.0.0.0/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://[::1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
];

/// Links of `/bad/urls`: odd but mostly meaningful URL spellings.
pub const ODD_URLS: &[&str] = &[
    "http://[::1",
    "http://exa mple.invalid/",
    "javascript:alert(1)",
    "mailto:someone@example.invalid",
    "ftp://files.example.invalid/x",
    "data:text/html,hi",
    "http://bücher.example.invalid/straße",
    "http://xn--bcher-kva.example.invalid/",
    "HTTP://MIXED.Example.INVALID/Path",
    "http://example.invalid:80/default-port",
    "https://example.invalid:443/default-port",
    "http://user:pass@example.invalid/userinfo",
    "http://example.invalid./trailing-dot",
    "//protocol-relative.example.invalid/x",
    "/bad/urls/%7Euser/%41%42c",
    "   /bad/urls/spaces-around   ",
    "/bad/urls/tab\there",
];

fn html(body: String) -> Reply {
    Reply::html(200, body)
}

fn page(title: &str, links: impl IntoIterator<Item = String>) -> String {
    let mut s =
        format!("<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1><ul>\n");
    for l in links {
        s.push_str(&format!("<li><a href=\"{l}\">{l}</a></li>\n"));
    }
    s.push_str("</ul></body></html>\n");
    s
}

fn redirect(status: u16, to: &str) -> Reply {
    Reply::empty(status).header("location", to)
}

/// Query parameter `key` as a number.
fn param(query: &str, key: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// Answers a path under `/bad/`. `nth` is how many times this exact URL (path and query)
/// was requested before, for the endpoints that change with repetition.
pub(crate) fn respond(path: &str, query: &str, nth: u64) -> Reply {
    let rest = &path["/bad".len()..];
    match rest {
        "" | "/" => html(page(
            "Hostile endpoints",
            ENDPOINTS.iter().map(|e| e.path.to_string()),
        )),
        _ if rest.starts_with("/calendar/") => {
            let mut it = rest["/calendar/".len()..].split('/');
            let y: i64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(2026);
            let m: i64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(1).clamp(1, 12);
            let idx = y * 12 + (m - 1);
            let (prev, next) = (idx - 1, idx + 1);
            html(page(
                &format!("Calendar {y}-{m:02}"),
                [
                    format!("/bad/calendar/{}/{}", prev / 12, prev % 12 + 1),
                    format!("/bad/calendar/{}/{}", next / 12, next % 12 + 1),
                ],
            ))
        }
        "/facets" => {
            const FACETS: [&str; 4] = ["color", "size", "sort", "page"];
            let mut values: Vec<u64> = FACETS.iter().map(|f| param(query, f).unwrap_or(0)).collect();
            let title = format!("Listing {values:?}");
            let links: Vec<String> = (0..FACETS.len())
                .map(|i| {
                    values[i] += 1;
                    let q: Vec<String> = FACETS
                        .iter()
                        .zip(&values)
                        .filter(|(_, v)| **v > 0)
                        .map(|(f, v)| format!("{f}={v}"))
                        .collect();
                    values[i] -= 1;
                    format!("/bad/facets?{}", q.join("&"))
                })
                .collect();
            html(page(&title, links))
        }
        _ if rest.starts_with("/mirror/") => {
            // `a/b/` relative to /bad/mirror/…/ repeats the pattern one level deeper,
            // with a new segment, so no two URLs are alike.
            let n = rest.matches('/').count();
            html(page("Mirror", [format!("a/b/x{n}/")]))
        }
        "/session" | "/session/" => {
            let n = param(query, "PHPSESSID").unwrap_or(0);
            html(page(
                "Session",
                [
                    format!("/bad/session?PHPSESSID={}", n + 1),
                    format!("/bad/session?jsessionid={}", n + 2),
                    format!("/bad/session?utm_campaign=x&PHPSESSID={}", n + 3),
                ],
            ))
        }
        _ if rest.starts_with("/deep/") => html(page("Deeper", [format!("{path}a/")])),
        "/redirect-loop/a" => redirect(302, "/bad/redirect-loop/b"),
        "/redirect-loop/b" => redirect(302, "/bad/redirect-loop/a"),
        _ if rest.starts_with("/redirect-chain/") => match rest["/redirect-chain/".len()..].parse::<u64>() {
            Ok(0) => html(page("End of the chain", [])),
            Ok(n) => redirect(302, &format!("/bad/redirect-chain/{}", n - 1)),
            Err(_) => Reply::text(404, "not found"),
        },
        "/bomb/gzip" | "/bomb/br" | "/bomb/zstd" => bomb(&rest["/bomb/".len()..]),
        "/huge" => {
            let body = Bytes::from(vec![b'a'; 64 << 20]);
            Reply::bytes(200, "text/html", body)
        }
        "/endless" => stream_reply(200, "text/html", None, |tx| {
            let chunk = Bytes::from_static(b"<p>and it goes on and on and on and on and on</p>\n");
            let _ = tx.blocking_send(Bytes::from_static(b"<!DOCTYPE html><html><body>\n"));
            while tx.blocking_send(chunk.clone()).is_ok() {}
        }),
        "/trickle" => Reply::trickle(120, Duration::from_secs(1)),
        "/stall" => Reply::stall(),
        "/charset/mislabelled" => {
            let text = "<html><head><title>Привет, мир</title></head><body><p>Съешь же ещё этих мягких французских булок.</p><a href=\"/bad/empty\">далее</a></body></html>";
            let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(text);
            Reply::bytes(200, "text/html; charset=utf-8", Bytes::from(bytes.into_owned()))
        }
        "/charset/undeclared-sjis" => {
            let text = "<html><head><title>日本語のページ</title></head><body><p>これは文字コードの宣言がないシフトJISのページです。吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。</p><a href=\"/bad/empty\">次へ</a></body></html>";
            let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(text);
            Reply::bytes(200, "text/html", Bytes::from(bytes.into_owned()))
        }
        "/nested" => {
            let mut s = String::from("<!DOCTYPE html><html><head><title>Nested</title></head><body>");
            s.push_str(&"<ul><li>".repeat(16_000));
            s.push_str("<a href=\"/bad/empty\">bottom</a>");
            s.push_str(&"</li></ul>".repeat(16_000));
            s.push_str("</body></html>");
            html(s)
        }
        "/many-links" => {
            let mut s = String::with_capacity(4 << 20);
            s.push_str("<!DOCTYPE html><html><head><title>Many links</title></head><body>\n");
            for k in 0..100_000 {
                s.push_str(&format!("<a href=\"/bad/link-target/{k}\">{k}</a>\n"));
            }
            s.push_str("</body></html>");
            html(s)
        }
        _ if rest.starts_with("/link-target/") => html(page("A link target", [])),
        "/malformed" => html(
            "<html><head><title>Malformed</title><body><p class=\"a><a href=/bad/empty>one</a>\
             <div><table><tr><td><a href='/bad/not-html'>two</a></td></div></p>\u{FFFD}<b><i>x</b></i><<>>\
             <a href=\"http://[::1\">broken</a><a href=/bad/urls>unclosed"
                .to_string(),
        ),
        "/long-url" => html(page(
            "Long URLs",
            [
                format!("/bad/long/{}", "a".repeat(3 * 1024)),
                format!("/bad/long/{}", "b".repeat(20 * 1024)),
            ],
        )),
        _ if rest.starts_with("/long/") => html(page("A long URL", [])),
        "/urls" => html(page("Odd URLs", ODD_URLS.iter().map(|s| s.to_string()))),
        _ if rest.starts_with("/urls/") => html(page("Odd URL target", [])),
        "/status/429" | "/status/503" => {
            let times = param(query, "times").unwrap_or(1);
            if nth >= times {
                return html(page("Recovered", []));
            }
            let after = param(query, "after").unwrap_or(2);
            let value = if param(query, "date") == Some(1) {
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(after))
            } else {
                after.to_string()
            };
            let status = if rest.ends_with("429") { 429 } else { 503 };
            Reply::text(status, "slow down").header("retry-after", &value)
        }
        "/flaky" => match nth % 4 {
            0 => Reply::text(500, "flap"),
            2 => Reply::text(503, "flop"),
            _ => html(page("Flaky but fine", [])),
        },
        "/always-500" => Reply::text(500, "broken"),
        "/not-html" => Reply::bytes(200, "application/octet-stream", Bytes::from(vec![0u8; 4096])),
        "/binary" => stream_reply(200, "application/octet-stream", None, |tx| {
            // Not all zeros, so that no compression anywhere could shrink it.
            let chunk: Bytes = (0..BINARY_CHUNK).map(|i| (i * 7 + i / 251) as u8).collect();
            for _ in 0..BINARY_BYTES / BINARY_CHUNK as u64 {
                if tx.blocking_send(chunk.clone()).is_err() {
                    return;
                }
            }
        }),
        "/empty" => Reply::bytes(200, "text/html", Bytes::new()),
        "/ssrf" => {
            let mut links: Vec<String> = SSRF_LINKS.iter().map(|s| s.to_string()).collect();
            links.extend(
                [
                    "/bad/redirect-to/metadata",
                    "/bad/redirect-to/decimal",
                    "/bad/redirect-to/mapped",
                ]
                .map(String::from),
            );
            html(page("Special-purpose addresses", links))
        }
        "/redirect-to/metadata" => redirect(302, "http://169.254.169.254/latest/meta-data/"),
        "/redirect-to/decimal" => redirect(302, "http://2130706433/"),
        "/redirect-to/mapped" => redirect(302, "http://[::ffff:a9fe:a9fe]/"),
        _ => Reply::text(404, "no such hostile endpoint"),
    }
}

/// A decompression bomb: 1 GiB of zeros, compressed as it is sent, so only what the
/// client reads is ever produced.
fn bomb(encoding: &str) -> Reply {
    let encoding = encoding.to_string();
    let header = encoding.clone();
    stream_reply(200, "text/html", Some(header), move |tx| {
        use std::io::Write;
        let zeros = vec![0u8; 64 * 1024];
        let mut out = crate::body::ChanWriter::new(tx);
        let total = 1u64 << 30;
        let mut written = 0u64;
        let result: std::io::Result<()> = (|| {
            match encoding.as_str() {
                "gzip" => {
                    let mut enc = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
                    while written < total {
                        enc.write_all(&zeros)?;
                        written += zeros.len() as u64;
                    }
                    enc.finish()?;
                }
                "br" => {
                    // Zeros compress so well that brotli would emit almost nothing
                    // until the end: flush every chunk so that bytes flow as they are
                    // made, as a real bomb's would.
                    let mut enc = brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, 22);
                    while written < total {
                        enc.write_all(&zeros)?;
                        enc.flush()?;
                        written += zeros.len() as u64;
                    }
                    enc.flush()?;
                }
                _ => {
                    let mut enc = zstd::stream::write::Encoder::new(&mut out, 3)?;
                    while written < total {
                        enc.write_all(&zeros)?;
                        enc.flush()?;
                        written += zeros.len() as u64;
                    }
                    enc.finish()?;
                }
            }
            out.flush()
        })();
        // An error means the client hung up: exactly what a capped client does.
        drop(result);
    })
}
