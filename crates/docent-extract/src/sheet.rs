//! Spreadsheets with calamine: XLSX/XLSM and XLSB through its streaming cell readers (so a
//! sparse sheet with a far-away cell never allocates a dense grid), ODS through its ranges.
//! Each sheet is a page headed by its name; its first non-empty row gives the field names and
//! every later row becomes a [`BlockKind::Record`](crate::BlockKind::Record).
//!
//! The archive is checked and fully inflated under the zip budget first (see [`crate::zipc`]),
//! because calamine inflates entries by itself. Calamine builds every ODS sheet as a dense
//! grid, all at once, so `content.xml` is first scanned as a stream of events with repeats
//! counted, never expanded, and a workbook whose grids would exceed
//! [`Limits::max_sheet_cells`] is refused before calamine sees it ([`ods_grid_check`]).

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
    if format == Format::Ods {
        // Before the scan: an encrypted content.xml is not XML.
        if let Some(manifest) = zip.read_text("META-INF/manifest.xml")?
            && manifest.contains("encryption-data")
        {
            return Err(ExtractError::Encrypted);
        }
        if let Some(content) = zip.read("content.xml")? {
            ods_grid_check(
                &crate::xml::decode(&content),
                limits.max_sheet_cells,
                &limits.cancel,
            )?;
        }
    }
    zip.verify_all()?;
    let mut b = Builder::new(limits);
    crate::odf::core_props(&mut zip, &mut b.meta, "docProps/core.xml", limits)?;
    if format == Format::Ods
        && let Some(meta) = zip.read_text("meta.xml")?
    {
        let _ = crate::odf::dublin_core(&meta, &mut b.meta, limits);
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
            // The row's own cells (ordered by column), not every column of the sheet: a sparse
            // row costs its cells, not the sheet's width.
            let fields: Vec<(String, String)> = row
                .iter()
                .filter(|&(&c, _)| c < ncols)
                .map(|(&c, v)| (name_of(c), v.clone()))
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
    let mut seen = 0u32;
    let mut put = |rows: &mut Rows, (r, c): (u32, u32), value: String| -> bool {
        seen = seen.wrapping_add(1);
        if seen.is_multiple_of(1024) && limits.cancel.is_cancelled() {
            return false;
        }
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
    limits.cancel.check()?;
    Ok(out)
}

/// Where the non-empty cells of an ODS table lie, repeats expanded.
#[derive(Default)]
struct Extent {
    /// First and last row holding a non-empty cell.
    rows: Option<(u64, u64)>,
    /// Last column holding a non-empty cell.
    last_col: Option<u64>,
    /// Non-empty cells.
    cells: u64,
}

impl Extent {
    /// Cells in calamine's grid for the table: its first to last non-empty row, and (rows are
    /// held from column A before the grid is trimmed) column A to the last non-empty column.
    fn area(&self) -> u128 {
        match (self.rows, self.last_col) {
            (Some((first, last)), Some(col)) => {
                u128::from(last - first + 1) * (u128::from(col) + 1)
            }
            _ => 0,
        }
    }

    fn add(&mut self, rows: (u64, u64), last_col: u64, cells: u64) {
        self.rows = Some(match self.rows {
            Some((a, b)) => (a.min(rows.0), b.max(rows.1)),
            None => rows,
        });
        self.last_col = Some(self.last_col.map_or(last_col, |c| c.max(last_col)));
        self.cells = self.cells.saturating_add(cells);
    }
}

/// The attributes of an element as calamine reads them (its own raw parser: the key is all
/// up to `=`, the value is not unescaped), up to the first malformed one, so that the scan
/// never reads a different repeat count than calamine does.
fn raw_attrs<'x>(
    e: &'x quick_xml::events::BytesStart<'_>,
) -> impl Iterator<Item = (&'x str, &'x str)> {
    let mut rest = e.attributes_raw();
    std::iter::from_fn(move || {
        let (key, after) = rest.trim_start().split_once('=')?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|q| matches!(q, '"' | '\''))?;
        let (value, tail) = after[1..].split_once(quote).unwrap_or((&after[1..], ""));
        rest = tail;
        Some((key.trim_end(), value))
    })
}

/// The value of an attribute, by qualified name.
fn attr<'x>(e: &'x quick_xml::events::BytesStart<'_>, name: &str) -> Option<&'x str> {
    raw_attrs(e).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// A `table:number-rows-repeated` / `table:number-columns-repeated` count (at least 1; calamine
/// refuses what does not parse).
fn repeats(e: &quick_xml::events::BytesStart<'_>, name: &str) -> u64 {
    attr(e, name)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1)
}

