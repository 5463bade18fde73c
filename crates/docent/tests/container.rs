//! The container image's run, without a container engine: the binary under test started the
//! way the `Dockerfile` starts it — the image's user id (65532, when the test runs as root), only
//! the image's environment (`DOCENT_HOME` and `TMPDIR` on the data volume, the baked-in model
//! directory, `server.bind` on every address, JSON logs), the data directory as working
//! directory and the only place it may write — then `docent healthcheck` (the image's
//! HEALTHCHECK) and `GET /ready`, its idle memory, and a graceful stop on SIGTERM (the image's
//! STOPSIGNAL).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The image's `USER`.
const IMAGE_UID: u32 = 65532;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `docent ARGS` as the image runs it: its environment only, as its user when we are root.
fn image_command(data: &Path, port: u16, args: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_docent");
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={IMAGE_UID}"),
            &format!("--regid={IMAGE_UID}"),
            "--clear-groups",
            "--",
            bin,
        ]);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args).env_clear().current_dir(data);
    cmd.env("DOCENT_HOME", data)
        .env("TMPDIR", data)
        .env("DOCENT__SERVER__BIND", format!("0.0.0.0:{port}"))
        .env("DOCENT__LOG__FORMAT", "json")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin");
    let model = image_model_dir(data);
    match model.is_dir() {
        true => cmd.env("DOCENT__EMBEDDER__MODEL_DIR", model),
        false => {
            eprintln!("no model in models/: the image-like run goes without an embedder");
            cmd.env("DOCENT__EMBEDDER__KIND", "none")
        }
    };
    cmd
}

/// Where the image-like run finds the model: beside its volume, like the image's
/// `/opt/docent/models` (root's files, readable by every user).
fn image_model_dir(data: &Path) -> PathBuf {
    data.with_file_name("opt-docent-models")
}

/// Puts the checkout's model (when it has one) where [`image_model_dir`] looks: the checkout
/// itself may sit under a directory the image's user cannot enter (a `mktemp -d` clone).
fn bake_model(data: &Path) {
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_tree(&entry.path(), &target);
            } else if std::fs::hard_link(entry.path(), &target).is_err() {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    if let Some(model) = common::model_dir() {
        copy_tree(&model, &image_model_dir(data));
    }
}

/// Files owned by the image's user anywhere a process could write besides the data dir.
fn strays(data: &Path) -> Vec<String> {
    let out = Command::new("find")
        .args([
            "/tmp",
            "/var/tmp",
            "/dev/shm",
            "-xdev",
            "-user",
            &IMAGE_UID.to_string(),
        ])
        .args(["-not", "-path"])
        .arg(format!("{}*", data.display()))
        .stderr(Stdio::null())
        .output()
        .expect("find");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_like_run_is_healthy_and_writes_only_its_volume() {
    // Under /tmp so the image's user can enter it; owned by that user, like the image's volume.
    let dir = tempfile::Builder::new()
        .prefix("docent-image-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let data = dir.path().join("var-lib-docent");
    std::fs::create_dir(&data).unwrap();
    if is_root() {
        let ok = Command::new("chown")
            .arg(format!("{IMAGE_UID}:{IMAGE_UID}"))
            .arg(&data)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    bake_model(&data);
    let port = common::servers::free_port();

    // Nothing listens yet: unhealthy.
    let out = image_command(&data, port, &["healthcheck", "--timeout", "2s"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "healthy with no server running");

    let log_path = dir.path().join("serve.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut server = image_command(&data, port, &["serve"])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("docent serve");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = image_command(&data, port, &["healthcheck", "--timeout", "2s"])
            .output()
            .unwrap();
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("/ready"));
            break;
        }
        if let Some(status) = server.try_wait().unwrap() {
            panic!(
                "docent serve exited ({status}) before it was ready:\n{}",
                read_log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "not healthy within 120 s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/ready"))
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");

    // Idle: after start, with nothing to do. A figure, not a limit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(kib) = vm_rss_kib(server.id()) {
        eprintln!(
            "image-like run: idle RSS {:.1} MiB (model {})",
            kib as f64 / 1024.0,
            if image_model_dir(&data).is_dir() {
                "loaded"
            } else {
                "absent"
            }
        );
    }
    assert!(
        data.join("docent-data").is_dir(),
        "the data directory is on the volume"
    );
    if is_root() {
        assert_eq!(
            strays(&data),
            Vec::<String>::new(),
            "files written outside the volume"
        );
    }

    // SIGTERM, as `docker stop` sends it (STOPSIGNAL): a graceful stop, exit status 0.
    let ok = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 60 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "exit {exit} after SIGTERM:\n{}", read_log());
    let out = image_command(&data, port, &["healthcheck", "--timeout", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "unhealthy once stopped");
}
