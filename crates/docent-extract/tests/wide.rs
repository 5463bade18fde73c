//! Wide and numerous records (issue 21, C1 and M6): a row of a million columns, and wide
//! XLSX/ODS/JSONL records, are refused or capped quickly with a typed error instead of
//! building gigabytes of fields.

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use docent_extract::{BlockKind, ExtractError, Extracted, Limits, extract};
use zip::write::SimpleFileOptions;

/// The issue's file: one header and one row of `n` columns.
fn wide_csv(n: usize) -> Vec<u8> {
    let header: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let row = vec!["x"; n];
    format!("{}\n{}\n", header.join(","), row.join(",")).into_bytes()
}

/// A JSON Lines file of one object with `n` string fields.
fn wide_jsonl(n: usize) -> Vec<u8> {
    let fields: Vec<String> = (0..n).map(|i| format!("\"c{i}\":\"x\"")).collect();
    format!("{{{}}}\n", fields.join(",")).into_bytes()
}

/// Column letters of a 0-based column.
fn col(mut c: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (c % 26) as u8);
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

/// A minimal XLSX whose one sheet holds `rows` of inline-string cells.
fn xlsx(rows: &[Vec<String>]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut put = |name: &str, body: &str| {
        zip.start_file(name, opts).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    };
    put(
        "[Content_Types].xml",
        r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#,
    );
    put(
        "_rels/.rels",
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
    );
    put(
        "xl/workbook.xml",
        r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
    );
    put(
        "xl/_rels/workbook.xml.rels",
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#,
    );
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, v) in row.iter().enumerate() {
            sheet.push_str(&format!(
                r#"<c r="{}{}" t="inlineStr"><is><t>{v}</t></is></c>"#,
                col(c),
                r + 1
            ));
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    put("xl/worksheets/sheet1.xml", &sheet);
    zip.finish().unwrap().into_inner()
}

/// A minimal ODS whose one sheet holds `rows` of string cells.
fn ods(rows: &[Vec<String>]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    zip.start_file("META-INF/manifest.xml", opts).unwrap();
    zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#).unwrap();
    let mut body = String::new();
    for row in rows {
        body.push_str("<table:table-row>");
        for v in row {
            body.push_str(&format!(
                r#"<table:table-cell office:value-type="string"><text:p>{v}</text:p></table:table-cell>"#
            ));
        }
        body.push_str("</table:table-row>");
    }
    zip.start_file("content.xml", opts).unwrap();
    write!(
        zip,
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Data">{body}</table:table></office:spreadsheet></office:body></office:document-content>"#
    )
    .unwrap();
    zip.finish().unwrap().into_inner()
}

/// A header row and one data row, `n` columns each.
fn wide_rows(n: usize) -> Vec<Vec<String>> {
    vec![
        (0..n).map(|i| format!("c{i}")).collect(),
        (0..n).map(|_| "x".to_owned()).collect(),
    ]
}

fn timed(what: &str, bytes: &[u8], name: &str, limits: Limits) -> Result<Extracted, ExtractError> {
    let started = Instant::now();
    let r = extract(bytes, name, "", limits);
    let took = started.elapsed();
    println!(
        "{what} ({} bytes): {:?} in {took:?}",
        bytes.len(),
        r.as_ref().map(|o| o.blocks.len())
    );
    assert!(took < Duration::from_secs(20), "{what} took {took:?}");
    r
}

fn record_fields(out: &Extracted) -> Vec<usize> {
    out.blocks
        .iter()
        .filter_map(|b| match &b.kind {
            BlockKind::Record { fields } => Some(fields.len()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_million_column_csv_is_refused_as_a_record_too_large() {
    let csv = wide_csv(1_000_000);
    assert!(csv.len() > 9_000_000);
    let err = timed("1M-column CSV", &csv, "wide.csv", Limits::default()).unwrap_err();
    assert!(matches!(err, ExtractError::RecordTooLarge(_)), "{err:?}");
    assert_eq!(err.code(), "record_too_large");
    assert!(err.to_string().contains("1000000 fields"), "{err}");
}

#[test]
fn wide_jsonl_xlsx_and_ods_records_are_refused_past_the_field_limit() {
    let limits = || Limits {
        max_record_fields: 500,
        ..Limits::default()
    };
    let err = timed(
        "100k-field JSONL",
        &wide_jsonl(100_000),
        "wide.jsonl",
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ExtractError::RecordTooLarge(_)), "{err:?}");
    // Spreadsheets read at most 1,000 columns; a lower field limit still refuses them.
    let err = timed("wide XLSX", &xlsx(&wide_rows(800)), "wide.xlsx", limits()).unwrap_err();
    assert!(matches!(err, ExtractError::RecordTooLarge(_)), "{err:?}");
    let err = timed("wide ODS", &ods(&wide_rows(800)), "wide.ods", limits()).unwrap_err();
    assert!(matches!(err, ExtractError::RecordTooLarge(_)), "{err:?}");
    let err = timed("wide JSONL", &wide_jsonl(800), "wide.jsonl", limits()).unwrap_err();
    assert!(matches!(err, ExtractError::RecordTooLarge(_)), "{err:?}");
    // Under the limit they are records with every field.
    for (what, bytes, name) in [
        ("XLSX", xlsx(&wide_rows(400)), "ok.xlsx"),
        ("ODS", ods(&wide_rows(400)), "ok.ods"),
        ("JSONL", wide_jsonl(400), "ok.jsonl"),
        ("CSV", wide_csv(400), "ok.csv"),
    ] {
        let out = timed(what, &bytes, name, limits()).unwrap();
        assert_eq!(record_fields(&out), vec![400], "{what}");
    }
}

#[test]
fn too_many_rows_are_refused_as_a_document_too_large() {
    let mut csv = String::from("n,v\n");
    for i in 0..1_000 {
        csv.push_str(&format!("{i},x\n"));
    }
    let limits = |max_records| Limits {
        max_records,
        ..Limits::default()
    };
    let out = timed("1000 rows", csv.as_bytes(), "rows.csv", limits(1_000)).unwrap();
    assert_eq!(record_fields(&out).len(), 1_000);
    let err = timed("1000 rows", csv.as_bytes(), "rows.csv", limits(999)).unwrap_err();
    assert!(matches!(err, ExtractError::DocumentTooLarge(_)), "{err:?}");
    assert_eq!(err.code(), "document_too_large");
}

#[test]
fn sparse_spreadsheet_rows_cost_their_cells_not_the_sheet_width() {
    // One far header cell makes the sheet 1,000 columns wide; each row has one cell.
    let mut rows = vec![(0..1_000).map(|i| format!("h{i}")).collect::<Vec<_>>()];
    rows.extend((0..200).map(|i| vec![format!("v{i}")]));
    let out = timed(
        "sparse XLSX",
        &xlsx(&rows),
        "sparse.xlsx",
        Limits::default(),
    )
    .unwrap();
    let fields = record_fields(&out);
    assert_eq!(fields.len(), 200);
    assert!(fields.iter().all(|&n| n == 1));
}
