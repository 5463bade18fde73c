//! Chunking: extracted blocks → chunks sized for embedding and citation.
//!
//! Chunks are contiguous spans of the extracted text, so their char offsets point at the exact
//! text a citation quotes. A heading starts a new chunk; blocks are packed until the size limit;
//! a block longer than the limit is split at sentence ends, else at whitespace (never inside a
//! word unless a single word is longer than the limit), with overlap between the pieces. Every
//! chunk carries the heading path above it and its page. A record (a CSV or spreadsheet row, a
//! JSON object) is always a chunk of its own — never packed with its neighbours — and carries
//! the fields its text shows: all of them for a record in one chunk; for a record split into
//! several, each field goes with the piece where its `name: value` line starts (and with the
//! previous piece too when the line is in the overlap), so a record's fields are held about
//! once, whatever its width.
//!
//! Chunking is bounded ([`Bounds`]): a record that would split into more than
//! `max_record_pieces` pieces fails with [`ExtractError::RecordTooLarge`], a document of more
//! than `max_pieces` chunks with [`ExtractError::DocumentTooLarge`], and every loop checks the
//! cancellation token, stopping with [`ExtractError::Timeout`] or [`ExtractError::Cancelled`]
//! once it trips.

use docent_extract::{BlockKind, Cancel, ExtractError, Extracted};

/// How chunk size is measured: in chars, or in the embedding model's word pieces.
pub trait Measure {
    /// Size of a text.
    fn size(&self, text: &str) -> usize;
    /// Size of the blank line that joins two packed blocks.
    fn separator(&self) -> usize;
}

/// Size in chars.
pub struct Chars;

impl Measure for Chars {
    fn size(&self, text: &str) -> usize {
        text.chars().count()
    }
    fn separator(&self) -> usize {
        2
    }
}

/// Size in tokens, counted by the given function (e.g. the embedding model's tokenizer).
pub struct Tokens<F: Fn(&str) -> usize>(pub F);

impl<F: Fn(&str) -> usize> Measure for Tokens<F> {
    fn size(&self, text: &str) -> usize {
        (self.0)(text)
    }
    fn separator(&self) -> usize {
        0
    }
}

/// Chunk sizing.
#[derive(Debug, Clone, Copy)]
pub struct ChunkConfig {
    /// Largest chunk, in chars.
    pub max_chars: usize,
    /// Chars repeated between pieces of a split block.
    pub overlap: usize,
}

/// What bounds a chunking run besides the chunk size.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Most pieces one record may be split into.
    pub max_record_pieces: usize,
    /// Most pieces in the whole document.
    pub max_pieces: usize,
    /// Checked in every loop.
    pub cancel: Cancel,
}

/// Default of [`Bounds::max_record_pieces`].
pub const DEFAULT_MAX_RECORD_PIECES: usize = 64;

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_record_pieces: DEFAULT_MAX_RECORD_PIECES,
            max_pieces: usize::MAX,
            cancel: Cancel::default(),
        }
    }
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
    /// When the chunk is (part of) a record: the record's fields (name, value) whose lines
    /// its text shows (all of them unless the record is split); empty otherwise.
    pub fields: Vec<(String, String)>,
    /// When the chunk is (part of) a record: the record's index in the document, from 0 (a
    /// long record split into several chunks gives each the same index).
    pub record: Option<u32>,
}

/// Splits an extraction into chunks of at most `cfg.max_chars` chars.
pub fn chunk(
    doc: &Extracted,
    cfg: ChunkConfig,
    bounds: &Bounds,
) -> Result<Vec<Piece>, ExtractError> {
    chunk_by(doc, cfg.max_chars, cfg.overlap, &Chars, bounds)
}

