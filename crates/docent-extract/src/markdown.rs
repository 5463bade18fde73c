//! Markdown → blocks with pulldown-cmark: headings with levels, paragraphs, list items, code
//! blocks and table rows. Inline markup is dropped, its text kept.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use crate::{BlockKind, Builder, ExtractError, Extracted, Limits};

pub(crate) fn extract(src: &str, limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut b = Builder::new(limits);
    let mut buf = String::new();
    let mut cells: Vec<String> = Vec::new();
    let mut in_cell = false;
    // Depth of open containers that produce their own block (items, headings, code...).
    let mut current: Option<BlockKind> = None;
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES;
    for (seen, event) in Parser::new_ext(src, opts).enumerate() {
        if seen % 1024 == 1023 && b.full() {
            break;
        }
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                flush(&mut b, &mut buf, current.take());
                current = Some(BlockKind::Heading { level: level as u8 });
            }
            Event::Start(Tag::Item) => {
                flush(&mut b, &mut buf, current.take());
                current = Some(BlockKind::ListItem);
            }
            Event::Start(Tag::CodeBlock(_)) => {
                flush(&mut b, &mut buf, current.take());
                current = Some(BlockKind::Code);
            }
            Event::Start(Tag::Paragraph) => {
                if current.is_none() {
                    current = Some(BlockKind::Paragraph);
                } else if !buf.is_empty() {
                    buf.push('\n');
                }
            }
            Event::Start(Tag::TableRow | Tag::TableHead) => {
                flush(&mut b, &mut buf, current.take());
                cells.clear();
            }
            Event::Start(Tag::TableCell) => {
                in_cell = true;
                cells.push(String::new());
            }
            Event::End(TagEnd::TableCell) => in_cell = false,
            Event::End(TagEnd::TableRow | TagEnd::TableHead) => {
                let row = cells
                    .iter()
                    .map(|c| c.trim())
                    .collect::<Vec<_>>()
                    .join(" | ");
                b.push(BlockKind::TableRow, None, &row);
                cells.clear();
            }
            Event::End(TagEnd::Heading(_) | TagEnd::Item | TagEnd::CodeBlock) => {
                flush(&mut b, &mut buf, current.take());
            }
            Event::End(TagEnd::Paragraph) if current == Some(BlockKind::Paragraph) => {
                flush(&mut b, &mut buf, current.take());
            }
            Event::Text(t) | Event::Code(t) | Event::InlineHtml(t) | Event::Html(t) => {
                if in_cell {
                    cells.last_mut().expect("cell open").push_str(&t);
                } else {
                    if current.is_none() {
                        current = Some(BlockKind::Paragraph);
                    }
                    buf.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if in_cell {
                    cells.last_mut().expect("cell open").push(' ');
                } else {
                    buf.push('\n');
                }
            }
            _ => {}
        }
    }
    flush(&mut b, &mut buf, current.take());
    b.finish("text/markdown")
}

fn flush(b: &mut Builder, buf: &mut String, kind: Option<BlockKind>) {
    if let Some(kind) = kind {
        b.push(kind, None, buf);
    } else if !buf.trim().is_empty() {
        b.push(BlockKind::Paragraph, None, buf);
    }
    buf.clear();
}

#[cfg(test)]
mod tests {
    use crate::{BlockKind, Limits, extract};

    #[test]
    fn headings_lists_code_tables() {
        let md = "# Title\n\nIntro *text* here.\n\n## Part\n\n- one\n- two\n\n```rust\nfn main() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let out = extract(md.as_bytes(), "doc.md", "", Limits::default()).unwrap();
        let kinds: Vec<_> = out.blocks.iter().map(|b| b.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                BlockKind::Heading { level: 1 },
                BlockKind::Paragraph,
                BlockKind::Heading { level: 2 },
                BlockKind::ListItem,
                BlockKind::ListItem,
                BlockKind::Code,
                BlockKind::TableRow,
                BlockKind::TableRow,
            ]
        );
        let texts: Vec<_> = out.blocks.iter().map(|b| out.block_text(b)).collect();
        assert_eq!(texts[1], "Intro text here.");
        assert_eq!(texts[5], "fn main() {}");
        assert_eq!(texts[6], "a | b");
        assert_eq!(texts[7], "1 | 2");
        assert_eq!(out.meta.title.as_deref(), Some("Title"));
    }
}
