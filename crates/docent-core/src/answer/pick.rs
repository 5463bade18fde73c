//! Which units of the best hits answer a question. Every quotable unit ([`units`]) of the top
//! hits is a candidate, read in its context: the chunk's innermost heading and the label above
//! it (a table row under its header row, cell by cell; a record's field within its record).
//! A candidate is scored by
//! - how close it is to the question, on its own and read in its context (cosine similarity,
//!   when an embedder is configured);
//! - the question's terms in its own words and, less, in its context's, each weighted by how
//!   rare it is among the candidates (a word every candidate has says little); a term matches
//!   a word it starts (`request` → `requests`), that starts it (`manages` → `manager`) or that
//!   negates it (`limited` → `unlimited`);
//! - small cues: it holds what the question asks for (a name or address for "who", digits for
//!   "when" / "how many"), it opens its section (the first sentence under a heading usually
//!   says what the section is about), a record field whose name the question uses (e-mail
//!   headers with the words questions use for them: "sent" asks for `From`);
//! - and it counts less as a fragment (no sentence end) or as a field whose value the question
//!   already states (`city: Lille` for "who manages the Lille office?" names the record, it
//!   does not answer).

use std::collections::{HashMap, HashSet};

use super::units::{Kind, Unit, units};
use crate::search::{Hit, query_terms, words};

/// Hits whose units are candidates.
const ANSWER_HITS: usize = 5;
/// Candidate units read from the best hits, at most.
const MAX_CANDIDATES: usize = 64;

/// The words questions use for the e-mail headers the extractor writes as record fields.
const FIELD_WORDS: &[(&str, &str)] = &[
    ("from", "sender sent wrote author"),
    ("to", "recipient addressed received"),
    ("cc", "copied"),
    ("bcc", "copied"),
    ("date", "day"),
    ("subject", "about title"),
];

/// Field names that hold a person (what "who" asks for), or a part of such a name.
const PERSON_FIELDS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "author",
    "sender",
    "recipient",
    "owner",
    "manager",
    "contact",
    "assignee",
    "reporter",
    "creator",
    "name",
    "person",
    "employee",
    "customer",
    "user",
];

/// A unit of a hit that may answer the question.
pub(super) struct Candidate<'h> {
    /// Rank of its hit, from 0.
    pub rank: usize,
    pub hit: &'h Hit,
    pub unit: Unit,
    /// The headings, label (and for a field, its record) above it: what it is about.
    pub context: String,
    /// What is embedded to read it in its context.
    pub reading: String,
    /// It is the first quotable unit of its section of the chunk.
    pub lead: bool,
}

/// The quotable units of the best hits, in hit order, each with its context.
pub(super) fn candidates(hits: &[Hit]) -> Vec<Candidate<'_>> {
    let mut out = Vec::new();
    for (rank, hit) in hits.iter().enumerate().take(ANSWER_HITS) {
        let all = units(
            &hit.chunk.text,
            &hit.chunk.heading_path,
            &hit.chunk.metadata,
        );
        let heading = hit.chunk.heading_path.last().map(String::as_str);
        let record: Vec<&str> = all
            .iter()
            .filter(|u| u.kind == Kind::Field)
            .map(|u| u.text.as_str())
            .collect();
        let mut label: Option<&str> = None;
        let mut lead = true;
        for unit in &all {
            if !unit.kind.quotable() {
                label = Some(&unit.text);
                lead = true;
                continue;
            }
            let mut context: Vec<&str> = heading.into_iter().collect();
            if let Some(l) = label
                && !context.contains(&l)
            {
                context.push(l);
            }
            let reading = if unit.kind == Kind::Field {
                context.extend(&record);
                context.join("\n")
            } else if let Some(row) = label.and_then(|l| table_row(l, &unit.text)) {
                heading
                    .into_iter()
                    .chain([row.as_str()])
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                context
                    .iter()
                    .copied()
                    .chain([unit.text.as_str()])
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            out.push(Candidate {
                rank,
                hit,
                unit: unit.clone(),
                context: context.join("\n"),
                reading,
                lead: lead && unit.kind != Kind::Field,
            });
            lead = false;
        }
    }
    out.truncate(MAX_CANDIDATES);
    out
}

