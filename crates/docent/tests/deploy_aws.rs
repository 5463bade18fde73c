//! `deploy/aws/deploy.sh` and the GitHub workflows that call it.
//!
//! The script runs in a scratch copy of its directory with stand-ins for `terraform`, `aws`
//! and `docker` first on PATH (`tests/fixtures/fake-aws-cli`: they record their argv and answer
//! the read-only calls from files — Terraform outputs, ECS services and task definition
//! revisions, ECR images, Lambda versions). Each subcommand's `--dry-run` must print the
//! commands it would run, in order, and run none that changes anything; a real run against the
//! stand-ins must make exactly those calls; rollback must pick the newest earlier revision with
//! another image; a missing variable, tool or tfvars file must stop it with a message naming
//! it. The smoke test runs against a local HTTP server. The workflows are parsed as YAML
//! (python3 with PyYAML: skipped, saying so, without it).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

const REPO: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/docent-staging";
const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition";

/// A scratch checkout: deploy/aws/deploy.sh with a main.tf, a variables.tf with two required
/// variables, env/staging.tfvars, the stand-ins in bin/ and their answers in state/.
struct Stage {
    dir: tempfile::TempDir,
}

impl Stage {
    /// An ECS environment that was deployed before: api on revision 7 (image bbb; 6 has the same
    /// image, 5 has aaa, 8 is the newest, ccc), worker on 3 (aaa; 4 is ccc), and a longer family
    /// `docent-staging-api-canary` that shares the api's prefix.
    fn ecs() -> Self {
        let s = Self::bare();
        for (name, value) in [
            ("region", "eu-west-1"),
            ("ecr_repository_url", REPO),
            ("ecs_cluster_name", "docent-staging"),
            ("api_service_name", "docent-staging-api"),
            ("worker_service_name", "docent-staging-worker"),
            ("lambda_api_function_name", ""),
            ("lambda_worker_function_name", ""),
        ] {
            s.output(name, value);
        }
        for (family, rev, tag) in [
            ("docent-staging-api", 5, "aaa"),
            ("docent-staging-api", 6, "bbb"),
            ("docent-staging-api", 7, "bbb"),
            ("docent-staging-api", 8, "ccc"),
            ("docent-staging-worker", 3, "aaa"),
            ("docent-staging-worker", 4, "ccc"),
            ("docent-staging-api-canary", 9, "zzz"),
        ] {
            s.write(
                &format!("state/ecs/taskdefs/{family}/{rev}"),
                &format!("{REPO}:{tag}\n"),
            );
        }
        s.service("docent-staging-api", 7);
        s.service("docent-staging-worker", 3);
        s
    }

    /// A Lambda environment: both functions on ccc, published versions 1 (aaa), 2 (bbb), 10 (ccc).
    fn lambda() -> Self {
        let s = Self::bare();
        for (name, value) in [
            ("region", "eu-west-1"),
            ("ecr_repository_url", REPO),
            ("ecs_cluster_name", ""),
            ("api_service_name", ""),
            ("worker_service_name", ""),
            ("lambda_api_function_name", "docent-staging-api"),
            ("lambda_worker_function_name", "docent-staging-worker"),
        ] {
            s.output(name, value);
        }
        for f in ["docent-staging-api", "docent-staging-worker"] {
            s.write(
                &format!("state/lambda/{f}/latest"),
                &format!("{REPO}:ccc\n"),
            );
            for (v, tag) in [(1, "aaa"), (2, "bbb"), (10, "ccc")] {
                s.write(
                    &format!("state/lambda/{f}/versions/{v}"),
                    &format!("{REPO}:{tag}\n"),
                );
            }
        }
        s
    }

