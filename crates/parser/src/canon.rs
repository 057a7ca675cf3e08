//! URL canonicalization: one spelling per resource, so the seen set catches duplicates.
//!
//! On top of what the `url` crate does (WHATWG parsing: lower-case scheme and host,
//! IDN to punycode, default ports removed, dot segments resolved, tabs and newlines
//! dropped), [`canonicalize`] applies these rules, in order:
//!
//! 1. Inputs longer than four times `max_len` are refused before parsing.
//! 2. Only `http` and `https`.
//! 3. URLs with userinfo (`user:pass@`) are refused.
//! 4. The fragment is dropped.
//! 5. A trailing dot on the host is removed.
//! 6. Percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded in
//!    the path and query; other escapes get upper-case hex digits.
//! 7. `;jsessionid=…` path parameters are removed.
//! 8. Query parameters named in `strip_params` (session ids and tracking parameters;
//!    every `utm_*` too) are removed; an empty query is removed.
//! 9. With `sort_query`, the remaining parameters are sorted (for dedup keys only).
//! 10. Limits: path segments, repeats of one segment (a trap signature), query
//!     parameters, and the length of the result.
//!
//! The result is stable: canonicalizing a canonical URL returns it unchanged.

use url::Url;

/// Session and tracking parameters removed by default (compared case-insensitively).
pub const DEFAULT_STRIP_PARAMS: &[&str] = &[
    "gclid",
    "fbclid",
    "msclkid",
    "dclid",
    "yclid",
    "igshid",
    "mc_cid",
    "mc_eid",
    "_ga",
    "_gl",
    "phpsessid",
    "jsessionid",
    "sessionid",
    "session_id",
    "aspsessionid",
    "cfid",
    "cftoken",
    "sid",
];

/// Settings of [`canonicalize`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CanonOptions {
    /// The longest canonical URL kept, in bytes. By default, 2,048.
    pub max_len: usize,
    /// Query parameters to remove (lower-case); `utm_*` is always removed. By default,
    /// [`DEFAULT_STRIP_PARAMS`].
    pub strip_params: Vec<String>,
    /// Sort the query parameters. Use it for dedup keys only: some servers care about
    /// order. By default, off.
    pub sort_query: bool,
    /// The most path segments. By default, 32.
    pub max_path_segments: usize,
    /// The most times one path segment may occur in a path (`/a/b/a/b/a/b/…` is a trap).
    /// By default, 3.
    pub max_repeated_segments: usize,
    /// The most query parameters. By default, 32.
    pub max_query_params: usize,
}

impl Default for CanonOptions {
    fn default() -> CanonOptions {
        CanonOptions {
            max_len: 2048,
            strip_params: DEFAULT_STRIP_PARAMS.iter().map(|s| s.to_string()).collect(),
            sort_query: false,
            max_path_segments: 32,
            max_repeated_segments: 3,
            max_query_params: 32,
        }
    }
}

