//! OpenDocument text and presentations (ODT, ODP) with zip + quick-xml: headings with outline
//! levels, paragraphs, list items, table rows, frames/text boxes, notes (after the body, as
//! `[n] text`), one page per presentation slide. Also the Dublin Core properties shared with
//! OOXML (`docProps/core.xml`). Encrypted packages fail with [`ExtractError::Encrypted`].

use crate::xml::{Ev, walk};
use crate::zipc::Container;
use crate::{BlockKind, Builder, DocMeta, ExtractError, Extracted, Limits};

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut zip = Container::open(bytes, limits)?;
    if let Some(manifest) = zip.read_text("META-INF/manifest.xml")?
        && manifest.contains("encryption-data")
    {
        return Err(ExtractError::Encrypted);
    }
    let Some(content) = zip.read_text("content.xml")? else {
        return Err(ExtractError::Failed(
            "the OpenDocument has no content.xml".into(),
        ));
    };
    let mut b = Builder::new(limits);
    if let Some(meta) = zip.read_text("meta.xml")? {
        dublin_core(&meta, &mut b.meta, limits)?;
    }
    let presentation = content.contains("<office:presentation");
    let mut st = State::default();
    let mut notes: Vec<(String, String)> = Vec::new();
    let mut page: u32 = if presentation { 0 } else { 1 };
    let max_pages = limits.max_pages;
    let mut too_many = false;
    walk(&content, limits.max_depth, &limits.cancel, |e| {
        match e {
            Ev::Start(t) => {
                let name = t.name.as_str();
                if st.skip > 0 || matches!(name, "tracked-changes" | "annotation" | "note-citation")
                {
                    st.skip += 1;
                    return Ok(true);
                }
                match name {
                    "page" => {
                        page += 1;
                        if page > max_pages {
                            too_many = true;
                            return Ok(false);
                        }
                    }
                    "h" => st.paras.push((
                        BlockKind::Heading {
                            level: t
                                .attr("outline-level")
                                .and_then(|l| l.parse::<u8>().ok())
                                .unwrap_or(1)
                                .clamp(1, 6),
                        },
                        String::new(),
                    )),
                    "p" => {
                        let kind = if st.list_items > 0 {
                            BlockKind::ListItem
                        } else {
                            BlockKind::Paragraph
                        };
                        st.paras.push((kind, String::new()));
                    }
                    "list-item" => st.list_items += 1,
                    "s" => {
                        let n = t
                            .attr("c")
                            .and_then(|c| c.parse::<usize>().ok())
                            .unwrap_or(1)
                            .min(100);
                        st.text(&" ".repeat(n));
                    }
                    "tab" => st.text("\t"),
                    "line-break" => st.text("\n"),
                    "note" => {
                        st.notes
                            .push((t.attr("id").unwrap_or("").to_owned(), st.paras.len()));
                        st.note_text.push(String::new());
                    }
                    "table" => st.tables.push(Vec::new()),
                    "table-row" => {
                        if let Some(tb) = st.tables.last_mut() {
                            tb.clear();
                        }
                    }
                    "table-cell" => {
                        let depth = st.paras.len();
                        if let Some(tb) = st.tables.last_mut() {
                            tb.push(String::new());
                        }
                        st.cell_depths.push(depth);
                    }
                    _ => {}
                }
            }
            Ev::End(name) => {
                if st.skip > 0 {
                    st.skip -= 1;
                    return Ok(true);
                }
                match name {
                    "h" | "p" => {
                        if let Some((kind, text)) = st.paras.pop() {
                            let text = collapse(&text);
                            if !text.is_empty() {
                                st.finish_para(kind, text, page.max(1), &mut b);
                            }
                        }
                    }
                    "list-item" => st.list_items = st.list_items.saturating_sub(1),
                    "note" => {
                        if let (Some((id, _)), Some(text)) = (st.notes.pop(), st.note_text.pop()) {
                            notes.push((id, collapse(&text)));
                        }
                    }
                    "table-cell" => {
                        st.cell_depths.pop();
                    }
                    "table-row" => {
                        if let Some(tb) = st.tables.last_mut() {
                            let row = std::mem::take(tb).join(" | ");
                            let row = row.trim_end_matches([' ', '|']).to_owned();
                            if st.tables.len() > 1 {
                                st.text(&row);
                            } else if !row.trim().is_empty() {
                                b.push(BlockKind::TableRow, Some(page.max(1)), &row);
                            }
                        }
                    }
                    "table" => {
                        st.tables.pop();
                    }
                    _ => {}
                }
            }
            Ev::Text(s) => {
                if st.skip == 0 {
                    st.text(s);
                }
            }
        }
        Ok(!b.full())
    })?;
    if too_many {
        return Err(ExtractError::TooLarge(format!(
            "more than {max_pages} pages"
        )));
    }
    for (id, text) in notes {
        if !text.is_empty() {
            b.push(
                BlockKind::Paragraph,
                Some(page.max(1)),
                &format!("[{id}] {text}"),
            );
        }
    }
    b.meta.page_count = Some(page.max(1));
    let mime = if presentation {
        "application/vnd.oasis.opendocument.presentation"
    } else {
        "application/vnd.oasis.opendocument.text"
    };
    b.finish(mime)
}

