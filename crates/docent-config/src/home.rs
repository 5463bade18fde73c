//! The docent home: the directory holding the data directory (`docent-data/`) and the local
//! embedding model (`models/all-MiniLM-L6-v2/`) unless the configuration puts them elsewhere,
//! so that the command line finds the same data and model from any working directory.
//!
//! It is `$DOCENT_HOME` when set (a relative value is taken from the working directory), else
//! the platform's per-user data directory: `$XDG_DATA_HOME/docent` or
//! `~/.local/share/docent` on Linux and other Unixes, `~/Library/Application Support/docent`
//! on macOS, `%LOCALAPPDATA%\docent` on Windows. Without any of those variables (no home
//! directory at all) it is the working directory, as docent's paths were before it had a home.
//!
//! The home only anchors what is not configured: the compiled-in `data_dir` and
//! `embedder.model_dir` are relative to it. Relative paths written in a configuration file are
//! relative to that file's directory; relative paths from `DOCENT__*` variables to the working
//! directory ([`crate::ConfigLayers::load_in`]). No configuration file is read from the home:
//! a file is read only when named (`--config`, `DOCENT_CONFIG`), so a file lying in a home
//! never changes what a command (or a test spawning one) does behind its back.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The variable naming the home.
pub const HOME_VAR: &str = "DOCENT_HOME";
/// The default `data_dir`, relative to the home.
pub const DATA_DIR: &str = "docent-data";
/// The default `embedder.model_dir`, relative to the home.
pub const MODEL_DIR: &str = "models/all-MiniLM-L6-v2";

/// Where the home came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeSource {
    /// `$DOCENT_HOME`.
    Variable,
    /// The platform's per-user data directory.
    Platform,
    /// No home directory could be found: the working directory.
    WorkingDirectory,
}

impl HomeSource {
    /// Says where the home came from, for `docent config paths`.
    pub fn describe(self) -> &'static str {
        match self {
            HomeSource::Variable => "from DOCENT_HOME",
            HomeSource::Platform => "the platform data directory; DOCENT_HOME overrides it",
            HomeSource::WorkingDirectory => {
                "the working directory: no home directory found; set DOCENT_HOME"
            }
        }
    }
}

/// The docent home of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
    source: HomeSource,
}

impl Home {
    /// The home named by the process environment.
    pub fn locate() -> Self {
        Self::locate_with(|name| std::env::var_os(name))
    }

    /// The home named by the variables `var` answers (tests).
    pub fn locate_with(var: impl Fn(&str) -> Option<OsString>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = set(HOME_VAR) {
            return Self {
                dir: absolute(&dir),
                source: HomeSource::Variable,
            };
        }
        match platform_data_dir(&set) {
            Some(base) => Self {
                dir: base.join("docent"),
                source: HomeSource::Platform,
            },
            None => Self {
                dir: absolute(Path::new(".")),
                source: HomeSource::WorkingDirectory,
            },
        }
    }

    /// A home at `dir` (tests, and callers that chose one).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: absolute(&dir.into()),
            source: HomeSource::Variable,
        }
    }

    /// The directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where it came from.
    pub fn source(&self) -> HomeSource {
        self.source
    }

    /// The default `embedder.model_dir`: `models/all-MiniLM-L6-v2` in the home.
    pub fn model_dir(&self) -> PathBuf {
        self.dir.join(MODEL_DIR)
    }
}

/// `p` made absolute against the working directory (unchanged if that cannot be read).
pub fn absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    // `absolute(".")` keeps a trailing `.` component; drop it.
    abs.components().collect()
}

#[cfg(target_os = "macos")]
fn platform_data_dir(set: &dyn Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    set("HOME").map(|h| h.join("Library/Application Support"))
}

#[cfg(windows)]
fn platform_data_dir(set: &dyn Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    set("LOCALAPPDATA").or_else(|| set("APPDATA"))
}

#[cfg(not(any(target_os = "macos", windows)))]
fn platform_data_dir(set: &dyn Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    set("XDG_DATA_HOME")
        .filter(|d| d.is_absolute())
        .or_else(|| set("HOME").map(|h| h.join(".local/share")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(vars: &[(&str, &str)]) -> Home {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Home::locate_with(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn docent_home_wins_and_is_made_absolute() {
        let h = home(&[("DOCENT_HOME", "/srv/docent"), ("HOME", "/home/ann")]);
        assert_eq!(h.dir(), Path::new("/srv/docent"));
        assert_eq!(h.source(), HomeSource::Variable);
        assert_eq!(
            h.model_dir(),
            Path::new("/srv/docent/models/all-MiniLM-L6-v2")
        );

        let h = home(&[("DOCENT_HOME", "rel/home")]);
        assert!(h.dir().is_absolute(), "{}", h.dir().display());
        assert_eq!(
            h.dir(),
            std::env::current_dir().unwrap().join("rel/home").as_path()
        );
        let h = home(&[("DOCENT_HOME", ".")]);
        assert_eq!(h.dir(), std::env::current_dir().unwrap().as_path());
    }

    #[cfg(not(any(target_os = "macos", windows)))]
    #[test]
    fn the_platform_data_directory_is_the_default() {
        let h = home(&[("HOME", "/home/ann")]);
        assert_eq!(h.dir(), Path::new("/home/ann/.local/share/docent"));
        assert_eq!(h.source(), HomeSource::Platform);
        let h = home(&[("HOME", "/home/ann"), ("XDG_DATA_HOME", "/data/ann")]);
        assert_eq!(h.dir(), Path::new("/data/ann/docent"));
        // A relative XDG_DATA_HOME is invalid by the spec and ignored; an empty DOCENT_HOME
        // is unset.
        let h = home(&[
            ("HOME", "/home/ann"),
            ("XDG_DATA_HOME", "data"),
            ("DOCENT_HOME", ""),
        ]);
        assert_eq!(h.dir(), Path::new("/home/ann/.local/share/docent"));
    }

    #[test]
    fn without_any_home_it_is_the_working_directory() {
        let h = home(&[]);
        assert_eq!(h.dir(), std::env::current_dir().unwrap().as_path());
        assert_eq!(h.source(), HomeSource::WorkingDirectory);
    }
}
