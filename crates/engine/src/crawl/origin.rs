//! What the engine keeps with a URL in the frontier's data: how it was found, from
//! which page, and by which link text (the broken-link report's first source).

use trawl_sink::Discovery;

/// The longest anchor text kept with a queued URL, in bytes (cut at a character
/// boundary): enough to recognise a link in a report, small next to the URL.
pub(crate) const MAX_KEPT_ANCHOR: usize = 160;

/// What the engine keeps with a URL in the frontier: how it was found, from where, and
/// by which link text (`discovery byte, parent URL, NUL, anchor`; a URL never holds a
/// NUL, so data written before anchors were kept reads the same).
pub(crate) fn encode_data(discovery: Discovery, parent: Option<&str>) -> Vec<u8> {
    encode_origin(discovery, parent, None)
}

/// [`encode_data`] with the link's anchor text.
pub(crate) fn encode_origin(discovery: Discovery, parent: Option<&str>, anchor: Option<&str>) -> Vec<u8> {
    let anchor = anchor
        .map(|a| {
            // At most MAX_KEPT_ANCHOR bytes, cut at a character boundary.
            let a = a.trim();
            let mut end = a.len().min(MAX_KEPT_ANCHOR);
            while !a.is_char_boundary(end) {
                end -= 1;
            }
            &a[..end]
        })
        .filter(|a| !a.is_empty());
    let mut v = Vec::with_capacity(2 + parent.map_or(0, str::len) + anchor.map_or(0, str::len));
    v.push(match discovery {
        Discovery::Seed => 0,
        Discovery::Link => 1,
        Discovery::Redirect => 2,
        Discovery::Sitemap => 3,
        Discovery::Requisite => 4,
    });
    if let Some(p) = parent {
        v.extend_from_slice(p.as_bytes());
    }
    if let Some(a) = anchor {
        v.push(0);
        v.extend_from_slice(a.as_bytes());
    }
    v
}

/// How a URL was found: what [`encode_origin`] keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) discovery: Discovery,
    pub(crate) parent: Option<String>,
    pub(crate) anchor: Option<String>,
}

#[cfg(test)]
pub(crate) fn decode_data(data: &[u8]) -> (Discovery, Option<String>) {
    let o = decode_origin(data);
    (o.discovery, o.parent)
}

/// Reads what [`encode_origin`] wrote.
pub(crate) fn decode_origin(data: &[u8]) -> Origin {
    let first = data.first().copied().unwrap_or(0);
    let discovery = match first & !(crate::recrawl::PRIOR_FLAG | crate::recrawl::SKIP_FLAG) {
        1 => Discovery::Link,
        2 => Discovery::Redirect,
        3 => Discovery::Sitemap,
        4 => Discovery::Requisite,
        _ => Discovery::Seed,
    };
    // A URL queued by a recrawl carries what it was instead of its parent.
    if first & crate::recrawl::PRIOR_FLAG != 0 {
        return Origin {
            discovery,
            parent: None,
            anchor: None,
        };
    }
    let rest = data.get(1..).unwrap_or_default();
    let (parent, anchor) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let text = |b: &[u8]| (!b.is_empty()).then(|| String::from_utf8_lossy(b).into_owned());
    Origin {
        discovery,
        parent: text(parent),
        anchor: anchor.and_then(text),
    }
}
