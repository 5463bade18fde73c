//! HTML with scraper (html5ever): the main content (`<main>`, a lone `<article>`, else the body
//! without nav/header/footer/aside), headings with levels, paragraphs, list items, table rows,
//! preformatted code. Scripts, styles, templates, forms controls and hidden elements are
//! dropped. The tree is an arena and is walked with an explicit edge iterator, so deeply
//! nested input cannot overflow the stack; nesting past `max_depth` is refused.

use ego_tree::iter::Edge;
use scraper::{ElementRef, Html, Node};

use crate::{BlockKind, Builder, ExtractError, Extracted, Limits};

pub(crate) fn extract(text: &str, limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut b = Builder::new(limits);
    extract_into(text, None, &mut b, limits)?;
    b.finish("text/html")
}

/// Extracts `text` (HTML) into an existing builder, with every block on `page`.
pub(crate) fn extract_into(
    text: &str,
    page: Option<u32>,
    b: &mut Builder,
    limits: &Limits,
) -> Result<(), ExtractError> {
    precheck_depth(text, limits.max_depth)?;
    let doc = Html::parse_document(text);
    // Document facts and the content root.
    let mut main = None;
    let mut articles = Vec::new();
    let mut body = None;
    for node in doc.tree.root().descendants() {
        let Some(el) = ElementRef::wrap(node) else {
            continue;
        };
        let v = el.value();
        match v.name() {
            "html" => {
                if let Some(lang) = v.attr("lang").or_else(|| v.attr("xml:lang"))
                    && !lang.trim().is_empty()
                {
                    b.meta
                        .language
                        .get_or_insert_with(|| lang.trim().to_owned());
                }
            }
            "title" if b.meta.title.is_none() => {
                let t: String = el
                    .text()
                    .collect::<String>()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                if !t.is_empty() {
                    b.meta.title = Some(t);
                }
            }
            "meta" => {
                if v.attr("name")
                    .is_some_and(|n| n.eq_ignore_ascii_case("author"))
                    && let Some(c) = v.attr("content")
                {
                    b.meta.author.get_or_insert_with(|| c.trim().to_owned());
                }
            }
            "main" if main.is_none() => main = Some(node),
            "article" => articles.push(node),
            "body" if body.is_none() => body = Some(node),
            _ => {}
        }
        if main.is_none() && v.attr("role") == Some("main") {
            main = Some(node);
        }
    }
    let root = main
        .or_else(|| (articles.len() == 1).then(|| articles[0]))
        .or(body)
        .unwrap_or_else(|| doc.tree.root());
    let in_body = main.is_none() && articles.len() != 1;

    let mut w = Walker {
        b,
        page,
        buf: String::new(),
        kinds: Vec::new(),
        pre: 0,
        row: None,
        cell: None,
        skip: 0,
        depth: 0,
        articles: 0,
    };
    for (seen, edge) in root.traverse().enumerate() {
        if seen % 1024 == 1023 {
            limits.cancel.check()?;
        }
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(el) => {
                    w.depth += 1;
                    if w.depth > limits.max_depth {
                        return Err(ExtractError::TooLarge(format!(
                            "HTML nesting deeper than {} levels",
                            limits.max_depth
                        )));
                    }
                    if w.skip > 0 {
                        w.skip += 1;
                        continue;
                    }
                    let name = el.name();
                    if name == "article" {
                        w.articles += 1;
                    }
                    let hidden = el.attr("hidden").is_some()
                        || el.attr("aria-hidden") == Some("true")
                        || el.attr("style").is_some_and(|s| {
                            s.replace(' ', "")
                                .to_ascii_lowercase()
                                .contains("display:none")
                        });
                    let boiler = in_body
                        && w.articles == 0
                        && matches!(name, "nav" | "header" | "footer" | "aside")
                        || el
                            .attr("role")
                            .is_some_and(|r| matches!(r, "navigation" | "banner" | "contentinfo"));
                    if hidden || boiler || DROPPED.contains(&name) {
                        w.skip = 1;
                        continue;
                    }
                    w.open(name);
                }
                Node::Text(t) if w.skip == 0 => w.text(t),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(el) = node.value() {
                    w.depth -= 1;
                    if w.skip > 0 {
                        w.skip -= 1;
                        continue;
                    }
                    if el.name() == "article" {
                        w.articles -= 1;
                    }
                    w.close(el.name());
                    if w.b.full() {
                        break;
                    }
                }
            }
        }
    }
    w.flush();
    Ok(())
}

const DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed",
    "canvas", "button", "select", "textarea", "head", "title", "dialog", "map",
];

const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "nav",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "caption",
    "blockquote",
    "figure",
    "figcaption",
    "form",
    "address",
    "hr",
    "details",
    "summary",
    "fieldset",
    "legend",
    "center",
    "body",
    "html",
    "hgroup",
    "menu",
];

/// Refuses input whose tag nesting (counted roughly over tags that html5ever keeps open) is
/// far past the limit, before the parser spends quadratic time on it.
fn precheck_depth(text: &str, max_depth: usize) -> Result<(), ExtractError> {
    let bytes = text.as_bytes();
    let mut depth: usize = 0;
    let mut i = 0;
    while let Some(p) = memchr(b'<', &bytes[i..]) {
        i += p + 1;
        let close = bytes.get(i) == Some(&b'/');
        let start = if close { i + 1 } else { i };
        let end = bytes[start..]
            .iter()
            .position(|c| !c.is_ascii_alphanumeric())
            .map_or(bytes.len(), |e| start + e);
        let name = &bytes[start..end];
        if name.is_empty() || !CONTAINERS.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            continue;
        }
        if close {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            if depth > max_depth.saturating_mul(4).max(1024) {
                return Err(ExtractError::TooLarge(format!(
                    "HTML nesting deeper than {max_depth} levels"
                )));
            }
        }
    }
    Ok(())
}

/// Elements that are almost always closed explicitly: their nesting is a fair estimate.
const CONTAINERS: &[&[u8]] = &[
    b"div",
    b"span",
    b"section",
    b"article",
    b"ul",
    b"ol",
    b"table",
    b"blockquote",
    b"b",
    b"i",
    b"em",
    b"strong",
    b"font",
    b"a",
];

fn memchr(c: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == c)
}

struct Walker<'b> {
    b: &'b mut Builder,
    page: Option<u32>,
    buf: String,
    kinds: Vec<BlockKind>,
    pre: usize,
    row: Option<Vec<String>>,
    cell: Option<String>,
    skip: usize,
    depth: usize,
    articles: usize,
}