/// A table row read under its header row: `name: cell` lines; `None` when `header` is not a
/// header of as many cells.
fn table_row(header: &str, row: &str) -> Option<String> {
    let names: Vec<&str> = header.split(" | ").map(str::trim).collect();
    let cells: Vec<&str> = row.split(" | ").map(str::trim).collect();
    (names.len() > 1 && names.len() == cells.len()).then(|| {
        names
            .iter()
            .zip(&cells)
            .map(|(n, c)| format!("{n}: {c}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// What a question asks for, by its first words: a person, a time or an amount, or anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expects {
    Person,
    Number,
    Any,
}

fn expects(question: &str) -> Expects {
    let lower = question.to_lowercase();
    let first: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(2)
        .collect();
    match first.as_slice() {
        ["who" | "whom" | "whose", ..] => Expects::Person,
        ["when", ..] | ["how", "many" | "much" | "long" | "far" | "old" | "often"] => {
            Expects::Number
        }
        ["what", "time" | "date" | "year" | "day"] => Expects::Number,
        _ => Expects::Any,
    }
}

/// A record field's name and value, when the unit is one.
fn field(unit: &Unit) -> Option<(&str, &str)> {
    (unit.kind == Kind::Field)
        .then(|| unit.text.split_once(": "))
        .flatten()
}

/// Whether a unit holds what the question expects: for a person an address, a field that
/// names a person or two capitalised words in a row (not the unit's first); digits for a time
/// or an amount.
fn holds(unit: &Unit, what: Expects) -> bool {
    match what {
        Expects::Any => false,
        Expects::Number => unit.text.chars().any(|c| c.is_ascii_digit()),
        Expects::Person => match field(unit) {
            Some((name, value)) => {
                let name = name.to_lowercase();
                value.contains('@')
                    || PERSON_FIELDS
                        .iter()
                        .any(|p| name.split_whitespace().any(|w| w == *p))
            }
            None => {
                let words: Vec<&str> = unit.text.split_whitespace().collect();
                unit.text.contains('@')
                    || words.windows(2).skip(1).any(|w| {
                        w.iter().all(|x| {
                            let mut c = x.chars();
                            c.next().is_some_and(char::is_uppercase)
                                && c.next().is_some_and(char::is_lowercase)
                        })
                    })
            }
        },
    }
}

/// Whether question term `term` matches a text's word `word` (both stems, lowercase): the
/// same, one starting the other (the shorter of at least 4 chars), or `word` negating it
/// (`un…`, `non…`).
fn matches(term: &str, word: &str) -> bool {
    if term == word {
        return true;
    }
    let (short, long) = if term.len() <= word.len() {
        (term, word)
    } else {
        (word, term)
    };
    if short.chars().count() >= 4 && long.starts_with(short) {
        return true;
    }
    term.chars().count() >= 4
        && ["un", "non"]
            .iter()
            .any(|p| word.strip_prefix(p).is_some_and(|w| w.starts_with(term)))
}

/// The words of a field's name, with those questions use for it when it is an e-mail header.
fn name_words(name: &str) -> HashSet<String> {
    let mut out = stems(name);
    let lower = name.trim().to_lowercase();
    if let Some((_, more)) = FIELD_WORDS.iter().find(|(n, _)| *n == lower) {
        out.extend(stems(more));
    }
    out
}

fn stems(text: &str) -> HashSet<String> {
    words(text).into_iter().map(|w| w.2).collect()
}

/// The signals of one candidate.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Signals {
    /// Cosine similarity of the question and the unit's text.
    pub own: f32,
    /// Cosine similarity of the question and the unit read in its context.
    pub within: f32,
    /// Weight share of the question's terms in the unit's own words.
    words: f32,
    /// ... in its context's words only.
    context_words: f32,
    /// Share of the question's terms in its words and its context's (unweighted).
    share: f32,
    /// It holds what the question expects.
    expected: bool,
    /// A field whose name the question uses.
    named: bool,
    /// A field whose value the question already states.
    identifies: bool,
}

/// Below this share of the question's terms (with its context), a unit does not answer it,
/// unless it is close in meaning.
const MIN_TERM_SHARE: f32 = 0.5;
/// Below this cosine similarity (on its own or in context) a unit is not close in meaning.
const MIN_COSINE: f32 = 0.35;

/// The signals that need no embedder, for every candidate.
pub(super) fn lexical(question: &str, cands: &[Candidate<'_>]) -> Vec<Signals> {
    let terms = query_terms(question);
    let what = expects(question);
    let own: Vec<HashSet<String>> = cands
        .iter()
        .map(|c| {
            let mut s = stems(&c.unit.text);
            if let Some((name, _)) = field(&c.unit) {
                s.extend(name_words(name));
            }
            s
        })
        .collect();
    let hit = |t: &str, set: &HashSet<String>| set.iter().any(|w| matches(t, w));
    // Inverse frequency among the candidates: ln(1 + n / (1 + df)).
    let n = cands.len() as f32;
    let weight: HashMap<&str, f32> = terms
        .iter()
        .map(|t| {
            let df = own.iter().filter(|s| hit(t, s)).count() as f32;
            (t.as_str(), (1.0 + n / (1.0 + df)).ln())
        })
        .collect();
    let total = weight.values().sum::<f32>().max(1e-6);
    cands
        .iter()
        .zip(&own)
        .map(|(c, own)| {
            let context = stems(&c.context);
            let (mut w, mut cw, mut found) = (0.0, 0.0, 0usize);
            for t in &terms {
                if hit(t, own) {
                    w += weight[t.as_str()];
                    found += 1;
                } else if hit(t, &context) {
                    cw += weight[t.as_str()];
                    found += 1;
                }
            }
            let (named, identifies) = match field(&c.unit) {
                Some((name, value)) => {
                    let name = name_words(name);
                    let value: Vec<String> = words(value).into_iter().map(|w| w.2).collect();
                    let stated = value
                        .iter()
                        .filter(|v| terms.iter().any(|t| matches(t, v)))
                        .count();
                    (
                        terms.iter().any(|t| hit(t, &name)),
                        !value.is_empty() && 2 * stated >= value.len(),
                    )
                }
                None => (false, false),
            };
            Signals {
                words: w / total,
                context_words: cw / total,
                share: found as f32 / terms.len().max(1) as f32,
                expected: holds(&c.unit, what),
                named,
                identifies,
                ..Signals::default()
            }
        })
        .collect()
}

/// How well a candidate answers (0 when it does not); `embedded`: `own` and `within` are set.
pub(super) fn score(c: &Candidate<'_>, s: &Signals, embedded: bool) -> f32 {
    let close = embedded && s.own.max(s.within) >= MIN_COSINE;
    if !close && s.share < MIN_TERM_SHARE {
        return 0.0;
    }
    let mut factor = if c.unit.kind == Kind::Fragment {
        0.9
    } else {
        1.0
    };
    if s.identifies {
        factor *= 0.5;
    }
    let cues = 0.05 * f32::from(u8::from(s.expected))
        + 0.05 * f32::from(u8::from(c.lead))
        + 0.1 * f32::from(u8::from(s.named));
    let relevance = if embedded {
        0.3 * s.own + 0.7 * s.within + 0.1 * s.words + 0.1 * s.context_words
    } else {
        s.words + 0.5 * s.context_words
    };
    factor * (relevance + cues) - 0.01 * c.rank as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_match_inflections_and_negations_only() {
        assert!(matches("request", "requests"));
        assert!(matches("manag", "manager"));
        assert!(matches("limit", "unlimit"));
        assert!(!matches("day", "days"), "short stems match exactly");
        assert!(!matches("limit", "delimit"));
        assert!(!matches("plan", "explanation"));
    }

    #[test]
    fn questions_expect_people_numbers_or_anything() {
        assert_eq!(expects("Who sent the email?"), Expects::Person);
        assert_eq!(expects("How many days off?"), Expects::Number);
        assert_eq!(expects("When is it open?"), Expects::Number);
        assert_eq!(expects("Is sick leave limited?"), Expects::Any);
        let f = |text: &str| Unit {
            text: text.into(),
            start: 0,
            end: text.chars().count(),
            kind: Kind::Field,
        };
        assert!(holds(&f("From: Alice <a@example.com>"), Expects::Person));
        assert!(holds(&f("manager: Jonas Weber"), Expects::Person));
        assert!(!holds(&f("office: Northwind North"), Expects::Person));
    }

    #[test]
    fn table_rows_read_cell_by_cell() {
        assert_eq!(
            table_row("Plan | Price", "Team | 12 EUR").as_deref(),
            Some("Plan: Team\nPrice: 12 EUR")
        );
        assert_eq!(table_row("Plan | Price", "Team | 12 EUR | 1 TB"), None);
    }
}
