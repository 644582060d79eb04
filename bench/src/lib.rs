//! Helpers shared by specwire's load tools (`task-load`, `idle-clients`).
//!
//! The tools themselves are the binaries; this library only holds what both
//! need: argument parsing, the loopback check, latency percentiles and the
//! provider's memory as the kernel reports it.

use std::time::Duration;

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
