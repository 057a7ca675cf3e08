//! Fetches a list of URLs concurrently with trawl-fetcher used as a library, against a
//! local trawl-testsite (nothing leaves the machine).
//!
//! ```sh
//! cargo run -p trawl-examples --example fetch_list
//! ```

use trawl_fetcher::{Fetcher, GatePolicy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let site = trawl_testsite::TestSite::new().pages(40).hosts(2).start().await?;
    let urls: Vec<String> = (0..40).map(|i| site.site().page_url(i)).collect();

    // Polite by default: robots.txt obeyed, 1 request/s and 2 at once per host. The
    // test site lives on 127.0.0.1, which the SSRF protection refuses unless allowed.
    let mut policy = GatePolicy::default();
    policy.rate = Some(20.0);
    let fetcher = Fetcher::builder()
        .user_agent("trawl-example/0.1 (+https://example.invalid/bot)")
        .politeness(policy)
        .allow_private_ips(true)
        .build()?;

    let tasks: Vec<_> = urls
        .into_iter()
        .map(|url| {
            let fetcher = fetcher.clone(); // cheap: one shared pool
            tokio::spawn(async move { (url.clone(), fetcher.fetch(&url).await) })
        })
        .collect();
    for task in tasks {
        match task.await? {
            (url, Ok(page)) => println!(
                "{} {url} {} bytes ({} on the wire)",
                page.status, page.body_bytes, page.wire_bytes
            ),
            (url, Err(e)) => println!("ERR {url}: {} ({e})", e.kind()),
        }
    }
    Ok(())
}
