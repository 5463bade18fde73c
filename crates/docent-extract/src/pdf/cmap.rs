//! ToUnicode CMaps, read leniently and written back in the plain form pdf-extract's CMap
//! parser reads correctly.
//!
//! That parser stops at the first token it does not know and silently keeps what came before:
//! a `/CMapName` with a space in it (`/Jameel Noori Nastaleeq`) loses every mapping after it,
//! and the font's text comes out empty. It also panics on odd-length or unpaired-surrogate
//! targets and on ranges that overflow. So before pdf-extract runs, every ToUnicode stream is
//! re-read here (bfchar and bfrange sections, whatever surrounds them) and replaced by a
//! `beginbfchar` list of the valid mappings; a ToUnicode entry that is neither a stream nor
//! `/Identity-H` (pdf-extract panics on those) is removed.

use std::collections::{BTreeMap, HashSet};

use pdf_extract::{Document, Object, ObjectId, Stream};

/// Most mappings kept from one CMap (a single range may name 2^32 codes).
const MAX_ENTRIES: usize = 70_000;
/// Most UTF-16 units in one mapping's text (ligatures map to a few chars).
const MAX_TARGET_UNITS: usize = 32;
/// Deepest nesting of dictionaries and arrays searched for ToUnicode entries.
const MAX_DEPTH: usize = 16;

/// Rewrites every ToUnicode CMap of the document (see the module docs).
pub(super) fn normalize_to_unicode(doc: &mut Document) {
    let mut streams: HashSet<ObjectId> = HashSet::new();
    let mut bad = false;
    for obj in doc.objects.values() {
        visit(obj, &mut |v| match v {
            Object::Reference(id) => match doc.objects.get(id) {
                Some(Object::Stream(_)) => {
                    streams.insert(*id);
                }
                _ => bad = true,
            },
            Object::Name(n) if n == b"Identity-H" => {}
            _ => bad = true,
        });
    }
    if bad {
        // Drop the entries pdf-extract would panic on.
        let keep = |v: &Object| match v {
            Object::Reference(id) => streams.contains(id),
            Object::Name(n) => n == b"Identity-H",
            _ => false,
        };
        for obj in doc.objects.values_mut() {
            remove_bad(obj, &keep);
        }
    }
    for id in streams {
        if let Some(Object::Stream(s)) = doc.objects.get_mut(&id) {
            rewrite(s);
        }
    }
}

/// Calls `f` with the value of every `ToUnicode` key in the dictionaries (and stream
/// dictionaries) inside `obj`.
fn visit(obj: &Object, f: &mut impl FnMut(&Object)) {
    let mut stack: Vec<(&Object, usize)> = vec![(obj, 0)];
    while let Some((o, depth)) = stack.pop() {
        let dict = match o {
            Object::Dictionary(d) => d,
            Object::Stream(s) => &s.dict,
            Object::Array(a) if depth < MAX_DEPTH => {
                stack.extend(a.iter().map(|v| (v, depth + 1)));
                continue;
            }
            _ => continue,
        };
        for (k, v) in dict.iter() {
            if k == b"ToUnicode" {
                f(v);
            } else if depth < MAX_DEPTH && matches!(v, Object::Dictionary(_) | Object::Array(_)) {
                stack.push((v, depth + 1));
            }
        }
    }
}

/// Removes the `ToUnicode` entries inside `obj` that `keep` refuses.
fn remove_bad(obj: &mut Object, keep: &impl Fn(&Object) -> bool) {
    let mut stack: Vec<(&mut Object, usize)> = vec![(obj, 0)];
    while let Some((o, depth)) = stack.pop() {
        let dict = match o {
            Object::Dictionary(d) => d,
            Object::Stream(s) => &mut s.dict,
            Object::Array(a) if depth < MAX_DEPTH => {
                stack.extend(a.iter_mut().map(|v| (v, depth + 1)));
                continue;
            }
            _ => continue,
        };
        if dict.get(b"ToUnicode").is_ok_and(|v| !keep(v)) {
            dict.remove(b"ToUnicode");
        }
        if depth < MAX_DEPTH {
            for (_, v) in dict.iter_mut() {
                if matches!(v, Object::Dictionary(_) | Object::Array(_)) {
                    stack.push((v, depth + 1));
                }
            }
        }
    }
}

fn rewrite(stream: &mut Stream) {
    let raw = stream
        .get_plain_content()
        .unwrap_or_else(|_| stream.content.clone());
    let map = parse(&raw);
    stream.set_plain_content(write(&map));
}

/// A mapping: code (its bytes read big-endian) → (code length in bytes, UTF-16 text).
type Map = BTreeMap<u32, (usize, Vec<u16>)>;

#[derive(Debug, PartialEq)]
enum Tok {
    /// A hex or literal string.
    Str(Vec<u8>),
    /// An operator, number or other bare word.
    Word(Vec<u8>),
    Name,
    Open,
    Close,
}

