//! Headless Chromium for browser tests of the project's web pages.
//!
//! `web/setup-browser-env` installs Debian's `chromium` (with apt-get, when
//! `/usr/bin/chromium` is missing) and `playwright-core` (pinned in
//! `web/package-lock.json`, `npm ci` into `web/node_modules`),
//! idempotently, and prints the chromium path last. [`browser_env`] runs it
//! once per test binary; the tests then run the node scripts in `web/`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::paths::workspace;

/// The variable that skips the browser tests (machines without apt-get or
/// the npm registry, and without Chromium and `web/node_modules` ready).
pub const SKIP_VARIABLE: &str = "SPECWIRE_SKIP_BROWSER_TESTS";

/// What the browser tests run with.
#[derive(Clone, Debug)]
pub struct BrowserEnv {
    /// The chromium executable (`/usr/bin/chromium`, or `SPECWIRE_CHROMIUM`).
    pub chromium: PathBuf,
    /// The `web/` folder: the node scripts and their `node_modules`.
    pub web: PathBuf,
}

impl BrowserEnv {
    /// `node web/<script>`, told where chromium is (`SPECWIRE_CHROMIUM`).
    pub fn node(&self, script: &str) -> Command {
        let mut command = Command::new("node");
        command
            .arg(self.web.join(script))
            .env("SPECWIRE_CHROMIUM", &self.chromium)
            .current_dir(&self.web);
        command
    }
}

fn set_up() -> Result<BrowserEnv, String> {
    let web = workspace().join("web");
    let output = Command::new(web.join("setup-browser-env"))
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run web/setup-browser-env: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "web/setup-browser-env failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let chromium = stdout
        .lines()
        .last()
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .ok_or("web/setup-browser-env printed no chromium path")?;
    Ok(BrowserEnv {
        chromium: PathBuf::from(chromium),
        web,
    })
}

/// Chromium and playwright-core, made ready once per test binary; `None`
/// when [`SKIP_VARIABLE`] is set (the test then returns early). Fails the
/// test when the setup script fails, saying how to skip.
pub fn browser_env() -> Option<BrowserEnv> {
    if std::env::var_os(SKIP_VARIABLE).is_some() {
        eprintln!("{SKIP_VARIABLE} is set: skipping the browser test");
        return None;
    }
    static READY: OnceLock<Result<BrowserEnv, String>> = OnceLock::new();
    match READY.get_or_init(set_up) {
        Ok(env) => Some(env.clone()),
        Err(error) => panic!(
            "{error}\nThe browser tests need Debian's chromium and Node.js 20 with npm \
             (web/README.md); set {SKIP_VARIABLE}=1 to skip them"
        ),
    }
}
