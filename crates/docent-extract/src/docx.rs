//! DOCX (WordprocessingML) with zip + quick-xml: paragraphs, headings from styles (style names
//! "heading N"/"Title", or outline levels, following `basedOn`), list items (numbering),
//! tables (one block per row), text boxes, content controls, alt-chunk HTML, footnotes and
//! endnotes (after the body, as `[n] text`), and page numbers from rendered or explicit page
//! breaks. Deleted text, field codes and the fallback copies of alternate content are skipped.

use std::collections::HashMap;

use crate::xml::{Ev, walk};
use crate::zipc::{Container, relationships};
use crate::{BlockKind, Builder, ExtractError, Extracted, Limits};

#[derive(Default, Clone)]
struct Style {
    name: String,
    outline: Option<u8>,
    based_on: Option<String>,
    list: bool,
}

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut zip = Container::open(bytes, limits)?;
    let main = main_part(&mut zip, limits)?;
    let Some(doc_xml) = zip.read_text(&main)? else {
        return Err(ExtractError::Failed("the DOCX has no document part".into()));
    };
    let styles = match zip.read_text("word/styles.xml")? {
        Some(xml) => parse_styles(&xml, limits)?,
        None => HashMap::new(),
    };
    let rels = relationships(&mut zip, &main, limits.max_depth)?;
    let mut b = Builder::new(limits);
    crate::odf::core_props(&mut zip, &mut b.meta, "docProps/core.xml", limits)?;

    let rendered_breaks = doc_xml.contains("lastRenderedPageBreak");
    let mut alt_chunks: HashMap<String, String> = HashMap::new();
    for (id, ty, target) in &rels {
        if ty.ends_with("/aFChunk") {
            alt_chunks.insert(id.clone(), target.clone());
        }
    }
    let mut body = Body::new(&styles, rendered_breaks);
    let mut pending_chunks: Vec<(usize, String)> = Vec::new();
    walk(&doc_xml, limits.max_depth, &limits.cancel, |e| {
        if let Ev::Start(t) = &e
            && t.name == "altChunk"
            && let Some(target) = t.attr("id").and_then(|id| alt_chunks.get(id))
        {
            pending_chunks.push((body.out.len(), target.clone()));
        }
        body.event(e);
        Ok(body.out.len() < 5_000_000)
    })?;
    let pages = body.page;
    let mut chunk_iter = pending_chunks.into_iter().peekable();
    for (i, (kind, page, text)) in body.out.into_iter().enumerate() {
        while let Some((_, target)) = chunk_iter.next_if(|(at, _)| *at <= i) {
            alt_chunk(&mut zip, &target, page, &mut b, limits)?;
        }
        b.push(kind, Some(page), &text);
    }
    for (_, target) in chunk_iter {
        alt_chunk(&mut zip, &target, pages, &mut b, limits)?;
    }
    for (part, ty) in [("footnotes", "footnote"), ("endnotes", "endnote")] {
        let target = rels
            .iter()
            .find(|(_, t, _)| t.ends_with(&format!("/{part}")))
            .map(|(_, _, target)| target.clone())
            .unwrap_or_else(|| format!("word/{part}.xml"));
        if let Some(xml) = zip.read_text(&target)? {
            notes(&xml, ty, &styles, pages, &mut b, limits)?;
        }
    }
    b.meta.page_count = Some(pages);
    b.finish("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
}

fn alt_chunk(
    zip: &mut Container<'_>,
    target: &str,
    page: u32,
    b: &mut Builder,
    limits: &Limits,
) -> Result<(), ExtractError> {
    if let Some(bytes) = zip.read(target)? {
        let lower = target.to_ascii_lowercase();
        if let Some(text) = crate::text::decode(&bytes, true) {
            if lower.ends_with(".htm")
                || lower.ends_with(".html")
                || lower.ends_with(".mht")
                || text.trim_start().starts_with('<')
            {
                crate::html::extract_into(&text, Some(page), b, limits)?;
            } else {
                b.push(BlockKind::Paragraph, Some(page), &text);
            }
        }
    }
    Ok(())
}

/// The main document part named by the package relationships.
fn main_part(zip: &mut Container<'_>, limits: &Limits) -> Result<String, ExtractError> {
    let rels = relationships(zip, "", limits.max_depth)?;
    Ok(rels
        .into_iter()
        .find(|(_, ty, target)| ty.ends_with("/officeDocument") && zip.has(target))
        .map(|(_, _, t)| t)
        .unwrap_or_else(|| "word/document.xml".to_owned()))
}