/// For a cell start: whether it is non-empty, and whether calamine reads its content as its
/// string value (up to the first cell end) rather than skipping to its own end, as calamine's
/// `get_datatype` decides. A value, a formula or a value type under any prefix makes a cell
/// non-empty: counting more cells than calamine keeps is safe, fewer is not.
fn cell_kind(e: &quick_xml::events::BytesStart<'_>) -> (bool, bool) {
    let (mut filled, mut value_set, mut string) = (false, false, false);
    let (mut error, mut empty_string) = (false, false);
    for (key, value) in raw_attrs(e) {
        match key {
            "office:value"
            | "office:string-value"
            | "office:date-value"
            | "office:time-value"
            | "office:boolean-value"
                if !value_set =>
            {
                value_set = true;
                empty_string = key == "office:string-value" && value.is_empty();
            }
            "office:value-type" if !value_set => string = value == "string",
            "calcext:value-type" => error = value == "error",
            _ => {}
        }
        filled |= matches!(
            key.rsplit(':').next().unwrap_or(key),
            "value"
                | "string-value"
                | "date-value"
                | "time-value"
                | "boolean-value"
                | "value-type"
                | "formula"
        );
    }
    let string_content = (!value_set && string) || (error && empty_string);
    (filled || string_content, string_content)
}

