//! A program under test as a child process: its output lines arrive on
//! channels (read by threads, so a full pipe never blocks it), every wait
//! for a line or for its exit is bounded, and it is killed on drop, so a
//! failing test never leaves a server behind.
//!
//! ```no_run
//! use specwire_testsupport::Running;
//! let mut server = Running::start(std::process::Command::new("specwire").args(["serve", "task"]));
//! let _endpoint = server.endpoint(); // from its `listening on` line
//! server.signal("TERM");
//! let (_status, _stdout, _stderr) = server.finish();
//! ```

use std::io::Write;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The longest a wait for a process's line or exit may take: a process
/// starts slower than an in-process future (a Python interpreter, a binary
/// built with debug assertions on a shared machine).
pub const PROCESS_PATIENCE: Duration = Duration::from_secs(30);

/// Which of a process's output pipes to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    Stdout,
    Stderr,
}

/// A child process whose output lines arrive on channels; killed on drop.
pub struct Running {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Its stdin, when started with [`Running::start_with_stdin`].
    stdin: Option<ChildStdin>,
    /// Every line seen so far, for failure messages.
    seen: Vec<String>,
}

fn lines(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

impl Running {
    /// Spawns `command` with stdin closed and both output pipes read.
    pub fn start(command: &mut Command) -> Running {
        Running::spawn(command.stdin(Stdio::null()))
    }

    /// Like [`start`](Self::start), with stdin a pipe the test writes with
    /// [`write_line`](Self::write_line) and ends with
    /// [`close_stdin`](Self::close_stdin).
    pub fn start_with_stdin(command: &mut Command) -> Running {
        Running::spawn(command.stdin(Stdio::piped()))
    }

    fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {command:?}: {error}"));
        let stdout = lines(child.stdout.take().expect("a stdout pipe"));
        let stderr = lines(child.stderr.take().expect("a stderr pipe"));
        Running {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Writes `line` and a newline to its stdin.
    pub fn write_line(&mut self, line: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .expect("started with start_with_stdin, stdin not closed");
        writeln!(stdin, "{line}").expect("write to the process's stdin");
        stdin.flush().expect("flush the process's stdin");
    }

    /// Closes its stdin (the end of its input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most [`PROCESS_PATIENCE`]) for a line on `pipe` matching
    /// `predicate` and returns it; the lines before it are skipped.
    pub fn wait_for(&mut self, pipe: Pipe, predicate: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PROCESS_PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let receiver = match pipe {
                Pipe::Stdout => &self.stdout,
                Pipe::Stderr => &self.stderr,
            };
            match receiver.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if predicate(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no matching line on {pipe:?} within {PROCESS_PATIENCE:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// A server's endpoint, from its `listening on ENDPOINT` line.
    pub fn endpoint(&mut self) -> String {
        let line = self.wait_for(Pipe::Stdout, |line| line.starts_with("listening on "));
        line.trim_start_matches("listening on ").to_owned()
    }

    /// Sends signal `name` (`TERM`, `INT`, ...) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// Waits (at most [`PROCESS_PATIENCE`]) for the exit; returns the
    /// status and the rest of stdout and stderr.
    pub fn finish(self) -> (ExitStatus, String, String) {
        self.finish_within(PROCESS_PATIENCE)
    }

    /// Waits (at most `limit`) for the exit, for a process whose own work
    /// takes longer than [`PROCESS_PATIENCE`] (a browser run); returns the
    /// status and the rest of stdout and stderr.
    pub fn finish_within(mut self, limit: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {limit:?}; saw:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipes close at exit, so these end.
        let stdout: Vec<String> = self.stdout.iter().collect();
        let stderr: Vec<String> = self.stderr.iter().collect();
        (status, stdout.join("\n"), stderr.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_exit_and_output_are_seen() {
        let mut shell = Running::start(Command::new("sh").args([
            "-c",
            "echo listening on ws://here; echo oops >&2; echo done",
        ]));
        assert_eq!(shell.endpoint(), "ws://here");
        assert_eq!(shell.wait_for(Pipe::Stderr, |line| line == "oops"), "oops");
        let (status, stdout, stderr) = shell.finish();
        assert!(status.success());
        assert_eq!((stdout.as_str(), stderr.as_str()), ("done", ""));
    }

    #[test]
    fn a_process_is_killed_on_drop() {
        let sleeper = Running::start(Command::new("sleep").arg("600"));
        let pid = sleeper.id().to_string();
        drop(sleeper);
        let alive = Command::new("kill")
            .args(["-0", &pid])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!alive.success(), "process {pid} still runs");
    }
}