fn parse_styles(xml: &str, limits: &Limits) -> Result<HashMap<String, Style>, ExtractError> {
    let mut styles = HashMap::new();
    let mut cur: Option<(String, Style)> = None;
    walk(xml, limits.max_depth, &limits.cancel, |e| {
        match e {
            Ev::Start(t) => match t.name.as_str() {
                "style" => {
                    cur = Some((t.attr("styleId").unwrap_or("").to_owned(), Style::default()));
                }
                "name" => {
                    if let Some((_, s)) = cur.as_mut() {
                        s.name = t.attr("val").unwrap_or("").to_ascii_lowercase();
                    }
                }
                "basedOn" => {
                    if let Some((_, s)) = cur.as_mut() {
                        s.based_on = t.attr("val").map(str::to_owned);
                    }
                }
                "outlineLvl" => {
                    if let Some((_, s)) = cur.as_mut() {
                        s.outline = t.attr("val").and_then(|v| v.parse::<u8>().ok());
                    }
                }
                "numPr" => {
                    if let Some((_, s)) = cur.as_mut() {
                        s.list = true;
                    }
                }
                _ => {}
            },
            Ev::End("style") => {
                if let Some((id, s)) = cur.take() {
                    styles.insert(id, s);
                }
            }
            _ => {}
        }
        Ok(true)
    })?;
    Ok(styles)
}

/// Heading level and list-ness of a paragraph style, following `basedOn` a few steps.
fn style_kind(styles: &HashMap<String, Style>, id: &str) -> (Option<u8>, bool) {
    let mut cur = styles.get(id);
    let mut list = false;
    for _ in 0..10 {
        let Some(s) = cur else { break };
        list |= s.list || s.name.starts_with("list");
        if s.name == "title" {
            return (Some(1), false);
        }
        if let Some(n) = s
            .name
            .strip_prefix("heading ")
            .and_then(|n| n.trim().parse::<u8>().ok())
        {
            return (Some(n.clamp(1, 6)), false);
        }
        if let Some(l) = s.outline
            && l < 9
        {
            return (Some((l + 1).min(6)), false);
        }
        cur = s.based_on.as_deref().and_then(|b| styles.get(b));
    }
    if styles.is_empty() {
        // Documents without a styles part still use the built-in style ids.
        let lower = id.to_ascii_lowercase();
        if let Some(n) = lower
            .strip_prefix("heading")
            .and_then(|n| n.parse::<u8>().ok())
        {
            return (Some(n.clamp(1, 6)), false);
        }
        if lower == "title" {
            return (Some(1), false);
        }
        list |= lower.starts_with("list");
    }
    (None, list)
}

#[derive(Default)]
struct Para {
    text: String,
    style: Option<String>,
    numbered: bool,
    outline: Option<u8>,
}

#[derive(Default)]
struct Table {
    cells: Vec<String>,
    /// Paragraph stack depth when the current cell opened.
    cell_depth: Option<usize>,
}

struct Body<'s> {
    styles: &'s HashMap<String, Style>,
    rendered_breaks: bool,
    paras: Vec<Para>,
    tables: Vec<Table>,
    in_t: usize,
    skip: usize,
    in_ppr: bool,
    page: u32,
    out: Vec<(BlockKind, u32, String)>,
}

impl<'s> Body<'s> {
    fn new(styles: &'s HashMap<String, Style>, rendered_breaks: bool) -> Self {
        Self {
            styles,
            rendered_breaks,
            paras: Vec::new(),
            tables: Vec::new(),
            in_t: 0,
            skip: 0,
            in_ppr: false,
            page: 1,
            out: Vec::new(),
        }
    }

    fn text(&mut self, s: &str) {
        if let Some(p) = self.paras.last_mut() {
            p.text.push_str(s);
        }
    }

