//! One test per format over the committed fixtures (made by `scripts/gen-extract-fixtures`).

use docent_extract::{BlockKind, ExtractError, Extracted, Limits, extract};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn run(name: &str) -> Extracted {
    // The declared type is deliberately wrong: sniffing must not trust it.
    extract(
        &fixture(name),
        name,
        "application/octet-stream",
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn kinds_and_texts(out: &Extracted) -> Vec<(BlockKind, String)> {
    out.blocks
        .iter()
        .map(|b| (b.kind.clone(), out.block_text(b).to_owned()))
        .collect()
}

fn check_offsets(out: &Extracted) {
    let chars: Vec<char> = out.text.chars().collect();
    for b in &out.blocks {
        let by_chars: String = chars[b.char_start..b.char_end].iter().collect();
        assert_eq!(by_chars, out.block_text(b));
    }
}

#[test]
fn pdf_two_columns_are_read_column_by_column() {
    let out = run("multi_column.pdf");
    check_offsets(&out);
    assert_eq!(out.detected_type, "application/pdf");
    assert_eq!(out.blocks[0].kind, BlockKind::Heading { level: 1 });
    assert_eq!(out.block_text(&out.blocks[0]), "Two Column Study");
    let last_left = out.text.find("Left paragraph 4.").unwrap();
    let first_right = out.text.find("Right paragraph 1.").unwrap();
    assert!(last_left < first_right, "left column must come first");
    // No line mixes the two columns.
    for b in &out.blocks {
        let t = out.block_text(b);
        assert!(!(t.contains("Alpha") && t.contains("Beta")), "{t}");
    }
    assert!(out.blocks.iter().all(|b| b.page == Some(1)));
    assert_eq!(out.meta.page_count, Some(1));
}

#[test]
fn pdf_running_headers_and_footers_are_dropped() {
    let out = run("header_footer.pdf");
    assert!(!out.text.contains("ACME"), "{}", out.text);
    assert!(!out.text.contains("Page 2 of 4"), "{}", out.text);
    for page in 1..=4u32 {
        let b = out
            .blocks
            .iter()
            .find(|b| out.block_text(b).contains(&format!("topic{page}")))
            .unwrap();
        assert_eq!(b.page, Some(page));
    }
    assert_eq!(out.meta.page_count, Some(4));
}

#[test]
fn pdf_encryption_and_missing_text_layers() {
    let out = run("encrypted_empty_password.pdf");
    assert!(
        out.text
            .contains("only readable once the document is decrypted")
    );
    assert_eq!(out.meta.title.as_deref(), Some("Plain Sample"));
    assert_eq!(out.meta.author.as_deref(), Some("Docent Tests"));
    let err = extract(
        &fixture("password_protected.pdf"),
        "p.pdf",
        "",
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err, ExtractError::Encrypted);
    assert_eq!(err.code(), "document_encrypted");
    let err = extract(&fixture("image_only.pdf"), "i.pdf", "", Limits::default()).unwrap_err();
    assert_eq!(err, ExtractError::NoTextLayer);
    assert_eq!(err.code(), "no_text_layer");
}

#[test]
fn docx_headings_lists_tables_footnotes() {
    let out = run("headings_list_table_footnote.docx");
    check_offsets(&out);
    let blocks = kinds_and_texts(&out);
    let expect = [
        (BlockKind::Heading { level: 1 }, "Project Plan"),
        (
            BlockKind::Paragraph,
            "The plan has three phases and one footnote.",
        ),
        (BlockKind::Heading { level: 2 }, "Phases"),
        (BlockKind::ListItem, "Design the schema"),
        (BlockKind::ListItem, "Build the parser"),
        (BlockKind::ListItem, "Ship the release"),
        (BlockKind::TableRow, "Phase | Weeks"),
        (BlockKind::TableRow, "Design | 2"),
        (BlockKind::TableRow, "Build | 5"),
        (BlockKind::Paragraph, "Closing remarks end.[1]"),
        (
            BlockKind::Paragraph,
            "[1] Footnotes are kept after the body.",
        ),
    ];
    let got: Vec<(BlockKind, &str)> = blocks
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str()))
        .collect();
    assert_eq!(got, expect);
    assert_eq!(out.meta.title.as_deref(), Some("Docx Sample"));
    assert_eq!(out.meta.author.as_deref(), Some("Ada Lovelace"));
}

