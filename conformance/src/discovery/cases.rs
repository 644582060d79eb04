//! The discovery family's cases, one function per catalog ID
//! (`schema/discovery/conformance.json`). See the module docs of
//! [`discovery`](super) for what counts as an answer and a heartbeat, and
//! when a case has nothing to judge.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::port::{self, Reuse};
use super::target::Ctx;
use super::wire::{Datagram, Until};
use crate::suite::Registry;
use crate::transcript::Direction;
use crate::verdict::{check, fail, Stop};
use specwire_runtime::net::{connect, ConnectError};

/// The discovery cases, one per catalog ID.
pub(crate) static CASES: Registry<Ctx> = crate::cases!(Ctx {
    "discovery.advertisement.valid" => valid,
    "discovery.request.answered-within-1s" => answered_within_1s,
    "discovery.request.unicast-answer" => unicast_answer,
    "discovery.request.answer-to-targets" => answer_to_targets,
    "discovery.request.responds-to-client-id" => responds_to_client_id,
    "discovery.heartbeat.omits-responds-to" => heartbeat_omits_responds_to,
    "discovery.heartbeat.interval" => heartbeat_interval,
    "discovery.advertisement.settings-types" => settings_types,
    "discovery.advertisement.load-range" => load_range,
    "discovery.advertisement.endpoint-reachable" => endpoint_reachable,
    "discovery.advertisement.online-status" => online_status,
    "discovery.socket.shared-port" => shared_port,
});

/// Cases that must run after every other: they judge the whole run.
pub(crate) const RUN_LAST: &[&str] = &["discovery.advertisement.valid"];

/// Up to five items, `|`-separated, and how many there were.
fn some_of(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(5).map(String::as_str).collect();
    let mut text = shown.join(" | ");
    if items.len() > shown.len() {
        text.push_str(&format!(" | … ({} in all)", items.len()));
    }
    text
}

fn nothing_to_judge(what: &str, reporter: &str) -> Stop {
    Stop::Skip(format!(
        "{what}: nothing to judge ({reporter} reports that)"
    ))
}

// ---- request ----------------------------------------------------------

async fn answered_within_1s(ctx: &mut Ctx) -> Result<(), Stop> {
    let exchange = ctx.exchange(Until::FirstAnswer).await?;
    let limit = ctx.target.reply_timeout;
    let Some(first) = exchange.answers().next() else {
        return fail(exchange.nothing_answered());
    };
    let after = exchange.after(first);
    check(after <= limit, || {
        format!(
            "the first answer to request {} came {} ms after it ({}); the limit is {}",
            exchange.client_id,
            after.as_millis(),
            first.describe(),
            humantime::format_duration(limit)
        )
    })
}

async fn unicast_answer(ctx: &mut Ctx) -> Result<(), Stop> {
    let exchange = ctx.exchange(Until::FirstUnicast).await?;
    if exchange.unicast().next().is_some() {
        return Ok(());
    }
    let broadcast = exchange.answers().count();
    fail(format!(
        "nothing arrived by unicast at the request's source (port {}) within {}{}",
        exchange.source.port(),
        humantime::format_duration(exchange.window),
        if broadcast > 0 {
            format!(": the request was answered only on the shared port ({broadcast} answer(s))")
        } else {
            ": the request got no answer at all".to_owned()
        }
    ))
}

async fn answer_to_targets(ctx: &mut Ctx) -> Result<(), Stop> {
    let exchange = ctx.exchange(Until::FirstOnShared).await?;
    if exchange.to_targets().next().is_some() {
        return Ok(());
    }
    let unicast = exchange.unicast().count();
    if unicast > 0
        && exchange
            .unicast()
            .all(|datagram| datagram.responds_to() != Some(&exchange.client_id))
    {
        return Err(Stop::Skip(
            "the answers name no clientId, so an answer on the shared port cannot be told from a heartbeat (discovery.request.responds-to-client-id reports that)".into(),
        ));
    }
    fail(format!(
        "no advertisement naming request {} arrived on the shared discovery port (where what the provider sends to its targets arrives) within {}{}",
        exchange.client_id,
        humantime::format_duration(exchange.window),
        if unicast > 0 {
            format!(": the request was answered only by unicast to its source ({unicast} answer(s))")
        } else {
            ": the request got no answer at all".to_owned()
        }
    ))
}

