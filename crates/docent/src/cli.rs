//! The command line: `serve`, `worker`, `migrate`, `ingest`, `tasks`, `bots`, `config`, and the
//! account commands `users`, `tenants`, `keys`.
//!
//! Commands that read or change data work on the local data directory by default, or against a
//! running server with `--url` (or `DOCENT_URL`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use docent_config::{Config, LogFormat};
use docent_core::Services;
use docent_core::worker::WorkerPool;
use docent_domain::{PageRequest, TaskFilter, TaskId, TaskStatus, TenantId, TextLanguage};

use crate::app::{Application, open_services, shutdown_signal};
use crate::client::Client;

/// docent — a self-hostable AI document platform.
#[derive(Debug, Parser)]
#[command(name = "docent", version, about)]
pub struct Cli {
    /// Configuration file (TOML); relative paths in it are relative to its directory.
    /// Environment variables `DOCENT__SECTION__KEY` override it. Unconfigured, data and model
    /// are in the docent home (`DOCENT_HOME`; `docent config paths` shows where).
    #[arg(long, global = true, env = "DOCENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable.
    Human,
    /// JSON lines.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (and, unless disabled, the workers).
    Serve {
        /// Listen address (overrides `server.bind`).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
        /// Do not run workers in this process (run `docent worker` separately).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run task workers only, against the configured database.
    Worker {
        /// Tasks at once (overrides `worker.concurrency`).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Also serve Prometheus `GET /metrics` on this address (e.g. 127.0.0.1:9464, for a
        /// metrics sidecar): the task, ingest and model-call series this process records.
        #[arg(long, value_name = "ADDR")]
        metrics_bind: Option<std::net::SocketAddr>,
    },
    /// Run under the AWS Lambda runtime: the HTTP API or the SQS worker.
    ///
    /// Both need the runtime's environment (`AWS_LAMBDA_RUNTIME_API`, set by Lambda).
    #[cfg(feature = "aws")]
    Lambda {
        /// Which function.
        #[command(subcommand)]
        role: LambdaRole,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 when the server answers `GET /ready`, else 1 (the image's HEALTHCHECK).
    ///
    /// No curl in the image, so the container's health check is this. It reads only
    /// `server.bind` from the configuration.
    Healthcheck {
        /// URL to check instead of `http://<server.bind>/ready` (an unspecified address such
        /// as 0.0.0.0 is reached through loopback).
        #[arg(long, env = "DOCENT_HEALTHCHECK_URL")]
        url: Option<String>,
        /// Give up after this long.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Upload files and directories (recursively) into a collection and process them.
    ///
    /// Files the collection already holds (same content) are skipped without being sent. With
    /// `--url`, the files go through the server's API (DOCENT_TOKEN: a `read_write` API key or
    /// a member's access token). Without it, they go into the local data directory; when a
    /// `docent serve` (or `docent worker`) is running on it, its workers process them while
    /// this command waits. A summary is always printed: uploaded, already present, completed,
    /// failed (and why), still processing.
    Ingest {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Collection name (created if missing).
        #[arg(long, short)]
        collection: String,
        /// Language of a new collection's text for keyword search (ISO 639-1 code such as en,
        /// de, fr; or none). An existing collection must already have it.
        #[arg(long)]
        language: Option<TextLanguage>,
        /// A running server to upload to, instead of the local data directory.
        #[arg(long, env = "DOCENT_URL")]
        url: Option<String>,
        /// Return once uploaded, without waiting for processing.
        #[arg(long)]
        no_wait: bool,
    },
    /// List tasks, or act on one.
    Tasks {
        /// Action (default: list).
        #[command(subcommand)]
        action: Option<TaskAction>,
        /// Only tasks with this status.
        #[arg(long)]
        status: Option<TaskStatus>,
        /// Only dead-lettered tasks.
        #[arg(long)]
        dead_lettered: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// A running server, instead of the local data directory.
        #[arg(long, env = "DOCENT_URL", global = true)]
        url: Option<String>,
    },
    /// Show what docent extracts from a file: type, metadata, structured blocks, and chunks.
    Extract {
        /// The file.
        file: PathBuf,
        /// Also show the chunks it would be split into.
        #[arg(long)]
        chunks: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Hybrid search.
    Search {
        /// Query text.
        query: String,
        /// Only this collection (by name; repeatable).
        #[arg(long, short)]
        collection: Vec<String>,
        /// Hits to show.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// hybrid, keyword or vector.
        #[arg(long, default_value = "hybrid")]
        mode: String,
        /// chunk (every matching chunk) or document (one hit per document).
        #[arg(long, default_value = "chunk")]
        group_by: String,
        /// How hybrid search combines its rankings: weighted or rrf (default: `[search]
        /// fusion` of the server with `--url`, else of the local configuration; weighted
        /// unless configured).
        #[arg(long)]
        fusion: Option<String>,
        /// A running server, instead of the local data directory.
        #[arg(long, env = "DOCENT_URL")]
        url: Option<String>,
    },
    /// Answer a question with cited sentences from the documents (extractive).
    Ask {
        /// The question.
        question: String,
        /// Only this collection (by name; repeatable).
        #[arg(long, short)]
        collection: Vec<String>,
        /// A running server, instead of the local data directory.
        #[arg(long, env = "DOCENT_URL")]
        url: Option<String>,
    },
    /// Ask a bot a question, with cited answers.
    ///
    /// The bot is named by id or name: the answer cites its collections' documents as `[n]`, by
    /// the configured chat model (extractive without one). Prints the conversation id to continue.
    Chat {
        /// The bot's id or name.
        bot: String,
        /// The question.
        message: String,
        /// Continue this conversation.
        #[arg(long)]
        conversation: Option<String>,
        /// A running server, instead of the local data directory.
        #[arg(long, env = "DOCENT_URL")]
        url: Option<String>,
    },
    /// Summarize a document (extractive, or by the chat model when one is configured).
    Summarize {
        /// Document id.
        document: String,
        /// Sentences.
        #[arg(long, default_value_t = 5)]
        length: usize,
        /// A running server, instead of the local data directory.
        #[arg(long, env = "DOCENT_URL")]
        url: Option<String>,
    },
    /// Rebuild the search indexes from the database (stop the server first).
    ///
    /// Refused while a `docent serve` or `docent worker` uses the data directory's embedded
    /// index.
    Reindex,
    /// Benchmarks.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Inspect configuration.
    Config {
        /// Action.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage accounts (`auth.mode = "builtin"`).
    Users {
        /// Action.
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage workspaces (tenants) in the local data directory, as the operator.
    Tenants {
        /// Action.
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Manage bots.
    ///
    /// In the local data directory (the default workspace), or through a running server with
    /// `--url` and `DOCENT_TOKEN` (the token's workspace).
    Bots {
        /// Action.
        #[command(subcommand)]
        action: BotAction,
        /// A running server, instead of the local data directory.
        #[arg(long, env = "DOCENT_URL", global = true)]
        url: Option<String>,
    },
    /// Manage API keys.
    ///
    /// In the local data directory as the operator (any workspace, with `--tenant`), or through
    /// a running server with `--url` and `DOCENT_TOKEN` (an admin's access token or key; the
    /// token's workspace).
    Keys {
        /// Action.
        #[command(subcommand)]
        action: KeyAction,
        /// A running server, instead of the local data directory.
        #[arg(long, env = "DOCENT_URL", global = true)]
        url: Option<String>,
    },
}

/// `docent tenants ...`.
#[derive(Debug, Subcommand)]
pub enum TenantAction {
    /// List every workspace: id, name, creation time.
    List,
    /// Create a workspace, optionally with an existing user as its owner.
    Create {
        /// Name.
        #[arg(long)]
        name: String,
        /// Email of an existing user to make its owner.
        #[arg(long)]
        owner: Option<String>,
    },
}

/// `docent keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Create a key; its secret is printed once, alone on standard output.
    Create {
        /// Label.
        #[arg(long)]
        name: String,
        /// A read-only key (default: read-write).
        #[arg(long)]
        read_only: bool,
        /// Workspace id (local only; default: the default workspace).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        /// Workspace id (local only; default: the default workspace).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key; it stops working at once.
    Revoke {
        /// Key id.
        id: String,
        /// Workspace id (local only; default: the default workspace).
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// Settings of `docent bots create` and `docent bots update`.
#[derive(Debug, clap::Args)]
pub struct BotSettings {
    /// Collection it answers from, by id or name (repeatable; on update, replaces the list).
    #[arg(long)]
    collection: Vec<String>,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Instructions given to the model.
    #[arg(long)]
    system_prompt: Option<String>,
    /// Chat model (default: the server's).
    #[arg(long)]
    model: Option<String>,
    /// Sampling temperature, 0 to 2.
    #[arg(long)]
    temperature: Option<f32>,
    /// Passages retrieved per question, 1 to 50.
    #[arg(long)]
    top_k: Option<u32>,
    /// First message the widget shows.
    #[arg(long)]
    welcome: Option<String>,
    /// Browser origin its widget may be embedded in, e.g. https://example.com (repeatable; on
    /// update, replaces the list).
    #[arg(long)]
    origin: Vec<String>,
}

/// Prints cited passages, one line each: `[n] file p.N chars a-b` (`marker` names the field
/// holding `n`).
fn print_citations(citations: &serde_json::Value, marker: &str) {
    for c in citations.as_array().into_iter().flatten() {
        let page = c["page"]
            .as_u64()
            .map(|p| format!(" p.{p}"))
            .unwrap_or_default();
        println!(
            "  [{}] {}{} chars {}-{}",
            c[marker],
            c["filename"].as_str().unwrap_or_default(),
            page,
            c["char_start"],
            c["char_end"]
        );
    }
}

/// `docent chat`: prints the answer, its citations and the conversation id; exit code 2 when
/// the bot found nothing relevant.
async fn chat(
    backend: &Bots,
    bot: &str,
    message: String,
    conversation: Option<String>,
) -> anyhow::Result<ExitCode> {
    let id = backend.resolve(bot).await?;
    let reply = match backend {
        Bots::Remote(client) => {
            let mut body = serde_json::json!({ "message": message });
            if let Some(c) = conversation {
                body["conversation_id"] = c.into();
            }
            client
                .post(&format!("/api/v1/bots/{id}/chat"), &body)
                .await?
        }
        Bots::Local(svc) => {
            let conversation = conversation
                .map(|c| c.parse::<docent_domain::ConversationId>())
                .transpose()
                .map_err(|_| anyhow::anyhow!("--conversation is not a conversation id"))?;
            let input = docent_core::chat::ChatInput {
                conversation,
                ..docent_core::chat::ChatInput::new(message)
            };
            let r = svc
                .chat(TenantId::DEFAULT, id, input)
                .await
                .map_err(local_err)?;
            serde_json::json!({
                "conversation_id": r.conversation_id.to_string(),
                "answer": r.answer,
                "answered_by": r.answered_by.kind(),
                "citations": r.citations.iter().map(|c| serde_json::json!({
                    "marker": c.marker,
                    "filename": c.filename,
                    "page": c.page,
                    "char_start": c.char_start,
                    "char_end": c.char_end,
                })).collect::<Vec<_>>(),
            })
        }
    };
    println!("{}", reply["answer"].as_str().unwrap_or_default());
    print_citations(&reply["citations"], "marker");
    println!(
        "conversation: {}",
        reply["conversation_id"].as_str().unwrap_or_default()
    );
    Ok(if reply["answered_by"] == "no_answer" {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `docent bots ...`.
#[derive(Debug, Subcommand)]
pub enum BotAction {
    /// List bots: id, name, collections, model.
    List,
    /// Create a bot; prints it as JSON.
    Create {
        /// Name.
        #[arg(long)]
        name: String,
        /// Settings.
        #[command(flatten)]
        settings: BotSettings,
    },
    /// Show a bot as JSON.
    Get {
        /// Bot id or name.
        bot: String,
    },
    /// Change a bot's settings (only those given); prints it as JSON.
    Update {
        /// Bot id or name.
        bot: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// Settings.
        #[command(flatten)]
        settings: BotSettings,
    },
    /// Delete a bot with its conversations (its collections stay).
    Delete {
        /// Bot id or name.
        bot: String,
    },
    /// List the documents of a bot's collections: id, status, collection, file name.
    Documents {
        /// Bot id or name.
        bot: String,
    },
    /// Manage a bot's publishable widget keys (the `<script>` snippet's `data-key`).
    #[command(name = "widget-keys", subcommand)]
    WidgetKeys(WidgetKeyAction),
}

/// `docent bots widget-keys ...`.
#[derive(Debug, Subcommand)]
pub enum WidgetKeyAction {
    /// Create a widget key; prints it (with its snippet) as JSON.
    Create {
        /// Bot id or name.
        bot: String,
        /// Label.
        #[arg(long)]
        name: Option<String>,
        /// Most visitor messages per UTC day (default: `widget.default_daily_quota`).
        #[arg(long)]
        daily_quota: Option<u32>,
    },
    /// List a bot's widget keys: id, state, messages today / quota, name, key.
    List {
        /// Bot id or name.
        bot: String,
    },
    /// Replace a key by a new one (same name and quota); the old one stops at once.
    Rotate {
        /// Bot id or name.
        bot: String,
        /// Widget key id.
        key_id: String,
    },
    /// Revoke a key: every page using it stops at once.
    Revoke {
        /// Bot id or name.
        bot: String,
        /// Widget key id.
        key_id: String,
    },
}

/// `docent users ...`.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a verified account: owner of a new workspace, or with `--admin` owner of the
    /// default workspace. The password comes from `--password-file` or `DOCENT_PASSWORD`.
    Create {
        /// Email address.
        #[arg(long)]
        email: String,
        /// A file holding the password (first line).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Make the user an owner of the default workspace (the first admin).
        #[arg(long)]
        admin: bool,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Name of the new workspace (without `--admin`).
        #[arg(long)]
        tenant_name: Option<String>,
    },
    /// List every account: id, email, whether verified or disabled, workspaces and roles.
    List,
}

/// `docent bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Retrieval quality and speed on a BEIR-format dataset (corpus.jsonl, queries.jsonl,
    /// qrels/test.tsv), through the real ingest pipeline, in a temporary data directory.
    Beir {
        /// Dataset directory.
        #[arg(long)]
        data: PathBuf,
        /// Use at most this many documents (every relevant one first).
        #[arg(long)]
        sample: Option<usize>,
        /// Keep the ingested data in this directory instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Vector index: exact scan against the HNSW graph on synthetic clustered unit vectors —
    /// graph build time, recall@10 and query latency of both.
    Vectors {
        /// Vectors in the collection.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Dimension.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Queries.
        #[arg(long, default_value_t = 200)]
        queries: usize,
    },
    /// Concurrent search load against a running server.
    Load {
        /// The server.
        #[arg(long, env = "DOCENT_URL")]
        url: String,
        /// Queries: JSON lines with a `text` field (e.g. a BEIR queries.jsonl).
        #[arg(long)]
        queries: PathBuf,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Hits per search.
        #[arg(long, default_value_t = 10)]
        top_k: usize,
    },
    /// Time to first token: a bot's streamed answer through docent against the model's own
    /// streamed answer, alternating; prints both and what docent adds.
    Chat {
        /// The docent server.
        #[arg(long, env = "DOCENT_URL")]
        url: String,
        /// The bot (id).
        #[arg(long)]
        bot: String,
        /// The model's OpenAI-compatible base URL (what `[llm] base_url` points at).
        #[arg(long)]
        llm_url: String,
        /// The model name there.
        #[arg(long)]
        llm_model: String,
        /// The question.
        #[arg(long)]
        question: String,
        /// Requests of each kind.
        #[arg(long, default_value_t = 50)]
        requests: usize,
    },
}

/// `docent tasks ...`.
#[derive(Debug, Subcommand)]
pub enum TaskAction {
    /// Show one task.
    Get {
        /// Task id.
        id: String,
    },
    /// Cancel a task.
    Cancel {
        /// Task id.
        id: String,
    },
    /// Retry a failed, dead-lettered or cancelled task.
    Retry {
        /// Task id.
        id: String,
    },
}

/// `docent lambda ...`.
#[cfg(feature = "aws")]
#[derive(Debug, Subcommand)]
pub enum LambdaRole {
    /// The HTTP API (API Gateway REST and HTTP APIs, function URLs, ALB); no workers.
    Api {
        /// Stream responses as they are written (a function URL with invoke mode
        /// RESPONSE_STREAM); otherwise each response is sent whole.
        #[arg(long, env = "DOCENT_LAMBDA_STREAMING")]
        streaming: bool,
    },
    /// The SQS worker: each record of an event a task delivery, failures reported in
    /// `batchItemFailures` (enable ReportBatchItemFailures on the event source mapping).
    Worker {
        /// A task's run ends this long before the invocation's deadline, so its lease is given
        /// back and its message settled before Lambda stops the function.
        #[arg(long, env = "DOCENT_LAMBDA_DEADLINE_MARGIN", default_value = "10s", value_parser = humantime::parse_duration)]
        deadline_margin: std::time::Duration,
    },
}

/// `docent config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration (secrets redacted), headed by the seed applications'
    /// variables it took (`DATABASE_URL`, ...) or ignored.
    Show,
    /// Validate the configuration and exit; lists the seed variables taken or ignored.
    Check,
    /// Where docent keeps things: its home, configuration file, data and model directories.
    Paths {
        /// Print only this path (for scripts).
        #[arg(value_enum)]
        name: Option<crate::paths::PathName>,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = docent_config::Home::locate();
    if let Command::Healthcheck { url, timeout } = &cli.command {
        // Before the configuration is typed: no secret is resolved, no backend opened.
        let url = match url {
            Some(u) => u.clone(),
            None => crate::healthcheck::default_url(home.dir(), cli.config.as_deref())?,
        };
        return Ok(crate::healthcheck::run(&url, *timeout).await);
    }
    let mut config = crate::secrets::load_config(home.dir(), cli.config.as_deref()).await?;
    if let Some(f) = cli.log_format {
        config.log.format = match f {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    crate::telemetry::init(config.log.format, &config.log.level, &config.telemetry.otlp)?;
    crate::paths::warn_about_data_left_here(&config, &home);
    for seed in crate::secrets::seed_uses() {
        match &seed.ignored {
            Some(why) => {
                tracing::warn!(variable = %seed.variable, why = %why, "seed environment variable ignored")
            }
            None => {
                tracing::debug!(variable = %seed.variable, keys = %seed.keys.join(", "), "seed environment variable in use")
            }
        }
    }
    match cli.command {
        Command::Serve { bind, no_workers } => {
            if let Some(bind) = bind {
                config.server.bind = bind;
            }
            if no_workers {
                config.server.run_workers = false;
            }
            Application::build(config)
                .await?
                .run_until(shutdown_signal())
                .await?;
        }
        Command::Worker {
            concurrency,
            metrics_bind,
        } => {
            if let Some(n) = concurrency {
                config.worker.concurrency = n.max(1);
            }
            let _lock = crate::datadir_lock::claim_or_refuse(&config, "worker", true)?;
            let grace = config.server.shutdown_grace;
            let (services, db) = open_services(config).await?;
            let _metrics = match metrics_bind {
                Some(addr) => Some(crate::worker_metrics::serve(addr, services.clone()).await?),
                None => None,
            };
            let pool = WorkerPool::start(services.clone(), services.config.worker.concurrency);
            let _secrets = crate::secrets::reload_on_sighup(db.clone());
            shutdown_signal().await;
            pool.shutdown(grace).await;
            db.close().await;
        }
        #[cfg(feature = "aws")]
        Command::Lambda { role } => match role {
            LambdaRole::Api { streaming } => {
                config.server.run_workers = false;
                crate::lambda::run_api(config, streaming).await?;
            }
            LambdaRole::Worker { deadline_margin } => {
                crate::lambda::run_worker(config, deadline_margin).await?;
            }
        },
        // Answered above, before the configuration was loaded.
        Command::Healthcheck { .. } => {}
        Command::Migrate => {
            let (_, db) = open_services(config).await?;
            db.close().await;
            println!("migrations applied");
        }
        Command::Ingest {
            paths,
            collection,
            language,
            url,
            no_wait,
        } => {
            let files = collect_files(&paths)?;
            if files.is_empty() {
                bail!("no files found under the given paths");
            }
            let bars = crate::ingest::Bars::default();
            return match url {
                Some(url) => {
                    let mut client = Client::new(&url)?;
                    client.on_retry(bars.retry_notice());
                    let lang = language.map(TextLanguage::as_str);
                    let cid = client.collection_id(&collection, lang).await?;
                    let mut target = crate::ingest::RemoteTarget::new(client, cid);
                    let stop = crate::ingest::ctrl_c_token();
                    Ok(crate::ingest::run(&mut target, &files, !no_wait, &bars, &stop).await)
                }
                None => {
                    // Decided before anything is opened or stored: who processes, or a refusal.
                    let processing = crate::ingest::Processing::decide(&config, !no_wait)?;
                    let (svc, db) = open_services(config).await?;
                    let target =
                        crate::ingest::LocalTarget::open(svc, &collection, language, processing)
                            .await;
                    let code = match target {
                        Ok(mut target) => {
                            let stop = crate::ingest::ctrl_c_token();
                            Ok(
                                crate::ingest::run(&mut target, &files, !no_wait, &bars, &stop)
                                    .await,
                            )
                        }
                        Err(e) => Err(e),
                    };
                    db.close().await;
                    code
                }
            };
        }
        Command::Tasks {
            action,
            status,
            dead_lettered,
            limit,
            url,
        } => {
            let dead = dead_lettered.then_some(true);
            match url {
                Some(url) => tasks_remote(&Client::new(&url)?, action, status, dead, limit).await?,
                None => tasks_local(config, action, status, dead, limit).await?,
            }
        }
        Command::Extract { file, chunks, json } => {
            return crate::inspect::extract(&config, &file, chunks, json);
        }
        Command::Search {
            query,
            collection,
            top_k,
            mode,
            group_by,
            fusion,
            url,
        } => {
            let mut body = serde_json::json!({
                "query": query, "top_k": top_k, "mode": mode, "group_by": group_by,
            });
            if let Some(f) = fusion {
                body["fusion"] = f.into();
            }
            let res = match url {
                Some(url) => {
                    let client = Client::new(&url)?;
                    let mut body = body;
                    body["collection_ids"] = remote_collections(&client, &collection).await?.into();
                    client.post("/api/v1/search", &body).await?
                }
                None => local_json(config, &collection, body, LocalCall::Search).await?,
            };
            print_hits(&res);
        }
        Command::Ask {
            question,
            collection,
            url,
        } => {
            let body = serde_json::json!({ "question": question });
            let res = match url {
                Some(url) => {
                    let client = Client::new(&url)?;
                    let mut body = body;
                    body["collection_ids"] = remote_collections(&client, &collection).await?.into();
                    client.post("/api/v1/ask", &body).await?
                }
                None => local_json(config, &collection, body, LocalCall::Ask).await?,
            };
            println!("{}", res["answer"].as_str().unwrap_or_default());
            print_citations(&res["citations"], "n");
            if res["found"] == false {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Summarize {
            document,
            length,
            url,
        } => {
            let res = match url {
                Some(url) => {
                    let client = Client::new(&url)?;
                    let path = format!("/api/v1/documents/{document}/summary?length={length}");
                    let mut res = client.get(&path).await?;
                    while res.get("task").is_some() {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        res = client.get(&path).await?;
                    }
                    res
                }
                None => {
                    let (svc, db) = open_services(config).await?;
                    let id = document.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
                    let doc = svc
                        .store
                        .get_document(TenantId::DEFAULT, id)
                        .await
                        .map_err(|e| anyhow::anyhow!(e))?;
                    let summary = svc
                        .summarize(TenantId::DEFAULT, &doc, length)
                        .await
                        .map_err(|e| anyhow::anyhow!(e))?;
                    db.close().await;
                    serde_json::to_value(summary)?
                }
            };
            println!("{}", res["summary"].as_str().unwrap_or_default());
        }
        Command::Bench {
            which: BenchCommand::Beir { data, sample, keep },
        } => {
            crate::bench::beir(config, &data, sample, keep.as_deref()).await?;
        }
        Command::Bench {
            which: BenchCommand::Vectors { n, dim, queries },
        } => {
            crate::bench::vectors(n, dim, queries)?;
        }
        Command::Bench {
            which:
                BenchCommand::Chat {
                    url,
                    bot,
                    llm_url,
                    llm_model,
                    question,
                    requests,
                },
        } => {
            crate::bench::chat(&url, &bot, &llm_url, &llm_model, &question, requests.max(1))
                .await?;
        }
        Command::Bench {
            which:
                BenchCommand::Load {
                    url,
                    queries,
                    clients,
                    seconds,
                    top_k,
                },
        } => {
            crate::bench::load(
                &url,
                &queries,
                clients.max(1),
                std::time::Duration::from_secs(seconds),
                top_k,
            )
            .await?;
        }
        Command::Reindex => {
            let _lock = match crate::datadir_lock::DataDirLock::needed(&config) {
                false => None,
                true => match crate::datadir_lock::DataDirLock::claim(
                    &config,
                    crate::datadir_lock::Holder::me("reindex", false),
                )? {
                    crate::datadir_lock::Claim::Acquired(lock) => Some(lock),
                    crate::datadir_lock::Claim::Held(holder) => bail!(
                        "cannot reindex: {} is using the data directory {} and its index; stop \
                         it first (reindexing rewrites the index it serves and writes)",
                        holder.describe(),
                        config.data_dir.display()
                    ),
                },
            };
            let (svc, db) = open_services(config).await?;
            let started = std::time::Instant::now();
            let n = crate::app::reindex(&svc).await?;
            db.close().await;
            println!(
                "reindexed {n} chunks in {:.1}s",
                started.elapsed().as_secs_f32()
            );
        }
        Command::Config {
            action: ConfigAction::Show,
        } => {
            let seed = crate::secrets::seed_uses();
            if !seed.is_empty() {
                println!("# From the seed applications' environment (docent's own keys win):");
                for s in &seed {
                    println!("#   {s}");
                }
            }
            print!("{}", config.to_redacted_toml())
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            for s in crate::secrets::seed_uses() {
                println!("seed variable {s}");
            }
            println!("configuration is valid")
        }
        Command::Config {
            action: ConfigAction::Paths { name },
        } => {
            let file = cli.config.as_deref();
            match name {
                Some(name) => println!("{}", crate::paths::one(&home, &config, name).display()),
                None => print!("{}", crate::paths::report(&home, file, &config)),
            }
        }
        Command::Users {
            action:
                UserAction::Create {
                    email,
                    password_file,
                    admin,
                    name,
                    tenant_name,
                },
        } => create_user(config, email, password_file, admin, name, tenant_name).await?,
        Command::Users {
            action: UserAction::List,
        } => list_users(config).await?,
        Command::Tenants { action } => tenants(config, action).await?,
        Command::Chat {
            bot,
            message,
            conversation,
            url,
        } => {
            let (backend, db) = match url {
                Some(url) => (Bots::Remote(Client::new(&url)?), None),
                None => {
                    let (svc, db) = open_services(config).await?;
                    (Bots::Local(svc), Some(db))
                }
            };
            let result = chat(&backend, &bot, message, conversation).await;
            if let Some(db) = db {
                db.close().await;
            }
            return result;
        }
        Command::Bots { action, url } => {
            let (backend, db) = match url {
                Some(url) => (Bots::Remote(Client::new(&url)?), None),
                None => {
                    let (svc, db) = open_services(config).await?;
                    (Bots::Local(svc), Some(db))
                }
            };
            let result = bots(&backend, action).await;
            if let Some(db) = db {
                db.close().await;
            }
            result?;
        }
        Command::Keys {
            action,
            url: Some(url),
        } => keys_remote(&Client::new(&url)?, action).await?,
        Command::Keys { action, url: None } => keys_local(config, action).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `docent users create`.
async fn create_user(
    config: Config,
    email: String,
    password_file: Option<PathBuf>,
    admin: bool,
    display_name: Option<String>,
    tenant_name: Option<String>,
) -> anyhow::Result<()> {
    use docent_domain::auth::AccountTenant;
    let password = match password_file {
        Some(path) => std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        None => std::env::var("DOCENT_PASSWORD")
            .context("give the password with --password-file or the DOCENT_PASSWORD variable")?,
    };
    if config.auth.mode == docent_config::AuthMode::None {
        eprintln!(
            "note: auth.mode = \"none\": the account is created, but the server ignores it until \
             auth.mode = \"builtin\""
        );
    }
    let (services, db) = open_services(config).await?;
    let auth = docent_auth::AuthService::from_config(&services.config, db.auth())
        .map_err(|e| anyhow::anyhow!(e.chain()))?;
    let tenant = if admin {
        AccountTenant::Existing {
            tenant_id: TenantId::DEFAULT,
            role: docent_domain::Role::Owner,
        }
    } else {
        AccountTenant::New {
            name: tenant_name.unwrap_or_default(),
        }
    };
    let result = auth
        .create_user(docent_auth::CreateUser {
            email,
            password: Some(password),
            display_name,
            tenant,
        })
        .await;
    db.close().await;
    let (user, membership) = result.map_err(|e| anyhow::anyhow!(e.chain()))?;
    println!(
        "created user {} ({}) as {} of workspace {}",
        user.email.unwrap_or_default(),
        user.id,
        membership.role,
        membership.tenant_id
    );
    Ok(())
}

/// The account service over the local data directory, as the operator.
async fn local_accounts(
    config: Config,
) -> anyhow::Result<(docent_auth::AuthService, docent_store::Database)> {
    if config.auth.mode == docent_config::AuthMode::None {
        eprintln!(
            "note: auth.mode = \"none\": accounts and keys are kept, but the server ignores them \
             until auth.mode = \"builtin\""
        );
    }
    let (services, db) = open_services(config).await?;
    let auth = docent_auth::AuthService::from_config(&services.config, db.auth())
        .map_err(|e| anyhow::anyhow!(e.chain()))?;
    Ok((auth, db))
}

/// `docent users list`.
async fn list_users(config: Config) -> anyhow::Result<()> {
    let (_, db) = local_accounts(config).await?;
    let store = db.auth();
    let result = async {
        let mut lines = Vec::new();
        for u in store.list_all_users().await? {
            let tenants = store
                .list_user_tenants(u.id)
                .await?
                .into_iter()
                .map(|m| format!("{}:{}", m.tenant.id, m.role))
                .collect::<Vec<_>>()
                .join(",");
            lines.push(format!(
                "{}  {}  {}{}  {}",
                u.id,
                u.email.as_deref().unwrap_or("-"),
                if u.email_verified_at.is_some() {
                    "verified"
                } else {
                    "unverified"
                },
                if u.disabled { " disabled" } else { "" },
                if tenants.is_empty() { "-" } else { &tenants },
            ));
        }
        Ok::<_, docent_domain::Error>(lines)
    }
    .await;
    db.close().await;
    for line in result.map_err(|e| anyhow::anyhow!(e.chain()))? {
        println!("{line}");
    }
    Ok(())
}

/// `docent tenants ...`.
async fn tenants(config: Config, action: TenantAction) -> anyhow::Result<()> {
    let (_, db) = local_accounts(config).await?;
    let store = db.auth();
    let result = async {
        match action {
            TenantAction::List => Ok(store
                .list_all_tenants()
                .await?
                .into_iter()
                .map(|t| format!("{}  {}  {}", t.id, t.created_at.to_rfc3339(), t.name))
                .collect::<Vec<_>>()),
            TenantAction::Create { name, owner } => {
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 200 {
                    return Err(docent_domain::Error::new(
                        docent_domain::Code::InvalidField,
                        "the name must hold 1 to 200 characters",
                    ));
                }
                let owner = match owner {
                    Some(email) => {
                        let email = docent_auth::normalize_email(&email)?;
                        Some(store.find_user_by_email(&email).await?.ok_or_else(|| {
                            docent_domain::Error::new(
                                docent_domain::Code::UserNotFound,
                                format!("no user with the email {email}"),
                            )
                        })?)
                    }
                    None => None,
                };
                let tenant = store.create_tenant(&name).await?;
                let mut line = format!("created workspace {} ({})", tenant.name, tenant.id);
                if let Some(owner) = owner {
                    store
                        .add_member(tenant.id, owner.user.id, docent_domain::Role::Owner)
                        .await?;
                    line.push_str(&format!(
                        " owned by {}",
                        owner.user.email.unwrap_or_default()
                    ));
                }
                Ok(vec![line])
            }
        }
    }
    .await;
    db.close().await;
    for line in result.map_err(|e| anyhow::anyhow!(e.chain()))? {
        println!("{line}");
    }
    Ok(())
}

fn print_key_line(k: &serde_json::Value) {
    let creator = k["created_by_email"]
        .as_str()
        .or_else(|| k["created_by"].as_str())
        .unwrap_or("operator");
    println!(
        "{}  {}  {}  {}  by {creator}  {}",
        k["id"].as_str().unwrap_or(""),
        k["prefix"].as_str().unwrap_or(""),
        k["access"].as_str().unwrap_or(""),
        if k["revoked_at"].is_null() {
            "active"
        } else {
            "revoked"
        },
        k["name"].as_str().unwrap_or(""),
    );
}

fn key_json(k: &docent_domain::ApiKey) -> serde_json::Value {
    serde_json::json!({
        "id": k.id.to_string(),
        "prefix": k.prefix,
        "access": k.scope.access.as_str(),
        "revoked_at": k.revoked_at,
        "name": k.name,
        "created_by": k.created_by.map(|u| u.to_string()),
    })
}

/// `docent keys ...` on the local data directory, as an owner of the workspace.
async fn keys_local(config: Config, action: KeyAction) -> anyhow::Result<()> {
    let tenant_arg = match &action {
        KeyAction::Create { tenant, .. }
        | KeyAction::List { tenant }
        | KeyAction::Revoke { tenant, .. } => tenant.clone(),
    };
    let tenant_id = match tenant_arg {
        Some(raw) => raw
            .parse::<TenantId>()
            .map_err(|_| anyhow::anyhow!("`{raw}` is not a workspace id"))?,
        None => TenantId::DEFAULT,
    };
    let (auth, db) = local_accounts(config).await?;
    let operator = docent_domain::Principal {
        tenant_id,
        ..docent_http::extract::local_owner()
    };
    let result = async {
        auth.tenant(tenant_id).await?;
        match action {
            KeyAction::Create {
                name, read_only, ..
            } => {
                let created = auth
                    .create_api_key(
                        &operator,
                        docent_auth::CreateApiKey {
                            name,
                            access: if read_only {
                                docent_domain::KeyAccess::Read
                            } else {
                                docent_domain::KeyAccess::ReadWrite
                            },
                            collections: None,
                            bots: None,
                            expires_at: None,
                        },
                    )
                    .await?;
                Ok((vec![key_json(&created.key)], Some(created.secret)))
            }
            KeyAction::List { .. } => {
                let mut out = Vec::new();
                let mut cursor = None;
                loop {
                    let page = auth
                        .list_api_keys(
                            &operator,
                            PageRequest {
                                limit: PageRequest::MAX_LIMIT,
                                cursor,
                            },
                        )
                        .await?;
                    let creators = auth.key_creators(&page.items).await?;
                    out.extend(page.items.iter().map(|k| {
                        let mut v = key_json(k);
                        if let Some(email) = k.created_by.and_then(|u| creators.get(&u)) {
                            v["created_by_email"] = serde_json::Value::String(email.clone());
                        }
                        v
                    }));
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                Ok((out, None))
            }
            KeyAction::Revoke { id, .. } => {
                let kid = id.parse().map_err(|_| {
                    docent_domain::Error::new(
                        docent_domain::Code::InvalidId,
                        format!("`{id}` is not an API key id"),
                    )
                })?;
                Ok((
                    vec![key_json(&auth.revoke_api_key(&operator, kid).await?)],
                    None,
                ))
            }
        }
    }
    .await;
    db.close().await;
    let (keys, secret) = result.map_err(|e: docent_domain::Error| anyhow::anyhow!(e.chain()))?;
    print_keys(&keys, secret.as_deref());
    Ok(())
}

/// Prints keys; a new key's secret goes alone on standard output, the rest to standard error.
fn print_keys(keys: &[serde_json::Value], secret: Option<&str>) {
    match secret {
        Some(secret) => {
            for k in keys {
                eprintln!(
                    "created API key {} ({}, {}); the secret is shown this once:",
                    k["id"].as_str().unwrap_or(""),
                    k["prefix"].as_str().unwrap_or(""),
                    k["access"].as_str().unwrap_or("")
                );
            }
            println!("{secret}");
        }
        None => keys.iter().for_each(print_key_line),
    }
}

/// `docent keys ...` through a running server, as the `DOCENT_TOKEN` caller.
async fn keys_remote(client: &Client, action: KeyAction) -> anyhow::Result<()> {
    let tenant = match &action {
        KeyAction::Create { tenant, .. }
        | KeyAction::List { tenant }
        | KeyAction::Revoke { tenant, .. } => tenant.is_some(),
    };
    if tenant {
        bail!("--tenant is for the local data directory; with --url the token's workspace is used");
    }
    match action {
        KeyAction::Create {
            name, read_only, ..
        } => {
            let access = if read_only { "read" } else { "read_write" };
            let b = client
                .post(
                    "/api/v1/keys",
                    &serde_json::json!({ "name": name, "access": access }),
                )
                .await?;
            print_keys(
                std::slice::from_ref(&b["key"]),
                Some(b["secret"].as_str().unwrap_or_default()),
            );
        }
        KeyAction::List { .. } => {
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/api/v1/keys?limit=200&cursor={c}"),
                    None => "/api/v1/keys?limit=200".to_owned(),
                };
                let page = client.get(&path).await?;
                page["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .for_each(print_key_line);
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
        }
        KeyAction::Revoke { id, .. } => {
            print_key_line(&client.delete(&format!("/api/v1/keys/{id}")).await?);
        }
    }
    Ok(())
}

/// Where `docent bots` acts: a server (as the `DOCENT_TOKEN` caller), or the local data
/// directory's default workspace (as its owner). Both speak the API's JSON.
enum Bots {
    Remote(Client),
    Local(Services),
}

fn local_err(e: docent_domain::Error) -> anyhow::Error {
    anyhow::anyhow!(e.chain())
}

fn to_json(v: impl serde::Serialize) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(v)?)
}

/// A page of domain items as the API's JSON items.
type JsonPage = (Vec<serde_json::Value>, Option<String>);

fn json_page<T, D: serde::Serialize + From<T>>(page: docent_domain::Page<T>) -> JsonPage {
    let items = page
        .items
        .into_iter()
        .map(|x| serde_json::to_value(D::from(x)).unwrap_or_default())
        .collect();
    (items, page.next_cursor)
}

impl Bots {
    /// Every page of a list: through `path` (`?limit=200&cursor=…` appended) or `local`.
    async fn all<F, Fut>(&self, path: &str, local: F) -> anyhow::Result<Vec<serde_json::Value>>
    where
        F: Fn(Services, PageRequest) -> Fut,
        Fut: std::future::Future<Output = docent_domain::Result<JsonPage>>,
    {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (items, next) = match self {
                Bots::Remote(client) => {
                    let url = match &cursor {
                        Some(c) => format!("{path}?limit=200&cursor={c}"),
                        None => format!("{path}?limit=200"),
                    };
                    let page = client.get(&url).await?;
                    let items = page["items"].as_array().cloned().unwrap_or_default();
                    (items, page["next_cursor"].as_str().map(str::to_owned))
                }
                Bots::Local(svc) => {
                    let page = PageRequest {
                        limit: PageRequest::MAX_LIMIT,
                        cursor,
                    };
                    local(svc.clone(), page).await.map_err(local_err)?
                }
            };
            out.extend(items);
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    async fn list(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        self.all("/api/v1/bots", |svc, page| async move {
            let bots = svc.list_bots(TenantId::DEFAULT, page).await?;
            Ok(json_page::<_, docent_http::dto::Bot>(bots))
        })
        .await
    }

    /// A bot id from an id or a name (which must name exactly one bot).
    async fn resolve(&self, bot: &str) -> anyhow::Result<docent_domain::BotId> {
        if let Ok(id) = bot.parse() {
            return Ok(id);
        }
        let named: Vec<_> = self
            .list()
            .await?
            .into_iter()
            .filter(|b| b["name"] == bot)
            .collect();
        match named.as_slice() {
            [one] => Ok(one["id"].as_str().unwrap_or_default().parse()?),
            [] => bail!("no bot named `{bot}`"),
            _ => bail!("several bots are named `{bot}`; give its id"),
        }
    }

    /// A collection id from an id or a name.
    async fn collection(&self, c: &str) -> anyhow::Result<String> {
        if c.parse::<docent_domain::CollectionId>().is_ok() {
            return Ok(c.to_owned());
        }
        match self {
            Bots::Remote(client) => client.existing_collection_id(c).await,
            Bots::Local(svc) => Ok(svc
                .store
                .find_collection_by_name(TenantId::DEFAULT, c)
                .await
                .map_err(local_err)?
                .ok_or_else(|| anyhow::anyhow!("no collection named `{c}`"))?
                .id
                .to_string()),
        }
    }

    /// The request body of `settings` (plus `name`), as the API takes it.
    async fn body(
        &self,
        name: Option<String>,
        s: BotSettings,
        update: bool,
    ) -> anyhow::Result<serde_json::Value> {
        let mut body = serde_json::Map::new();
        let mut set = |k: &str, v: serde_json::Value| {
            body.insert(k.to_owned(), v);
        };
        if let Some(n) = name {
            set("name", n.into());
        }
        if !s.collection.is_empty() || !update {
            let mut ids = Vec::new();
            for c in &s.collection {
                ids.push(self.collection(c).await?);
            }
            set("collection_ids", ids.into());
        }
        if let Some(d) = s.description {
            set("description", d.into());
        }
        if let Some(p) = s.system_prompt {
            set("system_prompt", p.into());
        }
        if let Some(m) = s.model {
            set("model", m.into());
        }
        if let Some(t) = s.temperature {
            set("temperature", t.into());
        }
        if let Some(k) = s.top_k {
            set("retrieval", serde_json::json!({ "top_k": k }));
        }
        if let Some(w) = s.welcome {
            set("welcome_message", w.into());
        }
        if !s.origin.is_empty() || !update {
            set("allowed_origins", s.origin.into());
        }
        Ok(body.into())
    }
}

fn print_bot_line(b: &serde_json::Value) {
    let collections = b["collection_ids"].as_array().map_or(0, Vec::len);
    println!(
        "{}  {}  collections={}  model={}",
        b["id"].as_str().unwrap_or(""),
        b["name"].as_str().unwrap_or(""),
        collections,
        b["model"].as_str().unwrap_or("default"),
    );
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `docent bots ...`.
async fn bots(backend: &Bots, action: BotAction) -> anyhow::Result<()> {
    let t = TenantId::DEFAULT;
    match action {
        BotAction::List => backend.list().await?.iter().for_each(print_bot_line),
        BotAction::Create { name, settings } => {
            let body = backend.body(Some(name), settings, false).await?;
            let bot = match backend {
                Bots::Remote(client) => client.post("/api/v1/bots", &body).await?,
                Bots::Local(svc) => docent_http::local::create_bot(svc, t, body)
                    .await
                    .map_err(local_err)?,
            };
            print_json(&bot)?;
        }
        BotAction::Get { bot } => {
            let id = backend.resolve(&bot).await?;
            let bot = match backend {
                Bots::Remote(client) => client.get(&format!("/api/v1/bots/{id}")).await?,
                Bots::Local(svc) => to_json(docent_http::dto::Bot::from(
                    svc.get_bot(t, id).await.map_err(local_err)?,
                ))?,
            };
            print_json(&bot)?;
        }
        BotAction::Update {
            bot,
            name,
            settings,
        } => {
            let id = backend.resolve(&bot).await?;
            let body = backend.body(name, settings, true).await?;
            let bot = match backend {
                Bots::Remote(client) => client.patch(&format!("/api/v1/bots/{id}"), &body).await?,
                Bots::Local(svc) => docent_http::local::update_bot(svc, t, id, body)
                    .await
                    .map_err(local_err)?,
            };
            print_json(&bot)?;
        }
        BotAction::Delete { bot } => {
            let id = backend.resolve(&bot).await?;
            match backend {
                Bots::Remote(client) => {
                    client.delete(&format!("/api/v1/bots/{id}")).await?;
                }
                Bots::Local(svc) => svc.delete_bot(t, id).await.map_err(local_err)?,
            }
            println!("deleted bot {id}");
        }
        BotAction::WidgetKeys(action) => widget_keys(backend, action).await?,
        BotAction::Documents { bot } => {
            let id = backend.resolve(&bot).await?;
            let path = format!("/api/v1/bots/{id}/documents");
            let docs = backend
                .all(&path, |svc, page| async move {
                    let docs = svc.bot_documents(t, id, page).await?;
                    Ok(json_page::<_, docent_http::dto::Document>(docs))
                })
                .await?;
            for d in docs {
                println!(
                    "{}  {}  {}  {}",
                    d["id"].as_str().unwrap_or(""),
                    d["status"].as_str().unwrap_or(""),
                    d["collection_id"].as_str().unwrap_or(""),
                    d["filename"].as_str().unwrap_or(""),
                );
            }
        }
    }
    Ok(())
}

/// `docent bots widget-keys ...`.
async fn widget_keys(backend: &Bots, action: WidgetKeyAction) -> anyhow::Result<()> {
    let t = TenantId::DEFAULT;
    let key_id = |raw: &str| -> anyhow::Result<docent_domain::WidgetKeyId> {
        raw.parse()
            .map_err(|_| anyhow::anyhow!("`{raw}` is not a widget key id"))
    };
    match action {
        WidgetKeyAction::Create {
            bot,
            name,
            daily_quota,
        } => {
            let id = backend.resolve(&bot).await?;
            let body = serde_json::json!({ "name": name, "daily_quota": daily_quota });
            let key = match backend {
                Bots::Remote(client) => {
                    client
                        .post(&format!("/api/v1/bots/{id}/widget-keys"), &body)
                        .await?
                }
                Bots::Local(svc) => docent_http::local::create_widget_key(svc, t, id, body)
                    .await
                    .map_err(local_err)?,
            };
            print_json(&key)?;
        }
        WidgetKeyAction::List { bot } => {
            let id = backend.resolve(&bot).await?;
            let list = match backend {
                Bots::Remote(client) => {
                    client
                        .get(&format!("/api/v1/bots/{id}/widget-keys"))
                        .await?
                }
                Bots::Local(svc) => docent_http::local::list_widget_keys(svc, t, id)
                    .await
                    .map_err(local_err)?,
            };
            for k in list["data"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<7}  {}/{}  {}  {}",
                    k["id"].as_str().unwrap_or(""),
                    if k["revoked_at"].is_null() {
                        "active"
                    } else {
                        "revoked"
                    },
                    k["messages_today"],
                    k["daily_quota"],
                    k["name"].as_str().unwrap_or(""),
                    k["key"].as_str().unwrap_or(""),
                );
            }
        }
        WidgetKeyAction::Rotate { bot, key_id: raw } => {
            let id = backend.resolve(&bot).await?;
            let kid = key_id(&raw)?;
            let key = match backend {
                Bots::Remote(client) => {
                    client
                        .post(
                            &format!("/api/v1/bots/{id}/widget-keys/{kid}/rotate"),
                            &serde_json::json!({}),
                        )
                        .await?
                }
                Bots::Local(svc) => docent_http::local::rotate_widget_key(svc, t, id, kid)
                    .await
                    .map_err(local_err)?,
            };
            print_json(&key)?;
        }
        WidgetKeyAction::Revoke { bot, key_id: raw } => {
            let id = backend.resolve(&bot).await?;
            let kid = key_id(&raw)?;
            match backend {
                Bots::Remote(client) => {
                    client
                        .delete(&format!("/api/v1/bots/{id}/widget-keys/{kid}"))
                        .await?;
                }
                Bots::Local(svc) => docent_http::local::revoke_widget_key(svc, t, id, kid)
                    .await
                    .map_err(local_err)?,
            }
            println!("revoked widget key {kid}");
        }
    }
    Ok(())
}

/// Files under `paths`, directories walked recursively, hidden entries skipped, sorted.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(&path, out)?;
            } else if kind.is_file() {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        let meta =
            std::fs::metadata(p).with_context(|| format!("{} does not exist", p.display()))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn print_task_line(id: &str, kind: &str, status: &str, attempts: u64, doc: &str, error: &str) {
    println!("{id}  {kind:<16} {status:<20} attempts={attempts:<2} document={doc} {error}");
}

async fn tasks_local(
    config: Config,
    action: Option<TaskAction>,
    status: Option<TaskStatus>,
    dead: Option<bool>,
    limit: u32,
) -> anyhow::Result<()> {
    let (svc, db) = open_services(config).await?;
    let tenant = TenantId::DEFAULT;
    let parse = |id: &str| id.parse::<TaskId>().map_err(|e| anyhow::anyhow!(e));
    let show = |t: docent_domain::Task| {
        let err = t
            .error
            .map(|e| format!("error={}: {}", e.code, e.message))
            .unwrap_or_default();
        let doc = t
            .document_id
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        print_task_line(
            &t.id.to_string(),
            t.kind.as_str(),
            t.status.as_str(),
            u64::from(t.attempts),
            &doc,
            &err,
        );
    };
    let result = match action {
        None => svc
            .queue
            .list(
                tenant,
                TaskFilter {
                    status,
                    dead_lettered: dead,
                    ..Default::default()
                },
                PageRequest {
                    limit,
                    cursor: None,
                },
            )
            .await
            .map(|page| page.items.into_iter().for_each(show)),
        Some(TaskAction::Get { id }) => svc.queue.get(tenant, parse(&id)?).await.map(show),
        Some(TaskAction::Cancel { id }) => svc.cancel_task(tenant, parse(&id)?).await.map(show),
        Some(TaskAction::Retry { id }) => svc.retry_task(tenant, parse(&id)?).await.map(show),
    };
    db.close().await;
    result.map_err(|e| anyhow::anyhow!(e))
}

async fn tasks_remote(
    client: &Client,
    action: Option<TaskAction>,
    status: Option<TaskStatus>,
    dead: Option<bool>,
    limit: u32,
) -> anyhow::Result<()> {
    let show = |t: &serde_json::Value| {
        let err = match t["error"]["code"].as_str() {
            Some(c) => format!(
                "error={c}: {}",
                t["error"]["message"].as_str().unwrap_or("")
            ),
            None => String::new(),
        };
        print_task_line(
            t["id"].as_str().unwrap_or(""),
            t["kind"].as_str().unwrap_or(""),
            t["status"].as_str().unwrap_or(""),
            t["attempts"].as_u64().unwrap_or(0),
            t["document_id"].as_str().unwrap_or("-"),
            &err,
        );
    };
    match action {
        None => {
            let mut q = format!("/api/v1/tasks?limit={limit}");
            if let Some(s) = status {
                q.push_str(&format!("&status={s}"));
            }
            if dead == Some(true) {
                q.push_str("&dead_lettered=true");
            }
            let page = client.get(&q).await?;
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .for_each(show);
        }
        Some(TaskAction::Get { id }) => show(&client.get(&format!("/api/v1/tasks/{id}")).await?),
        Some(TaskAction::Cancel { id }) => show(
            &client
                .post(
                    &format!("/api/v1/tasks/{id}/cancel"),
                    &serde_json::json!({}),
                )
                .await?,
        ),
        Some(TaskAction::Retry { id }) => show(
            &client
                .post(&format!("/api/v1/tasks/{id}/retry"), &serde_json::json!({}))
                .await?,
        ),
    }
    Ok(())
}

/// Collection ids for names, through a server.
async fn remote_collections(client: &Client, names: &[String]) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for name in names {
        ids.push(client.existing_collection_id(name).await?);
    }
    Ok(ids)
}

/// Which local operation [`local_json`] runs.
enum LocalCall {
    Search,
    Ask,
}

/// Runs a search or ask on the local data directory and renders it like the API does.
async fn local_json(
    config: Config,
    names: &[String],
    mut body: serde_json::Value,
    call: LocalCall,
) -> anyhow::Result<serde_json::Value> {
    let (svc, db) = open_services(config).await?;
    let mut ids = Vec::new();
    for name in names {
        let c = svc
            .store
            .find_collection_by_name(TenantId::DEFAULT, name)
            .await
            .map_err(|e| anyhow::anyhow!(e))?
            .ok_or_else(|| anyhow::anyhow!("no collection named `{name}`"))?;
        ids.push(c.id.to_string());
    }
    body["collection_ids"] = ids.into();
    let out = match call {
        LocalCall::Search => docent_http::local::search(&svc, TenantId::DEFAULT, body).await,
        LocalCall::Ask => docent_http::local::ask(&svc, TenantId::DEFAULT, body).await,
    };
    db.close().await;
    out.map_err(|e| anyhow::anyhow!(e))
}

fn print_hits(res: &serde_json::Value) {
    let hits = res["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        println!("no results");
    }
    for h in hits {
        let page = h["page"]
            .as_u64()
            .map(|p| format!(" p.{p}"))
            .unwrap_or_default();
        println!(
            "{:>2}. {:.4}  {}{}  [{}]",
            h["rank"],
            h["score"].as_f64().unwrap_or(0.0),
            h["filename"].as_str().unwrap_or(""),
            page,
            h["chunk_id"].as_str().unwrap_or("")
        );
        println!(
            "    {}",
            h["snippet"].as_str().unwrap_or("").replace('\n', " ")
        );
    }
}
