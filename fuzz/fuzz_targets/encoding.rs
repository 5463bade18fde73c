#![no_main]
//! Fuzzes `extract` with txt input: any result is fine, a panic or a hang is not.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = docent_extract::Limits {
        max_output_chars: 1_000_000,
        max_pages: 200,
        ..Default::default()
    };
    let _ = docent_extract::extract(data, "a.txt", "text/plain", limits);
});
