//! Finding a model's files on disk: a plain model directory, or a Hugging Face hub cache.

use std::fs;
use std::path::{Path, PathBuf};

use crate::LoadError;

/// The three files a local BERT-style model needs.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The directory name the Hugging Face hub cache gives all-MiniLM-L6-v2.
pub const HF_CACHE_REPO_DIR: &str = "models--sentence-transformers--all-MiniLM-L6-v2";

/// Where the model's files are, once located and checked to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The directory holding the files (a snapshot directory for a hub cache).
    pub dir: PathBuf,
    /// `config.json`: the BERT architecture.
    pub config: PathBuf,
    /// `tokenizer.json`: the WordPiece tokenizer.
    pub tokenizer: PathBuf,
    /// `model.safetensors`: the weights.
    pub weights: PathBuf,
}

impl ModelFiles {
    /// Locates the model files under `path`, which may be:
    ///
    /// - a model directory in Hugging Face layout (`config.json`, `tokenizer.json`,
    ///   `model.safetensors`), such as `./models/all-MiniLM-L6-v2` made by `scripts/get-model`;
    /// - a hub cache repository directory (`.../hub/models--sentence-transformers--all-MiniLM-L6-v2`),
    ///   resolved through `refs/main` to `snapshots/<revision>` (or its only snapshot);
    /// - a snapshot directory inside one (its files are usually symlinks into `blobs/`);
    /// - the hub cache root itself (`~/.cache/huggingface/hub`).
    ///
    /// # Errors
    /// A [`LoadError`] saying what is missing and how to get the model.
    pub fn locate(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let meta = fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound {
                path: path.to_owned(),
            },
            _ => LoadError::Io {
                path: path.to_owned(),
                source: e,
            },
        })?;
        if !meta.is_dir() {
            return Err(LoadError::NotADirectory {
                path: path.to_owned(),
            });
        }
        let has_any_file = REQUIRED_FILES.iter().any(|f| path.join(f).exists());
        if !has_any_file {
            if path.join("snapshots").is_dir() {
                let snapshot = resolve_snapshot(path)?;
                return Self::in_dir(&snapshot);
            }
            let repo = path.join(HF_CACHE_REPO_DIR);
            if repo.is_dir() {
                return Self::locate(repo);
            }
        }
        Self::in_dir(path)
    }

    fn in_dir(dir: &Path) -> Result<Self, LoadError> {
        // `exists` follows symlinks, so a snapshot's dangling link into `blobs/` is missing too.
        let missing: Vec<&str> = REQUIRED_FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(LoadError::MissingFiles {
                dir: dir.to_owned(),
                missing: missing.join(", "),
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            config: dir.join(REQUIRED_FILES[0]),
            tokenizer: dir.join(REQUIRED_FILES[1]),
            weights: dir.join(REQUIRED_FILES[2]),
        })
    }
}

/// Where the Hugging Face hub cache would keep all-MiniLM-L6-v2 on this machine, following the
/// hub's own environment variables (`HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `HF_HOME`,
/// `XDG_CACHE_HOME`, then `~/.cache/huggingface/hub`). The directory may not exist; pass it to
/// [`ModelFiles::locate`] to find out. `None` when no home directory is known.
pub fn default_hf_cache_repo_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let hub = var("HF_HUB_CACHE")
        .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface").join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))?;
    Some(hub.join(HF_CACHE_REPO_DIR))
}

