//! The Terraform under `deploy/aws` agrees with docent. Parsed with hcl-rs, no AWS and no
//! Terraform needed:
//!
//! - every environment the app module hands to an ECS task definition or a Lambda function
//!   passes `docent config check` (secret references stood in for by plausible values, and,
//!   with moto (`DOCENT_TEST_AWS_ENDPOINT`), resolved for real from Secrets Manager);
//! - ports, the health-check route, the commands, the SQS queue and dead-letter queue names and
//!   the redrive count agree with docent's configuration and command line;
//! - the IAM policy grants exactly the AWS actions docent's code calls (`crates/docent-aws`
//!   through the AWS SDK, `crates/docent-blob` through object_store), on the deployment's own
//!   resources, and the roles get nothing else of those services;
//! - every `docent_*` metric the dashboard and alarms name is in docent's `/metrics` output
//!   after an upload, an ingest and an answer that met a `429`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use docent_fake_openai::{FakeConfig, FakeServer, Fault, Faults, RetryAfter};
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, Map, Value};
use reqwest::StatusCode;
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn aws() -> PathBuf {
    root().join("deploy/aws")
}

fn parse(path: &Path) -> Body {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hcl::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.tf` file under `dir`, sorted.
fn tf_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with(".terraform") {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "tf") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The blocks `kind "a" "b"` of a module directory (all its files).
fn blocks(module: &Path, kind: &str, labels: &[&str]) -> Vec<Block> {
    let mut out = Vec::new();
    for file in tf_files(module) {
        if file.parent() != Some(module) {
            continue;
        }
        for block in parse(&file).into_blocks() {
            let matches = block.identifier() == kind
                && block.labels().len() >= labels.len()
                && labels
                    .iter()
                    .zip(block.labels())
                    .all(|(want, got)| got.as_str() == *want);
            if matches {
                out.push(block);
            }
        }
    }
    out
}

fn one_block(module: &Path, kind: &str, labels: &[&str]) -> Block {
    let mut found = blocks(module, kind, labels);
    assert_eq!(
        found.len(),
        1,
        "one {kind} {labels:?} in {}",
        module.display()
    );
    found.remove(0)
}

fn attr<'a>(body: &'a Body, key: &str) -> &'a Expression {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

/// An expression as HCL text (`module.data.queue_name`).
fn text(expr: &Expression) -> String {
    hcl::format::to_string(expr).unwrap()
}

/// Terraform's `merge` and `compact`, enough for the app module.
fn context(vars: &Map<String, Value>) -> Context<'static> {
    fn merge(args: FuncArgs) -> Result<Value, String> {
        let mut out = Map::new();
        for arg in args.iter() {
            match arg {
                Value::Object(o) => out.extend(o.clone()),
                Value::Null => {}
                other => return Err(format!("merge of a non-object {other:?}")),
            }
        }
        Ok(Value::Object(out))
    }
    fn compact(args: FuncArgs) -> Result<Value, String> {
        let Some(Value::Array(items)) = args.first() else {
            return Err("compact takes a list".into());
        };
        Ok(Value::Array(
            items
                .iter()
                .filter(|v| !matches!(v, Value::String(s) if s.is_empty()))
                .cloned()
                .collect(),
        ))
    }
    let mut ctx = Context::new();
    ctx.declare_var("var", Value::Object(vars.clone()));
    ctx.declare_func(
        "merge",
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(merge),
    );
    ctx.declare_func("compact", FuncDef::new(compact, [ParamType::Any]));
    ctx
}

/// One deployment's inputs to the app module, with the names the data module gives its
/// queues (evaluated from `modules/data/sqs.tf` with this prefix).
struct Scenario {
    label: &'static str,
    vars: Map<String, Value>,
}

const ACCOUNT: &str = "123456789012";

fn scenarios() -> Vec<Scenario> {
    let prefix = "docent-staging";
    let data = aws().join("modules/data");
    let data_ctx = context(&Map::from_iter([(
        "prefix".to_owned(),
        Value::from(prefix),
    )]));
    let queue_name = |resource: &str| -> String {
        let block = one_block(&data, "resource", &["aws_sqs_queue", resource]);
        match attr(block.body(), "name").evaluate(&data_ctx).unwrap() {
            Value::String(s) => s,
            other => panic!("queue name {other:?}"),
        }
    };
    let (tasks, dlq) = (queue_name("tasks"), queue_name("dlq"));
    let secret = |name: &str| {
        Value::from(format!(
            "arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{prefix}/{name}-20261207AbCdEf"
        ))
    };
    let base = |llm: bool, dynamodb: bool| -> Map<String, Value> {
        Map::from_iter([
            ("prefix".to_owned(), Value::from(prefix)),
            ("region".to_owned(), Value::from("eu-west-1")),
            ("vpc_cidr".to_owned(), Value::from("10.40.0.0/16")),
            (
                "public_url".to_owned(),
                Value::from("https://docent.example.com"),
            ),
            ("db_secret_arn".to_owned(), secret("database")),
            (
                "redis_url".to_owned(),
                Value::from("rediss://master.docent-staging.abc123.euw1.cache.amazonaws.com:6379"),
            ),
            ("redis_secret_arn".to_owned(), secret("redis")),
            ("jwt_secret_arn".to_owned(), secret("jwt")),
            (
                "llm_secret_arn".to_owned(),
                if llm { secret("llm") } else { Value::from("") },
            ),
            (
                "llm_kind".to_owned(),
                Value::from(if llm { "openai" } else { "none" }),
            ),
            (
                "llm_base_url".to_owned(),
                Value::from("https://api.openai.com/v1"),
            ),
            ("llm_model".to_owned(), Value::from("gpt-4o-mini")),
            (
                "bucket_name".to_owned(),
                Value::from("docent-staging-originals-20261207"),
            ),
            (
                "bucket_arn".to_owned(),
                Value::from("arn:aws:s3:::docent-staging-originals-20261207"),
            ),
            (
                "kms_key_arn".to_owned(),
                Value::from(format!(
                    "arn:aws:kms:eu-west-1:{ACCOUNT}:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
                )),
            ),
            ("queue_name".to_owned(), Value::from(tasks.clone())),
            (
                "queue_arn".to_owned(),
                Value::from(format!("arn:aws:sqs:eu-west-1:{ACCOUNT}:{tasks}")),
            ),
            ("dlq_name".to_owned(), Value::from(dlq.clone())),
            (
                "dlq_arn".to_owned(),
                Value::from(format!("arn:aws:sqs:eu-west-1:{ACCOUNT}:{dlq}")),
            ),
            ("queue_max_attempts".to_owned(), Value::from(5)),
            (
                "cache_table_name".to_owned(),
                Value::from(if dynamodb { "docent-staging-cache" } else { "" }),
            ),
            (
                "cache_table_arn".to_owned(),
                Value::from(if dynamodb {
                    format!("arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/docent-staging-cache")
                } else {
                    String::new()
                }),
            ),
            ("worker_concurrency".to_owned(), Value::from(2)),
            ("lambda_streaming".to_owned(), Value::from(true)),
        ])
    };
    vec![
        Scenario {
            label: "openai, redis",
            vars: base(true, false),
        },
        Scenario {
            label: "no llm, redis + dynamodb",
            vars: base(false, true),
        },
    ]
}

/// The app module's locals evaluated in order with `vars`.
fn app_locals(vars: &Map<String, Value>) -> Map<String, Value> {
    let app = aws().join("modules/app");
    let mut ctx = context(vars);
    let mut locals = Map::new();
    for block in blocks(&app, "locals", &[]) {
        for a in block.body().attributes() {
            let v = a
                .expr()
                .evaluate(&ctx)
                .unwrap_or_else(|e| panic!("local.{}: {e}", a.key()));
            locals.insert(a.key().to_owned(), v);
            ctx.declare_var("local", Value::Object(locals.clone()));
        }
    }
    locals
}

fn env_of(locals: &Map<String, Value>, name: &str) -> BTreeMap<String, String> {
    let Some(Value::Object(o)) = locals.get(name) else {
        panic!("local.{name} is not an object");
    };
    o.iter()
        // The ECS and Lambda modules take map(string): Terraform converts numbers and bools.
        .map(|(k, v)| match v {
            Value::String(s) => (k.clone(), s.clone()),
            Value::Number(n) => (k.clone(), n.to_string()),
            Value::Bool(b) => (k.clone(), b.to_string()),
            other => panic!("local.{name}.{k} is not a string: {other:?}"),
        })
        .collect()
}

/// The environments, by the output names the ECS and Lambda modules read.
const ENVIRONMENTS: &[&str] = &[
    "api_environment",
    "worker_environment",
    "lambda_api_environment",
    "lambda_worker_environment",
];

/// The image's `ENV` (the Dockerfile's one ENV instruction).
fn image_env() -> BTreeMap<String, String> {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with("ENV "))
        .expect("an ENV line");
    line["ENV ".len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A value standing in for the secret a reference names, by its JSON key.
fn stand_in(key: &str) -> String {
    match key {
        "url" => "postgres://docent:pw-0123456789@docent-staging.abc.eu-west-1.rds.amazonaws.com:5432/docent".into(),
        "auth_token" => "a".repeat(64),
        "api_key" => "sk-test-0123456789abcdef".into(),
        "private_key" => ed25519_pem(),
        other => panic!("no stand-in for secret key {other}: add one"),
    }
}

fn ed25519_pem() -> String {
    // PKCS#8 v1, as Terraform's tls_private_key writes it.
    let key = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
    let der = key.to_pkcs8v1().unwrap();
    pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()))
}

/// `secretsmanager:ARN#key` → (ARN, key).
fn reference(value: &str) -> Option<(&str, &str)> {
    value.strip_prefix("secretsmanager:")?.rsplit_once('#')
}

fn config_check(env: &BTreeMap<String, String>, extra: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_docent"));
    cmd.args(["config", "check"]).env_clear();
    for (k, v) in image_env().iter().chain(env) {
        let v = if k == "DOCENT_HOME" || k == "TMPDIR" {
            dir.path().to_str().unwrap().to_owned()
        } else {
            v.clone()
        };
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn every_task_and_function_environment_passes_docent_config_check() {
    for scenario in scenarios() {
        let locals = app_locals(&scenario.vars);
        for name in ENVIRONMENTS {
            let env = env_of(&locals, name);
            assert!(
                env.values().all(|v| !v.contains("${")),
                "{name}: an unevaluated template"
            );
            // No secret value in an environment: only references.
            for (k, v) in &env {
                let secretish = ["URL", "PASSWORD", "API_KEY", "PRIVATE_KEY", "TOKEN"];
                if secretish.iter().any(|s| k.ends_with(s))
                    && k != "DOCENT__REDIS__URL"
                    && k != "DOCENT__LLM__BASE_URL"
                    && k != "DOCENT__AUTH__PUBLIC_URL"
                {
                    assert!(
                        v.starts_with("secretsmanager:arn:aws:secretsmanager:"),
                        "{name}: {k} must be a Secrets Manager reference"
                    );
                }
            }
            // The API behind the ALB trusts the VPC's forwarded addresses, and nothing else.
            if name.contains("api") {
                assert_eq!(
                    env.get("DOCENT__SERVER__TRUSTED_PROXIES")
                        .map(String::as_str),
                    Some("[\"10.40.0.0/16\"]"),
                    "{name}"
                );
            }
            let resolved: BTreeMap<String, String> = env
                .iter()
                .map(|(k, v)| match reference(v) {
                    Some((_, key)) => (k.clone(), stand_in(key)),
                    None => (k.clone(), v.clone()),
                })
                .collect();
            let out = config_check(&resolved, &[]);
            assert!(
                out.status.success(),
                "{} / {name}: docent config check failed:\n{}{}",
                scenario.label,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// With moto: the references themselves resolve, from secrets shaped as the data module
/// writes them.
#[tokio::test(flavor = "multi_thread")]
async fn secret_references_resolve_from_secrets_manager() {
    let Ok(endpoint) = std::env::var("DOCENT_TEST_AWS_ENDPOINT") else {
        eprintln!("SKIPPED: DOCENT_TEST_AWS_ENDPOINT (moto) is not set");
        return;
    };
    let sm = docent_aws::secrets::SecretsManager::connect(Some(&endpoint), Some("eu-west-1")).await;
    let scenario = scenarios().remove(0);
    let locals = app_locals(&scenario.vars);
    let env = env_of(&locals, "api_environment");
    // One secret per referenced ARN, a JSON object of the keys referenced in it; moto names it
    // by a unique name and the environment then uses the ARN moto gives it.
    let mut secrets: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for v in env.values() {
        if let Some((arn, key)) = reference(v) {
            secrets
                .entry(arn.to_owned())
                .or_default()
                .insert(key.to_owned(), json!(stand_in(key)));
        }
    }
    assert_eq!(secrets.len(), 4, "database, redis, jwt and llm secrets");
    let run = uuid_like();
    let mut arns = BTreeMap::new();
    for (arn, object) in &secrets {
        let name = format!("{}-{run}", arn.rsplit(':').next().unwrap());
        let created = sm
            .client()
            .create_secret()
            .name(&name)
            .secret_string(serde_json::Value::Object(object.clone()).to_string())
            .send()
            .await
            .expect("moto creates the secret");
        arns.insert(arn.clone(), created.arn().unwrap().to_owned());
    }
    let env: BTreeMap<String, String> = env
        .into_iter()
        .map(|(k, v)| {
            let v = match reference(&v) {
                Some((arn, key)) => format!("secretsmanager:{}#{key}", arns[arn]),
                None => v.clone(),
            };
            (k, v)
        })
        .collect();
    let out = config_check(
        &env,
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    assert!(
        out.status.success(),
        "docent config check with references failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{:x}", std::process::id())
}

#[test]
fn ports_routes_commands_and_queues_agree_with_docent() {
    let aws = aws();
    let scenario = scenarios().remove(0);
    let locals = app_locals(&scenario.vars);
    let env = env_of(&locals, "api_environment");

    // The port: server.bind, the app module's container_port, the ALB target group, the ECS
    // port mapping and security group rules all use the one value.
    let port = match &locals["container_port"] {
        Value::Number(n) => n.as_u64().unwrap(),
        other => panic!("container_port {other:?}"),
    };
    assert_eq!(env["DOCENT__SERVER__BIND"], format!("0.0.0.0:{port}"));
    assert_eq!(
        image_env()["DOCENT__SERVER__BIND"],
        format!("0.0.0.0:{port}")
    );
    let main = aws.clone();
    let module = |name: &str| one_block(&main, "module", &[name]);
    for (m, key, want) in [
        ("edge", "container_port", "module.app.container_port"),
        ("edge", "health_check_path", "module.app.health_check_path"),
        ("ecs", "container_port", "module.app.container_port"),
        ("ecs", "api_environment", "module.app.api_environment"),
        ("ecs", "worker_environment", "module.app.worker_environment"),
        ("ecs", "app_policy_json", "module.app.policy_json"),
        (
            "lambda",
            "api_environment",
            "module.app.lambda_api_environment",
        ),
        (
            "lambda",
            "worker_environment",
            "module.app.lambda_worker_environment",
        ),
        ("lambda", "app_policy_json", "module.app.policy_json"),
        ("app", "queue_name", "module.data.queue_name"),
        ("app", "dlq_name", "module.data.dlq_name"),
        ("app", "queue_arn", "module.data.queue_arn"),
        ("app", "dlq_arn", "module.data.dlq_arn"),
        ("app", "queue_max_attempts", "var.queue_max_attempts"),
        ("data", "queue_max_attempts", "var.queue_max_attempts"),
        ("app", "cache_table_name", "module.data.cache_table_name"),
        ("app", "bucket_name", "module.data.bucket_name"),
    ] {
        assert_eq!(text(attr(module(m).body(), key)), want, "module {m}: {key}");
    }
    let edge = aws.join("modules/edge");
    let tg = one_block(&edge, "resource", &["aws_lb_target_group", "api"]);
    assert_eq!(text(attr(tg.body(), "port")), "var.container_port");
    let hc = tg
        .body()
        .blocks()
        .find(|b| b.identifier() == "health_check")
        .expect("a health check");
    assert_eq!(text(attr(hc.body(), "path")), "var.health_check_path");
    assert_eq!(locals["health_check_path"], Value::from("/ready"));
    let root_vars = aws.clone();
    let idle = one_block(&root_vars, "variable", &["alb_idle_timeout"]);
    let idle: u64 = text(attr(idle.body(), "default")).trim().parse().unwrap();
    assert!(
        idle >= 300,
        "streamed answers need an idle timeout of 300 s or more"
    );
    let alb = one_block(&edge, "resource", &["aws_lb", "this"]);
    assert_eq!(text(attr(alb.body(), "idle_timeout")), "var.idle_timeout");

    // The queue names docent is given are the queues the data module makes, and the redrive
    // allows queue.max_attempts + 1 receives, as docent_aws::sqs expects.
    assert_eq!(
        env["DOCENT__QUEUE__BACKEND__QUEUE_NAME"],
        "docent-staging-tasks"
    );
    assert_eq!(
        env["DOCENT__QUEUE__BACKEND__DLQ_NAME"],
        "docent-staging-tasks-dlq"
    );
    let data = aws.join("modules/data");
    for (output, want) in [
        ("queue_name", "aws_sqs_queue.tasks.name"),
        ("dlq_name", "aws_sqs_queue.dlq.name"),
        ("queue_arn", "aws_sqs_queue.tasks.arn"),
        ("dlq_arn", "aws_sqs_queue.dlq.arn"),
    ] {
        let o = one_block(&data, "output", &[output]);
        assert_eq!(text(attr(o.body(), "value")), want, "data output {output}");
    }
    let tasks = one_block(&data, "resource", &["aws_sqs_queue", "tasks"]);
    let Expression::FuncCall(call) = attr(tasks.body(), "redrive_policy") else {
        panic!("redrive_policy = jsonencode({{...}})");
    };
    let Expression::Object(policy) = &call.args[0] else {
        panic!("redrive policy object");
    };
    let field = |name: &str| {
        policy
            .iter()
            .find(|(k, _)| matches!(k, hcl::ObjectKey::Identifier(id) if id.as_str() == name))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("redrive policy {name}"))
    };
    let ctx = context(&Map::from_iter([(
        "queue_max_attempts".to_owned(),
        Value::from(5),
    )]));
    let attempts: u64 = env["DOCENT__QUEUE__MAX_ATTEMPTS"].parse().unwrap();
    assert_eq!(
        field("maxReceiveCount").evaluate(&ctx).unwrap(),
        Value::from(attempts + 1)
    );
    assert_eq!(text(field("deadLetterTargetArn")), "aws_sqs_queue.dlq.arn");

    // The DynamoDB table: docent's key and TTL attributes.
    let table = one_block(&data, "resource", &["aws_dynamodb_table", "cache"]);
    assert_eq!(
        attr(table.body(), "hash_key"),
        &Expression::from(docent_aws::dynamo::KEY_ATTRIBUTE)
    );
    let ttl = table
        .body()
        .blocks()
        .find(|b| b.identifier() == "ttl")
        .unwrap();
    assert_eq!(
        attr(ttl.body(), "attribute_name"),
        &Expression::from(docent_aws::dynamo::TTL_ATTRIBUTE)
    );

    // The lifecycle rule expires docent's direct-upload staging prefix.
    let upload_key = docent_blob::BlobStore::upload_key(
        docent_domain::TenantId::new(),
        docent_domain::CollectionId::new(),
        docent_domain::DocumentId::new(),
    );
    let staging = format!("{}/", upload_key.split('/').next().unwrap());
    let lifecycle = one_block(
        &data,
        "resource",
        &["aws_s3_bucket_lifecycle_configuration"],
    );
    let prefixes: Vec<String> = lifecycle
        .body()
        .blocks()
        .filter(|r| r.identifier() == "rule")
        .filter(|r| r.body().blocks().any(|b| b.identifier() == "expiration"))
        .filter_map(|r| r.body().blocks().find(|b| b.identifier() == "filter"))
        .filter_map(|f| {
            f.body()
                .attributes()
                .find(|a| a.key() == "prefix")
                .map(|a| text(a.expr()))
        })
        .collect();
    assert!(
        prefixes.contains(&format!("\"{staging}\"")),
        "a rule expiring {staging}: {prefixes:?}"
    );

    // The commands: the ECS services and Lambda functions run commands docent has.
    let ecs = aws.join("modules/ecs");
    let lambda = aws.join("modules/lambda");
    // `command = [...]` of the container definitions and image configs, each element a string
    // or a string local of its module.
    let mut commands: Vec<Vec<String>> = Vec::new();
    for module in [&ecs, &lambda] {
        let locals: BTreeMap<String, String> = blocks(module, "locals", &[])
            .iter()
            .flat_map(|b| b.body().attributes())
            .filter_map(|a| match a.expr() {
                Expression::String(s) => Some((a.key().to_owned(), s.clone())),
                _ => None,
            })
            .collect();
        for file in tf_files(module) {
            let t = std::fs::read_to_string(&file).unwrap();
            for line in t.lines() {
                let Some(rest) = line.trim().strip_prefix("command") else {
                    continue;
                };
                let list = rest.trim_start_matches([' ', '=']).trim();
                if !list.starts_with('[') || list.contains("\"CMD\"") {
                    continue;
                }
                let body = hcl::parse(&format!("c = {list}")).unwrap();
                let Expression::Array(items) = attr(&body, "c") else {
                    panic!("{list}");
                };
                commands.push(
                    items
                        .iter()
                        .map(|e| match e {
                            Expression::String(s) => s.clone(),
                            other => {
                                let name = text(other);
                                let local = name.strip_prefix("local.").unwrap_or_else(|| {
                                    panic!("{}: command element {name}", file.display())
                                });
                                locals[local].clone()
                            }
                        })
                        .collect(),
                );
            }
        }
    }
    for want in [
        &["serve", "--no-workers"][..],
        &["worker", "--metrics-bind"][..],
        &["lambda", "api"][..],
        &["lambda", "worker"][..],
    ] {
        assert!(
            commands
                .iter()
                .any(|c| c.len() >= want.len() && c.iter().zip(want).all(|(a, b)| a == b)),
            "a service or function runs {want:?}: {commands:?}"
        );
    }
    // The worker's metrics are for its sidecar only: on the loopback address.
    let worker = commands
        .iter()
        .find(|c| c.first().map(String::as_str) == Some("worker"))
        .unwrap();
    let bind: std::net::SocketAddr = worker[2].parse().unwrap();
    assert!(bind.ip().is_loopback(), "--metrics-bind {bind}");

    // The worker function reports partial batch failures.
    let mapping = one_block(
        &lambda,
        "resource",
        &["aws_lambda_event_source_mapping", "worker"],
    );
    assert_eq!(
        attr(mapping.body(), "function_response_types"),
        &Expression::Array(vec![Expression::from("ReportBatchItemFailures")])
    );
    // …and a schedule invokes it for the queue's sweep (nothing else re-sends lost deliveries
    // in the Lambda shape), allowed to by a permission for exactly that rule.
    let target = one_block(
        &lambda,
        "resource",
        &["aws_cloudwatch_event_target", "sweep"],
    );
    assert_eq!(
        text(attr(target.body(), "arn")),
        "aws_lambda_function.worker.arn"
    );
    let rule = one_block(&lambda, "resource", &["aws_cloudwatch_event_rule", "sweep"]);
    assert!(
        text(attr(rule.body(), "schedule_expression")).contains("rate("),
        "the sweep runs on a rate schedule"
    );
    let permission = one_block(&lambda, "resource", &["aws_lambda_permission", "sweep"]);
    assert_eq!(
        text(attr(permission.body(), "source_arn")),
        "aws_cloudwatch_event_rule.sweep.arn"
    );

    // docent has each command the deployment runs.
    for args in &commands {
        let out = Command::new(env!("CARGO_BIN_EXE_docent"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`docent {} --help` failed: the deployment runs a command docent lacks\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `docent worker --metrics-bind`, as the ECS worker task runs it: its sidecar scrapes the
/// worker's series and the queue gauges.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_serves_its_metrics_for_the_sidecar() {
    let home = tempfile::tempdir().unwrap();
    let port = common::servers::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_docent"))
        .args(["worker", "--metrics-bind", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("DOCENT_HOME", home.path())
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let up = common::servers::wait_for_port(port, true, std::time::Duration::from_secs(30));
    let body = if up {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await;
        match r.and_then(|r| r.error_for_status()) {
            Ok(r) => Some(r.text().await),
            Err(e) => Some(Err(e)),
        }
    } else {
        None
    };
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let body = body
        .unwrap_or_else(|| panic!("the worker did not listen on {port}:\n{stderr}"))
        .unwrap();
    let names = exposed_names(&body);
    for want in ["docent_queue_depth", "docent_tasks"] {
        assert!(
            names.contains(want),
            "{want} in the worker's /metrics:\n{body}"
        );
    }
}

// --- IAM ---------------------------------------------------------------------------------

/// IAM actions of AWS SDK operations whose action is named differently.
fn sdk_action(service: &str, op: &str) -> String {
    let pascal: String = op
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let action = match (service, pascal.as_str()) {
        ("sqs", "SendMessageBatch") => "SendMessage".to_owned(),
        ("sqs", "DeleteMessageBatch") => "DeleteMessage".to_owned(),
        ("sqs", "ChangeMessageVisibilityBatch") => "ChangeMessageVisibility".to_owned(),
        _ => pascal,
    };
    format!("{service}:{action}")
}

/// The IAM prefix of an `aws_sdk_*` crate.
fn sdk_service(krate: &str) -> &'static str {
    match krate {
        "sqs" => "sqs",
        "dynamodb" => "dynamodb",
        "secretsmanager" => "secretsmanager",
        other => panic!("crate aws_sdk_{other}: add its IAM service prefix here"),
    }
}

/// S3 actions of the object_store calls docent-blob makes, and of the URLs it signs.
fn object_store_actions(call: &str) -> &'static [&'static str] {
    match call {
        // PutObject.
        "put" => &["s3:PutObject"],
        // CreateMultipartUpload, UploadPart, CompleteMultipartUpload.
        "put_multipart" | "write" | "finish" | "wait_for_capacity" => &["s3:PutObject"],
        // AbortMultipartUpload.
        "abort" => &["s3:AbortMultipartUpload"],
        // GetObject, HeadObject.
        "get" | "head" => &["s3:GetObject"],
        // CopyObject reads the source and writes the target.
        "copy" => &["s3:GetObject", "s3:PutObject"],
        "delete" => &["s3:DeleteObject"],
        // ListObjectsV2.
        "list" => &["s3:ListBucket"],
        "GET" => &["s3:GetObject"],
        "PUT" => &["s3:PutObject"],
        // A signed PUT of the bucket itself (Path::from("")): CreateBucket.
        "PUT bucket" => &["s3:CreateBucket"],
        other => panic!("object_store call `{other}`: add the S3 actions it needs here"),
    }
}

/// Actions reached only through a setting that creates resources; the deployment makes them
/// with Terraform and must leave the setting off.
const GATED: &[(&str, &str)] = &[
    ("sqs:CreateQueue", "CREATE_QUEUES"),
    ("sqs:SetQueueAttributes", "CREATE_QUEUES"),
    ("dynamodb:CreateTable", "CREATE_TABLE"),
    ("dynamodb:DescribeTable", "CREATE_TABLE"),
    ("dynamodb:UpdateTimeToLive", "CREATE_TABLE"),
    ("dynamodb:DescribeTimeToLive", "CREATE_TABLE"),
    ("s3:CreateBucket", "CREATE_BUCKET"),
];

/// `text` without its `#[cfg(test)] mod tests` and without whitespace.
fn code_of(path: &Path) -> String {
    let t = std::fs::read_to_string(path).unwrap();
    let t = t.split("#[cfg(test)]\nmod tests").next().unwrap();
    t.split_whitespace().collect()
}

fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Identifiers right after each occurrence of `marker` in `code`.
fn calls_after<'a>(code: &'a str, marker: &str) -> Vec<&'a str> {
    code.match_indices(marker)
        .map(|(i, _)| {
            let rest = &code[i + marker.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Every IAM action docent's code calls, each with where it was found.
fn code_actions() -> BTreeMap<String, BTreeSet<String>> {
    let crates = root().join("crates");
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut sdk_files = 0;
    for krate in std::fs::read_dir(&crates).unwrap() {
        let src = krate.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        for file in rs_files(&src) {
            let code = code_of(&file);
            let services: BTreeSet<&str> = calls_after(&code, "aws_sdk_")
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            let rel = file.strip_prefix(root()).unwrap().display().to_string();
            if services.is_empty() {
                continue;
            }
            // A file calling the SDK speaks to one service.
            assert_eq!(
                services.len(),
                1,
                "{rel}: one AWS SDK per file, found {services:?}"
            );
            sdk_files += 1;
            let service = sdk_service(services.first().unwrap());
            // Operations are client methods called without arguments (`client.send_message()`
            // then a builder chain); `clone()` and `config()` are the client's own methods.
            for op in calls_after(&code, "client.") {
                let called = code.contains(&format!("client.{op}()"));
                if op.is_empty() || !called || ["clone", "config"].contains(&op) {
                    continue;
                }
                found
                    .entry(sdk_action(service, op))
                    .or_default()
                    .insert(rel.clone());
            }
        }
    }
    assert!(
        sdk_files >= 3,
        "the SQS, DynamoDB and Secrets Manager clients were found"
    );

    // object_store, in docent-blob.
    for file in rs_files(&crates.join("docent-blob/src")) {
        let code = code_of(&file);
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        let mut calls: Vec<String> = calls_after(&code, "self.inner.")
            .into_iter()
            .chain(calls_after(&code, "writer."))
            .map(str::to_owned)
            .collect();
        for (i, _) in code.match_indices("Method::") {
            let rest = &code[i + "Method::".len()..];
            let method: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            let bucket_itself = rest[method.len()..].starts_with(",&Path::from(\"\")");
            let signing =
                code[..i].ends_with("signed_url(") || code[..i].ends_with("signed_url_opts(");
            if signing {
                calls.push(if bucket_itself {
                    format!("{method} bucket")
                } else {
                    method
                });
            }
        }
        for call in calls {
            for action in object_store_actions(&call) {
                found
                    .entry((*action).to_owned())
                    .or_default()
                    .insert(rel.clone());
            }
        }
    }
    found
}

/// The statements of a policy document: (sid, actions, resource expressions).
fn statements(document: &Block) -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for b in document.body().blocks() {
        let body = match b.identifier() {
            "statement" => b.body(),
            "dynamic" => b
                .body()
                .blocks()
                .find(|c| c.identifier() == "content")
                .expect("dynamic statement content")
                .body(),
            _ => continue,
        };
        if body.attributes().any(|a| a.key() == "effect") {
            assert_eq!(text(attr(body, "effect")), "\"Allow\"");
        }
        let sid = text(attr(body, "sid"));
        let Expression::Array(actions) = attr(body, "actions") else {
            panic!("{sid}: actions must be a literal list");
        };
        let actions = actions
            .iter()
            .map(|a| match a {
                Expression::String(s) => s.clone(),
                other => panic!("{sid}: action {other:?} must be a literal"),
            })
            .collect();
        let resources = match attr(body, "resources") {
            Expression::Array(rs) => rs.iter().map(text).collect(),
            other => vec![text(other)],
        };
        out.push((sid, actions, resources));
    }
    out
}

#[test]
fn the_iam_policy_grants_exactly_what_the_code_calls() {
    let code = code_actions();
    let app = aws().join("modules/app");
    let document = one_block(&app, "data", &["aws_iam_policy_document", "docent"]);
    let statements = statements(&document);

    // The deployment keeps the create-resource settings off, so their actions are not needed.
    for scenario in scenarios() {
        let locals = app_locals(&scenario.vars);
        for name in ENVIRONMENTS {
            for (k, v) in env_of(&locals, name) {
                if GATED.iter().any(|(_, setting)| k.ends_with(setting)) {
                    assert_eq!(
                        v, "false",
                        "{name}: {k} must stay off (Terraform creates it)"
                    );
                }
            }
        }
    }
    let mut needed: BTreeSet<String> = code
        .keys()
        .filter(|a| !GATED.iter().any(|(g, _)| g == a))
        .cloned()
        .collect();
    for (gated, _) in GATED {
        assert!(
            code.contains_key(*gated),
            "{gated} is no longer called by the code: drop it from GATED"
        );
    }
    // SSE-KMS (storage.server_side_encryption = "aws:kms", and the queues' and secrets' key):
    // writes ask KMS for a data key, reads decrypt it.
    let env = env_of(&app_locals(&scenarios()[0].vars), "api_environment");
    if env
        .get("DOCENT__STORAGE__SERVER_SIDE_ENCRYPTION")
        .map(String::as_str)
        == Some("aws:kms")
    {
        needed.insert("kms:GenerateDataKey".into());
        needed.insert("kms:Decrypt".into());
    }

    let granted: BTreeSet<String> = statements
        .iter()
        .flat_map(|(_, actions, _)| actions.iter().cloned())
        .collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty(),
        "the code calls actions the policy lacks: {missing:?} (called in {:?})",
        missing.iter().map(|a| code.get(*a)).collect::<Vec<_>>()
    );
    assert!(
        extra.is_empty(),
        "the policy grants actions the code never calls: {extra:?}"
    );

    // Each on the deployment's own resources, never "*".
    for (sid, actions, resources) in &statements {
        let allowed: &[&str] = match actions[0].split(':').next().unwrap() {
            "s3" => &["var.bucket_arn", "\"${var.bucket_arn}/*\""],
            "kms" => &["var.kms_key_arn"],
            "sqs" => &["var.queue_arn", "var.dlq_arn"],
            "secretsmanager" => &[
                "compact([var.db_secret_arn, var.redis_secret_arn, var.jwt_secret_arn, var.llm_secret_arn])",
            ],
            "dynamodb" => &["statement.value"],
            other => panic!("{sid}: service {other}"),
        };
        assert!(
            actions
                .iter()
                .all(|a| a.starts_with(actions[0].split(':').next().unwrap())),
            "{sid}: one service per statement"
        );
        for r in resources {
            assert!(
                allowed.contains(&r.as_str()),
                "{sid}: resource {r} is not one of {allowed:?}"
            );
        }
    }

    // The roles docent runs as get docent's policy, and from the other documents in the
    // compute modules only platform actions (logs, traces, image pulls) — none of the services
    // docent's code uses, whose grants belong in the app module alone.
    for module in ["ecs", "lambda"] {
        let dir = aws().join("modules").join(module);
        let docent_policy = one_block(&dir, "resource", &["aws_iam_role_policy", "docent"]);
        assert_eq!(
            text(attr(docent_policy.body(), "policy")),
            "var.app_policy_json"
        );
        for doc in blocks(&dir, "data", &["aws_iam_policy_document"]) {
            for b in doc.body().blocks() {
                let Ok(Expression::Array(actions)) = b
                    .body()
                    .attributes()
                    .find(|a| a.key() == "actions")
                    .map(|a| a.expr().clone())
                    .ok_or(())
                else {
                    continue;
                };
                for a in actions {
                    let a = text(&a);
                    let service = a.trim_matches('"').split(':').next().unwrap().to_owned();
                    assert!(
                        ["logs", "xray", "ecr", "kms", "sts"].contains(&service.as_str()),
                        "modules/{module}: {a} belongs in the app module's policy"
                    );
                    if service == "kms" {
                        assert_eq!(
                            a, "\"kms:Decrypt\"",
                            "modules/{module}: only image decryption"
                        );
                    }
                }
            }
        }
    }
}

// --- metrics ------------------------------------------------------------------------------

/// The `docent_*` metric names the Terraform names: quoted (`"docent_queue_depth"`) or in a
/// search expression (`MetricName=\"docent_http_requests_total\"`).
fn terraform_metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in tf_files(&aws()) {
        let t = std::fs::read_to_string(&file).unwrap();
        for (i, _) in t.match_indices("docent_") {
            if i > 0 && t[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &t[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let after = &rest[end..];
            if end > "docent_".len() && (after.starts_with('"') || after.starts_with("\\\"")) {
                names.insert(rest[..end].to_owned());
            }
        }
    }
    names
}

/// The metric names of a Prometheus text exposition (histogram series by their base name).
fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .flat_map(|n| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .map(str::to_owned);
            [Some(n.to_owned()), base].into_iter().flatten()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_alarms_name_metrics_docent_exposes() {
    let names = terraform_metric_names();
    for must in [
        "docent_http_requests_total",
        "docent_queue_depth",
        "docent_queue_oldest_task_age_seconds",
        "docent_ingest_documents_total",
        "docent_llm_rate_limited_total",
    ] {
        assert!(
            names.contains(must),
            "the Terraform's metric names include {must}: {names:?}"
        );
    }

    // One model answer (a bot's) that meets a 429 first: the rate-limit and budget series appear.
    let fake = FakeServer::start(FakeConfig::default()).await.unwrap();
    fake.set_faults(Faults {
        script: vec![Fault::RateLimited(RetryAfter::Seconds(1))],
        ..Faults::default()
    });
    let app = common::spawn_app_with(common::with_llm(&fake)).await;
    let (status, _) = app.get("/ready").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the load balancer's health check route"
    );
    let collection = app.create_collection("handbook").await;
    app.upload_ok(
        &collection,
        "france.md",
        b"# France\n\nParis is the capital of France. It lies on the Seine.\n",
    )
    .await;
    app.upload_ok(
        &collection,
        "rows.csv",
        b"name,role\nada,engineer\ngrace,admiral\n",
    )
    .await;
    assert!(app.drain().await >= 2, "both documents ingested");
    let (status, bot) = app
        .post_json(
            "/api/v1/bots",
            json!({ "name": "geo", "collection_ids": [collection] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    let (status, answer) = app
        .post_json(
            &format!("/api/v1/bots/{}/chat", bot["id"].as_str().unwrap()),
            json!({ "message": "What is the capital of France?" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["answered_by"], "model", "{answer}");
    assert!(
        fake.log().iter().any(|e| e.fault == Some("rate_limited")),
        "the fake answered 429 once: {:?}",
        fake.log()
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exposed = exposed_names(&metrics);
    let missing: Vec<_> = names.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "the dashboard or alarms name metrics docent does not expose: {missing:?}\n\
         exposed: {exposed:?}"
    );
    app.stop().await;
    fake.shutdown().await;
}
