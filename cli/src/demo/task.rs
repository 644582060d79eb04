//! `specwire demo task`: the whole task family in one command, on
//! loopback: a provider starts and advertises itself, a client discovers
//! it, assigns real image tasks and follows their progress, and the
//! provider shuts down announcing `Offline`.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use specwire_runtime::discovery::{
    AdvertisedService, Advertiser, AdvertiserConfig, RepositoryConfig, RepositoryEvent,
    ServiceEntry, ServiceRepository,
};
use specwire_runtime::task::{
    ClientConfig, Provider, ProviderConfig, TaskClient, TaskEvent, TaskOutcome,
};
use tokio::sync::broadcast;

use super::step;

#[derive(clap::Args, Default)]
pub(super) struct TaskArgs {
    /// Directory for the demo's input and output images (default: a new
    /// directory under the system temp directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// UDP discovery port (default: a free one, so the demo does not mix
    /// with real providers on 50001).
    #[arg(long, value_name = "PORT")]
    discovery_port: Option<u16>,
}

fn free_udp_port() -> Result<u16, String> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|error| format!("finding a free UDP port: {error}"))?;
    socket
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| error.to_string())
}

/// A 640×480 colour gradient: something real to resize and filter.
fn write_sample_image(path: &Path) -> Result<(), String> {
    let image = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([
            (x * 255 / 639) as u8,
            (y * 255 / 479) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    image
        .save(path)
        .map_err(|error| format!("writing {}: {error}", path.display()))
}

pub(super) async fn demo(args: TaskArgs) -> Result<(), String> {
    let (dir, input, port) = prepare(args)?;

    step(
        1,
        "start a task provider on loopback and advertise it over UDP",
    );
    let (provider, advertiser) = start_provider(port).await?;

    step(
        2,
        "discover it: a client's service repository asks who is there",
    );
    let repository = ServiceRepository::start(RepositoryConfig::new(port))
        .map_err(|error| format!("discovery on UDP {port}: {error}"))?;
    let mut events = repository.subscribe();
    let entry = discover(&repository).await?;

    step(3, "assign tasks, with acks, progress and results");
    assign_tasks(&entry, &dir, &input).await?;

    step(4, "shut the provider down: it advertises Offline");
    provider.shutdown(Duration::from_secs(2)).await;
    advertiser.shutdown().await;
    report_offline(&mut events).await;
    repository.shutdown().await;
    println!("\noutput images in {}", dir.display());
    Ok(())
}

/// The demo's directory (made), its input image (written) and its
/// discovery port.
fn prepare(args: TaskArgs) -> Result<(PathBuf, PathBuf, u16), String> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("specwire-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let input = dir.join("input.png");
    write_sample_image(&input)?;
    let port = match args.discovery_port {
        Some(port) => port,
        None => free_udp_port()?,
    };
    Ok((dir, input, port))
}

/// Step 1: the reference provider on loopback, advertised on `port`.
async fn start_provider(port: u16) -> Result<(Provider, Advertiser), String> {
    let provider = Provider::start(
        ProviderConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ..ProviderConfig::default()
        },
        specwire_services::reference_services(),
    )
    .await
    .map_err(|error| format!("starting the provider: {error}"))?;
    let advertised = provider
        .services()
        .into_iter()
        .map(|service| AdvertisedService::new(service, provider.endpoint()))
        .collect();
    let advertiser =
        Advertiser::start(AdvertiserConfig::new(port), advertised, provider.presence())
            .map_err(|error| format!("advertising on UDP {port}: {error}"))?;
    println!(
        "    provider at {}, advertising to 127.255.255.255:{port}",
        provider.endpoint()
    );
    Ok((provider, advertiser))
}

/// Step 2: waits for an `ImageProcessingService` that can resize, shows
/// what was discovered and returns the one selected.
async fn discover(repository: &ServiceRepository) -> Result<ServiceEntry, String> {
    let entry = repository
        .wait_for(
            "ImageProcessingService",
            Some("resizeImage"),
            Duration::from_secs(5),
        )
        .await
        .ok_or("no ImageProcessingService was discovered within 5 s")?;
    // Let the DiagnosticsService answer too, for the table (bounded).
    let _ = repository
        .wait_for("DiagnosticsService", None, Duration::from_secs(1))
        .await;
    print!(
        "{}",
        indent(&crate::discover::table(&repository.services()))
    );
    println!(
        "    selected {} at {}",
        entry.service_id(),
        entry.endpoint()
    );
    Ok(entry)
}

/// Step 3: resizes then blurs `input` in `dir` at `entry`, following each
/// task's progress, and shows that a missing input fails.
async fn assign_tasks(entry: &ServiceEntry, dir: &Path, input: &Path) -> Result<(), String> {
    let client = TaskClient::connect(ClientConfig::new(entry.endpoint()))
        .await
        .map_err(|error| error.to_string())?;
    let resized = dir.join("resized.png");
    let filtered = dir.join("blurred.jpg");
    let tasks = [
        (
            "resizeImage",
            json!({"inputPath": input, "outputPath": resized, "width": 320, "height": 240}),
        ),
        (
            "applyFilter",
            json!({"inputPath": resized, "outputPath": filtered, "name": "blur", "size": 2.0}),
        ),
    ];
    for (operation, parameters) in tasks {
        follow_task(&client, operation, parameters).await?;
    }
    let missing = client
        .assign(
            "ImageProcessingService",
            "resizeImage",
            json!({"inputPath": dir.join("missing.png"), "outputPath": dir.join("x.png"), "width": 1, "height": 1}),
        )
        .await
        .map_err(|error| error.to_string())?;
    match missing.outcome().await {
        Ok(TaskOutcome::Failed(failure)) => {
            println!("    a missing input file fails as the seed says: {failure}")
        }
        other => return Err(format!("expected FILE_NOT_FOUND, got {other:?}")),
    }
    client.close().await;
    Ok(())
}

/// Assigns one `ImageProcessingService` task and prints its ack, progress
/// and result; it must complete.
async fn follow_task(
    client: &TaskClient,
    operation: &str,
    parameters: Value,
) -> Result<(), String> {
    let started = Instant::now();
    let mut task = client
        .assign("ImageProcessingService", operation, parameters.clone())
        .await
        .map_err(|error| error.to_string())?;
    println!("    {operation} {parameters}");
    println!("      task {} acknowledged", task.task_id());
    let outcome = loop {
        match task.next().await {
            Some(TaskEvent::Progress(update)) => println!(
                "      {:>3}% {} {}",
                update.progress,
                update.status,
                update.message.unwrap_or_default()
            ),
            Some(TaskEvent::Finished(outcome)) => break outcome,
            None => return Err("the task ended without an outcome".into()),
        }
    };
    match outcome.map_err(|error| error.to_string())? {
        TaskOutcome::Completed(data) => println!(
            "      Completed in {:.0} ms: {}",
            started.elapsed().as_secs_f64() * 1000.0,
            Value::Object(data)
        ),
        other => return Err(format!("{operation} did not complete: {other:?}")),
    }
    Ok(())
}

/// Step 4: prints the `Offline` announcement, if one comes within 5 s.
async fn report_offline(events: &mut broadcast::Receiver<RepositoryEvent>) {
    let offline = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Ok(RepositoryEvent::Offline(entry)) => return Some(entry),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    match offline {
        Some(entry) => println!(
            "    {} {} is Offline",
            entry.service_name(),
            entry.service_id()
        ),
        None => println!("    (no Offline announcement seen within 5 s)"),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}
