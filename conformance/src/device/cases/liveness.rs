//! The hub's `ping`s and stale devices. These cases take as long as the
//! hub's configured interval and timeout (`--ping-interval`,
//! `--stale-timeout`) say: the profile's 10 s and 30 s make them the
//! slowest of the suite.

use std::time::Duration;

use tokio::time::Instant;

use super::super::conn::{Event, LineConn};
use super::super::target::{close_all, Ctx};
use crate::verdict::{fail, Stop};

fn needed(value: Option<Duration>, flag: &str) -> Result<Duration, Stop> {
    value.filter(|value| !value.is_zero()).ok_or_else(|| {
        Stop::Skip(format!(
            "needs {flag} D: the hub's configured value (the profile's default is {})",
            if flag == "--ping-interval" {
                "10s"
            } else {
                "30s"
            }
        ))
    })
}

/// `device.liveness.hub-ping`.
pub(super) async fn hub_ping(ctx: &mut Ctx) -> Result<(), Stop> {
    let interval = needed(ctx.target.ping_interval, "--ping-interval")?;
    let wait = interval * 2 + ctx.target.reply_timeout;
    let (mut first, _) = ctx.device().await?;
    let (mut second, _) = ctx.device().await?;
    let outcome = async {
        for (which, device) in [("first", &mut first), ("second", &mut second)] {
            device
                .expect(
                    &format!("the hub's `ping` on the {which} device"),
                    wait,
                    |line| line.is_hub_ping(),
                )
                .await?;
        }
        Ok(())
    }
    .await;
    close_all(&mut [&mut first, &mut second]).await;
    outcome
}

/// A new device that does not answer the hub's `ping`s.
async fn deaf_device(ctx: &mut Ctx) -> Result<(LineConn, String), Stop> {
    let id = ctx.fresh("dev");
    let mut device = ctx.connect(&format!("device {id} (deaf to pings)")).await?;
    device.send(&format!("id:{id}")).await?;
    device.sync().await?;
    Ok((device, id))
}

/// Sends a command to `id` from `sender`: `Ok(true)` when `device` gets
/// it, `Ok(false)` when the sender got an `error:` instead.
async fn still_addressed(
    ctx: &mut Ctx,
    sender: &mut LineConn,
    device: &mut LineConn,
    id: &str,
) -> Result<bool, Stop> {
    let Some(pick) = ctx.commands().tool().cloned() else {
        return Err(Stop::Skip(
            "the registry (--registry) has no usable command".into(),
        ));
    };
    let parameters = pick.parameters(ctx.marker());
    let expected = pick.delivered(parameters.as_deref());
    sender.send(&pick.line(id, parameters.as_deref())).await?;
    let (seen, _) = sender.handled().await?;
    if seen.iter().any(|line| line.is_error()) {
        return Ok(false);
    }
    if device.is_closed() {
        return Ok(false);
    }
    let timeout = device.timeout;
    match device
        .expect("a command sent to it", timeout, |line| {
            line.text == expected
        })
        .await
    {
        Ok(_) => Ok(true),
        Err(Stop::Fail(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

/// `device.liveness.any-frame`.
pub(super) async fn any_frame(ctx: &mut Ctx) -> Result<(), Stop> {
    let stale = needed(ctx.target.stale_timeout, "--stale-timeout")?;
    let (mut device, id) = deaf_device(ctx).await?;
    let mut sender = ctx.connect("a client").await?;
    let every = stale / 4;
    let until = Instant::now() + stale * 3 / 2;
    let mut pings = 0;
    let mut sent = 0u32;
    let outcome = async {
        device.waiting_for("the stale timeout to pass while the device sends lines");
        while Instant::now() < until {
            let next = (Instant::now() + every).min(until);
            while let Some(event) = device.next(next.saturating_duration_since(Instant::now())).await {
                match event {
                    Event::Line(line) if line.is_hub_ping() => pings += 1,
                    Event::Line(_) => {}
                    Event::Closed(code) => {
                        return fail(format!(
                            "the hub closed the connection ({}) of a device that sent a line every {} (its {} lines were {})",
                            code.map_or("no code".into(), |code| format!("code {code}")),
                            humantime::format_duration(every),
                            sent,
                            "data and `ping`s, alternately; it never answered the hub's `ping`"
                        ))
                    }
                }
            }
            sent += 1;
            let line = if sent % 2 == 1 {
                format!("alive={sent}")
            } else {
                "ping".to_owned()
            };
            device.send(&line).await?;
        }
        device.note(&format!(
            "the hub sent {pings} `ping`(s) in {}; none was answered",
            humantime::format_duration(stale * 3 / 2)
        ));
        if still_addressed(ctx, &mut sender, &mut device, &id).await? {
            Ok(())
        } else {
            fail(format!(
                "after {} of lines every {} (and no answer to the hub's `ping`s), a command to {id} no longer reaches the device",
                humantime::format_duration(stale * 3 / 2),
                humantime::format_duration(every)
            ))
        }
    }
    .await;
    close_all(&mut [&mut device, &mut sender]).await;
    outcome
}

/// `device.liveness.stale-drop`.
pub(super) async fn stale_drop(ctx: &mut Ctx) -> Result<(), Stop> {
    let stale = needed(ctx.target.stale_timeout, "--stale-timeout")?;
    let bound = stale * 2 + ctx.target.reply_timeout;
    let (mut device, id) = deaf_device(ctx).await?;
    let started = Instant::now();
    let (_, closed) = device.until_closed(bound).await;
    if let Some(code) = closed {
        device.note(&format!(
            "dropped after {} of silence (close {})",
            humantime::format_duration(round(started.elapsed())),
            code.map_or("without a code".into(), |code| format!("code {code}"))
        ));
        return Ok(());
    }
    let mut sender = ctx.connect("a client").await?;
    let outcome = match still_addressed(ctx, &mut sender, &mut device, &id).await {
        Ok(false) => Ok(()),
        Ok(true) => fail(format!(
            "a device silent for {} is still connected and still gets commands (the stale timeout is {})",
            humantime::format_duration(bound),
            humantime::format_duration(stale)
        )),
        Err(stop) => Err(stop),
    };
    close_all(&mut [&mut device, &mut sender]).await;
    outcome
}

fn round(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis().try_into().unwrap_or(u64::MAX))
}
