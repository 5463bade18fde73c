//! Type detection from the bytes. Magic numbers and, for zip containers, the names in the
//! central directory decide binary formats. The declared MIME type and the file name only tell
//! text formats apart (Markdown, CSV/TSV, JSON Lines); they never make a binary file count as
//! text or change what a binary is.

use std::io::Cursor;

/// A format docent extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PDF.
    Pdf,
    /// Word 2007+.
    Docx,
    /// PowerPoint 2007+.
    Pptx,
    /// Excel 2007+ (also XLSM).
    Xlsx,
    /// Excel binary workbook.
    Xlsb,
    /// OpenDocument spreadsheet.
    Ods,
    /// OpenDocument text (and presentation).
    Odt,
    /// EPUB e-book.
    Epub,
    /// HTML or XHTML.
    Html,
    /// Markdown.
    Markdown,
    /// Plain text.
    Text,
    /// Comma-separated values.
    Csv,
    /// Tab-separated values.
    Tsv,
    /// One JSON document.
    Json,
    /// JSON Lines / NDJSON.
    Jsonl,
    /// An e-mail message (RFC 5322).
    Eml,
}

/// What the bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// A format docent extracts.
    Format(Format),
    /// Nothing but whitespace.
    Empty,
    /// Something else; the most specific MIME type known.
    Binary(&'static str),
}

/// Sniffs the type of `bytes`.
pub fn sniff(bytes: &[u8], filename: &str, declared_mime: &str) -> Detected {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Detected::Empty;
    }
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Detected::Format(Format::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return zip_kind(bytes, filename);
    }
    if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        // OLE compound file: an encrypted OOXML package, or legacy Office.
        let marker: Vec<u8> = "EncryptedPackage"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        if bytes.windows(marker.len()).any(|w| w == marker.as_slice()) {
            return Detected::Binary(ENCRYPTED_OOXML);
        }
        return Detected::Binary(
            infer::get(bytes).map_or("application/x-ole-storage", |t| t.mime_type()),
        );
    }
    if bytes.starts_with(b"{\\rtf") {
        return Detected::Binary("application/rtf");
    }
    if let Some(t) = infer::get(bytes)
        && t.matcher_type() != infer::MatcherType::Text
    {
        return Detected::Binary(t.mime_type());
    }
    // Markup is recognised on the raw bytes, so a page in an odd encoding is still HTML.
    if crate::text::ascii_compatible(head) {
        let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
        if looks_like_html(lower.trim_start_matches('\u{feff}')) {
            return Detected::Format(Format::Html);
        }
    }
    let Some(text) = crate::text::decode(bytes, false) else {
        return Detected::Binary("application/octet-stream");
    };
    Detected::Format(text_kind(&text, filename, declared_mime))
}

/// The MIME type reported for a password-protected OOXML package (an OLE file holding an
/// `EncryptedPackage` stream).
pub(crate) const ENCRYPTED_OOXML: &str = "application/x-encrypted-ooxml";

fn zip_kind(bytes: &[u8], filename: &str) -> Detected {
    let names: Vec<String> = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(archive) => archive
            .file_names()
            .take(100_000)
            .filter_map(|n| n.ok())
            .map(|n| n.into_owned())
            .collect(),
        // Truncated or corrupt: read the names of the local headers that are there.
        Err(_) => local_names(bytes),
    };
    let has = |n: &str| names.iter().any(|x| x == n);
    if has("word/document.xml") {
        return Detected::Format(Format::Docx);
    }
    if has("ppt/presentation.xml") {
        return Detected::Format(Format::Pptx);
    }
    if has("xl/workbook.xml") {
        return Detected::Format(Format::Xlsx);
    }
    if has("xl/workbook.bin") {
        return Detected::Format(Format::Xlsb);
    }
    if has("mimetype") || has("META-INF/container.xml") || has("content.xml") {
        // The ODF/EPUB `mimetype` entry is stored first and uncompressed.
        let mime = bytes
            .get(30..30 + 8)
            .filter(|n| *n == b"mimetype")
            .and_then(|_| {
                let extra = u16::from_le_bytes([*bytes.get(28)?, *bytes.get(29)?]) as usize;
                let start = 38 + extra;
                bytes.get(start..(start + 80).min(bytes.len()))
            })
            .unwrap_or_default();
        let starts = |p: &[u8]| mime.starts_with(p);
        if starts(b"application/epub+zip") || has("META-INF/container.xml") && !has("content.xml") {
            return Detected::Format(Format::Epub);
        }
        if starts(b"application/vnd.oasis.opendocument.spreadsheet") {
            return Detected::Format(Format::Ods);
        }
        if starts(b"application/vnd.oasis.opendocument.text")
            || starts(b"application/vnd.oasis.opendocument.presentation")
            || has("content.xml")
        {
            return Detected::Format(Format::Odt);
        }
    }
    if has("[Content_Types].xml") || names.iter().any(|n| n.starts_with("docProps/")) {
        // A damaged OOXML package whose main part is gone: the name says which kind.
        let lower = filename.to_ascii_lowercase();
        if lower.ends_with(".pptx") {
            return Detected::Format(Format::Pptx);
        }
        if lower.ends_with(".xlsx") || lower.ends_with(".xlsm") {
            return Detected::Format(Format::Xlsx);
        }
        if !names
            .iter()
            .any(|n| n.starts_with("ppt/") || n.starts_with("xl/"))
        {
            return Detected::Format(Format::Docx);
        }
    }
    if names.iter().any(|n| n.starts_with("word/")) {
        return Detected::Format(Format::Docx);
    }
    if names.iter().any(|n| n.starts_with("ppt/")) {
        return Detected::Format(Format::Pptx);
    }
    if names.iter().any(|n| n.starts_with("xl/")) {
        return Detected::Format(Format::Xlsx);
    }
    Detected::Binary("application/zip")
}

