//! The HTTP side: listeners, routing, compression, latency and the request log.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request as HttpRequest, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body::{Reply, ReplyBody, SiteBody, StreamLog, StreamTrack};
use crate::robots::{self, RobotsVariant};
use crate::site::{SITEMAP_CHUNK, SITEMAP_MAX, Site};
use crate::{Latency, Request, html};

/// Which role a listener plays.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostKind {
    Site(usize),
    Robots(RobotsVariant),
    /// Every virtual host of the site on one listener, told apart by the `Host`
    /// header (the authority of an HTTP/2 request).
    VHosts,
    /// Bare `localhost` on the virtual hosts' listener: a page linking to `h0`.
    Portal,
}

/// Settings the handler needs, fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) latency: Latency,
    pub(crate) crawl_delay: Option<f64>,
    pub(crate) compression: bool,
    pub(crate) link_bad: bool,
    pub(crate) track: bool,
    /// The hidden per-client limit on the regular hosts' pages.
    pub(crate) rate_limit: Option<crate::RateLimit>,
}

/// State shared by every connection of every host.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) site: Site,
    pub(crate) opts: Options,
    pub(crate) variant_bases: Vec<(RobotsVariant, String)>,
    /// Every request, when tracking is on.
    pub(crate) log: Mutex<Vec<Request>>,
    /// Requests per exact URL (base, path and query as received). Always kept for
    /// `/bad/`, whose answers depend on repetition; for everything when tracking is on.
    pub(crate) counts: Mutex<HashMap<String, u64>>,
    /// Requests per regular page, whatever spelling of its URL was used.
    pub(crate) page_hits: Vec<AtomicU32>,
    pub(crate) private_hits: AtomicU64,
    pub(crate) total: AtomicU64,
    /// Connections accepted.
    pub(crate) connections: AtomicU64,
    /// What became of the streamed bodies under `/bad/`, by URL.
    pub(crate) streams: Arc<StreamLog>,
    /// The generation served (`RunningSite::set_generation`).
    pub(crate) generation: AtomicU64,
    /// The sitemaps answer 404 (`RunningSite::set_sitemaps`).
    pub(crate) no_sitemaps: std::sync::atomic::AtomicBool,
    /// The clients' windows under `opts.rate_limit`.
    pub(crate) limiter: crate::limit::Limiter,
}

/// Accepts connections on `listener` until `stop` fires. With `tls`, every
/// connection is a TLS one, HTTP/2 or HTTP/1.1 as the client picks; without, plain
/// HTTP/1.1.
pub(crate) async fn serve(
    listener: TcpListener,
    kind: HostKind,
    base: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue; }
            },
        };
        let _ = stream.set_nodelay(true);
        shared
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shared = shared.clone();
        let base = base.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                let base = base.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, kind, &base, peer, req).await) }
            });
            match tls {
                None => {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = conn => {}
                    }
                }
                Some(acceptor) => {
                    // A client that does not trust the CA aborts here: nothing to serve.
                    let handshake = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = acceptor.accept(stream) => r,
                    };
                    let Ok(stream) = handshake else { return };
                    // The auto builder reads the connection preface, so it serves
                    // whichever protocol the client speaks after ALPN.
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = conn => {}
                    }
                }
            }
        });
    }
}

/// Decodes `%XX` escapes in a path; invalid escapes are kept as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host a request on the virtual hosts' listener is for, and its base URL; `None`
/// for a name that is not one of them.
fn virtual_host(shared: &Shared, base: &str, req: &HttpRequest<Incoming>) -> Option<(HostKind, String)> {
    let authority = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    let name = authority.rsplit_once(':').map_or(authority, |(n, _)| n);
    if name.eq_ignore_ascii_case("localhost") {
        return Some((HostKind::Portal, base.to_string()));
    }
    let k = crate::site::vhost_of(authority, shared.site.hosts())?;
    Some((HostKind::Site(k), shared.site.bases()[k].clone()))
}

