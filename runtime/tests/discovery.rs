//! Discovery over real UDP on loopback: advertisers, repositories and raw
//! sockets share a fresh port per test and talk through
//! `127.255.255.255:PORT`, never `255.255.255.255` or a real interface.
//!
//! Nothing sleeps to synchronise: every wait is for a datagram, an event or
//! a condition, bounded by [`PATIENCE`], so the tests hold on a slow or busy
//! machine and in parallel with each other.

use specwire_protocol::JsonProtocol;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use specwire_protocol::discovery::{
    ClientId, ClientServiceDiscoveryRequest, ClientServiceDiscoveryRequestDiscoveryType, Message,
    ServiceAdvertisement, ServiceAdvertisementStatus, Timestamp, MAX_MESSAGE_BYTES,
};
use specwire_runtime::clock::now_rfc3339;
use specwire_runtime::discovery::{
    bind_discovery_socket, loopback_broadcast, AdvertisedService, Advertiser, AdvertiserConfig,
    Presence, RepositoryConfig, RepositoryEvent, ServiceRepository,
};
use specwire_runtime::task::{Operation, ParamType, Parameter, ServiceDescription};
use specwire_testsupport::{eventually, free_udp_port as free_port, within, PATIENCE};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, watch};

/// A heartbeat no test waits for.
const LONG_HEARTBEAT: Duration = Duration::from_secs(60);

const WILDCARD: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// A listener on the shared discovery port, like any other participant.
fn listener(port: u16) -> UdpSocket {
    bind_discovery_socket(WILDCARD, port).expect("bind a listener on the discovery port")
}

/// The next datagram on `socket`, which must be a valid discovery message.
async fn receive(socket: &UdpSocket) -> (Message, SocketAddr) {
    let mut buffer = vec![0u8; 65_536];
    let (length, source) = within("a datagram", socket.recv_from(&mut buffer))
        .await
        .expect("receive");
    let message = Message::from_slice(&buffer[..length]).unwrap_or_else(|error| {
        panic!(
            "received an invalid datagram ({error}): {}",
            String::from_utf8_lossy(&buffer[..length])
        )
    });
    (message, source)
}

/// The next advertisement on `socket` that satisfies `wanted`, skipping
/// other (valid) messages.
async fn advertisement_where(
    socket: &UdpSocket,
    mut wanted: impl FnMut(&ServiceAdvertisement) -> bool,
) -> ServiceAdvertisement {
    loop {
        if let (Message::ServiceAdvertisement(advertisement), _) = receive(socket).await {
            if wanted(&advertisement) {
                return advertisement;
            }
        }
    }
}

