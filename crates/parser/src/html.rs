//! HTML to owned data with scraper: links, title, description, language, robots meta,
//! and (optionally) the visible text, under limits that keep hostile pages cheap.

use std::borrow::Cow;
use std::collections::HashSet;

use html5ever::tendril::StrTendril;
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, QualName};
use scraper::{ElementRef, Html, Node};
use url::Url;

use crate::canon::{CanonOptions, canonicalize};
use crate::decode::{charset_from_content_type, decode};

/// What kind of reference a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// `<a href>`.
    Anchor,
    /// `<area href>`.
    Area,
    /// `<link rel=next>`.
    Next,
    /// `<link rel=prev>` (or `previous`).
    Prev,
    /// `<link rel=alternate>`.
    Alternate,
    /// `<link rel=canonical>`.
    Canonical,
    /// `<iframe src>`.
    Iframe,
    /// `<frame src>`.
    Frame,
    /// `<meta http-equiv=refresh content="N; url=…">`.
    Refresh,
}

/// One outgoing link, resolved and canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The canonical absolute URL.
    pub url: String,
    /// What kind of reference it is.
    pub kind: LinkKind,
    /// The anchor text, whitespace collapsed and capped (empty for non-anchors).
    pub text: String,
    /// Whether it carries `rel=nofollow`.
    pub nofollow: bool,
}

/// `noindex` / `nofollow` from `<meta name=robots>` and the `X-Robots-Tag` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RobotsMeta {
    /// Do not index this page.
    pub noindex: bool,
    /// Do not follow this page's links.
    pub nofollow: bool,
}

impl RobotsMeta {
    /// Reads a robots directive list such as `noindex, nofollow` or `none`.
    pub fn merge(&mut self, directives: &str) {
        for d in directives
            .split([',', ' '])
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            // `googlebot: noindex` style prefixes name another agent; the bare form and
            // our own form both apply.
            let d = d.rsplit(':').next().unwrap_or(d).trim().to_ascii_lowercase();
            match d.as_str() {
                "noindex" => self.noindex = true,
                "nofollow" => self.nofollow = true,
                "none" => {
                    self.noindex = true;
                    self.nofollow = true;
                }
                _ => {}
            }
        }
    }
}

/// Which limits a page hit. A page that hits one yields what it safely can.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LimitsHit {
    /// The input was longer than `max_input_bytes` and was cut.
    pub input: bool,
    /// Elements nested deeper than `max_depth`; the start and end tags beyond it were
    /// left out (their content, and the links in it, were kept).
    pub depth: bool,
    /// More distinct links than `max_links`; the rest were dropped.
    pub links: bool,
    /// How many distinct links were dropped past `max_links`.
    pub links_dropped: u64,
    /// Links refused by a trap guard of [`CanonOptions`], by the guard's name
    /// ([`crate::CanonError::guard`]).
    pub guarded: std::collections::BTreeMap<&'static str, u64>,
}

/// Limits and options of [`parse_html`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Bytes of HTML parsed at most. By default, 4 MiB.
    pub max_input_bytes: usize,
    /// The deepest element nesting parsed, found by a cheap pre-scan before html5ever
    /// sees the input (its cost grows quadratically with depth). By default, 256.
    pub max_depth: usize,
    /// Distinct links kept per page. By default, 100,000: enough for real index pages
    /// (the Rust documentation's `core::arch` indexes link 5,000 to 8,700 pages each),
    /// and a cap that is hit is reported ([`LimitsHit::links_dropped`]).
    pub max_links: usize,
    /// Characters of anchor text kept per link. By default, 200.
    pub max_anchor_text: usize,
    /// Characters of visible text kept; 0 skips collecting it. By default, 0.
    pub max_text: usize,
    /// URL canonicalization rules.
    pub canon: CanonOptions,
    /// Also collect the page's requisites ([`Page::requisites`]): `<img src>` and
    /// `srcset`, `<script src>`, `<link rel=stylesheet|icon>`, and the `url()`s of
    /// `<style>` elements. By default, off.
    pub requisites: bool,
}