    /// Nothing deployed yet: no Terraform outputs.
    fn bare() -> Self {
        let s = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let aws = s.path("deploy/aws");
        std::fs::create_dir_all(aws.join("env")).unwrap();
        std::fs::copy(root().join("deploy/aws/deploy.sh"), aws.join("deploy.sh")).unwrap();
        s.write(
            "deploy/aws/main.tf",
            "# the Terraform is not read by the stand-in\n",
        );
        s.write(
            "deploy/aws/variables.tf",
            r#"variable "environment" {
  type        = string
  description = "staging or production"
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "domain_name" {
  description = "The API's host name"
  type        = string
  validation {
    condition     = length(var.domain_name) > 0
    error_message = "A host name is needed."
  }
}

variable "image_tag" {
  type = string
}
"#,
        );
        s.write(
            "deploy/aws/env/staging.tfvars",
            "environment = \"staging\"\ndomain_name = \"docs.example.com\"\n",
        );
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-aws-cli");
        std::fs::create_dir_all(s.path("bin")).unwrap();
        for tool in ["terraform", "aws", "docker"] {
            std::fs::copy(fixtures.join(tool), s.path("bin").join(tool)).unwrap();
        }
        for d in [
            "state/outputs",
            "state/ecs/services",
            "state/ecr",
            "state/docker",
        ] {
            std::fs::create_dir_all(s.path(d)).unwrap();
        }
        // Initialised for staging (what `tf_init` leaves), so commands that only read outputs
        // do not initialise first.
        s.write("deploy/aws/.terraform/docent-environment", "staging\n");
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn output(&self, name: &str, value: &str) {
        self.write(&format!("state/outputs/{name}"), value);
    }

    /// The service `name` runs revision `rev` of the family of the same name.
    fn service(&self, name: &str, rev: u32) {
        self.write(
            &format!("state/ecs/services/{name}"),
            &format!("{ARN}/{name}:{rev}\n"),
        );
    }

    /// Runs deploy.sh with the stand-ins first on PATH (and no other terraform, aws or docker).
    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let _ = std::fs::remove_file(self.path("state/calls.log"));
        let path = format!("{}:/usr/bin:/bin", self.path("bin").display());
        let mut cmd = Command::new("bash");
        cmd.arg(self.path("deploy/aws/deploy.sh"))
            .args(args)
            .env("PATH", path)
            .env("FAKE_STATE", self.path("state"))
            .env_remove("DOCENT_IMAGE_TAG")
            .env_remove("TF_WORKSPACE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// The stand-ins' calls, one line each (`tool arg arg ...`).
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("state/calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "deploy.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "deploy.sh should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The commands a run printed (`+ cmd` lines), without the `+ `.
fn printed(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("+ "))
        .collect()
}

/// Asserts `lines` holds one line starting with each of `expected`, in this order, and
/// nothing else.
fn assert_sequence(lines: &[&str], expected: &[&str]) {
    assert_eq!(
        lines.len(),
        expected.len(),
        "printed commands:\n{}",
        lines.join("\n")
    );
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "expected a line starting with\n  {want}\ngot\n  {line}\nin\n{}",
            lines.join("\n")
        );
    }
}

/// Whether a recorded call only reads.
fn read_only(call: &str) -> bool {
    let w: Vec<&str> = call.split_whitespace().collect();
    match w.first() {
        Some(&"terraform") => w.contains(&"output"),
        Some(&"aws") => {
            w.len() > 2
                && ["describe-", "list-", "get-function"]
                    .iter()
                    .any(|p| w[2].starts_with(p))
        }
        Some(&"docker") => w.get(1..3) == Some(&["image", "inspect"][..]),
        _ => false,
    }
}

fn assert_dry(stage: &Stage) {
    for call in stage.calls() {
        assert!(read_only(&call), "a dry run ran a changing command: {call}");
    }
}

const INIT: &str = "terraform -chdir=deploy/aws init -input=false -reconfigure";
const WORKSPACE: &str = "terraform -chdir=deploy/aws workspace select -or-create staging";
const PLAN: &str = "terraform -chdir=deploy/aws plan -input=false -var-file=env/staging.tfvars -var image_tag=ccc -out=staging.tfplan";
const APPLY: &str = "terraform -chdir=deploy/aws apply -input=false staging.tfplan";
const SCAN_WAIT: &str = "aws ecr wait image-scan-complete --region eu-west-1 --repository-name docent-staging --image-id imageTag=ccc";

#[test]
fn plan_initialises_selects_the_workspace_and_writes_a_plan_file() {
    let s = Stage::ecs();
    let out = s.run(&["plan", "--env", "staging", "--tag", "ccc", "--dry-run"]);
    assert_sequence(&printed(&ok(&out)), &[INIT, WORKSPACE, PLAN]);
    assert_dry(&s);
    // A generated secret replaced (rotation): plan and apply only.
    let out = s.run(&[
        "plan",
        "--env",
        "staging",
        "--tag",
        "ccc",
        "--replace",
        "module.data.random_password.db",
        "--dry-run",
    ]);
    let plan_replacing = PLAN.replace(" -out=", " -replace=module.data.random_password.db -out=");
    assert_sequence(&printed(&ok(&out)), &[INIT, WORKSPACE, &plan_replacing]);
    let err = failed(&s.run(&["smoke", "--env", "staging", "--replace", "x"]));
    assert!(
        err.contains("--replace applies to plan and apply only"),
        "{err}"
    );
    // The backend settings of the environment, when there are any.
    s.write(
        "deploy/aws/env/staging.backend.hcl",
        "bucket = \"tf-state\"\n",
    );
    let out = s.run(&["plan", "--env=staging", "--tag=ccc", "--dry-run"]);
    assert_sequence(
        &printed(&ok(&out)),
        &[
            "terraform -chdir=deploy/aws init -input=false -reconfigure -backend-config=env/staging.backend.hcl",
            WORKSPACE,
            PLAN,
        ],
    );
}

#[test]
fn apply_pushes_a_missing_image_applies_the_plan_file_and_rolls_the_services() {
    let s = Stage::ecs();
    let out = s.run(&["apply", "--env", "staging", "--tag", "ccc", "--dry-run"]);
    let stdout = ok(&out);
    assert_sequence(
        &printed(&stdout),
        &[
            INIT,
            WORKSPACE,
            &format!(
                "docker build --pull --label org.opencontainers.image.revision=ccc -t {REPO}:ccc -f Dockerfile ."
            ),
            &format!(
                "aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin {}",
                REPO.split('/').next().unwrap()
            ),
            &format!("docker push {REPO}:ccc"),
            SCAN_WAIT,
            PLAN,
            APPLY,
            "aws ecs update-service --region eu-west-1 --cluster docent-staging --service docent-staging-api --task-definition docent-staging-api --force-new-deployment",
            "aws ecs update-service --region eu-west-1 --cluster docent-staging --service docent-staging-worker --task-definition docent-staging-worker --force-new-deployment",
            "aws ecs wait services-stable --region eu-west-1 --cluster docent-staging --services docent-staging-api docent-staging-worker",
        ],
    );
    assert_dry(&s);

    // The image is in ECR already: nothing is built or pushed.
    s.write("state/ecr/ccc", "");
    let out = s.run(&["apply", "--env", "staging", "--tag", "ccc", "--dry-run"]);
    let stdout = ok(&out);
    assert!(
        stdout.contains("already in ECR; nothing to push"),
        "{stdout}"
    );
    assert!(!printed(&stdout).iter().any(|l| l.starts_with("docker")));

    // Built here already as docent:<tag> (release.yml): tagged and pushed, not rebuilt.
    std::fs::remove_file(s.path("state/ecr/ccc")).unwrap();
    s.write("state/docker/docent:ccc", "");
    let out = s.run(&["apply", "--env", "staging", "--tag", "ccc", "--dry-run"]);
    let lines = ok(&out);
    let lines = printed(&lines);
    assert_eq!(lines[2], format!("docker tag docent:ccc {REPO}:ccc"));
    assert!(!lines.iter().any(|l| l.starts_with("docker build")));
}

#[test]
fn apply_for_real_runs_the_commands_and_fails_when_ecs_rolls_back() {
    let s = Stage::ecs();
    s.write("state/ecr/ccc", "");
    let out = s.run(&["apply", "--env", "staging", "--tag", "ccc"]);
    let stdout = ok(&out);
    assert!(
        stdout.contains(
            "ECS services docent-staging-api docent-staging-worker run their new task definitions"
        ),
        "{stdout}"
    );
    let changing: Vec<String> = s.calls().into_iter().filter(|c| !read_only(c)).collect();
    let changing: Vec<&str> = changing.iter().map(String::as_str).collect();
    assert_sequence(
        &changing,
        &[
            INIT,
            WORKSPACE,
            SCAN_WAIT,
            PLAN,
            APPLY,
            &format!(
                "aws ecs update-service --region eu-west-1 --cluster docent-staging --service docent-staging-api --task-definition {ARN}/docent-staging-api:8 "
            ),
            &format!(
                "aws ecs update-service --region eu-west-1 --cluster docent-staging --service docent-staging-worker --task-definition {ARN}/docent-staging-worker:4 "
            ),
            "aws ecs wait services-stable",
        ],
    );
    // The services now run the newest revisions.
    let svc =
        |n: &str| std::fs::read_to_string(s.path(&format!("state/ecs/services/{n}"))).unwrap();
    assert_eq!(
        svc("docent-staging-api").trim(),
        format!("{ARN}/docent-staging-api:8")
    );
    assert_eq!(
        svc("docent-staging-worker").trim(),
        format!("{ARN}/docent-staging-worker:4")
    );

    // A new revision whose deployment the circuit breaker rolls back: stable, but on the old
    // revision — apply says so and fails.
    s.write(
        "state/ecs/taskdefs/docent-staging-api/9",
        &format!("{REPO}:ddd\n"),
    );
    s.write(
        "state/ecs/taskdefs/docent-staging-worker/5",
        &format!("{REPO}:ddd\n"),
    );
    s.write("state/ecs/circuit-breaker", "");
    s.write("state/ecr/ddd", "");
    let err = failed(&s.run(&["apply", "--env", "staging", "--tag", "ddd"]));
    assert!(
        err.contains("ECS service docent-staging-api did not settle on")
            && err.contains("docent-staging-api:9")
            && err.contains("circuit breaker"),
        "{err}"
    );
}

#[test]
fn first_apply_creates_the_repository_before_anything_else() {
    let s = Stage::bare();
    let out = s.run(&["apply", "--env", "staging", "--tag", "ccc", "--dry-run"]);
    let stdout = ok(&out);
    let lines = printed(&stdout);
    assert_eq!(lines[..2], [INIT, WORKSPACE]);
    assert_eq!(
        lines[2],
        "terraform -chdir=deploy/aws apply -input=false -auto-approve -var-file=env/staging.tfvars -var image_tag=ccc -target=aws_ecr_repository.docent"
    );
    assert_eq!(
        lines[3],
        "deploy/aws/deploy.sh push --env staging --tag ccc   # once the repository exists"
    );
    assert_eq!(lines[4..6], [PLAN, APPLY]);
    assert!(lines[6].starts_with("aws ecs update-service"), "{stdout}");
    assert_dry(&s);
}

#[test]
fn commands_that_read_outputs_initialise_a_fresh_checkout_first() {
    let s = Stage::ecs();
    s.output("api_url", "https://docs.example.com");
    std::fs::remove_dir_all(s.path("deploy/aws/.terraform")).unwrap();
    let out = s.run(&["smoke", "--env", "staging", "--dry-run"]);
    let stdout = ok(&out);
    let lines = printed(&stdout);
    assert_eq!(lines[..2], [INIT, WORKSPACE]);
    assert!(lines[2].starts_with("curl"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not initialised for staging here"));
    // For real, once: init leaves its mark, and the next command reads outputs at once.
    ok(&s.run(&["rollback", "--env", "staging", "--tag", "zzz"]));
    assert!(
        s.calls()[0].ends_with("init -input=false -reconfigure"),
        "{:?}",
        s.calls()
    );
    ok(&s.run(&["rollback", "--env", "staging", "--tag", "zzz"]));
    assert!(s.calls().iter().all(|c| read_only(c)), "{:?}", s.calls());
    // Initialised for another environment (its backend may differ): initialised again.
    s.write("deploy/aws/.terraform/docent-environment", "production\n");
    ok(&s.run(&["rollback", "--env", "staging", "--tag", "zzz"]));
    assert!(s.calls()[0].contains(" init "), "{:?}", s.calls());
}

#[test]
fn push_and_destroy() {
    let s = Stage::ecs();
    let out = s.run(&["push", "--env", "staging", "--tag", "ccc", "--dry-run"]);
    let stdout = ok(&out);
    let lines = printed(&stdout);
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("docker build") && lines[2].starts_with("docker push"));
    assert_dry(&s);

    // For real: pushed, then the scan is waited for and read (no findings: it passes).
    let stdout = ok(&s.run(&["push", "--env", "staging", "--tag", "ccc"]));
    assert!(stdout.contains("scan: CRITICAL 0"), "{stdout}");
    let calls = s.calls();
    assert!(
        calls
            .iter()
            .any(|c| c == &format!("docker push {REPO}:ccc"))
    );
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("docker login --username AWS --password-stdin"))
    );

