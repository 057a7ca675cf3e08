//! testsite over real HTTP on 127.0.0.1: determinism, reachability, robots and
//! sitemaps, compression, and every adversarial endpoint.

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::time::{Duration, SystemTime};

use reqwest::Client;
use trawl_testsite::{ENDPOINTS, RobotsVariant, TestSite};
use url::Url;

fn client() -> Client {
    // reqwest is built without a crypto provider of its own (the fetcher brings its
    // config); a plain client needs the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("testsite-tests")
        .build()
        .expect("client builds")
}

async fn get(c: &Client, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = c.get(url).send().await.expect("request succeeds");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

async fn get_text(c: &Client, url: &str) -> String {
    String::from_utf8(get(c, url).await.2).expect("utf-8")
}

/// The raw href values of a page, in order.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|s| s.replace("&amp;", "&"))
        .collect()
}

#[tokio::test]
async fn pages_are_deterministic_by_seed() {
    let a = TestSite::new()
        .pages(300)
        .hosts(2)
        .seed(9)
        .start()
        .await
        .expect("start");
    let b = TestSite::new()
        .pages(300)
        .hosts(2)
        .seed(9)
        .start()
        .await
        .expect("start");
    let c = TestSite::new()
        .pages(300)
        .hosts(2)
        .seed(10)
        .start()
        .await
        .expect("start");
    let cl = client();
    for i in [0u64, 1, 2, 150, 299] {
        let strip = |s: String, site: &trawl_testsite::RunningSite| {
            let mut s = s;
            for base in site.site().bases() {
                s = s.replace(base.as_str(), "BASE");
                s = s.replace(&base.replacen("http://", "HTTP://", 1), "BASE");
            }
            s
        };
        let pa = strip(get_text(&cl, &a.site().page_url(i)).await, &a);
        let pb = strip(get_text(&cl, &b.site().page_url(i)).await, &b);
        assert!(pa == pb, "page {i} differs between two sites of the same seed");
        if i >= 2 {
            let pc = strip(get_text(&cl, &c.site().page_url(i)).await, &c);
            assert!(pa != pc, "page {i} is the same under another seed");
        }
        assert!(
            (8_000..=22_000).contains(&pa.len()),
            "page {i} is {} bytes",
            pa.len()
        );
    }
}

/// Follows every link over HTTP, with nothing but URL joining and fragment removal, and
/// checks that every regular page was served and no private page was needed.
#[tokio::test]
async fn every_page_is_reachable_over_http() {
    let running = TestSite::new()
        .pages(400)
        .hosts(3)
        .seed(4)
        .start()
        .await
        .expect("start");
    let site = running.site();
    let in_site = |u: &Url| site.bases().iter().any(|b| u.as_str().starts_with(b.as_str()));
    let cl = client();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([Url::parse(&running.root_url()).expect("root")]);
    while let Some(url) = queue.pop_front() {
        if !seen.insert(url.to_string()) {
            continue;
        }
        let (status, _, body) = get(&cl, url.as_str()).await;
        assert_eq!(status, 200, "{url}");
        let html = String::from_utf8(body).expect("utf-8");
        for href in hrefs(&html) {
            let Ok(mut next) = url.join(&href) else { continue };
            next.set_fragment(None);
            if in_site(&next) && !next.path().starts_with("/private/") && !next.path().starts_with("/static/")
            {
                queue.push_back(next);
            }
        }
    }
    for i in 0..site.pages() {
        assert!(running.page_hits(i) >= 1, "page {i} was never reached");
    }
    assert_eq!(running.private_hits(), 0);
    // Spelling variants (percent-escapes, tracking parameters, empty queries) reach the
    // same page, so some pages were fetched under more than one URL.
    assert!(!running.pages_hit_twice().is_empty());
    assert_eq!(running.requests().len() as u64, running.total_requests());
}

