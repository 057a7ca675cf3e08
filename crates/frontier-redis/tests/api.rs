//! What the model test does not cover: several workers (claims, expiry and reaping,
//! fairness, deferred release, shared politeness and robots.txt), the ack sequence
//! (a resent ack, lost acks), the server's eviction policy, and a server killed and
//! restarted under a live store. Each test has a redis-server of its own.

use std::time::Duration;

use trawl_frontier::{
    Ack, Error, FrontierStore, HostId, Lease, NewUrl, Outcome, Politeness, Priority, RobotsEntry, UrlState,
};
use trawl_frontier_redis::testing::RedisServer;
use trawl_frontier_redis::{RedisFrontier, RedisOptions};

const TTL: Duration = Duration::from_secs(30);

fn url(host: usize, i: usize) -> String {
    format!("http://h{host}.test/{i}")
}

fn open(opts: RedisOptions) -> RedisFrontier {
    RedisFrontier::open(opts).expect("open")
}

fn seed(f: &RedisFrontier, hosts: usize, per_host: usize) {
    let urls = (0..hosts)
        .flat_map(|h| (0..per_host).map(move |i| NewUrl::page(url(h, i), 0)))
        .collect();
    assert_eq!(f.enqueue(urls).expect("enqueue"), hosts * per_host);
}

fn host(f: &RedisFrontier, h: usize) -> HostId {
    f.host_id(&format!("http://h{h}.test"))
        .expect("read")
        .expect("known host")
}

fn done(lease: Lease, links: Vec<NewUrl>) -> Ack {
    Ack {
        lease,
        outcome: Outcome::Done,
        discovered: links,
    }
}

fn raw(server: &RedisServer) -> redis::Connection {
    server
        .client()
        .expect("client")
        .get_connection()
        .expect("connection")
}

#[test]
fn a_resent_ack_is_answered_and_not_applied_again() {
    let server = RedisServer::start().expect("server");
    let f = open(server.options("c", "a"));
    seed(&f, 1, 1);
    let lease = f.lease(host(&f, 0), 1).expect("lease").remove(0);
    let links = vec![NewUrl::page(url(0, 1), 1), NewUrl::page(url(0, 2), 1)];
    let retry = Ack {
        lease: lease.clone(),
        outcome: Outcome::Retry,
        discovered: links.clone(),
    };
    let new = f.ack_new(vec![retry], &[("s", b"one")]).expect("ack");
    assert_eq!(new.len(), 2);
    let after = f.counts().expect("counts");
    assert_eq!((after.queued, after.leased, after.done), (3, 0, 0));

    // The reply was "lost": the same ack goes again with the same sequence number,
    // and with another outcome and checkpoint to show that none of it is applied.
    f.resend_last_ack_for_tests();
    let again = f
        .ack_new(
            vec![done(lease, vec![NewUrl::page(url(0, 3), 1)])],
            &[("s", b"two")],
        )
        .expect("resent ack");
    assert_eq!(again, new, "a resend answers what the first send did");
    assert_eq!(f.counts().expect("counts"), after);
    assert_eq!(f.checkpoint("s").expect("cp"), Some(b"one".to_vec()));
    assert_eq!(f.get(&url(0, 3)).expect("get"), None);
    assert_eq!(f.verify().expect("consistent"), after);
}

#[test]
fn lost_acks_are_lost_ownership_and_apply_nothing() {
    let server = RedisServer::start().expect("server");
    let f = open(server.options("c", "a"));
    seed(&f, 1, 2);
    let mut leases = f.lease(host(&f, 0), 2).expect("lease");
    let second = leases.remove(1);
    let first = leases.remove(0);
    f.ack(vec![done(first, vec![])], &[("s", b"1")]).expect("ack 1");
    // The server forgets ack 1 (as one restarted from an everysec AOF may).
    redis::cmd("HSET")
        .arg("trawl:c:w:a")
        .arg("seq")
        .arg(0)
        .exec(&mut raw(&server))
        .expect("rewind");
    let before = f.counts().expect("counts");
    let err = f
        .ack(
            vec![done(second.clone(), vec![NewUrl::page(url(0, 9), 1)])],
            &[("s", b"2")],
        )
        .expect_err("acks were lost");
    assert!(matches!(err, Error::LostOwnership { .. }), "{err}");
    assert_eq!(f.counts().expect("counts"), before);
    assert_eq!(f.checkpoint("s").expect("cp"), Some(b"1".to_vec()));
    assert_eq!(f.get(&url(0, 9)).expect("get"), None);
    assert_eq!(
        f.get(&second.url).expect("get").expect("known").state,
        UrlState::Leased
    );
}

