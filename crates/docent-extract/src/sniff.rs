//! Type detection from the bytes. The declared MIME type and the file name are only used to
//! tell Markdown from plain text; they never make a binary file count as text.

/// What the bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// Decoded text.
    Text {
        /// Treat as Markdown.
        markdown: bool,
        /// The decoded text (BOM removed).
        text: String,
    },
    /// Not text; the most specific name known.
    Binary(&'static str),
}

const MAGIC: &[(&[u8], &str)] = &[
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (
        b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
        "application/x-ole-storage",
    ),
    (b"\x89PNG\r\n\x1A\n", "image/png"),
    (b"\xFF\xD8\xFF", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"\x1F\x8B", "application/gzip"),
    (b"\x7FELF", "application/x-executable"),
    (b"{\\rtf", "application/rtf"),
];

/// Sniffs the type of `bytes`, decoding them when they are text.
pub fn sniff(bytes: &[u8], filename: &str, declared_mime: &str) -> Detected {
    for (magic, name) in MAGIC {
        if bytes.starts_with(magic) {
            return Detected::Binary(name);
        }
    }
    let Some(text) = decode_text(bytes) else {
        return Detected::Binary("application/octet-stream");
    };
    let lower = filename.to_ascii_lowercase();
    let markdown = declared_mime.eq_ignore_ascii_case("text/markdown")
        || declared_mime.eq_ignore_ascii_case("text/x-markdown")
        || [".md", ".markdown", ".mdown", ".mkd"]
            .iter()
            .any(|ext| lower.ends_with(ext));
    Detected::Text { markdown, text }
}

fn decode_text(bytes: &[u8]) -> Option<String> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8(rest.to_vec()).ok();
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return decode_utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return decode_utf16(rest, u16::from_be_bytes);
    }
    let text = std::str::from_utf8(bytes).ok()?;
    // Control characters other than whitespace mean a binary format.
    let controls = text
        .chars()
        .filter(|c| c.is_control() && !c.is_whitespace())
        .count();
    (controls * 100 <= text.len().max(1)).then(|| text.to_owned())
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_by_name_or_mime_text_otherwise() {
        assert!(matches!(
            sniff(b"# x", "a.md", ""),
            Detected::Text { markdown: true, .. }
        ));
        assert!(matches!(
            sniff(b"# x", "a", "text/markdown"),
            Detected::Text { markdown: true, .. }
        ));
        assert!(matches!(
            sniff(b"# x", "a.txt", ""),
            Detected::Text {
                markdown: false,
                ..
            }
        ));
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
    }
}