#[tokio::test]
async fn robots_and_sitemaps_are_served() {
    let running = TestSite::new()
        .pages(25_000)
        .hosts(2)
        .crawl_delay(Some(1.5))
        .start()
        .await
        .expect("start");
    let cl = client();
    let base = &running.site().bases()[1];
    let robots = get_text(&cl, &format!("{base}/robots.txt")).await;
    assert!(robots.contains("User-agent: *\nDisallow: /private/"));
    assert!(robots.contains("Crawl-delay: 1.5"));
    assert!(robots.contains(&format!("Sitemap: {base}/sitemap_index.xml")));

    let index = get_text(&cl, &format!("{base}/sitemap_index.xml")).await;
    // 12,500 pages on host 1 in chunks of 10,000.
    assert!(index.contains(&format!("<loc>{base}/sitemap-0.xml</loc>")));
    assert!(index.contains(&format!("<loc>{base}/sitemap-1.xml</loc>")));
    assert!(!index.contains("sitemap-2.xml"));
    let chunk = get_text(&cl, &format!("{base}/sitemap-1.xml")).await;
    assert_eq!(chunk.matches("<loc>").count(), 2_500);
    assert!(chunk.contains(&format!("<loc>{}</loc>", running.site().page_url(24_999))));

    let plain = get_text(&cl, &format!("{base}/sitemap.xml")).await;
    assert_eq!(plain.matches("<loc>").count(), 12_500);
    let (_, headers, gz) = get(&cl, &format!("{base}/sitemap.xml.gz")).await;
    assert_eq!(headers["content-type"], "application/gzip");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut unzipped)
        .expect("gunzip");
    assert_eq!(unzipped, plain);
    let text = get_text(&cl, &format!("{base}/sitemap.txt")).await;
    assert_eq!(text.lines().count(), 12_500);
}

