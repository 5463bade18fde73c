//! The dependency map of ARCHITECTURE.md, enforced: every crate's `Cargo.toml` is read and each
//! dependency on another workspace crate is checked against the layer table between the
//! `architecture-layers` markers of ARCHITECTURE.md (the table is the rule, so the map and this
//! test cannot drift apart). `[dependencies]` and `[build-dependencies]`, target-specific and
//! optional ones included, are checked; `[dev-dependencies]` are not (tests wire backends
//! together, as the binary does). A crate without a row, a row naming no crate, and a layer
//! naming an unknown layer fail too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const BEGIN: &str = "<!-- architecture-layers: begin -->";
const END: &str = "<!-- architecture-layers: end -->";

/// The layer table: which layer each crate is in, and which layers each layer may depend on.
#[derive(Debug, Default)]
struct Layers {
    layer_of: BTreeMap<String, String>,
    allowed: BTreeMap<String, BTreeSet<String>>,
}

/// Parses the markdown table between the markers: `| layer | crates | may depend on |`, the
/// crates and the layers comma-separated (an empty cell: nothing).
fn parse_layers(markdown: &str) -> Result<Layers, String> {
    let start = markdown
        .find(BEGIN)
        .ok_or_else(|| format!("no `{BEGIN}` marker"))?;
    let end = markdown[start..]
        .find(END)
        .ok_or_else(|| format!("no `{END}` marker after the first"))?;
    let list = |cell: &str| -> Vec<String> {
        cell.split(',')
            .map(|s| s.trim().trim_matches('`').to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut layers = Layers::default();
    let rows = markdown[start + BEGIN.len()..start + end]
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .skip(2); // the header and its separator
    for row in rows {
        let cells: Vec<&str> = row.trim_matches('|').split('|').collect();
        let [layer, crates, may] = cells[..] else {
            return Err(format!("a row needs three cells: {row}"));
        };
        let layer = layer.trim().to_owned();
        if layers.allowed.contains_key(&layer) {
            return Err(format!("layer `{layer}` has two rows"));
        }
        for krate in list(crates) {
            if let Some(other) = layers.layer_of.insert(krate.clone(), layer.clone()) {
                return Err(format!(
                    "`{krate}` is in two layers: `{other}` and `{layer}`"
                ));
            }
        }
        layers
            .allowed
            .insert(layer, list(may).into_iter().collect());
    }
    if layers.allowed.is_empty() {
        return Err("the layer table has no rows".into());
    }
    for (layer, may) in &layers.allowed {
        if let Some(unknown) = may.iter().find(|m| !layers.allowed.contains_key(*m)) {
            return Err(format!(
                "layer `{layer}` may depend on `{unknown}`, no such layer"
            ));
        }
    }
    Ok(layers)
}

/// The workspace crates a manifest depends on outside `[dev-dependencies]`: `(package name,
/// dependency names)`, a renamed dependency by its `package`.
fn dependencies(manifest: &str) -> Result<(String, BTreeSet<String>), String> {
    let doc: toml::Table = toml::from_str(manifest).map_err(|e| e.to_string())?;
    let name = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or("no [package] name")?
        .to_owned();
    let mut tables: Vec<&toml::Table> = Vec::new();
    for key in ["dependencies", "build-dependencies"] {
        tables.extend(doc.get(key).and_then(|t| t.as_table()));
        for target in doc.get("target").and_then(|t| t.as_table()).into_iter() {
            for cfg in target.values() {
                tables.extend(cfg.get(key).and_then(|t| t.as_table()));
            }
        }
    }
    let deps = tables
        .into_iter()
        .flat_map(|t| t.iter())
        .map(|(key, spec)| {
            spec.get("package")
                .and_then(|p| p.as_str())
                .unwrap_or(key)
                .to_owned()
        })
        .collect();
    Ok((name, deps))
}

/// Every rule the manifests break, one line each (empty: the map holds).
fn violations(layers: &Layers, manifests: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    let mut crates = BTreeMap::new();
    for (path, text) in manifests {
        match dependencies(text) {
            Ok((name, deps)) => {
                crates.insert(name, deps);
            }
            Err(e) => found.push(format!("{path}: {e}")),
        }
    }
    for (krate, deps) in &crates {
        let Some(layer) = layers.layer_of.get(krate) else {
            found.push(format!(
                "`{krate}` is in no layer of ARCHITECTURE.md's table"
            ));
            continue;
        };
        for dep in deps.iter().filter(|d| crates.contains_key(*d)) {
            let Some(dep_layer) = layers.layer_of.get(dep) else {
                continue; // reported as a crate without a layer
            };
            if !layers.allowed[layer].contains(dep_layer) {
                found.push(format!(
                    "`{krate}` ({layer}) depends on `{dep}` ({dep_layer}): \
                     layer `{layer}` may not depend on layer `{dep_layer}`"
                ));
            }
        }
    }
    for krate in layers.layer_of.keys() {
        if !crates.contains_key(krate) {
            found.push(format!(
                "ARCHITECTURE.md's table names `{krate}`, which is no workspace crate"
            ));
        }
    }
    found
}

/// `(path, text)` of every `crates/*/Cargo.toml` (the workspace's members).
fn workspace_manifests(root: &Path) -> Vec<(String, String)> {
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).expect("read crates/") {
        let path = entry.expect("a crates/ entry").path().join("Cargo.toml");
        if path.is_file() {
            let text = std::fs::read_to_string(&path).expect("read a manifest");
            manifests.push((path.display().to_string(), text));
        }
    }
    manifests.sort();
    manifests
}

#[test]
fn architecture_map_allows_every_dependency_edge() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let markdown =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let layers = parse_layers(&markdown).expect("ARCHITECTURE.md's layer table");
    let manifests = workspace_manifests(&root);
    assert!(manifests.len() > 10, "found the workspace's crates");
    let found = violations(&layers, &manifests);
    assert!(
        found.is_empty(),
        "dependency edges ARCHITECTURE.md forbids:\n{}",
        found.join("\n")
    );
}

