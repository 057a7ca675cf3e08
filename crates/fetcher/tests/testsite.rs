//! The fetcher against trawl-testsite on 127.0.0.1, over real HTTP: caps, timeouts,
//! robots.txt status rules and variants, Retry-After, SSRF refusals.

use std::sync::Arc;
use std::time::Duration;

use trawl_fetcher::{Fetcher, GatePolicy, RequestOptions, RobotsStore};
use trawl_testsite::{RobotsVariant, TestSite};

const UA: &str = "trawl-test/0.1 (+https://example.invalid/bot)";

/// A fetcher allowed to reach the testsite (it lives on loopback) with politeness lifted.
fn fetcher() -> trawl_fetcher::FetcherBuilder {
    let mut policy = GatePolicy::default();
    policy.rate = None;
    policy.concurrency = 8;
    policy.backoff_base = Duration::from_millis(10);
    Fetcher::builder()
        .user_agent(UA)
        .allow_private_ips(true)
        .politeness(policy)
}

#[tokio::test]
async fn a_page_comes_back_decoded_with_its_numbers() {
    let site = TestSite::new().pages(50).start().await.expect("site");
    let f = fetcher().build().expect("fetcher");
    let url = site.site().page_url(7);
    let page = f.fetch(&url).await.expect("fetch");
    assert_eq!(page.status, 200);
    assert!(page.body.starts_with(b"<!DOCTYPE html>"));
    assert_eq!(page.body_bytes as usize, page.body.len());
    assert!(
        page.wire_bytes < page.body_bytes / 2,
        "zstd/br/gzip was asked for and used"
    );
    assert_eq!(page.attempts, 1);
    assert!(page.timings.total >= page.timings.first_byte);
    assert_eq!(site.page_hits(7), 1);
}

#[tokio::test]
async fn bombs_and_endless_bodies_stop_at_the_cap() {
    let site = TestSite::new().start().await.expect("site");
    let base = site.site().bases()[0].clone();
    let f = fetcher()
        .max_body(1 << 20)
        .robots(false)
        .build()
        .expect("fetcher");
    for path in [
        "/bad/bomb/gzip",
        "/bad/bomb/br",
        "/bad/bomb/zstd",
        "/bad/endless",
        "/bad/huge",
    ] {
        let t = std::time::Instant::now();
        let err = f.fetch(&format!("{base}{path}")).await.expect_err(path);
        assert!(err.is_too_large(), "{path}: {err:?}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{path} took {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test]
async fn trickling_and_stalled_servers_time_out() {
    let site = TestSite::new().start().await.expect("site");
    let base = site.site().bases()[0].clone();
    let f = fetcher()
        .robots(false)
        .read_timeout(Duration::from_millis(300))
        .total_timeout(Duration::from_millis(1500))
        .max_attempts(1)
        .build()
        .expect("fetcher");
    for path in ["/bad/stall", "/bad/trickle"] {
        let err = f.fetch(&format!("{base}{path}")).await.expect_err(path);
        assert!(err.is_timeout(), "{path}: {err:?}");
        assert_eq!(err.kind(), "timeout");
    }
}

#[tokio::test]
async fn retry_after_is_honoured_and_retries_succeed() {
    let site = TestSite::new().start().await.expect("site");
    let base = site.site().bases()[0].clone();
    let f = fetcher().robots(false).build().expect("fetcher");
    let url = format!("{base}/bad/status/429?after=1");
    let t = std::time::Instant::now();
    let page = f.fetch(&url).await.expect("second attempt succeeds");
    assert_eq!((page.status, page.attempts), (200, 2));
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not waited for: {:?}",
        t.elapsed()
    );
    assert_eq!(site.hits(&url), 2);
    let flaky = f
        .fetch(&format!("{base}/bad/flaky"))
        .await
        .expect("a retry gets through");
    assert_eq!(flaky.status, 200);
    let err = f
        .fetch(&format!("{base}/bad/always-500"))
        .await
        .expect_err("gives up");
    assert_eq!(err.status(), Some(500));
    assert_eq!(
        site.hits(&format!("{base}/bad/always-500")),
        3,
        "max_attempts is 3"
    );
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let site = TestSite::new().start().await.expect("site");
    let base = site.site().bases()[0].clone();
    let f = fetcher().robots(false).build().expect("fetcher");
    let r = f
        .fetch(&format!("{base}/bad/redirect-chain/3"))
        .await
        .expect("fetch");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.redirect_to.map(|u| u.to_string()),
        Some(format!("{base}/bad/redirect-chain/2"))
    );
    assert_eq!(site.hits(&format!("{base}/bad/redirect-chain/2")), 0);
}

#[tokio::test]
async fn robots_txt_is_obeyed_per_rfc_9309() {
    let site = TestSite::new()
        .pages(60)
        .robots_variants(true)
        .start()
        .await
        .expect("site");
    let f = fetcher().build().expect("fetcher");
    // The regular hosts disallow /private/.
    let base = site.site().bases()[0].clone();
    let err = f
        .fetch(&format!("{base}/private/1"))
        .await
        .expect_err("disallowed");
    assert!(err.is_robots_denied());
    assert_eq!(site.private_hits(), 0);
    assert!(f.allowed(&format!("{base}/page/2")).await.expect("verdict"));
    for &v in RobotsVariant::ALL {
        let vb = site.variant_base(v).expect("variant host");
        for (path, want) in [
            ("/private/1", v.private_allowed()),
            ("/open/1", v.open_allowed()),
            ("/late/1", v.late_allowed()),
        ] {
            let got = f.allowed(&format!("{vb}{path}")).await.expect("verdict");
            assert_eq!(got, want, "{v:?} {path}");
        }
    }
    // robots.txt is fetched once per host and cached; its Sitemap line is exposed.
    assert_eq!(
        f.sitemaps(&format!("{base}/")).await.expect("sitemaps"),
        [format!("{base}/sitemap_index.xml")]
    );
    assert_eq!(site.hits(&format!("{base}/robots.txt")), 1);
}

#[tokio::test]
async fn special_purpose_addresses_are_refused() {
    let site = TestSite::new().start().await.expect("site");
    let port = site.addrs()[0].port();
    let f = Fetcher::builder()
        .user_agent(UA)
        .robots(false)
        .build()
        .expect("fetcher");
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
    ] {
        let err = f.fetch(&url).await.expect_err(&url);
        assert!(err.is_forbidden(), "{url}: {err:?}");
    }
    // A name that resolves to loopback is refused by the resolver.
    let err = f
        .fetch(&format!("http://localhost:{port}/"))
        .await
        .expect_err("localhost");
    assert!(err.is_forbidden(), "{err:?}");
    assert_eq!(site.total_requests(), 0, "nothing reached the server");
    // The allow list lets a seed on loopback through.
    let ok = Fetcher::builder()
        .user_agent(UA)
        .robots(false)
        .allow_host(format!("127.0.0.1:{port}"))
        .build()
        .expect("fetcher");
    assert_eq!(
        ok.fetch(&format!("http://127.0.0.1:{port}/"))
            .await
            .expect("allowed")
            .status,
        200
    );
}