#[test]
fn an_ack_of_a_lease_that_is_not_held_is_lost_ownership() {
    let server = RedisServer::start().expect("server");
    let f = open(server.options("c", "a"));
    seed(&f, 1, 1);
    let lease = f.lease(host(&f, 0), 1).expect("lease").remove(0);
    f.crash_for_tests();
    let f = open(server.options("c", "a"));
    assert_eq!(f.open_report().requeued, 1);
    let err = f.ack(vec![done(lease, vec![])], &[]).expect_err("not held");
    assert!(matches!(err, Error::LostOwnership { .. }), "{err}");
    assert_eq!(f.counts().expect("counts").queued, 1);
    // A refused ack does not spend its sequence number: the next one goes through.
    let lease = f.lease(host(&f, 0), 1).expect("lease").remove(0);
    assert_eq!(lease.attempts, 2);
    f.ack(vec![done(lease, vec![])], &[]).expect("ack");
    assert_eq!(f.counts().expect("counts").done, 1);
}

#[test]
fn a_host_another_worker_holds_gives_no_leases_and_is_not_ready() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    let b = open(server.options("c", "b"));
    seed(&a, 2, 3);
    let h0 = host(&a, 0);
    let h1 = host(&a, 1);
    assert_eq!(a.lease(h0, 1).expect("lease").len(), 1);
    assert!(a.may_start(h0, 1_000));
    assert!(b.lease(h0, 5).expect("lease").is_empty());
    assert!(!b.may_start(h0, 0));
    assert_eq!(b.ready_scan(None, 0, 10).expect("scan").hosts, vec![h1]);
    assert_eq!(a.ready_scan(None, 0, 10).expect("scan").hosts, vec![h0, h1]);
    // B can have the other host; then A's scan no longer shows it.
    assert_eq!(b.lease(h1, 1).expect("lease").len(), 1);
    assert_eq!(a.ready_scan(None, 0, 10).expect("scan").hosts, vec![h0]);
    assert_eq!(a.counts().expect("counts").leased, 2);
    assert!(!a.finished().expect("finished"));
}

#[test]
fn a_claim_that_runs_out_is_reaped_by_the_next_worker_and_the_late_ack_is_refused() {
    let server = RedisServer::start().expect("server");
    let ttl = Duration::from_secs(5);
    let a = open(server.options("c", "a").claim_ttl(ttl));
    seed(&a, 1, 3);
    let h = host(&a, 0);
    let leases = a.lease(h, 2).expect("lease");
    assert_eq!(leases.len(), 2);
    // B's clock is past A's claim: B sees it run out without anyone waiting.
    let b = open(server.options("c", "b").claim_ttl(ttl).clock_offset_ms(10_000));
    let got = b.lease(h, 10).expect("lease");
    // A's two leases went back at the end of the queue, in lease order, attempts kept,
    // and B leased them with the URL that was still queued.
    let urls: Vec<&str> = got.iter().map(|l| l.url.as_str()).collect();
    assert_eq!(
        urls,
        [url(0, 2).as_str(), leases[0].url.as_str(), leases[1].url.as_str()]
    );
    assert_eq!(got.iter().map(|l| l.attempts).collect::<Vec<_>>(), [1, 2, 2]);
    let err = a
        .ack(
            vec![done(leases[0].clone(), vec![NewUrl::page(url(0, 7), 1)])],
            &[("s", b"x")],
        )
        .expect_err("the claim ran out");
    assert!(matches!(err, Error::LostOwnership { .. }), "{err}");
    assert_eq!(a.get(&url(0, 7)).expect("get"), None);
    assert_eq!(a.checkpoint("s").expect("cp"), None);
    // A finds out at its next renewal, and may start nothing on the host.
    a.renew().expect("renew");
    assert!(!a.may_start(h, 0));
    assert!(a.claimed().is_empty());
    let c = b.verify().expect("consistent");
    assert_eq!((c.queued, c.leased), (0, 3));
    b.ack(got.into_iter().map(|l| done(l, vec![])).collect(), &[])
        .expect("ack");
    assert!(b.finished().expect("finished"));
}

#[test]
fn a_claim_runs_out_on_the_real_clock_once_nothing_renews_it() {
    let server = RedisServer::start().expect("server");
    let ttl = Duration::from_millis(300);
    let a = open(server.options("c", "a").claim_ttl(ttl));
    seed(&a, 1, 1);
    let h = host(&a, 0);
    let lease = a.lease(h, 1).expect("lease").remove(0);
    assert!(a.may_start(h, 0));
    // A stops renewing (dropping the handle stops its renewal thread and releases
    // nothing, as a crash would) with the lease out.
    drop(a);
    let b = open(server.options("c", "b").claim_ttl(ttl));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        let got = b.lease(h, 1).expect("lease");
        if !got.is_empty() || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(got.len(), 1, "B got the host once A's claim ran out");
    assert_eq!(got[0].url, lease.url);
    assert_eq!(got[0].attempts, 2);
    assert!(b.may_start(h, 0));
    assert!(
        !b.may_start(h, 10_000),
        "a request longer than the claim may not start"
    );
}

#[test]
fn a_release_with_leases_out_happens_with_the_last_ack() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    let b = open(server.options("c", "b"));
    seed(&a, 1, 4);
    let h = host(&a, 0);
    let mut leases = a.lease(h, 2).expect("lease");
    a.release(h).expect("release");
    assert!(a.may_start(h, 0), "the claim holds while leases are out");
    assert!(b.lease(h, 1).expect("lease").is_empty());
    a.ack(vec![done(leases.remove(0), vec![])], &[]).expect("ack");
    assert!(b.lease(h, 1).expect("lease").is_empty());
    a.ack(vec![done(leases.remove(0), vec![])], &[]).expect("ack");
    assert!(!a.may_start(h, 0));
    assert_eq!(b.lease(h, 1).expect("lease").len(), 1);
    // Releasing a host with nothing leased is at once.
    b.release(h).expect("release");
    assert_eq!(
        a.lease(h, 5).expect("lease").len(),
        0,
        "b still has a lease of it"
    );
}

