//! The docent home, through the real binary run from an unrelated working directory: local
//! commands keep their data in the home (`DOCENT_HOME`), relative paths in a configuration
//! file resolve against the file, the default model is found from anywhere, a missing model
//! names every place searched, and pdf-extract's per-glyph warnings become one debug line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_docent");

/// `docent ARGS` in `cwd` with `vars`, and no docent variable of the test's own environment.
fn docent(cwd: &Path, vars: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DOCENT") {
            cmd.env_remove(k);
        }
    }
    cmd.env("DOCENT__LLM__KIND", "none");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("docent runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A successful search that listed `name`.
fn assert_found(out: &Output, name: &str) {
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(name),
        "{}",
        text(out)
    );
}

/// A temporary directory with `elsewhere/notes.md` (the working directory of the commands).
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("elsewhere");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("notes.md"),
        "# Leave\n\nEmployees get 25 days of paid leave.\n",
    )
    .unwrap();
    (dir, work)
}

#[test]
fn local_commands_keep_their_data_in_the_home_from_any_directory() {
    let (dir, work) = workspace();
    let home = dir.path().join("home");
    let none = Path::new("none");
    let vars = [
        ("DOCENT_HOME", home.as_path()),
        ("DOCENT__EMBEDDER__KIND", none),
    ];
    let out = docent(&work, &vars, &["ingest", "notes.md", "--collection", "hr"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        home.join("docent-data/docent.db").is_file(),
        "{}",
        text(&out)
    );
    assert!(
        !work.join("docent-data").exists(),
        "nothing in the working directory"
    );

    // From another directory, the same home answers.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let out = docent(
        &other,
        &vars,
        &["search", "paid leave", "--collection", "hr"],
    );
    assert_found(&out, "notes.md");

    let out = docent(&other, &vars, &["config", "paths"]);
    let paths = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        paths.contains(&format!(
            "home:        {} (from DOCENT_HOME)",
            home.display()
        )),
        "{paths}"
    );
    assert!(
        paths.contains(&format!(
            "data dir:    {}",
            home.join("docent-data").display()
        )),
        "{paths}"
    );
    let out = docent(&other, &vars, &["config", "paths", "data-dir"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        home.join("docent-data").to_str().unwrap()
    );
}

