//! Pages pdf-extract fails on (it panics on many malformed fonts and operators), repaired so
//! that only the failing part is lost.
//!
//! The page's content is decoded into operations and put in a stream of its own. While the
//! page still fails, the first failing operation is found by bisection (running the page with
//! only the first k operations; a failure at one operation fails every longer prefix), and
//! then:
//! - a font that does not load (`Tf`) or cannot show its text (`Tj`, `TJ`) is
//!   replaced in the document by the first stand-in that works: the font with its descendant
//!   font or descriptor rebuilt, then without its font program, odd encoding or widths (its
//!   ToUnicode map kept), and last a font that shows nothing — so at worst that font's text
//!   is skipped and the rest of the page is read;
//! - a form XObject (`Do`) whose own content fails is repaired the same way, else not drawn;
//! - any other failing operation is dropped.
//!
//! Every trial run is guarded and counted against a budget per document (a number of runs
//! and a time), so a hostile file cannot make this take long.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pdf_extract::content::{Content, Operation};
use pdf_extract::{
    Dictionary, Document, MediaBox, Object, ObjectId, OutputDev, OutputError, Stream, Transform,
};

use crate::{ExtractError, guard};

/// Trial runs of a page allowed per document.
const TRIALS_PER_DOCUMENT: usize = 400;
/// Time allowed for repairs per document (a trial run of a huge page is slow).
const TIME_PER_DOCUMENT: Duration = Duration::from_secs(10);
/// Failing operations handled per content stream.
const FIXES_PER_STREAM: usize = 24;
/// Form XObjects inside form XObjects repaired this deep.
const MAX_FORM_DEPTH: usize = 2;

/// Repair state for one document.
pub(super) struct Repair {
    trials: usize,
    started: Instant,
    /// Fonts already replaced by a stand-in.
    replaced: HashSet<ObjectId>,
    /// Forms already repaired (or given up on).
    forms: HashSet<ObjectId>,
}

impl Repair {
    pub(super) fn new() -> Self {
        Self {
            trials: TRIALS_PER_DOCUMENT,
            started: Instant::now(),
            replaced: HashSet::new(),
            forms: HashSet::new(),
        }
    }

    /// Changes page `num` (object `id`) and what it uses until pdf-extract reads it; true
    /// when it then does.
    pub(super) fn page(&mut self, doc: &mut Document, num: u32, id: ObjectId) -> bool {
        if self.trials == 0 {
            return false;
        }
        let ops = match doc.get_page_content(id) {
            Ok(bytes) => decode(&bytes),
            Err(_) => None,
        };
        let Some(ops) = ops else { return false };
        let target = doc.add_object(Stream::new(Dictionary::new(), Vec::new()));
        match doc.get_dictionary_mut(id) {
            Ok(page) => page.set("Contents", Object::Reference(target)),
            Err(_) => return false,
        }
        set_ops(doc, target, &[]);
        if !self.runs(doc, num) {
            // Not the content: a page box pdf-extract cannot read is the one other thing we
            // can mend.
            if let Ok(page) = doc.get_dictionary_mut(id) {
                page.set("MediaBox", vec![0.into(), 0.into(), 612.into(), 792.into()]);
            }
            if !self.runs(doc, num) {
                return false;
            }
        }
        self.stream(doc, num, target, ops, Res::Page(id), 0)
    }

    /// One trial run of the page as the document now stands.
    fn runs(&mut self, doc: &Document, num: u32) -> bool {
        if self.started.elapsed() > TIME_PER_DOCUMENT {
            self.trials = 0;
        }
        if self.trials == 0 {
            return false;
        }
        self.trials -= 1;
        guard("PDF", || {
            pdf_extract::output_doc_page(doc, &mut Discard, num)
                .map_err(|e| ExtractError::failed("PDF", e))
        })
        .is_ok()
    }

