//! Crash test: a child process drives the frontier through a synthetic crawl while
//! this process kills it with SIGKILL at random moments. After every kill the directory
//! is reopened and the invariants are checked:
//!
//! - nothing the child saw flushed is lost,
//! - no URL is in two states and the counters match the records (`verify`),
//! - every lease came back (nothing is left leased after open),
//! - every done URL's discovered links are present,
//! - the seen set's run files and journal agree with sled: no URL is seen that is not
//!   stored, and none that is stored is missing (`verify`, and enqueueing every page
//!   again adds none that is known).
//!
//! The child is this same test binary, started with `TRAWL_CRASH_CHILD` set, so the test
//! needs no helper binary. The kill times come from a seed that is printed, so a failure
//! can be replayed with `TRAWL_CRASH_SEED=<seed>`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use trawl_frontier::{Ack, Frontier, FrontierStore, NewUrl, Options, Outcome, UrlState};

const HOSTS: u64 = 10;
const PAGES: u64 = 50_000;
const ROUNDS: usize = 20;

fn page_url(n: u64) -> String {
    format!("http://h{}.test/{n}", n % HOSTS)
}

/// The links of page `n`: four tree children, so every page is reachable from page 0.
fn links(n: u64) -> Vec<u64> {
    (1..=4).map(|j| n * 4 + j).filter(|c| *c < PAGES).collect()
}

fn page_number(url: &str) -> u64 {
    url.rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("a page url")
}

fn opts() -> Options {
    // Enough attempts that a URL leased in several killed rounds is not quarantined,
    // which keeps the final count exact. A small memtable and small queue tails make
    // the seen set seal and merge run files (on its background thread) and take
    // checkpoints all through the crawl, so kills land in the middle of those too.
    Options::default()
        .max_attempts(1_000)
        .cache_capacity(8 << 20)
        .seen_memtable(500)
        .tail_bytes(4 << 10)
}

/// The child: crawl until nothing is left, flushing every few batches and recording in
/// the journal which acks were flushed. Runs only when `TRAWL_CRASH_CHILD` is set.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("TRAWL_CRASH_CHILD") else {
        return;
    };
    let dir = Path::new(&dir);
    let f = Frontier::open(dir.join("state"), opts()).expect("child opens");
    if f.counts().expect("read").total() == 0 {
        f.enqueue(vec![NewUrl::page(page_url(0), 0)]).expect("seed");
        f.flush().expect("flush");
    }
    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("journal"))
        .expect("journal");
    let mut unflushed: Vec<String> = Vec::new();
    let mut batches = 0u64;
    loop {
        let ready = f.ready_hosts().expect("read");
        if ready.is_empty() {
            break;
        }
        for (host, _) in ready.into_iter().take(4) {
            let leases = f.lease(host, 8).expect("lease");
            let acks: Vec<Ack> = leases
                .into_iter()
                .map(|lease| {
                    let n = page_number(&lease.url);
                    let discovered = links(n)
                        .into_iter()
                        .map(|c| NewUrl::page(page_url(c), lease.depth + 1))
                        .collect();
                    unflushed.push(lease.url.clone());
                    Ack {
                        lease,
                        outcome: Outcome::Done,
                        discovered,
                    }
                })
                .collect();
            batches += 1;
            f.ack(acks, &[("sink", &batches.to_be_bytes())]).expect("ack");
        }
        if batches.is_multiple_of(5) {
            f.flush().expect("flush");
            // Only after flush returned do these acks count as durable.
            let mut text = String::new();
            for u in unflushed.drain(..) {
                text.push_str(&u);
                text.push('\n');
            }
            text.push_str("FLUSHED\n");
            journal.write_all(text.as_bytes()).expect("journal");
        }
    }
    f.flush().expect("flush");
    let mut text: String = unflushed.iter().map(|u| format!("{u}\n")).collect();
    text.push_str("FLUSHED\n");
    journal.write_all(text.as_bytes()).expect("journal");
}

/// URLs the journal lists before its last complete `FLUSHED` marker.
fn flushed_urls(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("journal")).unwrap_or_default();
    let Some(end) = text.rfind("FLUSHED\n") else {
        return Vec::new();
    };
    text[..end]
        .lines()
        .filter(|l| *l != "FLUSHED" && !l.is_empty())
        .map(String::from)
        .collect()
}

fn check_invariants(dir: &Path, round: usize) -> trawl_frontier::Counts {
    let f = Frontier::open(dir.join("state"), opts())
        .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
    let counts = f
        .verify()
        .unwrap_or_else(|e| panic!("round {round}: inconsistent store: {e}"));
    assert_eq!(counts.leased, 0, "round {round}: a lease did not come back");
    // Through the public path too: every stored URL reads as seen.
    let known: Vec<NewUrl> = f
        .urls()
        .map(|r| NewUrl::page(r.expect("record decodes").url, 0))
        .collect();
    assert_eq!(known.len() as u64, counts.total());
    for chunk in known.chunks(1_000) {
        assert_eq!(
            f.enqueue(chunk.to_vec()).expect("enqueue"),
            0,
            "round {round}: a stored URL was not seen"
        );
    }
    for u in flushed_urls(dir) {
        let rec = f
            .get(&u)
            .expect("get")
            .unwrap_or_else(|| panic!("round {round}: flushed {u} is unknown"));
        assert_eq!(
            rec.state,
            UrlState::Done,
            "round {round}: flushed ack of {u} was lost"
        );
    }
    for rec in f.urls() {
        let rec = rec.expect("record decodes");
        if rec.state == UrlState::Done {
            for c in links(page_number(&rec.url)) {
                assert!(
                    f.get(&page_url(c)).expect("get").is_some(),
                    "round {round}: link {c} of done {} is missing",
                    rec.url
                );
            }
        }
    }
    counts
}

#[test]
fn survives_sigkill_at_random_moments() {
    let seed: u64 = std::env::var("TRAWL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("crash test seed: {seed} (replay with TRAWL_CRASH_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("tmp");
    let exe = std::env::current_exe().expect("test binary");
    let child = |dir: &Path| {
        Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("TRAWL_CRASH_CHILD", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child")
    };
    let mut killed = 0;
    for round in 0..ROUNDS {
        let mut c = child(dir.path());
        // The kill moment is the random variable here, not a wait for anything.
        std::thread::sleep(Duration::from_millis(rng.u64(10..200)));
        let finished = c.try_wait().expect("try_wait").is_some();
        if !finished {
            c.kill().expect("SIGKILL");
            killed += 1;
        }
        let status = c.wait().expect("wait");
        assert!(finished || !status.success(), "round {round}: child was killed");
        check_invariants(dir.path(), round);
    }
    // Let the last run finish, then everything reachable must be done exactly once.
    let status = child(dir.path()).wait().expect("wait");
    assert!(status.success(), "the final child failed: {status:?}");
    let counts = check_invariants(dir.path(), ROUNDS);
    assert_eq!((counts.done, counts.queued, counts.failed), (PAGES, 0, 0));
    assert!(
        killed >= ROUNDS / 2,
        "only {killed} of {ROUNDS} rounds were killed mid-crawl"
    );
}