impl CanonOptions {
    /// Adds parameter names to strip.
    pub fn strip(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> CanonOptions {
        self.strip_params
            .extend(names.into_iter().map(|n| n.into().to_ascii_lowercase()));
        self
    }
    /// Sets [`CanonOptions::sort_query`].
    pub fn sort_query(mut self, on: bool) -> CanonOptions {
        self.sort_query = on;
        self
    }
    /// Sets [`CanonOptions::max_len`].
    pub fn max_len(mut self, n: usize) -> CanonOptions {
        self.max_len = n;
        self
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonError {
    /// Not a URL.
    #[error("invalid url: {0}")]
    Invalid(String),
    /// Not http or https.
    #[error("unsupported scheme {0}")]
    Scheme(String),
    /// It carries a user name or password.
    #[error("url has userinfo")]
    UserInfo,
    /// Longer than the limit, before or after canonicalization.
    #[error("url longer than {0} bytes")]
    TooLong(usize),
    /// Too many path segments.
    #[error("more than {0} path segments")]
    TooManySegments(usize),
    /// One path segment repeats too often.
    #[error("a path segment repeats more than {0} times")]
    RepeatedSegments(usize),
    /// Too many query parameters.
    #[error("more than {0} query parameters")]
    TooManyParams(usize),
}

impl CanonError {
    /// The name of the trap guard that refused the URL, for a refusal by a limit
    /// (`url-length`, `path-segments`, `repeated-segments`, `query-params`); `None`
    /// for a URL that is not crawlable at all.
    pub fn guard(&self) -> Option<&'static str> {
        match self {
            CanonError::TooLong(_) => Some("url-length"),
            CanonError::TooManySegments(_) => Some("path-segments"),
            CanonError::RepeatedSegments(_) => Some("repeated-segments"),
            CanonError::TooManyParams(_) => Some("query-params"),
            _ => None,
        }
    }
}

/// The byte offset of `needle` (ASCII) in `hay`, ignoring ASCII case.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    if !hay.contains(';') {
        return None;
    }
    hay.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes escapes of unreserved characters and upper-cases the hex of the others.
fn normalize_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let v = (h * 16 + l) as u8;
                if is_unreserved(v) {
                    out.push(v as char);
                } else {
                    out.push('%');
                    out.push(b[i + 1].to_ascii_uppercase() as char);
                    out.push(b[i + 2].to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        // `i` is always on a character boundary: it only moves by whole characters or
        // past three ASCII bytes.
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Resolves `href` against `base` (if any) and returns its canonical form.
///
/// # Errors
/// A [`CanonError`] saying why the URL is refused.
pub fn canonicalize(href: &str, base: Option<&Url>, opts: &CanonOptions) -> Result<String, CanonError> {
    let href = href.trim();
    if href.len() > opts.max_len.saturating_mul(4) {
        return Err(CanonError::TooLong(opts.max_len));
    }
    let parsed = match base {
        Some(b) => b.join(href),
        None => Url::parse(href),
    };
    let mut url = parsed.map_err(|e| CanonError::Invalid(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(CanonError::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CanonError::UserInfo);
    }
    url.set_fragment(None);
    if let Some(host) = url.host_str()
        && host.len() > 1
        && host.ends_with('.')
    {
        let trimmed = host.trim_end_matches('.').to_string();
        url.set_host(Some(&trimmed))
            .map_err(|e| CanonError::Invalid(e.to_string()))?;
    }

    // Path: escapes, ;jsessionid, segment limits. The common path has no escape and no
    // `;`, and is checked without allocating.
    if url.path().contains(['%', ';']) {
        let mut path = normalize_escapes(url.path());
        while let Some(i) = find_ci(&path, ";jsessionid=") {
            let end = path[i + 1..].find(['/', ';']).map_or(path.len(), |e| i + 1 + e);
            path.replace_range(i..end, "");
        }
        if path != url.path() {
            url.set_path(&path);
        }
    }
    let path = url.path();
    let count = path.split('/').filter(|s| !s.is_empty()).count();
    if count > opts.max_path_segments {
        return Err(CanonError::TooManySegments(opts.max_path_segments));
    }
    if count > opts.max_repeated_segments {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let repeated = segments
            .iter()
            .enumerate()
            .any(|(i, s)| segments[i..].iter().filter(|t| *t == s).count() > opts.max_repeated_segments);
        if repeated {
            return Err(CanonError::RepeatedSegments(opts.max_repeated_segments));
        }
    }

    // Query: escapes, stripped parameters, empty query.
    if let Some(q) = url.query() {
        let mut pairs: Vec<String> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or("").to_ascii_lowercase();
                !name.starts_with("utm_") && !opts.strip_params.contains(&name)
            })
            .map(|p| {
                if p.contains('%') {
                    normalize_escapes(p)
                } else {
                    p.to_string()
                }
            })
            .collect();
        if pairs.len() > opts.max_query_params {
            return Err(CanonError::TooManyParams(opts.max_query_params));
        }
        if opts.sort_query {
            pairs.sort();
        }
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            let joined = pairs.join("&");
            if joined != q {
                url.set_query(Some(&joined));
            }
        }
    }
    let out: String = url.into();
    if out.len() > opts.max_len {
        return Err(CanonError::TooLong(opts.max_len));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Result<String, CanonError> {
        canonicalize(s, None, &CanonOptions::default())
    }

    #[test]
    fn rules() {
        assert_eq!(
            c("HTTP://Example.COM:80/a/./b/../c#frag").as_deref(),
            Ok("http://example.com/a/c")
        );
        assert_eq!(
            c("https://example.com./x?").as_deref(),
            Ok("https://example.com/x")
        );
        assert_eq!(
            c("http://example.com/%7Euser/%41b%2fc%2F").as_deref(),
            Ok("http://example.com/~user/Ab%2Fc%2F")
        );
        assert_eq!(
            c("http://example.com/p?utm_source=x&id=3&PHPSESSID=abc&gclid=1").as_deref(),
            Ok("http://example.com/p?id=3")
        );
        assert_eq!(
            c("http://example.com/p;jsessionid=ABC123?x=1").as_deref(),
            Ok("http://example.com/p?x=1")
        );
        assert_eq!(
            c("http://bücher.example/").as_deref(),
            Ok("http://xn--bcher-kva.example/")
        );
        assert_eq!(c("http://user:pw@example.com/"), Err(CanonError::UserInfo));
        assert!(matches!(c("mailto:a@b.c"), Err(CanonError::Scheme(_))));
        assert!(matches!(c("javascript:alert(1)"), Err(CanonError::Scheme(_))));
        assert!(matches!(c("http://[::1"), Err(CanonError::Invalid(_))));
        assert!(matches!(
            c(&format!("http://e.com/{}", "a".repeat(3000))),
            Err(CanonError::TooLong(_))
        ));
        assert!(matches!(
            c("http://e.com/a/b/a/b/a/b/a/b"),
            Err(CanonError::RepeatedSegments(3))
        ));
        let sorted = canonicalize(
            "http://e.com/?b=2&a=1",
            None,
            &CanonOptions::default().sort_query(true),
        );
        assert_eq!(sorted.as_deref(), Ok("http://e.com/?a=1&b=2"));
    }

    #[test]
    fn relative_resolution() {
        let base = Url::parse("http://example.com/dir/page.html").expect("base");
        let o = CanonOptions::default();
        assert_eq!(
            canonicalize("other", Some(&base), &o).as_deref(),
            Ok("http://example.com/dir/other")
        );
        assert_eq!(
            canonicalize("/root", Some(&base), &o).as_deref(),
            Ok("http://example.com/root")
        );
        assert_eq!(
            canonicalize("//cdn.example/x", Some(&base), &o).as_deref(),
            Ok("http://cdn.example/x")
        );
        assert_eq!(
            canonicalize("  ../up  ", Some(&base), &o).as_deref(),
            Ok("http://example.com/up")
        );
    }
}
