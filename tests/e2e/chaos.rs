//! Chaos on a shared crawl (issue 15): 4 workers crawl 5,000 pages over 20 hosts
//! through one real redis-server (AOF with `appendfsync always`) while workers are
//! killed with -9 at random moments and started again under the same name, one worker
//! is paused (SIGSTOP) past its claim ttl, and the server itself is killed with -9 and
//! restarted. The chaos comes from a seed that is printed at the start; set
//! `TRAWL_CHAOS_SEED` to replay a run's plan.
//!
//! Afterwards the union of the outputs is the ground truth, each page once; in the
//! site's request log (every worker's requests, merged) the requests to each host
//! keep the rate the workers were given (1 / rate less 5 ms apart, but for a request
//! that reached the server late: see [`off_pace`]), none comes before the end of a
//! Retry-After the host answered, and each robots.txt was fetched once; and every
//! worker's last run exits 0. The paused worker must have noticed that its claims were
//! gone (with leases out, it also had its acks refused, cut back and joined again).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use tokio::time::Instant;
use trawl_e2e::{command, duplicates, read_jsonl, workdir};
use trawl_frontier_redis::testing::RedisServer;
use trawl_testsite::{Request, TestSite};

use crate::bin;

const WORKERS: usize = 4;
const HOSTS: usize = 20;
const PAGES: u64 = 5_000;
/// Requests per second per host, the workers' `--rate`.
const RATE: u64 = 10;
/// What the request log may show below the rate's interval per interval: the time the
/// server stamps a request differs a little from the time the gate let it start.
const TOLERANCE: Duration = Duration::from_millis(5);
/// The workers' `--timeout`; the claim ttl must be at least twice as long.
const TIMEOUT: &str = "2s";
const CLAIM_TTL: Duration = Duration::from_secs(4);
/// How long the paused worker stays stopped: well past its claims' ttl.
const PAUSE: Duration = Duration::from_millis(5_500);
/// Hosts with a seed that answers its first request 429 with this Retry-After.
const COOLING_HOSTS: usize = 3;
const RETRY_AFTER: u64 = 6;
/// The workers log warnings, and the commit stage's info lines ("host cooling down",
/// once a Retry-After is durable in the frontier).
const LOG_FILTER: &str = "warn,trawl_engine::crawl::commit=info";
/// The most the whole test may take before it fails as hung.
const HUNG: Duration = Duration::from_secs(240);
/// The line a worker logs when it cuts back and joins again (`trawl::crawl::run_crawl`),
/// and the one it logs for a claim it finds gone (at a renewal, or a lease that takes
/// the host again).
const REJOINED: &str = "lost its claim on the shared crawl";
const LOST_CLAIM: &str = "lost the claim on a host";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One worker: its directory, output and log (every run's stderr, appended), and the
/// process of its current run.
struct Worker {
    name: String,
    state: PathBuf,
    out: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// When a killed worker is to be started again.
    restart_at: Option<Instant>,
    runs: u32,
    /// The exit code of its last run that ended by itself.
    exit: Option<i32>,
    /// The output's size at the last look, and when it last grew.
    out_len: u64,
    grew_at: Option<Instant>,
}

impl Worker {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn note(&self, t0: Instant, what: &str) {
        let line = format!("=== {} {what} at +{:.2}s", self.name, t0.elapsed().as_secs_f64());
        eprintln!("chaos: {line}");
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&self.log) {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Starts a run: `trawl resume DIR` once a run has got as far as its output (the
    /// crawl's configuration is stored by then), else the crawl command.
    fn start(&mut self, d: &Path, crawl: &[String], t0: Instant) {
        let args: Vec<String> = if self.out.exists() {
            vec![
                "resume".into(),
                self.state.to_string_lossy().into_owned(),
                "-q".into(),
            ]
        } else {
            crawl.to_vec()
        };
        self.runs += 1;
        self.note(t0, &format!("run {} ({})", self.runs, args[0]));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = command(bin(), d, &argv);
        c.env("RUST_LOG", LOG_FILTER).stdout(Stdio::null()).stderr(log);
        self.child = Some(c.spawn().expect("spawn trawl"));
        self.exit = None;
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            #[allow(unsafe_code)]
            // SAFETY: a signal to a child of this test that it has not reaped.
            let rc = unsafe { libc::kill(c.id() as libc::pid_t, sig) };
            assert_eq!(rc, 0, "kill({sig}) of {}", self.name);
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A step of the chaos, fired when the site has served `at` requests.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// SIGKILL a running worker; start it again after `restart_after`.
    Kill { restart_after: Duration },
    /// SIGSTOP a worker that is fetching, for [`PAUSE`], then SIGCONT.
    Pause,
    /// SIGKILL the redis-server; start it again after `down`.
    Redis { down: Duration },
}

/// The requests to each host (by base URL), in arrival order.
fn by_host<'a>(bases: &[String], log: &'a [Request]) -> Vec<(String, Vec<&'a Request>)> {
    bases
        .iter()
        .map(|b| {
            let prefix = format!("{b}/");
            let mut v: Vec<&Request> = log.iter().filter(|q| q.url.starts_with(&prefix)).collect();
            v.sort_by_key(|q| q.at);
            (b.clone(), v)
        })
        .collect()
}

/// Checks a host's requests (in arrival order) against the rate: each comes at least
/// one interval (less [`TOLERANCE`]) after the one before it, unless that one came
/// late. Load makes one pattern of a polite client's requests as the server stamps
/// them: a request that reached it late (the worker, or the server itself, was not
/// scheduled for a while: up to 150 ms seen on this 2-core machine with other builds
/// running) and the next one on time, close behind it; no tolerance on the gap alone
/// absorbs that without letting a hand-over's early request through too. So a request closer than the interval to the one before
/// must be on pace with one of the two before that (n intervals, less n tolerances,
/// after the n-th request before it). A request that follows another worker's at once
/// (two owners, or a hand-over that lost the host's pace) is early against all three.
/// A host's second and third requests have fewer than two before the one before
/// them, and nothing tells whether those came late: they are let through.
///
/// Returns the number of short gaps, and the indexes of the off-pace requests.
fn off_pace(qs: &[&Request], interval: Duration) -> (usize, Vec<usize>) {
    let on_pace = |j: usize, n: usize| {
        let n32 = n as u32;
        qs[j].at - qs[j - n].at + TOLERANCE * n32 >= interval * n32
    };
    let mut short = 0;
    let mut off = Vec::new();
    for j in 1..qs.len() {
        if on_pace(j, 1) {
            continue;
        }
        short += 1;
        if j >= 3 && !(2..=3).any(|n| on_pace(j, n)) {
            off.push(j);
        }
    }
    (short, off)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_survive_kills_a_pause_and_a_redis_crash() {
    let seed = env_u64("TRAWL_CHAOS_SEED").unwrap_or_else(|| fastrand::u64(..));
    eprintln!("chaos: seed {seed} (replay with TRAWL_CHAOS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    // No added latency: the site logs a request when its handler ends, and one that
    // waited would be missing from the log when its worker was killed meanwhile.
    let site = TestSite::new()
        .pages(PAGES)
        .hosts(HOSTS)
        .track_requests(true)
        .start()
        .await
        .expect("site");
    let mut server = RedisServer::start_with(&["--appendfsync", "always"]).expect("redis-server");
    let dir = workdir();
    let d = dir.path();
    let bases: Vec<String> = site.site().bases().to_vec();

    // The seeds: every host's root, and on a few hosts a URL that answers its first
    // request 429 with a Retry-After.
    let mut cooling: Vec<usize> = (0..HOSTS).collect();
    rng.shuffle(&mut cooling);
    cooling.truncate(COOLING_HOSTS);
    let slow_urls: Vec<String> = cooling
        .iter()
        .map(|&h| format!("{}/bad/status/429?after={RETRY_AFTER}", bases[h]))
        .collect();
    let mut seeds: Vec<String> = (0..HOSTS).map(|h| site.site().root_url(h)).collect();
    seeds.extend(slow_urls.iter().cloned());

    let url = server.url();
    let rate = RATE.to_string();
    let ttl = format!("{}s", CLAIM_TTL.as_secs());
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|i| {
            let name = format!("w{i}");
            Worker {
                state: d.join(format!("state-{name}")),
                out: d.join(format!("out-{name}.jsonl")),
                log: d.join(format!("log-{name}.txt")),
                name,
                child: None,
                restart_at: None,
                runs: 0,
                exit: None,
                out_len: 0,
                grew_at: None,
            }
        })
        .collect();
    let crawl_args = |w: &Worker| -> Vec<String> {
        let mut v: Vec<String> = vec!["crawl".into()];
        v.extend(seeds.iter().cloned());
        for a in [
            "-o",
            &w.out.to_string_lossy(),
            "--state",
            &w.state.to_string_lossy(),
            "--frontier",
            &url,
            "--worker",
            &w.name,
            "--timeout",
            TIMEOUT,
            "--claim-ttl",
            &ttl,
            "--rate",
            &rate,
            "--per-host-concurrency",
            "1",
            "--concurrency",
            "32",
            "-q",
        ] {
            v.push(a.to_string());
        }
        v
    };
    let crawls: Vec<Vec<String>> = workers.iter().map(crawl_args).collect();

    // The plan, from the seed: kills, one pause and one server crash, each at a share
    // of the crawl's requests, in that order of requests.
    let mut plan: Vec<(u64, Step)> = Vec::new();
    let kills = rng.usize(4..=6);
    for _ in 0..kills {
        plan.push((
            PAGES * rng.u64(15..=85) / 100,
            Step::Kill {
                restart_after: Duration::from_millis(rng.u64(0..=3_000)),
            },
        ));
    }
    plan.push((PAGES * rng.u64(25..=60) / 100, Step::Pause));
    plan.push((
        PAGES * rng.u64(30..=75) / 100,
        Step::Redis {
            down: Duration::from_millis(rng.u64(0..=1_000)),
        },
    ));
    plan.sort_by_key(|(at, _)| *at);
    eprintln!("chaos: cooling hosts {cooling:?}, plan {plan:?}");

    let t0 = Instant::now();
    for (w, args) in workers.iter_mut().zip(&crawls) {
        w.start(d, args, t0);
    }

    // One poll of the workers: a run that ended by itself must have exited 0.
    let poll = |workers: &mut Vec<Worker>| {
        for w in workers.iter_mut() {
            let Some(c) = w.child.as_mut() else { continue };
            if let Some(status) = c.try_wait().expect("try_wait") {
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                w.child = None;
                w.exit = Some(code);
                w.note(t0, &format!("exited {code}"));
                assert_eq!(code, 0, "{} exited {code}:\n{}", w.name, w.log_text());
            }
            let len = std::fs::metadata(&w.out).map_or(0, |m| m.len());
            if len > w.out_len {
                w.grew_at = Some(Instant::now());
            }
            w.out_len = len;
        }
    };
    let restart_due = |workers: &mut Vec<Worker>| {
        for (w, args) in workers.iter_mut().zip(&crawls) {
            if w.restart_at.is_some_and(|t| Instant::now() >= t) {
                w.restart_at = None;
                w.start(d, args, t0);
            }
        }
    };
    let tick = || tokio::time::sleep(Duration::from_millis(20));

    // First, a worker killed while a host of its own is in a Retry-After. It is killed
    // once every cooling host's cool-down is durable (each has its "host cooling down"
    // line): killing it when only one is could fall between another host's 429 and its
    // commit, and a wait the worker never stored is one no crawler could keep. It is
    // started again at once, so the host changes hands (or comes back to it) with the
    // wait still running.
    // The line names the host by its authority (`host=127.0.0.1:PORT`).
    let cooled = |log: &str, base: &str| {
        let field = format!("host={}", base.split_once("://").map_or(base, |(_, a)| a));
        log.lines()
            .any(|l| l.contains("host cooling down") && l.split_whitespace().any(|w| w == field))
    };
    let victim = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the cooling hosts' cool-downs were not all reported"
        );
        poll(&mut workers);
        let logs: Vec<String> = workers.iter().map(Worker::log_text).collect();
        let all_durable = cooling.iter().all(|&h| logs.iter().any(|l| cooled(l, &bases[h])));
        if all_durable && let Some(i) = logs.iter().position(|l| l.contains("host cooling down")) {
            break i;
        }
        tick().await;
    };
    workers[victim].note(t0, "SIGKILL (a host of its cooling down)");
    workers[victim].kill9();
    workers[victim].start(d, &crawls[victim], t0);

    // The random chaos begins once every host's robots.txt is read and stored (a
    // request after it means the answer was stored: the fetcher stores it before it
    // uses it) and every Retry-After is over (its URL answered 200), so no kill falls
    // between a 429 and its durable cool-down.
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "robots.txt and the cooling hosts were not done"
        );
        poll(&mut workers);
        restart_due(&mut workers);
        let log = site.requests();
        let hosts = by_host(&bases, &log);
        let robots_read = hosts.iter().all(|(b, qs)| {
            let robots = format!("{b}/robots.txt");
            qs.iter()
                .position(|q| q.url == robots)
                .is_some_and(|i| i + 1 < qs.len())
        });
        let recovered = slow_urls
            .iter()
            .all(|u| log.iter().any(|q| q.url == *u && q.status == 200));
        if robots_read && recovered {
            break;
        }
        tick().await;
    }
    eprintln!(
        "chaos: robots.txt and Retry-Afters done at +{:.2}s, {} requests",
        t0.elapsed().as_secs_f64(),
        site.total_requests()
    );

    let mut next = 0;
    let mut kills_done = 0;
    let mut paused: Option<(usize, Instant)> = None;
    let mut pause_done: Option<(usize, usize)> = None;
    let mut redis_up_at: Option<Instant> = None;
    let mut redis_done = false;
    loop {
        if t0.elapsed() > HUNG {
            for w in &workers {
                let log = w.log_text();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!(
                    "{}:\n{}",
                    w.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            panic!(
                "the crawl did not end within {HUNG:?}; {} requests",
                site.total_requests()
            );
        }
        poll(&mut workers);
        restart_due(&mut workers);
        if let Some((i, until)) = paused
            && Instant::now() >= until
        {
            workers[i].signal(libc::SIGCONT);
            let offset = workers[i].log_text().len();
            workers[i].note(t0, "SIGCONT");
            pause_done = Some((i, offset));
            paused = None;
        }
        if redis_up_at.is_some_and(|t| Instant::now() >= t) {
            redis_up_at = None;
            tokio::task::block_in_place(|| server.restart()).expect("redis-server restarts");
            redis_done = true;
            eprintln!(
                "chaos: redis-server up again at +{:.2}s",
                t0.elapsed().as_secs_f64()
            );
        }
        if let Some(&(at, step)) = plan.get(next)
            && site.total_requests() >= at
        {
            let pause_victim = paused.map(|(i, _)| i).or(pause_done.map(|(i, _)| i));
            match step {
                Step::Kill { restart_after } => {
                    // Any running worker but the paused one (whose rejoining is checked).
                    let alive: Vec<usize> = (0..WORKERS)
                        .filter(|&i| workers[i].running() && Some(i) != pause_victim)
                        .collect();
                    if !alive.is_empty() {
                        let i = alive[rng.usize(..alive.len())];
                        workers[i].note(t0, &format!("SIGKILL, back in {restart_after:?}"));
                        workers[i].kill9();
                        workers[i].restart_at = Some(Instant::now() + restart_after);
                        kills_done += 1;
                    }
                    next += 1;
                }
                Step::Pause => {
                    // A worker that is fetching (its output grew just now), so that it
                    // holds claims and leases when it stops.
                    let busy: Vec<usize> = (0..WORKERS)
                        .filter(|&i| {
                            workers[i].running()
                                && workers[i]
                                    .grew_at
                                    .is_some_and(|t| t.elapsed() < Duration::from_millis(300))
                        })
                        .collect();
                    if !busy.is_empty() {
                        let i = busy[rng.usize(..busy.len())];
                        workers[i].signal(libc::SIGSTOP);
                        workers[i].note(t0, &format!("SIGSTOP for {PAUSE:?}"));
                        paused = Some((i, Instant::now() + PAUSE));
                        next += 1;
                    }
                }
                Step::Redis { down } => {
                    eprintln!(
                        "chaos: redis-server SIGKILL at +{:.2}s, down {down:?}",
                        t0.elapsed().as_secs_f64()
                    );
                    tokio::task::block_in_place(|| server.kill9());
                    redis_up_at = Some(Instant::now() + down);
                    next += 1;
                }
            }
        }
        let all_done = next == plan.len()
            && paused.is_none()
            && redis_up_at.is_none()
            && workers.iter().all(|w| !w.running() && w.restart_at.is_none());
        if all_done {
            break;
        }
        tick().await;
    }
    let took = t0.elapsed();
    eprintln!(
        "chaos: crawl over at +{:.2}s: {kills_done} random kills, {} requests",
        took.as_secs_f64(),
        site.total_requests()
    );

    // Every step happened, and every worker's last run exited 0.
    assert!(kills_done >= 3, "only {kills_done} kills");
    assert!(redis_done, "the server was not restarted");
    let (stopped, offset) = pause_done.expect("a worker was paused");
    for w in &workers {
        assert_eq!(w.exit, Some(0), "{}: last run\n{}", w.name, w.log_text());
    }
    // The paused worker found its claims gone when it went on: its renewal was refused
    // them (or, first to run, a lease took a host again with a new epoch), and with
    // leases still out (an ack refused, or a request it could no longer start) it cut
    // its outputs back and joined again. (With none out, it had nothing to cut back: it
    // takes hosts again.)
    let after = workers[stopped].log_text()[offset..].to_string();
    let rejoined = after.lines().find(|l| l.contains(REJOINED));
    let lost = after.lines().filter(|l| l.contains(LOST_CLAIM)).count();
    assert!(
        rejoined.is_some() || lost > 0,
        "{} did not notice that its claims were gone:\n{after}",
        workers[stopped].name
    );
    eprintln!(
        "chaos: {} after its pause: {lost} claims found gone; {}",
        workers[stopped].name,
        rejoined.unwrap_or("no leases were out, nothing to cut back")
    );

    // The union of the outputs: the ground truth, each page once.
    let mut records = Vec::new();
    for w in &workers {
        let r = read_jsonl(&w.out);
        eprintln!("chaos: {} wrote {} records in {} runs", w.name, r.len(), w.runs);
        records.extend(r);
    }
    let dups = duplicates(&records);
    assert!(
        dups.is_empty(),
        "{} written twice: {:?}",
        dups.len(),
        &dups[..dups.len().min(10)]
    );
    let truth = site
        .site()
        .crawl_truth(&(0..HOSTS as u64).collect::<Vec<_>>(), &|_| true);
    let expected: HashSet<&str> = truth
        .pages
        .keys()
        .map(String::as_str)
        .chain(slow_urls.iter().map(String::as_str))
        .collect();
    let ok = trawl_e2e::ok_urls(&records);
    let missing: Vec<_> = expected.difference(&ok).take(10).collect();
    let extra: Vec<_> = ok.difference(&expected).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    let denied: HashSet<&str> = records
        .iter()
        .filter(|r| r.error.as_deref() == Some("robots-denied"))
        .map(|r| r.url.as_str())
        .collect();
    let disallowed: HashSet<&str> = truth.disallowed.iter().map(String::as_str).collect();
    assert_eq!(denied, disallowed);
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r.error.is_some() && r.error.as_deref() != Some("robots-denied"))
        .map(|r| (r.url.as_str(), r.error.as_deref()))
        .collect();
    assert!(failed.is_empty(), "failed records: {failed:?}");
    assert_eq!(site.private_hits(), 0);

    // The merged request log, per host: the pace, Retry-After, robots.txt once.
    let log = site.requests();
    let interval = Duration::from_millis(1000 / RATE);
    let (mut short, mut off) = (0, Vec::new());
    let mut early = Vec::new();
    for (base, qs) in by_host(&bases, &log) {
        let (s, o) = off_pace(&qs, interval);
        short += s;
        off.extend(o.into_iter().map(|j| {
            format!(
                "{base}: {} at +{:.3}s, {:?} after {}, early for the ones before it too",
                qs[j].url,
                (qs[j].at - t0).as_secs_f64(),
                qs[j].at - qs[j - 1].at,
                qs[j - 1].url
            )
        }));
        for q in qs.iter().filter(|q| q.status == 429) {
            let until = q.at + Duration::from_secs(RETRY_AFTER);
            for r in qs.iter().filter(|r| r.at > q.at && r.at + TOLERANCE < until) {
                early.push(format!(
                    "{base}: {} {:?} after the 429 of {} (Retry-After: {RETRY_AFTER})",
                    r.url,
                    r.at - q.at,
                    q.url
                ));
            }
        }
        assert_eq!(
            site.hits(&format!("{base}/robots.txt")),
            1,
            "{base}: robots.txt fetched more or less than once"
        );
    }
    eprintln!("chaos: {short} gaps under 1/{RATE} s less {TOLERANCE:?}, each after a late request");
    assert!(
        off.is_empty(),
        "{} requests faster than 1/{RATE} s per host:\n{}",
        off.len(),
        off.join("\n")
    );
    assert!(
        early.is_empty(),
        "requests inside a Retry-After:\n{}",
        early.join("\n")
    );
    let answered_429 = log.iter().filter(|q| q.status == 429).count();
    assert_eq!(answered_429, COOLING_HOSTS, "each cooling host answered one 429");
    eprintln!(
        "chaos: seed {seed} passed in {:.1}s ({} requests, {} pages)",
        took.as_secs_f64(),
        log.len(),
        truth.pages.len()
    );
}