/// Entry names from the local file headers of a damaged archive.
fn local_names(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut i = 0;
    while let Some(pos) = bytes[i..].windows(4).position(|w| w == b"PK\x03\x04") {
        let at = i + pos;
        let Some(h) = bytes.get(at..at + 30) else {
            break;
        };
        let len = u16::from_le_bytes([h[26], h[27]]) as usize;
        if let Some(name) = bytes.get(at + 30..at + 30 + len) {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        i = at + 4;
        if names.len() > 1000 {
            break;
        }
    }
    names
}

fn text_kind(text: &str, filename: &str, declared_mime: &str) -> Format {
    let lower = filename.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    let mime = declared_mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = text.trim_start_matches('\u{feff}').trim_start();
    let head: String = body
        .chars()
        .take(2048)
        .collect::<String>()
        .to_ascii_lowercase();
    if looks_like_html(&head)
        || (matches!(ext, "html" | "htm" | "xhtml") || mime.contains("html"))
            && head.starts_with('<')
    {
        return Format::Html;
    }
    if body.starts_with('{') || body.starts_with('[') {
        let mut lines = body.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or("");
        let jsonl_hint = matches!(ext, "jsonl" | "ndjson" | "jsonlines")
            || mime.contains("ndjson")
            || mime.contains("jsonl")
            || mime.contains("json-seq");
        let more = lines.next().is_some();
        if jsonl_hint
            || (more
                && first.starts_with('{')
                && serde_json::from_str::<serde_json::Value>(first).is_ok())
        {
            return Format::Jsonl;
        }
        if ext == "json"
            || mime.contains("json")
            || serde_json::from_str::<serde_json::Value>(body).is_ok()
        {
            return Format::Json;
        }
    }
    if ext == "eml" || mime == "message/rfc822" || looks_like_mail(body) {
        return Format::Eml;
    }
    if matches!(ext, "md" | "markdown" | "mdown" | "mkd")
        || mime == "text/markdown"
        || mime == "text/x-markdown"
    {
        return Format::Markdown;
    }
    if matches!(ext, "tsv" | "tab") || mime == "text/tab-separated-values" {
        return Format::Tsv;
    }
    if ext == "csv" || mime == "text/csv" || mime == "application/csv" {
        return Format::Csv;
    }
    Format::Text
}

fn looks_like_html(head: &str) -> bool {
    let h = head.trim_start();
    h.starts_with("<!doctype html")
        || h.starts_with("<html")
        || (h.starts_with("<?xml") && h.contains("<html"))
        || (h.starts_with('<')
            && (h.contains("<body") || h.contains("<head>") || h.contains("<html")))
}

/// RFC 5322 headers at the start: a header line first, and at least two well-known headers.
fn looks_like_mail(body: &str) -> bool {
    const KNOWN: &[&str] = &[
        "from",
        "to",
        "subject",
        "date",
        "received",
        "message-id",
        "mime-version",
        "return-path",
        "delivered-to",
        "content-type",
        "cc",
        "reply-to",
    ];
    let mut known = 0;
    for (i, line) in body.lines().take(60).enumerate() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return false;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return i > 0 && known >= 2;
        }
        if KNOWN.contains(&name.to_ascii_lowercase().as_str()) {
            known += 1;
        }
    }
    known >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(bytes: &[u8], name: &str, mime: &str) -> Detected {
        sniff(bytes, name, mime)
    }

    #[test]
    fn text_formats_by_hint_and_content() {
        use Format::*;
        assert_eq!(fmt(b"# x", "a.md", ""), Detected::Format(Markdown));
        assert_eq!(
            fmt(b"# x", "a", "text/markdown"),
            Detected::Format(Markdown)
        );
        assert_eq!(fmt(b"# x", "a.txt", ""), Detected::Format(Text));
        assert_eq!(fmt(b"a,b\n1,2\n", "a.csv", ""), Detected::Format(Csv));
        assert_eq!(fmt(b"a\tb\n1\t2\n", "a.tsv", ""), Detected::Format(Tsv));
        assert_eq!(
            fmt(b"{\"a\":1}\n{\"a\":2}\n", "a.txt", ""),
            Detected::Format(Jsonl)
        );
        assert_eq!(fmt(b"{\"a\": [1, 2]}", "a", ""), Detected::Format(Json));
        assert_eq!(
            fmt(b"<!DOCTYPE html><p>x", "a.txt", ""),
            Detected::Format(Html)
        );
        assert_eq!(
            fmt(b"From: a@b.c\nTo: d@e.f\nSubject: hi\n\nbody", "a", ""),
            Detected::Format(Eml)
        );
        // A declared type never turns text into HTML when it isn't markup.
        assert_eq!(
            fmt(b"plain words", "a.html", "text/html"),
            Detected::Format(Text)
        );
    }

    #[test]
    fn declared_type_never_makes_binary_text() {
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1A\nxxxx", "a.md", "text/markdown"),
            Detected::Binary("image/png")
        );
        assert_eq!(
            sniff(b"ab\x00\x00\x01\x02", "a.txt", "text/plain"),
            Detected::Binary("application/octet-stream")
        );
        assert_eq!(
            sniff(b"{\\rtf1\\ansi hello}", "a.txt", "text/plain"),
            Detected::Binary("application/rtf")
        );
        assert_eq!(
            sniff(b"%PDF-1.4 ...", "a.txt", "text/plain"),
            Detected::Format(Format::Pdf)
        );
    }
}