    // The scan gate: a CRITICAL finding fails push, and apply of that image (already in ECR);
    // DOCENT_SCAN_FAIL_ON decides which severities fail.
    s.write("state/ecr/bad", "CRITICAL=2\nHIGH=5\n");
    for cmd in ["push", "apply"] {
        let err = failed(&s.run(&[cmd, "--env", "staging", "--tag", "bad"]));
        assert!(
            err.contains(&format!(
                "the image scan of {REPO}:bad found CRITICAL=2 (DOCENT_SCAN_FAIL_ON=CRITICAL)"
            )),
            "{err}"
        );
        assert!(
            !s.calls()
                .iter()
                .any(|c| c.contains(" apply ") || c.contains("update-service"))
        );
    }
    let err = failed(&s.run_with(
        &["push", "--env", "staging", "--tag", "bad"],
        &[("DOCENT_SCAN_FAIL_ON", "CRITICAL,HIGH")],
    ));
    assert!(err.contains("found CRITICAL=2 HIGH=5"), "{err}");
    let stdout = ok(&s.run_with(
        &["push", "--env", "staging", "--tag", "bad"],
        &[("DOCENT_SCAN_FAIL_ON", "none")],
    ));
    assert!(stdout.contains("scan: HIGH 5"), "{stdout}");

