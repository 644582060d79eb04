//! `specwire validate`: check messages from a file or stdin.

use specwire_protocol::device::LineProtocol;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;
use specwire_protocol::{device, uart, DecodeError, Direction, JsonFamily, Violation};
use specwire_wire::{parse_hex, FrameDecoder};

/// Input larger than this is refused before parsing: no message of any
/// family comes near it, and reading it whole could exhaust memory.
const DEFAULT_MAX_INPUT: u64 = 64 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// The file to read; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// The family: discovery, task, subscription, chat, device or uart.
    /// Without it, JSON input is tried against every JSON family.
    #[arg(long, short)]
    family: Option<String>,
    /// Only consider messages sent in this direction
    /// (client-to-server, server-to-client, broadcast).
    #[arg(long)]
    direction: Option<String>,
    /// Validate every JSON value as this message, skipping recognition
    /// (e.g. `--family task --message AssignTask`).
    #[arg(long)]
    message: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Refuse input larger than this many bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_INPUT)]
    max_input: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// The verdict on one message.
#[derive(Serialize)]
struct Outcome {
    /// 1-based position in the input.
    index: usize,
    /// 1-based line where the message starts.
    line: usize,
    family: Option<String>,
    message: Option<String>,
    valid: bool,
    /// Why it is invalid when no schema rule applies (not JSON, unknown type, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    violations: Vec<Violation>,
}

impl Outcome {
    fn new(index: usize, line: usize) -> Outcome {
        Outcome {
            index,
            line,
            family: None,
            message: None,
            valid: false,
            error: None,
            violations: Vec::new(),
        }
    }
}

/// A usage error or unreadable input: exit status 2.
struct Fatal(String);

