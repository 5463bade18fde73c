//! PDF text layer with lopdf (parsing, decryption with the empty password) and pdf-extract
//! (content streams, fonts, ToUnicode maps), which hands us every glyph with its position.
//! The layout is ours: glyphs → lines (word spaces from gaps) → columns (gutters found in the
//! x coverage of narrow lines; full-width lines split bands) → paragraphs (vertical gaps),
//! de-hyphenated; headings from font sizes clearly above the body size; lines repeated at the
//! top or bottom of most pages (running headers, footers, page numbers) are dropped.
//!
//! Lines of right-to-left scripts are put back in reading order ([`bidi`]).
//!
//! pdf-extract panics on some malformed files: every call is guarded, and structures that
//! would make it recurse forever (page-tree parent loops, form XObjects that draw themselves)
//! are refused before it runs. ToUnicode maps are rewritten in a form its CMap parser reads
//! in full ([`cmap`]). A page that still fails is repaired — the failing operation found,
//! its font replaced by a simpler stand-in or the operation dropped ([`repair`]) — and read
//! again; only if that fails too is the page kept as far as it got.
//!
//! pdf-extract's own warnings (one per glyph name it cannot map, hundreds for some files) are
//! counted and logged once per document, at debug ([`warnings`]).

mod bidi;
mod cmap;
mod repair;
mod warnings;

use std::collections::{BTreeMap, HashMap, HashSet};

use pdf_extract::{
    Dictionary, Document, MediaBox, Object, ObjectId, OutputDev, OutputError, Transform,
};

use crate::{BlockKind, Builder, ExtractError, Extracted, Limits, guard};

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    warnings::summarized(|| extract_text(bytes, limits))
}

fn extract_text(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut doc = guard("PDF", || {
        Document::load_mem(bytes).map_err(|e| match e {
            pdf_extract::Error::Decryption(_) | pdf_extract::Error::InvalidPassword => {
                ExtractError::Encrypted
            }
            // An encrypted file that does not open with the empty password can fail to
            // load in other ways first.
            _ if names_encryption(bytes) => ExtractError::Encrypted,
            e => ExtractError::failed("corrupt PDF", e),
        })
    })?;
    if doc.is_encrypted() {
        return Err(ExtractError::Encrypted);
    }
    let declared = doc
        .catalog()
        .ok()
        .and_then(|c| c.get(b"Pages").ok())
        .and_then(|p| p.as_reference().ok())
        .and_then(|id| doc.get_dictionary(id).ok())
        .and_then(|d| d.get(b"Count").ok())
        .and_then(|c| c.as_i64().ok())
        .unwrap_or(0);
    if declared > limits.max_pages as i64 {
        return Err(ExtractError::TooLarge(format!(
            "the PDF has {declared} pages, more than the limit of {}",
            limits.max_pages
        )));
    }
    let pages = guard("PDF", || Ok(doc.get_pages()))?;
    if pages.len() > limits.max_pages as usize {
        return Err(ExtractError::TooLarge(format!(
            "the PDF has {} pages, more than the limit of {}",
            pages.len(),
            limits.max_pages
        )));
    }
    if pages.is_empty() {
        return Err(ExtractError::Failed("the PDF has no pages".into()));
    }
    check_structure(&doc, &pages)?;
    // Our own code, but it walks untrusted structures: a failure leaves the maps as they were
    // (or partly rewritten, which is as good).
    let _ = guard("PDF", || {
        cmap::normalize_to_unicode(&mut doc);
        Ok(())
    });

    let mut collector = Collector::new(
        limits.max_output_chars.saturating_mul(2),
        limits.cancel.clone(),
    );
    let whole = guard("PDF", || {
        pdf_extract::output_doc(&doc, &mut collector).map_err(|e| ExtractError::failed("PDF", e))
    });
    limits.cancel.check()?;
    if whole.is_err() {
        // Salvage: from the page that failed on, one page at a time; a failing page is
        // repaired and read again, else kept as far as it got.
        collector.current = None;
        let done = collector.pages.len() as u32;
        let mut repair = repair::Repair::new();
        for (&num, &id) in pages.range(done + 1..) {
            limits.cancel.check()?;
            let run = |doc: &Document, collector: &mut Collector| {
                guard("PDF", || {
                    pdf_extract::output_doc_page(doc, collector, num)
                        .map_err(|e| ExtractError::failed("PDF", e))
                })
            };
            if run(&doc, &mut collector).is_ok() {
                continue;
            }
            let partial = collector.current.take();
            if repair.page(&mut doc, num, id) && run(&doc, &mut collector).is_ok() {
                continue;
            }
            collector.current = partial;
            collector.abort_page();
            collector.pages.entry(num).or_default();
        }
    }
    let page_count = pages.len() as u32;
    if collector
        .pages
        .values()
        .all(|g| g.iter().all(|g| g.text.trim().is_empty()))
    {
        return match whole {
            Err(e) if collector.pages.is_empty() => Err(e),
            _ => Err(ExtractError::NoTextLayer),
        };
    }

    // Lines per page in reading order.
    let mut page_lines: Vec<(u32, PageLayout)> = Vec::new();
    for (num, glyphs) in std::mem::take(&mut collector.pages) {
        limits.cancel.check()?;
        let size = collector
            .sizes
            .get(&num)
            .copied()
            .unwrap_or((0.0, 0.0, 612.0, 792.0));
        page_lines.push((num, layout_page(glyphs, size)));
    }
    drop_running_lines(&mut page_lines);

    let body_size = body_font_size(&page_lines);
    let mut paragraphs: Vec<(u32, f64, String)> = Vec::new();
    for (num, page) in &page_lines {
        for (size, text) in paragraphs_of(page) {
            paragraphs.push((*num, size, text));
        }
    }
    // Heading levels by distinct font size, largest first.
    let mut heading_sizes: Vec<f64> = paragraphs
        .iter()
        .filter(|(_, s, t)| is_heading(*s, body_size, t))
        .map(|(_, s, _)| (s * 2.0).round() / 2.0)
        .collect();
    heading_sizes.sort_by(|a, b| b.total_cmp(a));
    heading_sizes.dedup();

    let mut b = Builder::new(limits);
    info_meta(&doc, &mut b);
    for (page, size, text) in paragraphs {
        let kind = if is_heading(size, body_size, &text) {
            let rounded = (size * 2.0).round() / 2.0;
            let level = heading_sizes
                .iter()
                .position(|&s| s == rounded)
                .unwrap_or(0)
                + 1;
            BlockKind::Heading {
                level: level.min(6) as u8,
            }
        } else {
            BlockKind::Paragraph
        };
        b.push(kind, Some(page), &text);
        if b.full() {
            break;
        }
    }
    b.meta.page_count = Some(page_count);
    b.finish("application/pdf")
}

