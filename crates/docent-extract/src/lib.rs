//! Text extraction: bytes + file name + declared MIME type → the document's text as a list of
//! structured [`Block`]s (headings, paragraphs, list items, code, table rows) with char offsets
//! into the extracted text. Pure: no network, no database, no global state.
//!
//! The type is sniffed from the bytes; the declared type and file name only break ties between
//! text formats. Supported now: plain text (UTF-8, UTF-8/UTF-16 BOMs) and Markdown. Anything
//! else fails with [`ExtractError::Unsupported`] naming what was detected.

mod markdown;
mod sniff;

pub use sniff::{Detected, sniff};

/// Limits applied while extracting.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest input accepted.
    pub max_input_bytes: u64,
    /// Largest extracted text, in chars.
    pub max_output_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 100 * 1024 * 1024,
            max_output_chars: 20_000_000,
        }
    }
}

/// What a block of text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    /// A heading of a level from 1 (outermost).
    Heading {
        /// 1..=6.
        level: u8,
    },
    /// Running text.
    Paragraph,
    /// An item of a list.
    ListItem,
    /// A row of a table, cells separated by ` | `.
    TableRow,
    /// Preformatted code.
    Code,
}

/// A structural piece of the extracted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Kind.
    pub kind: BlockKind,
    /// Page (slide, sheet) from 1, when the format has pages.
    pub page: Option<u32>,
    /// Start offset in [`Extracted::text`], in chars.
    pub char_start: usize,
    /// End offset (exclusive), in chars.
    pub char_end: usize,
    /// Start offset in [`Extracted::text`], in bytes.
    pub byte_start: usize,
    /// End offset (exclusive), in bytes.
    pub byte_end: usize,
}

/// Document-level facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocMeta {
    /// Title, when the format has one (or the first heading).
    pub title: Option<String>,
    /// Pages, slides or sheets.
    pub page_count: Option<u32>,
}

/// The result of extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Detected type, e.g. `text/markdown`.
    pub detected_type: &'static str,
    /// The whole text: blocks separated by blank lines.
    pub text: String,
    /// Blocks in reading order; offsets index `text` in chars.
    pub blocks: Vec<Block>,
    /// Document facts.
    pub meta: DocMeta,
}

impl Extracted {
    /// The text of one block.
    pub fn block_text(&self, block: &Block) -> &str {
        &self.text[block.byte_start..block.byte_end]
    }
}

/// Why extraction failed. Each variant maps to one stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The bytes are a format docent does not extract.
    #[error("unsupported format: {detected}")]
    Unsupported {
        /// What the bytes look like.
        detected: String,
    },
    /// The file is empty or holds only whitespace.
    #[error("the document contains no text")]
    NoText,
    /// The input or the output exceeds a limit.
    #[error("{0}")]
    TooLarge(String),
    /// The bytes claim a format but cannot be decoded.
    #[error("cannot extract text: {0}")]
    Failed(String),
}

/// Extracts the text of a document.
pub fn extract(
    bytes: &[u8],
    filename: &str,
    declared_mime: &str,
    limits: Limits,
) -> Result<Extracted, ExtractError> {
    if bytes.len() as u64 > limits.max_input_bytes {
        return Err(ExtractError::TooLarge(format!(
            "input of {} bytes exceeds the limit of {} bytes",
            bytes.len(),
            limits.max_input_bytes
        )));
    }
    let detected = sniff(bytes, filename, declared_mime);
    let (kind, text) = match detected {
        Detected::Text { markdown, text } => (markdown, text),
        Detected::Binary(name) => {
            return Err(ExtractError::Unsupported {
                detected: name.into(),
            });
        }
    };
    if text.chars().count() > limits.max_output_chars {
        return Err(ExtractError::TooLarge(format!(
            "extracted text exceeds the limit of {} characters",
            limits.max_output_chars
        )));
    }
    let out = if kind {
        markdown::extract(&text)
    } else {
        plain(&text)
    };
    if out.blocks.is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok(out)
}

/// Builds the output text block by block, keeping char offsets.
#[derive(Default)]
pub(crate) struct Builder {
    text: String,
    chars: usize,
    blocks: Vec<Block>,
    title: Option<String>,
}

impl Builder {
    pub(crate) fn push(&mut self, kind: BlockKind, page: Option<u32>, body: &str) {
        let body = body.trim();
        if body.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
            self.chars += 2;
        }
        if self.title.is_none() && matches!(kind, BlockKind::Heading { .. }) {
            self.title = Some(body.to_owned());
        }
        let start = self.chars;
        let byte_start = self.text.len();
        let n = body.chars().count();
        self.text.push_str(body);
        self.chars += n;
        self.blocks.push(Block {
            kind,
            page,
            char_start: start,
            char_end: start + n,
            byte_start,
            byte_end: self.text.len(),
        });
    }

    pub(crate) fn finish(self, detected_type: &'static str) -> Extracted {
        Extracted {
            detected_type,
            text: self.text,
            blocks: self.blocks,
            meta: DocMeta {
                title: self.title,
                page_count: None,
            },
        }
    }
}

/// Plain text: paragraphs are runs of non-blank lines; lines inside a paragraph are joined.
fn plain(text: &str) -> Extracted {
    let mut b = Builder::default();
    let mut para = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            b.push(BlockKind::Paragraph, None, &para);
            para.clear();
        } else {
            if !para.is_empty() {
                para.push('\n');
            }
            para.push_str(line.trim_end());
        }
    }
    b.push(BlockKind::Paragraph, None, &para);
    b.finish("text/plain")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_paragraphs_with_offsets() {
        let out = extract(
            b"First para\nline two.\n\n\nSecond para.\n",
            "a.txt",
            "",
            Limits::default(),
        )
        .unwrap();
        assert_eq!(out.detected_type, "text/plain");
        assert_eq!(out.blocks.len(), 2);
        assert_eq!(out.block_text(&out.blocks[0]), "First para\nline two.");
        assert_eq!(out.block_text(&out.blocks[1]), "Second para.");
        assert_eq!(out.text, "First para\nline two.\n\nSecond para.");
    }

    #[test]
    fn empty_and_whitespace_are_no_text() {
        assert_eq!(
            extract(b"", "a.txt", "", Limits::default()),
            Err(ExtractError::NoText)
        );
        assert_eq!(
            extract(b"  \n\n\t ", "a.txt", "", Limits::default()),
            Err(ExtractError::NoText)
        );
    }

    #[test]
    fn binaries_are_unsupported_with_their_type() {
        let err = extract(
            b"%PDF-1.7\n\x00\x01binary",
            "a.txt",
            "text/plain",
            Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ExtractError::Unsupported {
                detected: "application/pdf".into()
            }
        );
        let err = extract(&[0u8, 159, 146, 150, 0, 0], "x.bin", "", Limits::default()).unwrap_err();
        assert!(matches!(err, ExtractError::Unsupported { .. }));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_input_bytes: 4,
            max_output_chars: 100,
        };
        assert!(matches!(
            extract(b"hello", "a.txt", "", limits),
            Err(ExtractError::TooLarge(_))
        ));
        let limits = Limits {
            max_input_bytes: 100,
            max_output_chars: 3,
        };
        assert!(matches!(
            extract(b"hello", "a.txt", "", limits),
            Err(ExtractError::TooLarge(_))
        ));
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "Grüße".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let out = extract(&bytes, "a.txt", "", Limits::default()).unwrap();
        assert_eq!(out.text, "Grüße");
    }
}
