//! Helpers shared by specwire's load tools (`task-load`, `hub-load`,
//! `idle-clients`).
//!
//! The tools themselves are the binaries; this library only holds what they
//! share: argument parsing, the loopback check, latency percentiles, the
//! provider's memory as the kernel reports it, and the HS256 tokens the
//! subscription hub wants (minted here with `ring`'s HMAC, independently of
//! specwire's own token code).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Base64url without padding (RFC 4648 §5), as JWTs use it.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// A JWT signed with HS256: `base64url(header).base64url(claims).signature`,
/// the header and claims given as JSON text.
pub fn jwt_hs256(secret: &[u8], header: &str, claims: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        base64url(header.as_bytes()),
        base64url(claims.as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", base64url(tag.as_ref()))
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
    jwt_hs256(
        secret,
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims.to_string(),
    )
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
    fn base64url_and_hs256_match_known_vectors() {
        // RFC 4648 §10 vectors, without padding.
        let cases = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64url(plain.as_bytes()), encoded);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        // The example token of RFC 7519's debugger site (secret `your-256-bit-secret`).
        let token = jwt_hs256(
            b"your-256-bit-secret",
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#,
        );
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        );
        let admin = hub_token(b"s", "root", true, Duration::from_secs(60));
        assert_eq!(admin.split('.').count(), 3);
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
