//! Browser tests' shared pieces: Debian `chromium` and the npm packages `playwright-core` and
//! `axe-core` (`scripts/test-services` installs them and exports `DOCENT_TEST_CHROMIUM` and
//! `DOCENT_TEST_NODE_MODULES`); without them a browser test says SKIP loudly and passes.

/// The chromium binary and the `node_modules` folder, when both (and Node) are here.
pub fn browser_env() -> Option<(String, String)> {
    let chromium = std::env::var("DOCENT_TEST_CHROMIUM").ok()?;
    let modules = std::env::var("DOCENT_TEST_NODE_MODULES").ok()?;
    let ok = std::path::Path::new(&chromium).exists()
        && std::path::Path::new(&modules)
            .join("playwright-core")
            .exists()
        && std::path::Path::new(&modules).join("axe-core").exists()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    ok.then_some((chromium, modules))
}

/// Says loudly that `test` did not run.
pub fn skip_without_browser(test: &str) {
    eprintln!(
        "\n*** SKIP {test}: no browser. Set DOCENT_TEST_CHROMIUM and DOCENT_TEST_NODE_MODULES \
         (eval \"$(scripts/test-services)\" installs chromium, playwright-core and axe-core). ***\n"
    );
}
