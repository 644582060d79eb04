//! Commands: `cmd:<target>:<command>[:<parameters>]` to one device or to
//! `all`, delivered as `<command>[:<parameters>]`, unanswered when
//! accepted, refused with `error:` (and forwarded nowhere) for an unknown
//! command or target.

use super::super::commands::Pick;
use super::super::conn::{carrying, not_pings, nothing_to_judge, quoted, LineConn};
use super::super::target::{close_all, Ctx};
use crate::verdict::{check, fail, Stop};

/// The registry's tool command, or a skip.
fn tool(ctx: &Ctx) -> Result<Pick, Stop> {
    ctx.commands()
        .tool()
        .cloned()
        .ok_or_else(|| Stop::Skip("the registry (--registry) has no usable command".into()))
}

/// Waits on `device` for the first line that is command `name` (`name`
/// alone or `name:...`); returns it and the lines before it.
async fn first_of(device: &mut LineConn, name: &str) -> Result<String, Stop> {
    let timeout = device.timeout;
    let prefix = format!("{name}:");
    let (line, _) = device
        .expect(&format!("the command `{name}`"), timeout, |line| {
            line.text == name || line.text.starts_with(&prefix)
        })
        .await?;
    Ok(line.text)
}

/// Waits on `device` for exactly `expected` (a tool: none leaves nothing
/// to judge, `reporter` reports that).
async fn arrives(device: &mut LineConn, expected: &str, reporter: &str) -> Result<(), Stop> {
    let timeout = device.timeout;
    device
        .expect(&format!("the command {expected:?}"), timeout, |line| {
            line.text == expected
        })
        .await
        .map(|_| ())
        .map_err(|stop| nothing_to_judge(stop, reporter))
}

/// Fails when `conn` (`who`) received a line containing `needle` before
/// the `pong` of a `ping` sent now.
async fn never_got(conn: &mut LineConn, needle: &str, who: &str) -> Result<(), Stop> {
    let before = conn.sync().await?;
    let got = carrying(&before, needle);
    check(got.is_empty(), || {
        format!("{who} received {}", quoted(&got))
    })
}

/// `device.command.to-one`.
pub(super) async fn to_one(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick = tool(ctx)?;
    let (mut device, id) = ctx.device().await?;
    let mut sender = ctx.connect("a client").await?;
    let parameters = pick.parameters(ctx.marker());
    let expected = pick.delivered(parameters.as_deref());
    let outcome = async {
        sender.send(&pick.line(&id, parameters.as_deref())).await?;
        let got = first_of(&mut device, &pick.name).await?;
        if got != expected {
            return fail(format!("the device got {got:?}, not {expected:?}"));
        }
        let again = device.sync().await?;
        let copies = again.iter().filter(|line| line.text == expected).count();
        check(copies == 0, || {
            format!("the device got {expected:?} {} times", copies + 1)
        })
    }
    .await;
    close_all(&mut [&mut device, &mut sender]).await;
    outcome
}

/// `device.command.only-target`.
pub(super) async fn only_target(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick = tool(ctx)?;
    let (mut device, id) = ctx.device().await?;
    let longer = format!("{id}-b");
    let mut namesake = ctx.device_as(&longer).await?;
    let (mut other, _) = ctx.device().await?;
    let mut sender = ctx.connect("a client").await?;
    let parameters = pick.parameters(ctx.marker());
    let expected = pick.delivered(parameters.as_deref());
    let outcome = async {
        sender.send(&pick.line(&id, parameters.as_deref())).await?;
        arrives(&mut device, &expected, "device.command.to-one").await?;
        never_got(&mut namesake, &expected, &format!("device {longer}")).await?;
        never_got(&mut other, &expected, "another device").await
    }
    .await;
    close_all(&mut [&mut device, &mut namesake, &mut other, &mut sender]).await;
    outcome
}