#[test]
fn a_release_without_leases_is_at_once_and_leasing_again_cancels_a_deferred_one() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    let b = open(server.options("c", "b"));
    seed(&a, 1, 4);
    let h = host(&a, 0);
    let l = a.lease(h, 1).expect("lease").remove(0);
    a.release(h).expect("deferred");
    let l2 = a.lease(h, 1).expect("lease").remove(0);
    a.ack(vec![done(l, vec![])], &[]).expect("ack");
    assert!(
        b.lease(h, 1).expect("lease").is_empty(),
        "the release was cancelled"
    );
    a.ack(vec![done(l2, vec![])], &[]).expect("ack");
    a.release(h).expect("release");
    assert_eq!(b.lease(h, 1).expect("lease").len(), 1);
}

#[test]
fn a_worker_holds_at_most_its_share_of_hosts_plus_one() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    let b = open(server.options("c", "b"));
    seed(&a, 6, 2);
    // H = 6 hosts, W = 2 live workers: at most ceil(6 / 2) + 1 = 4 claims each.
    for h in 0..4 {
        assert_eq!(a.lease(host(&a, h), 1).expect("lease").len(), 1, "host {h}");
    }
    assert!(
        a.lease(host(&a, 4), 1).expect("lease").is_empty(),
        "a fifth host is over the cap"
    );
    assert_eq!(a.claimed().len(), 4);
    // A host already held is not a new claim.
    assert_eq!(a.lease(host(&a, 0), 1).expect("lease").len(), 1);
    assert_eq!(b.lease(host(&b, 4), 1).expect("lease").len(), 1);
    assert_eq!(b.lease(host(&b, 5), 1).expect("lease").len(), 1);
}

#[test]
fn an_evicting_server_is_refused() {
    let server = RedisServer::start().expect("server");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .exec(&mut raw(&server))
        .expect("config set");
    let err = RedisFrontier::open(server.options("c", "a")).expect_err("refused");
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    assert!(err.to_string().contains("noeviction"), "{err}");
}

#[test]
fn another_number_of_seen_buckets_is_refused() {
    let server = RedisServer::start().expect("server");
    drop(open(server.options("c", "a").seen_buckets(16)));
    let err = RedisFrontier::open(server.options("c", "b").seen_buckets(32)).expect_err("refused");
    assert!(err.to_string().contains("16 seen-set buckets"), "{err}");
    // Another crawl on the same server has its own.
    drop(open(server.options("d", "b").seen_buckets(32)));
}

#[test]
fn politeness_and_robots_travel_with_the_host() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    let b = open(server.options("c", "b"));
    seed(&a, 2, 1);
    let (h0, h1) = (host(&a, 0), host(&a, 1));
    let p = Politeness {
        next_allowed_at_ms: 1_700_000_005_000,
        retry_after_until_ms: 1_700_000_009_000,
        backoff_level: 2,
        consecutive_failures: 3,
        adaptive_millirate: 500,
    };
    a.set_politeness(h0, p).expect("set");
    let robots = RobotsEntry {
        status: 200,
        fetched_at_ms: 1_700_000_000_000,
        body: b"User-agent: *\nDisallow: /private\n".to_vec(),
    };
    a.set_robots(h0, &robots).expect("set robots");
    assert_eq!(b.politeness(h0).expect("read"), Some(p));
    assert_eq!(b.host(h0).expect("read").expect("host").politeness, p);
    assert_eq!(b.robots(h0).expect("read"), Some(robots));
    assert_eq!(b.robots(h1).expect("read"), None);
    // The ready index moved: h0 opens at its Retry-After.
    let scan = b.ready_scan(None, 1_700_000_000_000, 10).expect("scan");
    assert_eq!(
        (scan.hosts, scan.ready, scan.next_ms),
        (vec![h1], 1, Some(1_700_000_009_000))
    );
    let scan = b.ready_scan(None, 1_700_000_009_000, 10).expect("scan");
    assert_eq!((scan.hosts, scan.ready, scan.next_ms), (vec![h0, h1], 2, None));
    assert_eq!(
        b.ready_hosts().expect("ready"),
        vec![(h1, 0), (h0, 1_700_000_009_000)]
    );
    assert_eq!(b.politeness(HostId(99)).expect("read"), None);
}