#[tokio::test]
async fn compression_follows_accept_encoding() {
    let running = TestSite::new().pages(50).start().await.expect("start");
    let cl = client();
    let url = running.site().page_url(7);
    let (_, h, identity) = get(&cl, &url).await;
    assert!(h.get("content-encoding").is_none());
    for enc in ["gzip", "br", "zstd"] {
        let r = cl
            .get(&url)
            .header("accept-encoding", enc)
            .send()
            .await
            .expect("send");
        assert_eq!(r.headers()["content-encoding"], enc);
        let body = r.bytes().await.expect("body").to_vec();
        assert!(body.len() < identity.len() / 2, "{enc} did not compress");
        let mut out = Vec::new();
        match enc {
            "gzip" => {
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .expect("gunzip");
            }
            "br" => {
                brotli::Decompressor::new(&body[..], 4096)
                    .read_to_end(&mut out)
                    .expect("unbrotli");
            }
            _ => out = zstd::decode_all(&body[..]).expect("unzstd"),
        }
        assert_eq!(out, identity, "{enc} round trip");
    }
    let off = TestSite::new()
        .pages(50)
        .compression(false)
        .start()
        .await
        .expect("start");
    let r = cl
        .get(off.site().page_url(7))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("send");
    assert!(r.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn traps_and_redirects() {
    let running = TestSite::new().start().await.expect("start");
    let base = running.site().bases()[0].clone();
    let cl = client();
    let cal = get_text(&cl, &format!("{base}/bad/calendar/2026/12")).await;
    assert!(cal.contains("/bad/calendar/2027/1\"") && cal.contains("/bad/calendar/2026/11\""));
    let sess = get_text(&cl, &format!("{base}/bad/session?PHPSESSID=5")).await;
    assert!(sess.contains("/bad/session?PHPSESSID=6"));
    let deep = get_text(&cl, &format!("{base}/bad/deep/a/a/")).await;
    assert!(deep.contains("/bad/deep/a/a/a/"));

    let (s, h, _) = get(&cl, &format!("{base}/bad/redirect-loop/a")).await;
    assert_eq!(
        (s, h["location"].to_str().expect("ascii")),
        (302, "/bad/redirect-loop/b")
    );
    let (s, h, _) = get(&cl, &format!("{base}/bad/redirect-loop/b")).await;
    assert_eq!(
        (s, h["location"].to_str().expect("ascii")),
        (302, "/bad/redirect-loop/a")
    );

    let mut url = format!("{base}/bad/redirect-chain/20");
    let mut hops = 0;
    loop {
        let (s, h, _) = get(&cl, &url).await;
        if s != 302 {
            assert_eq!(s, 200);
            break;
        }
        url = format!("{base}{}", h["location"].to_str().expect("ascii"));
        hops += 1;
    }
    assert_eq!(hops, 20);
}

/// Reads `limit` bytes of a body at most, then hangs up.
async fn read_prefix(c: &Client, url: &str, limit: usize) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let mut r = c.get(url).send().await.expect("send");
    let headers = r.headers().clone();
    let mut out = Vec::new();
    while out.len() < limit {
        match r.chunk().await.expect("chunk") {
            Some(c) => out.extend_from_slice(&c),
            None => break,
        }
    }
    (headers, out)
}

#[tokio::test]
async fn bombs_and_endless_bodies() {
    let running = TestSite::new().start().await.expect("start");
    let base = running.site().bases()[0].clone();
    let cl = client();
    for enc in ["gzip", "br", "zstd"] {
        let (h, wire) = read_prefix(&cl, &format!("{base}/bad/bomb/{enc}"), 64 * 1024).await;
        assert_eq!(h["content-encoding"], enc);
        let mut out = Vec::new();
        let decoder: Box<dyn Read> = match enc {
            "gzip" => Box::new(flate2::read::GzDecoder::new(&wire[..])),
            "br" => Box::new(brotli::Decompressor::new(&wire[..], 4096)),
            _ => Box::new(zstd::Decoder::new(&wire[..]).expect("zstd")),
        };
        // A prefix is a truncated stream, so reading on may error; what it decoded
        // until then counts.
        let _ = decoder.take(16 << 20).read_to_end(&mut out);
        assert_eq!(
            out.len(),
            16 << 20,
            "{enc}: only {} bytes from {} on the wire",
            out.len(),
            wire.len()
        );
        assert!(out.len() > 50 * wire.len(), "{enc}: ratio below 50");
        assert!(out.iter().all(|b| *b == 0));
    }
    let (_, body) = read_prefix(&cl, &format!("{base}/bad/endless"), 4 << 20).await;
    assert!(body.len() >= 4 << 20);
    let r = cl.get(format!("{base}/bad/huge")).send().await.expect("send");
    assert_eq!(r.content_length(), Some(64 << 20));
}

#[tokio::test]
async fn slow_and_stalled_bodies_never_finish_quickly() {
    let running = TestSite::new().start().await.expect("start");
    let base = running.site().bases()[0].clone();
    let cl = client();
    for path in ["/bad/trickle", "/bad/stall"] {
        let r = cl
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("headers arrive");
        assert_eq!(r.status(), 200);
        let body = tokio::time::timeout(Duration::from_millis(300), r.bytes()).await;
        assert!(body.is_err(), "{path} finished its body");
    }
}

#[tokio::test]
async fn content_endpoints() {
    let running = TestSite::new().start().await.expect("start");
    let base = running.site().bases()[0].clone();
    let cl = client();
    let (_, h, bytes) = get(&cl, &format!("{base}/bad/charset/mislabelled")).await;
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the bytes are not really UTF-8"
    );
    let (_, h, bytes) = get(&cl, &format!("{base}/bad/charset/undeclared-sjis")).await;
    assert_eq!(h["content-type"], "text/html");
    assert!(String::from_utf8_lossy(&bytes).find("<meta").is_none());

    let nested = get_text(&cl, &format!("{base}/bad/nested")).await;
    assert_eq!(nested.matches("<ul><li>").count(), 16_000);
    let many = get_text(&cl, &format!("{base}/bad/many-links")).await;
    assert_eq!(hrefs(&many).iter().collect::<HashSet<_>>().len(), 100_000);
    let long = get_text(&cl, &format!("{base}/bad/long-url")).await;
    assert!(hrefs(&long).iter().any(|h| h.len() > 20 * 1024));
    let malformed = get_text(&cl, &format!("{base}/bad/malformed")).await;
    assert!(malformed.contains("<a href=/bad/empty>"));

    let (s, h, _) = get(&cl, &format!("{base}/bad/not-html")).await;
    assert_eq!(
        (s, h["content-type"].to_str().expect("ascii")),
        (200, "application/octet-stream")
    );
    let (s, _, b) = get(&cl, &format!("{base}/bad/empty")).await;
    assert_eq!((s, b.len()), (200, 0));
    let odd = get_text(&cl, &format!("{base}/bad/urls")).await;
    assert!(odd.contains("http://bücher.example.invalid/straße"));
}