#[tokio::test]
async fn content_types_are_checked_before_the_body() {
    let site = TestSite::new().start().await.expect("site");
    let base = site.site().bases()[0].clone();
    let f = fetcher()
        .robots(false)
        .content_types(["text/html"])
        .build()
        .expect("fetcher");
    let err = f
        .fetch(&format!("{base}/bad/not-html"))
        .await
        .expect_err("octet-stream");
    assert_eq!(err.kind(), "content-type");
    assert!(f.fetch(&format!("{base}/bad/empty")).await.is_ok());
}

#[tokio::test]
async fn a_body_of_a_type_not_accepted_is_not_downloaded() {
    use trawl_fetcher::{AcceptTypes, RequestOptions};
    use trawl_testsite::{BINARY_BYTES, BINARY_CHUNK};
    // Plain HTTP/1.1 (the connection is closed) and h2 over TLS (the stream is reset).
    for tls in [false, true] {
        let site = TestSite::new().tls(tls).start().await.expect("site");
        let base = site.site().bases()[0].clone();
        let mut builder = fetcher().robots(false).accept(AcceptTypes::html());
        if let Some(pem) = site.ca_pem() {
            builder = builder.ca_cert(pem);
        }
        let f = builder.build().expect("fetcher");
        let url = format!("{base}/bad/binary");
        let until_ended = |n| tokio::time::timeout(Duration::from_secs(30), site.streams_ended(&url, n));

        let page = f.fetch(&url).await.expect("a response, not an error");
        assert_eq!(page.status, 200, "tls {tls}");
        assert_eq!(page.content_type.as_deref(), Some("application/octet-stream"));
        assert!(page.body_skipped, "tls {tls}");
        assert!(page.body.is_empty());
        assert!(
            page.wire_bytes < 64 << 10 && page.body_bytes < 64 << 10,
            "tls {tls}: {} bytes read of {BINARY_BYTES}",
            page.wire_bytes
        );
        // The server's side: the body was cut off when the client let go of it. What
        // it handed to the connection may be megabytes (the socket buffers), but it
        // never got to the end.
        let sent = until_ended(1).await.expect("the server lets go of the body");
        assert!(!sent[0].complete, "tls {tls}: {sent:?}");
        assert!(sent[0].bytes < BINARY_BYTES, "tls {tls}: {sent:?}");

        // HTML, and a response without a Content-Type (a redirect), are still read.
        let html = f
            .fetch(&format!("{base}/bad/charset/undeclared-sjis"))
            .await
            .expect("html");
        assert!(!html.body_skipped && !html.body.is_empty());
        let redirect = f
            .fetch(&format!("{base}/bad/redirect-loop/a"))
            .await
            .expect("302");
        assert_eq!((redirect.status, redirect.content_type.as_deref()), (302, None));
        assert!(!redirect.body_skipped);

        // One request may take the type: then all of it is read.
        let octets = AcceptTypes::none().with("application/octet-stream".parse().expect("a media range"));
        let whole = f
            .fetch_with(&url, &RequestOptions::new().accept(octets))
            .await
            .expect("the whole binary");
        assert!(!whole.body_skipped);
        assert_eq!(whole.body_bytes, BINARY_BYTES, "tls {tls}");
        let sent = until_ended(2).await.expect("the second body ends");
        assert!(sent[1].complete, "tls {tls}: {sent:?}");
        assert_eq!(sent[1].chunks, BINARY_BYTES / BINARY_CHUNK as u64);
    }
}

