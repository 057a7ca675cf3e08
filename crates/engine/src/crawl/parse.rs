//! The parse stage.
//!
//! - Receives: [`Fetched`] pages from the fetch stage (`PARSE_CHANNEL`).
//! - Sends: batches of [`Done`] to the commit thread (`COMMIT_CHANNEL`).
//! - Owns: the semaphore of `parse_threads` permits that bounds the blocking parses.
//!
//! Pages are parsed in batches of up to [`PARSE_BATCH`] per `spawn_blocking` call: one
//! thread hand-off per batch, not per page. A batch also takes its share of the parse
//! byte budget ([`PARSE_BYTES`]), so parses are bounded by bytes as well as by count:
//! a large page's tree is built alone, not beside another one. Each page's body-budget
//! permit is released once its page is processed. Each page becomes a record, an outcome
//! for the frontier, and the links to follow, every one of them through [`follow`]:
//! scope, depth and the path budgets, whichever way the URL was found (a link, a
//! redirect, a sitemap).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use trawl_fetcher::GateSnapshot;
use trawl_frontier::{Lease, NewUrl, Outcome, Priority};
use trawl_parser::SitemapKind;
use trawl_sink::{Discovery, FailureInfo, PageRecord, RobotsFlags, SKIPPED_CONTENT_TYPE};
use url::Url;

use super::fetch::{Fetch, Fetched};
use super::record::OwnedExchange;
use super::schedule::Skip;
use super::{PARSE_BATCH, PARSE_BYTES, Shared, decode_origin, encode_data, encode_origin, fault, now_ms};

/// Links of one page beyond which they are enqueued in batches of this size ahead of
/// the page's ack (sitemaps), instead of inside it.
pub(crate) const ENQUEUE_CHUNK: usize = 1024;

/// How long a host whose robots.txt could not be read waits before its URLs are tried
/// again (the fetcher keeps that verdict for a minute).
const ROBOTS_UNAVAILABLE_WAIT: Duration = Duration::from_secs(61);

/// A finished lease on its way to the commit thread.
pub(crate) struct Done {
    pub(crate) lease: Lease,
    pub(crate) host: String,
    pub(crate) record: Option<PageRecord>,
    pub(crate) exchange: Option<OwnedExchange>,
    pub(crate) outcome: Outcome,
    pub(crate) discovered: Vec<NewUrl>,
    /// This result counts towards the host's circuit breaker (a connection error, a
    /// timeout, a 5xx); `Some(false)` is a response that resets it.
    pub(crate) host_failure: Option<bool>,
    pub(crate) cool: Option<GateSnapshot>,
    pub(crate) bytes: u64,
}

