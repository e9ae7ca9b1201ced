//! Headless Chromium: found, and run on a page to dump its DOM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use herald_tests::backend::temp_dir;

fn chromium_required() -> bool {
    std::env::var("HERALD_TEST_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1" || v == "true")
}

/// Chromium, or `None` (the test is skipped) when it is absent and not required.
pub fn browser() -> Option<PathBuf> {
    let given = std::env::var_os("HERALD_TEST_CHROMIUM").filter(|p| !p.is_empty());
    let found = given.map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let wanted = "chromium or chromium-browser on PATH, or HERALD_TEST_CHROMIUM";
        assert!(
            !chromium_required(),
            "Chromium is required (HERALD_TEST_REQUIRE_CHROMIUM=1) but absent ({wanted})"
        );
        eprintln!("skipped: Chromium is not installed ({wanted})");
    }
    found
}

/// The DOM once the page's script ran, as headless Chromium serialises it.
pub async fn dump_dom(browser: &Path, url: &str) -> String {
    let profile = temp_dir("chromium");
    let mut command = tokio::process::Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .args([
            "--no-first-run",
            "--no-default-browser-check",
            "--no-proxy-server",
        ])
        .args([
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg("--virtual-time-budget=10000")
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", browser.display()));
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await;
    let _ = std::fs::remove_dir_all(&profile);
    let output = output
        .unwrap_or_else(|_| panic!("{} did not finish within 60 s", browser.display()))
        .unwrap_or_else(|e| panic!("{}: {e}", browser.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}): {stderr}",
        browser.display(),
        output.status
    );
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(dom.contains("</html>"), "no DOM from {url}: {stderr}");
    dom
}
