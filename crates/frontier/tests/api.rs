//! API tests of the frontier on real sled directories: every state transition, the
//! queue order, persistence across reopen, and every error case.

use trawl_frontier::{
    Ack, Error, Frontier, FrontierStore, HostId, NewUrl, Options, Outcome, Politeness, Priority, ReadyScan,
    RobotsEntry, UrlState,
};

fn open(dir: &tempfile::TempDir) -> Frontier {
    Frontier::open(dir.path(), Options::default()).expect("opens")
}

fn page(url: &str, depth: u16) -> NewUrl {
    NewUrl::page(url, depth)
}

fn only_host(f: &Frontier) -> HostId {
    let ready = f.ready_hosts().expect("read");
    assert_eq!(ready.len(), 1, "{ready:?}");
    ready[0].0
}

fn done(lease: trawl_frontier::Lease, discovered: Vec<NewUrl>) -> Ack {
    Ack {
        lease,
        outcome: Outcome::Done,
        discovered,
    }
}

#[test]
fn enqueue_is_idempotent_and_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = open(&dir);
    let report = f.open_report();
    assert!(report.created);
    let n = f
        .enqueue(vec![
            page("http://a.test/1", 0),
            page("http://a.test/2", 0),
            page("http://a.test/1", 0),
        ])
        .expect("enqueue");
    assert_eq!(n, 2, "a duplicate inside one batch is added once");
    assert_eq!(f.enqueue(vec![page("http://a.test/2", 0)]).expect("enqueue"), 0);
    assert_eq!(f.counts().expect("read").queued, 2);
    let rec = f.get("http://a.test/1").expect("get").expect("known");
    assert_eq!(rec.state, UrlState::Queued);
    assert_eq!(f.enqueue(vec![page("not a url", 0)]).expect("enqueue"), 0);
    assert_eq!(f.verify().expect("consistent").queued, 2);
}

#[test]
fn lease_order_is_class_then_depth_then_fifo() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = open(&dir);
    f.enqueue(vec![
        page("http://a.test/deep", 2),
        page("http://a.test/b", 1),
        page("http://a.test/a", 1),
    ])
    .expect("enqueue");
    f.enqueue(vec![NewUrl {
        url: "http://a.test/robots.txt".into(),
        depth: 0,
        priority: Priority::Robots,
        data: vec![7],
    }])
    .expect("enqueue");
    f.enqueue(vec![NewUrl {
        url: "http://a.test/r".into(),
        depth: 3,
        priority: Priority::Redirect,
        data: vec![],
    }])
    .expect("enqueue");
    let host = only_host(&f);
    let urls: Vec<String> = f
        .lease(host, 10)
        .expect("lease")
        .into_iter()
        .map(|l| l.url)
        .collect();
    assert_eq!(
        urls,
        [
            "http://a.test/robots.txt",
            "http://a.test/r",
            "http://a.test/b",
            "http://a.test/a",
            "http://a.test/deep"
        ]
    );
    assert_eq!(f.counts().expect("read").leased, 5);
    assert!(f.lease(host, 10).expect("lease").is_empty());
    assert!(
        f.ready_hosts().expect("read").is_empty(),
        "a host with nothing queued is not ready"
    );
}

#[test]
fn ack_completes_enqueues_links_and_stores_checkpoints() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let f = open(&dir);
        f.enqueue(vec![
            page("http://a.test/", 0),
            page("http://a.test/x", 0),
            page("http://a.test/y", 0),
        ])
        .expect("enqueue");
        let host = only_host(&f);
        let mut leases = f.lease(host, 3).expect("lease");
        let (l3, l2, l1) = (
            leases.pop().expect("3"),
            leases.pop().expect("2"),
            leases.pop().expect("1"),
        );
        assert_eq!(l1.attempts, 1);
        let links = vec![
            page("http://a.test/new", 1),
            page("http://b.test/", 1),
            page("http://a.test/x", 1),
        ];
        f.ack(
            vec![
                done(l1, links),
                Ack {
                    lease: l2,
                    outcome: Outcome::Failed("http 404".into()),
                    discovered: vec![],
                },
            ],
            &[("jsonl", b"100"), ("warc", b"7")],
        )
        .expect("ack");
        // A second ack of the same lease is ignored rather than skewing the counts.
        f.ack(vec![done(l3.clone(), vec![])], &[]).expect("ack");
        f.ack(vec![done(l3, vec![])], &[("jsonl", b"200")]).expect("ack");
        let c = f.counts().expect("read");
        assert_eq!((c.queued, c.leased, c.done, c.failed), (2, 0, 2, 1));
        f.flush().expect("flush");
    }
    let f = open(&dir);
    assert!(!f.open_report().created);
    assert_eq!(f.checkpoint("jsonl").expect("cp"), Some(b"200".to_vec()));
    assert_eq!(f.checkpoint("warc").expect("cp"), Some(b"7".to_vec()));
    assert_eq!(f.checkpoint("csv").expect("cp"), None);
    let failed = f.get("http://a.test/x").expect("get").expect("known");
    assert_eq!(
        (failed.state, failed.reason.as_deref()),
        (UrlState::Failed, Some("http 404"))
    );
    assert_eq!(f.get("http://b.test/").expect("get").expect("known").depth, 1);
    assert_eq!(f.hosts().expect("read").len(), 2);
    let c = f.verify().expect("consistent");
    assert_eq!((c.queued, c.done, c.failed), (2, 2, 1));
}

