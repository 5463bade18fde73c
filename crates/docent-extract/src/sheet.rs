//! Spreadsheets with calamine: XLSX/XLSM and XLSB through its streaming cell readers (so a
//! sparse sheet with a far-away cell never allocates a dense grid), ODS through its ranges.
//! Each sheet is a page headed by its name; its first non-empty row gives the field names and
//! every later row becomes a [`BlockKind::Record`](crate::BlockKind::Record).
//!
//! The archive is checked and fully inflated under the zip budget first (see [`crate::zipc`]),
//! because calamine inflates entries by itself.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, DataRef, Ods, Reader, Xlsb, Xlsx};

use crate::zipc::Container;
use crate::{BlockKind, Builder, ExtractError, Extracted, Format, Limits, guard};

/// Most rows read from one sheet.
const MAX_ROWS: u32 = 1_000_000;
/// Most columns kept per row.
const MAX_COLS: u32 = 1_000;

type Rows = BTreeMap<u32, BTreeMap<u32, String>>;

pub(crate) fn extract(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    let mut zip = Container::open(bytes, limits)?;
    zip.verify_all()?;
    let mut b = Builder::new(limits);
    crate::odf::core_props(&mut zip, &mut b.meta, "docProps/core.xml", limits)?;
    if format == Format::Ods
        && let Some(meta) = zip.read_text("meta.xml")?
    {
        let _ = crate::odf::dublin_core(&meta, &mut b.meta, limits);
    }
    if format == Format::Ods
        && let Some(manifest) = zip.read_text("META-INF/manifest.xml")?
        && manifest.contains("encryption-data")
    {
        return Err(ExtractError::Encrypted);
    }
    let sheets = guard("spreadsheet", || read_sheets(bytes, format, limits))?;
    if sheets.len() > limits.max_pages as usize {
        return Err(ExtractError::TooLarge(format!(
            "{} sheets, more than the limit of {}",
            sheets.len(),
            limits.max_pages
        )));
    }
    for (i, (name, rows)) in sheets.iter().enumerate() {
        let page = Some(i as u32 + 1);
        if rows.is_empty() {
            continue;
        }
        b.push(BlockKind::Heading { level: 1 }, page, name);
        let mut iter = rows.values();
        let header = iter.next().cloned().unwrap_or_default();
        let ncols = rows
            .values()
            .filter_map(|r| r.keys().next_back())
            .max()
            .map_or(0, |&c| c + 1);
        let name_of = |c: u32| -> String {
            header
                .get(&c)
                .filter(|h| !h.trim().is_empty())
                .cloned()
                .unwrap_or_else(|| column_name(c))
        };
        let mut any_record = false;
        for row in iter {
            let fields: Vec<(String, String)> = (0..ncols)
                .filter_map(|c| row.get(&c).map(|v| (name_of(c), v.clone())))
                .collect();
            any_record |= !fields.is_empty();
            b.push_record(page, fields);
            if b.full() {
                break;
            }
        }
        if !any_record {
            // A sheet with a single row: keep it as a table row.
            let cells: Vec<&str> = header.values().map(String::as_str).collect();
            b.push(BlockKind::TableRow, page, &cells.join(" | "));
        }
        if b.full() {
            break;
        }
    }
    b.meta.page_count = Some(sheets.len() as u32);
    let mime = match format {
        Format::Ods => "application/vnd.oasis.opendocument.spreadsheet",
        Format::Xlsb => "application/vnd.ms-excel.sheet.binary.macroenabled.12",
        _ => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    };
    b.finish(mime)
}

fn column_name(mut c: u32) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (c % 26) as u8);
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    s.reverse();
    format!("column {}", String::from_utf8_lossy(&s))
}

fn read_sheets(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<Vec<(String, Rows)>, ExtractError> {
    let err = |e: &dyn std::fmt::Display| ExtractError::failed("cannot read the spreadsheet", e);
    let mut out = Vec::new();
    let mut cells_left = limits.max_output_chars;
    let mut put = |rows: &mut Rows, (r, c): (u32, u32), value: String| -> bool {
        if r >= MAX_ROWS || c >= MAX_COLS || value.trim().is_empty() {
            return true;
        }
        cells_left = cells_left.saturating_sub(value.len() + 4);
        rows.entry(r).or_default().insert(c, value);
        cells_left > 0
    };
    match format {
        Format::Xlsx => {
            let mut wb: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|e| err(&e))?;
            for name in wb.sheet_names() {
                let mut rows = Rows::new();
                let mut reader = wb.worksheet_cells_reader(&name).map_err(|e| err(&e))?;
                while let Some(cell) = reader.next_cell().map_err(|e| err(&e))? {
                    if !put(&mut rows, cell.get_position(), data_ref(cell.get_value())) {
                        break;
                    }
                }
                out.push((name, rows));
            }
        }
        Format::Xlsb => {
            let mut wb: Xlsb<_> = Xlsb::new(Cursor::new(bytes)).map_err(|e| err(&e))?;
            for name in wb.sheet_names() {
                let mut rows = Rows::new();
                let mut reader = wb.worksheet_cells_reader(&name).map_err(|e| err(&e))?;
                while let Some(cell) = reader.next_cell().map_err(|e| err(&e))? {
                    if !put(&mut rows, cell.get_position(), data_ref(cell.get_value())) {
                        break;
                    }
                }
                out.push((name, rows));
            }
        }
        _ => {
            let mut wb: Ods<_> = Ods::new(Cursor::new(bytes)).map_err(|e| err(&e))?;
            for name in wb.sheet_names() {
                let range = wb.worksheet_range(&name).map_err(|e| err(&e))?;
                let mut rows = Rows::new();
                for (r, c, v) in range.used_cells() {
                    if !put(&mut rows, (r as u32, c as u32), data(v)) {
                        break;
                    }
                }
                out.push((name, rows));
            }
        }
    }
    Ok(out)
}

fn date(dt: &calamine::ExcelDateTime) -> String {
    if dt.is_duration() {
        return dt.as_f64().to_string();
    }
    let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
    if (h, mi, s) == (0, 0, 0) {
        format!("{y:04}-{mo:02}-{d:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }
}

fn data(v: &Data) -> String {
    match v {
        Data::DateTime(dt) => date(dt),
        other => other.to_string(),
    }
}

fn data_ref(v: &DataRef<'_>) -> String {
    match v {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => f.to_string(),
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(dt) => date(dt),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(e) => e.to_string(),
        DataRef::Empty => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_names() {
        assert_eq!(super::column_name(0), "column A");
        assert_eq!(super::column_name(27), "column AB");
    }
}