/// `device.command.to-all`.
pub(super) async fn to_all(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick = tool(ctx)?;
    let (mut plain, _) = ctx.device().await?;
    let (mut watching, _) = ctx.device().await?;
    watching.send("s").await?;
    watching.sync().await?;
    let early_id = ctx.fresh("dev");
    let mut early = ctx.connect(&format!("device {early_id}")).await?;
    early.answer_pings = true;
    early.send("s").await?;
    early.send(&format!("id:{early_id}")).await?;
    early.sync().await?;
    let mut sender = ctx.connect("a client").await?;
    let parameters = pick.parameters(ctx.marker());
    let expected = pick.delivered(parameters.as_deref());
    let outcome = async {
        sender
            .send(&pick.line("all", parameters.as_deref()))
            .await?;
        let mut missed = Vec::new();
        for (which, device) in [
            ("a device", &mut plain),
            ("a device that subscribed after registering", &mut watching),
            ("a device that subscribed before registering", &mut early),
        ] {
            match arrives(device, &expected, "").await {
                Ok(()) => {}
                Err(Stop::Skip(_)) => missed.push(which),
                Err(other) => return Err(other),
            }
        }
        check(missed.is_empty(), || {
            format!(
                "`cmd:all:...` did not reach {} (no {expected:?} within the reply timeout)",
                missed.join(", nor ")
            )
        })
    }
    .await;
    close_all(&mut [&mut plain, &mut watching, &mut early, &mut sender]).await;
    outcome
}

/// Sends `cmd:<device>:<pick>[:<parameters>]` and checks the device gets
/// exactly `<pick>[:<parameters>]`.
async fn delivered_intact(
    ctx: &mut Ctx,
    pick: &Pick,
    parameters: Option<&str>,
) -> Result<(), Stop> {
    let (mut device, id) = ctx.device().await?;
    let mut sender = ctx.connect("a client").await?;
    let expected = pick.delivered(parameters);
    let outcome = async {
        sender.send(&pick.line(&id, parameters)).await?;
        let got = first_of(&mut device, &pick.name).await?;
        check(got == expected, || {
            format!("the device got {got:?}, not {expected:?}")
        })
    }
    .await;
    close_all(&mut [&mut device, &mut sender]).await;
    outcome
}

/// `device.command.colons-in-parameters`.
pub(super) async fn colons_in_parameters(ctx: &mut Ctx) -> Result<(), Stop> {
    let marker = ctx.marker();
    let Some(pick) = ctx.commands().with_colons().cloned() else {
        return Err(Stop::Skip(
            "no command of the registry (--registry) takes a text parameter or two parameters"
                .into(),
        ));
    };
    let parameters = pick.with_colons(marker);
    delivered_intact(ctx, &pick, parameters.as_deref()).await
}

/// `device.command.no-parameters`.
pub(super) async fn no_parameters(ctx: &mut Ctx) -> Result<(), Stop> {
    let Some(pick) = ctx.commands().bare().cloned() else {
        return Err(Stop::Skip(
            "every command of the registry (--registry) has a required parameter".into(),
        ));
    };
    delivered_intact(ctx, &pick, None).await
}

/// `device.command.no-reply`.
pub(super) async fn no_reply(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick = tool(ctx)?;
    let (mut device, id) = ctx.device().await?;
    let mut sender = ctx.connect("a client").await?;
    let outcome = async {
        for target in [id.as_str(), "all"] {
            let parameters = pick.parameters(ctx.marker());
            let line = pick.line(target, parameters.as_deref());
            sender.send(&line).await?;
            let expected = pick.delivered(parameters.as_deref());
            arrives(&mut device, &expected, "device.command.to-one").await?;
            let before = sender.sync().await?;
            let replies = not_pings(&before);
            if !replies.is_empty() {
                return fail(format!("{line:?} was answered: {}", quoted(&replies)));
            }
        }
        Ok(())
    }
    .await;
    close_all(&mut [&mut device, &mut sender]).await;
    outcome
}

