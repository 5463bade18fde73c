//! Throwaway servers a test may stop and restart mid-run (the outage tests): a PostgreSQL
//! cluster of its own (`initdb` + `pg_ctl` from `DOCENT_TEST_PG_BIN`, run as
//! `DOCENT_TEST_PG_USER` under root, since PostgreSQL refuses to run as root) and a
//! `redis-server` child process (`DOCENT_TEST_REDIS_SERVER`). `scripts/test-services` exports
//! the variables; without them the constructors return `None` and the test skips, saying so.
//!
//! For TLS tests: [`TestCa`] makes a certificate authority and server certificates with the
//! `openssl` command; [`PgCluster::start_tls`] runs a PostgreSQL built with OpenSSL
//! (`DOCENT_TEST_PG_TLS_BIN`, Debian's) that accepts only TLS connections, and
//! [`RedisServer::start_tls`] a `redis-server` with a TLS port and no plain one.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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

/// A certificate authority made for one test (EC P-256, two days), with the `openssl` command.
pub struct TestCa {
    dir: tempfile::TempDir,
    name: String,
}

impl TestCa {
    /// A new CA called `name`; `None` (printing why) without an `openssl` command.
    pub fn new(test: &str, name: &str) -> Option<Self> {
        let ok = Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped {test}: no openssl command to make test certificates");
            return None;
        }
        // Under /tmp: a server running as another user reads the files.
        let dir = tempfile::Builder::new()
            .prefix("docent-ca-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let ca = Self {
            dir,
            name: name.to_owned(),
        };
        let subject = format!("/CN=docent test CA {name}");
        ca.openssl_req(&[
            "-x509",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        Some(ca)
    }

    /// `openssl req` making a new EC P-256 key without a passphrase, then `args`.
    fn openssl_req(&self, args: &[&str]) {
        let mut all = vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        all.extend_from_slice(args);
        self.openssl(&all);
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The CA's certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A server certificate for 127.0.0.1 and localhost signed by this CA, written into `dir`
    /// as `server.crt` and `server.key`.
    pub fn issue_server(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let ext = self.dir.path().join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost
basicConstraints=CA:FALSE
             keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
",
        )
        .unwrap();
        let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
        let csr = self.dir.path().join(format!("server-{}.csr", self.name));
        let (crt_s, key_s, csr_s) = (
            crt.to_str().unwrap(),
            key.to_str().unwrap(),
            csr.to_str().unwrap(),
        );
        self.openssl_req(&["-keyout", key_s, "-out", csr_s, "-subj", "/CN=localhost"]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            csr_s,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            crt_s,
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
        ]);
        (crt, key)
    }
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
        Self::start_with(test, "DOCENT_TEST_PG_BIN", |_| (String::new(), None))
    }

    /// A cluster that accepts only TLS connections (`ssl = on`; `pg_hba.conf` has `hostssl`
    /// lines only) with a certificate for 127.0.0.1 issued by `ca`; `None` (printing why)
    /// without `DOCENT_TEST_PG_TLS_BIN` (the binaries of a PostgreSQL built with OpenSSL).
    pub fn start_tls(test: &str, ca: &TestCa) -> Option<Self> {
        Self::start_with(test, "DOCENT_TEST_PG_TLS_BIN", |dir| {
            let (crt, key) = ca.issue_server(dir);
            let mut perms = std::fs::metadata(&key).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
            std::fs::set_permissions(&key, perms).unwrap();
            let conf = format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                crt.display(),
                key.display()
            );
            let hba = "hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n";
            (conf, Some(hba.to_owned()))
        })
    }

    /// Creates and starts a cluster with the binaries under `$bin_var`; `setup` writes files
    /// into the cluster's directory and returns lines for `postgresql.conf` and, when `Some`,
    /// the whole `pg_hba.conf`.
    fn start_with(
        test: &str,
        bin_var: &str,
        setup: impl FnOnce(&Path) -> (String, Option<String>),
    ) -> Option<Self> {
        let Some(bin) = std::env::var_os(bin_var).map(PathBuf::from) else {
            eprintln!("skipped {test}: {bin_var} not set (run scripts/test-services)");
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
        let (extra_conf, hba) = setup(dir.path());
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
             fsync = off\nfull_page_writes = off\n{extra_conf}"
        );
        let conf_path = cluster.data.join("postgresql.conf");
        let mut all = std::fs::read_to_string(&conf_path).unwrap();
        all.push_str(&conf);
        std::fs::write(&conf_path, all).unwrap();
        if let Some(hba) = hba {
            std::fs::write(cluster.data.join("pg_hba.conf"), hba).unwrap();
        }
        cluster.start();
        Some(cluster)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
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
    /// Arguments instead of `--port PORT` (the TLS server's).
    listen: Vec<String>,
    tls: bool,
    _dir: Option<tempfile::TempDir>,
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
        let port = free_port();
        let mut server = Self {
            binary,
            port,
            child: None,
            listen: vec!["--port".into(), port.to_string()],
            tls: false,
            _dir: None,
        };
        server.start();
        Some(server)
    }

    /// A server with a TLS port and no plain one (`--port 0 --tls-port PORT`), its
    /// certificate for 127.0.0.1 issued by `ca`, and the ACL user `user` (password
    /// `password`, every command and key) while `default` is off. Clients need no certificate.
    pub fn start_tls(test: &str, ca: &TestCa, user: &str, password: &str) -> Option<Self> {
        let mut server = Self::start_new(test)?;
        server.stop();
        let dir = tempfile::tempdir().expect("tempdir");
        let (crt, key) = ca.issue_server(dir.path());
        let port = server.port.to_string();
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        server.listen = vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port,
            "--tls-cert-file".into(),
            path(&crt),
            "--tls-key-file".into(),
            path(&key),
            "--tls-ca-cert-file".into(),
            path(&ca.cert()),
            "--tls-auth-clients".into(),
            "no".into(),
            "--user".into(),
            "default".into(),
            "off".into(),
            "--user".into(),
            user.into(),
            "on".into(),
            format!(">{password}"),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
        ];
        server.tls = true;
        server._dir = Some(dir);
        server.start();
        Some(server)
    }

    /// [`RedisServer::start_tls`] as a one-node Redis Cluster speaking TLS on its cluster bus
    /// too (`--tls-cluster yes`, ElastiCache Serverless's shape); it owns no slot until given
    /// them (`CLUSTER ADDSLOTSRANGE 0 16383`).
    pub fn start_tls_cluster(test: &str, ca: &TestCa, user: &str, password: &str) -> Option<Self> {
        let mut server = Self::start_tls(test, ca, user, password)?;
        server.stop();
        let dir = server._dir.as_ref().expect("the TLS server's dir").path();
        let dir = dir.to_str().unwrap().to_owned();
        server.listen.extend(
            [
                "--cluster-enabled",
                "yes",
                "--tls-cluster",
                "yes",
                "--cluster-announce-ip",
                "127.0.0.1",
                "--dir",
                &dir,
            ]
            .map(String::from),
        );
        server.start();
        Some(server)
    }

    /// The port it listens on (TLS for a [`RedisServer::start_tls`] one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
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
            .args(["--bind", "127.0.0.1"])
            .args(&self.listen)
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
