//! Device data: broadcast to every subscriber as `<deviceId>:<data>`, to
//! no one else, and not back to its device.

use super::super::conn::{carrying, nothing_to_judge, quoted, LineConn};
use super::super::target::{close_all, Ctx};
use crate::verdict::{fail, Stop};

/// A data line with marker `n` first, then `:`, `=`, `;` and a space (no
/// white space before its first `:`, so it stays a line of the grammar
/// even without its prefix).
fn data_line(n: u32) -> String {
    format!("m{n:07}=21.5:unit=C;note=a b")
}

/// Waits on `watcher` for the line carrying `data` (a tool: any framing
/// will do, `device.data.broadcast` judges it; none leaves nothing to
/// judge).
async fn delivered(watcher: &mut LineConn, data: &str) -> Result<(), Stop> {
    let marker = data.split('=').next().unwrap_or(data).to_owned();
    let timeout = watcher.timeout;
    watcher
        .expect("the device's data on a subscriber", timeout, |line| {
            line.text.contains(&marker)
        })
        .await
        .map(|_| ())
        .map_err(|stop| nothing_to_judge(stop, "device.data.broadcast"))
}

/// Fails when `conn` (`who`) received a line carrying `data` before the
/// `pong` of a `ping` sent now.
async fn never_got(conn: &mut LineConn, data: &str, who: &str) -> Result<(), Stop> {
    let marker = data.split('=').next().unwrap_or(data);
    let before = conn.sync().await?;
    let got = carrying(&before, marker);
    if got.is_empty() {
        Ok(())
    } else {
        fail(format!(
            "{who} received the device's data: {}",
            quoted(&got)
        ))
    }
}

/// `device.data.broadcast`.
pub(super) async fn broadcast(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut first = ctx.subscriber().await?;
    let mut second = ctx.subscriber().await?;
    let (mut device, id) = ctx.device().await?;
    let data = data_line(ctx.marker());
    let expected = format!("{id}:{data}");
    let marker = data.split('=').next().unwrap_or(&data).to_owned();
    let outcome = async {
        device.send(&data).await?;
        for (which, watcher) in [("first", &mut first), ("second", &mut second)] {
            let timeout = watcher.timeout;
            let (line, _) = watcher
                .expect(
                    &format!("the device's data on the {which} subscriber"),
                    timeout,
                    |line| line.text.contains(&marker),
                )
                .await?;
            if line.text != expected {
                return fail(format!(
                    "the {which} subscriber got {:?} for data {data:?} of device {id}, not {expected:?}",
                    line.text
                ));
            }
        }
        Ok(())
    }
    .await;
    close_all(&mut [&mut first, &mut second, &mut device]).await;
    outcome
}

/// `device.data.not-to-non-subscribers`.
pub(super) async fn not_to_non_subscribers(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut watcher = ctx.subscriber().await?;
    let mut plain = ctx.connect("a plain connection").await?;
    plain.sync().await?;
    let (mut other, _) = ctx.device().await?;
    let (mut device, _) = ctx.device().await?;
    let data = data_line(ctx.marker());
    let outcome = async {
        device.send(&data).await?;
        delivered(&mut watcher, &data).await?;
        never_got(&mut plain, &data, "a connection that never sent `s`").await?;
        never_got(&mut other, &data, "another device (it never sent `s`)").await
    }
    .await;
    close_all(&mut [&mut watcher, &mut plain, &mut other, &mut device]).await;
    outcome
}

/// `device.data.not-echoed`.
pub(super) async fn not_echoed(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut watcher = ctx.subscriber().await?;
    let (mut device, _) = ctx.device().await?;
    let data = data_line(ctx.marker());
    let outcome = async {
        device.send(&data).await?;
        delivered(&mut watcher, &data).await?;
        never_got(&mut device, &data, "the sending device (it never sent `s`)").await
    }
    .await;
    close_all(&mut [&mut watcher, &mut device]).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_are_device_data_with_their_marker_first() {
        let data = data_line(42);
        assert_eq!(data, "m0000042=21.5:unit=C;note=a b");
        assert_eq!(super::super::super::conn::refused(&data), None);
        // Without its prefix it is still a line of the hub's grammar.
        assert_eq!(super::super::super::conn::hub_line_fault(&data), None);
        assert_eq!(
            super::super::super::conn::hub_line_fault(&format!("dev:{data}")),
            None
        );
    }
}
