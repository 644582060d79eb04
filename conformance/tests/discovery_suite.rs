//! The discovery suite against the runtime's own advertiser (every case
//! passes) and against advertisers with one fault each (exactly the cases
//! about that fault fail). Loopback only, a private UDP port per test.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use specwire_conformance::discovery::{self, DiscoveryTarget, LoadPlan};
use specwire_conformance::runner::Selection;
use specwire_conformance::task::Recipes;
use specwire_conformance::verdict::{CaseResult, Verdict};
use specwire_runtime::clock::now_rfc3339;
use specwire_runtime::discovery::{
    bind_discovery_socket, loopback_broadcast, AdvertisedService, Advertiser, AdvertiserConfig,
    Presence,
};
use specwire_runtime::task::{Provider, ProviderConfig};
use specwire_testsupport::{free_udp_port, within_for};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Tasks the reference provider runs at once: the suite's load plan
/// (`LOAD_TASKS` of them) keeps it fully busy.
const CAPACITY: usize = 2;
const LOAD_TASKS: usize = 4;

/// A real task provider, so advertised endpoints accept WebSockets (and
/// can be kept busy).
async fn provider() -> Provider {
    let config = ProviderConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        capacity: CAPACITY,
        ..ProviderConfig::default()
    };
    Provider::start(config, specwire_services::reference_services())
        .await
        .unwrap()
}

/// The suite's load plan for the reference provider: sleeps long enough
/// to be running while the suite asks.
fn load_plan() -> LoadPlan {
    let recipes = Recipes::from_json(
        r#"{"succeeds": {"serviceName": "DiagnosticsService", "operation": "sleep", "taskParameters": {"durationMs": 1500}}}"#,
    )
    .unwrap();
    LoadPlan {
        recipe: recipes.succeeds.unwrap(),
        tasks: LOAD_TASKS,
        api_key: None,
        client_id: "discovery-suite".into(),
    }
}

fn target(port: u16) -> DiscoveryTarget {
    DiscoveryTarget {
        heartbeat_wait: Duration::from_secs(2),
        listen: Duration::from_millis(2500),
        load: Some(load_plan()),
        ..DiscoveryTarget::new(port)
    }
}

/// Runs the suite (bounded) and prints its verdicts.
async fn run(target: &DiscoveryTarget, label: &str) -> Vec<CaseResult> {
    let selection = Selection::default();
    let mut observer = ();
    let running = discovery::run(target, &selection, &mut observer);
    let results = within_for(Duration::from_secs(120), "the suite's end", running).await;
    for result in &results {
        eprintln!(
            "[{label}] {:<45} {:<6} {}",
            result.spec.id,
            result.verdict.name(),
            result.verdict.reason().unwrap_or("")
        );
    }
    results
}

fn with_verdict(results: &[CaseResult], name: &str) -> BTreeSet<&'static str> {
    results
        .iter()
        .filter(|result| result.verdict.name() == name)
        .map(|result| result.spec.id)
        .collect()
}

