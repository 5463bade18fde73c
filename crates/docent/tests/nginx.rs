//! `deploy/nginx/docent.conf` in front of a docent test server (issue 19 item 5), with
//! Debian's nginx (`scripts/test-services` installs it; without it the test prints SKIP) and a
//! certificate authority the test makes with `openssl`: the shipped file, with only its ports,
//! paths and upstream address changed, passes `nginx -t`, moves HTTP to HTTPS, carries an
//! upload, streams a chat answer as it is written (the first event arrives before the last
//! is sent), answers a burst with its own 429 in docent's error envelope, and adds its
//! headers; the console's assets are answered from nginx's cache. `client_max_body_size` is
//! docent's default upload limit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::servers::{free_port, wait_for_port};
use common::{spawn_app_with, with_llm};
use docent_fake_openai::{FakeConfig, FakeServer};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped() -> String {
    std::fs::read_to_string(workspace_root().join("deploy/nginx/docent.conf"))
        .expect("deploy/nginx/docent.conf")
}

/// The nginx binary: `DOCENT_TEST_NGINX`, else `nginx` on the PATH or in /usr/sbin.
fn nginx_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DOCENT_TEST_NGINX") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A CA and a certificate it signed for 127.0.0.1 / localhost, in `dir`: (ca.pem, cert, key).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=docent test CA",
            "-keyout",
        ])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(p("server.ext"))
        .arg("-out")
        .arg(p("server.pem")));
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

/// `text` with `from` replaced by `to`, which must occur exactly `times` times (the test
/// notices when the shipped file changes under it).
fn swap(text: &str, from: &str, to: &str, times: usize) -> String {
    assert_eq!(
        text.matches(from).count(),
        times,
        "{from:?} in deploy/nginx/docent.conf"
    );
    text.replace(from, to)
}