#[test]
fn the_ready_scan_goes_on_after_the_last_host_and_wraps() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    let b = open(server.options("c", "b"));
    seed(&a, 5, 2);
    let ids: Vec<HostId> = (0..5).map(|h| host(&a, h)).collect();
    // A claims two hosts; they stay in A's scan, merged in id order with the rest.
    a.lease(ids[1], 1).expect("lease");
    a.lease(ids[3], 1).expect("lease");
    let scan = a.ready_scan(Some(ids[2]), 0, 3).expect("scan");
    assert_eq!(scan.hosts, vec![ids[3], ids[4], ids[0]]);
    assert_eq!(scan.ready, 5);
    let scan = b.ready_scan(Some(ids[0]), 0, 10).expect("scan");
    assert_eq!(scan.hosts, vec![ids[2], ids[4], ids[0]]);
    assert_eq!(scan.ready, 3);
}

#[test]
fn get_gives_the_whole_record_while_queued_or_leased() {
    let server = RedisServer::start().expect("server");
    let f = open(server.options("c", "a"));
    let u = NewUrl {
        url: url(0, 1),
        depth: 4,
        priority: Priority::Sitemap,
        data: b"parent".to_vec(),
    };
    f.enqueue(vec![u.clone(), NewUrl::page(url(0, 2), 0)])
        .expect("enqueue");
    let r = f.get(&u.url).expect("get").expect("known");
    assert_eq!(
        (r.state, r.depth, r.priority, r.attempts),
        (UrlState::Queued, 4, Priority::Sitemap, 0)
    );
    assert_eq!(r.data, b"parent");
    let lease = f.lease(host(&f, 0), 1).expect("lease").remove(0);
    assert_eq!(lease.url, u.url, "sitemaps before pages");
    let r = f.get(&u.url).expect("get").expect("known");
    assert_eq!(
        (r.state, r.attempts, r.data.as_slice()),
        (UrlState::Leased, 1, &b"parent"[..])
    );
    f.ack(
        vec![Ack {
            lease,
            outcome: Outcome::Failed("404".into()),
            discovered: vec![],
        }],
        &[],
    )
    .expect("ack");
    let r = f.get(&u.url).expect("get").expect("known");
    assert_eq!((r.state, r.attempts, r.host), (UrlState::Failed, 1, host(&f, 0)));
    assert_eq!(f.get("http://h0.test/never").expect("get"), None);
}

#[test]
fn fail_host_fails_the_queued_urls_of_a_host() {
    let server = RedisServer::start().expect("server");
    let f = open(server.options("c", "a"));
    seed(&f, 2, 3);
    let h0 = host(&f, 0);
    let lease = f.lease(h0, 1).expect("lease");
    assert_eq!(f.fail_host(h0, "robots.txt disallows all").expect("fail"), 2);
    let c = f.counts().expect("counts");
    assert_eq!((c.queued, c.leased, c.failed), (3, 1, 2));
    assert_eq!(f.host(h0).expect("read").expect("host").counts.failed, 2);
    assert_eq!(f.ready_scan(None, 0, 10).expect("scan").hosts, vec![host(&f, 1)]);
    f.ack(vec![done(lease.into_iter().next().expect("one"), vec![])], &[])
        .expect("ack");
    assert_eq!(f.verify().expect("consistent").total(), 6);
}

#[test]
fn meta_and_checkpoints_are_each_workers_own() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    let b = open(server.options("c", "b"));
    a.set_meta("config", b"{a}").expect("meta");
    a.ack(vec![], &[("jsonl", b"10")]).expect("ack");
    assert_eq!(a.meta("config").expect("meta"), Some(b"{a}".to_vec()));
    assert_eq!(b.meta("config").expect("meta"), None);
    assert_eq!(a.checkpoint("jsonl").expect("cp"), Some(b"10".to_vec()));
    assert_eq!(b.checkpoint("jsonl").expect("cp"), None);
    assert_eq!(a.worker(), Some("a"));
    assert!(a.finished().expect("finished"));
    a.flush().expect("flush is a no-op");
}

#[test]
fn a_server_killed_and_restarted_with_appendfsync_always_loses_nothing() {
    let mut server = RedisServer::start_with(&["--appendfsync", "always"]).expect("server");
    let f = open(server.options("c", "a").claim_ttl(TTL));
    seed(&f, 2, 5);
    let h0 = host(&f, 0);
    let mut leases = f.lease(h0, 3).expect("lease");
    let new = f
        .ack_new(
            vec![done(leases.remove(0), vec![NewUrl::page(url(1, 9), 1)])],
            &[("s", b"cp1")],
        )
        .expect("ack");
    assert_eq!(new.len(), 1);
    let before = f.counts().expect("counts");
    server.kill9();
    // The live store reconnects once the server is back (a call meanwhile waits).
    let restart = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        server.restart().expect("restart");
        server
    });
    assert_eq!(f.counts().expect("counts after the restart"), before);
    let server = restart.join().expect("restart thread");
    assert_eq!(f.checkpoint("s").expect("cp"), Some(b"cp1".to_vec()));
    // The claim survived too: the outstanding leases can be acked.
    f.ack(
        leases.into_iter().map(|l| done(l, vec![])).collect(),
        &[("s", b"cp2")],
    )
    .expect("ack after the restart");
    let c = f.verify().expect("consistent");
    assert_eq!((c.done, c.queued, c.leased), (3, 8, 0));
    drop(f);
    let f = open(server.options("c", "a"));
    assert_eq!(f.open_report().requeued, 0);
    assert_eq!(f.checkpoint("s").expect("cp"), Some(b"cp2".to_vec()));
    assert_eq!(
        f.get(&url(1, 9)).expect("get").expect("known").state,
        UrlState::Queued
    );
}