/// Splits an extraction into chunks of at most `max` units of `measure` (e.g. word pieces),
/// consecutive pieces of a split block sharing about `overlap` units.
pub fn chunk_by(
    doc: &Extracted,
    max: usize,
    overlap: usize,
    measure: &dyn Measure,
    bounds: &Bounds,
) -> Result<Vec<Piece>, ExtractError> {
    let max = max.max(8);
    let overlap = overlap.min(max / 2);
    let sep = measure.separator();
    let text = doc.text.as_str();
    let mut spans: Vec<Span> = Vec::new();
    let mut headings: Vec<(u8, String)> = Vec::new();
    let mut open: Option<Span> = None;
    let mut records = 0u32;

    for block in &doc.blocks {
        bounds.cancel.check()?;
        if spans.len() > bounds.max_pieces {
            return Err(too_many_pieces(bounds.max_pieces));
        }
        let len = measure.size(doc.block_text(block));
        if let BlockKind::Heading { level } = block.kind {
            spans.extend(open.take());
            headings.retain(|(l, _)| *l < level);
            headings.push((level, doc.block_text(block).to_owned()));
        }
        let path = || headings.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>();
        if let BlockKind::Record { fields } = &block.kind {
            spans.extend(open.take());
            let record = records;
            records += 1;
            let pieces = if len <= max {
                vec![(0, block.byte_end - block.byte_start)]
            } else {
                split_measured(
                    &text[block.byte_start..block.byte_end],
                    max,
                    overlap,
                    measure,
                    bounds.max_record_pieces.saturating_add(1),
                    &bounds.cancel,
                )?
            };
            if pieces.len() > bounds.max_record_pieces {
                return Err(ExtractError::RecordTooLarge(format!(
                    "record {} is too long: it makes more than {} chunks, the limit per record",
                    record + 1,
                    bounds.max_record_pieces
                )));
            }
            let mut shown = fields_shown(fields, &pieces, block.byte_end - block.byte_start);
            for (i, (s, e)) in pieces.into_iter().enumerate() {
                spans.push(Span {
                    byte_start: block.byte_start + s,
                    byte_end: block.byte_start + e,
                    chars: 0,
                    page: block.page,
                    headings: path(),
                    fields: std::mem::take(&mut shown[i]),
                    record: Some(record),
                });
            }
            continue;
        }
        if let Some(cur) = open.as_mut() {
            if cur.chars + sep + len <= max {
                cur.byte_end = block.byte_end;
                cur.chars += sep + len;
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
                record: None,
            });
        } else {
            for (s, e) in split_measured(
                &text[block.byte_start..block.byte_end],
                max,
                overlap,
                measure,
                usize::MAX,
                &bounds.cancel,
            )? {
                spans.push(Span {
                    byte_start: block.byte_start + s,
                    byte_end: block.byte_start + e,
                    chars: 0,
                    page: block.page,
                    headings: path(),
                    fields: Vec::new(),
                    record: None,
                });
            }
        }
    }
    spans.extend(open);
    bounds.cancel.check()?;
    if spans.len() > bounds.max_pieces {
        return Err(too_many_pieces(bounds.max_pieces));
    }
    Ok(to_pieces(text, spans))
}

fn too_many_pieces(max: usize) -> ExtractError {
    ExtractError::DocumentTooLarge(format!(
        "the document makes more than {max} chunks, the limit per document"
    ))
}

/// The fields each piece of a record shows: a field goes with every piece its line starts in
/// (one piece, or two when the line starts in an overlap). The record's text is its fields'
/// `name: value` lines joined by `\n` (`value` alone for an empty name), as the extractor
/// writes it; if the lengths do not add up, the first piece carries every field.
fn fields_shown(
    fields: &[(String, String)],
    pieces: &[(usize, usize)],
    text_len: usize,
) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new(); pieces.len()];
    if pieces.len() == 1 {
        out[0] = fields.to_vec();
        return out;
    }
    let mut starts = Vec::with_capacity(fields.len());
    let mut at = 0usize;
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            at += 1;
        }
        starts.push(at);
        at += if k.is_empty() { 0 } else { k.len() + 2 } + v.len();
    }
    if at != text_len {
        if let Some(first) = out.first_mut() {
            *first = fields.to_vec();
        }
        return out;
    }
    // Pieces are in order, their starts ascending: walk both lists once.
    let mut first = 0usize;
    for (field, &start) in fields.iter().zip(&starts) {
        while first < pieces.len() && pieces[first].1 <= start {
            first += 1;
        }
        let mut p = first;
        while p < pieces.len() && pieces[p].0 <= start {
            if start < pieces[p].1 {
                out[p].push(field.clone());
            }
            p += 1;
        }
    }
    out
}

