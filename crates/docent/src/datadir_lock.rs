//! The data directory's lock: which process writes this data directory's embedded search
//! index and runs its workers.
//!
//! The embedded index has one writer (tantivy's lock) and keeps its vectors in the memory of
//! the process that serves searches, so with it exactly one process may process documents:
//! a second one gets "another docent process is writing to this data directory's index" on
//! every task, retries and dead-letters them, and whatever it did index stays invisible to the
//! server's in-memory vectors until a restart. `docent serve` and `docent worker` therefore
//! hold `DATA_DIR/docent.lock` (an exclusive `flock`, released by the kernel when the process
//! ends, however it ends) for as long as they run, with who they are written inside (pid,
//! command, address, whether they run workers). Local commands that would write the index read
//! it instead of colliding: `docent ingest` stores the documents and queues their tasks (the
//! database is safe for several processes) and waits while the holder's workers process them,
//! taking over itself if the holder goes away; `docent reindex` refuses. A second `serve` or
//! `worker` refuses to start. A local command that processes takes the lock while it does, so
//! a server started meanwhile refuses to start instead of colliding with it.
//!
//! With `[index] kind = "postgres"` the index is shared by any number of processes, and no
//! lock is taken.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use docent_config::{Config, IndexConfig};
use serde::{Deserialize, Serialize};

/// The lock file's name inside the data directory.
pub const FILE_NAME: &str = "docent.lock";

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// The subcommand: `serve`, `worker`, `ingest`, `reindex`.
    pub command: String,
    /// The API's address (`serve`), once it listens.
    pub address: Option<String>,
    /// Whether it processes queued tasks.
    pub workers: bool,
}

impl Holder {
    /// This process, running `command`.
    pub fn me(command: &str, workers: bool) -> Self {
        Self {
            pid: std::process::id(),
            command: command.to_owned(),
            address: None,
            workers,
        }
    }

    /// `docent serve --no-workers (pid 42, http://127.0.0.1:8080)`.
    pub fn describe(&self) -> String {
        let flags = if self.command == "serve" && !self.workers {
            " --no-workers"
        } else {
            ""
        };
        let mut what = format!("docent {}{flags} (pid {}", self.command, self.pid);
        if let Some(a) = &self.address {
            what.push_str(&format!(", http://{a}"));
        }
        what.push(')');
        what
    }
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    holder: Holder,
}

/// The outcome of [`DataDirLock::claim`].
#[derive(Debug)]
pub enum Claim {
    /// This process holds it now.
    Acquired(DataDirLock),
    /// Another process does.
    Held(Holder),
}

impl DataDirLock {
    /// Whether `config` needs the lock: its search index is the embedded one.
    pub fn needed(config: &Config) -> bool {
        matches!(config.index, IndexConfig::Embedded { .. })
    }

    /// The lock file of `config`'s data directory.
    pub fn path(config: &Config) -> PathBuf {
        config.data_dir.join(FILE_NAME)
    }

    /// Takes the lock for `me` without waiting, or says who holds it.
    pub fn claim(config: &Config, me: Holder) -> anyhow::Result<Claim> {
        let path = Self::path(config);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the data directory {}", dir.display()))?;
        }
        // Never truncated on open: the holder's details must survive a contender opening it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                let mut lock = Self { file, holder: me };
                lock.write()
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(Claim::Acquired(lock))
            }
            Err(TryLockError::WouldBlock) => Ok(Claim::Held(read_holder(file, &path))),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// Records the address the holder's API listens on.
    pub fn set_address(&mut self, address: std::net::SocketAddr) -> anyhow::Result<()> {
        self.holder.address = Some(address.to_string());
        self.write()
            .context("writing the data directory's lock file")
    }

    fn write(&mut self) -> std::io::Result<()> {
        let text = serde_json::to_string(&self.holder).map_err(std::io::Error::other)?;
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }
}

/// The holder's details. A holder that has only just taken the lock may not have written them
/// yet: a few short waits, then an anonymous holder that is assumed to run workers.
fn read_holder(mut file: File, path: &Path) -> Holder {
    for _ in 0..20 {
        let mut text = String::new();
        if file.seek(SeekFrom::Start(0)).is_ok()
            && file.read_to_string(&mut text).is_ok()
            && let Ok(h) = serde_json::from_str::<Holder>(&text)
        {
            return h;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::debug!(path = %path.display(), "the lock holder's details are unreadable");
    Holder {
        pid: 0,
        command: "process".into(),
        address: None,
        workers: true,
    }
}

/// Takes the lock for a long-running `command` (`serve`, `worker`) or fails with one message
/// naming the holder. `None` when the configuration needs no lock.
pub fn claim_or_refuse(
    config: &Config,
    command: &str,
    workers: bool,
) -> anyhow::Result<Option<DataDirLock>> {
    if !DataDirLock::needed(config) {
        return Ok(None);
    }
    match DataDirLock::claim(config, Holder::me(command, workers))? {
        Claim::Acquired(lock) => Ok(Some(lock)),
        Claim::Held(holder) => {
            let advice = match holder.command.as_str() {
                "serve" | "worker" => {
                    "stop it first; or, to run the API and workers as separate processes, use \
                     `[index] kind = \"postgres\"`, which any number of processes can share"
                }
                _ => "start this once it has finished",
            };
            anyhow::bail!(
                "docent {command} cannot start: {} is using the data directory {} (its embedded \
                 search index is written by one process at a time); {advice}",
                holder.describe(),
                config.data_dir.display(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: dir.join("data"),
            ..Config::default()
        }
    }

    #[test]
    fn one_holder_at_a_time_and_others_learn_who() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let Claim::Acquired(mut lock) =
            DataDirLock::claim(&config, Holder::me("serve", true)).unwrap()
        else {
            panic!("a free lock is acquired");
        };
        lock.set_address("127.0.0.1:8080".parse().unwrap()).unwrap();
        // A second claim (a second open file description, as another process would have).
        let Claim::Held(holder) = DataDirLock::claim(&config, Holder::me("ingest", true)).unwrap()
        else {
            panic!("a held lock is not acquired twice");
        };
        assert_eq!(holder.command, "serve");
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.address.as_deref(), Some("127.0.0.1:8080"));
        assert!(holder.workers);
        assert_eq!(
            holder.describe(),
            format!(
                "docent serve (pid {}, http://127.0.0.1:8080)",
                std::process::id()
            )
        );
        let refused = claim_or_refuse(&config, "worker", true)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("docent worker cannot start") && refused.contains("docent serve"),
            "{refused}"
        );
        drop(lock);
        let Claim::Acquired(lock) =
            DataDirLock::claim(&config, Holder::me("reindex", false)).unwrap()
        else {
            panic!("a released lock is free again");
        };
        drop(lock);
    }

    #[test]
    fn postgres_index_needs_no_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        assert!(DataDirLock::needed(&config));
        config.index = toml::from_str::<IndexConfig>("kind = \"postgres\"").unwrap();
        assert!(!DataDirLock::needed(&config));
        assert!(claim_or_refuse(&config, "serve", true).unwrap().is_none());
    }
}
