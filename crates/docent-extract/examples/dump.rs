//! Prints what `extract` makes of a file: `cargo run -p docent-extract --example dump -- FILE
//! [--text]`.

use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: dump FILE [--text]");
        std::process::exit(2);
    };
    let text_only = args.next().as_deref() == Some("--text");
    let bytes = std::fs::read(&path).expect("read file");
    let name = std::path::Path::new(&path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match docent_extract::extract_isolated(
        bytes,
        name,
        String::new(),
        docent_extract::Limits::default(),
        Duration::from_secs(60),
    ) {
        Ok(out) if text_only => println!("{}", out.text),
        Ok(out) => {
            println!("type: {}\nmeta: {:?}", out.detected_type, out.meta);
            for b in &out.blocks {
                println!("--- {:?} page {:?}\n{}", b.kind, b.page, out.block_text(b));
            }
        }
        Err(e) => {
            println!("error {}: {e}", e.code());
            std::process::exit(1);
        }
    }
}