/// PostScript-ish tokens; anything unexpected is skipped, never an error.
fn tokenize(s: &[u8]) -> Vec<Tok> {
    let delim = |c: u8| b"()<>[]{}/%".contains(&c) || c.is_ascii_whitespace() || c == 0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        match c {
            b'%' => {
                while i < s.len() && s[i] != b'\n' && s[i] != b'\r' {
                    i += 1;
                }
            }
            b'<' if s.get(i + 1) == Some(&b'<') => i += 2,
            b'>' if s.get(i + 1) == Some(&b'>') => i += 2,
            b'<' => {
                i += 1;
                let mut digits = Vec::new();
                while i < s.len() && s[i] != b'>' {
                    if let Some(d) = (s[i] as char).to_digit(16) {
                        digits.push(d as u8);
                    }
                    i += 1;
                }
                i += 1;
                if digits.len() % 2 == 1 {
                    digits.push(0);
                }
                out.push(Tok::Str(
                    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect(),
                ));
            }
            b'(' => {
                let (bytes, end) = literal(s, i + 1);
                out.push(Tok::Str(bytes));
                i = end;
            }
            b'[' => {
                out.push(Tok::Open);
                i += 1;
            }
            b']' => {
                out.push(Tok::Close);
                i += 1;
            }
            b'/' => {
                i += 1;
                while i < s.len() && !delim(s[i]) {
                    i += 1;
                }
                out.push(Tok::Name);
            }
            c if delim(c) => i += 1,
            _ => {
                let start = i;
                while i < s.len() && !delim(s[i]) {
                    i += 1;
                }
                out.push(Tok::Word(s[start..i].to_vec()));
            }
        }
    }
    out
}

/// A literal string starting after its `(`: its bytes and the index after its `)`.
fn literal(s: &[u8], mut i: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut depth = 0usize;
    while i < s.len() {
        let c = s[i];
        i += 1;
        match c {
            b'\\' => {
                let Some(&e) = s.get(i) else { break };
                i += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            match s.get(i) {
                                Some(&d @ b'0'..=b'7') => {
                                    v = v * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(v as u8);
                    }
                    b'\r' => {
                        if s.get(i) == Some(&b'\n') {
                            i += 1;
                        }
                    }
                    b'\n' => {}
                    e => out.push(e),
                }
            }
            b'(' => {
                depth += 1;
                out.push(c);
            }
            b')' if depth == 0 => return (out, i),
            b')' => {
                depth -= 1;
                out.push(c);
            }
            c => out.push(c),
        }
    }
    (out, i)
}

