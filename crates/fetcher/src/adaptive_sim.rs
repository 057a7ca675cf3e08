//! The convergence proof of the adaptive rate (issue 16, item 1), through the real
//! per-host gate on tokio's paused clock.
//!
//! A simulated server keeps testsite's hidden limit (`crates/testsite/src/limit.rs`):
//! at most R admitted requests from the client in any sliding second, 429 above it,
//! with no `Retry-After` in one variant and `Retry-After: 1` in the other. The client
//! is the per-host concurrency's worth of workers, each doing what the crawl does to
//! one host's [`HostGate`]: claim a start with [`HostGate::try_acquire`] (the
//! scheduler's path; a refusal says how long to wait, and the worker waits that long
//! as the scheduler's timer would), send nothing if a cool-down began since the claim
//! (`Fetcher::fetch_claimed`), take a fixed service time for the answer, drop the
//! permit and feed the answer back through the same gate calls as
//! `fetch/request.rs` ([`HostGate::answered`] and [`HostGate::answered_retryable`],
//! with the engine's one attempt per lease: a 429 is not retried in the task).
//!
//! The verdict is read from the server's log of arrivals, after a warm-up: the
//! admitted rate, the share refused, and the admitted rate in each 5 s bucket against
//! their mean. Everything runs on paused time, so 120 virtual seconds take a few
//! milliseconds and the figures are the same on every run (the backoff's jitter is
//! seeded).
//!
//! Measured (R = 10 and 20, `--rate` 4R, 4 workers, 5 ms service, 120 s, 20 s warm-up;
//! achieved / R, share refused, worst 5 s bucket against the mean):
//! - no Retry-After: R = 10: 0.90 R, 0.6%, ±22%; R = 20: 0.87 R, 0.5%, ±17%;
//! - `Retry-After: 1`: R = 10: 0.90 R, 0.6%, ±22%; R = 20: 0.86 R, 0.5%, ±17%
//!   (the same bars hold for 40 other seeds of the jitter: at worst 0.86 R, 0.7%,
//!   ±24%). The worst buckets are those of a cut: a quarter off, held 2 s, then back
//!   to 90% of the rate that drew it within about 40 responses;
//! - `--adaptive off` (a fixed 4R): no Retry-After: 0.48 R and 16.5% refused
//!   (R = 10), 0.50 R and 9.0% (R = 20), buckets up to ±67% (the backoff's jitter);
//!   `Retry-After: 1`: 0.80 R and 9.1% refused at R = 10. At R = 20 a fixed rate
//!   with `Retry-After: 1` passes the bar by the numbers (0.79 R, 4.8%): it sends R
//!   at 4R in a quarter of a second, draws one 429 and sits out the second the
//!   server asked for, so one request in R + 1 is refused; the bar's 5% catches
//!   that only below R = 20, and its 5 s buckets do not see bursts.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::gate::{GatePolicy, HostGate, NotReady};

/// How long the simulated server takes to answer (the time to first byte and the
/// whole exchange: the body is small).
const SERVICE: Duration = Duration::from_millis(5);
/// Requests in flight at once: the per-host concurrency, one worker each.
const WORKERS: usize = 4;
/// How long a run lasts, and the warm-up left out of the verdict.
const RUN: Duration = Duration::from_secs(120);
const WARM_UP: Duration = Duration::from_secs(20);
/// The span of the rate samples that must stay within ±30% of their mean.
const BUCKET: Duration = Duration::from_secs(5);
/// How long a worker waits when every slot is taken (the scheduler's `BUSY_RETRY`);
/// with one worker per slot it never is.
const BUSY_RETRY: Duration = Duration::from_millis(10);

/// The hidden limit: the arrivals admitted in the last second, and the log.
struct Server {
    per_second: usize,
    window: VecDeque<Instant>,
    /// Every arrival: when (since the start) and whether it was admitted.
    log: Vec<(Duration, bool)>,
    start: Instant,
}

impl Server {
    /// testsite's `Limiter::admit`: only admitted requests count.
    fn admit(&mut self, now: Instant) -> bool {
        while self
            .window
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1))
        {
            self.window.pop_front();
        }
        let ok = self.window.len() < self.per_second;
        if ok {
            self.window.push_back(now);
        }
        self.log.push((now - self.start, ok));
        ok
    }
}

/// What the log says after the warm-up.
#[derive(Debug)]
struct Verdict {
    /// Admitted requests per second, as a share of R.
    achieved: f64,
    /// Share of the requests answered 429.
    refused: f64,
    /// The admitted rate in each whole [`BUCKET`], requests per second.
    buckets: Vec<f64>,
    /// The largest `|bucket / mean - 1|`.
    worst: f64,
    requests: usize,
}

impl Verdict {
    fn meets_the_bar(&self) -> bool {
        (0.7..=1.0).contains(&self.achieved) && self.refused < 0.05 && self.worst <= 0.3
    }
}

