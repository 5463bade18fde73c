//! The embeddable chat widget in a real browser (issue 18 §6).
//!
//! `tests/widget/embed.mjs` runs with Node against a live server (workers on, the fake
//! OpenAI-compatible server as embedder and chat model, streaming in small pieces). The script
//! serves the host pages itself from other local origins (`127.0.0.2`, `127.0.0.3`), sets up a
//! bot through the API and the console's Embed tab, and checks what a site's visitor and the
//! bot's owner see: the widget loads, streams a cited answer, keeps the conversation over a
//! reload; a page on a disallowed origin gets no chat and the Embed tab says why; a revoked key
//! stops at once; an exhausted quota answers politely; hostile documents and model answers
//! never run a script nor break the layout; host page CSS and the widget's stay apart. It
//! prints the gzip size of the widget's files and the time from script load to ready.
//! Needs chromium, playwright-core and axe-core (see `common::browser`); without them it says
//! SKIP and passes. Screenshots go to `target/tmp/widget-screenshots`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::browser::{browser_env, skip_without_browser};
use common::{openai_embedder, spawn_app_with, with_llm};
use docent_fake_openai::{FakeConfig, FakeServer};

/// A question containing this gets [`HOSTILE_ANSWER`] from the fake model.
const HOSTILE_TRIGGER: &str = "zebra-probe";

/// A model answer that tries every trick: raw HTML, script, `javascript:` and `data:` links
/// (plain, spaced, entity-encoded, nested in a citation), forged citation markers and a long
/// unbroken word; `[1]` is a real citation.
const HOSTILE_ANSWER: &str = r#"Hostile probe. **Bold** and *italic* with `inline <b>code</b>` [1].
<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>
[click me](javascript:window.__pwned=1) [data link](data:text/html,<script>parent.__pwned=1</script>) [spaced]( javascript:window.__pwned=1) [entity](&#106;avascript:window.__pwned=1) [safe link](https://example.com/docs) <a href="javascript:window.__pwned=1">raw anchor</a>
Forged markers: [99] and [1](javascript:window.__pwned=1) and <sup class="cite">[2]</sup> and [[1]](javascript:window.__pwned=1).
- an item with <iframe src="javascript:window.__pwned=1"></iframe>
- an image ![x](x" onerror="window.__pwned=1)
1. first
2. second

```html
<script>window.__pwned=1</script>
```
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_on_another_origin_in_a_real_browser() {
    let Some((chromium, modules)) = browser_env() else {
        skip_without_browser("the_widget_on_another_origin_in_a_real_browser");
        return;
    };
    let fake = FakeServer::start(FakeConfig {
        dimension: 32,
        chunk_delay: Duration::from_millis(15),
        replies: vec![(HOSTILE_TRIGGER.into(), HOSTILE_ANSWER.into())],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.base_url();
    let app = spawn_app_with(|c| {
        c.server.run_workers = true;
        openai_embedder(c, url, 16);
        with_llm(&fake)(c);
        // One visitor asks a handful of questions within seconds here.
        c.widget.visitor_rate = docent_config::RateQuota {
            per_minute: 60,
            burst: 10,
        };
    })
    .await;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("widget-screenshots");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/widget/embed.mjs"))
        .env("DOCENT_BASE", &app.base)
        .env("DOCENT_HOSTILE_TRIGGER", HOSTILE_TRIGGER)
        .env("DOCENT_HOSTILE_ANSWER", HOSTILE_ANSWER)
        .env("DOCENT_WIDGET_DIR", root.join("../docent-http/widget"))
        .env("DOCENT_SCREENSHOTS", &shots)
        .env("DOCENT_TEST_CHROMIUM", chromium)
        .env("DOCENT_TEST_NODE_MODULES", modules)
        .output()
        .await
        .expect("node runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "widget journey: {:.1} s; screenshots: {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    assert!(out.status.success(), "the widget browser journey failed");
    app.stop().await;
}
