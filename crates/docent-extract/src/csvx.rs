//! CSV/TSV with the csv crate: the delimiter is sniffed (comma, tab, semicolon, pipe) from
//! the first lines, preferring the one the file name suggests; the first row gives the field
//! names and every later row becomes one [`BlockKind::Record`].

use crate::{BlockKind, Builder, ExtractError, Extracted, Limits};

pub(crate) fn extract(
    text: &str,
    hint: Option<u8>,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    let delimiter = sniff_delimiter(text, hint);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut b = Builder::new(limits);
    let mut header: Option<Vec<String>> = None;
    let mut rows = 0usize;
    for record in reader.records() {
        let record = record.map_err(|e| ExtractError::failed("malformed CSV", e))?;
        if b.full() {
            break;
        }
        // Before any cell is copied: a row of a million columns costs nothing more.
        if record.len() > b.max_fields() {
            b.record_too_wide(record.len());
            break;
        }
        let cells: Vec<String> = record.iter().map(|c| c.trim().to_owned()).collect();
        if cells.iter().all(|c| c.is_empty()) {
            continue;
        }
        let Some(names) = header.as_ref() else {
            header = Some(cells);
            continue;
        };
        let fields = cells
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let name = names
                    .get(i)
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .unwrap_or_else(|| format!("column {}", i + 1));
                (name, v)
            })
            .collect();
        b.push_record(None, fields);
        rows += 1;
        if b.full() {
            break;
        }
    }
    if rows == 0
        && let Some(h) = header
    {
        b.push(BlockKind::TableRow, None, &h.join(" | "));
    }
    let mime = if delimiter == b'\t' {
        "text/tab-separated-values"
    } else {
        "text/csv"
    };
    b.finish(mime)
}

/// Picks the delimiter whose per-line count is the same (and non-zero) on most of the first
/// lines; the hinted one wins ties.
fn sniff_delimiter(text: &str, hint: Option<u8>) -> u8 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    let mut best = (hint.unwrap_or(b','), 0usize);
    let mut candidates = vec![b',', b'\t', b';', b'|'];
    if let Some(h) = hint {
        candidates.retain(|&c| c != h);
        candidates.insert(0, h);
    }
    for c in candidates {
        let counts: Vec<usize> = lines.iter().map(|l| count_outside_quotes(l, c)).collect();
        let Some(&first) = counts.first() else {
            continue;
        };
        if first == 0 {
            continue;
        }
        let consistent = counts.iter().filter(|&&n| n == first).count();
        if consistent > best.1 {
            best = (c, consistent);
        }
    }
    best.0
}

fn count_outside_quotes(line: &str, c: u8) -> usize {
    let mut quoted = false;
    let mut n = 0;
    for &b in line.as_bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if b == c && !quoted {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use crate::{BlockKind, Limits, extract};

    #[test]
    fn rows_become_records_with_header_fields() {
        let csv = "name,city\n\"Smith, Ann\",Paris\nBob,\"New\nYork\"\n";
        let out = extract(csv.as_bytes(), "people.csv", "", Limits::default()).unwrap();
        assert_eq!(out.detected_type, "text/csv");
        assert_eq!(out.blocks.len(), 2);
        assert_eq!(
            out.blocks[0].kind,
            BlockKind::Record {
                fields: vec![
                    ("name".into(), "Smith, Ann".into()),
                    ("city".into(), "Paris".into())
                ]
            }
        );
        assert_eq!(
            out.block_text(&out.blocks[0]),
            "name: Smith, Ann\ncity: Paris"
        );
    }

    #[test]
    fn delimiter_is_sniffed() {
        let out = extract(b"a;b;c\n1;2;3\n4;5;6\n", "x.csv", "", Limits::default()).unwrap();
        assert_eq!(
            out.blocks[1].kind,
            BlockKind::Record {
                fields: vec![
                    ("a".into(), "4".into()),
                    ("b".into(), "5".into()),
                    ("c".into(), "6".into())
                ]
            }
        );
        let out = extract(b"a\tb\n1\t2\n", "x.tsv", "", Limits::default()).unwrap();
        assert_eq!(out.detected_type, "text/tab-separated-values");
        assert_eq!(out.block_text(&out.blocks[0]), "a: 1\nb: 2");
    }
}