/// A robots store in memory, standing in for the engine's frontier.
#[derive(Default)]
struct MemStore(std::sync::Mutex<std::collections::HashMap<String, trawl_fetcher::StoredRobots>>);

impl trawl_fetcher::RobotsStore for MemStore {
    fn load(&self, origin: &str) -> Option<trawl_fetcher::StoredRobots> {
        self.0.lock().expect("lock").get(origin).cloned()
    }
    fn save(&self, origin: &str, answer: &trawl_fetcher::StoredRobots) {
        self.0
            .lock()
            .expect("lock")
            .insert(origin.to_string(), answer.clone());
    }
}

#[tokio::test]
async fn a_stored_robots_answer_is_reused_by_a_new_fetcher() {
    let site = TestSite::new()
        .pages(20)
        .robots_variants(true)
        .start()
        .await
        .expect("site");
    let base = site.site().bases()[0].clone();
    let store: std::sync::Arc<MemStore> = std::sync::Arc::default();
    let first = fetcher().robots_store(store.clone()).build().expect("fetcher");
    assert!(
        !first
            .allowed(&format!("{base}/private/3"))
            .await
            .expect("verdict")
    );
    assert_eq!(site.hits(&format!("{base}/robots.txt")), 1);
    let saved = store.load(&base).expect("saved");
    assert_eq!(saved.status, 200);
    assert!(String::from_utf8_lossy(&saved.body).contains("Disallow: /private/"));

    // As after a restart: a new fetcher, an empty memory cache, the same store.
    let second = fetcher().robots_store(store.clone()).build().expect("fetcher");
    assert!(
        !second
            .allowed(&format!("{base}/private/3"))
            .await
            .expect("verdict")
    );
    assert!(second.allowed(&format!("{base}/page/4")).await.expect("verdict"));
    assert_eq!(
        site.hits(&format!("{base}/robots.txt")),
        1,
        "the stored answer was used"
    );

    // An unreachable answer (5xx) is stored too, but only trusted for a short while.
    let down = site.variant_base(RobotsVariant::ServerError).expect("variant");
    assert!(!second.allowed(&format!("{down}/open/1")).await.expect("verdict"));
    assert_eq!(store.load(down).expect("saved").status, 503);
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let site = TestSite::new().start().await.expect("site");
    let base = site.site().bases()[0].clone();
    let f = fetcher().robots(false).build().expect("fetcher");
    let url = format!("{base}/bad/status/503?after=2&date=1");
    let page = f.fetch(&url).await.expect("second attempt succeeds");
    assert_eq!((page.status, page.attempts), (200, 2));
    let log: Vec<_> = site.requests().into_iter().filter(|r| r.url == url).collect();
    assert_eq!(log.len(), 2);
    // The date has one-second resolution: two seconds ahead is at least one second away.
    assert!(
        log[1].at - log[0].at >= Duration::from_millis(950),
        "{:?}",
        log[1].at - log[0].at
    );
}

#[tokio::test]
async fn other_hosts_proceed_while_one_cools_down() {
    let site = TestSite::new().pages(40).hosts(2).start().await.expect("site");
    let (a, b) = (site.site().bases()[0].clone(), site.site().bases()[1].clone());
    let f = fetcher().robots(false).build().expect("fetcher");
    let slow_url = format!("{a}/bad/status/429?after=3");
    let slow = {
        let (f, u) = (f.clone(), slow_url.clone());
        tokio::spawn(async move { f.fetch(&u).await })
    };
    // Pages of host 1 (odd page numbers live there).
    for i in (1..40).step_by(2) {
        assert_eq!(
            f.fetch(&site.site().page_url(i)).await.expect("host 1").status,
            200
        );
    }
    assert_eq!(slow.await.expect("task").expect("retried").status, 200);
    let log = site.requests();
    let retry_at = log
        .iter()
        .filter(|r| r.url == slow_url)
        .nth(1)
        .expect("the retry")
        .at;
    let last_b = log
        .iter()
        .filter(|r| r.url.starts_with(&b))
        .map(|r| r.at)
        .max()
        .expect("host 1 requests");
    assert!(last_b < retry_at, "host 1 waited for host 0's cool-down");
}

#[tokio::test]
async fn a_body_below_the_minimum_speed_is_given_up() {
    let site = TestSite::new().start().await.expect("site");
    let base = site.site().bases()[0].clone();
    let f = fetcher()
        .robots(false)
        .max_attempts(1)
        .read_timeout(Duration::from_secs(5))
        .total_timeout(Duration::from_secs(60))
        .min_speed(100, Duration::from_millis(1500))
        .build()
        .expect("fetcher");
    // One byte a second: no read is ever idle for 5 s, and the total timeout is far.
    let err = f
        .fetch(&format!("{base}/bad/trickle"))
        .await
        .expect_err("too slow");
    assert_eq!(err.kind(), "too-slow");
    assert!(err.is_timeout());
    // A normal page is well above 100 bytes/s.
    assert_eq!(f.fetch(&site.site().page_url(3)).await.expect("page").status, 200);
}