async fn responds_to_client_id(ctx: &mut Ctx) -> Result<(), Stop> {
    let exchange = ctx.exchange(Until::FirstUnicast).await?;
    // Whatever reaches the fresh socket that sent the request answers it;
    // broadcasts naming another client answer someone else.
    let wrong: Vec<String> = exchange
        .unicast()
        .filter(|datagram| datagram.responds_to() != Some(&exchange.client_id))
        .map(|datagram| {
            format!(
                "{} has respondsToClientId {}",
                datagram.describe(),
                datagram.responds_to_shown()
            )
        })
        .collect();
    check(wrong.is_empty(), || {
        format!(
            "an answer to request {} must name its clientId: {}",
            exchange.client_id,
            some_of(&wrong)
        )
    })?;
    if exchange.answers().next().is_none() {
        return Err(nothing_to_judge(
            "the request got no answer",
            "discovery.request.answered-within-1s",
        ));
    }
    Ok(())
}

// ---- heartbeat --------------------------------------------------------

async fn heartbeat_omits_responds_to(ctx: &mut Ctx) -> Result<(), Stop> {
    let heartbeats = ctx.heartbeats().await?;
    if heartbeats.unsolicited.is_empty() {
        return Err(nothing_to_judge(
            &format!(
                "no heartbeat within {}",
                humantime::format_duration(ctx.target.heartbeat_wait)
            ),
            "discovery.heartbeat.interval",
        ));
    }
    let carrying: Vec<String> = heartbeats
        .unsolicited
        .iter()
        .filter(|datagram| datagram.value.get("respondsToClientId").is_some())
        .map(|datagram| {
            format!(
                "{} carries respondsToClientId {}",
                datagram.describe(),
                datagram.responds_to_shown()
            )
        })
        .collect();
    check(carrying.is_empty(), || {
        format!(
            "advertisements that answer no request the suite sent or saw within {} are heartbeats, and heartbeats omit respondsToClientId: {}",
            humantime::format_duration(ctx.target.window()),
            some_of(&carrying)
        )
    })
}

async fn heartbeat_interval(ctx: &mut Ctx) -> Result<(), Stop> {
    let heartbeats = ctx.heartbeats().await?;
    check(!heartbeats.unsolicited.is_empty(), || {
        format!(
            "no unsolicited advertisement (heartbeat) within {} (the profile's heartbeat default is 30 s)",
            humantime::format_duration(ctx.target.heartbeat_wait)
        )
    })
}

// ---- advertisement ----------------------------------------------------

/// What is wrong with one element of `settings`, if anything.
pub(crate) fn setting_problem(setting: &Value) -> Option<String> {
    const TYPES: [&str; 4] = ["string", "int", "float", "bool"];
    let Some(object) = setting.as_object() else {
        return Some("is not an object".into());
    };
    let mut entries = object.iter();
    let (Some((kind, name)), None) = (entries.next(), entries.next()) else {
        return Some(format!(
            "has {} keys; a setting has exactly one",
            object.len()
        ));
    };
    if !TYPES.contains(&kind.as_str()) {
        return Some(format!(
            "has type `{kind}`, not one of string, int, float, bool"
        ));
    }
    if !name.is_string() {
        return Some("names its parameter with something other than a string".into());
    }
    None
}

