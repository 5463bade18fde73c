//! Text extraction: bytes + file name + declared MIME type → the document's text as a list of
//! structured [`Block`]s (headings, paragraphs, list items, code, table rows, records) with char
//! and byte offsets into the extracted text. Pure: no network, no database, no global state.
//!
//! The type is sniffed from the bytes ([`sniff()`]); the declared type and file name only break
//! ties between text formats (Markdown, CSV/TSV, JSON Lines). Supported: PDF (text layer),
//! DOCX, PPTX, XLSX/XLSM/XLSB/ODS, ODT, EPUB, HTML, Markdown, plain text in any common encoding,
//! CSV/TSV, JSON/JSONL and e-mail (EML). Anything else fails with
//! [`ExtractError::Unsupported`] naming what was detected.
//!
//! Every parser runs under [`Limits`]: input size, zip-container budgets (checked from the
//! central directory before inflating, and again while inflating), pages, output size and
//! nesting depth and fields per record. Every loop checks the cancellation token of
//! [`Limits::cancel`], so a deadline or a cancelled task stops the work where it is.
//! [`extract_isolated`] adds a deadline (which really stops the parser: the thread ends, see
//! [`live_extraction_threads`]) and panic isolation on its own thread.

mod cancel;
mod csvx;
mod docx;
mod eml;
mod epub;
mod html;
mod json;
mod lang;
mod markdown;
mod odf;
mod pdf;
mod pptx;
mod sheet;
mod sniff;
mod text;
mod xml;
mod zipc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use cancel::{Cancel, CancelOnDrop};
pub use sniff::{Detected, Format, sniff};

/// Limits applied before and while extracting. Every one is checked; exceeding one fails with
/// [`ExtractError::TooLarge`] (or another typed error), never a panic or an unbounded allocation.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_input_bytes: u64,
    /// Largest extracted text, in chars.
    pub max_output_chars: usize,
    /// Zip containers (DOCX, XLSX, PPTX, ODF, EPUB): largest total uncompressed size, counted
    /// from the central directory before inflating and again while inflating.
    pub max_uncompressed_bytes: u64,
    /// Zip containers: most entries in the archive.
    pub max_zip_entries: usize,
    /// Zip containers: largest uncompressed/compressed ratio of any entry (and of the whole
    /// archive), checked from the central directory before inflating.
    pub max_compression_ratio: u64,
    /// Most pages (PDF), slides (PPTX), sheets or spine documents.
    pub max_pages: u32,
    /// Deepest nesting accepted in HTML, XML and JSON.
    pub max_depth: usize,
    /// Spreadsheets read into dense grids (ODS): most cells in one sheet's grid (first to last
    /// non-empty row × column A to the last non-empty column, repeats expanded), in all the
    /// workbook's grids together, and most non-empty cells. Checked by a streaming scan before
    /// any grid is built.
    pub max_sheet_cells: u64,
    /// JSON/JSONL: the fields whose values become record fields (dotted paths such as
    /// `author.name` for nested objects). Empty means every string field.
    pub json_text_fields: Vec<String>,
    /// Most fields in one record (a CSV/TSV or spreadsheet row, a JSON object): a wider record
    /// fails the extraction with [`ExtractError::RecordTooLarge`], checked before the record's
    /// text is built.
    pub max_record_fields: usize,
    /// Most records (rows, JSON objects) in one document: one more fails the extraction with
    /// [`ExtractError::DocumentTooLarge`].
    pub max_records: u64,
    /// Checked in every loop of the extractors: once it trips, extraction stops with
    /// [`ExtractError::Timeout`] or [`ExtractError::Cancelled`]. Never trips by default.
    pub cancel: Cancel,
}

/// Default of [`Limits::max_record_fields`].
pub const DEFAULT_MAX_RECORD_FIELDS: usize = 10_000;

/// Default of [`Limits::max_records`].
pub const DEFAULT_MAX_RECORDS: u64 = 200_000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 100 * 1024 * 1024,
            max_output_chars: 20_000_000,
            max_uncompressed_bytes: 512 * 1024 * 1024,
            max_zip_entries: 10_000,
            max_compression_ratio: 200,
            max_pages: 5_000,
            max_depth: 512,
            max_sheet_cells: 5_000_000,
            json_text_fields: Vec::new(),
            max_record_fields: DEFAULT_MAX_RECORD_FIELDS,
            max_records: DEFAULT_MAX_RECORDS,
            cancel: Cancel::default(),
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
    /// One record of tabular or structured data (a CSV row, a spreadsheet row, a JSON object):
    /// its text is one `name: value` line per field.
    Record {
        /// Field names (from the header row, or the JSON keys) and values, in order.
        fields: Vec<(String, String)>,
    },
}