#[test]
fn an_unreachable_server_is_a_backend_error_after_the_reconnect_window() {
    let mut server = RedisServer::start().expect("server");
    let opts = server
        .options("c", "a")
        .reconnect_for(Duration::from_millis(300))
        .timeout(Duration::from_millis(200));
    let f = open(opts);
    server.kill9();
    let err = f.counts().expect_err("no server");
    assert!(matches!(err, Error::Backend { .. }), "{err}");
    server.restart().expect("restart");
    assert_eq!(f.counts().expect("counts").total(), 0);
}

#[test]
fn reopening_a_worker_requeues_its_leases_and_releases_its_hosts() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a").max_attempts(2));
    let b = open(server.options("c", "b"));
    seed(&a, 1, 3);
    let h = host(&a, 0);
    let first = a.lease(h, 1).expect("lease").remove(0);
    a.ack(
        vec![Ack {
            lease: first,
            outcome: Outcome::Retry,
            discovered: vec![],
        }],
        &[],
    )
    .expect("ack");
    let leased = a.lease(h, 3).expect("lease");
    assert_eq!(leased.len(), 3);
    a.crash_for_tests();
    let a = open(server.options("c", "a").max_attempts(2));
    // The retried URL had its second attempt out: it is quarantined.
    assert_eq!((a.open_report().requeued, a.open_report().quarantined), (2, 1));
    let c = a.counts().expect("counts");
    assert_eq!((c.queued, c.leased, c.failed), (2, 0, 1));
    assert!(a.claimed().is_empty());
    assert_eq!(b.lease(h, 5).expect("lease").len(), 2, "the host was released");
}

#[test]
fn a_reopened_worker_gives_its_hosts_back_when_its_old_claims_would_have_run_out() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    let b = open(server.options("c", "b"));
    seed(&a, 2, 2);
    let (h0, h1) = (host(&a, 0), host(&a, 1));
    // A holds h0 (and may have just sent a request to it) when it dies.
    assert_eq!(a.lease(h0, 1).expect("lease").len(), 1);
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
    };
    let before = now_ms();
    a.crash_for_tests();
    let a = open(server.options("c", "a"));
    assert_eq!(a.open_report().requeued, 1);
    assert!(a.claimed().is_empty());
    // Its pace went with it: h0 waits until the dead run's claim would have run out,
    // in the politeness every worker restores and in the ready index.
    let p = b.politeness(h0).expect("read").expect("known");
    assert!(
        p.next_allowed_at_ms >= before + TTL.as_millis() as u64 - 1_000,
        "{p:?}, {before}"
    );
    let scan = b.ready_scan(None, now_ms(), 10).expect("scan");
    assert_eq!((scan.hosts, scan.next_ms), (vec![h1], Some(p.next_allowed_at_ms)));
    assert_eq!(
        b.politeness(h1).expect("read").expect("known").next_allowed_at_ms,
        0
    );
}

#[test]
fn a_full_seen_set_hash_goes_on_in_the_next_one_of_its_bucket() {
    let server = RedisServer::start_with(&["--hash-max-listpack-entries", "16"]).expect("server");
    let f = open(server.options("c", "a").seen_buckets(2));
    seed(&f, 2, 100);
    assert_eq!(
        f.enqueue((0..100).map(|i| NewUrl::page(url(1, i), 0)).collect())
            .expect("again"),
        0
    );
    let mut c = raw(&server);
    let keys: Vec<String> = redis::cmd("KEYS").arg("trawl:c:s:*").query(&mut c).expect("keys");
    assert!(keys.len() >= 200 / 16, "{keys:?}");
    for k in &keys {
        let enc: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(k)
            .query(&mut c)
            .expect("encoding");
        assert_eq!(enc, "listpack", "{k}");
    }
    let lease = f.lease(host(&f, 1), 100).expect("lease");
    assert_eq!(lease.len(), 100);
    assert_eq!(
        f.get(&url(1, 99)).expect("get").expect("known").state,
        UrlState::Leased
    );
    assert_eq!(
        f.get(&url(0, 99)).expect("get").expect("known").state,
        UrlState::Queued
    );
    assert_eq!(f.get(&url(0, 100)).expect("get"), None);
    assert_eq!(f.verify().expect("consistent").total(), 200);
    // Another worker of the crawl on a server set otherwise keeps the crawl's layout.
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("hash-max-listpack-entries")
        .arg(128)
        .exec(&mut c)
        .expect("config set");
    let b = open(server.options("c", "b").seen_buckets(2));
    assert_eq!(b.enqueue(vec![NewUrl::page(url(0, 5), 0)]).expect("enqueue"), 0);
    assert_eq!(
        b.get(&url(0, 50)).expect("get").expect("known").state,
        UrlState::Queued
    );
}