/// Every bad setting of `datagram`; capabilities or settings that are not
/// arrays are the schema's business (`discovery.advertisement.valid`).
fn bad_settings(datagram: &Datagram) -> Vec<String> {
    let service = datagram.service_name().unwrap_or("an unnamed service");
    let capabilities = datagram.value.get("capabilities").and_then(Value::as_array);
    let mut problems = Vec::new();
    for capability in capabilities.into_iter().flatten() {
        let key = capability
            .get("key")
            .map_or_else(|| "?".to_owned(), Value::to_string);
        let settings = capability.get("settings").and_then(Value::as_array);
        for (index, setting) in settings.into_iter().flatten().enumerate() {
            if let Some(problem) = setting_problem(setting) {
                problems.push(format!(
                    "{service} capability {key} settings[{index}] {setting} {problem}"
                ));
            }
        }
    }
    problems
}

async fn settings_types(ctx: &mut Ctx) -> Result<(), Stop> {
    let exchange = ctx.exchange(Until::FirstAnswer).await?;
    if exchange.advertisements().next().is_none() {
        return Err(nothing_to_judge(
            "no advertisement arrived",
            "discovery.request.answered-within-1s",
        ));
    }
    let problems: BTreeSet<String> = exchange.advertisements().flat_map(bad_settings).collect();
    let problems: Vec<String> = problems.into_iter().collect();
    check(problems.is_empty(), || {
        format!(
            "settings must be one-key objects {{\"<type>\": \"<parameterName>\"}} with type string, int, float or bool: {}",
            some_of(&problems)
        )
    })
}

/// The first advertised `ws://`/`wss://` endpoint of `exchange`, with its
/// service's name.
fn advertised_endpoint(exchange: &super::Exchange) -> Option<(String, String)> {
    exchange.advertisements().find_map(|datagram| {
        let endpoint = datagram.endpoint()?;
        let service = datagram.service_name()?;
        (endpoint.starts_with("ws://") || endpoint.starts_with("wss://"))
            .then(|| (endpoint.to_owned(), service.to_owned()))
    })
}

async fn load_range(ctx: &mut Ctx) -> Result<(), Stop> {
    let exchange = ctx.exchange(Until::FirstAnswer).await?;
    let busy = match ctx.target.load.clone() {
        None => false,
        Some(plan) => {
            let Some((endpoint, service)) = advertised_endpoint(&exchange) else {
                return Err(nothing_to_judge(
                    "no advertisement with a ws:// or wss:// endpoint arrived, so the provider cannot be kept busy",
                    "discovery.request.answered-within-1s",
                ));
            };
            super::load::while_busy(ctx, &plan, &endpoint, &service).await?;
            true
        }
    };
    let (loads, bad) = {
        let run = ctx.run();
        (run.loads.clone(), run.bad_loads.clone())
    };
    check(bad.is_empty(), || {
        format!("load must be a number from 0.0 to 1.0: {}", some_of(&bad))
    })?;
    if loads.is_empty() {
        return Err(nothing_to_judge(
            "no advertisement arrived",
            "discovery.request.answered-within-1s",
        ));
    }
    let highest = loads.iter().copied().fold(0.0_f64, f64::max);
    ctx.note(&format!(
        "{} advertisement(s), load up to {highest}",
        loads.len()
    ));
    if !busy {
        return Err(Stop::Skip(format!(
            "only an idle provider was seen (load up to {highest}), where a fraction and a percentage can read alike; pass --tasks with a `succeeds` task so the suite keeps it busy through its endpoint"
        )));
    }
    Ok(())
}

/// How an endpoint fared.
enum Reach {
    Accepted,
    Untrusted(String),
    Refused(String),
}