    let err = failed(&s.run(&["destroy", "--env", "staging", "--tag", "ccc"]));
    assert!(err.contains("pass --yes"), "{err}");
    assert!(s.calls().is_empty());
    let out = s.run(&[
        "destroy",
        "--env",
        "staging",
        "--tag",
        "ccc",
        "--yes",
        "--dry-run",
    ]);
    assert_sequence(
        &printed(&ok(&out)),
        &[
            INIT,
            WORKSPACE,
            "terraform -chdir=deploy/aws destroy -input=false -auto-approve -var-file=env/staging.tfvars -var image_tag=ccc",
        ],
    );
    assert_dry(&s);
}

#[test]
fn rollback_picks_the_newest_earlier_revision_with_another_image() {
    let s = Stage::ecs();
    // api: 7 (bbb) → 5 (aaa): 6 runs the same image, the canary family is another family.
    // worker: 3 is its oldest revision with another image than... none: rollback refuses.
    let err = failed(&s.run(&["rollback", "--env", "staging", "--dry-run"]));
    assert!(
        err.contains("ECS service docent-staging-worker: no ACTIVE revision of docent-staging-worker before 3"),
        "{err}"
    );
    s.write(
        "state/ecs/taskdefs/docent-staging-worker/2",
        &format!("{REPO}:old\n"),
    );
    let out = s.run(&["rollback", "--env", "staging", "--dry-run"]);
    let stdout = ok(&out);
    assert_sequence(
        &printed(&stdout),
        &[
            &format!(
                "aws ecs update-service --region eu-west-1 --cluster docent-staging --service docent-staging-api --task-definition {ARN}/docent-staging-api:5 "
            ),
            &format!(
                "aws ecs update-service --region eu-west-1 --cluster docent-staging --service docent-staging-worker --task-definition {ARN}/docent-staging-worker:2 "
            ),
            "aws ecs wait services-stable --region eu-west-1 --cluster docent-staging --services docent-staging-api docent-staging-worker",
        ],
    );
    assert_dry(&s);

    // Leaving a named tag: only the services that still run it move (the worker runs aaa).
    let out = s.run(&["rollback", "--env", "staging", "--tag", "bbb", "--dry-run"]);
    let stdout = ok(&out);
    assert!(
        stdout.contains("ECS service docent-staging-worker already runs"),
        "{stdout}"
    );
    assert_sequence(
        &printed(&stdout),
        &[
            &format!(
                "aws ecs update-service --region eu-west-1 --cluster docent-staging --service docent-staging-api --task-definition {ARN}/docent-staging-api:5 "
            ),
            "aws ecs wait services-stable --region eu-west-1 --cluster docent-staging --services docent-staging-api",
        ],
    );
    // Nothing runs that tag: nothing to do (what the workflow meets after ECS rolled back).
    let out = s.run(&["rollback", "--env", "staging", "--tag", "ccc"]);
    assert!(printed(&ok(&out)).is_empty());
    assert!(s.calls().iter().all(|c| read_only(c)));

    // For real: the services end on those revisions.
    ok(&s.run(&["rollback", "--env", "staging"]));
    let api = std::fs::read_to_string(s.path("state/ecs/services/docent-staging-api")).unwrap();
    assert_eq!(api.trim(), format!("{ARN}/docent-staging-api:5"));
}

