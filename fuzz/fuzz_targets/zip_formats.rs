#![no_main]
//! Fuzzes the zip containers (DOCX, PPTX, XLSX, ODS, ODT, EPUB): the first byte picks the
//! file name so each container parser is reached; the rest is the archive.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let names = ["a.docx", "a.pptx", "a.xlsx", "a.ods", "a.odt", "a.epub"];
    let limits = docent_extract::Limits {
        max_output_chars: 1_000_000,
        max_uncompressed_bytes: 64 * 1024 * 1024,
        ..Default::default()
    };
    let _ = docent_extract::extract(bytes, names[pick as usize % names.len()], "", limits);
});