    /// Repairs content stream `target` (operations `ops`, resources from `res`) until page
    /// `num` runs; the stream is left holding the repaired operations.
    fn stream(
        &mut self,
        doc: &mut Document,
        num: u32,
        target: ObjectId,
        mut ops: Vec<Operation>,
        res: Res,
        depth: usize,
    ) -> bool {
        // Operations pdf-extract would index or unwrap out of range go without a trial.
        ops.retain(well_formed);
        set_ops(doc, target, &[]);
        if !self.runs(doc, num) {
            // Failing whatever this stream holds: not ours to mend.
            set_ops(doc, target, &ops);
            return false;
        }
        // `ops[..ok]` runs; culprits are found in order, so each search starts there.
        let mut ok = 0;
        for _ in 0..FIXES_PER_STREAM {
            set_ops(doc, target, &ops);
            if self.runs(doc, num) {
                return true;
            }
            // The shortest failing prefix ends with the culprit: gallop from `ok`, then
            // bisect.
            let mut fails = ops.len();
            let mut step = 1;
            while ok + step < fails && self.trials > 0 {
                set_ops(doc, target, &ops[..ok + step]);
                if self.runs(doc, num) {
                    ok += step;
                    step *= 2;
                } else {
                    fails = ok + step;
                }
            }
            while fails - ok > 1 && self.trials > 0 {
                let mid = ok + (fails - ok) / 2;
                set_ops(doc, target, &ops[..mid]);
                if self.runs(doc, num) {
                    ok = mid;
                } else {
                    fails = mid;
                }
            }
            if self.trials == 0 || fails <= ok {
                break;
            }
            let c = fails - 1;
            set_ops(doc, target, &ops[..=c]);
            let op = ops[c].operator.as_str();
            let fixed = match op {
                "Tf" => {
                    let font = ops[c].operands.first().and_then(|n| n.as_name().ok());
                    let font = font.and_then(|n| res.font(doc, n));
                    font.is_some_and(|f| self.font(doc, num, f))
                }
                "Tj" | "TJ" => {
                    let font = current_font(&ops[..c]).and_then(|n| res.font(doc, n));
                    font.is_some_and(|f| self.font(doc, num, f))
                }
                "Do" if depth < MAX_FORM_DEPTH => {
                    let form = ops[c].operands.first().and_then(|n| n.as_name().ok());
                    let form = form.and_then(|n| res.form(doc, n));
                    form.is_some_and(|f| self.form(doc, num, f, res, depth))
                }
                _ => false,
            };
            if !fixed {
                match op {
                    "Tf" | "Tj" | "TJ" => drop_run(&mut ops, c),
                    _ => {
                        ops.remove(c);
                    }
                }
            }
            // What comes before the culprit is unchanged and ran.
            ok = c;
        }
        set_ops(doc, target, &ops);
        self.runs(doc, num)
    }

    /// Replaces font `id` by the first stand-in with which the page (as set up by the caller,
    /// ending at the failing operation) runs.
    fn font(&mut self, doc: &mut Document, num: u32, id: ObjectId) -> bool {
        if !self.replaced.insert(id) {
            return false;
        }
        let Some(original) = doc.objects.get(&id).cloned() else {
            return false;
        };
        let candidates = match &original {
            Object::Dictionary(d) => stand_ins(doc, d),
            _ => vec![blank_font()],
        };
        for c in candidates {
            doc.objects.insert(id, Object::Dictionary(c));
            if self.runs(doc, num) {
                return true;
            }
        }
        doc.objects.insert(id, original);
        false
    }

    /// Repairs form XObject `id`'s content, restoring it when that fails.
    fn form(&mut self, doc: &mut Document, num: u32, id: ObjectId, res: Res, depth: usize) -> bool {
        if !self.forms.insert(id) {
            return false;
        }
        let Some(Object::Stream(original)) = doc.objects.get(&id).cloned() else {
            return false;
        };
        let bytes = original
            .get_plain_content()
            .unwrap_or_else(|_| original.content.clone());
        let Some(ops) = decode(&bytes) else {
            return false;
        };
        let own = original.dict.get(b"Resources").is_ok();
        let res = if own { Res::Stream(id) } else { res };
        if self.stream(doc, num, id, ops, res, depth + 1) {
            return true;
        }
        doc.objects.insert(id, Object::Stream(original));
        false
    }
}

/// Where a content stream's resources are.
#[derive(Clone, Copy)]
enum Res {
    /// A page's own or inherited resources.
    Page(ObjectId),
    /// A form XObject's resources.
    Stream(ObjectId),
}

