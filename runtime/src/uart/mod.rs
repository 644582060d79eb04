//! The **uart** family (PROFILE.md, "uart (seed 004)"): a gateway between a
//! serial-attached mesh root module and local clients, speaking
//! byte-stuffed frames (`0xFF` body `0xFE`) whose bodies are the generated
//! [`specwire_protocol::uart`] codecs.
//!
//! This folder holds, so far, the module side for testing a gateway
//! without hardware:
//!
//! - [`pty`]: a pseudo-terminal ([`Pty`]) whose slave is linked at a path
//!   a gateway opens as its serial port; the master is async I/O.
//! - [`simulator`]: a simulated root module ([`ModuleSimulator`]) on that
//!   pty: answers every module command with one `S`/`F` frame, sends
//!   `NOD`, `DATA_UPDATE`, `NET` and `RST` messages, with an optional slow
//!   node and a noisy line.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use specwire_runtime::uart::{ModuleSimulator, SimulatorConfig};
//!
//! let simulator = ModuleSimulator::start(SimulatorConfig {
//!     noise: 0.001,
//!     ..SimulatorConfig::new("/tmp/uart-module")
//! })?;
//! // A gateway now opens /tmp/uart-module as its serial port.
//! # simulator.stop().await;
//! # Ok(()) }
//! ```
//!
//! The same from the command line: `specwire simulate uart-module
//! --pty-link /tmp/uart-module`.

pub mod client;
pub mod describe;
pub mod gateway;
pub mod link;
pub mod monitor;
pub mod pty;
pub mod simulator;
pub mod store;
pub mod table;

pub use pty::Pty;
pub use simulator::{
    CommandCounts, MessageCounts, ModuleSimulator, SimulatorConfig, SimulatorStats, ROOT_ADDR,
};