fn is_heading(size: f64, body: f64, text: &str) -> bool {
    body > 0.0
        && size >= body * 1.2
        && size - body >= 1.5
        && text.chars().count() <= 200
        && text.chars().any(char::is_alphabetic)
}

/// Whether the file names an encryption dictionary (`/Encrypt`, a trailer key) in plain bytes.
fn names_encryption(bytes: &[u8]) -> bool {
    bytes.windows(8).any(|w| w == b"/Encrypt")
}

/// Title, author and language from the document information dictionary and the catalog.
fn info_meta(doc: &Document, b: &mut Builder) {
    let info = doc.trailer.get(b"Info").ok().and_then(|o| match o {
        Object::Reference(id) => doc.get_dictionary(*id).ok(),
        Object::Dictionary(d) => Some(d),
        _ => None,
    });
    let text = |d: &Dictionary, key: &[u8]| -> Option<String> {
        let o = d.get(key).ok()?;
        let o = match o {
            Object::Reference(id) => doc.get_object(*id).ok()?,
            o => o,
        };
        let bytes = o.as_str().ok()?;
        let s = pdf_string(bytes);
        let s = s.trim();
        // Placeholders some producers write instead of nothing.
        let junk = [
            "untitled",
            "(anonymous)",
            "anonymous",
            "unknown",
            "(unspecified)",
        ];
        (!s.is_empty() && !junk.iter().any(|j| s.eq_ignore_ascii_case(j))).then(|| s.to_owned())
    };
    if let Some(info) = info {
        b.meta.title = text(info, b"Title");
        b.meta.author = text(info, b"Author");
    }
    if let Ok(cat) = doc.catalog() {
        b.meta.language = text(cat, b"Lang");
    }
}

/// A PDF text string: UTF-16BE (or LE) with a BOM, UTF-8 with a BOM, else PDFDocEncoding
/// (read as Latin-1, which agrees on the printable range).
fn pdf_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let (s, _) = encoding_rs::UTF_16BE.decode_without_bom_handling(rest);
        return s.into_owned();
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let (s, _) = encoding_rs::UTF_16LE.decode_without_bom_handling(rest);
        return s.into_owned();
    }
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(rest).into_owned();
    }
    bytes.iter().map(|&b| b as char).collect()
}

