//! The deployment files at the repository root: both compose files match the Compose
//! specification's schema, `docent config check` accepts the environment of every docent
//! service in them (the Dockerfile's ENV, then the service's, with `.env.example`'s values; the
//! secret files they name are stood in for), and the image files lint clean (hadolint, checkov).
//! Each check skips loudly when its tool (python3 with PyYAML and jsonschema; hadolint, checkov)
//! is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

type Envs = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;

#[test]
fn every_compose_service_passes_docent_config_check() {
    // A python3 with PyYAML and jsonschema: the system's, else the lint venv's (make lint).
    let venv = std::env::var_os("DOCENT_SERVICES_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/docent-services")))
        .map(|c| c.join("lint-venv/bin/python"));
    let has_modules = |python: &Path| {
        Command::new(python)
            .args(["-c", "import yaml, jsonschema"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let python = match venv {
        Some(v) if !has_modules(Path::new("python3")) && has_modules(&v) => v,
        _ => PathBuf::from("python3"),
    };
    let out = match Command::new(&python)
        .arg("scripts/check-compose")
        .args([
            ".env.example",
            "docker-compose.yml",
            "docker-compose.prod.yml",
        ])
        .current_dir(root())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED the compose check: no python3 ({e})");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) {
        eprintln!("SKIPPED the compose check: {stderr}");
        return;
    }
    assert!(
        out.status.success(),
        "compose files do not validate:\n{stderr}"
    );
    let mut json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let image_env: BTreeMap<String, String> = serde_json::from_value(json["image"].take()).unwrap();
    json.as_object_mut().unwrap().remove("image");
    let all: Envs = serde_json::from_value(json).unwrap();
    assert_eq!(
        image_env.get("DOCENT__SERVER__BIND").map(String::as_str),
        Some("0.0.0.0:8080")
    );
    for (file, services) in &all {
        assert!(
            services.contains_key("api") && services.contains_key("worker"),
            "{file}: an api and a worker service"
        );
        for (service, env) in services {
            let dir = tempfile::tempdir().unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_docent"));
            cmd.args(["config", "check"]).env_clear();
            for (k, v) in image_env.iter().chain(env) {
                // The image's volume and the mounted secrets, stood in for by files here.
                let v = if k == "DOCENT_HOME" || k == "TMPDIR" {
                    dir.path().to_str().unwrap().to_owned()
                } else if let Some(name) = v.strip_prefix("/run/secrets/") {
                    let p = dir.path().join(name);
                    std::fs::write(&p, "stand-in for a mounted secret\n").unwrap();
                    p.to_str().unwrap().to_owned()
                } else {
                    v.clone()
                };
                cmd.env(k, v);
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{file} service {service}: docent config check failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn the_image_files_lint_clean() {
    let out = Command::new("scripts/lint-deploy")
        .arg("--no-install")
        .current_dir(root())
        .output()
        .expect("scripts/lint-deploy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(2) => {
            eprintln!("SKIPPED part of the image lint (make lint installs the tools):\n{stderr}")
        }
        _ => panic!(
            "scripts/lint-deploy found problems:\n{}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}
