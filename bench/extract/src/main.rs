//! Prints MB/s and documents/s of `docent_extract::extract` per detected format over every
//! file of a directory:
//!
//! ```text
//! cd bench/extract && cargo run --release -- ../../../shared/corpora/docs-dev [ROUNDS]
//! ```
//!
//! Each file is extracted ROUNDS times (default 3) on one thread; failures (typed errors)
//! count as documents too, since rejecting a file is work as well.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use docent_extract::{Limits, extract};

#[derive(Default)]
struct Stat {
    docs: usize,
    errors: usize,
    bytes: u64,
    time: Duration,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: docent-extract-bench DIR [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut stats: BTreeMap<String, Stat> = BTreeMap::new();
    for path in &files {
        let bytes = std::fs::read(path).expect("read file");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut elapsed = Duration::ZERO;
        let mut kind = String::new();
        let mut failed = false;
        for _ in 0..rounds {
            let started = Instant::now();
            let r = extract(&bytes, &name, "", Limits::default());
            elapsed += started.elapsed();
            (kind, failed) = match r {
                Ok(out) => (out.detected_type.to_owned(), false),
                Err(e) => (format!("{} ({})", extension(&name), e.code()), true),
            };
        }
        let s = stats.entry(kind).or_default();
        s.docs += rounds;
        s.errors += if failed { rounds } else { 0 };
        s.bytes += bytes.len() as u64 * rounds as u64;
        s.time += elapsed;
    }
    println!(
        "{:<75} {:>6} {:>10} {:>10} {:>10}",
        "format", "docs", "MB", "MB/s", "docs/s"
    );
    let mut total = Stat::default();
    for (kind, s) in &stats {
        print_row(kind, s);
        total.docs += s.docs;
        total.errors += s.errors;
        total.bytes += s.bytes;
        total.time += s.time;
    }
    print_row("all", &total);
    println!(
        "({} files x {rounds} rounds, {} typed errors)",
        files.len(),
        total.errors / rounds.max(1)
    );
}

fn extension(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(_, e)| e)
}

fn print_row(kind: &str, s: &Stat) {
    let secs = s.time.as_secs_f64().max(1e-9);
    let mb = s.bytes as f64 / 1e6;
    println!(
        "{kind:<75} {:>6} {:>10.2} {:>10.1} {:>10.1}",
        s.docs,
        mb,
        mb / secs,
        s.docs as f64 / secs
    );
}
