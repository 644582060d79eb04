//! Durations on the command line: `2s`, `500ms`, `1m` or plain seconds.

use std::time::Duration;

/// Parses `2s`, `500ms`, `1m` (humantime) or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Ok(Duration::from_secs_f64(seconds));
        }
    }
    humantime::parse_duration(text)
        .map_err(|error| format!("`{text}`: {error} (try 2s, 500ms, 1m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_humantime() {
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert!(parse_duration("-1").unwrap_err().contains("try 2s"));
    }
}
