//! Sink throughput: writes 100,000 records of 16 KB pages to each format on one core,
//! with a checkpoint every 32 records (as the engine's commit stage does), and reports
//! MB/s of page bytes. For WARC it also times plain gzip of the same bytes, to show
//! that WARC.gz runs at gzip speed.
//!
//! ```sh
//! cargo bench -p trawl-sink --bench sink               # 100,000 records, 3 runs
//! cargo bench -p trawl-sink --bench sink -- --records 20000 --runs 5
//! ```

use std::io::Write;
use std::time::Instant;

use trawl_sink::{CsvSink, Durability, Exchange, JsonlSink, PageRecord, Sink, WarcOptions, WarcSink};

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A 16 KB HTML-like body: text with markup, quotes and a few non-ASCII characters.
fn page(i: usize) -> String {
    let mut s = format!("<!DOCTYPE html><html lang=\"en\"><head><title>Page {i}</title></head><body>\n");
    let mut k = 0;
    while s.len() < 16 * 1024 {
        s.push_str(&format!(
            "<p class=\"prose\">Paragraph {k} of page {i}: the \"harbour\" lantern, café, naïve &amp; co. <a href=\"/page/{}\">link</a></p>\n",
            i * 31 + k
        ));
        k += 1;
    }
    s.push_str("</body></html>\n");
    s
}

fn run(kind: &str, n: usize, pages: &[String]) -> (f64, u64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let mut sink: Box<dyn Sink> = match kind {
        "jsonl" => Box::new(JsonlSink::create(&dir.path().join("o.jsonl"), Durability::Os).expect("jsonl")),
        "csv" => Box::new(CsvSink::create(&dir.path().join("o.csv"), Durability::Os).expect("csv")),
        _ => Box::new(WarcSink::create(&dir.path().join("o.warc.gz"), WarcOptions::default()).expect("warc")),
    };
    let request = "GET /page HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: trawl-bench";
    let response = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 16384";
    let t = Instant::now();
    let mut bytes = 0u64;
    for i in 0..n {
        let body = &pages[i % pages.len()];
        bytes += body.len() as u64;
        let record = PageRecord {
            url: format!("http://bench.example/page/{i}"),
            final_url: format!("http://bench.example/page/{i}"),
            status: Some(200),
            fetched_at: trawl_sink::rfc3339_ms(1_795_349_045_000 + i as u64),
            content_type: Some("text/html; charset=utf-8".into()),
            body_bytes: body.len() as u64,
            title: Some(format!("Page {i}")),
            outlinks: 30,
            body: (kind == "jsonl").then(|| body.clone()),
            ..Default::default()
        };
        let x = Exchange {
            request_head: request,
            response_head: response,
            body: body.as_bytes(),
            ip: None,
            protocol: "http/1.1",
            revisit: None,
        };
        sink.write(&record, Some(&x)).expect("write");
        if i % 32 == 31 {
            sink.checkpoint().expect("checkpoint");
        }
    }
    sink.checkpoint().expect("checkpoint");
    let secs = t.elapsed().as_secs_f64();
    let written: u64 = sink
        .paths()
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    (bytes as f64 / secs / 1e6, written)
}

fn gzip_only(n: usize, pages: &[String]) -> f64 {
    let t = Instant::now();
    let mut total = 0u64;
    for i in 0..n {
        let body = pages[i % pages.len()].as_bytes();
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(8192), flate2::Compression::new(6));
        enc.write_all(body).expect("gzip");
        total += enc.finish().expect("gzip").len() as u64;
        total += body.len() as u64 - body.len() as u64;
    }
    let bytes: u64 = (0..n).map(|i| pages[i % pages.len()].len() as u64).sum();
    std::hint::black_box(total);
    bytes as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let n = arg("--records").unwrap_or(100_000) as usize;
    let runs = arg("--runs").unwrap_or(3);
    let pages: Vec<String> = (0..64).map(page).collect();
    println!(
        "{n} records of {} KB pages, checkpoint every 32 records, one core",
        pages[0].len() / 1024
    );
    for kind in ["jsonl", "csv", "warc"] {
        let mut speeds = Vec::new();
        let mut size = 0;
        for _ in 0..runs {
            let (mbs, written) = run(kind, n, &pages);
            speeds.push(mbs);
            size = written;
        }
        println!(
            "  {kind:5}: median {:7.1} MB/s of page bytes ({} MB written)",
            median(speeds),
            size / 1_000_000
        );
    }
    let g: Vec<f64> = (0..runs).map(|_| gzip_only(n, &pages)).collect();
    println!(
        "  gzip level 6 of the same bodies alone: median {:7.1} MB/s",
        median(g)
    );
}
