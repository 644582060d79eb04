//! `specwire demo device`: the device hub on loopback with five virtual
//! devices, a watcher, and commands to one device and to all, checked.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use specwire_runtime::device::swarm::{Swarm, SwarmConfig};
use specwire_runtime::device::{DeviceHub, DeviceHubConfig, Registry};
use specwire_runtime::net::{Connector, WsStream};
use tokio_tungstenite::tungstenite::Message as Frame;

use super::step;

/// The registry the demo serves: the schema's example.
const REGISTRY: &str = include_str!("../../../schema/device/commands.json");

async fn connect(endpoint: &str) -> Result<WsStream, String> {
    let connector =
        Connector::new(endpoint, &[], Duration::from_secs(5)).map_err(|e| e.to_string())?;
    Ok(connector.connect().await.map_err(|e| e.to_string())?.0)
}

async fn send(ws: &mut WsStream, line: &str) -> Result<(), String> {
    ws.send(Frame::text(line.to_owned()))
        .await
        .map_err(|e| e.to_string())
}

/// The next line from the hub that satisfies `wanted`, within 10 s.
async fn line_where(ws: &mut WsStream, wanted: impl Fn(&str) -> bool) -> Result<String, String> {
    let search = async {
        while let Some(frame) = ws.next().await {
            if let Ok(Frame::Text(text)) = frame {
                if wanted(text.as_str()) {
                    return Ok(text.as_str().to_owned());
                }
            }
        }
        Err("the hub closed the connection".to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), search)
        .await
        .map_err(|_| "no such line within 10 s".to_owned())?
}

pub(super) async fn demo() -> Result<(), String> {
    step(
        1,
        "Start the device hub on loopback with the schema's example registry",
    );
    let (registry, _) = Registry::parse(REGISTRY.as_bytes(), "schema/device/commands.json")
        .map_err(|error| error.to_string())?;
    let names: Vec<String> = registry.commands().map(|c| c.name.clone()).collect();
    let hub = DeviceHub::start(DeviceHubConfig {
        bind: "127.0.0.1:0".parse().map_err(|_| "bad address")?,
        ..DeviceHubConfig::new(registry)
    })
    .await
    .map_err(|error| format!("starting the hub: {error}"))?;
    println!(
        "    listening on {} (commands: {})",
        hub.endpoint(),
        names.join(", ")
    );
    println!("    web console: {}", hub.console_url());

    step(
        2,
        "A watcher subscribes (`s`); five virtual devices register and report",
    );
    let mut watcher = connect(&hub.endpoint()).await?;
    send(&mut watcher, "s").await?;
    let swarm = Swarm::start(SwarmConfig {
        rate: 4.0,
        prefix: "lamp".to_owned(),
        ..SwarmConfig::new(hub.endpoint(), 5)
    });
    let registered = async {
        while hub.stats().devices < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), registered)
        .await
        .map_err(|_| "the five devices did not register within 10 s")?;
    let first = line_where(&mut watcher, |line| line.starts_with("lamp-")).await?;
    println!("    watcher got: {first}");

    step(3, "A client sends `cmd:lamp-0003:led:ff0000` to one device");
    let mut client = connect(&hub.endpoint()).await?;
    send(&mut client, "cmd:lamp-0003:led:ff0000").await?;
    let applied = line_where(&mut watcher, |line| line == "lamp-0003:applied=led:ff0000").await?;
    println!("    the device applied it: {applied}");

    step(
        4,
        "`cmd:all:say:time: 12:00` goes to every device (parameters may contain `:`)",
    );
    send(&mut client, "cmd:all:say:time: 12:00").await?;
    let mut said = std::collections::BTreeSet::new();
    while said.len() < 5 {
        let line = line_where(&mut watcher, |line| {
            line.ends_with(":applied=say:time: 12:00")
        })
        .await?;
        said.insert(line.split(':').next().unwrap_or_default().to_owned());
    }
    println!(
        "    applied by {}",
        said.into_iter().collect::<Vec<_>>().join(", ")
    );

    step(
        5,
        "Unknown commands and targets are answered `error:` and reach no device",
    );
    for line in ["cmd:lamp-0001:fly:high", "cmd:lamp-9999:led:00ff00"] {
        send(&mut client, line).await?;
        let error = line_where(&mut client, |line| line.starts_with("error:")).await?;
        println!("    {line}  →  {error}");
    }

    let stats = hub.stats();
    println!(
        "\n    hub: {} devices, {} data lines relayed, {} commands delivered",
        stats.devices, stats.data_lines, stats.commands
    );
    swarm.stop().await;
    let _ = watcher.close(None).await;
    let _ = client.close(None).await;
    hub.shutdown(Duration::from_secs(2)).await;
    println!(
        "\nDone: data reached the watcher, commands reached their devices, errors reached none."
    );
    Ok(())
}