#[test]
fn pptx_slides_are_pages_with_notes() {
    let out = run("notes.pptx");
    let blocks = kinds_and_texts(&out);
    assert_eq!(
        blocks[0],
        (BlockKind::Heading { level: 1 }, "Quarterly Review".into())
    );
    assert_eq!(out.blocks[0].page, Some(1));
    let notes = out
        .blocks
        .iter()
        .find(|b| out.block_text(b).starts_with("Notes:"))
        .unwrap();
    assert_eq!(out.block_text(notes), "Notes: Mention the new customers.");
    assert_eq!(notes.page, Some(2));
    let results = out
        .blocks
        .iter()
        .position(|b| out.block_text(b) == "Results")
        .unwrap();
    assert!(
        out.block_text(&out.blocks[results + 1])
            .contains("Revenue grew")
    );
    assert!(blocks.contains(&(BlockKind::TableRow, "Region | Sales".into())));
    assert_eq!(out.meta.page_count, Some(3));
    assert_eq!(out.meta.title.as_deref(), Some("Deck Sample"));
}

#[test]
fn xlsx_rows_are_records_named_by_the_header() {
    let out = run("people.xlsx");
    check_offsets(&out);
    assert_eq!(out.blocks[0].kind, BlockKind::Heading { level: 1 });
    assert_eq!(out.block_text(&out.blocks[0]), "People");
    assert_eq!(
        out.blocks[1].kind,
        BlockKind::Record {
            fields: vec![
                ("Name".into(), "Ann".into()),
                ("City".into(), "Paris".into()),
                ("Age".into(), "34".into())
            ]
        }
    );
    assert_eq!(
        out.block_text(&out.blocks[1]),
        "Name: Ann\nCity: Paris\nAge: 34"
    );
    // An empty cell is left out of the record.
    assert_eq!(out.block_text(&out.blocks[3]), "Name: Cy\nAge: 41");
    let second = out
        .blocks
        .iter()
        .find(|b| out.block_text(b).contains("Second sheet row"))
        .unwrap();
    assert_eq!(second.page, Some(2));
    assert_eq!(out.meta.page_count, Some(2));
}

#[test]
fn ods_rows_are_records() {
    let out = run("people.ods");
    assert_eq!(
        out.detected_type,
        "application/vnd.oasis.opendocument.spreadsheet"
    );
    let records: Vec<&str> = out
        .blocks
        .iter()
        .filter(|b| matches!(b.kind, BlockKind::Record { .. }))
        .map(|b| out.block_text(b))
        .collect();
    assert_eq!(
        records,
        vec!["Name: Ann\nCity: Paris", "Name: Bob\nCity: Oslo"]
    );
}

#[test]
fn odt_headings_lists_tables() {
    let out = run("sample.odt");
    let blocks = kinds_and_texts(&out);
    let got: Vec<(BlockKind, &str)> = blocks
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (BlockKind::Heading { level: 1 }, "Odt Heading"),
            (BlockKind::Paragraph, "An OpenDocument paragraph."),
            (BlockKind::ListItem, "first item"),
            (BlockKind::ListItem, "second item"),
            (BlockKind::TableRow, "k | v"),
            (BlockKind::TableRow, "x | 1"),
        ]
    );
    assert_eq!(out.meta.title.as_deref(), Some("Odt Sample"));
}

#[test]
fn epub_chapters_are_pages_in_spine_order() {
    let out = run("book.epub");
    assert_eq!(out.detected_type, "application/epub+zip");
    assert_eq!(out.meta.title.as_deref(), Some("Epub Sample"));
    assert_eq!(out.meta.author.as_deref(), Some("Jane Writer"));
    let first = out.text.find("first chapter begins").unwrap();
    let second = out.text.find("second chapter ends").unwrap();
    assert!(first < second);
    let b = out
        .blocks
        .iter()
        .find(|b| out.block_text(b).contains("second chapter"))
        .unwrap();
    assert!(b.page.unwrap() > 1);
}