/// Every case ran; exactly `failing` failed; nothing was a harness error;
/// the skips are exactly `skipping`. On a mismatch, the transcripts of the
/// cases that surprised are printed.
fn assert_verdicts(results: &[CaseResult], failing: &[&str], skipping: &[&str]) {
    assert_eq!(results.len(), discovery::plan(&Selection::default()).len());
    let expected = |id: &str| {
        if failing.contains(&id) {
            "fail"
        } else if skipping.contains(&id) {
            "skip"
        } else {
            "pass"
        }
    };
    let surprises: Vec<&CaseResult> = results
        .iter()
        .filter(|result| result.verdict.name() != expected(result.spec.id))
        .collect();
    for result in &surprises {
        eprintln!(
            "{}: expected {}, got {:?}",
            result.spec.id,
            expected(result.spec.id),
            result.verdict
        );
        for line in result.transcript.lines() {
            eprintln!("    {line}");
        }
    }
    assert!(
        surprises.is_empty(),
        "unexpected verdicts (transcripts above)"
    );
    let expected: BTreeSet<&str> = failing.iter().copied().collect();
    assert_eq!(with_verdict(results, "fail"), expected, "failing cases");
    for result in results {
        assert!(
            !result.transcript.entries().is_empty(),
            "{} has a transcript",
            result.spec.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_advertiser_passes_every_case() {
    let port = free_udp_port();
    let provider = provider().await;
    let services = provider
        .services()
        .into_iter()
        .map(|description| AdvertisedService::new(description, provider.endpoint()))
        .collect();
    let config = AdvertiserConfig {
        heartbeat: Duration::from_millis(200),
        ..AdvertiserConfig::new(port)
    };
    let advertiser = Advertiser::start(config, services, provider.presence()).unwrap();
    let results = run(&target(port), "runtime").await;
    assert_verdicts(&results, &[], &[]);
    // Every datagram went into the transcripts, both ways.
    let answered = &results[0];
    assert_eq!(answered.spec.id, "discovery.request.answered-within-1s");
    let kinds: BTreeSet<_> = answered
        .transcript
        .entries()
        .iter()
        .filter(|entry| entry.kind == "datagram")
        .map(|entry| format!("{:?}", entry.direction))
        .collect();
    assert_eq!(kinds.len(), 2, "sent and received datagrams are recorded");
    advertiser.shutdown().await;
    provider.shutdown(Duration::from_secs(1)).await;
}

/// One fault of a hand-made advertiser.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    NeverAnswers,
    BroadcastOnly,
    Late,
    NoRespondsTo,
    HeartbeatRespondsTo,
    DoubleSetting,
    Offline,
    InvalidLoad,
    /// Answers only by unicast to the requester, never to its targets.
    UnicastOnly,
    /// Binds the discovery port with SO_REUSEADDR but not SO_REUSEPORT.
    NoReusePort,
    /// Advertises the provider's load as a percentage (0–100).
    LoadAsPercent,
}

/// An advertiser made of a raw UDP socket and hand-made JSON: heartbeats
/// every 200 ms, answers to requests (to the broadcast address and by
/// unicast to the requester), each with `fault`.
struct Faulty {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn advertisement(
    fault: Fault,
    name: &str,
    endpoint: &str,
    responds_to: Option<&str>,
    load: f64,
) -> Value {
    let mut settings = vec![
        json!({"string": "inputPath"}),
        json!({"string": "outputPath"}),
        json!({"int": "width"}),
    ];
    if fault == Fault::DoubleSetting {
        settings.push(json!({"double": "scale"}));
    }
    let mut ad = json!({
        "discoveryType": "ServiceAdvertisement",
        "serviceId": format!("{name}-001"),
        "serviceName": name,
        "serviceVersion": "1.2.0",
        "endpoint": endpoint,
        "capabilities": [
            {"key": "resizeImage", "settings": settings},
            {"key": "applyFilter", "settings": [{"string": "name"}, {"float": "size"}, {"bool": "strong"}]}
        ],
        "status": if fault == Fault::Offline { "Offline" } else { "Online" },
        "load": match fault {
            Fault::InvalidLoad => 2.0,
            Fault::LoadAsPercent => (load * 100.0).round(),
            _ => load,
        },
        "timestamp": now_rfc3339(),
    });
    let responds_to = match fault {
        Fault::NoRespondsTo => None,
        _ => responds_to,
    };
    if let Some(id) = responds_to {
        ad["respondsToClientId"] = json!(id);
    }
    ad
}

/// A discovery socket with SO_REUSEADDR and SO_BROADCAST but without
/// SO_REUSEPORT.
fn bind_without_reuse_port(port: u16) -> UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_broadcast(true).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
        .unwrap();
    UdpSocket::from_std(socket.into()).unwrap()
}

impl Faulty {
    /// With `presence`, the advertised load is the provider's (else 0.25).
    fn start(
        port: u16,
        fault: Fault,
        name: &str,
        endpoint: &str,
        presence: Option<watch::Receiver<Presence>>,
    ) -> Faulty {
        let socket = if fault == Fault::NoReusePort {
            bind_without_reuse_port(port)
        } else {
            bind_discovery_socket(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port).unwrap()
        };
        let socket = Arc::new(socket);
        let load = move || {
            presence
                .as_ref()
                .map_or(0.25, |presence| presence.borrow().load)
        };
        let (name, endpoint) = (name.to_owned(), endpoint.to_owned());
        let broadcast = loopback_broadcast(port);
        let task = tokio::spawn(async move {
            let mut heartbeat = tokio::time::interval(Duration::from_millis(200));
            let mut buffer = vec![0u8; 65_536];
            loop {
                tokio::select! {
                    _ = heartbeat.tick() => {
                        let stale = (fault == Fault::HeartbeatRespondsTo).then_some("a-client-that-never-asked");
                        let ad = advertisement(fault, &name, &endpoint, stale, load()).to_string();
                        let _ = socket.send_to(ad.as_bytes(), broadcast).await;
                    }
                    received = socket.recv_from(&mut buffer) => {
                        let Ok((length, source)) = received else { continue };
                        let Ok(request) = serde_json::from_slice::<Value>(&buffer[..length]) else { continue };
                        if request["discoveryType"] != "ClientServiceDiscoveryRequest" {
                            continue;
                        }
                        let client = request["clientId"].as_str().unwrap_or_default();
                        let ad = advertisement(fault, &name, &endpoint, Some(client), load()).to_string();
                        let destinations: Vec<SocketAddr> = match fault {
                            Fault::NeverAnswers => vec![],
                            Fault::BroadcastOnly => vec![broadcast],
                            Fault::UnicastOnly => vec![source],
                            _ => vec![broadcast, source],
                        };
                        let delay = if fault == Fault::Late { Duration::from_millis(1500) } else { Duration::ZERO };
                        let socket = Arc::clone(&socket);
                        tokio::spawn(answer(socket, ad, destinations, delay));
                    }
                }
            }
        });
        Faulty { task }
    }
}

async fn answer(
    socket: Arc<UdpSocket>,
    ad: String,
    destinations: Vec<SocketAddr>,
    delay: Duration,
) {
    // The delay is the fault being simulated (a slow provider).
    tokio::time::sleep(delay).await;
    for destination in destinations {
        let _ = socket.send_to(ad.as_bytes(), destination).await;
    }
}

/// Runs the suite against a hand-made advertiser with `fault` and checks
/// the failing and skipped cases.
async fn faulty(fault: Fault, failing: &[&str], skipping: &[&str]) {
    let port = free_udp_port();
    let provider = provider().await;
    let _advertiser = Faulty::start(
        port,
        fault,
        "ImageProcessingService",
        &provider.endpoint(),
        Some(provider.presence()),
    );
    let results = run(&target(port), &format!("{fault:?}")).await;
    assert_verdicts(&results, failing, skipping);
    provider.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_hand_made_advertiser_passes_every_case() {
    faulty(Fault::None, &[], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_answering_fails_the_three_cases_of_the_answer_sentence() {
    // answered-within-1s, unicast-answer and answer-to-targets quote the
    // same sentence; the cases that judge answers have none to judge and
    // skip.
    faulty(
        Fault::NeverAnswers,
        &[
            "discovery.request.answered-within-1s",
            "discovery.request.unicast-answer",
            "discovery.request.answer-to-targets",
        ],
        &[
            "discovery.request.responds-to-client-id",
            "discovery.advertisement.online-status",
            "discovery.socket.shared-port",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_only_by_unicast_fails_answer_to_targets() {
    faulty(
        Fault::UnicastOnly,
        &["discovery.request.answer-to-targets"],
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_without_reuse_port_fails_shared_port() {
    faulty(Fault::NoReusePort, &["discovery.socket.shared-port"], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_in_percent_fails_load_range_once_the_provider_is_busy() {
    // Idle, a percentage reads 0 like a fraction; the suite keeps the
    // provider busy and sees 100.
    faulty(
        Fault::LoadAsPercent,
        &["discovery.advertisement.load-range"],
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tasks_a_percent_load_cannot_be_told_and_load_range_skips() {
    let port = free_udp_port();
    let provider = provider().await;
    let _advertiser = Faulty::start(
        port,
        Fault::LoadAsPercent,
        "ImageProcessingService",
        &provider.endpoint(),
        Some(provider.presence()),
    );
    let mut target = target(port);
    target.load = None;
    let results = run(&target, "percent, idle").await;
    assert_verdicts(&results, &[], &["discovery.advertisement.load-range"]);
    let skipped = results
        .iter()
        .find(|result| result.spec.id == "discovery.advertisement.load-range")
        .unwrap();
    assert!(
        skipped.verdict.reason().unwrap().contains("--tasks"),
        "{:?}",
        skipped.verdict
    );
    provider.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_only_by_broadcast_fails_unicast_answer() {
    faulty(
        Fault::BroadcastOnly,
        &["discovery.request.unicast-answer"],
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_late_fails_answered_within_1s() {
    faulty(Fault::Late, &["discovery.request.answered-within-1s"], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_responds_to_fail_responds_to_client_id() {
    // Still schema-valid: respondsToClientId is optional.
    faulty(
        Fault::NoRespondsTo,
        &["discovery.request.responds-to-client-id"],
        // Unnamed answers on the shared port look like heartbeats.
        &["discovery.request.answer-to-targets"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_with_responds_to_fail_omits_responds_to() {
    faulty(
        Fault::HeartbeatRespondsTo,
        &["discovery.heartbeat.omits-responds-to"],
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_setting_type_fails_only_settings_types() {
    // The schema's Setting names the types too; that rule is
    // settings-types' point, and valid leaves it out.
    faulty(
        Fault::DoubleSetting,
        &["discovery.advertisement.settings-types"],
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_offline_fails_online_status() {
    faulty(
        Fault::Offline,
        &["discovery.advertisement.online-status"],
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_range_load_fails_only_load_range() {
    faulty(
        Fault::InvalidLoad,
        &["discovery.advertisement.load-range"],
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_endpoint_reachable() {
    let port = free_udp_port();
    // A TCP port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let endpoint = format!("ws://{closed}");
    let _advertiser = Faulty::start(port, Fault::None, "ImageProcessingService", &endpoint, None);
    // Nothing to keep busy there: load-range judges the idle loads only.
    let mut target = target(port);
    target.load = None;
    let results = run(&target, "unreachable").await;
    assert_verdicts(
        &results,
        &["discovery.advertisement.endpoint-reachable"],
        &["discovery.advertisement.load-range"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_limits_judgement_to_that_service() {
    let port = free_udp_port();
    let provider = provider().await;
    let endpoint = provider.endpoint();
    let _good = Faulty::start(port, Fault::None, "ImageProcessingService", &endpoint, None);
    let _other = Faulty::start(
        port,
        Fault::InvalidLoad,
        "SomeoneElsesService",
        &endpoint,
        None,
    );
    let mut only_good = target(port);
    only_good.service = Some("ImageProcessingService".into());
    let results = run(&only_good, "service").await;
    assert_verdicts(&results, &[], &[]);
    // The other service's datagrams were recorded all the same.
    let recorded = results.iter().any(|result| {
        result
            .transcript
            .entries()
            .iter()
            .any(|entry| entry.data.contains("SomeoneElsesService"))
    });
    assert!(recorded);
    // Without --service, the other provider is judged too.
    let everyone = run(&target(port), "everyone").await;
    assert_verdicts(&everyone, &["discovery.advertisement.load-range"], &[]);
    provider.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_heartbeat_wait_skips_the_heartbeat_cases() {
    let port = free_udp_port();
    let selection = Selection {
        only: vec!["discovery.heartbeat".into()],
        skip: vec![],
    };
    let mut target = target(port);
    target.heartbeat_wait = Duration::ZERO;
    let mut observer = ();
    let results = within_for(
        Duration::from_secs(10),
        "the run's end",
        discovery::run(&target, &selection, &mut observer),
    )
    .await;
    assert_eq!(results.len(), 2);
    for result in &results {
        assert!(
            matches!(&result.verdict, Verdict::Skip { reason } if reason.contains("--heartbeat-wait")),
            "{:?}",
            result.verdict
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_on_the_port_fails_only_what_needs_a_provider() {
    let port = free_udp_port();
    let mut target = target(port);
    target.listen = Duration::from_millis(1200);
    target.heartbeat_wait = Duration::from_millis(500);
    let results = run(&target, "nobody").await;
    assert_verdicts(
        &results,
        &[
            "discovery.request.answered-within-1s",
            "discovery.request.unicast-answer",
            "discovery.request.answer-to-targets",
            "discovery.heartbeat.interval",
        ],
        &[
            "discovery.request.responds-to-client-id",
            "discovery.heartbeat.omits-responds-to",
            "discovery.advertisement.settings-types",
            "discovery.advertisement.load-range",
            "discovery.advertisement.endpoint-reachable",
            "discovery.advertisement.online-status",
            "discovery.socket.shared-port",
            "discovery.advertisement.valid",
        ],
    );
}
