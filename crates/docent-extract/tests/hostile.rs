//! Hostile input: zip bombs (declared and lying sizes), deep nesting, PDFs with huge page
//! counts, and truncated or corrupted files of every container type. Each must end quickly in
//! a typed error, never a panic, a hang or an unbounded allocation.

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use docent_extract::{ExtractError, Limits, extract, extract_isolated};
use zip::write::SimpleFileOptions;

const DOCX_TYPES: &str = r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#;
const DOCX_BODY: &str = r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>hello</w:t></w:r></w:p></w:body></w:document>"#;

/// A DOCX whose `word/media/big.bin` holds `big` zero bytes.
fn docx_with_big_entry(big: u64) -> Vec<u8> {
    docx_with_big_part(big, false)
}

/// A DOCX with `big` filler bytes: zeros in `word/media/big.bin`, or spaces at the end of
/// `word/document.xml` (a part the extractor reads).
fn docx_with_big_part(big: u64, in_document: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(big > u32::MAX as u64 / 2);
    zip.start_file("[Content_Types].xml", opts).unwrap();
    zip.write_all(DOCX_TYPES.as_bytes()).unwrap();
    zip.start_file("word/document.xml", opts).unwrap();
    zip.write_all(DOCX_BODY.as_bytes()).unwrap();
    if in_document {
        std::io::copy(&mut std::io::repeat(b' ').take_bytes(big), &mut zip).unwrap();
    } else {
        zip.start_file("word/media/big.bin", opts).unwrap();
        std::io::copy(&mut std::io::repeat(0).take_bytes(big), &mut zip).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

trait TakeBytes: std::io::Read + Sized {
    fn take_bytes(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}
impl<R: std::io::Read> TakeBytes for R {}

/// Rewrites the declared uncompressed size of `name` in the local and central headers.
fn patch_declared_size(zip: &mut [u8], name: &str, size: u32) {
    let n = name.as_bytes();
    for i in 0..zip.len().saturating_sub(46) {
        if zip[i..].starts_with(b"PK\x03\x04") && zip[i + 30..].starts_with(n) {
            zip[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
        }
        if zip[i..].starts_with(b"PK\x01\x02") && zip[i + 46..].starts_with(n) {
            zip[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
        }
    }
}

#[test]
fn zip_bomb_with_gigabytes_declared_is_rejected_before_inflating() {
    let mut bomb = docx_with_big_entry(1024 * 1024);
    patch_declared_size(&mut bomb, "word/media/big.bin", u32::MAX - 1);
    let started = Instant::now();
    let err = extract(&bomb, "bomb.docx", "", Limits::default()).unwrap_err();
    let took = started.elapsed();
    println!(
        "declared zip bomb ({} bytes, 4 GiB declared) rejected in {took:?}: {err}",
        bomb.len()
    );
    assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
    assert!(took < Duration::from_secs(5));
}

#[test]
fn zip_bomb_by_compression_ratio_is_rejected_before_inflating() {
    // 256 MiB of zeros deflate to about 250 KiB: a ratio near 1000:1.
    let bomb = docx_with_big_entry(256 * 1024 * 1024);
    let started = Instant::now();
    let err = extract(&bomb, "bomb.docx", "", Limits::default()).unwrap_err();
    let took = started.elapsed();
    println!(
        "ratio zip bomb ({} bytes, 256 MiB inside) rejected in {took:?}: {err}",
        bomb.len()
    );
    assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
    assert!(err.to_string().contains("ratio"), "{err}");
    assert!(took < Duration::from_secs(5));
}

#[test]
fn zip_entry_that_lies_about_its_size_is_caught_while_inflating() {
    // 64 MiB inside, 2 KiB declared: the ratio check sees nothing wrong.
    let mut bomb = docx_with_big_part(64 * 1024 * 1024, true);
    patch_declared_size(&mut bomb, "word/document.xml", 2048);
    let limits = Limits {
        max_compression_ratio: u64::MAX,
        ..Limits::default()
    };
    let started = Instant::now();
    let err = extract(&bomb, "liar.docx", "", limits.clone()).unwrap_err();
    println!("lying zip entry rejected in {:?}: {err}", started.elapsed());
    assert!(
        matches!(err, ExtractError::TooLarge(_) | ExtractError::Failed(_)),
        "{err:?}"
    );
    // Spreadsheets are inflated by calamine, so every entry is counted first.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("xl/workbook.xml", opts).unwrap();
    zip.write_all(b"<workbook/>").unwrap();
    zip.start_file("xl/worksheets/sheet1.xml", opts).unwrap();
    std::io::copy(
        &mut std::io::repeat(b' ').take_bytes(32 * 1024 * 1024),
        &mut zip,
    )
    .unwrap();
    let mut xlsx = zip.finish().unwrap().into_inner();
    patch_declared_size(&mut xlsx, "xl/worksheets/sheet1.xml", 100);
    let err = extract(&xlsx, "liar.xlsx", "", limits).unwrap_err();
    assert!(
        matches!(err, ExtractError::TooLarge(_) | ExtractError::Failed(_)),
        "{err:?}"
    );
}

#[test]
fn zip_limits_on_entries_and_total_size() {
    let docx = docx_with_big_entry(300_000);
    let err = extract(
        &docx,
        "a.docx",
        "",
        Limits {
            max_uncompressed_bytes: 100_000,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge(_)));
    let err = extract(
        &docx,
        "a.docx",
        "",
        Limits {
            max_zip_entries: 2,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge(_)));
    // Within the limits the same file extracts.
    let out = extract(&docx, "a.docx", "", Limits::default()).unwrap();
    assert_eq!(out.text, "hello");
}

#[test]
fn deeply_nested_html_json_and_xml_do_not_overflow() {
    let html = format!(
        "<html><body>{}x{}</body></html>",
        "<div>".repeat(100_000),
        "</div>".repeat(100_000)
    );
    let started = Instant::now();
    let r = extract_isolated(
        html.into_bytes(),
        "deep.html".into(),
        String::new(),
        Limits::default(),
        Duration::from_secs(30),
    );
    println!(
        "100k nested divs: {:?} in {:?}",
        r.as_ref().map(|o| o.text.len()),
        started.elapsed()
    );
    assert!(matches!(r, Err(ExtractError::TooLarge(_))), "{r:?}");
    // Under the limit, nesting is fine.
    let html = format!(
        "<html><body>{}deep text{}</body></html>",
        "<div>".repeat(300),
        "</div>".repeat(300)
    );
    let out = extract(html.as_bytes(), "ok.html", "", Limits::default()).unwrap();
    assert_eq!(out.text, "deep text");
    let json = format!("{}1{}", "[".repeat(200_000), "]".repeat(200_000));
    assert!(matches!(
        extract(json.as_bytes(), "a.json", "", Limits::default()),
        Err(ExtractError::TooLarge(_))
    ));
    // Deep XML inside a DOCX.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("word/document.xml", opts).unwrap();
    zip.write_all("<w:p>".repeat(100_000).as_bytes()).unwrap();
    let docx = zip.finish().unwrap().into_inner();
    assert!(matches!(
        extract(&docx, "deep.docx", "", Limits::default()),
        Err(ExtractError::TooLarge(_))
    ));
}

/// A PDF with `pages` pages (all sharing one content stream) whose page tree declares
/// `count`.
fn pdf_with_pages(pages: usize, count: usize) -> Vec<u8> {
    let mut objs: Vec<String> = Vec::new();
    objs.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 5 + i)).collect();
    objs.push(format!(
        "<< /Type /Pages /Count {count} /Kids [{}] /MediaBox [0 0 612 792] >>",
        kids.join(" ")
    ));
    let content = "BT /F1 12 Tf 72 400 Td (Hello page) Tj ET";
    objs.push(format!(
        "<< /Length {} >>\nstream\n{content}\nendstream",
        content.len()
    ));
    objs.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into());
    for _ in 0..pages {
        objs.push("<< /Type /Page /Parent 2 0 R /Contents 3 0 R /Resources << /Font << /F1 4 0 R >> >> >>".into());
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[test]
fn pdf_page_limits() {
    let small = pdf_with_pages(3, 3);
    let out = extract(&small, "a.pdf", "", Limits::default()).unwrap();
    assert_eq!(out.meta.page_count, Some(3));
    assert!(out.text.contains("Hello page"));
    // A huge declared count is refused before any page is read.
    let started = Instant::now();
    let err = extract(
        &pdf_with_pages(3, 10_000_000),
        "a.pdf",
        "",
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
    // A count that lies low is caught when the pages are listed.
    let many = pdf_with_pages(6_000, 1);
    let err = extract(&many, "a.pdf", "", Limits::default()).unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
    println!("huge page-count PDFs rejected in {:?}", started.elapsed());
    let err = extract(
        &small,
        "a.pdf",
        "",
        Limits {
            max_pages: 2,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge(_)));
}

/// Truncations and byte flips of every container fixture: typed results only.
#[test]
fn truncated_and_corrupted_containers_give_typed_errors() {
    let fixtures = [
        "headings_list_table_footnote.docx",
        "notes.pptx",
        "people.xlsx",
        "people.ods",
        "sample.odt",
        "book.epub",
        "multi_column.pdf",
        "header_footer.pdf",
        "encrypted_empty_password.pdf",
    ];
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for name in fixtures {
        let bytes = std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for frac in [0.05, 0.3, 0.5, 0.7, 0.95] {
            variants.push(bytes[..(bytes.len() as f64 * frac) as usize].to_vec());
        }
        for seed in 1..=8u64 {
            let mut v = bytes.clone();
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for _ in 0..16 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % v.len();
                v[at] ^= (x >> 32) as u8 | 1;
            }
            variants.push(v);
        }
        for v in variants {
            // `extract` itself, not the isolated runner: a panic here fails the test.
            let r = extract(&v, name, "", Limits::default());
            let code = match &r {
                Ok(_) => "ok",
                Err(e) => e.code(),
            };
            *outcomes.entry(code).or_default() += 1;
        }
    }
    println!("corrupted variants: {outcomes:?}");
    assert!(!outcomes.contains_key("extraction_timeout"));
}

/// An ODS whose only sheet, "Data", holds `rows` (`table:table-row` elements).
fn ods_with_rows(rows: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    zip.start_file("META-INF/manifest.xml", opts).unwrap();
    zip.write_all(
        br#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#,
    )
    .unwrap();
    zip.start_file("content.xml", opts).unwrap();
    write!(
        zip,
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Data">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
    )
    .unwrap();
    zip.finish().unwrap().into_inner()
}

/// A row of string cells.
fn ods_row(cells: &[&str]) -> String {
    let cells: String = cells
        .iter()
        .map(|c| format!(r#"<table:table-cell office:value-type="string"><text:p>{c}</text:p></table:table-cell>"#))
        .collect();
    format!("<table:table-row>{cells}</table:table-row>")
}

/// Extracts with a timing printed, asserting it stays well under a second.
fn extract_ods_quickly(what: &str, ods: &[u8]) -> Result<docent_extract::Extracted, ExtractError> {
    let started = Instant::now();
    let r = extract(ods, "hostile.ods", "", Limits::default());
    let took = started.elapsed();
    println!(
        "{what} ({} bytes): {:?} in {took:?}",
        ods.len(),
        r.as_ref().map(|o| o.text.len())
    );
    assert!(took < Duration::from_millis(500), "{what} took {took:?}");
    r
}

#[test]
fn ods_far_away_cell_is_refused_before_calamine_builds_a_grid() {
    // One cell at row 1,000,002, column 16,001: a 16-billion-cell dense grid.
    let rows = format!(
        r#"{}<table:table-row table:number-rows-repeated="1000000"><table:table-cell/></table:table-row><table:table-row><table:table-cell table:number-columns-repeated="16000"/><table:table-cell office:value-type="float" office:value="1"/></table:table-row>"#,
        ods_row(&["a"])
    );
    let err = extract_ods_quickly("far-away ODS cell", &ods_with_rows(&rows)).unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
    assert_eq!(err.code(), "payload_too_large");
    assert!(err.to_string().contains("sheet \"Data\""), "{err}");
    // A value without a value type, a formula alone and a covered cell count as well.
    for cell in [
        r#"<table:table-cell office:value="1"/>"#,
        r#"<table:table-cell table:formula="of:=1"/>"#,
        r#"<table:covered-table-cell office:value-type="string"><text:p>x</text:p></table:covered-table-cell>"#,
    ] {
        let rows = format!(
            r#"<table:table-row><table:table-cell table:number-columns-repeated="16000"/>{cell}</table:table-row>"#
        );
        let rows = format!(
            r#"{rows}<table:table-row table:number-rows-repeated="1000"><table:table-cell/></table:table-row>{rows}"#
        );
        let err = extract_ods_quickly(cell, &ods_with_rows(&rows)).unwrap_err();
        assert!(matches!(err, ExtractError::TooLarge(_)), "{cell}: {err:?}");
    }
}

#[test]
fn ods_non_empty_row_repeated_millions_of_times_is_refused() {
    let rows = format!(
        r#"{}<table:table-row table:number-rows-repeated="10000000"><table:table-cell office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>"#,
        ods_row(&["name"])
    );
    let err = extract_ods_quickly("row repeated 10M times", &ods_with_rows(&rows)).unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
    assert!(err.to_string().contains("10000001"), "{err}");
    // The limit is configurable: a smaller one refuses a modest repeat.
    let rows = format!(
        r#"{}<table:table-row table:number-rows-repeated="100"><table:table-cell office:value="1"/></table:table-row>"#,
        ods_row(&["n"])
    );
    let ods = ods_with_rows(&rows);
    let limits = Limits {
        max_sheet_cells: 50,
        ..Limits::default()
    };
    let err = extract(&ods, "a.ods", "", limits).unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
    let out = extract(&ods, "a.ods", "", Limits::default()).unwrap();
    assert_eq!(out.text.matches("n: 1").count(), 100);
}

#[test]
fn ods_with_huge_empty_repeats_still_extracts() {
    // What LibreOffice writes: the data, then the rest of the sheet as repeated empty cells.
    let empty_cols = r#"<table:table-cell table:number-columns-repeated="16000"/>"#;
    let rows = format!(
        r#"{}{}{}<table:table-row table:number-rows-repeated="1048553">{empty_cols}</table:table-row>"#,
        ods_row(&["Name", "City"]).replace(
            "</table:table-row>",
            &format!("{empty_cols}</table:table-row>")
        ),
        ods_row(&["Ann", "Paris"]).replace(
            "</table:table-row>",
            &format!("{empty_cols}</table:table-row>")
        ),
        ods_row(&["Bob", "Oslo"]).replace(
            "</table:table-row>",
            &format!("{empty_cols}</table:table-row>")
        ),
    );
    let out =
        extract_ods_quickly("LibreOffice-style empty repeats", &ods_with_rows(&rows)).unwrap();
    assert_eq!(
        out.text,
        "Data\n\nName: Ann\nCity: Paris\n\nName: Bob\nCity: Oslo"
    );
}

#[test]
fn ods_content_ending_inside_a_sheet_is_refused() {
    // Calamine would wait for the table's end forever.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("mimetype", opts).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    zip.start_file("META-INF/manifest.xml", opts).unwrap();
    zip.write_all(b"<manifest:manifest/>").unwrap();
    zip.start_file("content.xml", opts).unwrap();
    zip.write_all(br#"<office:document-content><table:table table:name="Cut"><table:table-row><table:table-cell office:value="1"/></table:table-row>"#)
        .unwrap();
    let ods = zip.finish().unwrap().into_inner();
    let err = extract_isolated(
        ods,
        "cut.ods".into(),
        String::new(),
        Limits::default(),
        Duration::from_secs(10),
    )
    .unwrap_err();
    assert_eq!(err.code(), "extraction_failed", "{err:?}");
}
