//! What an extractive answer or summary may quote. A chunk's text is cut into units —
//! sentences, a record's `name: value` lines, other lines of text — and the headings and
//! labels among them are marked: they are the context of the units below them, never quoted
//! as an answer.
//!
//! The chunk's structure decides where it can: the extractor joins blocks with a blank line, a
//! heading block is one of the headings the chunk carries (its heading path), and a record's
//! lines are its fields (the chunk's metadata). The text decides the rest:
//! - a sentence ends at `.`, `!`, `?` or `…` (and any closing quotes or brackets) before a
//!   space — not after a title (`Dr.`), an initial (`J.`) or a dotted abbreviation (`e.g.`,
//!   `p.m.`), nor when the next word starts with a lowercase letter or a digit;
//! - inside a block, a line break ends a unit before a bullet or a `Label: ` line, and after a
//!   short line without a sentence end that stands above more text (a plain-text heading);
//! - a label is such a line, a line ending with `:`, a short line in capitals, or the first
//!   row of a table (cells joined by ` | `).

use docent_domain::Metadata;

/// What a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of the chunk's headings: context, never quoted.
    Heading,
    /// A heading-like line of text (see the module docs): context, never quoted.
    Label,
    /// A record's `name: value` line.
    Field,
    /// A sentence: it ends with `.`, `!`, `?` or `…`.
    Sentence,
    /// Other text: a list item, a table row, a line without a sentence end.
    Fragment,
}

impl Kind {
    /// Whether an answer or summary may quote it.
    pub fn quotable(self) -> bool {
        matches!(self, Kind::Field | Kind::Sentence | Kind::Fragment)
    }
}

/// A unit of a chunk's text with its char span in that text.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Text (trimmed).
    pub text: String,
    /// Start char offset within the chunk text.
    pub start: usize,
    /// End char offset (exclusive).
    pub end: usize,
    /// What it is.
    pub kind: Kind,
}

/// Titles and abbreviations after which a `.` does not end a sentence (lowercase, without
/// the dot). Dotted abbreviations (`e.g.`, `a.m.`) and single letters are recognised by shape.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "mt", "rev", "gen", "col", "capt", "lt",
    "sgt", "hon", "vs", "cf", "al", "approx", "dept", "fig", "no", "nr", "vol",
];

/// Closing quotes and brackets that belong to the sentence they follow.
fn closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»')
}

fn sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// The units of a chunk's text. `heading_path` is the chunk's; `fields` its metadata (a
/// record's fields as strings, empty for other chunks).
pub fn units(text: &str, heading_path: &[String], fields: &Metadata) -> Vec<Unit> {
    let chars: Vec<char> = text.chars().collect();
    let headings: Vec<String> = heading_path.iter().map(|h| squash(h)).collect();
    let names: Vec<&str> = fields
        .iter()
        .filter(|(_, v)| v.is_string())
        .map(|(k, _)| k.as_str())
        .collect();
    let blocks = blocks(&chars);
    let cells = |b: Option<&(usize, usize)>| {
        b.map_or(0, |&(s, e)| {
            let t: String = chars[s..e].iter().collect();
            if t.contains('\n') {
                0
            } else {
                t.matches(" | ").count()
            }
        })
    };
    let mut out = Vec::new();
    for (i, &(s, e)) in blocks.iter().enumerate() {
        let block: String = chars[s..e].iter().collect();
        if headings.contains(&squash(&block)) {
            push(&chars, s, e, Kind::Heading, &mut out);
            continue;
        }
        // A table's first row names its columns.
        let row = cells(Some(&(s, e)));
        if row > 0 && cells(blocks.get(i + 1)) == row && (i == 0 || cells(blocks.get(i - 1)) != row)
        {
            push(&chars, s, e, Kind::Label, &mut out);
            continue;
        }
        if !names.is_empty() && field_lines(&chars, s, e, &names, &mut out) {
            continue;
        }
        for (a, b, label) in text_spans(&chars, s, e) {
            let kind = if label {
                Kind::Label
            } else {
                classify(&chars[a..b])
            };
            push(&chars, a, b, kind, &mut out);
        }
    }
    out
}

/// Whitespace runs as one space.
pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Pushes `chars[s..e]` trimmed, unless it has fewer than two letters or digits.
fn push(chars: &[char], s: usize, e: usize, kind: Kind, out: &mut Vec<Unit>) {
    let mut s = s;
    let mut e = e;
    while s < e && chars[s].is_whitespace() {
        s += 1;
    }
    while e > s && chars[e - 1].is_whitespace() {
        e -= 1;
    }
    if chars[s..e].iter().filter(|c| c.is_alphanumeric()).count() < 2 {
        return;
    }
    out.push(Unit {
        text: chars[s..e].iter().collect(),
        start: s,
        end: e,
        kind,
    });
}

