//! The fake's deterministic chat answers and embedding vectors.
//!
//! # Answer rule
//!
//! 1. With a configured fixed reply, that reply.
//! 2. Otherwise the *sources* are collected from the system and user messages: a source starts
//!    at a line beginning with a marker `[n]` (leading spaces allowed), continues over the
//!    following non-empty lines without a marker, and ends at a blank line. The *question* is
//!    the last user message with its source lines removed.
//!    - With sources: each source is scored by how many distinct question words (lowercase
//!      alphanumeric runs of 3+ characters, common stop words dropped) it contains. The
//!      sources with the best score (up to three, lowest number first) are answered as
//!      `"<first sentence of the source> [n]"`, joined by spaces. When no source scores above
//!      zero the answer is [`NO_ANSWER`].
//!    - Without sources: `"You said: <question>"`.
//! 3. `stop` sequences cut the answer before their first occurrence; `max_tokens` cuts it at a
//!    word boundary (finish reason `length`).
//!
//! # Tokens
//!
//! The fake counts ⌈chars / 4⌉ tokens per text (1 at least for non-empty text), about what
//! OpenAI's tokenizers give for English, and 4 more per chat message.
//!
//! # Vectors
//!
//! Hashed bag of words: each lowercase alphanumeric word adds ±1 (FNV-1a hash picks the slot
//! and the sign) to a vector of the asked dimension, which is then L2-normalised. Texts with no
//! words get the unit vector on the first axis. Same text, same vector; shared words, closer
//! vectors.

/// The answer when sources are given but none matches the question.
pub const NO_ANSWER: &str = "I could not find the answer in the provided sources.";

const STOP_WORDS: &[&str] = &[
    "the", "and", "are", "was", "were", "what", "which", "who", "whom", "whose", "when", "where",
    "why", "how", "does", "did", "for", "with", "that", "this", "these", "those", "from", "has",
    "have", "had", "can", "could", "would", "should", "will", "about", "into", "its", "his", "her",
    "their", "there", "then", "than", "you", "your", "not", "but", "any", "all", "tell",
];

/// Tokens the fake counts for a text: ⌈chars / 4⌉.
pub fn count_tokens(text: &str) -> u32 {
    let chars = text.chars().count();
    chars.div_ceil(4) as u32
}

/// A numbered source found in a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The number in its `[n]` marker.
    pub number: u32,
    /// Its text, lines joined by spaces.
    pub text: String,
}

fn marker(line: &str) -> Option<(u32, &str)> {
    let rest = line.trim_start().strip_prefix('[')?;
    let close = rest.find(']')?;
    let number = rest[..close].parse().ok()?;
    Some((number, rest[close + 1..].trim()))
}

/// The numbered sources in `texts`, first occurrence of each number kept, in order found.
pub fn sources<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for text in texts {
        let mut current: Option<Source> = None;
        for line in text.lines() {
            if let Some((number, rest)) = marker(line) {
                push(&mut out, current.take());
                current = Some(Source {
                    number,
                    text: rest.to_owned(),
                });
            } else if line.trim().is_empty() {
                push(&mut out, current.take());
            } else if let Some(s) = current.as_mut() {
                if !s.text.is_empty() {
                    s.text.push(' ');
                }
                s.text.push_str(line.trim());
            }
        }
        push(&mut out, current.take());
    }
    out
}

fn push(out: &mut Vec<Source>, s: Option<Source>) {
    if let Some(s) = s
        && !out.iter().any(|o| o.number == s.number)
    {
        out.push(s);
    }
}

/// The question: `text` without its source lines (markers and their continuation lines).
pub fn question(text: &str) -> String {
    let mut in_source = false;
    let mut kept = Vec::new();
    for line in text.lines() {
        if marker(line).is_some() {
            in_source = true;
        } else if line.trim().is_empty() {
            in_source = false;
        } else if !in_source {
            kept.push(line.trim());
        }
    }
    kept.join(" ")
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

fn first_sentence(text: &str) -> &str {
    let mut end = text.len();
    let bytes: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, c)) in bytes.iter().enumerate() {
        if matches!(c, '.' | '!' | '?') && bytes.get(i + 1).is_none_or(|(_, n)| n.is_whitespace()) {
            end = at + c.len_utf8();
            break;
        }
    }
    let s = &text[..end];
    if s.chars().count() > 300 {
        let cut = s.char_indices().nth(300).map_or(s.len(), |(i, _)| i);
        &s[..cut]
    } else {
        s
    }
}