impl Default for ParseOptions {
    fn default() -> ParseOptions {
        ParseOptions {
            max_input_bytes: 4 << 20,
            max_depth: 256,
            max_links: 100_000,
            max_anchor_text: 200,
            max_text: 0,
            canon: CanonOptions::default(),
            requisites: false,
        }
    }
}

impl ParseOptions {
    /// Sets [`ParseOptions::max_links`].
    pub fn max_links(mut self, n: usize) -> ParseOptions {
        self.max_links = n;
        self
    }
    /// Sets [`ParseOptions::max_depth`].
    pub fn max_depth(mut self, n: usize) -> ParseOptions {
        self.max_depth = n;
        self
    }
    /// Sets [`ParseOptions::max_text`].
    pub fn max_text(mut self, n: usize) -> ParseOptions {
        self.max_text = n;
        self
    }
    /// Sets [`ParseOptions::max_input_bytes`].
    pub fn max_input_bytes(mut self, n: usize) -> ParseOptions {
        self.max_input_bytes = n;
        self
    }
    /// Sets [`ParseOptions::requisites`].
    pub fn requisites(mut self, on: bool) -> ParseOptions {
        self.requisites = on;
        self
    }
}

/// Everything extracted from one page, as owned data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Distinct links in document order (first occurrence wins), canonical.
    pub links: Vec<Link>,
    /// The `<title>`, whitespace collapsed.
    pub title: Option<String>,
    /// `<meta name=description>`.
    pub description: Option<String>,
    /// The `lang` attribute of `<html>`.
    pub lang: Option<String>,
    /// The `<base href>` in effect, resolved.
    pub base: Option<String>,
    /// Robots directives from the page and the header.
    pub robots: RobotsMeta,
    /// The visible text, when asked for.
    pub text: Option<String>,
    /// Links that were refused (invalid, other schemes, too long, traps).
    pub refused_links: u32,
    /// The limits this page hit.
    pub limits_hit: LimitsHit,
    /// The page's requisites (images, stylesheets, scripts, CSS `url()`s), distinct
    /// and canonical, when [`ParseOptions::requisites`] asks; capped with the links by
    /// [`ParseOptions::max_links`].
    pub requisites: Vec<String>,
}

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
    "wbr",
];

/// Where nesting first exceeds `max_depth`, by a cheap scan of tags (comments, scripts
/// and styles skipped; void and self-closed elements not counted). Returns the byte
/// offset to cut at.
pub fn nesting_cut(html: &str, max_depth: usize) -> Option<usize> {
    let b = html.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(p) = memchr(b'<', &b[i..]) {
        let at = i + p;
        let rest = &b[at + 1..];
        if rest.starts_with(b"!--") {
            i = find(&b[at..], b"-->").map_or(b.len(), |e| at + e + 3);
            continue;
        }
        if rest.first() == Some(&b'/') {
            depth = depth.saturating_sub(1);
            i = at + 2;
            continue;
        }
        if !rest.first().is_some_and(u8::is_ascii_alphabetic) {
            i = at + 1;
            continue;
        }
        let (lower, len) = tag_name(rest);
        let name = &lower[..len];
        let close = memchr(b'>', rest).map_or(b.len(), |e| at + 1 + e);
        let self_closed = close > 0 && b.get(close - 1) == Some(&b'/');
        if name == b"script" || name == b"style" {
            let end_tag: &[u8] = if name == b"script" {
                b"</script"
            } else {
                b"</style"
            };
            i = find_ci(&b[close.min(b.len())..], end_tag).map_or(b.len(), |e| close + e);
            continue;
        }
        if !VOID.iter().any(|v| v.as_bytes() == name) && !self_closed {
            depth += 1;
            if depth > max_depth {
                return Some(at);
            }
        }
        i = close.min(b.len());
    }
    None
}