#[tokio::test]
async fn conditional_get_answers_not_modified() {
    let site = TestSite::new().pages(5).start().await.expect("site");
    let url = format!("{}/http/etag", site.site().bases()[0]);
    let f = fetcher().build().expect("fetcher");
    let first = f.fetch(&url).await.expect("fetch");
    assert_eq!(first.status, 200);
    assert!(!first.body.is_empty());
    let v = first.validators();
    assert_eq!(v.etag.as_deref(), Some(trawl_testsite::ETAG));
    assert_eq!(v.last_modified.as_deref(), Some(trawl_testsite::LAST_MODIFIED));

    let again = f.fetch_conditional(&url, &v).await.expect("conditional");
    assert!(again.not_modified(), "status {}", again.status);
    assert!(again.body.is_empty());

    let by_date = trawl_fetcher::Validators {
        etag: None,
        last_modified: v.last_modified.clone(),
    };
    assert_eq!(
        f.fetch_conditional(&url, &by_date).await.expect("ims").status,
        304
    );
    let stale = trawl_fetcher::Validators {
        etag: Some("\"other\"".into()),
        last_modified: None,
    };
    assert_eq!(f.fetch_conditional(&url, &stale).await.expect("inm").status, 200);
}

#[tokio::test]
async fn close_connection_ends_the_connection_after_the_response() {
    let site = TestSite::new().pages(10).start().await.expect("site");
    let f = fetcher().robots(false).build().expect("fetcher");
    let close = RequestOptions::new().close_connection(true);
    for i in 0..4 {
        let page = f
            .fetch_with(&site.site().page_url(i), &close)
            .await
            .expect("fetch");
        assert_eq!(page.status, 200);
        // The server saw the request's `Connection: close` and answered in kind.
        let answer = page.headers.get("connection").and_then(|v| v.to_str().ok());
        assert_eq!(answer, Some("close"), "request {i}");
    }
    // Each request had to open a connection of its own: none went back to the pool.
    assert_eq!(site.connections(), 4);
    // Without it, the next request's answer keeps the connection alive.
    let page = f.fetch(&site.site().page_url(5)).await.expect("fetch");
    assert_ne!(
        page.headers.get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
    );
}

#[tokio::test]
async fn cookies_are_kept_only_when_enabled() {
    let site = TestSite::new().pages(5).start().await.expect("site");
    let base = site.site().bases()[0].clone();
    for (on, expect) in [(false, 403), (true, 200)] {
        let f = fetcher().cookies(on).max_attempts(1).build().expect("fetcher");
        f.fetch(&format!("{base}/http/cookie/set")).await.expect("set");
        let check = f
            .fetch(&format!("{base}/http/cookie/check"))
            .await
            .expect("check");
        assert_eq!(check.status, expect, "cookies {on}");
    }
}

#[tokio::test]
async fn custom_headers_and_a_bad_proxy_are_configured_or_refused() {
    let site = TestSite::new().pages(5).start().await.expect("site");
    let base = site.site().bases()[0].clone();
    // A header is really sent: a Cookie header set by hand passes the cookie check.
    let f = fetcher().header("Cookie", "trawl=yum").build().expect("fetcher");
    assert_eq!(
        f.fetch(&format!("{base}/http/cookie/check"))
            .await
            .expect("check")
            .status,
        200
    );
    let err = fetcher()
        .header("bad header", "x")
        .build()
        .expect_err("invalid name");
    assert!(err.to_string().contains("invalid header name"), "{err}");
    let err = fetcher()
        .proxy("::not a url::")
        .build()
        .expect_err("invalid proxy");
    assert!(err.to_string().contains("invalid proxy"), "{err}");
}

