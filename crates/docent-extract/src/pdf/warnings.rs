//! pdf-extract's warnings, one line per document. pdf-extract warns (through `log`) once for
//! every glyph name it cannot map to Unicode — hundreds for one PDF with a subset font — and
//! about fonts it reads oddly; the text is extracted anyway. While a PDF is extracted, this
//! module's subscriber stands in front of the thread's own: it counts pdf-extract's warnings
//! and passes everything else through, and [`Tally::log`] then writes one debug line for the
//! document (how many unknown glyph names, in which fonts, and how many other warnings).
//!
//! Nothing is installed unless a pdf-extract warning or the summary would be logged, so the
//! default filter costs nothing. `log` records reach `tracing` through `tracing-log`'s
//! `LogTracer` (installed with the binary's subscriber), which hands each record to the
//! thread's current dispatcher: this one, during extraction.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// pdf-extract's `log` target.
const TARGET: &str = "pdf_extract";
/// At most this many font names are listed in the summary.
const MAX_FONTS: usize = 8;

/// What pdf-extract warned about during one document.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    /// "unknown glyph name" warnings.
    pub unknown_glyphs: u64,
    /// The fonts they named (at most [`MAX_FONTS`]).
    pub fonts: BTreeSet<String>,
    /// Whether they named more fonts than those.
    pub more_fonts: bool,
    /// Every other warning.
    pub other: u64,
    /// The first other warning's message.
    pub first_other: Option<String>,
}

impl Tally {
    /// Logs the tally at debug, once, if pdf-extract warned at all.
    pub fn log(&self) {
        if self.unknown_glyphs == 0 && self.other == 0 {
            return;
        }
        let mut fonts = self.fonts.iter().cloned().collect::<Vec<_>>().join(", ");
        if self.more_fonts {
            fonts.push_str(", …");
        }
        tracing::debug!(
            unknown_glyphs = self.unknown_glyphs,
            fonts = %fonts,
            other_warnings = self.other,
            first_other = self.first_other.as_deref(),
            "pdf-extract warnings for this PDF: glyph names it could not map to Unicode (their \
             characters may be missing from the text), and others"
        );
    }

    fn add(&mut self, message: &str) {
        // pdf-extract: "unknown glyph name '{name}' for font {base_name}".
        if let Some(rest) = message.strip_prefix("unknown glyph name ") {
            self.unknown_glyphs += 1;
            if let Some((_, font)) = rest.rsplit_once(" for font ")
                && !self.fonts.contains(font)
            {
                if self.fonts.len() < MAX_FONTS {
                    self.fonts.insert(font.to_owned());
                } else {
                    self.more_fonts = true;
                }
            }
        } else {
            self.other += 1;
            self.first_other.get_or_insert_with(|| message.to_owned());
        }
    }
}

/// Runs `f` (one PDF's extraction) with pdf-extract's warnings counted instead of logged one
/// by one, and logs the tally.
pub(crate) fn summarized<T>(f: impl FnOnce() -> T) -> T {
    let wanted =
        tracing::enabled!(Level::DEBUG) || tracing::enabled!(target: "pdf_extract", Level::WARN);
    if !wanted {
        return f();
    }
    let (out, tally) = collect(f);
    tally.log();
    out
}

/// Runs `f` with pdf-extract's warnings counted (not passed on) and everything else passed to
/// the thread's current dispatcher.
pub(crate) fn collect<T>(f: impl FnOnce() -> T) -> (T, Tally) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let outer = tracing::dispatcher::get_default(Dispatch::clone);
    let counting = Counting {
        outer,
        tally: tally.clone(),
    };
    let out = tracing::subscriber::with_default(counting, f);
    let tally = tally.lock().map(|t| t.clone()).unwrap_or_default();
    (out, tally)
}

/// The stand-in subscriber: pdf-extract's warnings into the tally, the rest to `outer`.
struct Counting {
    outer: Dispatch,
    tally: Arc<Mutex<Tally>>,
}

/// A `log` record's metadata as `tracing-log` passes it to `enabled` (the record's target).
fn is_pdf_extract_warning(metadata: &Metadata<'_>) -> bool {
    *metadata.level() == Level::WARN
        && (metadata.target() == TARGET || metadata.target().starts_with("pdf_extract::"))
}

/// The `message` and `log.target` fields of a `log` record turned event.
#[derive(Default)]
struct LogFields {
    message: String,
    target: String,
}

impl Visit for LogFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "log.target" => self.target = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "log.target" => self.target = format!("{value:?}"),
            _ => {}
        }
    }
}

impl Subscriber for Counting {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // `log` records share a few callsites per level: ask about each record.
        if metadata.target() == "log" {
            Interest::sometimes()
        } else {
            self.outer.register_callsite(metadata)
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        is_pdf_extract_warning(metadata) || self.outer.enabled(metadata)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.outer.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.outer.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.outer.record_follows_from(span, follows);
    }

    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::WARN && event.metadata().target() == "log" {
            let mut fields = LogFields::default();
            event.record(&mut fields);
            if fields.target == TARGET || fields.target.starts_with("pdf_extract::") {
                if let Ok(mut tally) = self.tally.lock() {
                    tally.add(&fields.message);
                }
                return;
            }
        }
        self.outer.event(event);
    }

    fn enter(&self, span: &Id) {
        self.outer.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.outer.exit(span);
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.outer.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.outer.try_close(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_warnings_are_counted_by_font_and_the_rest_kept_apart() {
        let mut t = Tally::default();
        for _ in 0..3 {
            t.add("unknown glyph name 'g17' for font ABCDEF+Foo");
        }
        t.add("unknown glyph name 'x' for font Bar");
        t.add("no widths and not core font \"Baz\"");
        t.add("Unicode mismatch false a ...");
        assert_eq!(t.unknown_glyphs, 4);
        assert_eq!(
            t.fonts.iter().map(String::as_str).collect::<Vec<_>>(),
            ["ABCDEF+Foo", "Bar"]
        );
        assert!(!t.more_fonts);
        for i in 0..10 {
            t.add(&format!("unknown glyph name 'x' for font F{i}"));
        }
        assert_eq!(t.fonts.len(), MAX_FONTS);
        assert!(t.more_fonts);
        assert_eq!(t.other, 2);
        assert_eq!(
            t.first_other.as_deref(),
            Some("no widths and not core font \"Baz\"")
        );
    }
}
