//! Throwaway servers a test may stop and restart mid-run (the outage tests): a PostgreSQL
//! cluster of its own (`initdb` + `pg_ctl` from `DOCENT_TEST_PG_BIN`, run as
//! `DOCENT_TEST_PG_USER` under root, since PostgreSQL refuses to run as root) and a
//! `redis-server` child process (`DOCENT_TEST_REDIS_SERVER`). `scripts/test-services` exports
//! the variables; without them the constructors return `None` and the test skips, saying so.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn wait_for_port(port: u16, up: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let open = TcpStream::connect(("127.0.0.1", port)).is_ok();
        if open == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A PostgreSQL cluster in a temporary directory, on a port of its own.
pub struct PgCluster {
    bin: PathBuf,
    user: Option<String>,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PgCluster {
    /// Creates and starts a cluster; `None` (printing why) without `DOCENT_TEST_PG_BIN`.
    pub fn start_new(test: &str) -> Option<Self> {
        let Some(bin) = std::env::var_os("DOCENT_TEST_PG_BIN").map(PathBuf::from) else {
            eprintln!("skipped {test}: DOCENT_TEST_PG_BIN not set (run scripts/test-services)");
            return None;
        };
        let user = std::env::var("DOCENT_TEST_PG_USER")
            .ok()
            .filter(|u| !u.is_empty());
        // Under /tmp, not the test's own temp dir: the service user must be able to enter it.
        let dir = tempfile::Builder::new()
            .prefix("docent-pg-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        std::fs::create_dir(&data).unwrap();
        if let Some(u) = &user {
            let ok = Command::new("chown")
                .args(["-R", u])
                .arg(dir.path())
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown {u} {}", dir.path().display());
        }
        let port = free_port();
        let cluster = Self {
            bin,
            user,
            data,
            log,
            port,
            _dir: dir,
        };
        let data = cluster.data.to_str().unwrap().to_owned();
        let initdb = cluster.bin.join("initdb");
        let initdb = initdb.to_str().unwrap();
        cluster.run(&[
            initdb,
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n\
             fsync = off\nfull_page_writes = off\n"
        );
        let conf_path = cluster.data.join("postgresql.conf");
        let mut all = std::fs::read_to_string(&conf_path).unwrap();
        all.push_str(&conf);
        std::fs::write(&conf_path, all).unwrap();
        cluster.start();
        Some(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `argv` as a command, run as the service user when there is one.
    fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]);
                c
            }
            None => Command::new(argv[0]),
        };
        cmd.args(if self.user.is_some() {
            argv
        } else {
            &argv[1..]
        });
        cmd
    }

    fn run(&self, argv: &[&str]) {
        let mut cmd = self.command(argv);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        assert!(
            out.status.success(),
            "{argv:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = self.bin.join("pg_ctl");
        let (data, log) = (self.data.to_str().unwrap(), self.log.to_str().unwrap());
        let mut argv = vec![pg_ctl.to_str().unwrap(), "-D", data, "-l", log];
        argv.extend_from_slice(args);
        self.run(&argv);
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        self.pg_ctl(&["-w", "-t", "30", "start"]);
        assert!(
            wait_for_port(self.port, true, Duration::from_secs(10)),
            "PostgreSQL is not listening on {}",
            self.port
        );
    }

    /// Stops the server at once, as a crash would (`-m immediate`).
    pub fn stop(&self) {
        self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
        assert!(wait_for_port(self.port, false, Duration::from_secs(10)));
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            let pg_ctl = self.bin.join("pg_ctl");
            let argv = [
                pg_ctl.to_str().unwrap(),
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ];
            let mut cmd = self.command(&argv);
            let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}

/// A `redis-server` child on a port of its own, keeping nothing on disk.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one; `None` (printing why) without `DOCENT_TEST_REDIS_SERVER`.
    pub fn start_new(test: &str) -> Option<Self> {
        let Some(binary) = std::env::var_os("DOCENT_TEST_REDIS_SERVER").map(PathBuf::from) else {
            eprintln!(
                "skipped {test}: DOCENT_TEST_REDIS_SERVER not set (run scripts/test-services)"
            );
            return None;
        };
        let mut server = Self {
            binary,
            port: free_port(),
            child: None,
        };
        server.start();
        Some(server)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Points `[redis]` at this server, with short timeouts so an outage shows quickly.
    pub fn configure(&self, c: &mut docent_config::Config) {
        c.redis.url = Some(secrecy::SecretString::from(self.url()));
        c.redis.command_timeout = Duration::from_millis(500);
        c.redis.connect_timeout = Duration::from_millis(300);
    }

    /// Starts the server (again) on its port and waits until it listens.
    pub fn start(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, true, Duration::from_secs(10)),
            "redis-server is not listening on {}",
            self.port
        );
    }

    /// Kills the server (SIGKILL: an outage, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(wait_for_port(self.port, false, Duration::from_secs(10)));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
