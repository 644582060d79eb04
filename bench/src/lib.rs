//! Helpers shared by specwire's load tools (`task-load`, `hub-load`,
//! `device-load`, `chat-load`, `idle-clients`).
//!
//! The tools themselves are the binaries; this library only holds what they
//! share: argument parsing, the loopback check, latency percentiles, the
//! provider's memory as the kernel reports it, and the HS256 tokens the
//! subscription hub wants (minted here with `ring`'s HMAC, independently of
//! specwire's own token code).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod chat;

use tokio_tungstenite::tungstenite::http::Uri;

/// Parses `5s`, `250ms`, `1m` (humantime) for clap.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("`{text}`: {error}"))
}

/// Checks that `endpoint` is a `ws://` URL on the loopback interface: the
/// load tools never point traffic anywhere else.
pub fn check_loopback(endpoint: &str) -> Result<(), String> {
    let uri: Uri = endpoint
        .parse()
        .map_err(|error| format!("--endpoint {endpoint}: {error}"))?;
    if uri.scheme_str() != Some("ws") {
        return Err(format!("--endpoint {endpoint}: only ws:// URLs are used"));
    }
    let host = uri.host().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    if !loopback {
        return Err(format!(
            "--endpoint {endpoint}: not a loopback address; the load tools only run against 127.0.0.1"
        ));
    }
    if uri.port_u16().is_none() {
        return Err(format!("--endpoint {endpoint}: no port"));
    }
    Ok(())
}

/// Latency summary from exact, sorted samples (nanoseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: u64,
}

/// Nearest-rank percentiles of `samples` (sorted in place).
pub fn percentiles(samples: &mut [u64]) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let rank = |p: f64| {
        let index = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[index.clamp(1, samples.len()) - 1]
    };
    let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
    Percentiles {
        count: samples.len(),
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: samples[samples.len() - 1],
        mean: (sum / samples.len() as u128) as u64,
    }
}

/// Nanoseconds as microseconds with one decimal, for JSON and tables.
pub fn micros(nanos: u64) -> f64 {
    (nanos as f64 / 100.0).round() / 10.0
}

/// Memory of a process from `/proc/PID/status`, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`.
    pub rss: u64,
    /// `RssAnon`: heap, stacks and other private memory.
    pub rss_anon: u64,
    /// `VmData`: private writable mappings (heap and thread stacks), touched or not.
    pub data: u64,
}

/// Reads `VmRSS`, `RssAnon` and `VmData` of `pid`.
pub fn memory(pid: u32) -> Result<Memory, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
    let field = |name: &str| -> Result<u64, String> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("{path}: no {name} line"))
    };
    Ok(Memory {
        rss: field("VmRSS")?,
        rss_anon: field("RssAnon")?,
        data: field("VmData")?,
    })
}

/// CPU time (user + system) `pid` has used so far, from `/proc/PID/stat`
/// (clock-tick resolution: 10 ms on Linux).
pub fn cpu_time(pid: u32) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
    };
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        return Err(format!("{path}: unexpected format"));
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    Ok(Duration::from_nanos(
        (user + system).saturating_mul(1_000_000_000 / per_second),
    ))
}

/// The soft "Max open files" limit of `pid` from `/proc/PID/limits`.
pub fn open_files_limit(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Raises this process's `RLIMIT_NOFILE` soft limit to its hard limit and
/// returns the new soft limit.
pub fn raise_open_files_limit() -> Result<u64, String> {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(format!(
                "getrlimit(RLIMIT_NOFILE): {}",
                std::io::Error::last_os_error()
            ));
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(format!(
                    "setrlimit(RLIMIT_NOFILE, {}): {}",
                    limit.rlim_max,
                    std::io::Error::last_os_error()
                ));
            }
            limit = raised;
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
        Ok(limit.rlim_cur as u64)
    }
}

/// A subscription-hub token for user `sub`: HS256 with `sub`, `iat`, `exp`
/// (now + `ttl`) and, for an admin, `"role":"admin"`.
pub fn hub_token(secret: &[u8], sub: &str, admin: bool, ttl: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut claims = serde_json::json!({"sub": sub, "iat": now, "exp": now + ttl.as_secs()});
    if admin {
        claims["role"] = "admin".into();
    }
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    // Encoding a JSON object with a secret key cannot fail.
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap_or_default()
}

/// A tokio runtime with `threads` workers (1: the current thread only).
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    let built = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    built.map_err(|error| format!("cannot start the tokio runtime: {error}"))
}

/// Runs `load` on a fresh runtime of `threads` workers, bounded by
/// `hard_cap`; `Err` when the runtime cannot start or the cap passes.
pub fn run_bounded<T>(
    threads: usize,
    hard_cap: Duration,
    load: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    let runtime = runtime(threads)?;
    let result = runtime.block_on(async { tokio::time::timeout(hard_cap, load).await });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map_err(|_| format!("the run did not end within its hard cap of {hard_cap:?}"))
}