#[test]
fn retry_requeues_in_place_until_attempts_run_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = Frontier::open(dir.path(), Options::default().max_attempts(2)).expect("open");
    f.enqueue(vec![
        page("http://a.test/flaky", 0),
        page("http://a.test/later", 0),
    ])
    .expect("enqueue");
    let host = only_host(&f);
    let l = f.lease(host, 1).expect("lease").remove(0);
    assert_eq!(l.url, "http://a.test/flaky");
    f.ack(
        vec![Ack {
            lease: l,
            outcome: Outcome::Retry,
            discovered: vec![],
        }],
        &[],
    )
    .expect("ack");
    let l = f.lease(host, 1).expect("lease").remove(0);
    assert_eq!(
        l.url.as_str(),
        "http://a.test/later",
        "a retry goes to the back of its class"
    );
    f.ack(vec![done(l, vec![])], &[]).expect("ack");
    let l = f.lease(host, 1).expect("lease").remove(0);
    assert_eq!((l.url.as_str(), l.attempts), ("http://a.test/flaky", 2));
    f.ack(
        vec![Ack {
            lease: l,
            outcome: Outcome::Retry,
            discovered: vec![],
        }],
        &[],
    )
    .expect("ack");
    let rec = f.get("http://a.test/flaky").expect("get").expect("known");
    assert_eq!(rec.state, UrlState::Failed);
    assert_eq!(rec.reason.as_deref(), Some("gave up after 2 attempts"));
    f.verify().expect("consistent");
}

#[test]
fn reopening_returns_leases_and_quarantines_crash_loops() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = || Options::default().max_attempts(2);
    {
        let f = Frontier::open(dir.path(), opts()).expect("open");
        f.enqueue(vec![page("http://a.test/1", 0), page("http://a.test/2", 0)])
            .expect("enqueue");
        let leases = f.lease(only_host(&f), 2).expect("lease");
        assert_eq!(leases.len(), 2);
        f.flush().expect("flush");
        // Dropped without acking: as if the process died.
    }
    {
        let f = Frontier::open(dir.path(), opts()).expect("open");
        assert_eq!(f.open_report().requeued, 2);
        assert_eq!(f.counts().expect("read").queued, 2);
        let leases = f.lease(only_host(&f), 2).expect("lease");
        assert_eq!(leases.iter().map(|l| l.attempts).collect::<Vec<_>>(), [2, 2]);
        f.flush().expect("flush");
    }
    let f = Frontier::open(dir.path(), opts()).expect("open");
    assert_eq!(f.open_report().quarantined, 2);
    let rec = f.get("http://a.test/1").expect("get").expect("known");
    assert_eq!(rec.state, UrlState::Failed);
    assert!(rec.reason.expect("reason").starts_with("quarantined"));
    assert_eq!(f.verify().expect("consistent").failed, 2);
}