#[test]
fn html_with_legacy_charset_meta() {
    let out = run("cp1252_meta.html");
    assert_eq!(out.detected_type, "text/html");
    let blocks = kinds_and_texts(&out);
    let got: Vec<(BlockKind, &str)> = blocks
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (BlockKind::Heading { level: 1 }, "Crème brûlée"),
            (
                BlockKind::Paragraph,
                "Une recette déjà célèbre, très appréciée."
            ),
            (BlockKind::Heading { level: 2 }, "Ingrédients"),
            (BlockKind::ListItem, "Œufs"),
            (BlockKind::ListItem, "Crème"),
            (BlockKind::TableRow, "Étape | Durée"),
            (BlockKind::TableRow, "Cuisson | 40 min"),
        ]
    );
    assert_eq!(out.meta.title.as_deref(), Some("Café page"));
    assert_eq!(out.meta.language.as_deref(), Some("fr"));
}

#[test]
fn legacy_and_utf16_text() {
    assert_eq!(
        run("windows1252.txt").text,
        "Café crème: naïve façade, déjà vu — “quoted” text at 5 €."
    );
    assert_eq!(
        run("shift_jis.txt").text,
        "日本語のテキストです。これはシフトJISで書かれた文章です。"
    );
    assert_eq!(
        run("utf16le_bom.txt").text,
        "UTF-16 text with ümlauts and 漢字."
    );
    assert_eq!(
        run("utf16be_nobom.txt").text,
        "Big-endian text without a byte order mark."
    );
}

#[test]
fn csv_tsv_and_jsonl_records() {
    let out = run("people.csv");
    assert_eq!(
        out.blocks[0].kind,
        BlockKind::Record {
            fields: vec![
                ("name".into(), "Ann".into()),
                ("city".into(), "Paris".into()),
                ("note".into(), "likes \"quotes\", commas".into())
            ]
        }
    );
    assert_eq!(out.blocks.len(), 2);
    let out = run("people.tsv");
    assert_eq!(out.block_text(&out.blocks[1]), "name: Bob\ncity: Oslo");
    let out = run("records.jsonl");
    assert_eq!(
        out.blocks[0].kind,
        BlockKind::Record {
            fields: vec![
                ("title".into(), "First".into()),
                ("body".into(), "Hello world".into()),
                ("meta.lang".into(), "en".into())
            ]
        }
    );
    assert_eq!(out.blocks.len(), 2);
}

#[test]
fn eml_headers_and_body() {
    let out = run("mail.eml");
    assert_eq!(out.detected_type, "message/rfc822");
    assert_eq!(out.blocks[0].kind, BlockKind::Heading { level: 1 });
    assert_eq!(out.block_text(&out.blocks[0]), "Meeting notes");
    let BlockKind::Record { fields } = &out.blocks[1].kind else {
        panic!("headers should be a record");
    };
    assert_eq!(
        fields[0],
        ("From".into(), "Ann Example <ann@example.com>".into())
    );
    assert!(out.text.contains("The meeting moved to Friday."));
    assert_eq!(out.meta.title.as_deref(), Some("Meeting notes"));
}

#[test]
fn unsupported_types_are_named() {
    let err = extract(
        b"{\\rtf1\\ansi Hello}",
        "a.rtf",
        "text/rtf",
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ExtractError::Unsupported {
            detected: "application/rtf".into()
        }
    );
    let mut ole = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
    ole.resize(4096, 0);
    let err = extract(&ole, "a.doc", "", Limits::default()).unwrap_err();
    assert!(matches!(err, ExtractError::Unsupported { .. }), "{err:?}");
    let err = extract(
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00",
        "a.txt",
        "",
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ExtractError::Unsupported {
            detected: "image/gif".into()
        }
    );
}
