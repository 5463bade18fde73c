//! Text decoding: BOMs (UTF-8, UTF-16LE/BE), BOM-less UTF-16, an HTML `<meta charset>`, valid
//! UTF-8, and otherwise the legacy encoding chardetng guesses (windows-1252, Shift_JIS,
//! GBK, KOI8-R, ...), decoded with encoding_rs. Returns `None` for bytes that look binary.

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// Decodes `bytes` to text, or `None` when they look binary. `html` enables the `<meta>`
/// charset prescan.
pub(crate) fn decode(bytes: &[u8], html: bool) -> Option<String> {
    let encoding = detect(bytes, html)?;
    let (text, _, _) = encoding.decode(bytes);
    let text = text.trim_start_matches('\u{feff}');
    let bad = text
        .chars()
        .filter(|&c| {
            (c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c')) || c == '\u{fffd}'
        })
        .count();
    let tolerance = if html { 4 } else { 50 };
    if bad * tolerance > text.chars().count().max(1) {
        return None;
    }
    Some(text.to_owned())
}

/// Picks the encoding of `bytes`; `None` when they look binary.
pub(crate) fn detect(bytes: &[u8], html: bool) -> Option<&'static Encoding> {
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return Some(enc);
    }
    if let Some(enc) = utf16_without_bom(bytes) {
        return Some(enc);
    }
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    if !html && sample.contains(&0) {
        return None;
    }
    if html && let Some(enc) = meta_charset(&bytes[..bytes.len().min(4096)]) {
        // A document saying UTF-16 without a BOM is ASCII-compatible in practice.
        if enc != UTF_16LE && enc != UTF_16BE {
            return Some(enc);
        }
    }
    if std::str::from_utf8(bytes).is_ok() {
        return Some(UTF_8);
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(sample, sample.len() == bytes.len());
    Some(det.guess(None, chardetng::Utf8Detection::Allow))
}

/// Whether the first bytes are in an ASCII-compatible encoding (so markup can be recognised
/// on the raw bytes).
pub(crate) fn ascii_compatible(head: &[u8]) -> bool {
    Encoding::for_bom(head).is_none_or(|(e, _)| e == UTF_8) && utf16_without_bom(head).is_none()
}

/// UTF-16 without a BOM: most even (BE) or odd (LE) bytes of the sample are zero.
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let sample = &bytes[..bytes.len().min(4096) & !1];
    if sample.len() < 8 {
        return None;
    }
    let pairs = sample.len() / 2;
    let even = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd = sample
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|&&b| b == 0)
        .count();
    if odd * 10 >= pairs * 7 && even * 10 <= pairs {
        Some(UTF_16LE)
    } else if even * 10 >= pairs * 7 && odd * 10 <= pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// The charset named by a `<meta charset=..>` or `<meta http-equiv content="..charset=..">`, or
/// an XML declaration's `encoding`, in the first bytes of an HTML document.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower: Vec<u8> = head.to_ascii_lowercase();
    let mut from = 0;
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    if lower.starts_with(b"<?xml")
        && let Some(end) = find(&lower, b"?>", 0)
        && let Some(at) = find(&lower[..end], b"encoding=", 0)
    {
        let label = label_at(&lower[at + 9..end]);
        if let Some(enc) = Encoding::for_label(label) {
            return Some(enc);
        }
    }
    while let Some(at) = find(&lower, b"<meta", from) {
        let end = find(&lower, b">", at).unwrap_or(lower.len());
        let tag = &lower[at..end];
        if let Some(c) = find(tag, b"charset=", 0) {
            let label = label_at(&tag[c + 8..]);
            if let Some(enc) = Encoding::for_label(label) {
                return Some(enc);
            }
        }
        from = end;
    }
    None
}

fn label_at(s: &[u8]) -> &[u8] {
    // Quoted-printable saved pages write `=` as `=3D`.
    let s = s.strip_prefix(b"3d").unwrap_or(s);
    let s = match s.first() {
        Some(b'"' | b'\'') => &s[1..],
        _ => s,
    };
    let end = s
        .iter()
        .position(|&b| matches!(b, b'"' | b'\'' | b';' | b' ' | b'/' | b'>' | b'?'))
        .unwrap_or(s.len());
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_code_pages_are_guessed() {
        let (bytes, _, _) = encoding_rs::WINDOWS_1252
            .encode("Café crème, naïve façade — déjà vu. Les élèves étaient très fâchés à l'été.");
        assert_eq!(
            decode(&bytes, false).unwrap(),
            "Café crème, naïve façade — déjà vu. Les élèves étaient très fâchés à l'été."
        );
        let text = "日本語のテキストです。これはシフトJISで書かれた文章です。";
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(text);
        assert_eq!(decode(&bytes, false).unwrap(), text);
    }

    #[test]
    fn utf16_with_and_without_bom() {
        let text = "Hello, wörld! This is UTF-16.";
        let le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(decode(&le, false).unwrap(), text);
        assert_eq!(decode(&be, false).unwrap(), text);
        let mut bom = vec![0xFE, 0xFF];
        bom.extend_from_slice(&be);
        assert_eq!(decode(&bom, false).unwrap(), text);
    }

    #[test]
    fn html_meta_charset_wins_over_guessing() {
        let (body, _, _) = encoding_rs::WINDOWS_1251.encode("Привет");
        let mut html = b"<html><head><meta charset=\"windows-1251\"></head><body>".to_vec();
        html.extend_from_slice(&body);
        assert!(decode(&html, true).unwrap().contains("Привет"));
        let mut html =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=koi8-r\">".to_vec();
        let (body, _, _) = encoding_rs::KOI8_R.encode("Привет");
        html.extend_from_slice(&body);
        assert!(decode(&html, true).unwrap().contains("Привет"));
    }

    #[test]
    fn binary_is_refused() {
        assert!(decode(b"\x00\x01\x02\x03binary\x00", false).is_none());
    }
}