#[test]
fn a_read_only_open_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = || Options::default().max_attempts(2);
    {
        let f = Frontier::open(dir.path(), opts()).expect("open");
        f.enqueue(vec![
            page("http://a.test/1", 0),
            page("http://a.test/2", 0),
            page("http://a.test/3", 0),
        ])
        .expect("enqueue");
        let mut leases = f.lease(only_host(&f), 2).expect("lease");
        f.ack(vec![done(leases.remove(0), Vec::new())], &[]).expect("ack");
        f.flush().expect("flush");
        // Dropped with one lease out: as if the process died.
    }
    // Read-only, many times over: the lease stays out, counted as leased, and no
    // attempt is used up (a writable open would have quarantined it by the second).
    for _ in 0..3 {
        let f = Frontier::open(dir.path(), opts().read_only(true)).expect("open read-only");
        assert_eq!(f.open_report().requeued, 0);
        assert_eq!(f.open_report().quarantined, 0);
        let c = f.counts().expect("read");
        assert_eq!((c.queued, c.leased, c.done, c.failed), (1, 1, 1, 0), "{c:?}");
        let leased: Vec<_> = f
            .urls()
            .filter_map(|r| r.ok())
            .filter(|r| r.state == UrlState::Leased)
            .collect();
        assert_eq!(leased.len(), 1);
        assert_eq!(leased[0].attempts, 1);
        assert_eq!(f.verify().expect("consistent"), c);
        assert!(matches!(
            f.enqueue(vec![page("http://a.test/4", 0)]),
            Err(Error::ReadOnly)
        ));
        assert!(matches!(f.lease(only_host(&f), 1), Err(Error::ReadOnly)));
        assert!(matches!(f.set_meta("x", b"y"), Err(Error::ReadOnly)));
    }
    let f = Frontier::open(dir.path(), opts()).expect("open");
    assert_eq!(f.open_report().requeued, 1, "the lease was still there");
    assert_eq!(f.open_report().quarantined, 0);
    assert_eq!(f.counts().expect("read").queued, 2);
    assert!(f.get("http://a.test/4").expect("get").is_none());
}

#[test]
fn a_read_only_open_of_a_new_directory_creates_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state");
    std::fs::create_dir(&path).expect("mkdir");
    let f = Frontier::open(&path, Options::default().read_only(true)).expect("open");
    assert!(f.open_report().created);
    assert_eq!(f.counts().expect("read").total(), 0);
    drop(f);
    let f = Frontier::open(&path, Options::default()).expect("open");
    assert!(
        f.open_report().created,
        "nothing was written by the read-only open"
    );
}

#[test]
fn host_state_and_robots_survive_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = Politeness {
        next_allowed_at_ms: 1_000,
        retry_after_until_ms: 5_000,
        backoff_level: 2,
        consecutive_failures: 3,
        adaptive_millirate: 2_500,
    };
    let robots = RobotsEntry {
        status: 200,
        fetched_at_ms: 42,
        body: b"User-agent: *\nDisallow: /x\n".to_vec(),
    };
    {
        let f = open(&dir);
        f.enqueue(vec![page("http://a.test/", 0)]).expect("enqueue");
        let h = only_host(&f);
        f.set_politeness(h, p).expect("politeness");
        f.set_robots(h, &robots).expect("robots");
        assert_eq!(f.ready_hosts().expect("read"), vec![(h, 5_000)]);
        f.flush().expect("flush");
    }
    let f = open(&dir);
    let h = f.host_id("http://a.test").expect("read").expect("known host");
    let info = f.host(h).expect("read").expect("host");
    assert_eq!(info.politeness, p);
    assert_eq!(info.counts.queued, 1);
    assert_eq!(f.robots(h).expect("robots"), Some(robots));
}

#[test]
fn fail_host_fails_only_its_queued_urls() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = open(&dir);
    f.enqueue(vec![
        page("http://a.test/1", 0),
        page("http://a.test/2", 0),
        page("http://b.test/1", 0),
    ])
    .expect("enqueue");
    let a = f.host_id("http://a.test").expect("read").expect("a");
    let b = f.host_id("http://b.test").expect("read").expect("b");
    assert_eq!(f.fail_host(a, "host unavailable").expect("fail"), 2);
    assert_eq!(
        f.ready_hosts()
            .expect("read")
            .iter()
            .map(|(h, _)| *h)
            .collect::<Vec<_>>(),
        [b]
    );
    let rec = f.get("http://a.test/2").expect("get").expect("known");
    assert_eq!(rec.reason.as_deref(), Some("host unavailable"));
    f.verify().expect("consistent");
}

#[test]
fn a_second_open_reports_the_lock() {
    let dir = tempfile::tempdir().expect("tmp");
    let _first = open(&dir);
    let err = Frontier::open(dir.path(), Options::default()).expect_err("locked");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("another crawl is using this directory")
    );
}

#[test]
fn a_foreign_directory_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
    let err = Frontier::open(dir.path(), Options::default()).expect_err("foreign");
    assert!(matches!(err, Error::Foreign { .. }), "{err:?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        1,
        "nothing was written"
    );
    let file = dir.path().join("notes.txt");
    assert!(matches!(
        Frontier::open(&file, Options::default()),
        Err(Error::Foreign { .. })
    ));
}