async fn handle(
    shared: &Shared,
    kind: HostKind,
    base: &str,
    peer: SocketAddr,
    req: HttpRequest<Incoming>,
) -> Response<SiteBody> {
    let (kind, base) = match kind {
        HostKind::VHosts => match virtual_host(shared, base, &req) {
            Some((kind, base)) => (kind, base),
            None => {
                shared.total.fetch_add(1, Ordering::Relaxed);
                return to_response(Reply::text(404, "no such virtual host"), "", None);
            }
        },
        other => (other, base.to_string()),
    };
    let base = base.as_str();
    let at = tokio::time::Instant::now();
    let version = format!("{:?}", req.version());
    let raw_path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let path = percent_decode(&raw_path);
    let url = if query.is_empty() {
        format!("{base}{raw_path}")
    } else {
        format!("{base}{raw_path}?{query}")
    };
    shared.total.fetch_add(1, Ordering::Relaxed);

    let is_bad = path.starts_with("/bad");
    let nth = if shared.opts.track || is_bad {
        let mut counts = shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        let c = counts.entry(url.clone()).or_insert(0);
        *c += 1;
        *c - 1
    } else {
        0
    };

    match shared.opts.latency {
        Latency::None => {}
        Latency::Fixed(d) => tokio::time::sleep(d).await,
        Latency::Random(max) => {
            let ms = max.as_micros() as u64;
            let r = crate::site::mix(shared.total.load(Ordering::Relaxed)) % ms.max(1);
            tokio::time::sleep(Duration::from_micros(r)).await;
        }
    }

    let limited = match (kind, shared.opts.rate_limit) {
        (HostKind::Site(_), Some(limit)) if path != "/robots.txt" => {
            (!shared.limiter.admit(limit, peer.ip(), at)).then_some(limit)
        }
        _ => None,
    };
    let reply = match kind {
        _ if limited.is_some() => {
            let reply = Reply::text(429, "too many requests");
            match limited.and_then(|l| l.retry_after) {
                Some(s) => reply.header("retry-after", &s.to_string()),
                None => reply,
            }
        }
        HostKind::Site(_) if path.starts_with("/http/") => http_reply(&path, &query, req.headers()),
        HostKind::Site(h) => site_reply(shared, h, base, &path, &query, nth, req.headers()),
        HostKind::Robots(v) => variant_reply(v, base, &path),
        HostKind::Portal => portal_reply(shared, &path),
        // Resolved to a host above.
        HostKind::VHosts => Reply::text(404, "no such virtual host"),
    };
    if let HostKind::Site(h) = kind
        && let Some(i) = shared.site.page_for_path(h, &path)
        && shared.opts.track
        && let Some(c) = shared.page_hits.get(i as usize)
    {
        c.fetch_add(1, Ordering::Relaxed);
    }
    if path.starts_with("/private/") {
        shared.private_hits.fetch_add(1, Ordering::Relaxed);
    }
    if shared.opts.track {
        let mut log = shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push(Request {
            at,
            url: url.clone(),
            status: reply.status,
            version,
        });
    }

    let accept = req
        .headers()
        .get(http::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Streamed hostile bodies are counted, so that a test can tell how much of one the
    // server sent and whether the client hung up before its end.
    let track = is_bad.then(|| StreamTrack::new(shared.streams.clone(), url));
    to_response(
        reply,
        if shared.opts.compression && !is_bad && !path.starts_with("/broken/") {
            &accept
        } else {
            ""
        },
        track,
    )
}

/// The ETag and Last-Modified of `/http/etag`, which never changes.
pub const ETAG: &str = "\"v1-trawl\"";
/// The Last-Modified of `/http/etag`.
pub const LAST_MODIFIED: &str = "Wed, 21 Oct 2026 07:28:00 GMT";

/// Endpoints that answer on request headers: conditional GET and cookies.
/// - `/http/etag`: 200 with [`ETAG`] and [`LAST_MODIFIED`]; 304 when `If-None-Match`
///   names the ETag or `If-Modified-Since` is the Last-Modified date.
/// - `/http/cookie/set`: sets `trawl=yum` (path /).
/// - `/http/cookie/check`: 200 when the request carries `trawl=yum`, else 403.
/// - `/http/redirect?to=PATH`: 302 to `PATH` on the same host.
fn http_reply(path: &str, query: &str, headers: &http::HeaderMap) -> Reply {
    let header = |name: http::header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    match path {
        "/http/etag" => {
            let inm = header(http::header::IF_NONE_MATCH);
            let ims = header(http::header::IF_MODIFIED_SINCE);
            let status =
                if inm.split(',').any(|t| t.trim() == ETAG) || (inm.is_empty() && ims == LAST_MODIFIED) {
                    304
                } else {
                    200
                };
            let reply = if status == 304 {
                Reply::empty(304)
            } else {
                Reply::html(
                    200,
                    "<html><title>Validators</title><p>unchanged</p></html>".into(),
                )
            };
            reply.header("etag", ETAG).header("last-modified", LAST_MODIFIED)
        }
        "/http/cookie/set" => Reply::html(200, "<html><title>Cookie</title><p>set</p></html>".into())
            .header("set-cookie", "trawl=yum; Path=/"),
        "/http/cookie/check" => {
            let cookie = header(http::header::COOKIE);
            if cookie.split(';').any(|c| c.trim() == "trawl=yum") {
                Reply::html(
                    200,
                    "<html><title>Cookie</title><p>welcome back</p></html>".into(),
                )
            } else {
                Reply::text(403, "no cookie")
            }
        }
        "/http/redirect" => match query.strip_prefix("to=") {
            Some(to) if to.starts_with('/') => Reply::empty(302).header("location", to),
            _ => Reply::text(400, "to=/path wanted"),
        },
        _ => Reply::text(404, "not found"),
    }
}

fn site_reply(
    shared: &Shared,
    host: usize,
    base: &str,
    path: &str,
    query: &str,
    nth: u64,
    headers: &http::HeaderMap,
) -> Reply {
    let site = &shared.site;
    if let Some(i) = site.page_for_path(host, path) {
        return page_reply(shared, i, headers);
    }
    if let Some((g, i)) = path
        .strip_prefix("/new/")
        .and_then(|r| r.split_once('/'))
        .and_then(|(g, i)| Some((g.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        && site.new_page_exists(host, g, i, shared.generation.load(Ordering::Relaxed))
    {
        return Reply::html(
            200,
            format!(
                "<!DOCTYPE html>\n<html><head><title>New {g}/{i}</title></head><body><p>Added at generation {g} to page {i}.</p></body></html>\n"
            ),
        );
    }
    if let Some(n) = path.strip_prefix("/private/").and_then(|s| s.parse::<u64>().ok()) {
        return Reply::html(200, html::render_private(n));
    }
    if path.starts_with("/bad") {
        return crate::bad::respond(path, query, nth);
    }
    if site.has_broken_links()
        && let Some(status) = crate::broken::broken_status(path)
    {
        return match status {
            Some(s) => Reply::text(s, "broken on purpose"),
            // A length the body never reaches: the connection ends mid-body.
            None => crate::body::stream_reply(200, "text/html", None, |tx| {
                let _ = tx.blocking_send(Bytes::from_static(b"<html><p>cut short"));
            })
            .header("content-length", "100000"),
        };
    }
    let host_pages = || (host as u64..site.pages()).step_by(site.hosts());
    let generation = shared.generation.load(Ordering::Relaxed);
    if path.starts_with("/sitemap") && shared.no_sitemaps.load(Ordering::Relaxed) {
        return Reply::text(404, "no sitemaps here now");
    }
    match path {
        // A page's requisites: its stylesheet (whose own url() a crawler that follows
        // no requisite's links never asks for), its logo and its inline CSS's image.
        "/static/site.css" => Reply::bytes(
            200,
            "text/css",
            "body{margin:0;background:url(/static/bg.png)}\n".into(),
        ),
        "/static/logo.png" | "/static/brand.png" | "/static/bg.png" => {
            Reply::bytes(200, "image/png", STATIC_PNG.to_vec().into())
        }
        "/robots.txt" => Reply::bytes(
            200,
            "text/plain",
            robots::regular(base, shared.opts.crawl_delay).into(),
        ),
        "/sitemap.xml" => Reply::bytes(
            200,
            "application/xml",
            urlset(site, host_pages().take(SITEMAP_MAX as usize), generation).into(),
        ),
        "/sitemap.xml.gz" => {
            let xml = urlset(site, host_pages().take(SITEMAP_MAX as usize), generation);
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = enc.write_all(xml.as_bytes());
            Reply::bytes(200, "application/gzip", enc.finish().unwrap_or_default().into())
        }
        "/sitemap.txt" => {
            let mut s = String::new();
            for i in host_pages()
                .take(SITEMAP_MAX as usize)
                .filter(|i| site.in_sitemap(*i, generation))
            {
                s.push_str(&site.page_url(i));
                s.push('\n');
            }
            Reply::bytes(200, "text/plain", s.into())
        }
        "/sitemap_index.xml" => {
            let count = host_pages().count() as u64;
            let chunks = count.div_ceil(SITEMAP_CHUNK).max(1);
            let mut s = String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
            );
            for k in 0..chunks {
                s.push_str(&format!(
                    "  <sitemap><loc>{base}/sitemap-{k}.xml</loc></sitemap>\n"
                ));
            }
            s.push_str("</sitemapindex>\n");
            Reply::bytes(200, "application/xml", s.into())
        }
        _ => {
            let chunk = path
                .strip_prefix("/sitemap-")
                .and_then(|s| s.strip_suffix(".xml"))
                .and_then(|s| s.parse::<u64>().ok());
            match chunk {
                Some(k) => {
                    let pages = host_pages()
                        .skip((k * SITEMAP_CHUNK) as usize)
                        .take(SITEMAP_CHUNK as usize);
                    Reply::bytes(200, "application/xml", urlset(site, pages, generation).into())
                }
                None => Reply::text(404, "not found"),
            }
        }
    }
}

/// The bytes of every image under `/static/`: a PNG signature and an empty IHDR.
const STATIC_PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// A regular page at the generation served: 404 once it is gone, 304 to a
/// conditional GET that names its current validators, else the page with them and,
/// once it changed, its revisions and links to the pages they added.
fn page_reply(shared: &Shared, i: u64, headers: &http::HeaderMap) -> Reply {
    let site = &shared.site;
    let g = shared.generation.load(Ordering::Relaxed);
    if site.is_gone(i, g) {
        return Reply::text(404, "gone");
    }
    let (etag, last_modified) = (site.etag(i, g), site.last_modified(i, g));
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    let inm = header(http::header::IF_NONE_MATCH);
    let ims = header(http::header::IF_MODIFIED_SINCE);
    let matches = match (inm, &etag) {
        (Some(inm), Some(e)) => inm.split(',').any(|t| t.trim() == e),
        (Some(_), None) => false,
        (None, _) => ims.is_some() && ims == last_modified.as_deref(),
    };
    let reply = if matches {
        Reply::empty(304)
    } else {
        let mut html = html::render_page(site, i, shared.opts.link_bad);
        let changes = site.changes(i, g);
        if !changes.is_empty() {
            let mut extra = format!(
                "<section class=\"revised\"><p>Revised {} times.</p><ul>\n",
                changes.len()
            );
            for c in changes {
                extra.push_str(&format!("<li><a href=\"/new/{c}/{i}\">added at {c}</a></li>\n"));
            }
            extra.push_str("</ul></section>\n");
            if let Some(at) = html.rfind("</main>") {
                html.insert_str(at, &extra);
            }
        }
        Reply::html(200, html)
    };
    match (etag, last_modified) {
        (Some(e), Some(lm)) => reply.header("etag", &e).header("last-modified", &lm),
        _ => reply,
    }
}

/// A urlset of `pages` at generation `g`: those not gone, each with its `<lastmod>`
/// ([`Site::lastmod`]).
fn urlset(site: &Site, pages: impl Iterator<Item = u64>, g: u64) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    for i in pages.filter(|i| site.in_sitemap(*i, g)) {
        s.push_str("  <url><loc>");
        s.push_str(&site.page_url(i));
        s.push_str("</loc>");
        if let Some(lastmod) = site.lastmod(i, g) {
            s.push_str("<lastmod>");
            s.push_str(&lastmod);
            s.push_str("</lastmod>");
        }
        s.push_str("</url>\n");
    }
    s.push_str("</urlset>\n");
    s
}

/// Bare `localhost` next to the virtual hosts: a root page linking to `h0`'s root,
/// so that a crawl seeded here with subdomains in scope reaches every virtual host.
/// No robots.txt (a 404 allows everything).
fn portal_reply(shared: &Shared, path: &str) -> Reply {
    match path {
        "/" => Reply::html(
            200,
            format!(
                "<!DOCTYPE html><html><head><title>Virtual hosts</title></head><body>\
                 <a href=\"{}\">the first virtual host</a></body></html>\n",
                shared.site.root_url(0)
            ),
        ),
        _ => Reply::text(404, "not found"),
    }
}

fn variant_reply(v: RobotsVariant, base: &str, path: &str) -> Reply {
    match (v, path) {
        (RobotsVariant::ServerError, "/robots.txt") => Reply::text(503, "robots is down"),
        (RobotsVariant::NotFound, "/robots.txt") => Reply::text(404, "no robots here"),
        (RobotsVariant::Redirect, "/robots.txt") => Reply::empty(301).header("location", "/robots-real.txt"),
        (RobotsVariant::Redirect, "/robots-real.txt") => {
            Reply::bytes(200, "text/plain", robots::REDIRECT_TARGET_BODY.into())
        }
        (RobotsVariant::Html, "/robots.txt") => Reply::bytes(
            200,
            "text/html",
            robots::variant_body(v, base).unwrap_or_default().into(),
        ),
        (_, "/robots.txt") => Reply::bytes(
            200,
            "text/plain",
            robots::variant_body(v, base).unwrap_or_default().into(),
        ),
        (_, "/") => Reply::html(
            200,
            "<!DOCTYPE html><html><head><title>Robots variant</title></head><body>\
             <a href=\"/private/1\">private</a> <a href=\"/open/1\">open</a> <a href=\"/late/1\">late</a>\
             </body></html>\n"
                .to_string(),
        ),
        _ => Reply::html(
            200,
            "<!DOCTYPE html><html><head><title>ok</title></head><body>ok</body></html>\n".to_string(),
        ),
    }
}

/// Compresses a whole text body with the best encoding the client accepts.
fn compress(body: &[u8], accept: &str) -> Option<(&'static str, Vec<u8>)> {
    let accepts = |name: &str| {
        accept
            .split(',')
            .any(|t| t.split(';').next().map(str::trim) == Some(name))
    };
    if accepts("zstd") {
        return zstd::bulk::compress(body, 1).ok().map(|b| ("zstd", b));
    }
    if accepts("br") {
        let mut out = Vec::with_capacity(body.len() / 3);
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 4, 22);
        w.write_all(body).ok()?;
        drop(w);
        return Some(("br", out));
    }
    if accepts("gzip") {
        let mut enc =
            flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 3), flate2::Compression::fast());
        enc.write_all(body).ok()?;
        return enc.finish().ok().map(|b| ("gzip", b));
    }
    None
}