impl Res {
    fn dict(self, doc: &Document) -> Option<&Dictionary> {
        match self {
            Res::Page(id) => {
                let mut node = doc.get_dictionary(id).ok();
                for _ in 0..64 {
                    let d = node?;
                    if let Ok(r) = d.get(b"Resources") {
                        return deref_dict(doc, r);
                    }
                    node = d
                        .get(b"Parent")
                        .and_then(Object::as_reference)
                        .and_then(|p| doc.get_dictionary(p))
                        .ok();
                }
                None
            }
            Res::Stream(id) => {
                let s = doc.get_object(id).and_then(Object::as_stream).ok()?;
                deref_dict(doc, s.dict.get(b"Resources").ok()?)
            }
        }
    }

    /// The font named `name`, when it is an indirect object (only those can be replaced).
    fn font(self, doc: &Document, name: &[u8]) -> Option<ObjectId> {
        let fonts = deref_dict(doc, self.dict(doc)?.get(b"Font").ok()?)?;
        fonts.get(name).and_then(Object::as_reference).ok()
    }

    /// The form XObject named `name`.
    fn form(self, doc: &Document, name: &[u8]) -> Option<ObjectId> {
        let xobjects = deref_dict(doc, self.dict(doc)?.get(b"XObject").ok()?)?;
        let id = xobjects.get(name).and_then(Object::as_reference).ok()?;
        let s = doc.get_object(id).and_then(Object::as_stream).ok()?;
        let form =
            s.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Form".as_slice());
        form.then_some(id)
    }
}

fn deref_dict<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Dictionary> {
    match o {
        Object::Dictionary(d) => Some(d),
        Object::Reference(id) => doc.get_dictionary(*id).ok(),
        _ => None,
    }
}

fn deref<'a>(doc: &'a Document, o: &'a Object) -> &'a Object {
    match o {
        Object::Reference(id) => doc.get_object(*id).unwrap_or(o),
        o => o,
    }
}

fn decode(bytes: &[u8]) -> Option<Vec<Operation>> {
    guard("PDF", || {
        Content::decode(bytes)
            .map(|c| c.operations)
            .map_err(|e| ExtractError::failed("PDF", e))
    })
    .ok()
}

fn set_ops(doc: &mut Document, target: ObjectId, ops: &[Operation]) {
    let bytes = Content { operations: ops }.encode().unwrap_or_default();
    if let Ok(Object::Stream(s)) = doc.get_object_mut(target) {
        s.set_plain_content(bytes);
    }
}

/// Whether pdf-extract can take an operation's operands (it indexes them and unwraps their
/// types without checking).
fn well_formed(op: &Operation) -> bool {
    let num = |i: usize| {
        op.operands
            .get(i)
            .is_some_and(|o| matches!(o, Object::Integer(_) | Object::Real(_)))
    };
    let nums = |k: usize| (0..k).all(num);
    let name = |i: usize| op.operands.get(i).is_some_and(|o| o.as_name().is_ok());
    match op.operator.as_str() {
        "cm" | "Tm" => op.operands.len() == 6 && nums(6),
        "c" => nums(6),
        "v" | "y" | "re" => nums(4),
        "Td" | "TD" | "m" | "l" => nums(2),
        "Tc" | "Tw" | "Tz" | "TL" | "Ts" | "w" => nums(1),
        "Tf" => name(0) && num(1),
        "CS" | "cs" | "gs" | "Do" => name(0),
        "Tj" => matches!(op.operands.first(), Some(Object::String(..))),
        "TJ" => !op.operands.is_empty(),
        _ => true,
    }
}

/// The font name of the last `Tf` before the end of `ops`.
fn current_font(ops: &[Operation]) -> Option<&[u8]> {
    ops.iter()
        .rev()
        .find(|o| o.operator == "Tf")
        .and_then(|o| o.operands.first())
        .and_then(|n| n.as_name().ok())
}