/// The answer to a conversation of `(role, content)` messages by the rule in the module docs
/// (before `stop` and `max_tokens` apply).
pub fn answer(messages: &[(&str, &str)], fixed_reply: Option<&str>) -> String {
    if let Some(fixed) = fixed_reply {
        return fixed.to_owned();
    }
    let prompt_texts = messages
        .iter()
        .filter(|(role, _)| matches!(*role, "system" | "user" | "developer"))
        .map(|(_, content)| *content);
    let found = sources(prompt_texts);
    let last_user = messages
        .iter()
        .rev()
        .find(|(role, _)| *role == "user")
        .map_or("", |(_, c)| *c);
    let q = question(last_user);
    if found.is_empty() {
        return format!("You said: {q}");
    }
    let q_words: std::collections::BTreeSet<String> = words(&q)
        .filter(|w| w.chars().count() >= 3 && !STOP_WORDS.contains(&w.as_str()))
        .collect();
    let mut scored: Vec<(usize, &Source)> = found
        .iter()
        .map(|s| {
            let sw: std::collections::HashSet<String> = words(&s.text).collect();
            (q_words.iter().filter(|w| sw.contains(*w)).count(), s)
        })
        .filter(|(score, _)| *score > 0)
        .collect();
    let Some(best) = scored.iter().map(|(score, _)| *score).max() else {
        return NO_ANSWER.to_owned();
    };
    scored.retain(|(score, _)| *score == best);
    scored.sort_by_key(|(_, s)| s.number);
    scored
        .iter()
        .take(3)
        .map(|(_, s)| format!("{} [{}]", first_sentence(&s.text), s.number))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Applies `stop` and `max_tokens`; returns the text and whether `max_tokens` cut it.
pub fn limit(mut reply: String, stop: &[String], max_tokens: Option<u32>) -> (String, bool) {
    if let Some(at) = stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| reply.find(s.as_str()))
        .min()
    {
        reply.truncate(at);
    }
    let Some(max) = max_tokens else {
        return (reply, false);
    };
    if count_tokens(&reply) <= max {
        return (reply, false);
    }
    let max_chars = max as usize * 4;
    let cut = reply
        .char_indices()
        .nth(max_chars)
        .map_or(reply.len(), |(i, _)| i);
    let mut head = reply[..cut].to_owned();
    if let Some(space) = head.rfind(char::is_whitespace)
        && space > 0
    {
        head.truncate(space);
    }
    (head, true)
}

fn fnv1a(word: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in word.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The fake's embedding of `text` in `dimension` dimensions (see the module docs).
pub fn embed(text: &str, dimension: usize) -> Vec<f32> {
    let mut v = vec![0f32; dimension.max(1)];
    for w in words(text) {
        let h = fnv1a(&w);
        let slot = (h % v.len() as u64) as usize;
        v[slot] += if h >> 63 == 1 { -1.0 } else { 1.0 };
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v[0] = 1.0;
    } else {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_matching_sources_with_markers() {
        let user = "Sources:\n[1] Paris is the capital of France. It is large.\n[2] Berlin is in Germany.\n\nWhat is the capital of France?";
        let a = answer(&[("system", "Answer from sources."), ("user", user)], None);
        assert_eq!(a, "Paris is the capital of France. [1]");
        let both = answer(
            &[(
                "user",
                "[1] Cats purr.\n[2] Big cats roar.\n\nDo cats purr or roar?",
            )],
            None,
        );
        assert_eq!(both, "Cats purr. [1] Big cats roar. [2]");
        let none = answer(
            &[("user", "[1] Berlin is in Germany.\n\nWho painted it?")],
            None,
        );
        assert_eq!(none, NO_ANSWER);
        assert_eq!(answer(&[("user", "hello")], None), "You said: hello");
        assert_eq!(answer(&[("user", "hello")], Some("fixed")), "fixed");
    }

    #[test]
    fn sources_span_lines_until_blank() {
        let s = sources(["[2] one\ntwo\n\nthree\n[3] four"]);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].text, "one two");
        assert_eq!(s[1].number, 3);
        assert_eq!(question("[2] one\ntwo\n\nthree\n[3] four"), "three");
    }

    #[test]
    fn limits_cut_at_stop_and_max_tokens() {
        let (t, cut) = limit("alpha beta gamma delta".into(), &["gamma".into()], None);
        assert_eq!((t.as_str(), cut), ("alpha beta ", false));
        let (t, cut) = limit("alpha beta gamma delta".into(), &[], Some(3));
        assert!(cut);
        assert_eq!(t, "alpha beta");
    }

    #[test]
    fn vectors_are_deterministic_and_normalised() {
        let a = embed("hello world", 16);
        assert_eq!(a, embed("Hello, world!", 16));
        let n: f32 = a.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
        assert_eq!(embed("", 4), vec![1.0, 0.0, 0.0, 0.0]);
    }
}