/// Refuses the structures on which pdf-extract would recurse without end.
fn check_structure(doc: &Document, pages: &BTreeMap<u32, ObjectId>) -> Result<(), ExtractError> {
    // Parent chains of pages must end.
    for &id in pages.values() {
        let mut cur = doc.get_dictionary(id).ok();
        let mut steps = 0;
        while let Some(d) = cur {
            steps += 1;
            if steps > 64 {
                return Err(ExtractError::Failed(
                    "malformed PDF: the page tree loops".into(),
                ));
            }
            cur = d
                .get(b"Parent")
                .ok()
                .and_then(|p| p.as_reference().ok())
                .and_then(|p| doc.get_dictionary(p).ok());
        }
    }
    // Form XObjects must not (transitively) draw themselves.
    let mut edges: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    let mut forms = 0usize;
    for (&id, obj) in &doc.objects {
        let Ok(stream) = obj.as_stream() else {
            continue;
        };
        if stream.dict.get(b"Subtype").and_then(|s| s.as_name()).ok() != Some(b"Form".as_slice()) {
            continue;
        }
        forms += 1;
        if forms > 20_000 {
            break;
        }
        let content = stream
            .decompressed_content()
            .unwrap_or_else(|_| stream.content.clone());
        let names = do_names(&content);
        if names.is_empty() {
            continue;
        }
        // Its own resources, or (when it has none) any XObject dictionary that names it.
        let own = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|r| deref_dict(doc, r))
            .and_then(|r| r.get(b"XObject").ok())
            .and_then(|x| deref_dict(doc, x));
        let targets = edges.entry(id).or_default();
        let mut resolve_in = |xobjects: &Dictionary| {
            for n in &names {
                if let Ok(Object::Reference(t)) = xobjects.get(n) {
                    targets.push(*t);
                }
            }
        };
        match own {
            Some(x) => resolve_in(x),
            None => {
                for obj in doc.objects.values() {
                    if let Ok(d) = obj.as_dict()
                        && let Ok(x) = d.get(b"XObject")
                        && let Some(x) = deref_dict(doc, x)
                        && x.iter().any(|(_, v)| v.as_reference().ok() == Some(id))
                    {
                        resolve_in(x);
                    }
                }
            }
        }
    }
    if has_cycle(&edges) {
        return Err(ExtractError::Failed(
            "malformed PDF: form XObjects draw themselves recursively".into(),
        ));
    }
    Ok(())
}

fn deref_dict<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Dictionary> {
    match o {
        Object::Dictionary(d) => Some(d),
        Object::Reference(id) => doc.get_dictionary(*id).ok(),
        _ => None,
    }
}