fn to_response(reply: Reply, accept: &str, track: Option<StreamTrack>) -> Response<SiteBody> {
    let mut body = reply.body;
    let mut headers = reply.headers;
    if let ReplyBody::Full(b) = &body
        && b.len() >= 256
        && !accept.is_empty()
        && !headers.iter().any(|(k, _)| *k == "content-encoding")
        && let Some((enc, out)) = compress(b, accept)
    {
        headers.push(("content-encoding", enc.to_string()));
        headers.push(("vary", "accept-encoding".to_string()));
        body = ReplyBody::Full(Bytes::from(out));
    }
    let mut resp = Response::new(SiteBody::start(body, track));
    *resp.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// Binds `count` listeners on `ip`, from `first_port` upwards (or on ephemeral ports when
/// `first_port` is 0).
pub(crate) async fn bind(
    ip: std::net::IpAddr,
    first_port: u16,
    count: usize,
) -> std::io::Result<Vec<(TcpListener, SocketAddr)>> {
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let port = if first_port == 0 {
            0
        } else {
            first_port
                .checked_add(k as u16)
                .ok_or_else(|| std::io::Error::other("port range overflows"))?
        };
        let l = TcpListener::bind(SocketAddr::new(ip, port)).await?;
        let a = l.local_addr()?;
        out.push((l, a));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/page/%35"), "/page/5");
        assert_eq!(percent_decode("/a%2"), "/a%2");
        assert_eq!(percent_decode("/%7Euser"), "/~user");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