/// Drops the text shown from `at` in the font current there: text operations up to the next
/// `Tf` or the `Q` that restores an earlier font, and `ops[at]` itself when it is the `Tf`.
fn drop_run(ops: &mut Vec<Operation>, at: usize) {
    let mut depth = 0i32;
    let mut i = at;
    if ops[i].operator == "Tf" {
        ops.remove(i);
    }
    while i < ops.len() {
        match ops[i].operator.as_str() {
            "Tf" => break,
            "q" => depth += 1,
            "Q" => {
                depth -= 1;
                if depth < 0 {
                    break;
                }
            }
            "Tj" | "TJ" => {
                ops.remove(i);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

/// Simpler versions of a font, best first; the last one always loads and shows nothing.
fn stand_ins(doc: &Document, font: &Dictionary) -> Vec<Dictionary> {
    let mut out = Vec::new();
    let subtype = font
        .get(b"Subtype")
        .and_then(Object::as_name)
        .unwrap_or(b"");
    if subtype == b"Type0" {
        let descendant = font
            .get(b"DescendantFonts")
            .map(|d| deref(doc, d))
            .and_then(Object::as_array)
            .ok()
            .and_then(|a| a.first())
            .and_then(|d| deref_dict(doc, d));
        let mut d = descendant.cloned().unwrap_or_else(blank_descendant);
        if d.get(b"FontDescriptor")
            .ok()
            .and_then(|f| deref_dict(doc, f))
            .is_none()
        {
            d.set("FontDescriptor", blank_descriptor());
        }
        let encoding_ok = match font.get(b"Encoding").map(|e| deref(doc, e)) {
            Ok(Object::Name(n)) => n == b"Identity-H" || n == b"Identity-V",
            Ok(Object::Stream(_)) => true,
            _ => false,
        };
        let mut a = font.clone();
        a.set("DescendantFonts", vec![Object::Dictionary(d.clone())]);
        if !encoding_ok {
            a.set("Encoding", Object::Name(b"Identity-H".to_vec()));
        }
        out.push(a.clone());
        // Default widths, and the identity encoding (ToUnicode maps codes, and with it codes
        // are CIDs).
        d.remove(b"W");
        d.remove(b"DW");
        a.set("DescendantFonts", vec![Object::Dictionary(d)]);
        a.set("Encoding", Object::Name(b"Identity-H".to_vec()));
        out.push(a);
    } else {
        let mut a = font.clone();
        // No font program to parse, and a simple font's subtype.
        a.remove(b"FontDescriptor");
        a.set("Subtype", Object::Name(b"Type1".to_vec()));
        let encoding_ok = match font.get(b"Encoding").map(|e| deref(doc, e)) {
            Ok(Object::Name(n)) => known_encoding(n),
            Ok(Object::Dictionary(e)) => differences_ok(doc, e),
            _ => false,
        };
        if !encoding_ok {
            a.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
        }
        let widths_ok = (|| {
            let first = deref(doc, font.get(b"FirstChar").ok()?).as_i64().ok()?;
            let last = deref(doc, font.get(b"LastChar").ok()?).as_i64().ok()?;
            let widths = deref(doc, font.get(b"Widths").ok()?).as_array().ok()?;
            Some(last - first + 1 == widths.len() as i64 && first >= 0)
        })()
        .unwrap_or(false);
        if !widths_ok {
            for k in [&b"FirstChar"[..], b"LastChar", b"Widths"] {
                a.remove(k);
            }
        }
        out.push(a);
    }
    out.push(blank_font());
    out
}

fn known_encoding(name: &[u8]) -> bool {
    matches!(
        name,
        b"WinAnsiEncoding" | b"MacRomanEncoding" | b"MacExpertEncoding"
    )
}

/// An encoding dictionary pdf-extract reads without panicking.
fn differences_ok(doc: &Document, e: &Dictionary) -> bool {
    let base_ok = match e.get(b"BaseEncoding").map(|b| deref(doc, b)) {
        Ok(Object::Name(n)) => known_encoding(n),
        Ok(_) => false,
        Err(_) => true,
    };
    let diffs_ok = match e.get(b"Differences").map(|d| deref(doc, d)) {
        Ok(Object::Array(a)) => {
            let mut code = 0i64;
            a.iter().all(|o| match deref(doc, o) {
                Object::Integer(i) => {
                    code = *i;
                    (0..256).contains(i)
                }
                Object::Name(_) => {
                    code += 1;
                    code <= 256
                }
                _ => false,
            })
        }
        Ok(_) => false,
        Err(_) => true,
    };
    base_ok && diffs_ok
}

fn name(s: &str) -> Object {
    Object::Name(s.as_bytes().to_vec())
}

fn blank_descriptor() -> Dictionary {
    let mut d = Dictionary::new();
    d.set("Type", name("FontDescriptor"));
    d.set("FontName", name("DocentBlank"));
    d.set("Flags", 4);
    d
}

fn blank_descendant() -> Dictionary {
    let mut info = Dictionary::new();
    info.set("Registry", Object::string_literal("Adobe"));
    info.set("Ordering", Object::string_literal("Identity"));
    info.set("Supplement", 0);
    let mut d = Dictionary::new();
    d.set("Type", name("Font"));
    d.set("Subtype", name("CIDFontType2"));
    d.set("BaseFont", name("DocentBlank"));
    d.set("CIDSystemInfo", info);
    d.set("FontDescriptor", blank_descriptor());
    d
}

/// A composite font without a ToUnicode map: every glyph decodes to nothing.
fn blank_font() -> Dictionary {
    let mut f = Dictionary::new();
    f.set("Type", name("Font"));
    f.set("Subtype", name("Type0"));
    f.set("BaseFont", name("DocentBlank"));
    f.set("Encoding", name("Identity-H"));
    f.set(
        "DescendantFonts",
        vec![Object::Dictionary(blank_descendant())],
    );
    f
}

/// Output of trial runs: nothing.
struct Discard;

impl OutputDev for Discard {
    fn begin_page(
        &mut self,
        _: u32,
        _: &MediaBox,
        _: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        Ok(())
    }
    fn end_page(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
    fn output_character(
        &mut self,
        _: &Transform,
        _: f64,
        _: f64,
        _: f64,
        _: &str,
    ) -> Result<(), OutputError> {
        Ok(())
    }
    fn begin_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(o: &str) -> Operation {
        Operation::new(o, Vec::new())
    }

    fn names(ops: &[Operation]) -> Vec<&str> {
        ops.iter().map(|o| o.operator.as_str()).collect()
    }

    #[test]
    fn a_dropped_run_ends_at_the_next_font_or_restore() {
        let mut ops: Vec<Operation> = ["q", "Tf", "Tj", "Td", "TJ", "Q", "Tj", "Tf", "Tj"]
            .into_iter()
            .map(op)
            .collect();
        drop_run(&mut ops, 1);
        assert_eq!(names(&ops), ["q", "Td", "Q", "Tj", "Tf", "Tj"]);
        let mut ops: Vec<Operation> = ["Tf", "Tj", "Tj", "Tf", "Tj"].into_iter().map(op).collect();
        drop_run(&mut ops, 2);
        assert_eq!(names(&ops), ["Tf", "Tj", "Tf", "Tj"]);
    }

    #[test]
    fn operations_with_operands_pdf_extract_cannot_take_are_found() {
        let ok = [
            Operation::new(
                "cm",
                vec![1.into(), 0.into(), 0.into(), 1.into(), 0.into(), 0.into()],
            ),
            Operation::new("Tf", vec![name("F1"), 12.5.into()]),
            Operation::new("Tj", vec![Object::string_literal("x")]),
            Operation::new("BT", vec![]),
        ];
        assert!(ok.iter().all(well_formed));
        let bad = [
            Operation::new("cm", vec![1.into(), 0.into(), 0.into(), 1.into(), 0.into()]),
            Operation::new("Tf", vec![12.into(), name("F1")]),
            Operation::new("Tj", vec![42.into()]),
            Operation::new("Td", vec![1.into()]),
            Operation::new("Do", vec![]),
        ];
        assert!(!bad.iter().any(well_formed));
    }

    #[test]
    fn broken_fonts_get_stand_ins_ending_with_a_blank_one() {
        let doc = Document::with_version("1.5");
        let mut emoji = Dictionary::new();
        emoji.set("Subtype", name("Type0"));
        emoji.set("Encoding", name("Identity-H"));
        emoji.set("DescendantFonts", vec![Object::Null]);
        let s = stand_ins(&doc, &emoji);
        assert_eq!(s.len(), 3);
        let d = s[0].get(b"DescendantFonts").unwrap().as_array().unwrap()[0]
            .as_dict()
            .unwrap();
        assert!(d.get(b"FontDescriptor").unwrap().as_dict().is_ok());
        assert_eq!(s[2], blank_font());

        let mut simple = Dictionary::new();
        simple.set("Subtype", name("Type1"));
        simple.set("Encoding", name("StandardEncoding"));
        simple.set("FirstChar", 32);
        simple.set("LastChar", 40);
        simple.set("Widths", vec![Object::Integer(500)]);
        let s = stand_ins(&doc, &simple);
        assert_eq!(
            s[0].get(b"Encoding").unwrap().as_name().unwrap(),
            b"WinAnsiEncoding"
        );
        assert!(s[0].get(b"Widths").is_err());
    }
}