/// The names used with the `Do` operator in a content stream (`/Name Do`).
fn do_names(content: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = content[i..].windows(2).position(|w| w == b"Do") {
        let at = i + p;
        i = at + 2;
        let after_ok = content
            .get(at + 2)
            .is_none_or(|c| !c.is_ascii_alphanumeric());
        if !after_ok {
            continue;
        }
        let before = &content[..at];
        let end = before
            .iter()
            .rposition(|c| !c.is_ascii_whitespace())
            .map_or(0, |e| e + 1);
        let start = before[..end]
            .iter()
            .rposition(|&c| c == b'/')
            .unwrap_or(end);
        if start < end
            && !before[start + 1..end]
                .iter()
                .any(|c| c.is_ascii_whitespace())
        {
            let name = before[start + 1..end].to_vec();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

fn has_cycle(edges: &HashMap<ObjectId, Vec<ObjectId>>) -> bool {
    let mut done: HashSet<ObjectId> = HashSet::new();
    for &start in edges.keys() {
        if done.contains(&start) {
            continue;
        }
        let mut on_path: HashSet<ObjectId> = HashSet::new();
        let mut stack: Vec<(ObjectId, usize)> = vec![(start, 0)];
        on_path.insert(start);
        while let Some((node, idx)) = stack.pop() {
            let next = edges.get(&node).and_then(|v| v.get(idx)).copied();
            match next {
                Some(n) => {
                    stack.push((node, idx + 1));
                    if on_path.contains(&n) {
                        return true;
                    }
                    if !done.contains(&n) {
                        on_path.insert(n);
                        stack.push((n, 0));
                    }
                }
                None => {
                    on_path.remove(&node);
                    done.insert(node);
                }
            }
        }
    }
    false
}

/// One glyph in user space.
struct Glyph {
    x: f64,
    y: f64,
    /// Text direction, unit vector.
    dir: (f64, f64),
    /// Advance along the direction.
    adv: f64,
    /// Font size in user space.
    size: f64,
    text: String,
}

struct Collector {
    pages: BTreeMap<u32, Vec<Glyph>>,
    sizes: HashMap<u32, (f64, f64, f64, f64)>,
    current: Option<(u32, Vec<Glyph>)>,
    /// Bytes of glyph text still allowed (bounds memory on pathological files).
    budget: usize,
    /// Checked at every page and every few thousand glyphs.
    cancel: crate::Cancel,
    glyphs_seen: u32,
}

impl Collector {
    fn new(budget: usize, cancel: crate::Cancel) -> Self {
        Self {
            pages: BTreeMap::new(),
            sizes: HashMap::new(),
            current: None,
            budget,
            cancel,
            glyphs_seen: 0,
        }
    }

    /// Aborts the PDF walk once the cancellation token tripped.
    fn check(&self) -> Result<(), OutputError> {
        if self.cancel.is_cancelled() {
            Err(OutputError::FormatError(std::fmt::Error))
        } else {
            Ok(())
        }
    }

    /// Keeps what a page that failed half-way had produced.
    fn abort_page(&mut self) {
        if let Some((num, glyphs)) = self.current.take() {
            self.pages.insert(num, glyphs);
        }
    }
}

impl OutputDev for Collector {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &MediaBox,
        _: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.check()?;
        self.sizes.insert(
            page_num,
            (media_box.llx, media_box.lly, media_box.urx, media_box.ury),
        );
        self.current = Some((page_num, Vec::new()));
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        if let Some((num, glyphs)) = self.current.take() {
            self.pages.insert(num, glyphs);
        }
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), OutputError> {
        self.glyphs_seen = self.glyphs_seen.wrapping_add(1);
        if self.glyphs_seen.is_multiple_of(4096) {
            self.check()?;
        }
        let Some((_, glyphs)) = self.current.as_mut() else {
            return Ok(());
        };
        if self.budget == 0 {
            return Ok(());
        }
        let len = (trm.m11 * trm.m11 + trm.m12 * trm.m12).sqrt();
        let det = (trm.m11 * trm.m22 - trm.m12 * trm.m21).abs();
        if !len.is_finite() || len == 0.0 || !trm.m31.is_finite() || !trm.m32.is_finite() {
            return Ok(());
        }
        let size = (font_size * det.sqrt()).abs();
        let size = if size.is_finite() && size > 0.0 {
            size
        } else {
            1.0
        };
        self.budget = self.budget.saturating_sub(char.len());
        glyphs.push(Glyph {
            x: trm.m31,
            y: trm.m32,
            dir: (trm.m11 / len, trm.m12 / len),
            adv: (width * font_size * len).abs(),
            size,
            text: clean_glyph(char),
        });
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

fn clean_glyph(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{fb00}' => out.push_str("ff"),
            '\u{fb01}' => out.push_str("fi"),
            '\u{fb02}' => out.push_str("fl"),
            '\u{fb03}' => out.push_str("ffi"),
            '\u{fb04}' => out.push_str("ffl"),
            '\u{fb05}' | '\u{fb06}' => out.push_str("st"),
            '\u{ad}' | '\u{feff}' | '\u{200b}' => {}
            // Replacement characters and noncharacters: what broken ToUnicode maps give for
            // glyphs they cannot name. Not text.
            '\u{fffd}' | '\u{fffe}' | '\u{ffff}' | '\u{fdd0}'..='\u{fdef}' => {}
            '\u{a0}' | '\t' | '\r' | '\n' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A line (or a line segment, when a wide gap splits it) in reading order.
#[derive(Clone)]
struct Line {
    /// Text direction in degrees: 0 upright, others rotated.
    rot: i16,
    /// Start and end along the baseline, and the baseline's position across it (upright:
    /// x0, x1, y; y grows upwards).
    u0: f64,
    u1: f64,
    v: f64,
    size: f64,
    text: String,
    /// Column index (upright text), or `usize::MAX` for text spanning columns.
    col: usize,
    dropped: bool,
}

struct PageLayout {
    lines: Vec<Line>,
    /// Page box: llx, lly, urx, ury.
    bbox: (f64, f64, f64, f64),
    /// Column boundaries (x of gutters' middles).
    gutters: Vec<f64>,
}

/// The text direction in whole degrees (0 for upright text).
fn rot_of(dir: (f64, f64)) -> i16 {
    let deg = dir.1.atan2(dir.0).to_degrees().round() as i16;
    if deg == -180 { 180 } else { deg }
}

fn layout_page(glyphs: Vec<Glyph>, bbox: (f64, f64, f64, f64)) -> PageLayout {
    // 1. Runs: consecutive glyphs (content order) on one baseline, close together.
    let mut runs: Vec<Line> = Vec::new();
    let mut cur: Option<Line> = None;
    let mut pending_space = false;
    for g in glyphs {
        if g.text.is_empty() {
            // A glyph without text (no Unicode mapping): neither a letter nor a space.
            continue;
        }
        let rot = rot_of(g.dir);
        let (ux, uy) = if rot == 0 { (1.0, 0.0) } else { g.dir };
        let u = g.x * ux + g.y * uy;
        let v = -g.x * uy + g.y * ux;
        if g.text.trim().is_empty() {
            pending_space = true;
            if let Some(c) = cur.as_mut()
                && c.rot == rot
                && (v - c.v).abs() < 0.5 * c.size.max(g.size)
            {
                c.u1 = c.u1.max(u + g.adv);
            }
            continue;
        }
        if let Some(c) = cur.as_mut() {
            let size = c.size.max(g.size);
            let same_line = c.rot == rot && (v - c.v).abs() < 0.35 * size;
            let gap = u - c.u1;
            if same_line && gap > -0.6 * size && gap < 1.2 * size.max(1.0) {
                if (pending_space || gap > 0.15 * size.min(g.size.max(0.1)))
                    && !c.text.ends_with(' ')
                {
                    c.text.push(' ');
                }
                c.text.push_str(&g.text);
                c.u1 = c.u1.max(u + g.adv);
                c.size = c.size.max(g.size);
                pending_space = false;
                continue;
            }
            runs.push(cur.take().expect("current run"));
        }
        pending_space = false;
        cur = Some(Line {
            rot,
            u0: u,
            u1: u + g.adv,
            v,
            size: g.size,
            text: g.text,
            col: 0,
            dropped: false,
        });
    }
    runs.extend(cur);

    // 2. Lines: runs on one baseline that touch, whatever their content order.
    runs.sort_by(|a, b| a.rot.cmp(&b.rot).then(b.v.total_cmp(&a.v)));
    let mut lines: Vec<Line> = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        let mut j = i + 1;
        while j < runs.len()
            && runs[j].rot == runs[i].rot
            && (runs[i].v - runs[j].v).abs() < 0.35 * runs[i].size.max(runs[j].size)
        {
            j += 1;
        }
        let mut group: Vec<Line> = runs[i..j].to_vec();
        group.sort_by(|a, b| a.u0.total_cmp(&b.u0));
        let mut merged: Vec<Line> = Vec::new();
        for r in group {
            if let Some(last) = merged.last_mut() {
                let size = last.size.max(r.size);
                let gap = r.u0 - last.u1;
                if gap < 1.2 * size && gap > -0.5 * size {
                    if gap > 0.15 * size && !last.text.ends_with(' ') && !r.text.starts_with(' ') {
                        last.text.push(' ');
                    }
                    last.text.push_str(&r.text);
                    last.u1 = last.u1.max(r.u1);
                    last.size = size;
                    continue;
                }
            }
            merged.push(r);
        }
        lines.extend(merged);
        i = j;
    }
    for l in &mut lines {
        l.text = l.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if bidi::has_rtl(&l.text) {
            l.text = bidi::visual_to_logical(&l.text);
        }
    }
    lines.retain(|l| !l.text.is_empty());

    // 3. Columns from gutters in the x coverage of narrow upright lines.
    let upright: Vec<&Line> = lines.iter().filter(|l| l.rot == 0).collect();
    let gutters = find_gutters(&upright);
    for l in &mut lines {
        if l.rot != 0 {
            continue;
        }
        let start = gutters.iter().filter(|&&g| g <= l.u0).count();
        let end = gutters.iter().filter(|&&g| g < l.u1).count();
        l.col = if start == end { start } else { usize::MAX };
    }

    // 4. Reading order: bands split by spanning lines; inside a band, column by column.
    let (mut up, rotated): (Vec<Line>, Vec<Line>) = lines.into_iter().partition(|l| l.rot == 0);
    up.sort_by(|a, b| b.v.total_cmp(&a.v).then(a.u0.total_cmp(&b.u0)));
    let mut ordered: Vec<Line> = Vec::with_capacity(up.len() + rotated.len());
    let mut band: Vec<Line> = Vec::new();
    let flush_band = |band: &mut Vec<Line>, ordered: &mut Vec<Line>| {
        band.sort_by(|a, b| {
            a.col
                .cmp(&b.col)
                .then(b.v.total_cmp(&a.v))
                .then(a.u0.total_cmp(&b.u0))
        });
        ordered.append(band);
    };
    for l in up {
        if l.col == usize::MAX && !gutters.is_empty() {
            flush_band(&mut band, &mut ordered);
            ordered.push(l);
        } else {
            band.push(l);
        }
    }
    flush_band(&mut band, &mut ordered);
    ordered.extend(rotated);
    PageLayout {
        lines: ordered,
        bbox,
        gutters,
    }
}

/// Column gutters: wide vertical strips in the middle of the text area that no narrow line
/// crosses, with enough lines on both sides.
fn find_gutters(lines: &[&Line]) -> Vec<f64> {
    if lines.len() < 6 {
        return Vec::new();
    }
    let min_x = lines.iter().map(|l| l.u0).fold(f64::INFINITY, f64::min);
    let max_x = lines.iter().map(|l| l.u1).fold(f64::NEG_INFINITY, f64::max);
    let extent = max_x - min_x;
    if !(extent.is_finite() && extent > 50.0 && extent < 20_000.0) {
        return Vec::new();
    }
    let narrow: Vec<&&Line> = lines
        .iter()
        .filter(|l| l.u1 - l.u0 < 0.55 * extent)
        .collect();
    if narrow.len() < 6 {
        return Vec::new();
    }
    let n = extent.ceil() as usize + 1;
    let mut cover = vec![0u32; n];
    for l in &narrow {
        let a = ((l.u0 - min_x).max(0.0) as usize).min(n - 1);
        let b = ((l.u1 - min_x).max(0.0) as usize).min(n - 1);
        for c in &mut cover[a..=b] {
            *c += 1;
        }
    }
    let mut sizes: Vec<f64> = narrow.iter().map(|l| l.size).collect();
    sizes.sort_by(f64::total_cmp);
    let size = sizes[sizes.len() / 2];
    let min_gap = (0.8 * size).max(6.0);
    let lo = (0.15 * extent) as usize;
    let hi = (0.85 * extent) as usize;
    let mut gutters = Vec::new();
    let mut x = lo;
    while x < hi {
        if cover[x] == 0 {
            let start = x;
            while x < n && cover[x] == 0 {
                x += 1;
            }
            let width = (x - start) as f64;
            let mid = min_x + (start + x) as f64 / 2.0;
            if width >= min_gap {
                let left = narrow.iter().filter(|l| l.u1 <= mid).count();
                let right = narrow.iter().filter(|l| l.u0 >= mid).count();
                if left >= 3 && right >= 3 {
                    gutters.push(mid);
                }
            }
        }
        x += 1;
    }
    gutters
}

/// Drops lines near the top or bottom edge whose text (digits ignored) recurs at that edge on
/// most pages: running headers, footers and page numbers.
fn drop_running_lines(pages: &mut [(u32, PageLayout)]) {
    if pages.len() < 3 {
        return;
    }
    let key = |l: &Line| -> String {
        let mut k = String::new();
        let mut last_digit = false;
        for c in l.text.chars() {
            if c.is_ascii_digit() {
                if !last_digit {
                    k.push('#');
                }
                last_digit = true;
            } else {
                last_digit = false;
                if !c.is_whitespace() {
                    k.extend(c.to_lowercase());
                }
            }
        }
        k
    };
    let edge = |p: &PageLayout, l: &Line| -> Option<bool> {
        let (_, lly, _, ury) = p.bbox;
        let h = (ury - lly).abs().max(1.0);
        if l.rot != 0 {
            return None;
        }
        if l.v > ury - 0.12 * h {
            Some(true)
        } else if l.v < lly + 0.12 * h {
            Some(false)
        } else {
            None
        }
    };
    let mut counts: HashMap<(bool, String), usize> = HashMap::new();
    for (_, p) in pages.iter() {
        let mut seen = HashSet::new();
        for l in &p.lines {
            if let Some(top) = edge(p, l)
                && seen.insert((top, key(l)))
            {
                *counts.entry((top, key(l))).or_default() += 1;
            }
        }
    }
    let need = pages.len().div_ceil(2).max(3);
    for (_, p) in pages.iter_mut() {
        let marks: Vec<bool> = p
            .lines
            .iter()
            .map(|l| {
                edge(p, l)
                    .is_some_and(|top| counts.get(&(top, key(l))).copied().unwrap_or(0) >= need)
            })
            .collect();
        for (l, drop) in p.lines.iter_mut().zip(marks) {
            l.dropped = drop;
        }
    }
}

/// The font size that carries most of the text.
fn body_font_size(pages: &[(u32, PageLayout)]) -> f64 {
    let mut hist: HashMap<i64, usize> = HashMap::new();
    for (_, p) in pages {
        for l in p.lines.iter().filter(|l| !l.dropped) {
            *hist.entry((l.size * 2.0).round() as i64).or_default() += l.text.len();
        }
    }
    hist.into_iter()
        .max_by_key(|&(s, n)| (n, -s))
        .map_or(0.0, |(s, _)| s as f64 / 2.0)
}

/// Paragraphs of a page: consecutive lines of one column and size with no wide vertical gap.
fn paragraphs_of(page: &PageLayout) -> Vec<(f64, String)> {
    let mut out: Vec<(f64, String)> = Vec::new();
    let mut cur: Option<(Line, String)> = None;
    let col_right = |col: usize| -> f64 {
        if col == usize::MAX {
            f64::INFINITY
        } else {
            page.gutters.get(col).copied().unwrap_or(f64::INFINITY)
        }
    };
    for l in page.lines.iter().filter(|l| !l.dropped) {
        if let Some((prev, text)) = cur.as_mut() {
            let size = prev.size.max(l.size);
            let gap = prev.v - l.v;
            let same_size = (prev.size - l.size).abs() < 0.15 * size;
            let continues = prev.rot == l.rot
                && prev.col == l.col
                && same_size
                && gap > 0.0
                && gap < 1.75 * size
                && !(ends_sentence(&prev.text)
                    && prev.u1
                        < col_right(prev.col).min(page_right(page))
                            - 0.3 * (prev.u1 - prev.u0).max(1.0));
            if continues {
                join_line(text, &l.text);
                *prev = l.clone();
                continue;
            }
            out.push((prev.size, std::mem::take(text)));
        }
        cur = Some((l.clone(), l.text.clone()));
    }
    if let Some((prev, text)) = cur {
        out.push((prev.size, text));
    }
    out
}

fn page_right(page: &PageLayout) -> f64 {
    page.lines
        .iter()
        .map(|l| l.u1)
        .fold(f64::NEG_INFINITY, f64::max)
}

fn ends_sentence(s: &str) -> bool {
    s.ends_with(['.', '!', '?', ':'])
}

/// Joins a line to a paragraph, undoing end-of-line hyphenation (`exam-` + `ple`).
fn join_line(text: &mut String, next: &str) {
    let mut chars = text.chars().rev();
    let hyphen = chars.next() == Some('-') && chars.next().is_some_and(char::is_alphabetic);
    if hyphen && next.starts_with(|c: char| c.is_lowercase()) {
        text.pop();
        text.push_str(next);
    } else {
        text.push(' ');
        text.push_str(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdf_extract::Stream;

    #[test]
    fn do_operator_names() {
        assert_eq!(
            do_names(b"q /Fm1 Do Q /X2 Do"),
            vec![b"Fm1".to_vec(), b"X2".to_vec()]
        );
        assert!(do_names(b"Done").is_empty());
    }

    #[test]
    fn cycles_are_found() {
        let mut e: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
        e.insert((1, 0), vec![(2, 0)]);
        e.insert((2, 0), vec![(3, 0)]);
        assert!(!has_cycle(&e));
        e.insert((3, 0), vec![(1, 0)]);
        assert!(has_cycle(&e));
    }

    /// A one-page PDF: `fonts` (resource name, font dictionary, ToUnicode CMap) and the page's
    /// content stream.
    fn one_page(fonts: Vec<(&str, Dictionary, Option<&str>)>, content: &str) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let mut font_res = Dictionary::new();
        for (name, mut font, cmap) in fonts {
            if let Some(cmap) = cmap {
                let id = doc.add_object(Stream::new(Dictionary::new(), cmap.as_bytes().to_vec()));
                font.set("ToUnicode", id);
            }
            let id = doc.add_object(font);
            font_res.set(name, id);
        }
        let mut resources = Dictionary::new();
        resources.set("Font", font_res);
        let content = doc.add_object(Stream::new(Dictionary::new(), content.as_bytes().to_vec()));
        let pages_id = doc.new_object_id();
        let mut page = Dictionary::new();
        page.set("Type", Object::Name(b"Page".to_vec()));
        page.set("Parent", pages_id);
        page.set("MediaBox", vec![0.into(), 0.into(), 612.into(), 792.into()]);
        page.set("Resources", resources);
        page.set("Contents", content);
        let page_id = doc.add_object(page);
        let mut pages = Dictionary::new();
        pages.set("Type", Object::Name(b"Pages".to_vec()));
        pages.set("Kids", vec![Object::Reference(page_id)]);
        pages.set("Count", 1);
        doc.objects.insert(pages_id, Object::Dictionary(pages));
        let mut catalog = Dictionary::new();
        catalog.set("Type", Object::Name(b"Catalog".to_vec()));
        catalog.set("Pages", pages_id);
        let catalog_id = doc.add_object(catalog);
        doc.trailer.set("Root", catalog_id);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    fn helvetica() -> Dictionary {
        let mut f = Dictionary::new();
        f.set("Type", Object::Name(b"Font".to_vec()));
        f.set("Subtype", Object::Name(b"Type1".to_vec()));
        f.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
        f.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
        f
    }

    /// A composite font with two-byte codes; `descendant: false` leaves its descendant font
    /// out (`[null]`), on which pdf-extract panics.
    fn type0(descendant: bool) -> Dictionary {
        let mut f = Dictionary::new();
        f.set("Type", Object::Name(b"Font".to_vec()));
        f.set("Subtype", Object::Name(b"Type0".to_vec()));
        f.set("BaseFont", Object::Name(b"Test".to_vec()));
        f.set("Encoding", Object::Name(b"Identity-H".to_vec()));
        let d = if descendant {
            let mut desc = Dictionary::new();
            desc.set("Type", Object::Name(b"FontDescriptor".to_vec()));
            desc.set("FontName", Object::Name(b"Test".to_vec()));
            desc.set("Flags", 4);
            let mut d = Dictionary::new();
            d.set("Type", Object::Name(b"Font".to_vec()));
            d.set("Subtype", Object::Name(b"CIDFontType2".to_vec()));
            d.set("BaseFont", Object::Name(b"Test".to_vec()));
            d.set("FontDescriptor", desc);
            d.set("DW", 600);
            Object::Dictionary(d)
        } else {
            Object::Null
        };
        f.set("DescendantFonts", vec![d]);
        f
    }

    fn text_of(pdf: &[u8]) -> String {
        extract(pdf, &Limits::default()).unwrap().text
    }

    #[test]
    fn a_font_pdf_extract_cannot_load_loses_only_its_own_text() {
        let cmap = "1 beginbfchar <0001> <26F3> endbfchar";
        let content = "BT /F1 12 Tf 72 700 Td (Before the flag) Tj ET\n\
                       BT /F2 12 Tf 72 680 Td <0001> Tj ET\n\
                       BT /F1 12 Tf 72 660 Td (After the flag) Tj ET";
        let pdf = one_page(
            vec![("F1", helvetica(), None), ("F2", type0(false), Some(cmap))],
            content,
        );
        let text = text_of(&pdf);
        assert!(text.contains("Before the flag"), "{text}");
        assert!(text.contains("After the flag"), "{text}");
        // The stand-in font keeps the ToUnicode map.
        assert!(text.contains('\u{26F3}'), "{text}");
    }

    #[test]
    fn failing_operators_are_dropped_and_the_page_read_on() {
        // `cm` with five operands and `Tj` with a number make pdf-extract panic.
        let content = "BT /F1 12 Tf 72 700 Td (First line) Tj ET\n\
                       1 0 0 1 5 cm\n\
                       BT /F1 12 Tf 72 680 Td 42 Tj ET\n\
                       BT /F1 12 Tf 72 660 Td (Last line) Tj ET";
        let text = text_of(&one_page(vec![("F1", helvetica(), None)], content));
        assert!(text.contains("First line"), "{text}");
        assert!(text.contains("Last line"), "{text}");
    }

    #[test]
    fn to_unicode_maps_are_read_past_odd_names_and_rtl_lines_put_in_reading_order() {
        // Hebrew drawn left to right as it appears (שלום read right to left).
        let cmap = "/CMapName /Font-Name Regular-Font Name.ttf,000-UTF16 def\n\
                    4 beginbfchar <0001> <05E9> <0002> <05DC> <0003> <05D5> <0004> <05DD> endbfchar";
        let content = "BT /F1 12 Tf 72 700 Td <0004000300020001> Tj ET";
        let text = text_of(&one_page(vec![("F1", type0(true), Some(cmap))], content));
        assert_eq!(text, "\u{5E9}\u{5DC}\u{5D5}\u{5DD}");
    }

    /// What `f` logs through a fmt subscriber with `filter`, on this thread only (pdf-extract's
    /// `log` records reach it through `LogTracer`, as in the binary).
    fn logged(filter: &str, f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_log::LogTracer::init();
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn pdf_extract_glyph_warnings_are_one_debug_line_per_document() {
        let pdf = include_bytes!("../tests/fixtures/unknown_glyphs.pdf");
        // pdf-extract itself warns once per unknown glyph name (five in this file).
        let raw = logged("debug", || {
            let _ = extract_text(pdf, &Limits::default());
        });
        assert_eq!(raw.matches("unknown glyph name").count(), 5, "{raw}");

        let mut text = String::new();
        let out = logged("debug", || text = text_of(pdf));
        assert!(text.contains("second font names its glyphs"), "{text}");
        assert_eq!(out.matches("unknown glyph name").count(), 0, "{out}");
        let summaries: Vec<_> = out
            .lines()
            .filter(|l| l.contains("pdf-extract warnings for this PDF"))
            .collect();
        assert_eq!(summaries.len(), 1, "{out}");
        assert!(summaries[0].contains("unknown_glyphs=5"), "{out}");
        assert!(summaries[0].contains("ABCDEF+Glyphless"), "{out}");
        // The font has no widths either: one more warning, counted apart.
        assert!(summaries[0].contains("other_warnings=1"), "{out}");
        assert!(summaries[0].contains("no widths"), "{out}");
        assert_eq!(out.matches("no widths").count(), 1, "{out}");

        // Asked for pdf-extract's warnings but not for debug: neither the raw lines nor the
        // summary.
        let out = logged("info,pdf_extract=warn", || {
            text_of(pdf);
        });
        assert!(!out.contains("glyph"), "{out}");
    }

    #[test]
    fn dehyphenation() {
        let mut s = "an exam-".to_owned();
        join_line(&mut s, "ple here");
        assert_eq!(s, "an example here");
        let mut s = "well-".to_owned();
        join_line(&mut s, "Known");
        assert_eq!(s, "well- Known");
    }
}