/// A structural piece of the extracted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Kind.
    pub kind: BlockKind,
    /// Page (slide, sheet, spine document) from 1, when the format has pages.
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
    /// Author, when the format records one.
    pub author: Option<String>,
    /// Pages, slides or sheets.
    pub page_count: Option<u32>,
    /// Main language as an ISO 639-1 code (e.g. `en`; a language without one keeps its ISO
    /// 639-3 code, e.g. `yue`), declared by the document (`en-US`, `fre`, ... are normalised)
    /// or detected from its text when the detection is reliable.
    pub language: Option<String>,
}

/// The result of extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Detected type, e.g. `text/markdown`.
    pub detected_type: &'static str,
    /// The whole text: blocks separated by blank lines.
    pub text: String,
    /// Blocks in reading order; offsets index `text`.
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

/// Why extraction failed. Each variant maps to one stable error code ([`ExtractError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The bytes are a format docent does not extract.
    #[error("unsupported format: {detected}")]
    Unsupported {
        /// What the bytes look like (a MIME type).
        detected: String,
    },
    /// The file is empty or holds only whitespace.
    #[error("the document contains no text")]
    NoText,
    /// The input, the output or a container budget exceeds a limit.
    #[error("{0}")]
    TooLarge(String),
    /// The document is protected by a password.
    #[error("the document is password-protected")]
    Encrypted,
    /// A PDF whose pages carry no text layer (scanned or flattened): it needs OCR.
    #[error("the PDF has no text layer (scanned or flattened pages need OCR)")]
    NoTextLayer,
    /// Extraction did not finish within its deadline.
    #[error("extraction did not finish within {0:?}")]
    Timeout(Duration),
    /// The work was cancelled (its task was stopped) before it finished.
    #[error("extraction was cancelled")]
    Cancelled,
    /// One record (row, JSON object) has more fields, or would make more chunks, than allowed.
    #[error("{0}")]
    RecordTooLarge(String),
    /// The document has more records (rows), or would make more chunks, than allowed.
    #[error("{0}")]
    DocumentTooLarge(String),
    /// The bytes claim a format but cannot be decoded (corrupt, truncated, or the parser
    /// failed).
    #[error("cannot extract text: {0}")]
    Failed(String),
}

impl ExtractError {
    /// The stable error code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Unsupported { .. } => "unsupported_format",
            ExtractError::NoText => "no_text",
            ExtractError::TooLarge(_) => "payload_too_large",
            ExtractError::Encrypted => "document_encrypted",
            ExtractError::NoTextLayer => "no_text_layer",
            ExtractError::Timeout(_) => "extraction_timeout",
            ExtractError::Cancelled => "extraction_cancelled",
            ExtractError::RecordTooLarge(_) => "record_too_large",
            ExtractError::DocumentTooLarge(_) => "document_too_large",
            ExtractError::Failed(_) => "extraction_failed",
        }
    }

    pub(crate) fn failed(what: &str, e: impl std::fmt::Display) -> Self {
        ExtractError::Failed(format!("{what}: {e}"))
    }
}