/// `refs/main` → `snapshots/<rev>`; without the ref, the only snapshot there is.
fn resolve_snapshot(repo: &Path) -> Result<PathBuf, LoadError> {
    let snapshots = repo.join("snapshots");
    let refs_main = repo.join("refs").join("main");
    if refs_main.is_file() {
        let rev = fs::read_to_string(&refs_main).map_err(|source| LoadError::Io {
            path: refs_main.clone(),
            source,
        })?;
        let rev = rev.trim();
        let valid = !rev.is_empty() && rev.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(LoadError::Snapshot {
                dir: repo.to_owned(),
                reason: format!("refs/main holds {rev:?}, not a revision"),
            });
        }
        let dir = snapshots.join(rev);
        if !dir.is_dir() {
            return Err(LoadError::Snapshot {
                dir: repo.to_owned(),
                reason: format!("refs/main names {rev} but snapshots/{rev} does not exist"),
            });
        }
        return Ok(dir);
    }
    let entries = fs::read_dir(&snapshots).map_err(|source| LoadError::Io {
        path: snapshots.clone(),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match dirs.len() {
        1 => Ok(dirs.remove(0)),
        0 => Err(LoadError::Snapshot {
            dir: repo.to_owned(),
            reason: "snapshots/ is empty".into(),
        }),
        n => Err(LoadError::Snapshot {
            dir: repo.to_owned(),
            reason: format!("no refs/main and {n} snapshots; pass a snapshot directory"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_model(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        for f in REQUIRED_FILES {
            fs::write(dir.join(f), b"x").unwrap();
        }
    }

    #[test]
    fn a_missing_directory_says_how_to_get_the_model() {
        let tmp = tempfile::tempdir().unwrap();
        let err = ModelFiles::locate(tmp.path().join("nope")).unwrap_err();
        assert!(matches!(err, LoadError::NotFound { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(msg.contains("scripts/get-model"), "{msg}");
    }

    #[test]
    fn a_file_is_not_a_model_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("model.safetensors");
        fs::write(&file, b"x").unwrap();
        let err = ModelFiles::locate(&file).unwrap_err();
        assert!(matches!(err, LoadError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn an_incomplete_directory_names_the_missing_files() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("config.json"), b"{}").unwrap();
        let err = ModelFiles::locate(tmp.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("tokenizer.json, model.safetensors"), "{msg}");
        assert!(!msg.contains("config.json,"), "{msg}");
        assert!(msg.contains("scripts/get-model"), "{msg}");

        let empty = tempfile::tempdir().unwrap();
        let msg = ModelFiles::locate(empty.path()).unwrap_err().to_string();
        assert!(
            msg.contains("config.json, tokenizer.json, model.safetensors"),
            "{msg}"
        );
    }

    #[test]
    fn a_plain_model_directory() {
        let tmp = tempfile::tempdir().unwrap();
        write_model(tmp.path());
        let files = ModelFiles::locate(tmp.path()).unwrap();
        assert_eq!(files.dir, tmp.path());
        assert_eq!(files.weights, tmp.path().join("model.safetensors"));
    }

    /// Builds `hub/models--.../{refs/main, blobs/*, snapshots/<rev>/* -> ../../blobs/*}`.
    fn fake_hub(root: &Path, rev: &str) -> PathBuf {
        let repo = root.join(HF_CACHE_REPO_DIR);
        let blobs = repo.join("blobs");
        let snap = repo.join("snapshots").join(rev);
        fs::create_dir_all(&blobs).unwrap();
        fs::create_dir_all(&snap).unwrap();
        fs::create_dir_all(repo.join("refs")).unwrap();
        fs::write(repo.join("refs").join("main"), format!("{rev}\n")).unwrap();
        for (i, f) in REQUIRED_FILES.iter().enumerate() {
            let blob = format!("blob{i}");
            fs::write(blobs.join(&blob), b"x").unwrap();
            let target = Path::new("../../blobs").join(&blob);
            #[cfg(unix)]
            std::os::unix::fs::symlink(&target, snap.join(f)).unwrap();
            #[cfg(not(unix))]
            fs::copy(blobs.join(&blob), snap.join(f)).unwrap();
        }
        repo
    }

    #[test]
    fn a_hub_cache_resolves_through_refs_main() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = fake_hub(tmp.path(), "abc123");
        // An older snapshot that refs/main does not point at.
        write_model(&repo.join("snapshots").join("old999"));
        let snap = repo.join("snapshots").join("abc123");

        for given in [tmp.path(), repo.as_path(), snap.as_path()] {
            let files = ModelFiles::locate(given).unwrap();
            assert_eq!(files.dir, snap, "from {}", given.display());
            assert_eq!(fs::read(&files.tokenizer).unwrap(), b"x");
        }
    }

    #[test]
    fn a_hub_cache_without_refs_uses_its_only_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = fake_hub(tmp.path(), "abc123");
        fs::remove_file(repo.join("refs").join("main")).unwrap();
        assert_eq!(
            ModelFiles::locate(&repo).unwrap().dir,
            repo.join("snapshots").join("abc123")
        );
        write_model(&repo.join("snapshots").join("other"));
        let err = ModelFiles::locate(&repo).unwrap_err();
        assert!(err.to_string().contains("2 snapshots"), "{err}");
    }

    #[test]
    #[cfg(unix)]
    fn a_hub_cache_with_a_bad_ref_or_dangling_links_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = fake_hub(tmp.path(), "abc123");
        fs::write(repo.join("refs").join("main"), "def456").unwrap();
        let err = ModelFiles::locate(&repo).unwrap_err();
        assert!(err.to_string().contains("snapshots/def456"), "{err}");

        fs::write(repo.join("refs").join("main"), "abc123").unwrap();
        fs::remove_file(repo.join("blobs").join("blob2")).unwrap();
        let err = ModelFiles::locate(&repo).unwrap_err();
        assert!(matches!(err, LoadError::MissingFiles { .. }), "{err}");
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }
}
