//! Chunking: extracted blocks → chunks sized for embedding and citation.
//!
//! Chunks are contiguous spans of the extracted text, so their char offsets point at the exact
//! text a citation quotes. A heading starts a new chunk; blocks are packed until the size limit;
//! a block longer than the limit is split at sentence ends, else at whitespace (never inside a
//! word unless a single word is longer than the limit), with overlap between the pieces. Every
//! chunk carries the heading path above it and its page. A record (a CSV or spreadsheet row, a
//! JSON object) is always a chunk of its own — never packed with its neighbours — and carries
//! its fields.

use docent_extract::{BlockKind, Extracted};

/// Chunk sizing.
#[derive(Debug, Clone, Copy)]
pub struct ChunkConfig {
    /// Largest chunk, in chars.
    pub max_chars: usize,
    /// Chars repeated between pieces of a split block.
    pub overlap: usize,
}

/// One chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Position in the document, from 0.
    pub ordinal: u32,
    /// The text (exactly `text[char_start..char_end]` of the extraction).
    pub text: String,
    /// Start offset in chars.
    pub char_start: usize,
    /// End offset (exclusive) in chars.
    pub char_end: usize,
    /// Page of the chunk's first block.
    pub page: Option<u32>,
    /// Headings above the chunk, outermost first.
    pub heading_path: Vec<String>,
    /// The record's fields (name, value) when the chunk is a record; empty otherwise.
    pub fields: Vec<(String, String)>,
}

/// Splits an extraction into chunks.
pub fn chunk(doc: &Extracted, cfg: ChunkConfig) -> Vec<Piece> {
    let max = cfg.max_chars.max(16);
    let overlap = cfg.overlap.min(max / 2);
    let text = doc.text.as_str();
    let mut spans: Vec<Span> = Vec::new();
    let mut headings: Vec<(u8, String)> = Vec::new();
    let mut open: Option<Span> = None;

    for block in &doc.blocks {
        let len = block.char_end - block.char_start;
        if let BlockKind::Heading { level } = block.kind {
            spans.extend(open.take());
            headings.retain(|(l, _)| *l < level);
            headings.push((level, doc.block_text(block).to_owned()));
        }
        let path = || headings.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>();
        if let BlockKind::Record { fields } = &block.kind {
            spans.extend(open.take());
            let pieces = if len <= max {
                vec![(0, block.byte_end - block.byte_start)]
            } else {
                split_long(&text[block.byte_start..block.byte_end], max, overlap)
            };
            for (s, e) in pieces {
                spans.push(Span {
                    byte_start: block.byte_start + s,
                    byte_end: block.byte_start + e,
                    chars: 0,
                    page: block.page,
                    headings: path(),
                    fields: fields.clone(),
                });
            }
            continue;
        }
        if let Some(cur) = open.as_mut() {
            if cur.chars + 2 + len <= max {
                cur.byte_end = block.byte_end;
                cur.chars += 2 + len;
                continue;
            }
            spans.extend(open.take());
        }
        if len <= max {
            open = Some(Span {
                byte_start: block.byte_start,
                byte_end: block.byte_end,
                chars: len,
                page: block.page,
                headings: path(),
                fields: Vec::new(),
            });
        } else {
            for (s, e) in split_long(&text[block.byte_start..block.byte_end], max, overlap) {
                spans.push(Span {
                    byte_start: block.byte_start + s,
                    byte_end: block.byte_start + e,
                    chars: 0,
                    page: block.page,
                    headings: path(),
                    fields: Vec::new(),
                });
            }
        }
    }
    spans.extend(open);
    to_pieces(text, spans)
}

struct Span {
    byte_start: usize,
    byte_end: usize,
    chars: usize,
    page: Option<u32>,
    headings: Vec<String>,
    fields: Vec<(String, String)>,
}

/// Converts byte spans (in ascending start order) to pieces with char offsets, walking the text
/// once.
fn to_pieces(text: &str, spans: Vec<Span>) -> Vec<Piece> {
    let mut byte_pos = 0usize;
    let mut char_pos = 0usize;
    let mut char_at = |byte: usize| {
        // Spans of split blocks overlap, so positions can step back a little.
        if byte < byte_pos {
            byte_pos = 0;
            char_pos = 0;
        }
        char_pos += text[byte_pos..byte].chars().count();
        byte_pos = byte;
        char_pos
    };
    spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let char_start = char_at(s.byte_start);
            let char_end = char_at(s.byte_end);
            Piece {
                ordinal: i as u32,
                text: text[s.byte_start..s.byte_end].to_owned(),
                char_start,
                char_end,
                page: s.page,
                heading_path: s.headings,
                fields: s.fields,
            }
        })
        .collect()
}