/// Hands fetched pages to `spawn_blocking` parses, at most `parse_threads` at once.
pub(crate) async fn parse_stage(
    sh: Arc<Shared>,
    mut rx: mpsc::Receiver<Fetched>,
    commit_tx: mpsc::Sender<Vec<Done>>,
) {
    let permits = Arc::new(Semaphore::new(sh.cfg.state.parse_threads.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        // Whatever else is waiting goes in the same blocking call, up to the parse
        // byte budget: a large page is parsed alone.
        let mut bytes = first.body_len();
        let mut batch = vec![first];
        while batch.len() < PARSE_BATCH && bytes < PARSE_BYTES {
            match rx.try_recv() {
                Ok(item) => {
                    bytes += item.body_len();
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        let Some(bytes_permit) = sh.parse_budget.take(bytes).await else {
            break;
        };
        let sh = sh.clone();
        let tx = commit_tx.clone();
        tasks.spawn_blocking(move || {
            let t0 = Instant::now();
            let done: Vec<Done> = batch.into_iter().map(|item| process(&sh, item)).collect();
            sh.stats
                .parse_us
                .fetch_add(t0.elapsed().as_micros() as u64, Relaxed);
            sh.live.stage("parse", t0.elapsed().as_secs_f64());
            drop((permit, bytes_permit));
            let _ = tx.blocking_send(done);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// The path of a canonical URL string (`/` when it has none).
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = &rest[rest.find('/').unwrap_or(rest.len())..];
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    if end == 0 { "/" } else { &rest[..end] }
}

/// Why [`follow`] did not follow a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Scope,
    Depth,
    Variants,
    Budget,
}

/// Checks a discovered URL (canonical) against scope, depth, the query-variant guard
/// and the path budgets; the reason when it is not followed (each counted: refused,
/// beyond depth, guarded, over budget).
fn follow(sh: &Shared, url: String, depth: u16) -> Result<String, Refused> {
    if sh.scope.check_str(&url).is_err() {
        sh.stats.refused.fetch_add(1, Relaxed);
        return Err(Refused::Scope);
    }
    if sh.cfg.limits.max_depth.is_some_and(|m| depth > m) {
        sh.stats.beyond_depth.fetch_add(1, Relaxed);
        return Err(Refused::Depth);
    }
    if !sh.variants.admit(&url) {
        sh.stats.links_guarded.fetch_add(1, Relaxed);
        return Err(Refused::Variants);
    }
    if let Some((key, max)) = budget_of(sh, &url) {
        let mut used = sh.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let n = used.entry(key).or_default();
        if *n >= max {
            sh.stats.over_budget.fetch_add(1, Relaxed);
            return Err(Refused::Budget);
        }
        *n += 1;
    }
    Ok(url)
}

/// The path budget `url` counts against (`host prefix` and its size), if any. A URL is
/// charged when [`follow`] takes it, and the commit stage gives the unit back when the
/// frontier had seen the URL already, so a budget counts distinct URLs.
pub(crate) fn budget_of(sh: &Shared, url: &str) -> Option<(String, u64)> {
    let budgets = &sh.cfg.limits.budgets;
    if budgets.is_empty() {
        return None;
    }
    let path = path_of(url);
    let b = budgets.iter().find(|b| path.starts_with(&b.prefix))?;
    Some((format!("{} {}", super::host_label(url), b.prefix), b.max))
}

/// The setting that lifts a canonicalization trap guard.
fn guard_flag(guard: &str) -> &'static str {
    match guard {
        "path-segments" => "--max-path-segments",
        "repeated-segments" => "--max-repeated-segments",
        "query-params" => "at most 32 query parameters",
        _ => "at most 2,048 bytes per URL",
    }
}

fn failure(kind: &str, message: String) -> Option<FailureInfo> {
    Some(FailureInfo {
        kind: kind.to_string(),
        message,
    })
}

/// Turns a fetched lease into a record, an outcome and discovered links. Runs on a
/// blocking thread.
pub(crate) fn process(sh: &Shared, item: Fetched) -> Done {
    let Fetched {
        lease,
        host,
        fetch,
        cool,
        robots_sitemaps,
        lane: _,
        budget: _budget,
        close_connection,
    } = item;
    let origin = decode_origin(&lease.data);
    let (discovery, parent) = (origin.discovery, origin.parent.clone());
    // In a recrawl: what the generation before knew of this URL (none: a new URL).
    let recrawling = sh.cfg.recrawl.is_some();
    let prior = if recrawling {
        crate::recrawl::decode_prior(&lease.data)
    } else {
        None
    };
    let child_depth = lease.depth.saturating_add(1);
    let mut discovered = Vec::new();
    // Sitemaps named by robots.txt: found with the host's first page.
    for sm in robots_sitemaps {
        let Ok(c) = trawl_parser::canonicalize(sm.trim(), None, &sh.parse_opts.canon) else {
            continue;
        };
        if let Ok(u) = follow(sh, c, 0) {
            discovered.push(NewUrl {
                url: u,
                depth: 0,
                priority: Priority::Sitemap,
                data: encode_data(Discovery::Sitemap, None),
            });
        }
    }
    let mut record = PageRecord {
        url: lease.url.clone(),
        final_url: lease.url.clone(),
        depth: lease.depth,
        parent,
        discovery,
        anchor: origin.anchor.clone(),
        fetched_at: trawl_sink::rfc3339_ms(now_ms()),
        ..PageRecord::default()
    };
    let is_sitemap = lease.priority == Priority::Sitemap;
    let failed = |lease: Lease,
                  mut record: PageRecord,
                  kind: &str,
                  message: String,
                  host_failure,
                  cool,
                  discovered| {
        record.error = failure(kind, message.clone());
        Done {
            lease,
            host: host.clone(),
            record: (!is_sitemap).then_some(record),
            exchange: None,
            outcome: Outcome::Failed(format!("{kind}: {message}")),
            discovered,
            host_failure,
            cool,
            bytes: 0,
        }
    };
    let fetch = match fetch {
        Fetch::Response(r) => Ok(*r),
        Fetch::Skipped(why) => Err(why),
    };
    let fetched = match fetch {
        Err(Skip::Unchanged) => {
            // Not fetched: the sitemap says it last changed before --changed-since.
            // The record stands for what was known, and the history keeps it so.
            let p = prior.unwrap_or_default();
            record.recrawl = Some(trawl_sink::SKIPPED_UNCHANGED.to_string());
            record.content_hash = p.hash;
            record.etag = p.etag;
            record.last_modified = p.last_modified;
            record.carried = Some(trawl_sink::Carried {
                status: p.status,
                capture: p.capture,
            });
            return Done {
                lease,
                host,
                record: Some(record),
                exchange: None,
                outcome: Outcome::Done,
                discovered,
                host_failure: None,
                cool: None,
                bytes: 0,
            };
        }
        Err(Skip::HostUnavailable) => {
            let message =
                "host unavailable: too many consecutive failures, so no request was made".to_string();
            return failed(lease, record, "host-unavailable", message, None, None, discovered);
        }
        Err(Skip::TooManyAttempts) => {
            let message = format!(
                "leased {} times without completing (a crash loop?), so it is not fetched again",
                lease.attempts - 1
            );
            return failed(
                lease,
                record,
                "too-many-attempts",
                message,
                None,
                None,
                discovered,
            );
        }
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            let mut cool = cool;
            // robots.txt unreadable (5xx, 429, down): the fetcher disallows the host
            // for a minute; try again after that.
            if matches!(e, trawl_fetcher::Error::RobotsUnavailable { .. })
                && let Ok(u) = Url::parse(&lease.url)
            {
                let gate = sh.fetcher.gate(&u);
                gate.cool_down(Some(ROBOTS_UNAVAILABLE_WAIT));
                cool = Some(gate.snapshot());
            }
            let host_failure = e.counts_against_host().then_some(true);
            // Transient failures go back to the frontier's queue (the host's gate is
            // cooling down meanwhile), so no task sits out a Retry-After holding a
            // fetch slot, and a cool-down is persisted the moment it starts.
            // A request that was not sent (the host began cooling down) is retried whatever
            // its attempts: it made none.
            let unsent = matches!(e, trawl_fetcher::Error::CoolingDown { .. });
            if unsent || (e.is_transient() && lease.attempts < sh.cfg.fetch.max_attempts.max(1)) {
                return Done {
                    lease,
                    host,
                    record: None,
                    exchange: None,
                    outcome: Outcome::Retry,
                    discovered,
                    host_failure,
                    cool,
                    bytes: 0,
                };
            }
            record.status = e.status();
            if prior.is_some() && matches!(record.status, Some(404 | 410)) {
                record.recrawl = Some("gone".to_string());
            }
            return failed(
                lease,
                record,
                e.kind(),
                e.to_string(),
                host_failure,
                cool,
                discovered,
            );
        }
    };
    record.status = Some(fetched.status);
    record.protocol = Some(fetched.protocol.to_string());
    record.content_type = fetched.content_type.clone();
    record.wire_bytes = fetched.wire_bytes;
    record.body_bytes = fetched.body_bytes;
    record.timings = trawl_sink::Timings {
        queued_ms: fetched.timings.queued.as_secs_f64() * 1000.0,
        first_byte_ms: fetched.timings.first_byte.as_secs_f64() * 1000.0,
        total_ms: fetched.timings.total.as_secs_f64() * 1000.0,
    };
    if !fetched.body.is_empty() {
        record.content_hash = Some(format!(
            "xxh3:{:032x}",
            xxhash_rust::xxh3::xxh3_128(&fetched.body)
        ));
    }
    let header = |name: http::header::HeaderName| {
        fetched
            .headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(String::from)
    };
    record.etag = header(http::header::ETAG);
    record.last_modified = header(http::header::LAST_MODIFIED);
    if recrawling && !is_sitemap {
        if let Some(p) = prior.as_ref().filter(|_| fetched.status == 304) {
            // Not modified: the content is the one known, under its validators
            // (unless the 304 sent new ones).
            record.content_hash.clone_from(&p.hash);
            record.etag = record.etag.take().or_else(|| p.etag.clone());
            record.last_modified = record.last_modified.take().or_else(|| p.last_modified.clone());
        }
        record.recrawl = Some(
            crate::recrawl::outcome(prior.as_ref(), fetched.status, record.content_hash.as_deref())
                .to_string(),
        );
    }
    if fetched.body_skipped {
        record.skipped = Some(SKIPPED_CONTENT_TYPE.to_string());
        sh.stats.bodies_skipped.fetch_add(1, Relaxed);
    }
    let ct = fetched.content_type.as_deref().unwrap_or("").to_ascii_lowercase();
    if let Some(target) = &fetched.redirect_to {
        record.redirect_to = Some(target.to_string());
        match trawl_parser::canonicalize(target.as_str(), None, &sh.parse_opts.canon) {
            Ok(c) => {
                if let Ok(u) = follow(sh, c, child_depth) {
                    discovered.push(NewUrl {
                        url: u,
                        depth: child_depth,
                        priority: if is_sitemap {
                            Priority::Sitemap
                        } else {
                            Priority::Redirect
                        },
                        data: encode_origin(Discovery::Redirect, Some(&lease.url), origin.anchor.as_deref()),
                    });
                }
            }
            Err(_) => {
                sh.stats.refused.fetch_add(1, Relaxed);
            }
        }
    } else if fetched.body_skipped {
        // Nothing to read: the fetcher left the body on the wire.
        if is_sitemap {
            tracing::debug!(url = %lease.url, content_type = %ct, "a sitemap of a type sitemaps are not served as: not read");
        }
    } else if is_sitemap && (200..300).contains(&fetched.status) {
        sh.stats.sitemaps.fetch_add(1, Relaxed);
        if !read_sitemap(sh, &lease, &fetched.body, &mut discovered) {
            // Stopped half-way: read it again on resume (enqueue is idempotent).
            return Done {
                lease,
                host,
                record: None,
                exchange: None,
                outcome: Outcome::Retry,
                discovered,
                host_failure: None,
                cool,
                bytes: 0,
            };
        }
    } else if (200..300).contains(&fetched.status)
        && (ct.contains("html") || ct.is_empty())
        && discovery != Discovery::Requisite
    {
        let x_robots = fetched
            .headers
            .get("x-robots-tag")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let page = trawl_parser::parse_page(
            &fetched.body,
            fetched.content_type.as_deref(),
            &fetched.final_url,
            x_robots.as_deref(),
            &sh.parse_opts,
        );
        record.title = page.title;
        record.outlinks = page.links.len() as u32;
        let hit = page.limits_hit;
        if hit.links {
            record.limits.push(format!(
                "links: {} links past {} not followed",
                hit.links_dropped, sh.parse_opts.max_links
            ));
            sh.stats.links_dropped.fetch_add(hit.links_dropped, Relaxed);
        }
        if hit.depth {
            record.limits.push(format!(
                "depth: tags nested deeper than {} left out (their content and links kept)",
                sh.parse_opts.max_depth
            ));
        }
        if hit.input {
            record.limits.push(format!(
                "input: only the first {} bytes parsed",
                sh.parse_opts.max_input_bytes
            ));
        }
        for (guard, n) in &hit.guarded {
            record.limits.push(format!(
                "{guard}: {n} links refused by this trap guard ({})",
                guard_flag(guard)
            ));
            sh.stats.links_guarded.fetch_add(*n, Relaxed);
        }
        if hit != Default::default() {
            sh.stats.pages_over_caps.fetch_add(1, Relaxed);
        }
        record.robots = RobotsFlags {
            noindex: page.robots.noindex,
            nofollow: page.robots.nofollow,
        };
        sh.stats.links.fetch_add(page.links.len() as u64, Relaxed);
        // Requisites (--requisites) whatever the robots meta says: they are part of
        // this page, not links to follow; at the page's own depth.
        for r in page.requisites {
            if let Ok(u) = follow(sh, r, lease.depth) {
                discovered.push(NewUrl {
                    url: u,
                    depth: lease.depth,
                    priority: Priority::Page,
                    data: encode_data(Discovery::Requisite, Some(&lease.url)),
                });
            }
        }
        if !page.robots.nofollow {
            let mut variants_refused = 0u64;
            for link in page.links {
                let followed = follow(sh, link.url, child_depth);
                if let Err(Refused::Variants) = followed {
                    variants_refused += 1;
                }
                if let Ok(u) = followed {
                    discovered.push(NewUrl {
                        url: u,
                        depth: child_depth,
                        priority: Priority::Page,
                        data: encode_origin(Discovery::Link, Some(&lease.url), Some(&link.text)),
                    });
                }
            }
            if variants_refused > 0 {
                record.limits.push(format!(
                    "query-variants: {variants_refused} links not followed: their paths had {} distinct queries already (--max-query-variants)",
                    sh.cfg.limits.max_query_variants.unwrap_or_default()
                ));
            }
        }
    }
    // With WARC output the fetcher reads every page body. Were one skipped all the
    // same, archiving it empty would misstate what was served.
    let validators = prior.as_ref().map(|p| p.validators()).filter(|v| !v.is_empty());
    let mut exchange = (sh.want_exchange && !is_sitemap && !fetched.body_skipped).then(|| {
        OwnedExchange::of(
            &fetched,
            &sh.cfg.politeness.user_agent,
            validators.as_ref(),
            close_connection,
        )
    });
    // A revisit refers to the capture that holds the payload: a 304 always (with no
    // capture known, it says so without a reference), an unchanged body when the
    // generation before archived it.
    if let (Some(x), Some(p)) = (exchange.as_mut(), prior.as_ref()) {
        let capture = p.capture.clone();
        x.revisit = match (record.recrawl.as_deref(), capture) {
            (Some("not-modified"), c) => Some((
                trawl_sink::RevisitProfile::ServerNotModified,
                if c.is_some() {
                    lease.url.clone()
                } else {
                    String::new()
                },
                c.unwrap_or_default(),
            )),
            (Some("unchanged"), Some(c)) => Some((
                trawl_sink::RevisitProfile::IdenticalPayloadDigest,
                lease.url.clone(),
                c,
            )),
            _ => None,
        };
    }
    sh.stats.wire_bytes.fetch_add(fetched.wire_bytes, Relaxed);
    Done {
        lease,
        host,
        record: (!is_sitemap).then_some(record),
        exchange,
        outcome: Outcome::Done,
        discovered,
        host_failure: Some(fetched.status >= 500),
        cool,
        bytes: fetched.body_bytes,
    }
}

/// Queued URLs in the whole frontier above which the sitemap thread waits before its
/// next batch: while the crawl has this much work, new sitemap URLs can wait, and the
/// frontier's writes go to the pages. Ingestion then keeps pace with the crawl instead
/// of taking the frontier for itself at the start (a million sitemap URLs held back
/// the first records for a minute).
const SITEMAP_QUEUE_WATERMARK: u64 = 20_000;

/// Reads a sitemap's `<loc>`s into `discovered`. A sitemap lists up to 50,000 URLs:
/// they are enqueued as they come, in batches, ahead of the sitemap's ack (enqueue is
/// idempotent, so a crash in between only means the sitemap is read again). Memory
/// holds one batch, not the whole file's worth. Returns `false` when a stop came
/// before every batch was in.
fn read_sitemap(sh: &Shared, lease: &Lease, body: &[u8], discovered: &mut Vec<NewUrl>) -> bool {
    let child_depth = lease.depth.saturating_add(1);
    let map = match super::sitemap::read(body) {
        Ok(map) => map,
        Err(e) => {
            tracing::debug!(url = %lease.url, error = %e, "sitemap does not read");
            return true;
        }
    };
    let mut stalled = false;
    for entry in map.entries {
        let Ok(c) = trawl_parser::canonicalize(entry.loc.trim(), None, &sh.parse_opts.canon) else {
            continue;
        };
        let (priority, depth) = match map.kind {
            SitemapKind::Index => (Priority::Sitemap, lease.depth),
            _ => (Priority::Page, child_depth),
        };
        if let Ok(u) = follow(sh, c, depth) {
            discovered.push(NewUrl {
                url: u,
                depth,
                priority,
                // No parent: a sitemap lists thousands, and the discovery says enough.
                data: encode_data(Discovery::Sitemap, None),
            });
        }
        if discovered.len() >= ENQUEUE_CHUNK {
            // Unless the crawl is not acking anything (every host waiting, or at its
            // page limit): then the queue will not shrink, and waiting would hold the
            // crawl's end up for ever.
            // A store that cannot count is reported by the enqueue below.
            while !stalled && sh.frontier.counts().map_or(0, |c| c.queued) > SITEMAP_QUEUE_WATERMARK {
                if sh.stop.is_cancelled() {
                    return false;
                }
                stalled = !sh.acked.wait(Duration::from_secs(1));
            }
            let chunk = std::mem::take(discovered);
            if let Err(e) = sh.frontier.enqueue(chunk) {
                // The frontier is now poisoned: the ack reports it and stops.
                tracing::error!(error = %e, "cannot enqueue sitemap URLs");
            }
            fault::point("enqueue-chunk");
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn paths_of_canonical_urls() {
        assert_eq!(path_of("http://a.test/cal/2024?x=1"), "/cal/2024");
        assert_eq!(path_of("http://a.test"), "/");
        assert_eq!(path_of("http://a.test?q"), "/");
        assert_eq!(path_of("https://a.test:81/x#f"), "/x");
    }
}