/// Extracts the text of a document on the calling thread.
///
/// Parsers that are known to panic on malformed input are wrapped in `catch_unwind`, but a
/// caller handling untrusted files should prefer [`extract_isolated`], which also bounds time.
pub fn extract(
    bytes: &[u8],
    filename: &str,
    declared_mime: &str,
    limits: Limits,
) -> Result<Extracted, ExtractError> {
    limits.cancel.check()?;
    if bytes.len() as u64 > limits.max_input_bytes {
        return Err(ExtractError::TooLarge(format!(
            "input of {} bytes exceeds the limit of {} bytes",
            bytes.len(),
            limits.max_input_bytes
        )));
    }
    let detected = sniff(bytes, filename, declared_mime);
    let mut out = match detected {
        Detected::Binary(sniff::ENCRYPTED_OOXML) => return Err(ExtractError::Encrypted),
        Detected::Binary(name) => {
            return Err(ExtractError::Unsupported {
                detected: name.into(),
            });
        }
        Detected::Empty => return Err(ExtractError::NoText),
        Detected::Format(format) => match format {
            Format::Pdf => pdf::extract(bytes, &limits)?,
            Format::Docx => docx::extract(bytes, &limits)?,
            Format::Pptx => pptx::extract(bytes, &limits)?,
            Format::Xlsx | Format::Xlsb | Format::Ods => sheet::extract(bytes, format, &limits)?,
            Format::Odt => odf::extract(bytes, &limits)?,
            Format::Epub => epub::extract(bytes, &limits)?,
            Format::Eml => eml::extract(bytes, &limits)?,
            Format::Html
            | Format::Markdown
            | Format::Text
            | Format::Csv
            | Format::Tsv
            | Format::Json
            | Format::Jsonl => {
                limits.cancel.check()?;
                let text = text::decode(bytes, format == Format::Html)
                    .ok_or_else(|| ExtractError::Failed("cannot decode the text".into()))?;
                limits.cancel.check()?;
                match format {
                    Format::Html => html::extract(&text, &limits)?,
                    Format::Markdown => markdown::extract(&text, &limits)?,
                    Format::Csv => csvx::extract(&text, Some(b','), &limits)?,
                    Format::Tsv => csvx::extract(&text, Some(b'\t'), &limits)?,
                    Format::Json => json::extract(&text, false, &limits)?,
                    Format::Jsonl => json::extract(&text, true, &limits)?,
                    _ => plain(&text, &limits)?,
                }
            }
        },
    };
    limits.cancel.check()?;
    if out.blocks.is_empty() {
        return Err(ExtractError::NoText);
    }
    out.meta.language = out.meta.language.as_deref().and_then(lang::normalize);
    if out.meta.language.is_none() {
        out.meta.language = detect_language(&out.text);
    }
    Ok(out)
}

/// Extraction threads started by [`extract_isolated`] that have not ended yet.
static LIVE_THREADS: AtomicUsize = AtomicUsize::new(0);

/// How many threads of [`extract_isolated`] are running now: one past its deadline ends at
/// the parser's next cancellation check, so this falls back shortly after a timeout.
pub fn live_extraction_threads() -> usize {
    LIVE_THREADS.load(Ordering::SeqCst)
}

/// Counts a live extraction thread while it exists.
struct LiveThread;

impl LiveThread {
    fn start() -> Self {
        LIVE_THREADS.fetch_add(1, Ordering::SeqCst);
        LiveThread
    }
}

impl Drop for LiveThread {
    fn drop(&mut self) {
        LIVE_THREADS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs [`extract`] on its own thread with a deadline and panic isolation.
///
/// A panic inside a parser becomes [`ExtractError::Failed`]. The deadline is real: it trips
/// the extraction's cancellation token (a child of `limits.cancel`, so cancelling that one
/// stops the work too), every parser loop checks it, and the thread ends with its memory
/// freed; [`ExtractError::Timeout`] is returned at the deadline without waiting for that.
/// Only a single call into a third-party parser (one PDF page's content stream, one JSON
/// value, one CSV record) runs to its end before the check. The thread gets a large stack so
/// deep but finite recursion in a parser cannot overflow it.
pub fn extract_isolated(
    bytes: Vec<u8>,
    filename: String,
    declared_mime: String,
    mut limits: Limits,
    deadline: Duration,
) -> Result<Extracted, ExtractError> {
    let cancel = limits.cancel.child(Some(deadline));
    limits.cancel = cancel.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let live = LiveThread::start();
    let spawned = std::thread::Builder::new()
        .name("docent-extract".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            let _live = live;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                extract(&bytes, &filename, &declared_mime, limits)
            }));
            let result = result.unwrap_or_else(|panic| {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(ExtractError::Failed(format!("the parser failed: {msg}")))
            });
            // Free the input and output before saying we are done.
            drop(bytes);
            // The receiver may be gone after a timeout.
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(ExtractError::failed(
            "cannot start the extraction thread",
            e,
        ));
    }
    let result = match rx.recv_timeout(deadline) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(ExtractError::Timeout(deadline)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(ExtractError::Failed(
            "the extraction thread ended without a result".into(),
        )),
    };
    // Whatever happened, the thread has nothing left to do: stop it at its next check.
    cancel.cancel();
    result
}