/// Splits `s` into byte ranges of at most `max` chars, preferring sentence ends, then
/// whitespace; consecutive ranges share about `overlap` chars, starting at a word boundary.
fn split_long(s: &str, max: usize, overlap: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < s.len() {
        let rest = &s[start..];
        let hard_end = rest
            .char_indices()
            .nth(max)
            .map_or(s.len(), |(i, _)| start + i);
        if hard_end == s.len() {
            out.push((start, s.len()));
            break;
        }
        let window = &s[start..hard_end];
        let min_cut = window.char_indices().nth(max / 2).map_or(0, |(i, _)| i);
        let sentence = window[min_cut..]
            .char_indices()
            .filter(|&(i, c)| {
                matches!(c, '.' | '!' | '?' | '\n')
                    && window[min_cut + i + c.len_utf8()..].starts_with(char::is_whitespace)
            })
            .map(|(i, c)| min_cut + i + c.len_utf8())
            .next_back();
        let space = window.rfind(char::is_whitespace).filter(|&i| i > 0);
        let end = start + sentence.or(space).unwrap_or(window.len());
        let piece = s[start..end].trim_end();
        out.push((start, start + piece.len()));
        // Next piece starts `overlap` chars back, moved forward to the start of a word.
        let back = s[start..end]
            .char_indices()
            .rev()
            .nth(overlap)
            .map_or(end, |(i, _)| start + i);
        let mut next = back.max(start + 1);
        while next < end && !s.is_char_boundary(next) {
            next += 1;
        }
        if let Some(ws) = s[next..end].find(char::is_whitespace) {
            next += ws;
        } else {
            next = end;
        }
        next += s[next..].len() - s[next..].trim_start().len();
        start = next.max(start + 1);
        while start < s.len() && !s.is_char_boundary(start) {
            start += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use docent_extract::{Limits, extract};

    fn run(src: &str, name: &str, max: usize, overlap: usize) -> (Extracted, Vec<Piece>) {
        let doc = extract(src.as_bytes(), name, "", Limits::default()).unwrap();
        let pieces = chunk(
            &doc,
            ChunkConfig {
                max_chars: max,
                overlap,
            },
        );
        (doc, pieces)
    }

    #[test]
    fn offsets_point_at_the_exact_text() {
        let src = "# Ünïcödé title\n\nFirst paragraph with ünïcode. Another sentence here.\n\n## Sub\n\nMore text.";
        let (doc, pieces) = run(src, "a.md", 40, 8);
        let chars: Vec<char> = doc.text.chars().collect();
        for p in &pieces {
            let span: String = chars[p.char_start..p.char_end].iter().collect();
            assert_eq!(span, p.text);
            assert!(p.text.chars().count() <= 40, "{p:?}");
        }
        assert_eq!(
            pieces.last().unwrap().heading_path,
            vec!["Ünïcödé title", "Sub"]
        );
        let ordinals: Vec<u32> = pieces.iter().map(|p| p.ordinal).collect();
        assert_eq!(ordinals, (0..pieces.len() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn headings_start_new_chunks_and_small_blocks_pack() {
        let src = "# A\n\npara one.\n\npara two.\n\n# B\n\npara three.";
        let (_, pieces) = run(src, "a.md", 1000, 100);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].text, "A\n\npara one.\n\npara two.");
        assert_eq!(pieces[1].text, "B\n\npara three.");
        assert_eq!(pieces[1].heading_path, vec!["B"]);
    }

    #[test]
    fn long_blocks_split_at_sentences_never_inside_words() {
        let sentence = "The quick brown fox jumps over the lazy dog. ";
        let src = sentence.repeat(40);
        let (_, pieces) = run(&src, "a.txt", 200, 30);
        assert!(pieces.len() > 5);
        for p in &pieces {
            assert!(p.text.chars().count() <= 200);
            assert!(
                p.text.ends_with('.'),
                "should end at a sentence: {:?}",
                p.text
            );
            let first = p.text.split_whitespace().next().unwrap();
            assert!(
                [
                    "The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog."
                ]
                .contains(&first),
                "{first}"
            );
        }
        // Overlap: consecutive chunks share text.
        assert!(pieces[1].char_start < pieces[0].char_end);
    }

    #[test]
    fn records_are_chunks_of_their_own_with_fields() {
        let (_, pieces) = run("name,city\nAnn,Paris\nBob,Oslo\n", "a.csv", 1000, 10);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].text, "name: Ann\ncity: Paris");
        assert_eq!(
            pieces[1].fields,
            vec![
                ("name".to_owned(), "Bob".to_owned()),
                ("city".to_owned(), "Oslo".to_owned())
            ]
        );
        let (_, pieces) = run("# T\n\nintro", "a.md", 1000, 10);
        assert!(pieces.iter().all(|p| p.fields.is_empty()));
    }

    #[test]
    fn a_single_huge_word_still_terminates() {
        let src = "x".repeat(1000);
        let (_, pieces) = run(&src, "a.txt", 100, 10);
        assert!(pieces.len() >= 10);
        assert!(pieces.iter().all(|p| p.text.len() <= 100));
    }
}