#[tokio::test]
async fn status_endpoints_change_with_repetition() {
    let running = TestSite::new().start().await.expect("start");
    let base = running.site().bases()[0].clone();
    let cl = client();
    let url = format!("{base}/bad/status/429?after=2");
    let (s, h, _) = get(&cl, &url).await;
    assert_eq!((s, h["retry-after"].to_str().expect("ascii")), (429, "2"));
    assert_eq!(get(&cl, &url).await.0, 200);
    assert_eq!(running.hits(&url), 2);

    let url = format!("{base}/bad/status/503?after=2&date=1");
    let (s, h, _) = get(&cl, &url).await;
    assert_eq!(s, 503);
    let when = httpdate::parse_http_date(h["retry-after"].to_str().expect("ascii")).expect("an HTTP date");
    let ahead = when.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(ahead <= Duration::from_secs(3));
    assert_eq!(get(&cl, &url).await.0, 200);

    let url = format!("{base}/bad/status/503?times=3");
    let seq: Vec<u16> = [(); 4].iter().map(|_| 0).collect();
    let mut got = Vec::new();
    for _ in &seq {
        got.push(get(&cl, &url).await.0);
    }
    assert_eq!(got, [503, 503, 503, 200]);

    let mut flaky = Vec::new();
    for _ in 0..4 {
        flaky.push(get(&cl, &format!("{base}/bad/flaky")).await.0);
    }
    assert_eq!(flaky, [500, 200, 503, 200]);
    assert_eq!(get(&cl, &format!("{base}/bad/always-500")).await.0, 500);
}

#[tokio::test]
async fn ssrf_links_and_redirects() {
    let running = TestSite::new().start().await.expect("start");
    let base = running.site().bases()[0].clone();
    let cl = client();
    let page = get_text(&cl, &format!("{base}/bad/ssrf")).await;
    for link in trawl_testsite::SSRF_LINKS {
        assert!(page.contains(link), "{link} missing");
    }
    for (path, to) in [
        ("metadata", "http://169.254.169.254/latest/meta-data/"),
        ("decimal", "http://2130706433/"),
        ("mapped", "http://[::ffff:a9fe:a9fe]/"),
    ] {
        let (s, h, _) = get(&cl, &format!("{base}/bad/redirect-to/{path}")).await;
        assert_eq!((s, h["location"].to_str().expect("ascii")), (302, to));
    }
}

#[tokio::test]
async fn every_listed_endpoint_answers_and_the_index_links_them() {
    let running = TestSite::new().link_bad(true).start().await.expect("start");
    let base = running.site().bases()[0].clone();
    let cl = client();
    let root = get_text(&cl, &running.root_url()).await;
    assert!(root.contains("href=\"/bad/\""));
    let index = get_text(&cl, &format!("{base}/bad/")).await;
    let linked: HashSet<String> = hrefs(&index).into_iter().collect();
    for e in ENDPOINTS {
        assert!(linked.contains(e.path), "{} is not linked", e.path);
        assert!(!e.expect.is_empty() && !e.kind.is_empty());
    }
    // Endpoints whose headers arrive at once answer with a documented status.
    for e in ENDPOINTS {
        let r = tokio::time::timeout(Duration::from_secs(5), cl.get(format!("{base}{}", e.path)).send())
            .await
            .expect("headers in time")
            .expect("send");
        assert!(
            [200, 302, 429, 500, 503].contains(&r.status().as_u16()),
            "{}: {}",
            e.path,
            r.status()
        );
    }
}

#[tokio::test]
async fn robots_variants_answer_as_documented() {
    let running = TestSite::new()
        .robots_variants(true)
        .start()
        .await
        .expect("start");
    let cl = client();
    for &v in RobotsVariant::ALL {
        let base = running.variant_base(v).expect("variant host");
        let (s, h, body) = get(&cl, &format!("{base}/robots.txt")).await;
        let text = String::from_utf8_lossy(&body);
        match v {
            RobotsVariant::ServerError => assert_eq!(s, 503),
            RobotsVariant::NotFound => assert_eq!(s, 404),
            RobotsVariant::Redirect => {
                assert_eq!(
                    (s, h["location"].to_str().expect("ascii")),
                    (301, "/robots-real.txt")
                );
                let real = get_text(&cl, &format!("{base}/robots-real.txt")).await;
                assert!(real.contains("Disallow: /private/"));
            }
            RobotsVariant::Html => {
                assert_eq!(s, 200);
                assert!(
                    h["content-type"]
                        .to_str()
                        .expect("ascii")
                        .starts_with("text/html")
                );
            }
            RobotsVariant::Oversized => {
                assert!(body.len() >= 3 << 20);
                let late = text.find("Disallow: /late/").expect("late rule");
                assert!(late > 500 * 1024);
            }
            RobotsVariant::Bom => assert!(body.starts_with(&[0xEF, 0xBB, 0xBF])),
            RobotsVariant::SitemapBetweenGroups => {
                assert!(text.contains("User-agent: *\nSitemap: "));
            }
            RobotsVariant::LongLine => {
                assert!(text.lines().any(|l| l.len() > 16 * 1024));
                assert!(text.ends_with("Disallow: /private/\n"));
            }
            _ => unreachable!("a variant without a test"),
        }
        let root = get_text(&cl, &format!("{base}/")).await;
        assert!(root.contains("/private/1") && root.contains("/open/1"));
    }
}