/// Runs a parser that may panic, turning a panic into [`ExtractError::Failed`].
pub(crate) fn guard<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, ExtractError>,
) -> Result<T, ExtractError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ExtractError::Failed(format!("{what} parser failed: {msg}")))
        }
    }
}

/// Detects the language of a text from a sample, when whatlang is confident.
fn detect_language(text: &str) -> Option<String> {
    let mut end = text.len().min(20_000);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let sample = &text[..end];
    if sample.chars().filter(|c| c.is_alphabetic()).count() < 40 {
        return None;
    }
    let info = whatlang::detect(sample)?;
    info.is_reliable()
        .then(|| lang::normalize(info.lang().code()))
        .flatten()
}

/// Builds the output text block by block, keeping char and byte offsets, and enforcing the
/// output limit.
pub(crate) struct Builder {
    text: String,
    chars: usize,
    blocks: Vec<Block>,
    title: Option<String>,
    max_chars: usize,
    overflow: bool,
    max_fields: usize,
    max_records: u64,
    records: u64,
    /// The error that stopped the build early (a record too wide, a cancelled token).
    stopped: Option<ExtractError>,
    cancel: Cancel,
    pub(crate) meta: DocMeta,
}

impl Builder {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            text: String::new(),
            chars: 0,
            blocks: Vec::new(),
            title: None,
            max_chars: limits.max_output_chars,
            overflow: false,
            max_fields: limits.max_record_fields,
            max_records: limits.max_records,
            records: 0,
            stopped: None,
            cancel: limits.cancel.clone(),
            meta: DocMeta::default(),
        }
    }

    /// True once the output limit was hit, a record was too wide or the cancellation token
    /// tripped: callers stop early, and [`Builder::finish`] returns the error.
    pub(crate) fn full(&mut self) -> bool {
        if self.stopped.is_none()
            && let Err(e) = self.cancel.check()
        {
            self.stopped = Some(e);
        }
        self.overflow || self.stopped.is_some()
    }

    /// Stops the build with an error (the first one is kept).
    pub(crate) fn stop(&mut self, e: ExtractError) {
        self.stopped.get_or_insert(e);
    }

    /// The most fields a record may have.
    pub(crate) fn max_fields(&self) -> usize {
        self.max_fields
    }

    pub(crate) fn push(&mut self, kind: BlockKind, page: Option<u32>, body: &str) {
        let body = body.trim();
        if body.is_empty() || self.full() {
            return;
        }
        let n = body.chars().count();
        let sep = if self.text.is_empty() { 0 } else { 2 };
        if self.chars + sep + n > self.max_chars {
            self.overflow = true;
            return;
        }
        if sep > 0 {
            self.text.push_str("\n\n");
            self.chars += 2;
        }
        if self.title.is_none() && matches!(kind, BlockKind::Heading { .. }) {
            self.title = Some(body.chars().take(300).collect());
        }
        let start = self.chars;
        let byte_start = self.text.len();
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

    /// Pushes a record: one `name: value` line per non-empty field.
    pub(crate) fn push_record(&mut self, page: Option<u32>, fields: Vec<(String, String)>) {
        if self.full() {
            return;
        }
        if fields.len() > self.max_fields {
            let n = fields.len();
            self.record_too_wide(n);
            return;
        }
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if fields.is_empty() {
            return;
        }
        if self.records >= self.max_records {
            let max = self.max_records;
            self.stop(ExtractError::DocumentTooLarge(format!(
                "the document has more than {max} records (rows), the limit per document"
            )));
            return;
        }
        self.records += 1;
        let mut body = String::new();
        for (k, v) in &fields {
            if !body.is_empty() {
                body.push('\n');
            }
            if !k.is_empty() {
                body.push_str(k);
                body.push_str(": ");
            }
            body.push_str(v);
        }
        self.push(BlockKind::Record { fields }, page, &body);
    }

    /// Stops the build: the next record has `n` fields, more than allowed.
    pub(crate) fn record_too_wide(&mut self, n: usize) {
        let row = self.records + 1;
        let max = self.max_fields;
        self.stop(ExtractError::RecordTooLarge(format!(
            "record {row} has {n} fields, more than the limit of {max} fields per record"
        )));
    }

    pub(crate) fn finish(mut self, detected_type: &'static str) -> Result<Extracted, ExtractError> {
        self.full();
        if let Some(e) = self.stopped {
            return Err(e);
        }
        if self.overflow {
            return Err(ExtractError::TooLarge(format!(
                "extracted text exceeds the limit of {} characters",
                self.max_chars
            )));
        }
        let mut meta = self.meta;
        if meta.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            meta.title = self.title;
        }
        Ok(Extracted {
            detected_type,
            text: self.text,
            blocks: self.blocks,
            meta,
        })
    }
}