#[derive(Default)]
struct State {
    paras: Vec<(BlockKind, String)>,
    list_items: usize,
    tables: Vec<Vec<String>>,
    cell_depths: Vec<usize>,
    notes: Vec<(String, usize)>,
    note_text: Vec<String>,
    skip: usize,
}

impl State {
    fn text(&mut self, s: &str) {
        if let Some(note) = self.note_text.last_mut() {
            note.push_str(s);
        } else if let Some((_, p)) = self.paras.last_mut() {
            p.push_str(s);
        }
    }

    fn finish_para(&mut self, kind: BlockKind, text: String, page: u32, b: &mut Builder) {
        if !self.note_text.is_empty() {
            if let Some(n) = self.note_text.last_mut() {
                n.push(' ');
            }
            return;
        }
        if let Some(&depth) = self.cell_depths.last()
            && depth == self.paras.len()
            && let Some(cell) = self.tables.last_mut().and_then(|t| t.last_mut())
        {
            if !cell.is_empty() {
                cell.push(' ');
            }
            cell.push_str(&text);
            return;
        }
        if let Some((_, outer)) = self.paras.last_mut() {
            // A paragraph inside a frame inside a paragraph: keep its text in reading order.
            if !outer.is_empty() {
                outer.push(' ');
            }
            outer.push_str(&text);
            return;
        }
        b.push(kind, Some(page), &text);
    }
}

/// Collapses runs of spaces and tabs (ODF whitespace rules) but keeps line breaks.
fn collapse(s: &str) -> String {
    s.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// Title, author and language from Dublin Core / ODF meta elements.
pub(crate) fn dublin_core(
    xml: &str,
    meta: &mut DocMeta,
    limits: &Limits,
) -> Result<(), ExtractError> {
    let mut cur: Option<String> = None;
    let mut text = String::new();
    walk(xml, limits.max_depth, &limits.cancel, |e| {
        match e {
            Ev::Start(t) => {
                if matches!(
                    t.name.as_str(),
                    "title" | "creator" | "initial-creator" | "language"
                ) {
                    cur = Some(t.name.clone());
                    text.clear();
                }
            }
            Ev::Text(s) => {
                if cur.is_some() {
                    text.push_str(s);
                }
            }
            Ev::End(_) => {
                if let Some(name) = cur.take() {
                    let value = text.trim().to_owned();
                    if !value.is_empty() {
                        match name.as_str() {
                            "title" => {
                                meta.title.get_or_insert(value);
                            }
                            "creator" | "initial-creator" => {
                                meta.author.get_or_insert(value);
                            }
                            _ => {
                                meta.language.get_or_insert(value);
                            }
                        }
                    }
                }
            }
        }
        Ok(true)
    })
}

/// Reads an OOXML `docProps/core.xml` into `meta`, when present.
pub(crate) fn core_props(
    zip: &mut Container<'_>,
    meta: &mut DocMeta,
    part: &str,
    limits: &Limits,
) -> Result<(), ExtractError> {
    if let Some(xml) = zip.read_text(part)? {
        // A malformed properties part is not worth failing the document for.
        let _ = dublin_core(&xml, meta, limits);
    }
    Ok(())
}