#[test]
fn a_resent_enqueue_lease_or_fail_host_answers_as_the_first_send() {
    let server = RedisServer::start().expect("server");
    let f = open(server.options("c", "a"));
    let urls: Vec<NewUrl> = (0..4).map(|i| NewUrl::page(url(0, i), 0)).collect();
    assert_eq!(f.enqueue(urls.clone()).expect("enqueue"), 4);
    f.resend_last_op_for_tests();
    assert_eq!(
        f.enqueue(urls).expect("resent enqueue"),
        4,
        "the first answer, not 0"
    );
    let h = host(&f, 0);
    let leases = f.lease(h, 2).expect("lease");
    f.resend_last_op_for_tests();
    assert_eq!(
        f.lease(h, 2).expect("resent lease"),
        leases,
        "the same leases, not two more"
    );
    let c = f.counts().expect("counts");
    assert_eq!((c.queued, c.leased), (2, 2));
    assert_eq!(f.fail_host(h, "gone").expect("fail"), 2);
    f.resend_last_op_for_tests();
    assert_eq!(f.fail_host(h, "gone").expect("resent fail"), 2);
    // The resent lease's URLs can be acked: the client knows their claim.
    f.ack(leases.into_iter().map(|l| done(l, vec![])).collect(), &[])
        .expect("ack");
    let c = f.verify().expect("consistent");
    assert_eq!((c.done, c.failed, c.queued, c.leased), (2, 2, 0, 0));
}

#[test]
fn a_server_rewound_past_answered_writes_is_lost_ownership_for_the_next_write() {
    let mut server = RedisServer::start().expect("server");
    let f = open(server.options("c", "a").claim_ttl(TTL));
    seed(&f, 2, 3);
    let h0 = host(&f, 0);
    let first = f.lease(h0, 1).expect("lease").remove(0);
    f.ack(vec![done(first, vec![])], &[("s", b"cp1")]).expect("ack 1");
    let point = server.save_point().expect("save point");
    // Answered, then lost: an ack, and an enqueue after it.
    let second = f.lease(h0, 1).expect("lease").remove(0);
    f.ack(vec![done(second, vec![])], &[("s", b"cp2")])
        .expect("ack 2");
    assert_eq!(f.enqueue(vec![NewUrl::page(url(1, 7), 1)]).expect("enqueue"), 1);
    server.rewind(&point).expect("rewind");
    // Whatever this worker writes next is refused, and applies nothing: an enqueue ...
    let before = f.counts().expect("counts");
    let err = f
        .enqueue(vec![NewUrl::page(url(1, 8), 1)])
        .expect_err("the server lost writes");
    assert!(matches!(err, Error::LostOwnership { .. }), "{err}");
    assert!(err.to_string().contains("lost writes"), "{err}");
    // ... a lease, and a fail_host.
    let err = f.lease(host(&f, 1), 1).expect_err("rewound");
    assert!(matches!(err, Error::LostOwnership { .. }), "{err}");
    let err = f.fail_host(host(&f, 1), "gone").expect_err("rewound");
    assert!(matches!(err, Error::LostOwnership { .. }), "{err}");
    assert_eq!(f.counts().expect("counts"), before);
    assert_eq!(f.get(&url(1, 8)).expect("get"), None);
    drop(f);
    // Opened again, the worker goes on from what the server holds: checkpoint 1.
    let f = open(server.options("c", "a").claim_ttl(TTL));
    assert_eq!(f.checkpoint("s").expect("cp"), Some(b"cp1".to_vec()));
    assert_eq!(f.enqueue(vec![NewUrl::page(url(1, 7), 1)]).expect("enqueue"), 1);
    let next = f.lease(h0, 1).expect("lease again");
    assert_eq!(next.len(), 1);
    f.ack(
        next.into_iter().map(|l| done(l, vec![])).collect(),
        &[("s", b"cp2")],
    )
    .expect("ack after reopening");
    let c = f.verify().expect("consistent");
    assert_eq!((c.done, c.queued, c.leased), (2, 5, 0));
}

#[test]
fn a_shared_page_limit_holds_every_workers_leases_together() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a").claim_ttl(TTL));
    let b = open(server.options("c", "b").claim_ttl(TTL));
    seed(&a, 3, 4);
    assert_eq!(a.shared_pages(), None, "no limit shared yet");
    assert!(a.share_page_limit(5).expect("share"));
    assert!(b.share_page_limit(5).expect("share"));
    let la = a.lease(host(&a, 0), 10).expect("lease");
    assert_eq!(la.len(), 4);
    // Four are leased: one is left for every worker together.
    let lb = b.lease(host(&b, 1), 10).expect("lease");
    assert_eq!(lb.len(), 1);
    assert_eq!(b.lease(host(&b, 2), 10).expect("lease"), vec![]);
    assert_eq!(b.shared_pages().map(|t| (t.written, t.leased)), Some((0, 5)));
    // Worker a writes four records; b's lease writes none (a retry): its room is back.
    a.ack_records(la.into_iter().map(|l| done(l, vec![])).collect(), &[], 4)
        .expect("ack a");
    let retry = lb
        .into_iter()
        .map(|lease| Ack {
            lease,
            outcome: Outcome::Retry,
            discovered: vec![],
        })
        .collect();
    b.ack_records(retry, &[], 0).expect("ack b");
    assert_eq!(b.shared_pages().map(|t| (t.written, t.leased)), Some((4, 0)));
    let last = b.lease(host(&b, 2), 10).expect("lease");
    assert_eq!(last.len(), 1);
    b.ack_records(last.into_iter().map(|l| done(l, vec![])).collect(), &[], 1)
        .expect("ack the last");
    assert_eq!(b.lease(host(&b, 1), 10).expect("lease"), vec![]);
    assert!(!a.finished().expect("finished"), "URLs are still queued");
    assert_eq!(a.shared_pages().map(|t| (t.written, t.leased)), Some((5, 0)));
}

