//! `trawl-testsite`: serves the synthetic site on 127.0.0.1 until Ctrl-C, for manual
//! tries and benchmarks.

use std::time::Duration;

use clap::Parser;
use trawl_testsite::{Latency, TestSite};

/// Serve trawl's synthetic test site on loopback.
#[derive(Debug, Parser)]
#[command(name = "trawl-testsite", version, about)]
struct Args {
    /// Number of regular pages.
    #[arg(long, default_value_t = 1_000)]
    pages: u64,
    /// Number of hosts (one port each, counting up from --port).
    #[arg(long, default_value_t = 1)]
    hosts: usize,
    /// Serve N virtual hosts on one port instead (h0.localhost ... h{N-1}.localhost,
    /// chosen by the Host header; --pages are shared out among them); prints the
    /// portal http://localhost:PORT/, which links to h0.
    #[arg(long, value_name = "N", conflicts_with_all = ["hosts", "tls"])]
    vhosts: Option<usize>,
    /// Added latency per response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Make the latency random between 0 and --latency-ms.
    #[arg(long)]
    random_latency: bool,
    /// Port of host 0 (0: pick free ports).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Seed of the site.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Crawl-delay in robots.txt, in seconds.
    #[arg(long)]
    crawl_delay: Option<f64>,
    /// Never compress responses.
    #[arg(long)]
    no_compression: bool,
    /// Link the hostile endpoints under /bad/ from the root pages.
    #[arg(long)]
    link_bad: bool,
    /// Also serve one host per broken robots.txt variant.
    #[arg(long)]
    robots_variants: bool,
    /// Keep a per-request log (memory grows with requests).
    #[arg(long)]
    track: bool,
    /// Print every host's root URL on stdout, one per line (host 0 first), instead of
    /// host 0's only.
    #[arg(long)]
    all_roots: bool,
    /// Serve every host over TLS (HTTP/2 and HTTP/1.1) with a certificate from a CA
    /// made at start; the CA is written to --ca-file and its path printed on stderr.
    #[arg(long)]
    tls: bool,
    /// Where --tls writes the CA certificate (PEM) [default: trawl-testsite-ca-PID.pem
    /// in the temporary directory].
    #[arg(long, requires = "tls")]
    ca_file: Option<std::path::PathBuf>,
    /// Every page sends an ETag and a Last-Modified (one in two by default), so that a
    /// recrawl of an unchanged site is all 304s.
    #[arg(long)]
    all_validators: bool,
    /// Some pages also link to broken URLs (404, 410, 500, a dropped connection), for
    /// trying `trawl export --what broken`.
    #[arg(long)]
    broken_links: bool,
    /// Serve this directory as a plain static web server instead of the synthetic site
    /// (for benchmarks on real sites); prints its root URL.
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trawl-testsite: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        if let Some(dir) = &args.dir {
            let served = match trawl_testsite::serve_dir(dir, args.port).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("trawl-testsite: {e}");
                    std::process::exit(1);
                }
            };
            println!("{}", served.root_url());
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!(requests = served.requests(), "stopping");
            return;
        }
        let latency = match (args.latency_ms, args.random_latency) {
            (0, _) => Latency::None,
            (ms, false) => Latency::Fixed(Duration::from_millis(ms)),
            (ms, true) => Latency::Random(Duration::from_millis(ms)),
        };
        let mut site = TestSite::new();
        if let Some(n) = args.vhosts {
            site = site.vhosts(n);
        }
        let started = site
            .pages(args.pages)
            .hosts(args.hosts)
            .seed(args.seed)
            .latency(latency)
            .crawl_delay(args.crawl_delay)
            .compression(!args.no_compression)
            .link_bad(args.link_bad)
            .robots_variants(args.robots_variants)
            .track_requests(args.track)
            .port(args.port)
            .tls(args.tls)
            .all_validators(args.all_validators)
            .broken_links(args.broken_links)
            .start()
            .await;
        let running = match started {
            Ok(r) => r,
            Err(e) => {
                eprintln!("trawl-testsite: {e}");
                std::process::exit(1);
            }
        };
        tracing::info!(root = %running.root_url(), pages = args.pages, hosts = args.hosts, "serving");
        if args.tls {
            let path = args.ca_file.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("trawl-testsite-ca-{}.pem", std::process::id()))
            });
            if let Err(e) = running.write_ca(&path) {
                eprintln!(
                    "trawl-testsite: cannot write the ca certificate to {}: {e}",
                    path.display()
                );
                std::process::exit(1);
            }
            // On stderr: stdout carries the root URLs alone, for scripts.
            eprintln!("trawl-testsite: ca certificate written to {}", path.display());
        }
        // The root URL on stdout, alone on a line, so scripts can read it.
        if let Some(portal) = running.portal_url() {
            println!("{portal}");
        } else if args.all_roots {
            for h in 0..args.hosts {
                println!("{}", running.site().root_url(h));
            }
        } else {
            println!("{}", running.root_url());
        }
        for (k, a) in running.addrs().iter().enumerate() {
            tracing::info!(host = k, addr = %a, "listening");
        }
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!(requests = running.total_requests(), "stopping");
    });
}