#[tokio::test]
async fn the_following_mode_checks_every_hop_and_stops_at_the_limit() {
    let site = TestSite::new().pages(5).start().await.expect("site");
    let base = site.site().bases()[0].clone();

    let f = fetcher().follow_redirects(25).build().expect("fetcher");
    let chain = f
        .fetch(&format!("{base}/bad/redirect-chain/20"))
        .await
        .expect("chain");
    assert_eq!(chain.status, 200);
    assert_eq!(chain.redirects.len(), 20);
    assert_eq!(chain.final_url.as_str(), format!("{base}/bad/redirect-chain/0"));
    assert_eq!(chain.url.as_str(), format!("{base}/bad/redirect-chain/20"));
    assert!(chain.redirect_to.is_none());

    let short = fetcher().follow_redirects(5).build().expect("fetcher");
    let err = short
        .fetch(&format!("{base}/bad/redirect-chain/20"))
        .await
        .expect_err("limit");
    assert!(
        matches!(err, trawl_fetcher::Error::TooManyRedirects { hops: 5, .. }),
        "{err:?}"
    );
    let err = f
        .fetch(&format!("{base}/bad/redirect-loop/a"))
        .await
        .expect_err("loop");
    assert_eq!(err.kind(), "too-many-redirects");

    // A hop to a special-purpose address is refused even though the seed host (on
    // loopback) is allowed by name.
    let port = site.addrs()[0].port();
    let guarded = Fetcher::builder()
        .user_agent(UA)
        .allow_host(format!("127.0.0.1:{port}"))
        .follow_redirects(5)
        .robots(false)
        .build()
        .expect("fetcher");
    let err = guarded
        .fetch(&format!("{base}/bad/redirect-to/metadata"))
        .await
        .expect_err("metadata");
    assert!(err.is_forbidden(), "{err:?}");
    // Robots applies to each hop: /private/ is disallowed on the testsite.
    let polite = fetcher().follow_redirects(5).build().expect("fetcher");
    let err = polite
        .fetch(&format!("{base}/http/redirect?to=/private/1"))
        .await
        .expect_err("robots");
    assert!(err.is_robots_denied(), "{err:?}");
    assert_eq!(site.private_hits(), 0);
}

#[tokio::test]
async fn localhost_is_resolved_without_a_lookup_cached_or_not() {
    // The cache itself is tested in `net.rs` (names under localhost never reach it).
    let site = TestSite::new().pages(20).start().await.expect("site");
    let port = site.addrs()[0].port();
    let url = |i: u64| format!("http://localhost:{port}{}", site.site().page_path(i));
    let urls: Vec<String> = (0..8).map(|i| url(i * 3)).collect();
    for ttl in [Duration::from_secs(300), Duration::ZERO] {
        let f = fetcher()
            .robots(false)
            .dns_cache_ttl(ttl)
            .build()
            .expect("fetcher");
        let all = futures_util::future::join_all(urls.iter().map(|u| f.fetch(u))).await;
        assert!(all.iter().all(|r| r.is_ok()), "{all:?}");
        assert_eq!(f.dns_lookups(), 0);
    }
}

#[tokio::test]
async fn concurrent_first_requests_fetch_robots_txt_once() {
    let site = TestSite::new()
        .pages(40)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let f = fetcher().build().expect("fetcher");
    let urls: Vec<String> = (0..8).map(|i| site.site().page_url(i)).collect();
    let all = futures_util::future::join_all(urls.iter().map(|u| f.fetch(u))).await;
    assert!(all.iter().all(|r| r.is_ok()), "{all:?}");
    let robots = format!("{}/robots.txt", site.site().bases()[0]);
    assert_eq!(site.hits(&robots), 1);
}

/// A fetcher holding every host to one request at a time.
fn one_at_a_time() -> trawl_fetcher::FetcherBuilder {
    let mut policy = GatePolicy::default();
    policy.rate = None;
    policy.concurrency = 1;
    fetcher().politeness(policy)
}

#[tokio::test]
async fn a_claimed_request_with_the_only_slot_still_gets_robots_txt() {
    let site = TestSite::new().start().await.expect("site");
    let f = one_at_a_time().build().expect("fetcher");
    let url = site.site().page_url(3);
    let gate = f.gate(&url::Url::parse(&url).expect("url"));
    let permit = gate.try_acquire().expect("the only slot");
    // robots.txt is not cached yet: its request must not wait for the slot we hold.
    let page = tokio::time::timeout(Duration::from_secs(10), f.fetch_claimed(&url, permit))
        .await
        .expect("no deadlock")
        .expect("fetch");
    assert_eq!(page.status, 200);
    let robots = format!("{}/robots.txt", site.site().bases()[0]);
    assert_eq!(site.hits(&robots), 1);
    assert_eq!(gate.free_slots(), 1, "the permit is released after the body");
}

#[tokio::test]
async fn a_claimed_request_is_not_sent_into_a_cool_down_that_began_after_the_claim() {
    let site = TestSite::new().track_requests(true).start().await.expect("site");
    let f = one_at_a_time().robots(false).build().expect("fetcher");
    let url = site.site().page_url(5);
    let gate = f.gate(&url::Url::parse(&url).expect("url"));
    let permit = gate.try_acquire().expect("claimed");
    // As if another request of the host had just been answered 429 Retry-After.
    gate.cool_down(Some(Duration::from_secs(600)));
    let t0 = tokio::time::Instant::now();
    let err = f.fetch_claimed(&url, permit).await.expect_err("not sent");
    assert!(
        matches!(err, trawl_fetcher::Error::CoolingDown { wait, .. } if wait > Duration::from_secs(590)),
        "{err:?}"
    );
    assert_eq!(err.kind(), "cooling-down");
    assert!(err.is_transient() && !err.counts_against_host());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "it did not wait the cool-down out"
    );
    assert_eq!(
        site.requests().iter().filter(|r| r.url == url).count(),
        0,
        "nothing was sent"
    );
    assert_eq!(gate.free_slots(), 1, "the slot is given back");
}