/// Plain text: paragraphs are runs of non-blank lines; lines inside a paragraph are joined.
fn plain(text: &str, limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut b = Builder::new(limits);
    let mut para = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            b.push(BlockKind::Paragraph, None, &para);
            para.clear();
            if b.full() {
                break;
            }
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
            b"\x89PNG\r\n\x1A\n\x00\x00\x00\x0DIHDR",
            "a.txt",
            "text/plain",
            Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ExtractError::Unsupported {
                detected: "image/png".into()
            }
        );
        let err = extract(&[0u8, 159, 146, 150, 0, 0], "x.bin", "", Limits::default()).unwrap_err();
        assert!(matches!(err, ExtractError::Unsupported { .. }));
        assert_eq!(err.code(), "unsupported_format");
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_input_bytes: 4,
            ..Limits::default()
        };
        let err = extract(b"hello", "a.txt", "", limits).unwrap_err();
        assert!(matches!(err, ExtractError::TooLarge(_)));
        assert_eq!(err.code(), "payload_too_large");
        let limits = Limits {
            max_output_chars: 3,
            ..Limits::default()
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

    #[test]
    fn codes_are_stable() {
        let all = [
            (
                ExtractError::Unsupported {
                    detected: "x".into(),
                },
                "unsupported_format",
            ),
            (ExtractError::NoText, "no_text"),
            (ExtractError::TooLarge("x".into()), "payload_too_large"),
            (ExtractError::Encrypted, "document_encrypted"),
            (ExtractError::NoTextLayer, "no_text_layer"),
            (
                ExtractError::Timeout(Duration::from_secs(1)),
                "extraction_timeout",
            ),
            (ExtractError::Cancelled, "extraction_cancelled"),
            (ExtractError::RecordTooLarge("x".into()), "record_too_large"),
            (
                ExtractError::DocumentTooLarge("x".into()),
                "document_too_large",
            ),
            (ExtractError::Failed("x".into()), "extraction_failed"),
        ];
        for (e, code) in all {
            assert_eq!(e.code(), code);
        }
    }

    #[test]
    fn isolated_extraction_returns_results_and_times_out() {
        let out = extract_isolated(
            b"hello world".to_vec(),
            "a.txt".into(),
            String::new(),
            Limits::default(),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.text, "hello world");
        // A zero deadline cannot be met by a real parse of a large text.
        let big = "word ".repeat(2_000_000).into_bytes();
        let err = extract_isolated(
            big,
            "a.txt".into(),
            String::new(),
            Limits::default(),
            Duration::from_nanos(1),
        )
        .unwrap_err();
        assert_eq!(err.code(), "extraction_timeout");
    }

    #[test]
    fn language_is_detected_when_reliable() {
        let text = "The quick brown fox jumps over the lazy dog. This sentence is written in plain English so that the detector has enough words to be sure about it.";
        let out = extract(text.as_bytes(), "a.txt", "", Limits::default()).unwrap();
        assert_eq!(out.meta.language.as_deref(), Some("en"));
    }

    #[test]
    fn declared_languages_are_normalised_to_two_letters() {
        let html = b"<html lang='fr-CA'><body><p>Bonjour.</p></body></html>";
        let out = extract(html, "a.html", "", Limits::default()).unwrap();
        assert_eq!(out.meta.language.as_deref(), Some("fr"));
        let html = b"<html lang='GER'><body><p>Hallo.</p></body></html>";
        let out = extract(html, "a.html", "", Limits::default()).unwrap();
        assert_eq!(out.meta.language.as_deref(), Some("de"));
        // Not a language code: dropped (too little text to detect one).
        let html = b"<html lang='klingon'><body><p>Qapla'.</p></body></html>";
        let out = extract(html, "a.html", "", Limits::default()).unwrap();
        assert_eq!(out.meta.language, None);
    }
}