/// Raises the open-files limit and warns (as `tool`) when it stays below
/// what `connections` need.
pub fn ensure_open_files(tool: &str, connections: u64) {
    match raise_open_files_limit() {
        Ok(limit) if limit < connections + 64 => eprintln!(
            "{tool}: warning: this process may open only {limit} files, fewer than {connections} connections need"
        ),
        Ok(_) => {}
        Err(error) => eprintln!("{tool}: warning: {error}"),
    }
}

/// The hub's secret from `--secret` or `--secret-file` (trailing newlines
/// dropped, as `specwire serve subscription --secret-file` does).
pub fn read_secret(
    secret: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Vec<u8>, String> {
    let bytes = match (secret, file) {
        (Some(secret), None) => secret.as_bytes().to_vec(),
        (None, Some(path)) => {
            let mut bytes = std::fs::read(path)
                .map_err(|error| format!("--secret-file {}: {error}", path.display()))?;
            while matches!(bytes.last(), Some(b'\n' | b'\r')) {
                bytes.pop();
            }
            bytes
        }
        _ => return Err("give the hub's secret with --secret or --secret-file".to_owned()),
    };
    if bytes.is_empty() {
        return Err("the secret is empty".to_owned());
    }
    Ok(bytes)
}

/// What a fan-out run (hub-load, device-load) counted: its rates and its
/// verdict, computed one way for every tool.
pub struct Deliveries<'a> {
    /// Deliveries measured (one message at one receiver).
    pub measured: u64,
    /// Deliveries the run should have seen.
    pub expected: u64,
    /// The measured window.
    pub window: Duration,
    /// Errors seen (lost, repeated, out of order, malformed).
    pub errors: u64,
    /// Some of them.
    pub examples: &'a [String],
}

impl Deliveries<'_> {
    /// Deliveries per second over the window.
    pub fn per_second(&self) -> f64 {
        let seconds = self.window.as_secs_f64();
        if seconds > 0.0 {
            self.measured as f64 / seconds
        } else {
            0.0
        }
    }

    /// `cpu` per delivery, in µs to two decimals.
    pub fn cpu_per_delivery_us(&self, cpu: Option<Duration>) -> Option<f64> {
        cpu.filter(|_| self.measured > 0)
            .map(|cpu| (cpu.as_secs_f64() * 1e9 / self.measured as f64 / 10.0).round() / 100.0)
    }

    /// `cpu` over the window, in cores to two decimals.
    pub fn cores(&self, cpu: Option<Duration>) -> Option<f64> {
        let seconds = self.window.as_secs_f64();
        cpu.filter(|_| seconds > 0.0)
            .map(|cpu| (cpu.as_secs_f64() / seconds * 100.0).round() / 100.0)
    }

    /// Exit status 1 (the reason on stderr, as `tool`) when there were
    /// errors or not every delivery was measured.
    pub fn verdict(&self, tool: &str) -> std::process::ExitCode {
        if self.errors > 0 {
            eprintln!("{tool}: failed: {}", self.examples.join("; "));
            return std::process::ExitCode::from(1);
        }
        if self.measured == 0 || self.measured != self.expected {
            eprintln!(
                "{tool}: {} of {} deliveries measured",
                self.measured, self.expected
            );
            return std::process::ExitCode::from(1);
        }
        std::process::ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        let p = percentiles(&mut samples);
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max, p.count),
            (50, 90, 99, 100, 100)
        );
        assert_eq!(percentiles(&mut [7]).p99, 7);
        assert_eq!(percentiles(&mut []).count, 0);
    }

    #[test]
    fn only_loopback_endpoints() {
        assert!(check_loopback("ws://127.0.0.1:8080").is_ok());
        assert!(check_loopback("ws://localhost:1").is_ok());
        assert!(check_loopback("ws://[::1]:1").is_ok());
        assert!(check_loopback("ws://10.0.0.1:8080").is_err());
        assert!(check_loopback("wss://127.0.0.1:8080").is_err());
        assert!(check_loopback("ws://127.0.0.1").is_err());
    }

    #[test]
    fn hub_tokens_are_hs256_with_the_claims() {
        let token = hub_token(b"s", "root", true, Duration::from_secs(60));
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"s"),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(
            (claims["sub"].as_str(), claims["role"].as_str()),
            (Some("root"), Some("admin"))
        );
    }

    #[test]
    fn reads_own_memory() {
        let memory = memory(std::process::id()).unwrap();
        assert!(memory.rss > 0 && memory.data > 0);
        assert!(open_files_limit(std::process::id()).is_some());
        let start = cpu_time(std::process::id()).unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0);
        }
        assert!(cpu_time(std::process::id()).unwrap() > start);
    }
}