    fn event(&mut self, e: Ev<'_>) {
        const SKIPPED: &[&str] = &["Fallback", "rt", "instrText", "delText", "del", "moveFrom"];
        match e {
            Ev::Start(t) => {
                let name = t.name.as_str();
                if self.skip > 0 || SKIPPED.contains(&name) {
                    self.skip += 1;
                    return;
                }
                match name {
                    "p" => self.paras.push(Para::default()),
                    "pPr" => self.in_ppr = true,
                    "pStyle" if self.in_ppr => {
                        if let Some(p) = self.paras.last_mut() {
                            p.style = t.attr("val").map(str::to_owned);
                        }
                    }
                    "numPr" if self.in_ppr => {
                        if let Some(p) = self.paras.last_mut() {
                            p.numbered = true;
                        }
                    }
                    "outlineLvl" if self.in_ppr => {
                        if let Some(p) = self.paras.last_mut() {
                            p.outline = t.attr("val").and_then(|v| v.parse().ok());
                        }
                    }
                    "pageBreakBefore" if self.in_ppr && !self.rendered_breaks => self.page += 1,
                    "t" => self.in_t += 1,
                    "tab" if !self.in_ppr => self.text("\t"),
                    "br" | "cr" => {
                        if t.attr("type") == Some("page") && !self.rendered_breaks {
                            self.page += 1;
                        }
                        self.text("\n");
                    }
                    "lastRenderedPageBreak" if self.rendered_breaks => self.page += 1,
                    "noBreakHyphen" => self.text("-"),
                    "footnoteReference" | "endnoteReference" => {
                        if let Some(id) = t.attr("id") {
                            let marker = format!("[{id}]");
                            self.text(&marker);
                        }
                    }
                    "tbl" => self.tables.push(Table::default()),
                    "tr" => {
                        if let Some(tb) = self.tables.last_mut() {
                            tb.cells.clear();
                        }
                    }
                    "tc" => {
                        let depth = self.paras.len();
                        if let Some(tb) = self.tables.last_mut() {
                            tb.cells.push(String::new());
                            tb.cell_depth = Some(depth);
                        }
                    }
                    _ => {}
                }
            }
            Ev::End(name) => {
                if self.skip > 0 {
                    self.skip -= 1;
                    return;
                }
                match name {
                    "pPr" => self.in_ppr = false,
                    "t" => self.in_t = self.in_t.saturating_sub(1),
                    "p" => self.end_para(),
                    "tr" => {
                        let row = self.tables.last_mut().map(|tb| {
                            let cells: Vec<String> = tb
                                .cells
                                .drain(..)
                                .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
                                .collect();
                            cells.join(" | ")
                        });
                        if let Some(row) = row {
                            if self.tables.len() > 1 {
                                // A nested table: its rows become text of the enclosing cell.
                                self.append_to_cell_or_para(&row);
                            } else if !row.replace('|', "").trim().is_empty() {
                                self.out.push((BlockKind::TableRow, self.page, row));
                            }
                        }
                    }
                    "tc" => {
                        if let Some(tb) = self.tables.last_mut() {
                            tb.cell_depth = None;
                        }
                    }
                    "tbl" => {
                        self.tables.pop();
                    }
                    _ => {}
                }
            }
            Ev::Text(s) => {
                if self.skip == 0 && self.in_t > 0 {
                    self.text(s);
                }
            }
        }
    }

    fn append_to_cell_or_para(&mut self, text: &str) {
        if self.tables.len() > 1 {
            let n = self.tables.len();
            if let Some(cell) = self.tables[n - 2].cells.last_mut() {
                cell.push(' ');
                cell.push_str(text);
                return;
            }
        }
        self.text(text);
    }

    fn end_para(&mut self) {
        let Some(p) = self.paras.pop() else { return };
        let text = p.text.trim();
        if text.is_empty() {
            return;
        }
        if let Some(tb) = self.tables.last_mut()
            && tb.cell_depth == Some(self.paras.len())
            && let Some(cell) = tb.cells.last_mut()
        {
            if !cell.is_empty() {
                cell.push(' ');
            }
            cell.push_str(text);
            return;
        }
        let (level, list) = p
            .style
            .as_deref()
            .map_or((None, false), |s| style_kind(self.styles, s));
        let level = level.or(p.outline.filter(|&l| l < 9).map(|l| (l + 1).min(6)));
        let kind = match level {
            Some(level) if text.chars().count() <= 300 => BlockKind::Heading { level },
            _ if p.numbered || list => BlockKind::ListItem,
            _ => BlockKind::Paragraph,
        };
        self.out.push((kind, self.page, text.to_owned()));
    }
}

/// Footnotes or endnotes: each note's paragraphs become one `[id] text` paragraph.
fn notes(
    xml: &str,
    element: &str,
    styles: &HashMap<String, Style>,
    page: u32,
    b: &mut Builder,
    limits: &Limits,
) -> Result<(), ExtractError> {
    let mut body = Body::new(styles, false);
    let mut current: Option<String> = None;
    let mut notes: Vec<(String, String)> = Vec::new();
    walk(xml, limits.max_depth, &limits.cancel, |e| {
        match &e {
            Ev::Start(t) if t.name == element => {
                let ty = t.attr("type").unwrap_or("normal");
                current = (ty == "normal").then(|| t.attr("id").unwrap_or("").to_owned());
                body.out.clear();
            }
            Ev::End(n) if *n == element => {
                if let Some(id) = current.take() {
                    let text: Vec<String> = body.out.drain(..).map(|(_, _, t)| t).collect();
                    notes.push((id, text.join(" ")));
                }
                return Ok(true);
            }
            _ => {}
        }
        body.event(e);
        Ok(true)
    })?;
    for (id, text) in notes {
        let text = text.trim();
        if !text.is_empty() {
            b.push(BlockKind::Paragraph, Some(page), &format!("[{id}] {text}"));
        }
    }
    Ok(())
}