/// One worker: what the scheduler and a fetch task do for one request slot.
async fn worker(gate: &HostGate, server: &RefCell<Server>, retry_after: Option<Duration>, end: Instant) {
    while Instant::now() < end {
        let permit = match gate.try_acquire() {
            Ok(p) => p,
            Err(NotReady::Wait(d)) => {
                tokio::time::sleep(d).await;
                continue;
            }
            Err(NotReady::Busy) => {
                tokio::time::sleep(BUSY_RETRY).await;
                continue;
            }
        };
        // `fetch_claimed`: a cool-down that began after the claim sends nothing.
        if !gate.snapshot().cool_down.is_zero() {
            continue;
        }
        let sent_at = Instant::now();
        let admitted = server.borrow_mut().admit(sent_at);
        tokio::time::sleep(SERVICE).await;
        drop(permit);
        if admitted {
            gate.answered(sent_at, SERVICE);
        } else {
            gate.answered_retryable(sent_at, 429, retry_after);
        }
    }
}

/// Runs [`WORKERS`] workers against a hidden limit of `r` per second at a configured
/// rate of 4r, adaptive or not, and judges the log.
async fn run(r: usize, retry_after: Option<Duration>, adaptive: bool) -> Verdict {
    fastrand::seed(0x7261_776c);
    let gate = HostGate::new(GatePolicy {
        rate: Some(4.0 * r as f64),
        concurrency: WORKERS,
        adaptive,
        ..GatePolicy::default()
    });
    let start = Instant::now();
    let server = RefCell::new(Server {
        per_second: r,
        window: VecDeque::new(),
        log: Vec::new(),
        start,
    });
    let end = start + RUN;
    futures_util::future::join_all((0..WORKERS).map(|_| worker(&gate, &server, retry_after, end))).await;
    let log = server.into_inner().log;
    let after: Vec<&(Duration, bool)> = log.iter().filter(|(at, _)| *at >= WARM_UP).collect();
    let ok = after.iter().filter(|(_, ok)| *ok).count();
    let span = RUN - WARM_UP;
    let mut buckets = vec![0u32; (span.as_secs() / BUCKET.as_secs()) as usize];
    for (at, _) in after.iter().filter(|(_, ok)| *ok) {
        let k = ((*at - WARM_UP).as_secs() / BUCKET.as_secs()) as usize;
        if let Some(b) = buckets.get_mut(k) {
            *b += 1;
        }
    }
    let buckets: Vec<f64> = buckets
        .iter()
        .map(|b| f64::from(*b) / BUCKET.as_secs_f64())
        .collect();
    let mean = buckets.iter().sum::<f64>() / buckets.len() as f64;
    let worst = buckets.iter().map(|b| (b / mean - 1.0).abs()).fold(0.0, f64::max);
    Verdict {
        achieved: ok as f64 / span.as_secs_f64() / r as f64,
        refused: (after.len() - ok) as f64 / after.len().max(1) as f64,
        buckets,
        worst,
        requests: after.len(),
    }
}

fn check(v: &Verdict, variant: &str) {
    assert!(v.requests > 500, "{variant}: too few requests to judge: {v:?}");
    assert!(
        (0.7..=1.0).contains(&v.achieved),
        "{variant}: achieved {:.2} R: {v:?}",
        v.achieved
    );
    assert!(
        v.refused < 0.05,
        "{variant}: {:.1}% refused: {v:?}",
        v.refused * 100.0
    );
    assert!(
        v.worst <= 0.3,
        "{variant}: a 5 s bucket {:.1}% off the mean: {:?}",
        v.worst * 100.0,
        v.buckets
    );
}

#[tokio::test(start_paused = true)]
async fn the_gate_converges_under_a_hidden_limit_without_retry_after() {
    for r in [10, 20] {
        let v = run(r, None, true).await;
        println!(
            "no Retry-After, R = {r}: {:.2} R, {:.1}% refused, worst bucket ±{:.1}%",
            v.achieved,
            v.refused * 100.0,
            v.worst * 100.0
        );
        check(&v, &format!("no Retry-After, R = {r}"));
    }
}

#[tokio::test(start_paused = true)]
async fn the_gate_converges_under_a_hidden_limit_with_retry_after() {
    for r in [10, 20] {
        let v = run(r, Some(Duration::from_secs(1)), true).await;
        println!(
            "Retry-After: 1, R = {r}: {:.2} R, {:.1}% refused, worst bucket ±{:.1}%",
            v.achieved,
            v.refused * 100.0,
            v.worst * 100.0
        );
        check(&v, &format!("Retry-After: 1, R = {r}"));
    }
}

/// The same runs at a fixed rate fail the bar, so the two tests above can fail:
/// without Retry-After at both limits, with it at R = 10 (at R = 20 a fixed rate
/// that sits out each `Retry-After: 1` is refused one request in 21, under the 5%
/// bar: see the figures in the module docs).
#[tokio::test(start_paused = true)]
async fn a_fixed_rate_gate_fails_the_bar() {
    for (r, retry_after) in [(10, None), (20, None), (10, Some(Duration::from_secs(1)))] {
        let v = run(r, retry_after, false).await;
        println!(
            "--adaptive off, Retry-After {retry_after:?}, R = {r}: {:.2} R, {:.1}% refused, worst bucket ±{:.1}%",
            v.achieved,
            v.refused * 100.0,
            v.worst * 100.0
        );
        assert!(
            !v.meets_the_bar(),
            "a fixed rate met the bar too, so the test tells nothing: {v:?}"
        );
        assert!(v.refused >= 0.05, "{v:?}");
    }
}
