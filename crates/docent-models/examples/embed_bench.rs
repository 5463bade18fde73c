//! Embedding throughput of [`LocalMiniLm`] on SciFact passages (`title + " " + text`).
//!
//! ```text
//! cargo run --release -p docent-models --example embed_bench -- \
//!     [--n 500] [--model DIR] [--corpus corpus.jsonl] [--threads N] [--batch-size N]
//!     [--max-batch-tokens N] [--precision auto|f32] [--repeat 1] [--dump vectors.json]
//! ```
//!
//! Prints passages/s and tokens/s (tokens the model saw: word pieces with `[CLS]`/`[SEP]`,
//! truncated to 256), and a last line `RESULT {json}` for scripts (`bench/embed/run`).

use std::path::PathBuf;
use std::time::Instant;

use docent_models::{LocalMiniLm, LocalMiniLmOptions, Precision};

struct Args {
    n: usize,
    model: PathBuf,
    corpus: PathBuf,
    repeat: usize,
    dump: Option<PathBuf>,
    options: LocalMiniLmOptions,
}

fn parse_args() -> Args {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = Args {
        n: 500,
        model: root.join("models/all-MiniLM-L6-v2"),
        corpus: root.join("../shared/datasets/scifact/corpus.jsonl"),
        repeat: 1,
        dump: None,
        options: LocalMiniLmOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--n" => args.n = value().parse().expect("--n"),
            "--model" => args.model = value().into(),
            "--corpus" => args.corpus = value().into(),
            "--repeat" => args.repeat = value().parse().expect("--repeat"),
            "--dump" => args.dump = Some(value().into()),
            "--threads" => args.options.threads = Some(value().parse().expect("--threads")),
            "--batch-size" => args.options.batch_size = value().parse().expect("--batch-size"),
            "--max-batch-tokens" => {
                args.options.max_batch_tokens = value().parse().expect("--max-batch-tokens")
            }
            "--precision" => {
                args.options.precision = match value().as_str() {
                    "auto" => Precision::Auto,
                    "f32" => Precision::F32,
                    other => panic!("--precision auto|f32, not {other}"),
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let corpus = std::fs::read_to_string(&args.corpus)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", args.corpus.display()));
    let texts: Vec<String> = corpus
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(args.n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            format!(
                "{} {}",
                v["title"].as_str().unwrap_or_default(),
                v["text"].as_str().unwrap_or_default()
            )
        })
        .collect();

    let t0 = Instant::now();
    let model =
        LocalMiniLm::load(&args.model, args.options.clone()).unwrap_or_else(|e| panic!("{e}"));
    let load_s = t0.elapsed().as_secs_f64();
    let tokens: usize = texts
        .iter()
        .map(|t| model.count_tokens(t).min(model.max_tokens()))
        .sum();
    // Warm up: thread pool, allocator, page-in of the weights.
    model.embed_blocking(&texts[..texts.len().min(16)]).unwrap();

    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut vectors = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        let c = cpu_seconds();
        vectors = model.embed_blocking(&texts).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds() - c);
    }
    let pps = texts.len() as f64 / best;
    let tps = tokens as f64 / best;
    println!(
        "docent LocalMiniLm: {} passages, {tokens} tokens, {} threads, batch {}, {}: {best:.2} s, \
         {pps:.1} passages/s, {tps:.0} tokens/s (load {load_s:.2} s; {:.0} tokens per CPU-second)",
        texts.len(),
        model.threads(),
        args.options.batch_size,
        if model.uses_bf16() { "bf16" } else { "f32" },
        tokens as f64 / best_cpu,
    );
    if let Some(path) = &args.dump {
        std::fs::write(path, serde_json::to_string(&vectors).unwrap()).unwrap();
    }
    println!(
        "RESULT {}",
        serde_json::json!({
            "impl": "docent",
            "passages": texts.len(),
            "tokens": tokens,
            "threads": model.threads(),
            "bf16": model.uses_bf16(),
            "seconds": best,
            "passages_per_s": pps,
            "tokens_per_s": tps,
            "cpu_seconds": best_cpu,
        })
    );
}

/// User + system CPU time of this process so far (Linux; NaN elsewhere), to tell a slow run
/// from a machine busy with something else.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks are 100 per second on Linux.
    f.iter().sum::<f64>() / 100.0
}