/// Blocks: the spans between blank lines.
fn blocks(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\n' {
            // A blank line: a newline, spaces, another newline.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\n' && chars[j].is_whitespace() {
                j += 1;
            }
            if j < chars.len() && chars[j] == '\n' {
                out.push((start, i));
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                start = j;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out.push((start, chars.len()));
    out.retain(|(s, e)| s < e);
    out
}

/// The lines of a record's block: each `name: value` line of a field (with any lines of its
/// value after it) is a unit; lines before the first field (a piece of a record split
/// mid-value) are a fragment. False when no line starts a field.
fn field_lines(chars: &[char], s: usize, e: usize, names: &[&str], out: &mut Vec<Unit>) -> bool {
    let mut starts = Vec::new();
    let mut line = s;
    while line < e {
        let rest: String = chars[line..e.min(line + 256)].iter().collect();
        if names
            .iter()
            .any(|n| rest.strip_prefix(n).is_some_and(|r| r.starts_with(": ")))
        {
            starts.push(line);
        }
        match chars[line..e].iter().position(|&c| c == '\n') {
            Some(p) => line += p + 1,
            None => break,
        }
    }
    if starts.is_empty() {
        return false;
    }
    push(chars, s, starts[0], Kind::Fragment, out);
    for (i, &a) in starts.iter().enumerate() {
        let b = starts.get(i + 1).copied().unwrap_or(e);
        push(chars, a, b, Kind::Field, out);
    }
    true
}

/// Sentence and line spans of a block of running text, each with whether it is a label line
/// (a short line without a sentence end above more text).
fn text_spans(chars: &[char], s: usize, e: usize) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let mut start = s;
    let mut i = s;
    while i < e {
        let c = chars[i];
        if sentence_end(c) {
            let mut j = i + 1;
            while j < e && closer(chars[j]) {
                j += 1;
            }
            if j < e && chars[j].is_whitespace() && ends_sentence(chars, i, j, e) {
                out.push((start, j, false));
                start = j;
                i = j;
                continue;
            }
        } else if c == '\n' {
            // A label is a whole line: nothing of the unit before the line's start.
            let line_start = chars[s..i]
                .iter()
                .rposition(|&c| c == '\n')
                .map_or(s, |p| s + p + 1);
            let whole =
                start <= line_start && chars[start..line_start].iter().all(|c| c.is_whitespace());
            let next = &chars[i + 1..e];
            let line = &chars[line_start..i];
            let label = whole && !starts_item(line) && first_line_label(line);
            if label || starts_item(next) {
                out.push((start, i, label));
                start = i + 1;
            }
        }
        i += 1;
    }
    out.push((start, e, false));
    out.retain(|(a, b, _)| chars[*a..*b].iter().any(|c| !c.is_whitespace()));
    out
}

/// Whether the `.`, `!`, `?` or `…` at `p` (closers up to `j`, whitespace at `j`) ends a
/// sentence.
fn ends_sentence(chars: &[char], p: usize, j: usize, e: usize) -> bool {
    let next = chars[j..e].iter().find(|c| !c.is_whitespace());
    match next {
        None => return true,
        Some(n) if n.is_lowercase() || n.is_ascii_digit() => return false,
        Some(_) => {}
    }
    if chars[p] != '.' || j > p + 1 {
        return true;
    }
    // The word before the dot, with any dots inside it (`e.g`, `p.m`).
    let mut w = p;
    while w > 0 && (chars[w - 1].is_alphanumeric() || chars[w - 1] == '.') {
        w -= 1;
    }
    let word: String = chars[w..p].iter().collect::<String>().to_lowercase();
    let word = word.trim_start_matches('.');
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    let initial = letters == 1 && word.chars().count() == 1;
    let dotted = word.contains('.') && word.split('.').all(|part| part.chars().count() <= 2);
    !(initial || dotted || ABBREVIATIONS.contains(&word))
}

/// A line that starts a unit of its own: a bullet, a number with `.` or `)`, or `Label: `.
fn starts_item(line: &[char]) -> bool {
    let line: String = line.iter().take(40).collect();
    let t = line.trim_start();
    if ["- ", "* ", "• ", "– "].iter().any(|b| t.starts_with(b)) {
        return true;
    }
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && (t[digits..].starts_with(". ") || t[digits..].starts_with(") ")) {
        return true;
    }
    match t.split_once(": ") {
        Some((name, _)) => {
            !name.is_empty()
                && name.split(' ').count() <= 3
                && name.chars().next().is_some_and(char::is_alphabetic)
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        }
        None => false,
    }
}