#[test]
fn status_shows_the_crawl_and_each_worker_without_changing_anything() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a").claim_ttl(TTL));
    // Worker b's clock runs 10 minutes behind: its heartbeat is older than its ttl.
    let b = open(server.options("c", "b").claim_ttl(TTL).clock_offset_ms(-600_000));
    seed(&a, 3, 4);
    a.set_meta("identity", b"seeds http://h0.test/").expect("meta");
    let la = a.lease(host(&a, 0), 3).expect("lease");
    a.ack_records(la.into_iter().map(|l| done(l, vec![])).collect(), &[], 3)
        .expect("ack");
    let _still = a.lease(host(&a, 1), 2).expect("lease");
    assert_eq!(b.lease(host(&b, 2), 1).expect("lease").len(), 1);
    let before = a.verify().expect("consistent");

    assert_eq!(
        trawl_frontier_redis::crawls(&server.url()).expect("crawls"),
        vec!["c"]
    );
    assert_eq!(
        trawl_frontier_redis::crawl_status(&server.url(), "nope").expect("status"),
        None
    );
    let s = trawl_frontier_redis::crawl_status(&server.url(), "c")
        .expect("status")
        .expect("known crawl");
    assert_eq!(s.crawl, "c");
    assert_eq!(s.identity.as_deref(), Some("seeds http://h0.test/"));
    assert_eq!(s.counts, before);
    assert_eq!((s.records, s.hosts, s.hosts_claimed), (3, 3, 3));
    let names: Vec<&str> = s.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let (wa, wb) = (&s.workers[0], &s.workers[1]);
    assert!(wa.live && !wb.live, "{wa:?} {wb:?}");
    assert_eq!(wa.hosts, ["http://h0.test", "http://h1.test"]);
    assert_eq!(wb.hosts, ["http://h2.test"]);
    assert_eq!((wa.leased, wa.records), (2, 3));
    assert_eq!((wb.leased, wb.records), (1, 0));
    assert!(wa.rate > 0.0 && wa.last_ack_ms.is_some(), "{wa:?}");
    assert_eq!((wb.rate, wb.last_ack_ms), (0.0, None));
    assert_eq!(wa.claim_ttl_ms, TTL.as_millis() as u64);
    // Reading changed nothing.
    assert_eq!(a.verify().expect("consistent"), before);
}

#[test]
fn a_worker_that_stops_hands_its_hosts_and_leases_back_at_once() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a").claim_ttl(TTL));
    let b = open(server.options("c", "b").claim_ttl(TTL));
    seed(&a, 1, 4);
    let h = host(&a, 0);
    assert_eq!(a.lease(h, 3).expect("lease").len(), 3);
    assert_eq!(b.lease(h, 3).expect("lease"), vec![], "a holds the host");
    // The engine lets go of its hosts with their pace as it ends (the release waits
    // for the leases out), then drops the store.
    a.release(h).expect("release");
    drop(a);
    // Without waiting out the ttl: the host and its three leased URLs are b's to take.
    let c = b.verify().expect("consistent");
    assert_eq!((c.queued, c.leased), (4, 0));
    let scan = b.ready_scan(None, 0, 10).expect("scan");
    assert_eq!((scan.hosts, scan.next_ms), (vec![h], None), "ready at once");
    assert_eq!(b.lease(h, 10).expect("lease").len(), 4);
    let s = trawl_frontier_redis::crawl_status(&server.url(), "c")
        .expect("status")
        .expect("known");
    let wa = s.workers.iter().find(|w| w.name == "a").expect("a listed");
    assert!(!wa.live && wa.hosts.is_empty(), "{wa:?}");
}