#[test]
fn a_plain_sled_store_is_foreign_and_another_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let db = sled::open(dir.path()).expect("sled");
        db.insert("someone", "else").expect("insert");
        db.flush().expect("flush");
    }
    assert!(matches!(
        Frontier::open(dir.path(), Options::default()),
        Err(Error::Foreign { .. })
    ));

    let dir = tempfile::tempdir().expect("tmp");
    drop(open(&dir));
    {
        let db = sled::open(dir.path()).expect("sled");
        db.open_tree("frontier")
            .expect("tree")
            .insert(b"mschema", &99u32.to_be_bytes())
            .expect("insert");
        db.flush().expect("flush");
    }
    let err = Frontier::open(dir.path(), Options::default()).expect_err("schema");
    assert!(matches!(err, Error::Schema { found: 99, .. }), "{err:?}");
}

#[test]
fn a_damaged_store_is_an_error_not_a_panic() {
    for cut in [0u64, 1, 100, 4096] {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let f = open(&dir);
            let urls = (0..2_000)
                .map(|i| page(&format!("http://a.test/{i}"), 0))
                .collect();
            f.enqueue(urls).expect("enqueue");
            f.flush().expect("flush");
        }
        let db = dir.path().join("db");
        let len = std::fs::metadata(&db).expect("db file").len();
        // Overwrite a stretch in the middle with garbage, then truncate.
        let mut bytes = std::fs::read(&db).expect("read");
        let mid = (len / 2) as usize;
        for b in bytes.iter_mut().skip(mid).take(512) {
            *b ^= 0xA5;
        }
        bytes.truncate((len.saturating_sub(cut)) as usize);
        std::fs::write(&db, bytes).expect("write");
        match Frontier::open(dir.path(), Options::default()) {
            // sled may recover a prefix; then the store must still be consistent.
            Ok(f) => {
                f.verify().expect("a recovered store is consistent");
            }
            Err(e) => assert!(matches!(e, Error::Corrupt { .. } | Error::Io(_)), "{e:?}"),
        }
    }
}

#[test]
fn config_binding() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let f = open(&dir);
        assert_eq!(
            f.bind_config("seeds=http://a.test/", b"{\"max_depth\":3}")
                .expect("bind"),
            b"{\"max_depth\":3}"
        );
    }
    let f = open(&dir);
    assert_eq!(
        f.bind_config("seeds=http://a.test/", b"{}").expect("bind"),
        b"{\"max_depth\":3}"
    );
    let err = f
        .bind_config("seeds=http://other.test/", b"{}")
        .expect_err("mismatch");
    assert!(
        matches!(&err, Error::ConfigMismatch { stored } if stored == "seeds=http://a.test/"),
        "{err:?}"
    );
}

fn seen_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("seen"))
        .expect("seen dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_seen_set_survives_seals_merges_and_reopen_and_leftovers_go() {
    let dir = tempfile::tempdir().expect("tmp");
    // A tiny memtable and no background thread: every 50 new URLs seal a run, and
    // every four runs of a size merge.
    let opts = || {
        Options::default()
            .seen_memtable(50)
            .tail_bytes(1 << 10)
            .background(false)
            .seen_cache_slots(0)
    };
    let urls: Vec<String> = (0..2_000)
        .map(|i| format!("http://h{}.test/p/{i}", i % 7))
        .collect();
    {
        let f = Frontier::open(dir.path(), opts()).expect("open");
        for chunk in urls.chunks(30) {
            let batch = chunk.iter().map(|u| page(u, 1)).collect();
            f.enqueue(batch).expect("enqueue");
        }
        // Finish some, so that finished values reach the runs as well.
        let host = f.host_id("http://h3.test").expect("read").expect("host");
        let leases = f.lease(host, 100).expect("lease");
        let acks = leases.into_iter().map(|l| done(l, Vec::new())).collect();
        f.ack(acks, &[]).expect("ack");
        for chunk in urls.chunks(30) {
            let batch = chunk.iter().map(|u| page(u, 1)).collect();
            f.enqueue(batch).expect("enqueue");
        }
        f.verify().expect("consistent");
        f.flush().expect("flush");
    }
    let runs = seen_files(dir.path());
    assert!(!runs.is_empty() && runs.len() < 12, "{runs:?}");
    // Leftovers of a crash: a run that was never registered and a temporary file.
    std::fs::write(dir.path().join("seen/run-00000000000fffff.seen"), b"junk").expect("write");
    std::fs::write(dir.path().join("seen/run-00000000000ffffe.tmp"), b"junk").expect("write");
    let f = Frontier::open(dir.path(), opts()).expect("reopen");
    let after = seen_files(dir.path());
    assert!(after.iter().all(|n| runs.contains(n)), "{after:?} vs {runs:?}");
    let again = urls.iter().map(|u| page(u, 1)).collect();
    assert_eq!(f.enqueue(again).expect("enqueue"), 0, "every URL is still seen");
    assert_eq!(
        f.enqueue(vec![page("http://h1.test/new", 1)]).expect("enqueue"),
        1
    );
    let c = f.verify().expect("consistent");
    assert_eq!((c.queued, c.done), (1_901, 100));
    let rec = f.get("http://h3.test/p/3").expect("get").expect("known");
    assert_eq!(rec.state, UrlState::Done);
    let rec = f.get("http://h1.test/p/1996").expect("get").expect("known");
    assert_eq!((rec.state, rec.depth), (UrlState::Queued, 1));
    assert!(f.get("http://h1.test/p/2000").expect("get").is_none());
}

