//! What every specwire crate's tests need and nothing else: one home, so a
//! fix to a wait or a certificate reaches every test at once.
//!
//! - [`wait`]: bounded waits ([`within`], [`eventually`]); nothing here
//!   sleeps to synchronise, every wait is for an event or a condition and
//!   fails the test after a limit.
//! - [`paths`]: the workspace root and files in it; scratch directories.
//! - [`net`]: a free UDP port (a private discovery port per test).
//! - [`browser`]: headless Chromium and playwright-core
//!   (`web/setup-browser-env`), or a skip when `SPECWIRE_SKIP_BROWSER_TESTS`
//!   is set.
//! - [`python`]: the interop virtualenv (`interop/setup-python-env`), or a
//!   skip when `SPECWIRE_SKIP_PYTHON_INTEROP` is set.
//! - [`tls`]: a self-signed certificate for `localhost` and `127.0.0.1`.
//! - [`accept`]: a loopback TCP server running a handler per connection
//!   (hostile targets, fault proxies).
//! - [`proxy`]: a loopback TCP proxy that can cut, freeze or refuse
//!   connections and change its target.
//! - [`process`]: a program under test as a child process, its output
//!   lines on channels, killed on drop.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use specwire_testsupport::{eventually, within};
//! let answer = within("a ready future", async { 42 }).await;
//! assert_eq!(answer, 42);
//! eventually("a condition that holds", || true).await;
//! # }
//! ```
//!
//! Dev-only: no crate depends on it outside `[dev-dependencies]`, so the
//! `expect`s below are test failures with a reason, not production panics.

pub mod accept;
pub mod browser;
pub mod net;
pub mod paths;
pub mod process;
pub mod proxy;
pub mod python;
pub mod tls;
pub mod wait;

pub use accept::Acceptor;
pub use browser::{browser_env, BrowserEnv};
pub use net::free_udp_port;
pub use paths::{scratch, temp_dir, workspace};
pub use process::{Pipe, Running};
pub use proxy::Proxy;
pub use python::interop_python;
pub use tempfile::TempDir;
pub use tls::SelfSigned;
pub use wait::{eventually, within, within_for, PATIENCE};