struct Span {
    byte_start: usize,
    byte_end: usize,
    chars: usize,
    page: Option<u32>,
    headings: Vec<String>,
    fields: Vec<(String, String)>,
    record: Option<u32>,
}

/// Converts byte spans (in ascending start order) to pieces with char offsets, walking the text
/// once.
fn to_pieces(text: &str, spans: Vec<Span>) -> Vec<Piece> {
    let mut byte_pos = 0usize;
    let mut char_pos = 0usize;
    let mut char_at = |byte: usize| {
        // Spans of split blocks overlap, so positions can step back a little.
        if byte < byte_pos {
            char_pos -= text[byte..byte_pos].chars().count();
        } else {
            char_pos += text[byte_pos..byte].chars().count();
        }
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
                record: s.record,
            }
        })
        .collect()
}

/// Splits `s` so every piece measures at most `max`: char windows are sized from the text's
/// chars-per-unit ratio and shrunk until the piece fits. Stops after `most` pieces.
fn split_measured(
    s: &str,
    max: usize,
    overlap: usize,
    measure: &dyn Measure,
    most: usize,
    cancel: &Cancel,
) -> Result<Vec<(usize, usize)>, ExtractError> {
    let chars = s.chars().count().max(1);
    let ratio = chars as f64 / measure.size(s).max(1) as f64;
    let window = ((max as f64 * ratio) as usize).max(8);
    let overlap = (overlap as f64 * ratio) as usize;
    split_long(
        s,
        window,
        overlap,
        &|piece: &str| measure.size(piece) <= max,
        most,
        cancel,
    )
}

