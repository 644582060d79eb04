//! The device family's cases, one function per catalog ID
//! (`schema/device/conformance.json`), filed by topic: [`basics`]
//! (registration, subscription, `ping`, refused lines, the grammar of the
//! hub's lines), [`data`] (broadcasts), [`command`] (commands to one
//! device, to `all`, unknown ones), [`liveness`] (the hub's `ping`s,
//! stale devices); the generated sessions are in
//! [`generated`](super::generated).
//!
//! Each case checks its own spec point and no other, so a hub with one
//! fault fails one case: a case that needs a registration, a subscription
//! or a delivery as a tool confirms it and takes any answer (the answer
//! is another case's point), and proves that a line did not arrive, or
//! was not answered, with the `pong` of a later `ping` (the hub answers a
//! connection's lines in order), never by waiting. Every case uses device
//! ids of its own and closes its connections when it ends.

mod basics;
mod command;
mod data;
mod liveness;

use super::generated;
use super::target::Ctx;
use crate::suite::Registry;

/// The device cases, one per catalog ID.
pub(crate) static CASES: Registry<Ctx> = crate::cases!(Ctx {
    "device.register.no-reply" => basics::register_no_reply,
    "device.register.duplicate-id" => basics::duplicate_id,
    "device.subscribe.no-reply" => basics::subscribe_no_reply,
    "device.ping.pong" => basics::pong,
    "device.data.broadcast" => data::broadcast,
    "device.data.not-to-non-subscribers" => data::not_to_non_subscribers,
    "device.data.not-echoed" => data::not_echoed,
    "device.command.to-one" => command::to_one,
    "device.command.only-target" => command::only_target,
    "device.command.to-all" => command::to_all,
    "device.command.colons-in-parameters" => command::colons_in_parameters,
    "device.command.no-parameters" => command::no_parameters,
    "device.command.no-reply" => command::no_reply,
    "device.command.unknown-command" => command::unknown_command,
    "device.command.unknown-command-not-forwarded" => command::unknown_command_not_forwarded,
    "device.command.unknown-target" => command::unknown_target,
    "device.command.unknown-target-not-forwarded" => command::unknown_target_not_forwarded,
    "device.errors.not-a-device" => basics::not_a_device,
    "device.errors.stays-open" => basics::stays_open,
    "device.liveness.hub-ping" => liveness::hub_ping,
    "device.liveness.any-frame" => liveness::any_frame,
    "device.liveness.stale-drop" => liveness::stale_drop,
    "device.grammar.hub-lines" => basics::hub_lines,
    "device.generated.sessions" => generated::sessions,
});

/// Cases that must run after every other: they judge the whole run.
pub(crate) const RUN_LAST: &[&str] = &["device.grammar.hub-lines"];
