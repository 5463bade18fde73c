//! Where this docent keeps things: `docent config paths` (the docent home, the configuration
//! file, the data directory and the embedding model found), and the warning for a data
//! directory left in the working directory by a docent that had no home.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use docent_config::home::absolute;
use docent_config::{Config, EmbedderConfig, Home, HomeSource};

/// One path `docent config paths NAME` prints alone (for scripts).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PathName {
    /// The docent home.
    Home,
    /// The data directory.
    DataDir,
    /// The configured model directory (where `scripts/get-model` should put the model; the
    /// home's default when the embedder is not local).
    ModelDir,
}

/// The path `name` alone.
pub fn one(home: &Home, config: &Config, name: PathName) -> PathBuf {
    match name {
        PathName::Home => home.dir().to_path_buf(),
        PathName::DataDir => absolute(&config.data_dir),
        PathName::ModelDir => match &config.embedder {
            EmbedderConfig::Local { model_dir, .. } => absolute(model_dir),
            EmbedderConfig::None | EmbedderConfig::Openai { .. } => home.model_dir(),
        },
    }
}

/// Every path, each with where it came from; `file` is the configuration file read.
pub fn report(home: &Home, file: Option<&Path>, config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "home:        {} ({})",
        home.dir().display(),
        home.source().describe()
    );
    let _ = match file {
        Some(f) => writeln!(out, "config file: {}", absolute(f).display()),
        None => writeln!(
            out,
            "config file: none (defaults and DOCENT__* variables; --config or DOCENT_CONFIG names one)"
        ),
    };
    let _ = writeln!(out, "data dir:    {}", absolute(&config.data_dir).display());
    let model = match &config.embedder {
        EmbedderConfig::Local { model_dir, .. } => {
            match crate::embedder::find_model(model_dir, home) {
                Ok((dir, why)) => format!("{} ({why})", absolute(&dir).display()),
                Err(e) => format!("not found: {e}"),
            }
        }
        EmbedderConfig::None => "none (embedder.kind = \"none\": keyword search only)".into(),
        EmbedderConfig::Openai { model, .. } => {
            format!("none (embedder.kind = \"openai\", model {model})")
        }
    };
    let _ = writeln!(out, "model dir:   {model}");
    out
}

/// Warns when this process would start an empty data directory in the home while the working
/// directory holds `./docent-data` with a database, as a docent from before the home left it:
/// the data is not lost, only not used.
pub fn warn_about_data_left_here(config: &Config, home: &Home) {
    let default = home.dir().join(docent_config::home::DATA_DIR);
    let here = Path::new(docent_config::home::DATA_DIR);
    if home.source() == HomeSource::Variable
        || config.data_dir != default
        || config.data_dir.exists()
        || !here.join("docent.db").is_file()
    {
        return;
    }
    tracing::warn!(
        data_dir = %config.data_dir.display(),
        found = %absolute(here).display(),
        "this directory has a docent-data from an earlier docent run here, but the \
         data directory is in the docent home; to use that data, run with DOCENT_HOME set to \
         this directory, or move it into the home (README: Moving the data directory)"
    );
}