/// nginx running the shipped configuration, stopped on drop.
struct Nginx {
    child: Child,
    http: u16,
    https: u16,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers (a SIGKILL would leave them running); a
    /// master still there after 10 s is killed.
    fn drop(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: signals our own child, which has not been waited for yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// Starts nginx with the shipped site in front of `upstream`; returns it and the CA.
fn start_nginx(bin: &Path, upstream: &str) -> (Nginx, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, cert, key) = make_certificates(d);
    let (http, https) = (free_port(), free_port());
    let mut site = shipped();
    site = swap(&site, "listen 80;", &format!("listen 127.0.0.1:{http};"), 1);
    site = swap(&site, "listen [::]:80;\n", "", 1);
    site = swap(
        &site,
        "listen 443 ssl http2;",
        &format!("listen 127.0.0.1:{https} ssl http2;"),
        1,
    );
    site = swap(&site, "listen [::]:443 ssl http2;\n", "", 1);
    site = swap(
        &site,
        "/etc/letsencrypt/live/docent.example.com/fullchain.pem",
        cert.to_str().unwrap(),
        1,
    );
    site = swap(
        &site,
        "/etc/letsencrypt/live/docent.example.com/privkey.pem",
        key.to_str().unwrap(),
        1,
    );
    site = swap(
        &site,
        "/var/cache/nginx/docent",
        d.join("cache").to_str().unwrap(),
        1,
    );
    site = swap(
        &site,
        "/var/www/letsencrypt",
        d.join("acme").to_str().unwrap(),
        1,
    );
    site = swap(
        &site,
        "server 127.0.0.1:8080;",
        &format!("server {upstream};"),
        1,
    );
    std::fs::write(d.join("docent.conf"), site).unwrap();
    std::fs::create_dir_all(d.join("snippets")).unwrap();
    std::fs::copy(
        workspace_root().join("deploy/nginx/snippets/docent-headers.conf"),
        d.join("snippets/docent-headers.conf"),
    )
    .unwrap();
    // The main file: this directory for everything nginx writes, and compression on for the
    // types an operator commonly lists (the chat routes must turn it off: it holds a stream
    // back). Under root, nginx's workers would run as `nobody`, who cannot enter the temp dir.
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let main = format!(
        "{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n  access_log {d}/access.log;\n\
           gzip on;\n  gzip_types text/css application/json text/event-stream;\n\
           client_body_temp_path {d}/body;\n\
           proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           include {d}/docent.conf;\n}}\n",
        user = if root { "user root;\n" } else { "" },
        d = d.display()
    );
    std::fs::write(d.join("nginx.conf"), main).unwrap();
    let conf = d.join("nginx.conf");

    // nginx's arguments: this prefix and file, and its early log here too.
    let nginx = |args: &[&str]| {
        let mut cmd = Command::new(bin);
        cmd.arg("-p").arg(d).arg("-c").arg(&conf);
        cmd.arg("-e").arg(d.join("error.log")).args(args);
        cmd
    };
    // The configuration passes nginx's own check.
    let t = nginx(&["-t"]).output().unwrap();
    assert!(
        t.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );

    let child = nginx(&["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let nginx = Nginx {
        child,
        http,
        https,
        dir,
    };
    assert!(
        wait_for_port(https, true, Duration::from_secs(10)),
        "nginx did not listen: {}",
        nginx.log()
    );
    (nginx, ca)
}

/// The shipped `client_max_body_size` is docent's default upload limit.
#[test]
fn the_body_limit_is_docents_upload_limit() {
    let conf = shipped();
    let line = conf
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("client_max_body_size"))
        .expect("client_max_body_size");
    let value = line["client_max_body_size".len()..]
        .trim()
        .trim_end_matches(';');
    let mib: u64 = value
        .strip_suffix('m')
        .expect("in megabytes")
        .parse()
        .unwrap();
    let limit = docent_config::Config::default().ingest.max_upload_size;
    assert_eq!(bytesize::ByteSize::mib(mib), limit, "{line}");
}

#[tokio::test]
async fn nginx_terminates_tls_streams_chat_and_limits_bursts() {
    let Some(bin) = nginx_binary() else {
        eprintln!(
            "SKIP: nginx is not installed (scripts/test-services installs it; or set DOCENT_TEST_NGINX)"
        );
        return;
    };
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIP: openssl is not installed (the test makes its certificates with it)");
        return;
    }
    // Answers arrive from the model in pieces, a little apart.
    let fake = FakeServer::start(FakeConfig {
        chunk_delay: Duration::from_millis(150),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    let upstream = app.base.trim_start_matches("http://").to_owned();
    let (nginx, ca) = start_nginx(&bin, &upstream);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let https = |path: &str| format!("https://127.0.0.1:{}{path}", nginx.https);

    // Plain HTTP moves to HTTPS, path and query kept.
    let r = client
        .get(format!(
            "http://127.0.0.1:{}/api/v1/collections?limit=5",
            nginx.http
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("https://"), "{location}");
    assert!(
        location.ends_with("/api/v1/collections?limit=5"),
        "{location}"
    );

    // TLS terminates here; docent's answer comes with nginx's headers, each once.
    let r = client.get(https("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    assert_eq!(
        h.get_all("x-content-type-options").iter().count(),
        1,
        "{h:?}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("permissions-policy"), "{h:?}");
    assert_eq!(
        h["x-frame-options"], "DENY",
        "docent's own headers pass through"
    );
    assert_eq!(h["server"], "nginx", "no version shown");

    // An upload passes (streamed to docent) and is processed.
    let (status, coll) = {
        let r = client
            .post(https("/api/v1/collections"))
            .json(&json!({"name": "notes"}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::CREATED, "{coll}");
    let coll = coll["id"].as_str().unwrap().to_owned();
    let text = b"# Geography notes\n\nThe capital of France is Paris. Paris lies on the Seine.\n";
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(text.to_vec()).file_name("france.md"),
    );
    let r = client
        .post(https(&format!("/api/v1/collections/{coll}/documents")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["document"]["size_bytes"], text.len());
    app.drain().await;
    let r = client
        .get(https(&format!(
            "/api/v1/documents/{}",
            doc["document"]["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["status"], "completed", "{got}");

    // A chat answer streams through: the first event is read while the model still writes.
    let r = client
        .post(https("/api/v1/bots"))
        .json(&json!({"name": "geo", "collection_ids": [coll]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let bot: Value = r.json().await.unwrap();
    let r = client
        .post(https(&format!(
            "/api/v1/bots/{}/chat",
            bot["id"].as_str().unwrap()
        )))
        .header("accept", "text/event-stream")
        // As a browser does; compressing the stream would hold it back.
        .header("accept-encoding", "gzip")
        .json(&json!({"message": "What is the capital of France?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        !r.headers().contains_key("content-encoding"),
        "{:?}",
        r.headers()
    );
    let mut body = r.bytes_stream();
    let mut reads: Vec<String> = Vec::new();
    while let Some(piece) = body.next().await {
        reads.push(String::from_utf8_lossy(&piece.unwrap()).into_owned());
    }
    let whole = reads.concat();
    assert!(whole.contains("event: done"), "{whole}");
    assert!(whole.contains("Paris"), "{whole}");
    assert!(
        !reads[0].contains("event: done"),
        "the answer arrived in one piece at the end: nginx buffered it ({} reads)",
        reads.len()
    );
    let before_done = reads
        .iter()
        .take_while(|r| !r.contains("event: done"))
        .count();
    assert!(
        before_done >= 2,
        "deltas arrived as they were written: {reads:?}"
    );

    // The console's assets come from nginx's cache after the first request, and a
    // revalidation is answered there.
    let first = client
        .get(https("/console/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"].clone();
    let second = client
        .get(https("/console/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.headers()["x-cache-status"], "HIT");
    assert_eq!(
        second.headers()["cache-control"],
        "no-cache",
        "browsers still revalidate"
    );
    assert!(second.headers().contains_key("strict-transport-security"));
    let again = client
        .get(https("/console/console.css"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // A burst gets nginx's 429 (docent's own limits are off in mode `none`), in docent's
    // error envelope, with Retry-After and the security headers.
    let burst = futures::future::join_all(
        (0..200).map(|_| client.get(https("/api/v1/collections")).send()),
    )
    .await;
    let mut ok = 0;
    let mut limited = None;
    for r in burst {
        let r = r.unwrap();
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited = Some(r),
            other => panic!("unexpected {other}"),
        }
    }
    let limited = limited.expect("a burst of 200 gets some 429s");
    assert!(ok > 0, "the first requests of the burst pass");
    assert_eq!(limited.headers()["retry-after"], "1");
    assert!(limited.headers().contains_key("strict-transport-security"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Probes are never limited.
    let r = client.get(https("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    drop(nginx);
    app.stop().await;
}
