//! Right-to-left text back in reading order. A PDF draws glyphs where they appear, and our
//! lines are put together left to right, so a Hebrew or Arabic line comes out backwards. Per
//! line: the base direction is that of most strong characters; runs of one direction are
//! found (neutrals between two runs of one direction join them, others follow the base); an
//! RTL line lists its runs from the right, and right-to-left runs read backwards while numbers
//! and left-to-right runs keep their order. Combining marks need nothing more: shapers emit a
//! right-to-left cluster reversed (mark before its letter), so reading backwards puts them
//! after it.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Ltr,
    Rtl,
    Neutral,
}

fn dir(c: char) -> Dir {
    let u = u32::from(c);
    if c.is_numeric() {
        // Digits (Arabic-Indic ones too) read left to right.
        Dir::Ltr
    } else if matches!(u, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF | 0x10800..=0x10FFF | 0x1E800..=0x1EFFF)
    {
        Dir::Rtl
    } else if c.is_alphabetic() {
        Dir::Ltr
    } else {
        Dir::Neutral
    }
}

/// Whether a line holds right-to-left letters (and so needs [`visual_to_logical`]).
pub(super) fn has_rtl(s: &str) -> bool {
    s.chars().any(|c| dir(c) == Dir::Rtl)
}

/// A line in visual order (left to right as drawn) → reading order.
pub(super) fn visual_to_logical(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let strong: Vec<Dir> = chars.iter().map(|&c| dir(c)).collect();
    let rtl = strong.iter().filter(|&&d| d == Dir::Rtl).count();
    let ltr = strong.iter().filter(|&&d| d == Dir::Ltr).count();
    if rtl == 0 {
        return line.to_owned();
    }
    let base = if rtl >= ltr { Dir::Rtl } else { Dir::Ltr };
    // Resolve neutrals.
    let mut resolved = strong.clone();
    let mut i = 0;
    while i < resolved.len() {
        if resolved[i] != Dir::Neutral {
            i += 1;
            continue;
        }
        let start = i;
        while i < resolved.len() && resolved[i] == Dir::Neutral {
            i += 1;
        }
        let before = start.checked_sub(1).map(|j| resolved[j]);
        let after = resolved.get(i).copied();
        let d = match (before, after) {
            (Some(a), Some(b)) if a == b => a,
            _ => base,
        };
        resolved[start..i].fill(d);
    }
    // Runs of one direction, in visual order.
    let mut runs: Vec<(Dir, Vec<char>)> = Vec::new();
    for (&c, &d) in chars.iter().zip(&resolved) {
        match runs.last_mut() {
            Some((rd, run)) if *rd == d => run.push(c),
            _ => runs.push((d, vec![c])),
        }
    }
    if base == Dir::Rtl {
        runs.reverse();
    }
    let mut out = String::with_capacity(line.len());
    for (d, run) in runs {
        if d == Dir::Rtl {
            out.extend(run.iter().rev());
        } else {
            out.extend(run);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hebrew_and_arabic_lines_read_right_to_left() {
        // As drawn (left to right) → as read.
        assert_eq!(visual_to_logical("םבמבידיבוה בלבלכ"), "כלבלב הובידיבמבם");
        assert_eq!(visual_to_logical("ملاعلا ابحرم"), "مرحبا العالم");
        // Numbers and Latin words inside keep their order; the runs go right to left.
        assert_eq!(visual_to_logical("ملاعلا 2024 ابحرم"), "مرحبا 2024 العالم");
        assert_eq!(visual_to_logical("PDF ملع"), "علم PDF");
        // A left-to-right line with a Hebrew word.
        assert_eq!(
            visual_to_logical("the word םולש means peace"),
            "the word שלום means peace"
        );
        assert_eq!(visual_to_logical("plain text"), "plain text");
    }

    #[test]
    fn marks_drawn_before_their_letter_follow_it() {
        // Shapers emit a right-to-left cluster reversed, mark first: kasra, then alef.
        assert_eq!(
            visual_to_logical("\u{628}\u{650}\u{627}"),
            "\u{627}\u{650}\u{628}"
        );
    }
}