/// Splits `s` into byte ranges of at most `max` chars that `fits`, preferring sentence ends,
/// then whitespace; consecutive ranges share about `overlap` chars, starting at a word boundary.
/// Stops after `most` ranges.
fn split_long(
    s: &str,
    max: usize,
    overlap: usize,
    fits: &dyn Fn(&str) -> bool,
    most: usize,
    cancel: &Cancel,
) -> Result<Vec<(usize, usize)>, ExtractError> {
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < s.len() && out.len() < most {
        cancel.check()?;
        let mut window_chars = max;
        let (end, piece_end) = loop {
            let (end, piece_end, last) = cut(s, start, window_chars);
            if last || fits(&s[start..piece_end]) || window_chars <= 8 {
                break (end, piece_end);
            }
            window_chars = window_chars * 9 / 10;
        };
        out.push((start, piece_end));
        if end == s.len() {
            break;
        }
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
    Ok(out)
}

/// One piece starting at `start` within `max` chars: `(end, end without trailing space, last)`.
fn cut(s: &str, start: usize, max: usize) -> (usize, usize, bool) {
    let rest = &s[start..];
    let hard_end = rest
        .char_indices()
        .nth(max)
        .map_or(s.len(), |(i, _)| start + i);
    if hard_end == s.len() {
        return (s.len(), s.len(), true);
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
    (end, start + s[start..end].trim_end().len(), false)
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
            &Bounds::default(),
        )
        .unwrap();
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

    /// A CSV of a header and one row of `n` columns.
    fn wide_csv(n: usize) -> String {
        let header: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        format!("{}\n{}\n", header.join(","), vec!["x"; n].join(","))
    }

    #[test]
    fn a_split_wide_record_holds_each_field_about_once() {
        let n = 5_000;
        let doc = extract(wide_csv(n).as_bytes(), "wide.csv", "", Limits::default()).unwrap();
        let bounds = Bounds {
            max_record_pieces: 1_000,
            ..Bounds::default()
        };
        let cfg = ChunkConfig {
            max_chars: 200,
            overlap: 20,
        };
        let pieces = chunk(&doc, cfg, &bounds).unwrap();
        assert!(pieces.len() > 100, "{}", pieces.len());
        assert!(pieces.iter().all(|p| p.record == Some(0)));
        // Every piece carries the fields its text shows, and no others: the fields held by
        // all pieces together stay about the record's own (overlaps repeat a few), where
        // copying the record's fields into every piece held pieces × fields.
        let total: usize = pieces.iter().map(|p| p.fields.len()).sum();
        assert!(
            total >= n && total < n + n / 4,
            "{total} fields held for {n}"
        );
        for p in &pieces {
            for (k, v) in &p.fields {
                assert!(
                    p.text.contains(&format!("{k}:")),
                    "{k}={v} not in {:?}",
                    p.text
                );
            }
            let first_line = p.text.lines().next().unwrap();
            if let Some((k, _)) = first_line.split_once(": ") {
                assert_eq!(p.fields.first().map(|f| f.0.as_str()), Some(k));
            }
        }
        let mut seen: Vec<&str> = pieces
            .iter()
            .flat_map(|p| p.fields.iter().map(|f| f.0.as_str()))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), n, "every field is in some piece");
    }

    #[test]
    fn records_and_documents_past_their_piece_limits_are_refused() {
        let doc = extract(
            wide_csv(5_000).as_bytes(),
            "wide.csv",
            "",
            Limits::default(),
        )
        .unwrap();
        let cfg = ChunkConfig {
            max_chars: 200,
            overlap: 20,
        };
        let err = chunk(&doc, cfg, &Bounds::default()).unwrap_err();
        assert_eq!(err.code(), "record_too_large");
        let rows: String = (0..50).map(|i| format!("{i},x\n")).collect();
        let doc = extract(
            format!("n,v\n{rows}").as_bytes(),
            "a.csv",
            "",
            Limits::default(),
        )
        .unwrap();
        let bounds = |max_pieces| Bounds {
            max_pieces,
            ..Bounds::default()
        };
        assert_eq!(chunk(&doc, cfg, &bounds(50)).unwrap().len(), 50);
        let err = chunk(&doc, cfg, &bounds(49)).unwrap_err();
        assert_eq!(err.code(), "document_too_large");
    }

    #[test]
    fn chunking_stops_when_its_token_trips() {
        let src = "Some words in a sentence. ".repeat(20_000);
        let doc = extract(src.as_bytes(), "a.txt", "", Limits::default()).unwrap();
        let cancel = Cancel::new();
        cancel.cancel();
        let bounds = Bounds {
            cancel,
            ..Bounds::default()
        };
        let err = chunk_by(&doc, 50, 5, &Chars, &bounds).unwrap_err();
        assert_eq!(err, ExtractError::Cancelled);
        // A slow measure would take minutes; the deadline stops it within a few calls.
        let slow = Tokens(|t: &str| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            t.split_whitespace().count()
        });
        let bounds = Bounds {
            cancel: Cancel::with_deadline(std::time::Duration::from_millis(50)),
            ..Bounds::default()
        };
        let started = std::time::Instant::now();
        let err = chunk_by(&doc, 12, 3, &slow, &bounds).unwrap_err();
        assert_eq!(err.code(), "extraction_timeout");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn a_single_huge_word_still_terminates() {
        let src = "x".repeat(1000);
        let (_, pieces) = run(&src, "a.txt", 100, 10);
        assert!(pieces.len() >= 10);
        assert!(pieces.iter().all(|p| p.text.len() <= 100));
    }

    #[test]
    fn token_measure_bounds_every_piece() {
        let words = |t: &str| t.split_whitespace().count();
        let src = format!(
            "# Title here\n\n{}\n\nshort tail.",
            "alpha beta gamma delta epsilon. ".repeat(30)
        );
        let doc = extract(src.as_bytes(), "a.md", "", Limits::default()).unwrap();
        let pieces = chunk_by(&doc, 12, 3, &Tokens(words), &Bounds::default()).unwrap();
        assert!(pieces.len() > 10);
        let chars: Vec<char> = doc.text.chars().collect();
        for p in &pieces {
            assert!(
                words(&p.text) <= 12,
                "{:?} has {} words",
                p.text,
                words(&p.text)
            );
            assert_eq!(
                chars[p.char_start..p.char_end].iter().collect::<String>(),
                p.text
            );
        }
        // Small blocks still pack: the heading and its first words share nothing over the budget.
        assert!(pieces.iter().any(|p| p.text.contains("short tail.")));
    }
}