#[test]
fn a_worker_over_its_share_once_others_join_hands_over_its_fullest_hosts() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a").claim_ttl(TTL));
    seed(&a, 4, 3);
    assert_eq!(
        a.enqueue((3..9).map(|i| NewUrl::page(url(2, i), 0)).collect())
            .expect("more"),
        6
    );
    // Alone, a may hold every host (the cap is 4 / 1 + 1).
    let hosts: Vec<HostId> = (0..4).map(|h| host(&a, h)).collect();
    let mut leases = Vec::new();
    for &h in &hosts {
        leases.push(a.lease(h, 1).expect("lease").remove(0));
    }
    a.renew().expect("renew");
    assert!(hosts.iter().all(|&h| !a.hand_over(h)), "its share, alone");
    // Worker b joins: a's share is now 4 / 2 + 1 = 3, so it gives up one host, the one
    // with the most queued URLs.
    let b = open(server.options("c", "b").claim_ttl(TTL));
    a.renew().expect("renew");
    let given: Vec<HostId> = hosts.iter().copied().filter(|&h| a.hand_over(h)).collect();
    assert_eq!(given, [hosts[2]]);
    // The release waits for its lease out; with the ack, b may take the host.
    a.release(hosts[2]).expect("release");
    assert_eq!(b.lease(hosts[2], 1).expect("lease"), vec![]);
    a.ack(vec![done(leases.remove(2), vec![])], &[]).expect("ack");
    assert!(!a.claimed().contains(&hosts[2]));
    assert_eq!(b.lease(hosts[2], 20).expect("lease").len(), 8);
    // a, at its share now, may not take another host back.
    a.renew().expect("renew");
    assert!(hosts.iter().all(|&h| !a.hand_over(h)));
}

#[test]
fn a_worker_cannot_overwrite_the_politeness_of_a_host_another_one_claims() {
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    let b = open(server.options("c", "b"));
    seed(&a, 1, 2);
    let h = host(&a, 0);
    let kept = Politeness {
        retry_after_until_ms: 1_700_000_009_000,
        ..Politeness::default()
    };
    a.set_politeness(h, kept).expect("set, unclaimed");
    assert_eq!(a.lease(h, 1).expect("lease").len(), 1);
    // b (say, back from a pause past its claim) writes its stale view: it is ignored.
    b.set_politeness(h, Politeness::default()).expect("set");
    assert_eq!(a.politeness(h).expect("read"), Some(kept));
    let mut p = kept;
    p.backoff_level = 1;
    a.set_politeness(h, p).expect("set by the owner");
    assert_eq!(b.politeness(h).expect("read"), Some(p));
    // A Retry-After b was given is the server's answer: it pushes the host's wait
    // forward, though b's backoff and failures are not taken.
    let later = Politeness {
        retry_after_until_ms: kept.retry_after_until_ms + 5_000,
        consecutive_failures: 7,
        ..Politeness::default()
    };
    b.set_politeness(h, later).expect("set");
    let got = a.politeness(h).expect("read").expect("known");
    assert_eq!(
        (
            got.retry_after_until_ms,
            got.backoff_level,
            got.consecutive_failures
        ),
        (later.retry_after_until_ms, 1, 0)
    );
}

#[test]
fn a_stale_write_of_the_owner_does_not_undo_a_wait() {
    // The commit stage stores a Retry-After while the scheduler, letting the host go,
    // writes back the pace it read before: the wait and the later next-allowed time
    // both stay, the rest is the last write's.
    let server = RedisServer::start().expect("server");
    let a = open(server.options("c", "a"));
    seed(&a, 1, 2);
    let h = host(&a, 0);
    assert_eq!(a.lease(h, 1).expect("lease").len(), 1);
    let cooling = Politeness {
        next_allowed_at_ms: 1_700_000_001_000,
        retry_after_until_ms: 1_700_000_009_000,
        backoff_level: 2,
        ..Politeness::default()
    };
    a.set_politeness(h, cooling).expect("set");
    let stale = Politeness {
        next_allowed_at_ms: 1_700_000_000_500,
        consecutive_failures: 1,
        ..Politeness::default()
    };
    a.set_politeness(h, stale).expect("set");
    let got = a.politeness(h).expect("read").expect("known");
    assert_eq!(
        got,
        Politeness {
            next_allowed_at_ms: cooling.next_allowed_at_ms,
            retry_after_until_ms: cooling.retry_after_until_ms,
            ..stale
        }
    );
    // The ready index goes by the wait kept, not the one last written.
    let scan = a.ready_scan(None, 1_700_000_002_000, 10).expect("scan");
    assert_eq!(
        (scan.hosts.len(), scan.next_ms),
        (0, Some(cooling.retry_after_until_ms))
    );
}

#[test]
fn a_url_this_worker_sent_before_is_not_sent_again() {
    let server = RedisServer::start().expect("server");
    let f = open(server.options("c", "a"));
    assert_eq!(f.enqueue(vec![NewUrl::page(url(0, 1), 0)]).expect("enqueue"), 1);
    // Were it sent again, the server would find it unseen: its seen-set entry is gone.
    let fp = trawl_frontier::Fingerprint::of(&url(0, 1)).0;
    let hash: Vec<String> = redis::cmd("KEYS")
        .arg("trawl:c:s:*")
        .query(&mut raw(&server))
        .expect("keys");
    assert_eq!(hash.len(), 1);
    redis::cmd("HDEL")
        .arg(&hash[0])
        .arg(&fp.to_be_bytes()[8..])
        .exec(&mut raw(&server))
        .expect("hdel");
    assert_eq!(f.enqueue(vec![NewUrl::page(url(0, 1), 0)]).expect("again"), 0);
    // A store opened afresh knows nothing yet, and sends it.
    drop(f);
    let f = open(server.options("c", "a"));
    assert_eq!(f.enqueue(vec![NewUrl::page(url(0, 1), 0)]).expect("afresh"), 1);
}