#[test]
fn lambda_apply_updates_the_functions_and_rollback_takes_the_previous_image() {
    let s = Stage::lambda();
    s.write("state/ecr/ddd", "");
    let out = s.run(&["apply", "--env", "staging", "--tag", "ddd", "--dry-run"]);
    let stdout = ok(&out);
    let lines = printed(&stdout);
    let plan_ddd = PLAN.replace("image_tag=ccc", "image_tag=ddd");
    assert_sequence(
        &lines,
        &[
            INIT,
            WORKSPACE,
            &SCAN_WAIT.replace("imageTag=ccc", "imageTag=ddd"),
            &plan_ddd,
            APPLY,
            &format!(
                "aws lambda update-function-code --region eu-west-1 --function-name docent-staging-api --image-uri {REPO}:ddd --publish"
            ),
            "aws lambda wait function-updated-v2 --region eu-west-1 --function-name docent-staging-api",
            &format!(
                "aws lambda update-function-code --region eu-west-1 --function-name docent-staging-worker --image-uri {REPO}:ddd --publish"
            ),
            "aws lambda wait function-updated-v2 --region eu-west-1 --function-name docent-staging-worker",
        ],
    );
    assert_dry(&s);

    // $LATEST runs ccc; version 10 is ccc too, so the previous image is version 2's bbb.
    let out = s.run(&["rollback", "--env", "staging", "--dry-run"]);
    let stdout = ok(&out);
    assert_sequence(
        &printed(&stdout),
        &[
            &format!(
                "aws lambda update-function-code --region eu-west-1 --function-name docent-staging-api --image-uri {REPO}:bbb --publish"
            ),
            "aws lambda wait function-updated-v2 --region eu-west-1 --function-name docent-staging-api",
            &format!(
                "aws lambda update-function-code --region eu-west-1 --function-name docent-staging-worker --image-uri {REPO}:bbb --publish"
            ),
            "aws lambda wait function-updated-v2 --region eu-west-1 --function-name docent-staging-worker",
        ],
    );
    assert_dry(&s);
}