/// The next repository event that satisfies `wanted`.
async fn event_where(
    events: &mut broadcast::Receiver<RepositoryEvent>,
    mut wanted: impl FnMut(&RepositoryEvent) -> bool,
) -> RepositoryEvent {
    within("a repository event", async {
        loop {
            let event = events.recv().await.expect("repository events");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
}

fn image_service(service_id: &str) -> AdvertisedService {
    let description = ServiceDescription::new("ImageProcessingService", "1.2.0")
        .operation(
            Operation::new("resizeImage")
                .parameter(Parameter::required("inputPath", ParamType::String))
                .parameter(Parameter::required("width", ParamType::Int)),
        )
        .operation(
            Operation::new("applyFilter").parameter(Parameter::optional("size", ParamType::Float)),
        );
    AdvertisedService::with_id(service_id, description, "ws://127.0.0.1:8080")
}

fn advertiser_config(port: u16, heartbeat: Duration) -> AdvertiserConfig {
    AdvertiserConfig {
        heartbeat,
        targets: vec![loopback_broadcast(port)],
        ..AdvertiserConfig::new(port)
    }
}

fn start_advertiser(
    port: u16,
    heartbeat: Duration,
    services: Vec<AdvertisedService>,
) -> (Advertiser, watch::Sender<Presence>) {
    let (presence, presence_rx) = watch::channel(Presence::IDLE);
    let advertiser = Advertiser::start(advertiser_config(port, heartbeat), services, presence_rx)
        .expect("start an advertiser");
    (advertiser, presence)
}

fn repository_config(port: u16, heartbeat: Duration) -> RepositoryConfig {
    RepositoryConfig {
        heartbeat,
        targets: vec![loopback_broadcast(port)],
        ..RepositoryConfig::new(port)
    }
}

fn request_from(client_id: &str) -> Vec<u8> {
    let request = ClientServiceDiscoveryRequest {
        client_id: ClientId(client_id.to_owned()),
        discovery_type: ClientServiceDiscoveryRequestDiscoveryType::ClientServiceDiscoveryRequest,
        timestamp: Timestamp(now_rfc3339()),
    };
    serde_json::to_vec(&Message::from(request)).expect("serialize a request")
}

fn responds_to(advertisement: &ServiceAdvertisement) -> Option<&str> {
    advertisement
        .responds_to_client_id
        .as_ref()
        .map(|id| id.as_str())
}

fn sent_at(advertisement: &ServiceAdvertisement) -> SystemTime {
    humantime::parse_rfc3339(&advertisement.timestamp).expect("an RFC 3339 UTC timestamp")
}

#[tokio::test]
async fn a_request_is_answered_within_one_second_by_broadcast_and_by_unicast() {
    let port = free_port();
    let broadcasts = listener(port);
    let (_advertiser, _presence) = start_advertiser(
        port,
        LONG_HEARTBEAT,
        vec![image_service("svc-a"), image_service("svc-b")],
    );
    // A client on an ephemeral port, which only a unicast answer reaches.
    let client = bind_discovery_socket(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("client socket");

    let asked = Instant::now();
    client
        .send_to(&request_from("client-xyz"), loopback_broadcast(port))
        .await
        .expect("send the request");

    let mut unicast_ids = Vec::new();
    for _ in 0..2 {
        let (message, _) = receive(&client).await;
        let Message::ServiceAdvertisement(answer) = message else {
            panic!("expected an advertisement, got {message:?}");
        };
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "answered after {:?}",
            asked.elapsed()
        );
        assert_eq!(responds_to(&answer), Some("client-xyz"));
        unicast_ids.push(answer.service_id);
    }
    unicast_ids.sort();
    assert_eq!(unicast_ids, ["svc-a", "svc-b"]);

    // The same answers were broadcast to the port (after the start-up
    // advertisements, which do not name a client).
    let mut broadcast_ids = Vec::new();
    while broadcast_ids.len() < 2 {
        let answer = advertisement_where(&broadcasts, |ad| responds_to(ad).is_some()).await;
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "answered after {:?}",
            asked.elapsed()
        );
        assert_eq!(responds_to(&answer), Some("client-xyz"));
        broadcast_ids.push(answer.service_id);
    }
    broadcast_ids.sort();
    assert_eq!(broadcast_ids, ["svc-a", "svc-b"]);
}

#[tokio::test]
async fn heartbeats_arrive_at_the_interval_and_name_no_client() {
    let port = free_port();
    let heartbeat = Duration::from_millis(200);
    let socket = listener(port);
    let (advertiser, _presence) = start_advertiser(port, heartbeat, vec![image_service("svc")]);

    // The start-up advertisement, then four heartbeats.
    let mut advertisements = Vec::new();
    for _ in 0..5 {
        let advertisement = advertisement_where(&socket, |_| true).await;
        assert_eq!(responds_to(&advertisement), None, "{advertisement:?}");
        assert_eq!(advertisement.status, ServiceAdvertisementStatus::Online);
        advertisements.push(advertisement);
    }
    for pair in advertisements.windows(2) {
        let gap = sent_at(&pair[1])
            .duration_since(sent_at(&pair[0]))
            .expect("timestamps increase");
        // Timestamps have millisecond precision; the interval never
        // shortens after a late tick.
        assert!(gap >= heartbeat - Duration::from_millis(5), "gap {gap:?}");
        assert!(gap < heartbeat * 10, "gap {gap:?}");
    }
    assert_eq!(advertiser.stats().requests_answered, 0);
}

#[tokio::test]
async fn a_presence_change_is_announced_at_once() {
    let port = free_port();
    let socket = listener(port);
    let (_advertiser, presence) =
        start_advertiser(port, LONG_HEARTBEAT, vec![image_service("svc")]);
    let first = advertisement_where(&socket, |_| true).await;
    assert_eq!(first.status, ServiceAdvertisementStatus::Online);
    assert_eq!(first.load, 0.0);

    let changed = Instant::now();
    presence.send_replace(Presence {
        status: ServiceAdvertisementStatus::Busy,
        load: 0.5,
    });
    let announced = advertisement_where(&socket, |_| true).await;
    assert!(
        changed.elapsed() < Duration::from_secs(1),
        "announced after {:?}",
        changed.elapsed()
    );
    assert_eq!(announced.status, ServiceAdvertisementStatus::Busy);
    assert_eq!(announced.load, 0.5);
    assert_eq!(responds_to(&announced), None);

    // A load out of range is clamped, so the announcement stays valid.
    presence.send_replace(Presence {
        status: ServiceAdvertisementStatus::Degraded,
        load: 3.0,
    });
    let clamped = advertisement_where(&socket, |_| true).await;
    assert_eq!(clamped.status, ServiceAdvertisementStatus::Degraded);
    assert_eq!(clamped.load, 1.0);
}

#[tokio::test]
async fn shutdown_announces_offline_and_the_repository_stops_selecting_it() {
    let port = free_port();
    let repository =
        ServiceRepository::start(repository_config(port, LONG_HEARTBEAT)).expect("repository");
    let mut events = repository.subscribe();
    let (advertiser, _presence) =
        start_advertiser(port, LONG_HEARTBEAT, vec![image_service("svc")]);

    event_where(&mut events, |event| {
        matches!(event, RepositoryEvent::Added(_))
    })
    .await;
    let selected = repository.select("ImageProcessingService", Some("resizeImage"));
    assert_eq!(
        selected.as_ref().map(|entry| entry.service_id()),
        Some("svc")
    );

    advertiser.shutdown().await;
    let event = event_where(&mut events, |event| {
        matches!(event, RepositoryEvent::Offline(_))
    })
    .await;
    assert_eq!(event.service_id(), "svc");
    assert_eq!(event.entry().status(), ServiceAdvertisementStatus::Offline);
    assert!(repository.select("ImageProcessingService", None).is_none());
    // Still listed, as Offline.
    let listed = repository.services();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status(), ServiceAdvertisementStatus::Offline);
}

#[tokio::test]
async fn a_silent_provider_expires_after_three_missed_heartbeats() {
    let port = free_port();
    let heartbeat = Duration::from_millis(200);
    let repository =
        ServiceRepository::start(repository_config(port, heartbeat)).expect("repository");
    assert_eq!(repository.expiry(), heartbeat * 3);
    let mut events = repository.subscribe();
    let (advertiser, _presence) = start_advertiser(port, heartbeat, vec![image_service("svc")]);
    event_where(&mut events, |event| {
        matches!(event, RepositoryEvent::Added(_))
    })
    .await;

    // Killed: no Offline.
    drop(advertiser);
    let silenced = Instant::now();
    let event = event_where(&mut events, |event| {
        !matches!(event, RepositoryEvent::Updated { .. })
    })
    .await;
    assert!(matches!(event, RepositoryEvent::Expired(_)), "{event:?}");
    assert_eq!(event.service_id(), "svc");
    // The last heartbeat came at most one interval before the drop.
    assert!(
        silenced.elapsed() >= heartbeat,
        "expired after {:?}",
        silenced.elapsed()
    );
    assert!(repository.select("ImageProcessingService", None).is_none());
    assert!(repository.services().is_empty());
}

#[tokio::test]
async fn advertisers_and_a_repository_share_the_port_and_hear_each_other() {
    let port = free_port();
    let heartbeat = Duration::from_millis(200);
    let (first, _first_presence) = start_advertiser(port, heartbeat, vec![image_service("one")]);
    let (second, _second_presence) = start_advertiser(port, heartbeat, vec![image_service("two")]);
    let repository =
        ServiceRepository::start(repository_config(port, LONG_HEARTBEAT)).expect("repository");
    let mut events = repository.subscribe();
    assert_eq!(first.local_addr().port(), port);
    assert_eq!(second.local_addr().port(), port);
    assert_eq!(repository.local_addr().port(), port);

    within("both services in the repository", async {
        while repository.services().len() < 2 {
            let _ = events.recv().await;
        }
    })
    .await;

    for advertiser in [&first, &second] {
        eventually(
            "each advertiser to hear the other, itself and the request",
            || {
                let stats = advertiser.stats();
                stats.other_messages_ignored >= 1
                    && stats.own_messages_ignored >= 1
                    && stats.requests_answered >= 1
            },
        )
        .await;
        assert_eq!(advertiser.stats().invalid_datagrams, 0);
    }
    eventually("the repository to hear its own request", || {
        repository.stats().own_messages_ignored >= 1
    })
    .await;
}

#[tokio::test]
async fn a_repository_lists_every_advertiser_that_answers_its_request() {
    let port = free_port();
    let socket = listener(port);
    let (_first, _first_presence) =
        start_advertiser(port, LONG_HEARTBEAT, vec![image_service("one")]);
    let (_second, _second_presence) =
        start_advertiser(port, LONG_HEARTBEAT, vec![image_service("two")]);
    // Both start-up advertisements are out before the repository binds, so
    // it can only learn of the services from answers to its request.
    let mut started = Vec::new();
    while started.len() < 2 {
        started.push(advertisement_where(&socket, |ad| responds_to(ad).is_none()).await);
    }

    let repository =
        ServiceRepository::start(repository_config(port, LONG_HEARTBEAT)).expect("repository");
    let mut events = repository.subscribe();
    within("both answers in the repository", async {
        while repository.services().len() < 2 {
            let _ = events.recv().await;
        }
    })
    .await;
    let services = repository.services();
    let ids: Vec<&str> = services.iter().map(|entry| entry.service_id()).collect();
    assert_eq!(ids, ["one", "two"]);
    for entry in &services {
        assert_eq!(
            responds_to(&entry.advertisement),
            Some(repository.client_id().as_str())
        );
        assert_eq!(entry.endpoint(), "ws://127.0.0.1:8080");
        assert!(entry.offers("applyFilter"));
    }
}

#[tokio::test]
async fn garbage_is_ignored_and_counted_without_breaking_anything() {
    let port = free_port();
    let repository =
        ServiceRepository::start(repository_config(port, LONG_HEARTBEAT)).expect("repository");
    let mut events = repository.subscribe();
    let (advertiser, _presence) =
        start_advertiser(port, LONG_HEARTBEAT, vec![image_service("svc")]);
    event_where(&mut events, |event| {
        matches!(event, RepositoryEvent::Added(_))
    })
    .await;

    let mut huge = vec![b'x'; MAX_MESSAGE_BYTES];
    huge[0] = b'"';
    huge[MAX_MESSAGE_BYTES - 1] = b'"';
    let garbage: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        Vec::new(),
        vec![0xff, 0xfe, 0x00],
        b"[1, 2, 3]".to_vec(),
        br#"{"discoveryType": "Nope"}"#.to_vec(),
        br#"{"discoveryType": "ServiceAdvertisement", "serviceId": "x"}"#.to_vec(),
        br#"{"discoveryType": "ClientServiceDiscoveryRequest", "clientId": "", "timestamp": "now"}"#
            .to_vec(),
        huge,
    ];
    let sender = bind_discovery_socket(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("sender");
    for datagram in &garbage {
        sender
            .send_to(datagram, loopback_broadcast(port))
            .await
            .expect("send garbage");
    }
    let count = garbage.len() as u64;

    // The advertiser still answers (the unicast answer comes after it read
    // the garbage) ...
    sender
        .send_to(&request_from("after-garbage"), loopback_broadcast(port))
        .await
        .expect("send a request");
    let answer = advertisement_where(&sender, |_| true).await;
    assert_eq!(responds_to(&answer), Some("after-garbage"));
    eventually("the advertiser to count the garbage", || {
        advertiser.stats().invalid_datagrams == count
    })
    .await;

    // ... and the repository still takes advertisements.
    let mut other = image_service("late").advertisement(Presence::IDLE, None);
    other.endpoint = "ws://127.0.0.1:9090".into();
    let datagram = serde_json::to_vec(&Message::from(other)).expect("serialize");
    sender
        .send_to(&datagram, loopback_broadcast(port))
        .await
        .expect("send an advertisement");
    let added = event_where(&mut events, |event| {
        matches!(event, RepositoryEvent::Added(_))
    })
    .await;
    assert_eq!(added.service_id(), "late");
    eventually("the repository to count the garbage", || {
        repository.stats().invalid_datagrams == count
    })
    .await;
    assert_eq!(repository.services().len(), 2);
}

#[tokio::test]
async fn wait_for_returns_once_an_instance_appears_and_none_after_the_timeout() {
    let port = free_port();
    let repository =
        ServiceRepository::start(repository_config(port, LONG_HEARTBEAT)).expect("repository");
    let (found, _started) = tokio::join!(
        repository.wait_for("ImageProcessingService", Some("resizeImage"), PATIENCE),
        async {
            tokio::task::yield_now().await;
            start_advertiser(port, LONG_HEARTBEAT, vec![image_service("svc")])
        }
    );
    assert_eq!(found.as_ref().map(|entry| entry.service_id()), Some("svc"));

    let started = Instant::now();
    let missing = repository
        .wait_for(
            "ImageProcessingService",
            Some("noSuchOperation"),
            Duration::from_millis(200),
        )
        .await;
    assert!(missing.is_none());
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn the_repository_takes_turns_among_equal_instances() {
    let port = free_port();
    let repository =
        ServiceRepository::start(repository_config(port, LONG_HEARTBEAT)).expect("repository");
    let (_advertiser, _presence) = start_advertiser(
        port,
        LONG_HEARTBEAT,
        vec![image_service("a"), image_service("b")],
    );
    let mut events = repository.subscribe();
    within("both instances", async {
        while repository.services().len() < 2 {
            let _ = events.recv().await;
        }
    })
    .await;
    let picks: Vec<String> = (0..4)
        .filter_map(|_| repository.select("ImageProcessingService", Some("applyFilter")))
        .map(|entry| entry.service_id().to_owned())
        .collect();
    assert_eq!(picks, ["a", "b", "a", "b"]);
}

#[tokio::test]
async fn refresh_sends_a_request_on_demand() {
    let port = free_port();
    let socket = listener(port);
    let repository =
        ServiceRepository::start(repository_config(port, LONG_HEARTBEAT)).expect("repository");
    let client_id = repository.client_id().clone();
    let is_ours = |message: &Message| matches!(message, Message::ClientServiceDiscoveryRequest(request) if request.client_id == client_id);
    // The start-up request, then the one asked for.
    for round in 0..2 {
        loop {
            let (message, _) = receive(&socket).await;
            if is_ours(&message) {
                break;
            }
        }
        if round == 0 {
            repository.refresh();
        }
    }
    eventually("two requests counted", || {
        repository.stats().datagrams_sent >= 2
    })
    .await;
}

#[tokio::test]
async fn start_refuses_invalid_configurations() {
    let port = free_port();
    let (_presence, presence_rx) = watch::channel(Presence::IDLE);
    let mut bad = image_service("svc");
    bad.endpoint = "http://127.0.0.1:8080".into();
    let refused = Advertiser::start(
        advertiser_config(port, LONG_HEARTBEAT),
        vec![bad],
        presence_rx,
    );
    assert_eq!(
        refused.map(|_| ()).map_err(|error| error.kind()),
        Err(std::io::ErrorKind::InvalidInput)
    );
    let mut config = repository_config(port, LONG_HEARTBEAT);
    config.client_id = String::new();
    let refused = ServiceRepository::start(config);
    assert_eq!(
        refused.map(|_| ()).map_err(|error| error.kind()),
        Err(std::io::ErrorKind::InvalidInput)
    );
}