/// The bfchar and bfrange mappings of a CMap.
fn parse(s: &[u8]) -> Map {
    let toks = tokenize(s);
    let mut map = Map::new();
    let mut i = 0;
    while i < toks.len() && map.len() < MAX_ENTRIES {
        let Tok::Word(w) = &toks[i] else {
            i += 1;
            continue;
        };
        i += 1;
        match w.as_slice() {
            b"beginbfchar" => {
                while i < toks.len() && toks[i] != Tok::Word(b"endbfchar".to_vec()) {
                    if let (Tok::Str(src), Some(Tok::Str(dst))) = (&toks[i], toks.get(i + 1)) {
                        insert(&mut map, src, dst);
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b"beginbfrange" => {
                while i < toks.len() && toks[i] != Tok::Word(b"endbfrange".to_vec()) {
                    let (Tok::Str(lo), Some(Tok::Str(hi))) = (&toks[i], toks.get(i + 1)) else {
                        i += 1;
                        continue;
                    };
                    i += 2;
                    let (Some(lo_code), Some(hi_code)) = (code(lo), code(hi)) else {
                        continue;
                    };
                    match toks.get(i) {
                        Some(Tok::Str(dst)) => {
                            i += 1;
                            range(&mut map, lo.len(), lo_code, hi_code, dst);
                        }
                        Some(Tok::Open) => {
                            i += 1;
                            let mut c = lo_code;
                            while let Some(Tok::Str(dst)) = toks.get(i) {
                                if c <= hi_code && map.len() < MAX_ENTRIES {
                                    insert_code(&mut map, c, lo.len(), dst);
                                }
                                c = c.saturating_add(1);
                                i += 1;
                            }
                            if toks.get(i) == Some(&Tok::Close) {
                                i += 1;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    map
}

/// A source code: 1 to 4 bytes, big-endian.
fn code(bytes: &[u8]) -> Option<u32> {
    (1..=4)
        .contains(&bytes.len())
        .then(|| bytes.iter().fold(0u32, |a, &b| a << 8 | u32::from(b)))
}

/// UTF-16BE text, when it is valid and not too long.
fn utf16(bytes: &[u8]) -> Option<Vec<u16>> {
    if bytes.is_empty() || bytes.len() % 2 == 1 || bytes.len() > 2 * MAX_TARGET_UNITS {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    char::decode_utf16(units.iter().copied())
        .all(|c| c.is_ok())
        .then_some(units)
}

fn insert(map: &mut Map, src: &[u8], dst: &[u8]) {
    if let Some(c) = code(src) {
        insert_code(map, c, src.len(), dst);
    }
}

fn insert_code(map: &mut Map, code: u32, len: usize, dst: &[u8]) {
    if let Some(units) = utf16(dst) {
        map.insert(code, (len, units));
    }
}

/// `lo..=hi` → `dst`, `dst` + 1, ...: the last UTF-16 unit counts up (a surrogate pair as a
/// whole); the range ends early where that would leave valid text.
fn range(map: &mut Map, len: usize, lo: u32, hi: u32, dst: &[u8]) {
    let Some(units) = utf16(dst) else { return };
    let pair = units.len() >= 2
        && (0xD800..0xDC00).contains(&units[units.len() - 2])
        && (0xDC00..0xE000).contains(&units[units.len() - 1]);
    let keep = units.len() - if pair { 2 } else { 1 };
    let first = if pair {
        char::decode_utf16(units[keep..].iter().copied())
            .next()
            .and_then(Result::ok)
            .map_or(0, u32::from)
    } else {
        u32::from(units[keep])
    };
    for (n, c) in (lo..=hi).enumerate() {
        if map.len() >= MAX_ENTRIES {
            return;
        }
        let Some(ch) = first.checked_add(n as u32).and_then(char::from_u32) else {
            return;
        };
        if !pair && u32::from(ch) > 0xFFFF {
            return;
        }
        let mut text = units[..keep].to_vec();
        let mut buf = [0u16; 2];
        text.extend_from_slice(ch.encode_utf16(&mut buf));
        map.insert(c, (len, text));
    }
}

/// A CMap pdf-extract reads exactly: `beginbfchar` lists of hex codes and UTF-16BE text.
fn write(map: &Map) -> Vec<u8> {
    use std::fmt::Write;
    let mut s = String::from("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n");
    let entries: Vec<_> = map.iter().collect();
    for chunk in entries.chunks(100) {
        let _ = writeln!(s, "{} beginbfchar", chunk.len());
        for (code, (len, units)) in chunk {
            let _ = write!(s, "<{:0w$X}> <", code, w = 2 * len);
            for u in units {
                let _ = write!(s, "{u:04X}");
            }
            s.push_str(">\n");
        }
        s.push_str("endbfchar\n");
    }
    s.push_str("endcmap\nend\nend\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(map: &Map, code: u32) -> Option<String> {
        map.get(&code).map(|(_, u)| String::from_utf16(u).unwrap())
    }

    #[test]
    fn mappings_after_a_name_with_spaces_are_kept() {
        let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
            /CMapName /-usr-share-fonts-Jameel Noori Nastaleeq.ttf,000-UTF16 def\n\
            1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
            2 beginbfchar <00E4> <0627> <000B> <0028> endbfchar\n\
            2 beginbfrange <0013> <0015> <0030> <0020> <0021> [<0066006C> <D835DC00>] endbfrange\n\
            endcmap";
        let map = parse(cmap);
        assert_eq!(text(&map, 0xE4).as_deref(), Some("\u{627}"));
        assert_eq!(text(&map, 0x0B).as_deref(), Some("("));
        assert_eq!(text(&map, 0x13).as_deref(), Some("0"));
        assert_eq!(text(&map, 0x15).as_deref(), Some("2"));
        assert_eq!(text(&map, 0x20).as_deref(), Some("fl"));
        assert_eq!(text(&map, 0x21).as_deref(), Some("\u{1D400}"));
        assert_eq!(map.len(), 7);
    }

    #[test]
    fn bad_targets_are_dropped_and_ranges_stop_at_the_end_of_unicode() {
        let cmap = b"3 beginbfchar <01> <00> <02> <D800> <03> (AB) endbfchar\n\
            1 beginbfrange <10> <1F> <FFFE> endbfrange";
        let map = parse(cmap);
        assert_eq!(text(&map, 1), None);
        assert_eq!(text(&map, 2), None);
        assert_eq!(text(&map, 3).as_deref(), Some("\u{4142}"));
        assert_eq!(text(&map, 0x10).as_deref(), Some("\u{FFFE}"));
        assert_eq!(text(&map, 0x11).as_deref(), Some("\u{FFFF}"));
        assert_eq!(text(&map, 0x12), None);
        // A huge range stops where the text would reach the surrogates.
        let map = parse(b"1 beginbfrange <00000000> <FFFFFFFF> <0041> endbfrange");
        assert_eq!(map.len(), 0xD800 - 0x41);
        assert_eq!(text(&map, 0).as_deref(), Some("A"));
    }

    #[test]
    fn written_cmaps_read_back_the_same() {
        let cmap =
            b"4 beginbfchar <41> <0041> <0102> <00660069> <03> <0033> <04> <D83DDE00> endbfchar";
        let map = parse(cmap);
        assert_eq!(map.len(), 4);
        assert_eq!(parse(&write(&map)), map);
        let written = String::from_utf8(write(&map)).unwrap();
        assert!(written.contains("<0102> <00660069>"), "{written}");
        assert!(written.contains("<41> <0041>"), "{written}");
    }

    #[test]
    fn garbage_gives_an_empty_map() {
        for input in [
            &b""[..],
            b"<<<<>>>>",
            b"(((",
            b"beginbfchar <",
            b"beginbfrange [ ] <01",
        ] {
            assert!(parse(input).is_empty());
        }
    }
}