/// Elements that carry a link and are kept at any depth: none of them nests in itself
/// (a new `<a>` closes the open one; the others are void or hold raw text), so keeping
/// them costs html5ever no depth.
const LINK_ELEMENTS: [&[u8]; 4] = [b"a", b"area", b"iframe", b"frame"];

/// The document with nesting capped at `max_depth`, as browsers cap their tree depth
/// without losing what lies deeper: start tags that would open an element deeper than
/// that are left out, with their end tags, and everything else stays, so the links
/// after deep (often unclosed) nesting are still found. `None` when the document
/// never nests that deep. One linear scan of the tags, like [`nesting_cut`].
pub fn flatten_nesting(html: &str, max_depth: usize) -> Option<String> {
    nesting_cut(html, max_depth)?;
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len());
    let mut depth = 0usize;
    let (mut i, mut copied) = (0, 0);
    while let Some(p) = memchr(b'<', &b[i..]) {
        let at = i + p;
        let rest = &b[at + 1..];
        if rest.starts_with(b"!--") {
            i = find(&b[at..], b"-->").map_or(b.len(), |e| at + e + 3);
            continue;
        }
        let closing = rest.first() == Some(&b'/');
        let name_at = if closing { 1 } else { 0 };
        if !rest.get(name_at).is_some_and(u8::is_ascii_alphabetic) {
            i = at + 1;
            continue;
        }
        let (lower, len) = tag_name(&rest[name_at..]);
        let name = &lower[..len];
        let close = memchr(b'>', rest).map_or(b.len(), |e| at + 2 + e);
        let keep = LINK_ELEMENTS.contains(&name);
        if closing {
            // The end tag of an element left out is left out too.
            if depth > max_depth && !keep {
                out.push_str(&html[copied..at]);
                copied = close.min(b.len());
            }
            depth = depth.saturating_sub(1);
            i = close.min(b.len());
            continue;
        }
        let self_closed = close > 1 && b.get(close - 2) == Some(&b'/');
        if name == b"script" || name == b"style" {
            let end_tag: &[u8] = if name == b"script" {
                b"</script"
            } else {
                b"</style"
            };
            i = find_ci(&b[close.min(b.len())..], end_tag).map_or(b.len(), |e| close + e);
            continue;
        }
        if !VOID.iter().any(|v| v.as_bytes() == name) && !self_closed {
            depth += 1;
            if depth > max_depth && !keep {
                out.push_str(&html[copied..at]);
                copied = close.min(b.len());
            }
        }
        i = close.min(b.len());
    }
    out.push_str(&html[copied..]);
    Some(out)
}

/// The tag name at the start of `rest`, lower-cased into a small buffer: no allocation
/// per tag. A name longer than the buffer comes back empty (it is no void, script,
/// style or link element anyway).
fn tag_name(rest: &[u8]) -> ([u8; 8], usize) {
    let len = rest
        .iter()
        .position(|c| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let mut lower = [0u8; 8];
    if len > lower.len() {
        return (lower, 0);
    }
    for (d, c) in lower.iter_mut().zip(&rest[..len]) {
        *d = c.to_ascii_lowercase();
    }
    (lower, len)
}

fn memchr(c: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == c)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

fn collapse(s: &str, max_chars: usize) -> String {
    collapse_pieces(std::iter::once(s), max_chars)
}

/// Joins text pieces with whitespace runs collapsed to one space, trimmed, capped at
/// `max_chars` characters.
fn collapse_pieces<'a>(pieces: impl Iterator<Item = &'a str>, max_chars: usize) -> String {
    let mut out = String::new();
    let mut n = 0;
    let mut pending_space = false;
    for piece in pieces {
        if piece.starts_with(char::is_whitespace) {
            pending_space = true;
        }
        let mut words = piece.split_whitespace().peekable();
        while let Some(word) = words.next() {
            if n >= max_chars {
                return out;
            }
            if pending_space && !out.is_empty() {
                out.push(' ');
                n += 1;
            }
            for ch in word.chars() {
                if n >= max_chars {
                    return out;
                }
                out.push(ch);
                n += 1;
            }
            pending_space = words.peek().is_some() || piece.ends_with(char::is_whitespace);
        }
    }
    out
}