#[tokio::test]
async fn a_claim_spent_on_robots_txt_is_followed_by_the_crawl_delay() {
    let site = TestSite::new()
        .crawl_delay(Some(0.5))
        .start()
        .await
        .expect("site");
    let f = one_at_a_time().build().expect("fetcher");
    let url = site.site().page_url(2);
    let gate = f.gate(&url::Url::parse(&url).expect("url"));
    let permit = gate.try_acquire().expect("claimed");
    f.fetch_claimed(&url, permit).await.expect("fetch");
    let log = site.requests();
    let robots = format!("{}/robots.txt", site.site().bases()[0]);
    let robots_at = log.iter().find(|r| r.url == robots).expect("robots.txt").at;
    let page_at = log.iter().find(|r| r.url == url).expect("page").at;
    assert!(
        page_at - robots_at >= Duration::from_millis(500),
        "robots.txt and the page {:?} apart",
        page_at - robots_at
    );
}

#[tokio::test]
async fn two_claims_made_before_robots_txt_is_read_are_both_spaced_from_it() {
    let site = TestSite::new().track_requests(true).start().await.expect("site");
    let mut policy = GatePolicy::default();
    policy.rate = Some(4.0);
    policy.concurrency = 2;
    let f = fetcher().politeness(policy).build().expect("fetcher");
    let (a, b) = (site.site().page_url(1), site.site().page_url(2));
    let gate = f.gate(&url::Url::parse(&a).expect("url"));
    // Both starts are claimed, a quarter of a second apart, before either request
    // goes: one call fetches robots.txt after them, the other waits for its answer.
    let first = gate.try_acquire().expect("claimed");
    let second = loop {
        match gate.try_acquire() {
            Ok(p) => break p,
            Err(trawl_fetcher::NotReady::Wait(d)) => tokio::time::sleep(d).await,
            Err(e) => panic!("{e:?}"),
        }
    };
    let (ra, rb) = tokio::join!(f.fetch_claimed(&a, first), f.fetch_claimed(&b, second));
    ra.expect("a");
    rb.expect("b");
    let mut at: Vec<_> = site.requests().into_iter().map(|r| (r.at, r.url)).collect();
    at.sort();
    assert_eq!(at.len(), 3, "robots.txt and the two pages: {at:?}");
    // Each request at least half the interval (0.25 s) after the one before: a
    // claim reused after the robots.txt request went out would follow it at once.
    for w in at.windows(2) {
        assert!(
            w[1].0 - w[0].0 >= Duration::from_millis(125),
            "{} then {} {:?} later",
            w[0].1,
            w[1].1,
            w[1].0 - w[0].0
        );
    }
}

#[tokio::test]
async fn over_tls_with_the_sites_ca_pages_come_over_http_2() {
    let site = TestSite::new().tls(true).start().await.expect("site");
    let f = fetcher()
        .ca_cert(site.ca_pem().expect("a ca"))
        .build()
        .expect("fetcher");
    let url = site.site().page_url(4);
    assert!(url.starts_with("https://"), "{url}");
    let page = f.fetch(&url).await.expect("fetch");
    assert_eq!((page.status, page.protocol), (200, "h2"));
    assert!(page.body.starts_with(b"<!DOCTYPE html>"));
    let log = site.requests();
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|r| r.version == "HTTP/2.0"),
        "robots.txt and the page over h2: {log:?}"
    );
    f.probe(&url).await.expect("reachable with the ca");
}