/// An HTTP server answering `/health` 200 and `/ready` with `ready_status`, for `requests`
/// requests; returns its base URL.
fn http_server(ready_status: u16, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut request_line = String::new();
            BufReader::new(&stream)
                .read_line(&mut request_line)
                .unwrap();
            let (status, body) = if request_line.starts_with("GET /health ") {
                (200, r#"{"status":"ok"}"#)
            } else if request_line.starts_with("GET /ready ") && ready_status == 200 {
                (200, r#"{"status":"ready"}"#)
            } else {
                (
                    ready_status,
                    r#"{"status":"unavailable","checks":{"database":"down"}}"#,
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn smoke_checks_health_and_ready_on_the_api_url() {
    let s = Stage::ecs();
    s.output("api_url", "https://docs.example.com/");
    let out = s.run(&["smoke", "--env", "staging", "--dry-run"]);
    let stdout = ok(&out);
    let lines = printed(&stdout);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("curl -sS --max-time 10 https://docs.example.com/health"));
    assert!(lines[1].starts_with("curl -sS --max-time 10 https://docs.example.com/ready"));

    s.output("api_url", &http_server(200, 2));
    let stdout = ok(&s.run(&["smoke", "--env", "staging"]));
    assert!(stdout.contains("/ready 200"), "{stdout}");

    s.output("api_url", &http_server(503, 2));
    let err = failed(&s.run_with(
        &["smoke", "--env", "staging"],
        &[("DOCENT_SMOKE_TIMEOUT", "0")],
    ));
    assert!(
        err.contains("/ready answered 503") && err.contains("database"),
        "{err}"
    );
}

#[test]
fn missing_inputs_stop_it_with_a_message_naming_them() {
    let s = Stage::ecs();
    let cases: &[(&[&str], &str)] = &[
        (&["plan"], "--env is required: staging or production"),
        (
            &["plan", "--env", "prod"],
            "--env must be staging or production, not 'prod'",
        ),
        (&["deploy", "--env", "staging"], "unknown command 'deploy'"),
        (
            &["plan", "--env", "staging", "--bogus"],
            "unknown option '--bogus'",
        ),
        (
            &["plan", "--env", "production", "--tag", "ccc"],
            "deploy/aws/env/production.tfvars not found: copy deploy/aws/env/production.tfvars.example",
        ),
        (
            &["plan", "--env", "staging"],
            "no image tag: not a git checkout; pass --tag",
        ),
        (
            &["plan", "--env", "staging", "--tag", "a b"],
            "--tag 'a b' is not a valid image tag",
        ),
    ];
    for (args, message) in cases {
        let err = failed(&s.run(args));
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(s.calls().is_empty(), "{args:?} ran {:?}", s.calls());
    }

    // A required variable left out of the tfvars.
    s.write(
        "deploy/aws/env/staging.tfvars",
        "environment = \"staging\"\n",
    );
    let err = failed(&s.run(&["plan", "--env", "staging", "--tag", "ccc"]));
    assert!(
        err.contains("deploy/aws/env/staging.tfvars does not set 'domain_name' (required by deploy/aws/variables.tf"),
        "{err}"
    );
    // Another environment's tfvars.
    s.write(
        "deploy/aws/env/staging.tfvars",
        "environment = \"production\"\ndomain_name = \"x\"\n",
    );
    let err = failed(&s.run(&["plan", "--env", "staging", "--tag", "ccc"]));
    assert!(
        err.contains("sets environment = \"production\", not \"staging\""),
        "{err}"
    );
    s.write(
        "deploy/aws/env/staging.tfvars",
        "environment = \"staging\"\ndomain_name = \"x\"\n",
    );

    // A missing tool.
    std::fs::remove_file(s.path("bin/aws")).unwrap();
    let err = failed(&s.run(&["rollback", "--env", "staging"]));
    assert!(err.contains("aws not found on PATH"), "{err}");
    std::fs::remove_file(s.path("bin/terraform")).unwrap();
    let err = failed(&s.run(&["plan", "--env", "staging", "--tag", "ccc"]));
    assert!(err.contains("terraform not found on PATH"), "{err}");

    // An output with no value: nothing deployed yet.
    let s = Stage::bare();
    let err = failed(&s.run(&["smoke", "--env", "staging"]));
    assert!(
        err.contains("terraform output api_url has no value for staging: has 'deploy.sh apply --env staging' run?"),
        "{err}"
    );
    let err = failed(&s.run(&["push", "--env", "staging", "--tag", "ccc"]));
    assert!(
        err.contains("terraform output region has no value"),
        "{err}"
    );
}

/// The workflows as JSON (python3 + PyYAML), or None (skipped, said so).
fn workflows() -> Option<serde_json::Value> {
    let script = r#"
import glob, json, os, sys, yaml
out = {}
for p in sorted(glob.glob(".github/workflows/*.yml")) + [".github/actions/aws-env/action.yml"]:
    with open(p) as f:
        # `on` is YAML 1.1's true to PyYAML; keep it a key.
        out[p] = yaml.load(f, Loader=yaml.BaseLoader)
json.dump(out, sys.stdout)
"#;
    let out = match Command::new("python3")
        .args(["-c", script])
        .current_dir(root())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED the workflow checks: no python3 ({e})");
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'yaml'") {
        eprintln!("SKIPPED the workflow checks: python3 lacks PyYAML");
        return None;
    }
    assert!(
        out.status.success(),
        "the workflows do not parse:\n{stderr}"
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn runs(job: &serde_json::Value) -> Vec<&str> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect()
}

#[test]
fn the_workflows_parse_and_call_make_test_and_deploy_sh() {
    let Some(all) = workflows() else { return };
    let ci = &all[".github/workflows/ci.yml"];
    assert!(runs(&ci["jobs"]["lint"]).contains(&"make lint"));
    let test = &ci["jobs"]["test"];
    assert!(
        runs(test).contains(&"make test"),
        "ci.yml runs the README's test command"
    );
    assert!(
        runs(test)
            .iter()
            .any(|r| r.contains("scripts/test-services")),
        "ci.yml brings the test services up as .ci/run does"
    );
    assert_eq!(test["services"]["postgres"]["image"], "postgres:15");
    assert_eq!(test["services"]["redis"]["ports"][0], "6379:6379");

    // Least privilege: every workflow reads contents only, unless a job asks for more.
    for (path, wf) in all.as_object().unwrap() {
        if path.contains("/actions/") {
            continue;
        }
        assert_eq!(
            wf["permissions"],
            serde_json::json!({"contents": "read"}),
            "{path}"
        );
    }
    // Every action pinned by at least a major version.
    let text: String = all.to_string();
    let uses: Vec<&str> = text
        .split("\"uses\":\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert!(uses.len() > 10);
    for u in uses {
        assert!(
            u.starts_with("./")
                || u.rsplit_once('@')
                    .is_some_and(|(_, v)| v.starts_with('v') || v == "stable"),
            "{u} is not pinned"
        );
    }

    let release = &all[".github/workflows/release.yml"]["jobs"]["image"];
    assert_eq!(release["permissions"]["id-token"], "write");
    assert!(
        runs(release)
            .iter()
            .any(|r| r.starts_with("deploy/aws/deploy.sh push"))
    );

    let deploy = &all[".github/workflows/deploy.yml"]["jobs"];
    assert_eq!(deploy["staging"]["with"]["environment"], "staging");
    assert_eq!(deploy["production"]["with"]["environment"], "production");
    assert!(
        deploy["production"]["needs"]
            .as_array()
            .unwrap()
            .contains(&"staging".into())
    );

    let env = &all[".github/workflows/deploy-environment.yml"]["jobs"];
    assert!(
        runs(&env["plan"])
            .iter()
            .any(|r| r.contains("deploy/aws/deploy.sh plan"))
    );
    let job = &env["deploy"];
    assert_eq!(job["needs"], "plan");
    assert!(
        job["environment"]["name"]
            .as_str()
            .unwrap()
            .contains("inputs.environment")
    );
    let steps = job["steps"].as_array().unwrap();
    let step = |id: &str| steps.iter().position(|s| s["id"] == id).unwrap();
    assert!(
        steps[step("apply")]["run"]
            .as_str()
            .unwrap()
            .contains("deploy.sh apply")
    );
    assert!(
        steps[step("smoke")]["run"]
            .as_str()
            .unwrap()
            .contains("deploy.sh smoke")
    );
    let rollback = steps.last().unwrap();
    assert!(rollback["if"].as_str().unwrap().starts_with("failure()"));
    assert!(
        rollback["run"]
            .as_str()
            .unwrap()
            .contains("deploy.sh rollback")
    );
}

/// The `docent …` commands of a Markdown text: lines of fenced code blocks and inline code
/// spans where `docent` is the command (first word, or after a pipe, `;`, `&&`, `$(`), as
/// (line number, the words naming the subcommand: lower-case words up to the first option,
/// placeholder or argument).
fn docent_commands(markdown: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let mut in_block = false;
    for (n, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let mut snippets: Vec<&str> = Vec::new();
        if in_block {
            snippets.push(line);
        } else {
            // `docent` alone names the program.
            snippets.extend(
                line.split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|s| s.trim() != "docent"),
            );
        }
        for snippet in snippets {
            // `$(docent …)`: the command starts inside the word; `…)` ends it.
            let words: Vec<&str> = snippet
                .split_whitespace()
                .map(|w| w.trim_end_matches([')', ';']))
                .collect();
            for (i, w) in words.iter().enumerate() {
                let (w, substituted) = match w.rsplit_once("$(") {
                    Some((_, after)) => (after, true),
                    None => (*w, false),
                };
                let at_command =
                    i == 0 || substituted || matches!(words[i - 1], "|" | ";" | "&&" | "||" | "$");
                if w != "docent" || !at_command {
                    continue;
                }
                let sub: Vec<String> = words[i + 1..]
                    .iter()
                    .take_while(|w| {
                        w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                            && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    })
                    .map(|w| (*w).to_owned())
                    .collect();
                found.push((n + 1, sub));
            }
        }
    }
    found
}

#[test]
fn every_docent_command_in_the_runbook_exists() {
    let runbook = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    let commands = docent_commands(&runbook);
    assert!(commands.len() >= 15, "{commands:?}");
    let mut checked = std::collections::BTreeSet::new();
    let mut missing = Vec::new();
    for (line, sub) in commands {
        assert!(
            !sub.is_empty(),
            "docs/operations.md:{line}: `docent` without a subcommand"
        );
        if !checked.insert(sub.clone()) {
            continue;
        }
        // `--help` with the subcommand words only: clap refuses a word that is no subcommand.
        let out = Command::new(env!("CARGO_BIN_EXE_docent"))
            .args(&sub)
            .arg("--help")
            .env("DOCENT_HOME", std::env::temp_dir())
            .output()
            .unwrap();
        if !out.status.success() {
            missing.push(format!(
                "docs/operations.md:{line}: `docent {}`: {}",
                sub.join(" "),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or_default()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "not docent commands:\n{}",
        missing.join("\n")
    );
    // The extraction itself: words up to the first option or placeholder, commands after a pipe.
    let sample = "```sh\ndocent tasks retry TASK_ID --url x\nx=$(docent keys list) | docent config show\n```\nrun `docent lambda api` or `docker run docent`\n";
    let got: Vec<Vec<String>> = docent_commands(sample)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let want: Vec<Vec<&str>> = vec![
        vec!["tasks", "retry"],
        vec!["keys", "list"],
        vec!["config", "show"],
        vec!["lambda", "api"],
    ];
    assert_eq!(got, want);
}

/// Runs the real AWS CLI against moto (`DOCENT_TEST_AWS_ENDPOINT`), returning its stdout.
fn moto_aws(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new("aws")
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn rollback_and_apply_with_the_real_aws_cli_against_moto() {
    let endpoint = match std::env::var("DOCENT_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            eprintln!("SKIPPED the moto rollback: DOCENT_TEST_AWS_ENDPOINT not set");
            return;
        }
    };
    if Command::new("aws").arg("--version").output().is_err() {
        eprintln!("SKIPPED the moto rollback: no aws CLI on PATH");
        return;
    }
    let region = "us-east-1";
    let prefix = format!(
        "cicd-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let cluster = prefix.clone();
    let aws = |args: &[&str]| {
        let mut all = vec!["--region", region];
        all.extend_from_slice(args);
        moto_aws(&endpoint, &all)
    };
    aws(&["ecs", "create-cluster", "--cluster-name", &cluster]);
    // api: 1 (old), 2 (aaa), 3 (bbb), 4 (bbb, a configuration change): the newest earlier
    // revision with another image is 2, whatever order the endpoint lists them in (moto ignores
    // --sort). worker: 1 (aaa), 2 (bbb). Each with an ADOT-like sidecar of another image.
    for (role, tags) in [
        ("api", &["old", "aaa", "bbb", "bbb"][..]),
        ("worker", &["aaa", "bbb"][..]),
    ] {
        let family = format!("{prefix}-{role}");
        for tag in tags {
            let containers = format!(
                r#"[{{"name":"docent","image":"{REPO}:{tag}","essential":true}},{{"name":"adot","image":"public.ecr.aws/aws-observability/aws-otel-collector:latest","essential":false}}]"#
            );
            aws(&[
                "ecs",
                "register-task-definition",
                "--family",
                &family,
                "--requires-compatibilities",
                "FARGATE",
                "--network-mode",
                "awsvpc",
                "--cpu",
                "256",
                "--memory",
                "512",
                "--container-definitions",
                &containers,
            ]);
        }
        let current = format!("{family}:{}", tags.len());
        aws(&[
            "ecs",
            "create-service",
            "--cluster",
            &cluster,
            "--service-name",
            &family,
            "--task-definition",
            &current,
            "--desired-count",
            "0",
        ]);
    }
    let running = |role: &str| {
        aws(&[
            "ecs",
            "describe-services",
            "--cluster",
            &cluster,
            "--services",
            &format!("{prefix}-{role}"),
            "--query",
            "services[0].taskDefinition",
            "--output",
            "text",
        ])
    };

    // deploy.sh with only terraform stood in for: the aws on PATH is the real CLI.
    let s = Stage::bare();
    std::fs::remove_file(s.path("bin/aws")).unwrap();
    for (name, value) in [
        ("region", region),
        ("ecr_repository_url", REPO),
        ("ecs_cluster_name", &cluster),
        ("api_service_name", &format!("{prefix}-api")),
        ("worker_service_name", &format!("{prefix}-worker")),
        ("lambda_api_function_name", ""),
        ("lambda_worker_function_name", ""),
    ] {
        s.output(name, value);
    }
    let path = format!(
        "{}:{}",
        s.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let stdout = ok(&s.run_with(&["rollback", "--env", "staging", "--tag", "bbb"], &env));
    assert!(
        stdout.contains(&format!(
            "{prefix}-api:4 ({REPO}:bbb) -> {prefix}-api:2 ({REPO}:aaa)"
        )),
        "{stdout}"
    );
    assert!(
        running("api").ends_with(&format!("/{prefix}-api:2")),
        "{}",
        running("api")
    );
    assert!(running("worker").ends_with(&format!("/{prefix}-worker:1")));
    // Again: nothing runs bbb any more, nothing moves.
    let stdout = ok(&s.run_with(&["rollback", "--env", "staging", "--tag", "bbb"], &env));
    assert!(printed(&stdout).is_empty(), "{stdout}");
    assert!(stdout.contains("already runs"), "{stdout}");

    // apply: the image is in ECR (moto scans on request only: the scan ECR runs on push is
    // started by hand), Terraform (stood in for) registered a new revision of each family;
    // apply gates the image, rolls both services onto the newest revisions and checks ECS
    // settled there.
    let repo = aws(&[
        "ecr",
        "create-repository",
        "--repository-name",
        &prefix,
        "--query",
        "repository.repositoryUri",
        "--output",
        "text",
    ]);
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7023,"digest":"sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"},"layers":[]}"#;
    aws(&[
        "ecr",
        "put-image",
        "--repository-name",
        &prefix,
        "--image-tag",
        "ccc",
        "--image-manifest",
        manifest,
    ]);
    aws(&[
        "ecr",
        "start-image-scan",
        "--repository-name",
        &prefix,
        "--image-id",
        "imageTag=ccc",
    ]);
    for role in ["api", "worker"] {
        let containers = format!(r#"[{{"name":"docent","image":"{repo}:ccc","essential":true}}]"#);
        aws(&[
            "ecs",
            "register-task-definition",
            "--family",
            &format!("{prefix}-{role}"),
            "--requires-compatibilities",
            "FARGATE",
            "--network-mode",
            "awsvpc",
            "--cpu",
            "256",
            "--memory",
            "512",
            "--container-definitions",
            &containers,
        ]);
    }
    s.output("ecr_repository_url", &repo);
    let mut apply_env = env.to_vec();
    // moto's scan reports a made-up finding; the gate itself is tested with the stand-ins.
    apply_env.push(("DOCENT_SCAN_FAIL_ON", "none"));
    let stdout = ok(&s.run_with(&["apply", "--env", "staging", "--tag", "ccc"], &apply_env));
    assert!(
        stdout.contains("already in ECR") && stdout.contains("scan: CRITICAL"),
        "{stdout}"
    );
    assert!(
        stdout.contains("run their new task definitions"),
        "{stdout}"
    );
    assert!(
        running("api").ends_with(&format!("/{prefix}-api:5")),
        "{}",
        running("api")
    );
    assert!(running("worker").ends_with(&format!("/{prefix}-worker:3")));

    aws(&[
        "ecr",
        "delete-repository",
        "--repository-name",
        &prefix,
        "--force",
    ]);
    aws(&["ecs", "delete-cluster", "--cluster", &cluster]);
}