#[test]
fn a_damaged_run_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = || Options::default().seen_memtable(100).background(false);
    {
        let f = Frontier::open(dir.path(), opts()).expect("open");
        let urls = (0..300).map(|i| page(&format!("http://a.test/{i}"), 0)).collect();
        f.enqueue(urls).expect("enqueue");
        f.flush().expect("flush");
    }
    let run = dir.path().join("seen").join(&seen_files(dir.path())[0]);
    let mut bytes = std::fs::read(&run).expect("read");
    let n = bytes.len();
    bytes[n - 30] ^= 0xff;
    std::fs::write(&run, &bytes).expect("write");
    let err = Frontier::open(dir.path(), opts()).expect_err("damaged");
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    std::fs::remove_file(&run).expect("rm");
    let err = Frontier::open(dir.path(), opts()).expect_err("missing");
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_directory_of_the_first_layout_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    drop(open(&dir));
    {
        let db = sled::open(dir.path()).expect("sled");
        db.open_tree("frontier")
            .expect("tree")
            .insert(b"mschema", &1u32.to_be_bytes())
            .expect("insert");
        db.flush().expect("flush");
    }
    let err = Frontier::open(dir.path(), Options::default()).expect_err("schema");
    assert!(
        matches!(
            err,
            Error::Schema {
                found: 1,
                expected: 2
            }
        ),
        "{err:?}"
    );
}

#[test]
fn ready_scan_goes_round_the_hosts_and_holds_back_the_cooling_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = open(&dir);
    let urls: Vec<NewUrl> = (0..10).map(|h| page(&format!("http://h{h}.test/"), 0)).collect();
    f.enqueue(urls).expect("enqueue");
    let id = |h: usize| {
        f.host_id(&format!("http://h{h}.test"))
            .expect("read")
            .expect("known")
    };
    let ids = |s: &ReadyScan| s.hosts.iter().map(|h| h.0).collect::<Vec<_>>();
    let s = f.ready_scan(None, 1_000, 4).expect("read");
    assert_eq!((ids(&s), s.ready, s.next_ms), (vec![0, 1, 2, 3], 10, None));
    // From the last host given, wrapping round.
    let s = f.ready_scan(Some(id(8)), 1_000, 4).expect("read");
    assert_eq!(ids(&s), [9, 0, 1, 2]);
    // A host in a cool-down is held back until its time, then comes back.
    let cool = Politeness {
        retry_after_until_ms: 5_000,
        ..Politeness::default()
    };
    f.set_politeness(id(1), cool).expect("politeness");
    let s = f.ready_scan(None, 1_000, 100).expect("read");
    assert_eq!((s.ready, s.next_ms), (9, Some(5_000)));
    assert!(!ids(&s).contains(&id(1).0));
    f.verify().expect("consistent");
    let s = f.ready_scan(None, 5_000, 100).expect("read");
    assert_eq!((s.ready, s.next_ms), (10, None));
    // A host whose last URL is leased leaves; a retry brings it back.
    let lease = f.lease(id(2), 10).expect("lease");
    assert_eq!(f.ready_scan(None, 5_000, 100).expect("read").ready, 9);
    f.verify().expect("consistent");
    f.ack(
        vec![Ack {
            lease: lease.into_iter().next().expect("one"),
            outcome: Outcome::Retry,
            discovered: Vec::new(),
        }],
        &[],
    )
    .expect("ack");
    assert_eq!(f.ready_scan(None, 5_000, 100).expect("read").ready, 10);
    f.flush().expect("flush");
    drop(f);
    // Rebuilt on open, cool-downs included.
    let f = open(&dir);
    f.set_politeness(
        f.host_id("http://h3.test").expect("read").expect("known"),
        Politeness {
            retry_after_until_ms: 9_000,
            ..Politeness::default()
        },
    )
    .expect("politeness");
    let s = f.ready_scan(None, 6_000, 100).expect("read");
    assert_eq!((s.ready, s.next_ms), (9, Some(9_000)));
    f.verify().expect("consistent");
}