pub fn run(args: &Args) -> ExitCode {
    match collect(args) {
        Ok(outcomes) => report(args.format, &outcomes),
        Err(Fatal(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn collect(args: &Args) -> Result<Vec<Outcome>, Fatal> {
    let direction = match &args.direction {
        None => None,
        Some(text) => Some(Direction::parse(text).ok_or_else(|| {
            Fatal(format!(
                "unknown direction {text:?}: use client-to-server, server-to-client or broadcast"
            ))
        })?),
    };
    let family = args.family.as_deref();
    if let Some(name) = family {
        if !specwire_protocol::FAMILIES.contains(&name) {
            return Err(Fatal(format!(
                "unknown family {name:?}: use one of {}",
                specwire_protocol::FAMILIES.join(", ")
            )));
        }
    }
    if args.message.is_some() && family.is_none_or(|f| JsonFamily::from_name(f).is_none()) {
        return Err(Fatal("--message needs --family with a JSON family".into()));
    }
    let input = read_input(args)?;
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(Fatal(format!("{} is empty", source_name(args))));
    }
    Ok(match family {
        Some("uart") => uart_frames(&input)?,
        Some("device") => device_lines(&input, direction),
        Some(name) => json_values(
            &input,
            JsonFamily::from_name(name),
            direction,
            args.message.as_deref(),
        ),
        None => json_values(&input, None, direction, None),
    })
}

fn source_name(args: &Args) -> String {
    match &args.file {
        Some(path) if path.as_os_str() != "-" => path.display().to_string(),
        _ => "standard input".into(),
    }
}

fn read_input(args: &Args) -> Result<Vec<u8>, Fatal> {
    let name = source_name(args);
    let limit = args.max_input;
    let too_big = |size: u64| {
        Fatal(format!(
            "{name} is {} bytes, over the {limit}-byte input limit (raise it with --max-input)",
            size
        ))
    };
    let mut buffer = Vec::new();
    match &args.file {
        Some(path) if path.as_os_str() != "-" => {
            let file =
                std::fs::File::open(path).map_err(|e| Fatal(format!("cannot read {name}: {e}")))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if size > limit {
                return Err(too_big(size));
            }
            file.take(limit + 1)
                .read_to_end(&mut buffer)
                .map_err(|e| Fatal(format!("cannot read {name}: {e}")))?;
        }
        None if io::stdin().is_terminal() => {
            // Waiting silently on a terminal looks like a hang.
            return Err(Fatal(
                "no input: pass a FILE, pipe messages in, or use `-` to type them".into(),
            ));
        }
        _ => {
            io::stdin()
                .lock()
                .take(limit + 1)
                .read_to_end(&mut buffer)
                .map_err(|e| Fatal(format!("cannot read {name}: {e}")))?;
        }
    }
    if buffer.len() as u64 > limit {
        return Err(too_big(buffer.len() as u64));
    }
    Ok(buffer)
}

fn line_of(input: &[u8], offset: usize) -> usize {
    1 + input[..offset.min(input.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Every JSON value in `input` (concatenated or NDJSON). After a syntax
/// error the scan resumes at the next line, so one bad NDJSON line does not
/// hide the rest.
fn json_values(
    input: &[u8],
    family: Option<JsonFamily>,
    direction: Option<Direction>,
    message: Option<&str>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut offset = 0;
    while offset < input.len() {
        let rest = &input[offset..];
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
        loop {
            let start =
                offset + skip_whitespace(&rest[stream.byte_offset()..]) + stream.byte_offset();
            match stream.next() {
                None => {
                    offset = input.len();
                    break;
                }
                Some(Ok(value)) => {
                    let mut outcome = Outcome::new(outcomes.len() + 1, line_of(input, start));
                    judge_json(&value, family, direction, message, &mut outcome);
                    outcomes.push(outcome);
                }
                Some(Err(error)) => {
                    let mut outcome = Outcome::new(outcomes.len() + 1, line_of(input, start));
                    outcome.family = family.map(|f| f.name().to_owned());
                    outcome.error = Some(not_json(input, offset, start, &error));
                    outcomes.push(outcome);
                    // Resume after the line the error is on (its line is
                    // counted from `offset`).
                    let newlines = rest
                        .iter()
                        .enumerate()
                        .filter(|&(_, &b)| b == b'\n')
                        .map(|(at, _)| at);
                    offset = match newlines.clone().nth(error.line().saturating_sub(1)) {
                        Some(newline) => offset + newline + 1,
                        None => input.len(),
                    }
                    .max(start + 1);
                    break;
                }
            }
        }
    }
    outcomes
}

fn skip_whitespace(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

fn not_json(input: &[u8], offset: usize, start: usize, error: &serde_json::Error) -> String {
    let looks_binary = input[start..]
        .iter()
        .take(64)
        .any(|&b| b < 0x09 || (b > 0x0d && b < 0x20) || b == 0x7f);
    if looks_binary {
        return format!("not JSON: binary data at byte {start}");
    }
    // serde_json counts lines from where this scan started; report them
    // from the start of the input.
    let text = error.to_string();
    let reason = text.split(" at line ").next().unwrap_or(&text);
    let line = line_of(input, offset) + error.line().saturating_sub(1);
    format!(
        "not JSON: {reason} (line {line}, column {})",
        error.column()
    )
}

fn judge_json(
    value: &Value,
    family: Option<JsonFamily>,
    direction: Option<Direction>,
    message: Option<&str>,
    outcome: &mut Outcome,
) {
    if let (Some(family), Some(message)) = (family, message) {
        outcome.family = Some(family.name().to_owned());
        outcome.message = Some(message.to_owned());
        match family.violations_of(message, value) {
            None => outcome.error = Some(format!("{} has no message {message}", family.name())),
            Some(violations) => {
                outcome.valid = violations.is_empty();
                outcome.violations = violations;
            }
        }
        return;
    }
    let families: Vec<JsonFamily> = match family {
        Some(family) => vec![family],
        None => JsonFamily::ALL.to_vec(),
    };
    // Without --family: the first family that accepts the value wins; else
    // report the first family that recognised it; else "unknown".
    let mut recognised: Option<(JsonFamily, DecodeError)> = None;
    let mut unknown: Option<DecodeError> = None;
    for family in families {
        match family.validate(value, direction) {
            Ok(name) => {
                outcome.family = Some(family.name().to_owned());
                outcome.message = Some(name.to_owned());
                outcome.valid = true;
                return;
            }
            Err(error @ DecodeError::Invalid { .. }) => {
                recognised.get_or_insert((family, error));
            }
            Err(error) => {
                unknown.get_or_insert(error);
            }
        }
    }
    match (recognised, unknown) {
        (
            Some((
                family,
                DecodeError::Invalid {
                    message,
                    violations,
                    ..
                },
            )),
            _,
        ) => {
            outcome.family = Some(family.name().to_owned());
            outcome.message = Some(message.to_owned());
            outcome.violations = violations;
        }
        (_, Some(error)) if family.is_some() => {
            outcome.family = family.map(|f| f.name().to_owned());
            outcome.error = Some(error.to_string());
        }
        _ => {
            outcome.error = Some(format!(
                "no family recognises this message ({}); pass --family to see why",
                specwire_wire::json::describe_discriminator(
                    value,
                    &["/type", "/discoveryType", "/method", "/status"]
                )
            ))
        }
    }
}

fn device_lines(input: &[u8], direction: Option<Direction>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (number, raw) in input.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        let mut outcome = Outcome::new(outcomes.len() + 1, number + 1);
        outcome.family = Some("device".into());
        match std::str::from_utf8(raw) {
            Err(error) => outcome.error = Some(format!("not UTF-8 text: {error}")),
            Ok(text) => match device::Line::parse_from(text, direction) {
                Ok(line) => {
                    outcome.message = Some(line.name().to_owned());
                    outcome.valid = true;
                }
                Err(error) => outcome.error = Some(error.to_string()),
            },
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// Hex text of a byte stream of frames (`ff ... fe`), e.g. a capture.
fn uart_frames(input: &[u8]) -> Result<Vec<Outcome>, Fatal> {
    let text = std::str::from_utf8(input).map_err(|_| {
        Fatal("uart input must be hex text (e.g. `ff 53 fe`), found binary data".into())
    })?;
    let bytes = parse_hex(text).map_err(|e| Fatal(format!("uart input is not hex: {e}")))?;
    let mut decoder = FrameDecoder::new();
    let mut bodies = Vec::new();
    decoder.decode(&bytes, |body| bodies.push(body.to_vec()));
    let mut outcomes = Vec::new();
    for body in bodies {
        let mut outcome = Outcome::new(outcomes.len() + 1, 1);
        outcome.family = Some("uart".into());
        match uart::decode_any(&body) {
            Ok(decoded) => {
                outcome.message = Some(decoded.kind_name());
                outcome.valid = true;
            }
            Err(error) => {
                outcome.error = Some(format!("{error} (body {})", specwire_wire::to_hex(&body)))
            }
        }
        outcomes.push(outcome);
    }
    let stats = decoder.stats();
    let dropped = [
        (stats.dropped_bad_escape, "with a bad escape"),
        (stats.dropped_truncated, "cut short by a new 0xFF"),
        (stats.dropped_oversize, "over the size limit"),
        (stats.dropped_empty, "empty"),
    ];
    for (count, why) in dropped {
        for _ in 0..count {
            let mut outcome = Outcome::new(outcomes.len() + 1, 1);
            outcome.family = Some("uart".into());
            outcome.error = Some(format!("frame dropped: {why}"));
            outcomes.push(outcome);
        }
    }
    if decoder.in_frame() {
        let mut outcome = Outcome::new(outcomes.len() + 1, 1);
        outcome.family = Some("uart".into());
        outcome.error = Some("input ends inside a frame (no closing 0xFE)".into());
        outcomes.push(outcome);
    }
    if outcomes.is_empty() {
        return Err(Fatal(format!(
            "no frame found in {} byte(s) of uart input (frames start with ff and end with fe)",
            bytes.len()
        )));
    }
    Ok(outcomes)
}

fn report(format: Format, outcomes: &[Outcome]) -> ExitCode {
    let invalid = outcomes.iter().filter(|o| !o.valid).count();
    let mut out = io::stdout().lock();
    let written = match format {
        Format::Json => {
            let document = serde_json::json!({
                "valid": outcomes.len() - invalid,
                "invalid": invalid,
                "results": outcomes,
            });
            writeln!(out, "{document:#}")
        }
        Format::Text => text_report(&mut out, outcomes, invalid),
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    if written.is_err() {
        return ExitCode::from(2);
    }
    if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn text_report(out: &mut impl Write, outcomes: &[Outcome], invalid: usize) -> io::Result<()> {
    let color = io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (green, red, reset) = if color {
        ("\x1b[32m", "\x1b[31m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let many = outcomes.len() > 1;
    for outcome in outcomes {
        let name = match (&outcome.family, &outcome.message) {
            (Some(family), Some(message)) => format!("{family}/{message}"),
            (Some(family), None) => family.clone(),
            _ => "message".into(),
        };
        let place = if many {
            format!(" (#{}, line {})", outcome.index, outcome.line)
        } else {
            String::new()
        };
        if outcome.valid {
            writeln!(out, "{green}valid{reset} {name}{place}")?;
            continue;
        }
        match &outcome.error {
            Some(error) => writeln!(out, "{red}invalid{reset} {name}{place}: {error}")?,
            None => {
                writeln!(out, "{red}invalid{reset} {name}{place}")?;
                for violation in &outcome.violations {
                    writeln!(out, "  {violation}")?;
                }
            }
        }
    }
    if many {
        writeln!(
            out,
            "{} valid, {} invalid",
            outcomes.len() - invalid,
            invalid
        )?;
    }
    Ok(())
}