#[test]
fn without_docent_home_the_platform_home_is_used_and_old_data_here_is_pointed_out() {
    let (dir, work) = workspace();
    let user = dir.path().join("user");
    // A data directory as docent kept it in the working directory before it had a home.
    std::fs::create_dir_all(work.join("docent-data")).unwrap();
    std::fs::write(work.join("docent-data/docent.db"), b"").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(&work).args(["config", "paths"]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DOCENT") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("HOME", &user)
        .env_remove("XDG_DATA_HOME")
        .env("DOCENT__EMBEDDER__KIND", "none")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{}", text(&out));
    if cfg!(target_os = "linux") {
        let home = user.join(".local/share/docent");
        assert!(
            stdout.contains(&format!(
                "home:        {} (the platform data directory",
                home.display()
            )),
            "{stdout}"
        );
    }
    assert!(
        stderr.contains("this directory has a docent-data") && stderr.contains("DOCENT_HOME"),
        "{stderr}"
    );
    // With DOCENT_HOME naming a home, no warning.
    let out = docent(&work, &[("DOCENT_HOME", &user)], &["config", "paths"]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("docent-data"),
        "{}",
        text(&out)
    );
}

#[test]
fn relative_paths_in_a_config_file_resolve_against_the_file() {
    let (dir, work) = workspace();
    let conf = dir.path().canonicalize().unwrap().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("docent.toml"),
        "data_dir = \"data\"\n[embedder]\nkind = \"none\"\n",
    )
    .unwrap();
    let home = dir.path().join("home");
    let vars = [("DOCENT_HOME", home.as_path())];
    let args = |rest: &[&'static str]| {
        let mut a = vec!["--config", "../conf/docent.toml"];
        a.extend_from_slice(rest);
        a
    };
    let out = docent(
        &work,
        &vars,
        &args(&["ingest", "notes.md", "--collection", "hr"]),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(conf.join("data/docent.db").is_file(), "{}", text(&out));
    assert!(!home.exists() && !work.join("data").exists());

    let out = docent(&work, &vars, &args(&["config", "paths", "data-dir"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        conf.join("data").to_str().unwrap(),
        "{}",
        text(&out)
    );
    // A relative path from the environment is the working directory's.
    let out = docent(
        &work,
        &[("DOCENT__DATA_DIR", Path::new("here"))],
        &args(&["config", "paths", "data-dir"]),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        work.canonicalize().unwrap().join("here").to_str().unwrap(),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_model_names_the_places_searched() {
    let (dir, work) = workspace();
    let home = dir.path().join("home");
    let missing = dir.path().join("no-model-here");
    let out = docent(
        &work,
        &[
            ("DOCENT_HOME", home.as_path()),
            ("DOCENT__EMBEDDER__MODEL_DIR", missing.as_path()),
        ],
        &["search", "leave"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        err.contains("cannot load the embedding model")
            && err.contains(&format!(
                "searched {} (embedder.model_dir)",
                missing.display()
            )),
        "{err}"
    );
    // A configured directory is the only place looked in.
    assert!(!err.contains("checkout"), "{err}");
}

#[test]
fn the_default_model_is_found_in_the_checkout_from_anywhere() {
    let Some(model) = common::model_dir() else {
        println!("skipped: no model in the checkout (run scripts/get-model)");
        return;
    };
    let checkout_model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/all-MiniLM-L6-v2")
        .canonicalize()
        .unwrap();
    if model.canonicalize().unwrap() != checkout_model {
        println!("skipped: the model is not in this checkout");
        return;
    }
    let (dir, work) = workspace();
    let home = dir.path().join("home");
    let vars = [("DOCENT_HOME", home.as_path())];
    let out = docent(&work, &vars, &["config", "paths"]);
    let found = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("model dir:   ")?
                .strip_suffix(" (in the checkout docent was built from)")
                .map(PathBuf::from)
        })
        .and_then(|p| p.canonicalize().ok());
    assert_eq!(found, Some(checkout_model), "{}", text(&out));
    let out = docent(&work, &vars, &["ingest", "notes.md", "--collection", "hr"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = docent(
        &work,
        &vars,
        &["search", "vacation days", "--mode", "vector"],
    );
    assert_found(&out, "notes.md");
}

#[test]
fn pdf_glyph_warnings_are_one_debug_line_per_document() {
    let pdf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docent-extract/tests/fixtures/unknown_glyphs.pdf");
    let (_dir, work) = workspace();
    let run = |rust_log: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&work)
            .args(["extract", pdf.to_str().unwrap()])
            .env_remove("DOCENT_CONFIG")
            .env("DOCENT__EMBEDDER__KIND", "none");
        match rust_log {
            Some(filter) => cmd.env("RUST_LOG", filter),
            None => cmd.env_remove("RUST_LOG"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for filter in ["debug", "info,pdf_extract=warn"] {
        let log = run(Some(filter));
        assert_eq!(
            log.matches("unknown glyph name").count(),
            0,
            "{filter}: {log}"
        );
        let summaries = log
            .lines()
            .filter(|l| l.contains("pdf-extract warnings for this PDF"))
            .count();
        assert_eq!(summaries, usize::from(filter == "debug"), "{filter}: {log}");
        if filter == "debug" {
            assert!(log.contains("unknown_glyphs=5"), "{log}");
        }
    }
    assert!(!run(None).contains("glyph"));
}

/// The seed applications' environment names configure docent (issue 19 item 8), and `config
/// show` and `config check` say which were taken and which ignored — never their values.
#[test]
fn config_show_and_check_name_the_seed_variables_they_took() {
    let (dir, work) = workspace();
    let home = dir.path().join("home");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&work).args(args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("DOCENT") {
                cmd.env_remove(k);
            }
        }
        cmd.env("DOCENT_HOME", &home)
            .env("DOCENT__EMBEDDER__KIND", "none")
            .env("DOCENT__CACHE__KIND", "memory")
            .env(
                "DATABASE_URL",
                "postgresql+psycopg2://app:pw-canary@db.internal:5432/app",
            )
            .env("REDIS_URL", "redis://:redis-canary@cache.internal:6379/0")
            .env("LOG_LEVEL", "WARNING")
            .output()
            .expect("docent runs")
    };
    let out = run(&["config", "show"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("#   DATABASE_URL → database.kind, database.url"),
        "{shown}"
    );
    assert!(shown.contains("#   REDIS_URL → redis.url"), "{shown}");
    assert!(
        shown.contains("#   REDIS_URL: ignored (cache.kind = \"memory\" is set)"),
        "{shown}"
    );
    let shown_toml: toml::Value = toml::from_str(&shown).expect("still TOML");
    assert_eq!(shown_toml["database"]["kind"].as_str(), Some("postgres"));
    assert_eq!(shown_toml["cache"]["kind"].as_str(), Some("memory"));
    assert_eq!(shown_toml["log"]["level"].as_str(), Some("warn"));
    let all = text(&out);
    assert!(
        !all.contains("pw-canary") && !all.contains("redis-canary"),
        "{all}"
    );

    let out = run(&["config", "check"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("seed variable LOG_LEVEL → log.level"),
        "{said}"
    );
    assert!(said.ends_with("configuration is valid\n"), "{said}");
    assert!(!text(&out).contains("pw-canary"));
}