#[tokio::test]
async fn plain_http_reports_http_1_1() {
    let site = TestSite::new().start().await.expect("site");
    let page = fetcher()
        .build()
        .expect("fetcher")
        .fetch(&site.root_url())
        .await
        .expect("fetch");
    assert_eq!(page.protocol, "http/1.1");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_permanent_tls_error() {
    let site = TestSite::new().tls(true).start().await.expect("site");
    let url = site.site().page_url(1);
    // With robots.txt off, the page's own handshake fails; with it on, the robots.txt
    // handshake does, and the page reports it as TLS, not as robots unavailable.
    for robots in [false, true] {
        let f = fetcher().robots(robots).build().expect("fetcher");
        let err = f.fetch(&url).await.expect_err("untrusted");
        assert!(
            matches!(err, trawl_fetcher::Error::Tls { .. }),
            "robots {robots}: {err:?}"
        );
        assert_eq!(err.kind(), "tls");
        assert!(!err.is_transient());
        assert!(err.counts_against_host());
        assert_eq!(err.url().map(|u| u.as_str()), Some(url.as_str()));
        let message = err.to_string();
        assert!(
            message.contains("tls handshake failed: invalid peer certificate: UnknownIssuer"),
            "{message}"
        );
        // Not retried: trying again fails the same way.
        let err = f.fetch(&url).await.expect_err("still untrusted");
        assert_eq!(err.kind(), "tls");
    }
    assert_eq!(site.total_requests(), 0, "no request got through a handshake");
}

#[tokio::test]
async fn probe_tells_a_tls_failure_from_a_closed_port() {
    let site = TestSite::new().tls(true).start().await.expect("site");
    let url = site.root_url();
    let untrusting = fetcher().build().expect("fetcher");
    let err = untrusting.probe(&url).await.expect_err("untrusted");
    assert!(matches!(err, trawl_fetcher::Error::Tls { .. }), "{err:?}");
    // Asked again, the cached answer gives the same verdict.
    assert_eq!(untrusting.probe(&url).await.expect_err("cached").kind(), "tls");
    let trusting = fetcher()
        .ca_cert(site.ca_pem().expect("a ca"))
        .build()
        .expect("fetcher");
    trusting.probe(&url).await.expect("trusted");
    // The probe's robots.txt serves the first page too.
    trusting.fetch(&url).await.expect("page");
    let robots = format!("{}/robots.txt", site.site().bases()[0]);
    assert_eq!(site.hits(&robots), 1);
    // With robots.txt off, one HEAD request to the URL.
    fetcher()
        .robots(false)
        .ca_cert(site.ca_pem().expect("a ca"))
        .build()
        .expect("fetcher")
        .probe(&url)
        .await
        .expect("head");
    assert!(site.requests().iter().any(|r| r.url == url));

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    for robots in [true, false] {
        let err = fetcher()
            .robots(robots)
            .build()
            .expect("fetcher")
            .probe(&format!("http://127.0.0.1:{closed}/"))
            .await
            .expect_err("closed port");
        assert!(
            matches!(err, trawl_fetcher::Error::Request { .. }),
            "robots {robots}: {err:?}"
        );
        assert!(err.is_transient());
    }
    // A refused address is refused before any request.
    let err = Fetcher::builder()
        .user_agent(UA)
        .build()
        .expect("fetcher")
        .probe(&url)
        .await
        .expect_err("loopback");
    assert!(err.is_forbidden(), "{err:?}");
}

#[tokio::test]
async fn a_ca_certificate_must_be_pem() {
    for bad in [
        &b"not a certificate"[..],
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ] {
        let err = fetcher().ca_cert(bad).build().expect_err("invalid pem");
        assert!(matches!(err, trawl_fetcher::Error::Config(_)), "{err:?}");
    }
}

#[tokio::test]
async fn a_name_of_a_special_address_is_forbidden_even_through_robots_txt() {
    let site = TestSite::new().start().await.expect("site");
    let port = site.addrs()[0].port();
    let f = Fetcher::builder().user_agent(UA).build().expect("fetcher");
    let url = format!("http://localhost:{port}/");
    for _ in 0..2 {
        // The robots.txt request is refused by the resolver; the page says why.
        let err = f.fetch(&url).await.expect_err("localhost");
        assert!(err.is_forbidden(), "{err:?}");
        assert!(!err.is_transient());
    }
    assert!(f.probe(&url).await.expect_err("probe").is_forbidden());
    assert_eq!(site.total_requests(), 0);
}

#[tokio::test]
async fn bodies_hold_their_share_of_the_memory_budget() {
    let site = TestSite::new().pages(50).start().await.expect("site");
    let budget = 256 * 1024;
    let f = fetcher().body_memory(budget).build().expect("fetcher");
    let mut held = Vec::new();
    for i in 0..4 {
        let page = f.fetch(&site.site().page_url(i)).await.expect("fetch");
        let m = page.memory.as_ref().expect("a reservation");
        assert!(
            m.bytes() >= page.body.len() as u64,
            "page {i}: {} reserved for {} bytes",
            m.bytes(),
            page.body.len()
        );
        held.push(page);
    }
    let reserved: u64 = held
        .iter()
        .map(|p| p.memory.as_ref().map_or(0, |m| m.bytes()))
        .sum();
    assert!(reserved <= budget, "{reserved} reserved of {budget}");
    assert_eq!(f.memory_overdrawn(), 0, "there was room for every body");
    // The clones of a page share one reservation; dropping them all returns it, and
    // another round of fetches finds the room again.
    let copies = held.clone();
    drop(held);
    drop(copies);
    for i in 4..8 {
        let page = f.fetch(&site.site().page_url(i)).await.expect("fetch");
        assert!(page.memory.is_some());
    }
    assert_eq!(f.memory_overdrawn(), 0);
    // Without a budget there is no reservation.
    let plain = fetcher().build().expect("fetcher");
    let page = plain.fetch(&site.site().page_url(1)).await.expect("fetch");
    assert!(page.memory.is_none());
}

/// A fetcher with politeness lifted that trusts no special-purpose address.
fn guarded() -> trawl_fetcher::FetcherBuilder {
    let mut policy = GatePolicy::default();
    policy.rate = None;
    Fetcher::builder().user_agent(UA).politeness(policy)
}

#[tokio::test]
async fn localhost_names_reach_loopback_without_dns_and_stay_guarded() {
    let site = TestSite::new().vhosts(20).pages(80).start().await.expect("site");
    let s = site.site();
    // Page 23 lives on h3.localhost; no DNS server knows these names.
    let url = s.page_url(23);
    assert!(url.starts_with("http://h3.localhost:"), "{url}");
    let open = fetcher().build().expect("fetcher");
    let page = open.fetch(&url).await.expect("h3.localhost is loopback");
    assert_eq!(page.status, 200);
    assert_eq!(String::from_utf8_lossy(&page.body), s.html(23));
    assert_eq!(open.dns_lookups(), 0, "no lookup for *.localhost");
    // Loopback is a special-purpose address: refused unless the host is vouched for.
    let closed = guarded().build().expect("fetcher");
    let err = closed.fetch(&url).await.expect_err("loopback refused");
    assert!(err.is_forbidden(), "{err:?}");
    let named = guarded().allow_host("h3.localhost").build().expect("fetcher");
    assert_eq!(named.fetch(&url).await.expect("a named host").status, 200);
    assert!(
        named
            .fetch(&s.page_url(24))
            .await
            .expect_err("h4 is not named")
            .is_forbidden()
    );
}

#[tokio::test]
async fn resolve_sends_a_host_and_port_to_the_given_address() {
    // Two servers on two loopback addresses; one made-up name on both ports.
    let a = TestSite::new().pages(10).start().await.expect("site a");
    let b = TestSite::new()
        .pages(10)
        .seed(2)
        .ip("127.0.0.2".parse().expect("ip"))
        .start()
        .await
        .expect("site b");
    let (pa, pb) = (a.addrs()[0].port(), b.addrs()[0].port());
    let f = guarded()
        .resolve("Staging.Example.TEST", pa, "127.0.0.1".parse().expect("ip"))
        .resolve("staging.example.test", pb, "127.0.0.2".parse().expect("ip"))
        .build()
        .expect("fetcher");
    let on = |port: u16| format!("http://staging.example.test:{port}/page/3");
    let from_a = f.fetch(&on(pa)).await.expect("port a");
    assert_eq!(String::from_utf8_lossy(&from_a.body), a.site().html(3));
    assert_eq!(
        from_a.remote_addr.map(|r| r.ip().to_string()).as_deref(),
        Some("127.0.0.1")
    );
    let from_b = f.fetch(&on(pb)).await.expect("port b");
    assert_eq!(String::from_utf8_lossy(&from_b.body), b.site().html(3));
    assert_ne!(
        from_a.body, from_b.body,
        "two sites, told apart by the port alone"
    );
    assert_eq!(a.hits(&format!("{}/page/3", a.site().bases()[0])), 1);
    assert_eq!(b.hits(&format!("{}/page/3", b.site().bases()[0])), 1);
    // Another port of the same name is not overridden: `.test` never resolves.
    let other = pa.wrapping_add(1).max(1);
    let err = f.fetch(&on(other)).await.expect_err("no override for this port");
    assert!(!err.is_forbidden(), "{err:?}");
    assert_eq!(f.dns_lookups(), 1);
}

/// Two sites on 127.0.0.1 (two ports), one with `Crawl-delay: 0.2` and one with
/// `Crawl-delay: 1`, fetched by address: their shared gate spaces request starts by
/// 1 s, whichever robots.txt was read last.
#[tokio::test]
async fn by_ip_a_shared_gate_honours_the_largest_crawl_delay_of_its_hosts() {
    async fn starts(large_first: bool) -> Vec<Duration> {
        let start = |d| async move {
            TestSite::new()
                .crawl_delay(Some(d))
                .track_requests(true)
                .start()
                .await
                .expect("site")
        };
        let (small, large) = (start(0.2).await, start(1.0).await);
        let f = one_at_a_time()
            .politeness_key(trawl_fetcher::PolitenessKey::Ip)
            .build()
            .expect("fetcher");
        let (first, second) = if large_first {
            (&large, &small)
        } else {
            (&small, &large)
        };
        // Each first fetch reads its site's robots.txt: the second one is read last.
        for site in [first, second, first, second] {
            f.fetch(&site.site().page_url(1)).await.expect("fetch");
        }
        let gate = f.gate(&url::Url::parse(&small.site().page_url(1)).expect("url"));
        assert!(Arc::ptr_eq(
            &gate,
            &f.gate(&url::Url::parse(&large.site().page_url(1)).expect("url"))
        ));
        assert_eq!(gate.crawl_delay(), Duration::from_secs(1));
        // Every request start after both robots.txt were read, both sites together.
        let mut log: Vec<_> = small.requests().into_iter().chain(large.requests()).collect();
        log.sort_by_key(|r| r.at);
        let second_robots = log
            .iter()
            .rposition(|r| r.url.ends_with("/robots.txt"))
            .expect("robots.txt");
        let t0 = log[second_robots].at;
        log[second_robots..].iter().map(|r| r.at - t0).collect()
    }
    let (a, b) = tokio::join!(starts(false), starts(true));
    for since in [&a, &b] {
        assert_eq!(since.len(), 4, "{since:?}");
        // The contract from the first of them, as `tests/e2e/politeness.rs` reads
        // it: a gap between neighbours is also shortened by a late send.
        for (k, t) in since.iter().enumerate() {
            assert!(
                *t + Duration::from_millis(20) >= Duration::from_secs(k as u64),
                "spaced by the largest Crawl-delay: request {k} {t:?} after the last robots.txt: {since:?}"
            );
        }
    }
}