async fn try_endpoint(ctx: &mut Ctx, endpoint: &str) -> Reach {
    let connection = ctx.next_connection();
    let timeout = ctx.target.connect_timeout;
    ctx.record(
        Direction::Note,
        connection,
        "note",
        &format!("WebSocket handshake with {endpoint}"),
    );
    let mut ws = match connect(endpoint, &ctx.target.extra_roots, timeout).await {
        Ok((ws, response)) => {
            ctx.record(
                Direction::Note,
                connection,
                "note",
                &format!("handshake accepted (HTTP {})", response.status().as_u16()),
            );
            ws
        }
        Err(ConnectError::Tls(error)) => {
            return Reach::Refused(format!("TLS configuration: {error}"))
        }
        Err(ConnectError::TimedOut) => {
            ctx.record(Direction::Note, connection, "note", "no handshake in time");
            return Reach::Refused(format!(
                "no WebSocket handshake within {}",
                humantime::format_duration(timeout)
            ));
        }
        Err(error) => {
            let text = error.to_string();
            ctx.record(
                Direction::Note,
                connection,
                "note",
                &format!("failed: {text}"),
            );
            return if error.is_untrusted_certificate() {
                Reach::Untrusted(text)
            } else {
                Reach::Refused(text)
            };
        }
    };
    // Close cleanly; how the target closes is not this case's point.
    ctx.record(Direction::Sent, connection, "close", "1000");
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "conformance case done".into(),
    };
    let closing = async {
        let _ = ws.send(Frame::Close(Some(frame))).await;
        let mut code = None;
        while let Some(Ok(frame)) = ws.next().await {
            if let Frame::Close(close) = frame {
                code = Some(close.map_or(0, |close| u16::from(close.code)));
            }
        }
        code
    };
    match tokio::time::timeout(timeout, closing).await {
        Ok(Some(code)) => ctx.record(Direction::Received, connection, "close", &code.to_string()),
        Ok(None) => ctx.record(Direction::Note, connection, "close", "the stream ended"),
        Err(_) => ctx.record(
            Direction::Note,
            connection,
            "close",
            "the close handshake did not finish in time",
        ),
    }
    Reach::Accepted
}

async fn endpoint_reachable(ctx: &mut Ctx) -> Result<(), Stop> {
    let exchange = ctx.exchange(Until::FirstAnswer).await?;
    let mut endpoints: BTreeMap<String, String> = BTreeMap::new();
    for datagram in exchange.advertisements() {
        match datagram.endpoint() {
            Some(endpoint) if endpoint.starts_with("ws://") || endpoint.starts_with("wss://") => {
                let service = datagram.service_name().unwrap_or("an unnamed service");
                endpoints
                    .entry(endpoint.to_owned())
                    .or_insert_with(|| service.to_owned());
            }
            // Not a WebSocket URL: the schema's business.
            _ => {}
        }
    }
    if endpoints.is_empty() {
        return Err(nothing_to_judge(
            "no advertisement with a ws:// or wss:// endpoint arrived",
            "discovery.request.answered-within-1s or discovery.advertisement.valid",
        ));
    }
    let mut refused = Vec::new();
    let mut untrusted = Vec::new();
    for (endpoint, service) in &endpoints {
        match try_endpoint(ctx, endpoint).await {
            Reach::Accepted => {}
            Reach::Refused(why) => refused.push(format!("{service} at {endpoint}: {why}")),
            Reach::Untrusted(why) => untrusted.push(format!("{service} at {endpoint}: {why}")),
        }
    }
    check(refused.is_empty(), || {
        format!(
            "an advertised endpoint does not accept a WebSocket connection: {}",
            some_of(&refused)
        )
    })?;
    if !untrusted.is_empty() {
        return Err(Stop::Skip(format!(
            "the suite does not trust the certificate of {}; give it the CA (extra roots, --ca-cert) to check the WebSocket handshake",
            some_of(&untrusted)
        )));
    }
    Ok(())
}

async fn online_status(ctx: &mut Ctx) -> Result<(), Stop> {
    let exchange = ctx.exchange(Until::FirstAnswer).await?;
    if exchange.answers().next().is_none() {
        return Err(nothing_to_judge(
            "the request got no answer",
            "discovery.request.answered-within-1s",
        ));
    }
    let offline: BTreeSet<String> = exchange
        .answers()
        .filter(|datagram| datagram.status() == Some("Offline"))
        .map(Datagram::describe)
        .collect();
    let offline: Vec<String> = offline.into_iter().collect();
    check(offline.is_empty(), || {
        format!(
            "a provider that answers a request is running, yet says Offline (kept for a graceful shutdown): {}",
            some_of(&offline)
        )
    })
}