/// Scans an ODS `content.xml` as calamine will read it, without expanding anything, and fails
/// with [`ExtractError::TooLarge`] when one sheet's grid, all sheets' grids together or the
/// non-empty cells (repeats counted) exceed `max` cells. A cell is non-empty when it has a
/// value, a value type or a formula, or any content (text, a `text:p`); covered cells take
/// positions like cells. Empty rows and columns repeated any number of times cost nothing
/// unless a non-empty cell follows them.
///
/// Elements are matched by qualified name and cells are skipped the way calamine skips them,
/// so that no markup trick makes calamine see rows or cells this scan did not count. A file
/// that ends inside a table is refused too: calamine would wait for the table's end forever.
fn ods_grid_check(xml: &str, max: u64, cancel: &crate::Cancel) -> Result<(), ExtractError> {
    use quick_xml::events::Event;

    const TABLE: &str = "table:table";
    const ROW: &str = "table:table-row";
    const CELL: &str = "table:table-cell";
    const COVERED: &str = "table:covered-table-cell";
    const ANNOTATION: &str = "office:annotation";

    /// Where the scan is, as calamine's parser would be.
    #[derive(Clone, Copy)]
    enum At {
        Top,
        Table,
        Row,
        /// In a cell read to the end of its own name (`nested` same-name elements open).
        Cell {
            covered: bool,
            nested: u64,
        },
        /// In a cell whose content is its string value: up to the first end of any cell.
        StringCell,
        /// In an annotation inside such a cell.
        Annotation,
    }

    let mut reader = quick_xml::Reader::from_str(xml);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = false;
    config.check_comments = false;
    let mut at = At::Top;
    let mut sheet = String::new();
    let (mut next_row, mut extent) = (0u64, Extent::default());
    let (mut row_repeats, mut next_col, mut row_last_col, mut row_cells) = (1u64, 0u64, None, 0u64);
    let (mut cell_repeats, mut cell_filled) = (1u64, false);
    let (mut total_area, mut total_cells) = (0u128, 0u64);
    let mut events = 0u32;
    loop {
        events = events.wrapping_add(1);
        if events.is_multiple_of(4096) {
            cancel.check()?;
        }
        let event = reader
            .read_event()
            .map_err(|e| ExtractError::failed("malformed ODS content", e))?;
        if matches!(at, At::Cell { .. } | At::StringCell | At::Annotation) {
            match &event {
                Event::Start(_) | Event::CData(_) | Event::GeneralRef(_) => cell_filled = true,
                Event::Text(t) if !t.trim().is_empty() => cell_filled = true,
                _ => {}
            }
        }
        let mut cell_done = false;
        match (at, &event) {
            (At::Top, Event::Eof) => return Ok(()),
            (_, Event::Eof) => {
                return Err(ExtractError::Failed(format!(
                    "the ODS content ends inside sheet {sheet:?}"
                )));
            }
            (At::Top, Event::Start(e)) if e.name().as_ref() == TABLE => {
                // Calamine reads named tables only.
                if let Some(name) = attr(e, "table:name") {
                    sheet = name.to_owned();
                    (next_row, extent) = (0, Extent::default());
                    at = At::Table;
                }
            }
            (At::Table, Event::Start(e)) if e.name().as_ref() == ROW => {
                row_repeats = repeats(e, "table:number-rows-repeated");
                (next_col, row_last_col, row_cells) = (0, None, 0);
                at = At::Row;
            }
            (At::Table, Event::End(e)) if e.name().as_ref() == TABLE => {
                total_area += extent.area();
                total_cells = total_cells.saturating_add(extent.cells);
                at = At::Top;
            }
            (At::Row, Event::Start(e)) if matches!(e.name().as_ref(), CELL | COVERED) => {
                cell_repeats = repeats(e, "table:number-columns-repeated");
                let (filled, string_content) = cell_kind(e);
                cell_filled = filled;
                at = if string_content {
                    At::StringCell
                } else {
                    At::Cell {
                        covered: e.name().as_ref() == COVERED,
                        nested: 0,
                    }
                };
            }
            (At::Row, Event::End(e)) if e.name().as_ref() == ROW => {
                at = At::Table;
                let Some(last_col) = row_last_col else {
                    next_row = next_row.saturating_add(row_repeats);
                    continue;
                };
                let last_row = next_row.saturating_add(row_repeats - 1);
                extent.add(
                    (next_row, last_row),
                    last_col,
                    row_cells.saturating_mul(row_repeats),
                );
                next_row = next_row.saturating_add(row_repeats);
                let area = extent.area();
                if area > u128::from(max) {
                    let (first, last) = extent.rows.unwrap_or_default();
                    let cols = extent.last_col.unwrap_or_default();
                    return Err(ExtractError::TooLarge(format!(
                        "sheet {sheet:?} spans rows {} to {} and columns 1 to {} ({area} cells), \
                         more than the limit of {max} cells",
                        first.saturating_add(1),
                        last.saturating_add(1),
                        cols.saturating_add(1),
                    )));
                }
                if extent.cells > max {
                    return Err(ExtractError::TooLarge(format!(
                        "sheet {sheet:?} has {} non-empty cells, more than the limit of {max}",
                        extent.cells
                    )));
                }
                if total_area + area > u128::from(max)
                    || total_cells.saturating_add(extent.cells) > max
                {
                    return Err(ExtractError::TooLarge(format!(
                        "the sheets up to {sheet:?} span {} cells together, more than the \
                         limit of {max} cells",
                        total_area + area
                    )));
                }
            }
            (At::StringCell, Event::End(e)) if matches!(e.name().as_ref(), CELL | COVERED) => {
                cell_done = true;
            }
            (At::StringCell, Event::Start(e)) if e.name().as_ref() == ANNOTATION => {
                at = At::Annotation;
            }
            (At::Annotation, Event::End(e)) if e.name().as_ref() == ANNOTATION => {
                at = At::StringCell;
            }
            (At::Cell { covered, nested }, Event::Start(e))
                if e.name().as_ref() == if covered { COVERED } else { CELL } =>
            {
                at = At::Cell {
                    covered,
                    nested: nested + 1,
                };
            }
            (At::Cell { covered, nested }, Event::End(e))
                if e.name().as_ref() == if covered { COVERED } else { CELL } =>
            {
                if nested == 0 {
                    cell_done = true;
                } else {
                    at = At::Cell {
                        covered,
                        nested: nested - 1,
                    };
                }
            }
            _ => {}
        }
        if cell_done {
            if cell_filled {
                let last = next_col.saturating_add(cell_repeats - 1);
                row_last_col = Some(row_last_col.map_or(last, |l: u64| l.max(last)));
                row_cells = row_cells.saturating_add(cell_repeats);
            }
            next_col = next_col.saturating_add(cell_repeats);
            at = At::Row;
        }
    }
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
    fn grid_scan_follows_calamine_not_the_nesting() {
        let check = |rows: &str| {
            super::ods_grid_check(
                &format!(r#"<t><table:table table:name="S">{rows}</table:table></t>"#),
                1_000,
                &crate::Cancel::default(),
            )
        };
        let far = r#"<table:table-cell table:number-columns-repeated="5000"/><table:table-cell office:value="1"/>"#;
        assert!(check(&format!("<table:table-row>{far}</table:table-row>")).is_err());
        // Calamine ends a string cell at the first cell end of either kind, and ignores stray
        // end tags between rows: the far cell is still in the row, the rows still in the sheet.
        let hidden = format!(
            r#"<table:table-row><table:table-cell office:value-type="string"><x></table:covered-table-cell>{far}</x></table:table-cell></table:table-row>"#
        );
        assert!(check(&hidden).is_err());
        let stray = format!(r#"</t></table:tab><table:table-row>{far}</table:table-row>"#);
        assert!(check(&stray).is_err());
        // Empty cells repeated far away cost nothing; unnamed tables are not read by calamine.
        let empty = r#"<table:table-row table:number-rows-repeated="1000000"><table:table-cell table:number-columns-repeated="16384"/></table:table-row>"#;
        assert!(
            check(&format!(
                r#"<table:table-row><table:table-cell office:value="1"/></table:table-row>{empty}"#
            ))
            .is_ok()
        );
        assert!(check(r#"</table:table><table:table><table:table-row><table:table-cell table:number-columns-repeated="5000" office:value="1"/></table:table-row></table:table><table:table table:name="T">"#).is_ok());
    }

    #[test]
    fn column_names() {
        assert_eq!(super::column_name(0), "column A");
        assert_eq!(super::column_name(27), "column AB");
    }
}