impl Walker<'_> {
    fn open(&mut self, name: &str) {
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.flush();
                let level = name.as_bytes()[1] - b'0';
                self.kinds.push(BlockKind::Heading { level });
            }
            "li" => {
                self.flush();
                self.kinds.push(BlockKind::ListItem);
            }
            "pre" => {
                self.flush();
                self.kinds.push(BlockKind::Code);
                self.pre += 1;
            }
            "tr" => {
                self.flush();
                self.row = Some(Vec::new());
            }
            "td" | "th" => {
                if self.cell.is_some() {
                    return;
                }
                self.flush();
                self.row.get_or_insert_with(Vec::new);
                self.cell = Some(String::new());
            }
            "br" => {
                if let Some(c) = self.cell.as_mut() {
                    c.push(' ');
                } else {
                    self.buf.push('\n');
                }
            }
            "img" => {}
            n if BLOCKS.contains(&n) => {
                if self.cell.is_some() {
                    if let Some(c) = self.cell.as_mut() {
                        c.push(' ');
                    }
                    return;
                }
                self.flush();
                self.kinds.push(BlockKind::Paragraph);
            }
            _ => {}
        }
    }

    fn close(&mut self, name: &str) {
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "li" | "pre" => {
                if self.cell.is_some() {
                    return;
                }
                self.flush();
                self.kinds.pop();
                if name == "pre" {
                    self.pre -= 1;
                }
            }
            "td" | "th" => {
                if let (Some(cell), Some(row)) = (self.cell.take(), self.row.as_mut()) {
                    row.push(cell.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
            "tr" => {
                if let Some(row) = self.row.take() {
                    let line = row.join(" | ");
                    if !line.replace('|', "").trim().is_empty() {
                        self.b.push(BlockKind::TableRow, self.page, &line);
                    }
                }
            }
            "table" => {
                self.cell = None;
                self.row = None;
            }
            n if BLOCKS.contains(&n) => {
                if self.cell.is_some() {
                    return;
                }
                self.flush();
                self.kinds.pop();
            }
            _ => {}
        }
    }

    fn text(&mut self, t: &str) {
        if let Some(c) = self.cell.as_mut() {
            c.push_str(t);
            return;
        }
        if self.pre > 0 {
            self.buf.push_str(t);
            return;
        }
        let mut last_space = self.buf.ends_with([' ', '\n']) || self.buf.is_empty();
        for ch in t.chars() {
            if ch.is_whitespace() {
                if !last_space {
                    self.buf.push(' ');
                    last_space = true;
                }
            } else {
                self.buf.push(ch);
                last_space = false;
            }
        }
    }

    fn flush(&mut self) {
        if self.buf.trim().is_empty() {
            self.buf.clear();
            return;
        }
        let kind = self.kinds.last().cloned().unwrap_or(BlockKind::Paragraph);
        let text = if self.pre > 0 {
            self.buf.trim_matches('\n').trim_end().to_owned()
        } else {
            self.buf
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let kind = match kind {
            BlockKind::Heading { .. } if text.chars().count() > 300 => BlockKind::Paragraph,
            k => k,
        };
        self.b.push(kind, self.page, &text);
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use crate::{BlockKind, Limits, extract};

    #[test]
    fn main_content_headings_tables_and_no_scripts() {
        let html = r#"<!doctype html><html lang="en"><head><title>The Title</title>
            <meta name="author" content="Ada"><style>p{}</style><script>var x = "secret";</script></head>
            <body><nav><a href="/">Home</a> | <a href="/x">Menu link</a></nav>
            <h1>Main heading</h1><p>First <b>bold</b>   paragraph.</p>
            <ul><li>one</li><li>two</li></ul>
            <table><tr><th>Name</th><th>Age</th></tr><tr><td>Bob</td><td>42</td></tr></table>
            <pre>fn main() {
    x();
}</pre><footer>Copyright footer</footer></body></html>"#;
        let out = extract(html.as_bytes(), "a.html", "text/html", Limits::default()).unwrap();
        assert_eq!(out.detected_type, "text/html");
        assert!(!out.text.contains("secret"));
        assert!(!out.text.contains("Menu link"));
        assert!(!out.text.contains("Copyright"));
        let blocks: Vec<(BlockKind, &str)> = out
            .blocks
            .iter()
            .map(|b| (b.kind.clone(), out.block_text(b)))
            .collect();
        assert_eq!(
            blocks,
            vec![
                (BlockKind::Heading { level: 1 }, "Main heading"),
                (BlockKind::Paragraph, "First bold paragraph."),
                (BlockKind::ListItem, "one"),
                (BlockKind::ListItem, "two"),
                (BlockKind::TableRow, "Name | Age"),
                (BlockKind::TableRow, "Bob | 42"),
                (BlockKind::Code, "fn main() {\n    x();\n}"),
            ]
        );
        assert_eq!(out.meta.title.as_deref(), Some("The Title"));
        assert_eq!(out.meta.author.as_deref(), Some("Ada"));
        assert_eq!(out.meta.language.as_deref(), Some("en"));
    }

    #[test]
    fn deep_nesting_is_refused_quickly_without_overflow() {
        let html = format!(
            "<html><body>{}deep{}</body></html>",
            "<div>".repeat(100_000),
            "</div>".repeat(100_000)
        );
        let t = std::time::Instant::now();
        let err = extract(html.as_bytes(), "a.html", "", Limits::default()).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
        assert!(t.elapsed().as_secs() < 5);
        // Unclosed tags html5ever nests (here <p> closes itself, <font> does not) still parse.
        let html = format!("<html><body>{}deep</body></html>", "<font>".repeat(20_000));
        let t = std::time::Instant::now();
        let r = extract(html.as_bytes(), "a.html", "", Limits::default());
        assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
        assert!(r.is_ok() || r.unwrap_err().code() == "payload_too_large");
    }
}