/// Sends each of `lines` on `sender`, each followed by a `ping`; fails
/// unless an `error:` comes before the `pong`.
async fn each_refused(sender: &mut LineConn, lines: &[String]) -> Result<(), Stop> {
    for line in lines {
        if sender.is_closed() {
            return Ok(());
        }
        sender.send(line).await?;
        let (seen, closed) = sender.handled().await?;
        if !seen.iter().any(|line| line.is_error()) {
            let texts: Vec<&str> = seen.iter().map(|line| line.text.as_str()).collect();
            return fail(format!(
                "{line:?} got no `error:` before {} (got: {})",
                if closed {
                    "the hub closed the connection"
                } else {
                    "the `pong` of a later `ping`"
                },
                if texts.is_empty() {
                    "nothing".to_owned()
                } else {
                    quoted(&texts)
                }
            ));
        }
    }
    Ok(())
}

/// Sends `lines` on `sender` (each handled before the next), then
/// checks that none of `devices` got a line containing `needle`.
async fn forwarded_nowhere(
    sender: &mut LineConn,
    lines: &[String],
    devices: &mut [&mut LineConn],
    needle: &str,
) -> Result<(), Stop> {
    for line in lines {
        if sender.is_closed() {
            break;
        }
        sender.send(line).await?;
        sender.handled().await?;
    }
    for device in devices.iter_mut() {
        never_got(device, needle, "a registered device").await?;
    }
    Ok(())
}

/// `device.command.unknown-command`.
pub(super) async fn unknown_command(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut device, id) = ctx.device().await?;
    let mut sender = ctx.connect("a client").await?;
    let tag = ctx.fresh("cmd").replace('-', "");
    let unknown = ctx.commands().unknown(&tag);
    let lines = [
        format!("cmd:{id}:{unknown}:x"),
        format!("cmd:all:{unknown}"),
    ];
    let outcome = each_refused(&mut sender, &lines).await;
    close_all(&mut [&mut device, &mut sender]).await;
    outcome
}

/// `device.command.unknown-command-not-forwarded`.
pub(super) async fn unknown_command_not_forwarded(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut first, id) = ctx.device().await?;
    let (mut second, _) = ctx.device().await?;
    let mut sender = ctx.connect("a client").await?;
    let tag = ctx.fresh("cmd").replace('-', "");
    let unknown = ctx.commands().unknown(&tag);
    let lines = [
        format!("cmd:{id}:{unknown}:x"),
        format!("cmd:all:{unknown}:y"),
    ];
    let outcome = forwarded_nowhere(
        &mut sender,
        &lines,
        &mut [&mut first, &mut second],
        &unknown,
    )
    .await;
    close_all(&mut [&mut first, &mut second, &mut sender]).await;
    outcome
}

/// `device.command.unknown-target`.
pub(super) async fn unknown_target(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick = tool(ctx)?;
    let mut sender = ctx.connect("a client").await?;
    let nobody = ctx.fresh("nobody");
    let parameters = pick.parameters(ctx.marker());
    let lines = [pick.line(&nobody, parameters.as_deref())];
    let outcome = each_refused(&mut sender, &lines).await;
    sender.close().await;
    outcome
}

/// `device.command.unknown-target-not-forwarded`.
pub(super) async fn unknown_target_not_forwarded(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick = tool(ctx)?;
    let (mut first, _) = ctx.device().await?;
    let (mut second, _) = ctx.device().await?;
    let mut sender = ctx.connect("a client").await?;
    let nobody = ctx.fresh("nobody");
    let parameters = pick.parameters(ctx.marker());
    let expected = pick.delivered(parameters.as_deref());
    let lines = [pick.line(&nobody, parameters.as_deref())];
    let outcome = forwarded_nowhere(
        &mut sender,
        &lines,
        &mut [&mut first, &mut second],
        &expected,
    )
    .await;
    close_all(&mut [&mut first, &mut second, &mut sender]).await;
    outcome
}
