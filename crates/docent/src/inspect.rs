//! `docent extract FILE`: what docent sees in a file — the user's debugging tool for
//! extraction and chunking. Uses exactly the limits and chunk settings of the ingest task.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use docent_config::Config;
use docent_extract::BlockKind;
use serde_json::{Value, json};

fn kind_name(k: &BlockKind) -> String {
    match k {
        BlockKind::Heading { level } => format!("heading{level}"),
        BlockKind::Paragraph => "paragraph".into(),
        BlockKind::ListItem => "list_item".into(),
        BlockKind::TableRow => "table_row".into(),
        BlockKind::Code => "code".into(),
        BlockKind::Record { .. } => "record".into(),
    }
}

/// Extracts `file` and prints the result; exit code 1 with the error code on failure.
pub fn extract(
    config: &Config,
    file: &Path,
    with_chunks: bool,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cancel = docent_extract::Cancel::with_deadline(docent_core::ingest::EXTRACTION_DEADLINE);
    let limits = docent_core::ingest::extract_limits(&config.ingest, &cancel);
    let started = std::time::Instant::now();
    let out = docent_extract::extract_isolated(
        bytes,
        name,
        String::new(),
        limits,
        docent_core::ingest::EXTRACTION_DEADLINE,
    );
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let doc = match out {
        Ok(doc) => doc,
        Err(e) => {
            if as_json {
                println!(
                    "{}",
                    json!({"error": {"code": e.code(), "message": e.to_string()}})
                );
            } else {
                eprintln!("{}: {e}", e.code());
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let pieces = if with_chunks {
        // Chunked exactly as ingest would: in the model's word pieces when it is available.
        let embedder = crate::embedder::open_local(&config.embedder).ok().flatten();
        match docent_core::ingest::chunk_document(
            &doc,
            &config.ingest,
            embedder.as_deref(),
            &cancel,
        ) {
            Ok(pieces) => Some(pieces),
            Err(e) => {
                if as_json {
                    println!(
                        "{}",
                        json!({"error": {"code": e.code(), "message": e.to_string()}})
                    );
                } else {
                    eprintln!("{}: {e}", e.code());
                }
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        None
    };
    if as_json {
        let blocks: Vec<Value> = doc
            .blocks
            .iter()
            .map(|b| {
                let mut v = json!({
                    "kind": kind_name(&b.kind),
                    "page": b.page,
                    "char_start": b.char_start,
                    "char_end": b.char_end,
                    "text": doc.block_text(b),
                });
                if let BlockKind::Record { fields } = &b.kind {
                    v["fields"] = fields.iter().map(|(k, v)| json!([k, v])).collect();
                }
                v
            })
            .collect();
        let mut out = json!({
            "detected_type": doc.detected_type,
            "title": doc.meta.title,
            "author": doc.meta.author,
            "page_count": doc.meta.page_count,
            "language": doc.meta.language,
            "chars": doc.text.chars().count(),
            "elapsed_ms": elapsed_ms,
            "blocks": blocks,
        });
        if let Some(pieces) = &pieces {
            out["chunks"] = pieces
                .iter()
                .map(|p| json!({"ordinal": p.ordinal, "char_start": p.char_start, "char_end": p.char_end, "page": p.page, "heading_path": p.heading_path, "text": p.text}))
                .collect();
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("type:     {}", doc.detected_type);
    for (label, v) in [
        ("title", &doc.meta.title),
        ("author", &doc.meta.author),
        ("language", &doc.meta.language),
    ] {
        if let Some(v) = v {
            println!("{label:<9} {v}");
        }
    }
    if let Some(p) = doc.meta.page_count {
        println!("pages:    {p}");
    }
    println!(
        "text:     {} chars, {} blocks, extracted in {elapsed_ms} ms",
        doc.text.chars().count(),
        doc.blocks.len()
    );
    println!();
    for b in &doc.blocks {
        let page = b.page.map(|p| format!("p{p} ")).unwrap_or_default();
        let text = doc.block_text(b).replace('\n', " ");
        let short: String = text.chars().take(100).collect();
        let more = if text.chars().count() > 100 {
            "…"
        } else {
            ""
        };
        println!(
            "[{page}{} {}..{}] {short}{more}",
            kind_name(&b.kind),
            b.char_start,
            b.char_end
        );
    }
    if let Some(pieces) = pieces {
        println!("\n{} chunks:", pieces.len());
        for p in pieces {
            let page = p.page.map(|n| format!(" p{n}")).unwrap_or_default();
            println!(
                "--- chunk {}{page} chars {}..{} under {:?}",
                p.ordinal, p.char_start, p.char_end, p.heading_path
            );
            println!("{}", p.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}