/// The URL inside a refresh directive such as `5; url='/next'`.
fn refresh_target(content: &str) -> Option<&str> {
    let (_, rest) = content.split_once(';').or_else(|| content.split_once(','))?;
    let rest = rest.trim();
    let rest = rest
        .strip_prefix("url")
        .or_else(|| rest.strip_prefix("URL"))
        .or_else(|| rest.strip_prefix("Url"))?;
    let rest = rest.trim_start().strip_prefix('=')?.trim();
    Some(rest.trim_matches(['"', '\'']))
}

/// Decodes `bytes` (see [`decode`]) and parses them: the one call a crawler needs.
/// `content_type` is the `Content-Type` header and `x_robots_tag` the `X-Robots-Tag`
/// header, when the response had them.
pub fn parse_page(
    bytes: &[u8],
    content_type: Option<&str>,
    page_url: &Url,
    x_robots_tag: Option<&str>,
    opts: &ParseOptions,
) -> Page {
    let cut = bytes.len().min(opts.max_input_bytes);
    let decoded = decode(&bytes[..cut], content_type.and_then(charset_from_content_type));
    let mut page = parse_html(&decoded.text, page_url, x_robots_tag, opts);
    page.limits_hit.input |= cut < bytes.len();
    page
}

/// Parses a document as a client with scripting disabled does. `Html::parse_document`
/// parses with scripting enabled, so `<noscript>` content is raw text and the links in
/// it (mdBook's whole table of contents, say) are lost; a crawler runs no scripts, so
/// for it that content is markup (HTML § 13.2.6.4.4, the "in head noscript" and
/// scripting flag rules). With `all_text` off, the tree keeps only what
/// [`parse_html`] reads (see [`LinkSink`]).
fn parse_without_scripting(html: &str, all_text: bool, requisites: bool) -> Html {
    use html5ever::tendril::TendrilSink;
    let opts = html5ever::ParseOpts {
        tree_builder: html5ever::tree_builder::TreeBuilderOpts {
            scripting_enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let sink = LinkSink {
        inner: scraper::HtmlTreeSink::new(Html::new_document()),
        all_text,
        requisites,
    };
    html5ever::driver::parse_document(sink, opts).one(html)
}

/// scraper's tree sink, keeping only what link extraction reads: the element
/// structure (the tree builder needs all of it), the attributes of the elements
/// [`parse_html`] looks at, and the text under `<a>` and `<title>` (all text when the
/// page's text is collected). Comments are dropped. On a large page most nodes are
/// text and most attributes are classes: an 8.5 MB source listing of the Rust
/// documentation builds a tree of 450,000 nodes with scraper's own sink, and about
/// half of that with this one.
struct LinkSink {
    inner: scraper::HtmlTreeSink,
    all_text: bool,
    /// Also keep what requisites are read from: the attributes of `img` and
    /// `script`, and the text of `style`.
    requisites: bool,
}

impl LinkSink {
    /// Whether text appended under `parent` is kept.
    fn keeps_text(&self, parent: ego_tree::NodeId) -> bool {
        if self.all_text {
            return true;
        }
        let doc = self.inner.0.borrow();
        let mut node = doc.tree.get(parent);
        while let Some(n) = node {
            if let Node::Element(e) = n.value()
                && (matches!(e.name(), "a" | "area" | "title") || (self.requisites && e.name() == "style"))
            {
                return true;
            }
            node = n.parent();
        }
        false
    }

    /// Whether `child` is kept when appended under `parent`.
    fn keeps(&self, parent: ego_tree::NodeId, child: &NodeOrText<ego_tree::NodeId>) -> bool {
        match child {
            NodeOrText::AppendText(_) => self.keeps_text(parent),
            NodeOrText::AppendNode(id) => !matches!(
                self.inner
                    .0
                    .borrow()
                    .tree
                    .get(*id)
                    .map(|n| n.value().is_comment()),
                Some(true)
            ),
        }
    }
}

/// Elements whose attributes [`parse_html`] reads.
fn reads_attributes(name: &str) -> bool {
    matches!(
        name,
        "a" | "area" | "link" | "iframe" | "frame" | "meta" | "base" | "html"
    )
}

impl TreeSink for LinkSink {
    type Output = Html;
    type Handle = ego_tree::NodeId;
    type ElemName<'a> = <scraper::HtmlTreeSink as TreeSink>::ElemName<'a>;

    fn finish(self) -> Html {
        self.inner.finish()
    }
    fn parse_error(&self, msg: Cow<'static, str>) {
        self.inner.parse_error(msg);
    }
    fn get_document(&self) -> Self::Handle {
        self.inner.get_document()
    }
    fn elem_name<'a>(&'a self, target: &'a Self::Handle) -> Self::ElemName<'a> {
        self.inner.elem_name(target)
    }
    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> Self::Handle {
        let attrs = if reads_attributes(&name.local)
            || (self.requisites && matches!(&*name.local, "img" | "script" | "source"))
        {
            attrs
        } else {
            Vec::new()
        };
        self.inner.create_element(name, attrs, flags)
    }
    fn create_comment(&self, text: StrTendril) -> Self::Handle {
        self.inner.create_comment(text)
    }
    fn create_pi(&self, target: StrTendril, data: StrTendril) -> Self::Handle {
        self.inner.create_pi(target, data)
    }
    fn append(&self, parent: &Self::Handle, child: NodeOrText<Self::Handle>) {
        if self.keeps(*parent, &child) {
            self.inner.append(parent, child);
        }
    }
    fn append_based_on_parent_node(
        &self,
        element: &Self::Handle,
        prev_element: &Self::Handle,
        child: NodeOrText<Self::Handle>,
    ) {
        let parent = self
            .inner
            .0
            .borrow()
            .tree
            .get(*element)
            .and_then(|e| e.parent())
            .map(|p| p.id());
        if self.keeps(parent.unwrap_or(*prev_element), &child) {
            self.inner
                .append_based_on_parent_node(element, prev_element, child);
        }
    }
    fn append_doctype_to_document(&self, name: StrTendril, public_id: StrTendril, system_id: StrTendril) {
        self.inner.append_doctype_to_document(name, public_id, system_id);
    }
    fn get_template_contents(&self, target: &Self::Handle) -> Self::Handle {
        self.inner.get_template_contents(target)
    }
    fn same_node(&self, x: &Self::Handle, y: &Self::Handle) -> bool {
        self.inner.same_node(x, y)
    }
    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.inner.set_quirks_mode(mode);
    }
    fn append_before_sibling(&self, sibling: &Self::Handle, new_node: NodeOrText<Self::Handle>) {
        let parent = self
            .inner
            .0
            .borrow()
            .tree
            .get(*sibling)
            .and_then(|e| e.parent())
            .map(|p| p.id());
        if parent.is_none_or(|p| self.keeps(p, &new_node)) {
            self.inner.append_before_sibling(sibling, new_node);
        }
    }
    fn add_attrs_if_missing(&self, target: &Self::Handle, attrs: Vec<Attribute>) {
        self.inner.add_attrs_if_missing(target, attrs);
    }
    fn remove_from_parent(&self, target: &Self::Handle) {
        self.inner.remove_from_parent(target);
    }
    fn reparent_children(&self, node: &Self::Handle, new_parent: &Self::Handle) {
        self.inner.reparent_children(node, new_parent);
    }
    fn mark_script_already_started(&self, node: &Self::Handle) {
        self.inner.mark_script_already_started(node);
    }
    fn is_mathml_annotation_xml_integration_point(&self, handle: &Self::Handle) -> bool {
        self.inner.is_mathml_annotation_xml_integration_point(handle)
    }
}

/// Parses decoded HTML from `page_url`.
pub fn parse_html(html: &str, page_url: &Url, x_robots_tag: Option<&str>, opts: &ParseOptions) -> Page {
    let mut page = Page::default();
    let mut html = html;
    if html.len() > opts.max_input_bytes {
        let mut end = opts.max_input_bytes;
        while !html.is_char_boundary(end) {
            end -= 1;
        }
        html = &html[..end];
        page.limits_hit.input = true;
    }
    let flat = flatten_nesting(html, opts.max_depth);
    if let Some(f) = &flat {
        html = f;
        page.limits_hit.depth = true;
    }
    if let Some(h) = x_robots_tag {
        page.robots.merge(h);
    }
    let doc = parse_without_scripting(html, opts.max_text > 0, opts.requisites);
    let mut requisites: Vec<String> = Vec::new();

    // One pass over the tree; links are resolved after it, because <base> applies to
    // the whole document wherever it stands.
    let mut raw: Vec<(String, LinkKind, String, bool)> = Vec::new();
    let mut base: Option<Url> = None;
    let mut text = (opts.max_text > 0).then(String::new);
    for node in doc.tree.nodes() {
        let el = match node.value() {
            Node::Element(el) => el,
            Node::Text(t) => {
                if let Some(out) = text.as_mut()
                    && out.len() < opts.max_text
                {
                    let hidden = node
                        .parent()
                        .and_then(|p| p.value().as_element())
                        .is_some_and(|p| {
                            matches!(p.name(), "script" | "style" | "noscript" | "template" | "title")
                        });
                    if !hidden {
                        let chunk = collapse(t, opts.max_text - out.len());
                        if !chunk.is_empty() {
                            if !out.is_empty() {
                                out.push(' ');
                            }
                            out.push_str(&chunk);
                        }
                    }
                }
                continue;
            }
            _ => continue,
        };
        let rel_has = |word: &str| {
            el.attr("rel")
                .is_some_and(|r| r.split_ascii_whitespace().any(|t| t.eq_ignore_ascii_case(word)))
        };
        if opts.requisites {
            match el.name() {
                "img" | "source" => {
                    requisites.extend(el.attr("src").map(String::from));
                    if let Some(set) = el.attr("srcset") {
                        requisites.extend(crate::requisites::srcset_urls(set).map(String::from));
                    }
                }
                "script" => requisites.extend(el.attr("src").map(String::from)),
                "link" if rel_has("stylesheet") || rel_has("icon") => {
                    requisites.extend(el.attr("href").map(String::from));
                }
                "style" => {
                    if let Some(r) = ElementRef::wrap(node) {
                        let css: String = r.text().collect();
                        requisites.extend(crate::requisites::css_urls(&css).into_iter().map(String::from));
                    }
                }
                _ => {}
            }
        }
        match el.name() {
            "a" | "area" => {
                if let Some(href) = el.attr("href") {
                    let kind = if el.name() == "a" {
                        LinkKind::Anchor
                    } else {
                        LinkKind::Area
                    };
                    let anchor = match ElementRef::wrap(node) {
                        Some(r) if kind == LinkKind::Anchor => {
                            collapse_pieces(r.text(), opts.max_anchor_text)
                        }
                        _ => el
                            .attr("alt")
                            .map(|a| collapse(a, opts.max_anchor_text))
                            .unwrap_or_default(),
                    };
                    raw.push((href.to_string(), kind, anchor, rel_has("nofollow")));
                }
            }
            "link" => {
                if let Some(href) = el.attr("href") {
                    let kind = if rel_has("canonical") {
                        Some(LinkKind::Canonical)
                    } else if rel_has("next") {
                        Some(LinkKind::Next)
                    } else if rel_has("prev") || rel_has("previous") {
                        Some(LinkKind::Prev)
                    } else if rel_has("alternate") {
                        Some(LinkKind::Alternate)
                    } else {
                        None
                    };
                    if let Some(kind) = kind {
                        raw.push((href.to_string(), kind, String::new(), rel_has("nofollow")));
                    }
                }
            }
            "iframe" | "frame" => {
                if let Some(src) = el.attr("src") {
                    let kind = if el.name() == "iframe" {
                        LinkKind::Iframe
                    } else {
                        LinkKind::Frame
                    };
                    raw.push((src.to_string(), kind, String::new(), false));
                }
            }
            "meta" => {
                let name = el.attr("name").map(str::to_ascii_lowercase);
                match (name.as_deref(), el.attr("content")) {
                    (Some("robots"), Some(c)) => page.robots.merge(c),
                    (Some("description"), Some(c)) if page.description.is_none() => {
                        page.description = Some(collapse(c, 1_000));
                    }
                    _ => {}
                }
                if el
                    .attr("http-equiv")
                    .is_some_and(|h| h.eq_ignore_ascii_case("refresh"))
                    && let Some(target) = el.attr("content").and_then(refresh_target)
                {
                    raw.push((target.to_string(), LinkKind::Refresh, String::new(), false));
                }
            }
            "base" if base.is_none() => {
                base = el.attr("href").and_then(|h| page_url.join(h.trim()).ok());
            }
            "title" if page.title.is_none() => {
                if let Some(r) = ElementRef::wrap(node) {
                    let t: String = r.text().collect();
                    page.title = Some(collapse(&t, 1_000));
                }
            }
            "html" if page.lang.is_none() => page.lang = el.attr("lang").map(str::to_string),
            _ => {}
        }
    }
    page.base = base.as_ref().map(|b| b.to_string());
    let resolve_base = base.as_ref().unwrap_or(page_url);
    let mut seen = HashSet::with_capacity(raw.len());
    let mut raw_seen: HashSet<&str> = HashSet::with_capacity(raw.len());
    for (href, kind, anchor, nofollow) in &raw {
        // An exact repeat of an earlier href canonicalizes the same way: skip the work.
        if !raw_seen.insert(href.as_str()) {
            continue;
        }
        let (kind, nofollow) = (*kind, *nofollow);
        match canonicalize(href, Some(resolve_base), &opts.canon) {
            Ok(url) => {
                if !seen.insert(url.clone()) {
                    continue;
                }
                if page.links.len() >= opts.max_links {
                    page.limits_hit.links = true;
                    page.limits_hit.links_dropped += 1;
                    continue;
                }
                page.links.push(Link {
                    url,
                    kind,
                    text: anchor.clone(),
                    nofollow,
                });
            }
            Err(e) => {
                page.refused_links += 1;
                if let Some(guard) = e.guard() {
                    *page.limits_hit.guarded.entry(guard).or_default() += 1;
                }
            }
        }
    }
    let mut req_seen = HashSet::with_capacity(requisites.len());
    for href in &requisites {
        match canonicalize(href, Some(resolve_base), &opts.canon) {
            Ok(url) if req_seen.insert(url.clone()) => {
                if page.links.len() + page.requisites.len() >= opts.max_links {
                    page.limits_hit.links = true;
                    page.limits_hit.links_dropped += 1;
                    continue;
                }
                page.requisites.push(url);
            }
            Ok(_) => {}
            Err(_) => page.refused_links += 1,
        }
    }
    page.text = text;
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_prescan() {
        let deep = format!(
            "<html><body>{}x{}</body></html>",
            "<ul><li>".repeat(1000),
            "</li></ul>".repeat(1000)
        );
        let cut = nesting_cut(&deep, 256).expect("too deep");
        assert!(cut < deep.len() / 2);
        let flat = "<html><body><p>a<br><img src=x><p>b</p><!-- <div><div> --><script>if (a<b) {}</script></body></html>";
        assert_eq!(nesting_cut(flat, 4), None);
    }

    #[test]
    fn the_link_sink_keeps_what_parse_html_reads_and_drops_the_rest() {
        let mut html = String::from(
            "<html lang=en><head><title>The <b>title</b></title><base href=/docs/></head><body>",
        );
        for i in 0..200 {
            html.push_str(&format!(
                "<!-- note {i} --><p class=c{i}><span class=kw>fn</span> item {i} \
                 <a class=x href=p{i}.html><code>Item</code> {i}</a></p>"
            ));
        }
        html.push_str("<table><tr><td><a href=cell.html>in a cell</a></td></tr></table></body></html>");
        let lean = parse_without_scripting(&html, false, false);
        let full = parse_without_scripting(&html, true, false);
        let count = |d: &Html| d.tree.root().descendants().count();
        // Two text nodes per item are outside any link: `fn` and ` item N `.
        assert_eq!(count(&full) - count(&lean), 400, "text outside links is gone");
        let scraped = Html::parse_document(&html);
        assert!(scraped.tree.root().descendants().any(|n| n.value().is_comment()));
        assert!(lean.tree.root().descendants().all(|n| !n.value().is_comment()));
        let classes = |d: &Html| {
            d.tree
                .nodes()
                .filter_map(|n| n.value().as_element())
                .filter(|e| e.attr("class").is_some())
                .count()
        };
        assert_eq!(classes(&lean), 200, "only the links keep attributes");
        assert_eq!(classes(&scraped), 600);
        let url = Url::parse("http://example.com/a/").unwrap();
        let with_text = ParseOptions {
            max_text: 100_000,
            ..ParseOptions::default()
        };
        let a = parse_html(&html, &url, None, &ParseOptions::default());
        let b = parse_html(&html, &url, None, &with_text);
        assert_eq!(a.links.len(), 201);
        assert_eq!(
            a.links, b.links,
            "the same links, anchor texts and kinds either way"
        );
        assert_eq!(a.links[7].url, "http://example.com/docs/p7.html");
        assert_eq!(a.links[7].text, "Item 7");
        assert_eq!(a.title.as_deref(), Some("The <b>title</b>"));
        assert_eq!(a.lang.as_deref(), Some("en"));
        assert!(b.text.as_deref().is_some_and(|t| t.contains("fn item 3")));
    }

    #[test]
    fn links_after_deep_nesting_are_kept() {
        let url = Url::parse("http://a.example/").expect("url");
        // 20,000 levels of lists, and unclosed divs piling up as broken pages do.
        for (open, close) in [("<ul><li>", "</li></ul>"), ("<div>", "")] {
            let page = format!(
                "<html><body><a href=/top>top</a>{}<a href=/bottom>bottom</a>{}<p><a href=/after>after</a></body></html>",
                open.repeat(20_000),
                close.repeat(20_000)
            );
            let flat = flatten_nesting(&page, 256).expect("too deep");
            assert!(
                flat.len() < page.len() / 10,
                "{open}: the tags beyond the cap are left out"
            );
            let parsed = parse_html(&page, &url, None, &ParseOptions::default());
            let links: Vec<&str> = parsed.links.iter().map(|l| l.url.as_str()).collect();
            assert_eq!(
                links,
                [
                    "http://a.example/top",
                    "http://a.example/bottom",
                    "http://a.example/after"
                ],
                "{open}"
            );
            assert!(parsed.limits_hit.depth);
        }
        let shallow = "<html><body><div><a href=/x>x</a></div></body></html>";
        assert_eq!(flatten_nesting(shallow, 256), None);
    }

    #[test]
    fn refresh_targets() {
        assert_eq!(refresh_target("5; url=/next"), Some("/next"));
        assert_eq!(refresh_target("0;URL='http://a/b'"), Some("http://a/b"));
        assert_eq!(refresh_target("5"), None);
    }

    #[test]
    fn robots_directives() {
        let mut r = RobotsMeta::default();
        r.merge("index, follow");
        assert_eq!(r, RobotsMeta::default());
        r.merge("googlebot: noindex");
        assert!(r.noindex && !r.nofollow);
        r.merge("NONE");
        assert!(r.nofollow);
    }
}