// ---- socket -------------------------------------------------------------

async fn shared_port(ctx: &mut Ctx) -> Result<(), Stop> {
    let exchange = ctx.exchange(Until::FirstAnswer).await?;
    let Some(answer) = exchange.answers().next() else {
        return Err(nothing_to_judge(
            "the request got no answer, so the provider's host is unknown",
            "discovery.request.answered-within-1s",
        ));
    };
    let source = answer.source.ip();
    if !port::is_local(source) {
        return Err(Stop::Skip(format!(
            "the provider answers from {source}, another host: whether it shares the port can only be probed on its own host; run the suite there"
        )));
    }
    let number = ctx.target.port;
    let holders = port::holders(number);
    let others: Vec<String> = holders
        .iter()
        .filter(|holder| !holder.own)
        .map(port::Holder::describe)
        .collect();
    ctx.note(&format!(
        "sockets on UDP port {number} besides the suite's: {}",
        if others.is_empty() {
            "none visible".to_owned()
        } else {
            others.join(", ")
        }
    ));
    let own = port::own_uid();
    let foreign = holders
        .iter()
        .any(|holder| own.is_some_and(|uid| holder.uid != uid));
    let mut probes = vec![Reuse::Address];
    if foreign {
        ctx.note("a socket on the port belongs to another user: the SO_REUSEPORT probe is left out (the kernel refuses SO_REUSEPORT sharing across users)");
    } else {
        probes.push(Reuse::Port);
    }
    let wildcard = ctx.wildcard();
    ctx.release_shared();
    let mut refused = Vec::new();
    for reuse in probes {
        match port::probe(wildcard, number, reuse) {
            Ok(()) => ctx.note(&format!(
                "a socket with only {} bound {wildcard}:{number} beside the others",
                reuse.name()
            )),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                ctx.note(&format!(
                    "a socket with only {} was refused: {error}",
                    reuse.name()
                ));
                refused.push(reuse.name());
            }
            Err(error) if error.kind() == std::io::ErrorKind::Unsupported => {
                return Err(Stop::Skip(format!("cannot probe here: {error}")))
            }
            Err(error) => {
                return Err(Stop::Harness(format!(
                    "probing UDP {wildcard}:{number} with {}: {error}",
                    reuse.name()
                )))
            }
        }
    }
    check(refused.is_empty(), || {
        format!(
            "a socket on UDP port {number} does not let others share it: a socket with only {} could not bind beside it, so that socket lacks the option. Sockets on the port besides the suite's: {}",
            refused.join(" or only "),
            if others.is_empty() { "none visible".to_owned() } else { some_of(&others) }
        )
    })
}

async fn valid(ctx: &mut Ctx) -> Result<(), Stop> {
    // Ask once more, then judge everything the target sent in the run.
    let _ = ctx.exchange(Until::FirstAnswer).await?;
    let invalid = ctx.invalid_datagrams();
    check(invalid.is_empty(), || {
        format!(
            "{} datagram(s) from the target break the schema, e.g.: {}",
            invalid.len(),
            some_of(&invalid)
        )
    })?;
    if ctx.advertisements_seen() == 0 {
        return Err(nothing_to_judge(
            "no advertisement arrived in the whole run",
            "discovery.request.answered-within-1s",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_judged_from_the_raw_json() {
        assert_eq!(setting_problem(&json!({"int": "width"})), None);
        assert_eq!(setting_problem(&json!({"bool": "x"})), None);
        assert!(setting_problem(&json!({"double": "x"}))
            .unwrap()
            .contains("double"));
        assert!(setting_problem(&json!({"int": "a", "float": "b"}))
            .unwrap()
            .contains("2 keys"));
        assert!(setting_problem(&json!({})).unwrap().contains("0 keys"));
        assert!(setting_problem(&json!("int"))
            .unwrap()
            .contains("not an object"));
        assert!(setting_problem(&json!({"int": 3}))
            .unwrap()
            .contains("string"));
    }
}