/// Whether the first line of a unit, with more lines after it, is a label: short, no
/// sentence end.
fn first_line_label(line: &[char]) -> bool {
    if line.contains(&'\n') {
        return false;
    }
    let text: String = line.iter().collect();
    let t = text.trim();
    let words = t.split_whitespace().count();
    (1..=6).contains(&words)
        && t.chars().count() <= 60
        && !t.ends_with(|c: char| sentence_end(c) || c == ',' || c == ';' || closer(c))
}

/// Sentence, label or fragment, from the text of a unit of running text.
fn classify(chars: &[char]) -> Kind {
    let text: String = chars.iter().collect();
    let t = text.trim().trim_end_matches(closer);
    if t.ends_with(sentence_end) {
        return Kind::Sentence;
    }
    let words = t.split_whitespace().count();
    let letters: Vec<char> = t.chars().filter(|c| c.is_alphabetic()).collect();
    let capitals = letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase());
    if !t.contains('\n') && (t.ends_with(':') || (capitals && words <= 8)) {
        return Kind::Label;
    }
    Kind::Fragment
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts the units of `text` (under `headings`, with record `fields`) are `want`.
    fn check(text: &str, headings: &[&str], fields: &[(&str, &str)], want: &[(&str, Kind)]) {
        let path: Vec<String> = headings.iter().map(|h| (*h).to_owned()).collect();
        let fields: Metadata = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        let chars: Vec<char> = text.chars().collect();
        let got: Vec<(String, Kind)> = units(text, &path, &fields)
            .into_iter()
            .map(|u| {
                let span: String = chars[u.start..u.end].iter().collect();
                assert_eq!(span, u.text, "spans index the text exactly");
                (u.text, u.kind)
            })
            .collect();
        let want: Vec<(String, Kind)> = want.iter().map(|(t, k)| ((*t).to_owned(), *k)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn headings_are_context_and_sentences_are_answers() {
        check(
            "Sick leave\n\nUnlimited, with a doctor note.\n\nWithout a note, up to three days.",
            &["Leave policy", "Sick leave"],
            &[],
            &[
                ("Sick leave", Kind::Heading),
                ("Unlimited, with a doctor note.", Kind::Sentence),
                ("Without a note, up to three days.", Kind::Sentence),
            ],
        );
    }

    #[test]
    fn abbreviations_initials_and_numbers_do_not_end_sentences() {
        check(
            "Dr. Okafor's team found it, e.g. in staging. Open 8 a.m. to 6 p.m. on weekdays. \
             J. Smith paid 3.5 EUR. It costs approx. 5 EUR! Really? Yes.",
            &[],
            &[],
            &[
                (
                    "Dr. Okafor's team found it, e.g. in staging.",
                    Kind::Sentence,
                ),
                ("Open 8 a.m. to 6 p.m. on weekdays.", Kind::Sentence),
                ("J. Smith paid 3.5 EUR.", Kind::Sentence),
                ("It costs approx. 5 EUR!", Kind::Sentence),
                ("Really?", Kind::Sentence),
                ("Yes.", Kind::Sentence),
            ],
        );
    }

    #[test]
    fn plain_text_labels_and_wrapped_lines() {
        check(
            "INCIDENT REPORT\n\nSummary\nThe service was down for 47 minutes. It began\nat \
             14:05 after a failover.\n\nActions:\n- Restore the pool\n- Add alerts",
            &[],
            &[],
            &[
                ("INCIDENT REPORT", Kind::Label),
                ("Summary", Kind::Label),
                ("The service was down for 47 minutes.", Kind::Sentence),
                ("It began\nat 14:05 after a failover.", Kind::Sentence),
                ("Actions:", Kind::Label),
                ("- Restore the pool", Kind::Fragment),
                ("- Add alerts", Kind::Fragment),
            ],
        );
    }

    #[test]
    fn a_tables_first_row_is_a_label_and_its_rows_are_fragments() {
        check(
            "Plan | Price\n\nStarter | free\n\nTeam | 12 EUR per user",
            &["Plans"],
            &[],
            &[
                ("Plan | Price", Kind::Label),
                ("Starter | free", Kind::Fragment),
                ("Team | 12 EUR per user", Kind::Fragment),
            ],
        );
    }

    #[test]
    fn a_records_lines_are_fields() {
        check(
            "From: Alice <a@example.com>\nTo: Bob <b@example.com>\nSubject: Offsite\nin Lyon",
            &[],
            &[
                ("From", "Alice <a@example.com>"),
                ("To", "Bob <b@example.com>"),
                ("Subject", "Offsite\nin Lyon"),
            ],
            &[
                ("From: Alice <a@example.com>", Kind::Field),
                ("To: Bob <b@example.com>", Kind::Field),
                ("Subject: Offsite\nin Lyon", Kind::Field),
            ],
        );
    }
}