#[tokio::test]
async fn tls_serves_h2_and_http_1_1_under_a_fresh_ca() {
    let plain = TestSite::new().start().await.expect("plain site");
    assert!(plain.ca_pem().is_none());
    assert!(plain.root_url().starts_with("http://"));

    let site = TestSite::new().tls(true).start().await.expect("tls site");
    let pem = site.ca_pem().expect("a ca").to_string();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let root = site.root_url();
    assert!(root.starts_with("https://127.0.0.1:"), "{root}");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ca.pem");
    site.write_ca(&path).expect("write");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), pem);
    assert!(plain.write_ca(dir.path().join("none.pem")).is_err());

    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem");
    let h2 = Client::builder()
        .no_proxy()
        .tls_certs_only([ca.clone()])
        .build()
        .expect("client");
    let h1 = Client::builder()
        .no_proxy()
        .http1_only()
        .tls_certs_only([ca])
        .build()
        .expect("client");
    let r = h2.get(&root).send().await.expect("h2 request");
    assert_eq!(
        (r.status().as_u16(), r.version()),
        (200, reqwest::Version::HTTP_2)
    );
    let r = h1.get(&root).send().await.expect("http/1.1 request");
    assert_eq!(
        (r.status().as_u16(), r.version()),
        (200, reqwest::Version::HTTP_11)
    );
    let versions: Vec<String> = site.requests().into_iter().map(|q| q.version).collect();
    assert_eq!(versions, ["HTTP/2.0", "HTTP/1.1"]);
    // Without the CA the handshake fails: the site's CA is its own.
    assert!(client().get(&root).send().await.is_err());
}

#[tokio::test]
async fn virtual_hosts_are_chosen_by_the_host_header() {
    let running = TestSite::new()
        .vhosts(50)
        .pages(200)
        .start()
        .await
        .expect("start");
    assert_eq!(running.addrs().len(), 1, "one listener for every virtual host");
    let port = running.addrs()[0].port();
    let portal = running.portal_url().expect("a portal");
    assert_eq!(portal, format!("http://localhost:{port}/"));
    let site = running.site();
    assert!(site.is_virtual());
    assert_eq!(site.root_url(7), format!("http://h7.localhost:{port}/"));
    // Every name on the listener's address, as a client with --resolve would.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    for name in [
        "localhost",
        "h0.localhost",
        "h7.localhost",
        "h49.localhost",
        "h50.localhost",
    ] {
        b = b.resolve(name, running.addrs()[0]);
    }
    let c = b.build().expect("client");
    let portal_page = get_text(&c, &portal).await;
    assert!(portal_page.contains(&site.root_url(0)), "{portal_page}");
    for i in [7u64, 57, 107] {
        let url = site.page_url(i);
        let (status, _, body) = get(&c, &url).await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(String::from_utf8_lossy(&body), site.html(i), "{url}");
    }
    // Page 57 lives on h7, not on h0.
    let wrong = format!("http://h0.localhost:{port}/page/57");
    assert_eq!(get(&c, &wrong).await.0, 404);
    let unknown = format!("http://h50.localhost:{port}/");
    assert_eq!(get(&c, &unknown).await.0, 404, "h50 is not one of 50 hosts");
    let robots = get_text(&c, &format!("http://h49.localhost:{port}/robots.txt")).await;
    assert!(robots.contains("Disallow: /private/"), "{robots}");
    assert!(running.requests().iter().any(|r| r.url == site.page_url(57)));
}