/// A small map and synthetic manifests: what the test catches and what it lets through.
mod synthetic {
    use super::*;

    const MAP: &str = "intro\n\
        <!-- architecture-layers: begin -->\n\
        | layer | crates | may depend on |\n\
        |---|---|---|\n\
        | domain | `a-domain` | |\n\
        | backends | `a-store`, `a-cache` | domain |\n\
        | binary | `a-bin` | domain, backends |\n\
        | test-support | `a-testkit` | domain |\n\
        <!-- architecture-layers: end -->\n\
        | not | part | of it |\n";

    fn manifest(name: &str, rest: &str) -> (String, String) {
        (
            format!("crates/{name}/Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n\n{rest}"),
        )
    }

    fn good() -> Vec<(String, String)> {
        vec![
            manifest("a-domain", "[dependencies]\nserde = \"1\"\n"),
            manifest(
                "a-store",
                "[dependencies]\na-domain.workspace = true\n\n\
                 [dev-dependencies]\na-cache.workspace = true\na-testkit = { path = \"../a-testkit\" }\n",
            ),
            manifest(
                "a-cache",
                "[dependencies]\na-domain = { path = \"../a-domain\" }\n",
            ),
            manifest(
                "a-bin",
                "[dependencies]\na-store.workspace = true\na-cache = { workspace = true, optional = true }\n",
            ),
            manifest("a-testkit", "[dependencies]\na-domain.workspace = true\n"),
        ]
    }

    fn with(
        mut manifests: Vec<(String, String)>,
        replaced: (String, String),
    ) -> Vec<(String, String)> {
        let slot = manifests.iter_mut().find(|m| m.0 == replaced.0).unwrap();
        *slot = replaced;
        manifests
    }

    #[test]
    fn architecture_a_map_that_holds_passes_and_dev_dependencies_are_free() {
        let layers = parse_layers(MAP).unwrap();
        assert_eq!(layers.layer_of["a-cache"], "backends");
        assert!(layers.allowed["domain"].is_empty());
        assert_eq!(violations(&layers, &good()), Vec::<String>::new());
    }

    #[test]
    fn architecture_a_backend_depending_on_another_fails() {
        let layers = parse_layers(MAP).unwrap();
        let bad = with(
            good(),
            manifest(
                "a-cache",
                "[dependencies]\na-domain.workspace = true\na-store.workspace = true\n",
            ),
        );
        assert_eq!(
            violations(&layers, &bad),
            vec![
                "`a-cache` (backends) depends on `a-store` (backends): \
                 layer `backends` may not depend on layer `backends`"
            ]
        );
    }

    #[test]
    fn architecture_build_target_optional_and_renamed_dependencies_are_checked() {
        let layers = parse_layers(MAP).unwrap();
        for deps in [
            "[build-dependencies]\na-bin.workspace = true\n",
            "[target.'cfg(unix)'.dependencies]\na-bin.workspace = true\n",
            "[dependencies]\na-bin = { workspace = true, optional = true }\n",
            "[dependencies]\nrenamed = { package = \"a-bin\", path = \"../a-bin\" }\n",
            "[dependencies]\na-testkit.workspace = true\n",
        ] {
            let bad = with(good(), manifest("a-domain", deps));
            let found = violations(&layers, &bad);
            assert_eq!(found.len(), 1, "{deps}: {found:?}");
            assert!(
                found[0].starts_with("`a-domain` (domain) depends on"),
                "{found:?}"
            );
        }
    }

    #[test]
    fn architecture_a_crate_without_a_row_or_a_row_without_a_crate_fails() {
        let layers = parse_layers(MAP).unwrap();
        let mut more = good();
        more.push(manifest(
            "a-new",
            "[dependencies]\na-domain.workspace = true\n",
        ));
        assert_eq!(
            violations(&layers, &more),
            vec!["`a-new` is in no layer of ARCHITECTURE.md's table"]
        );
        let fewer: Vec<_> = good()
            .into_iter()
            .filter(|m| !m.0.contains("a-cache"))
            .collect();
        assert_eq!(
            violations(&layers, &fewer),
            vec!["ARCHITECTURE.md's table names `a-cache`, which is no workspace crate"]
        );
    }

    #[test]
    fn architecture_a_malformed_table_is_refused() {
        assert!(parse_layers("no table here").is_err());
        let unknown = MAP.replace("| domain, backends |", "| domain, services |");
        assert!(
            parse_layers(&unknown)
                .unwrap_err()
                .contains("`services`, no such layer"),
            "an unknown layer"
        );
        let twice = MAP.replace("| `a-testkit` |", "| `a-testkit`, `a-store` |");
        assert!(parse_layers(&twice).unwrap_err().contains("two layers"));
        let short = MAP.replace("| `a-store`, `a-cache` | domain |", "| `a-store` |");
        assert!(parse_layers(&short).unwrap_err().contains("three cells"));
    }
}
