//! The chat family's cases, one function per catalog ID
//! (`schema/chat/conformance.json`), filed by topic: [`framing`] (the
//! stream: pieces, bytes, several objects, white space, pretty-printing,
//! the server's `\n`), [`join`] (joining, taken and invalid names),
//! [`send`] (broadcasts and message rules), [`room`] (`get_users`,
//! leaving, disconnecting, requests before joining), [`rpc`] (JSON-RPC
//! errors, pipelined order, the schema); the generated sessions are in
//! [`generated`](super::generated).
//!
//! Each case checks its own spec point and no other, so a server with one
//! fault fails one case: a case that needs a join, a message or a listing
//! as a tool takes any success (the answer's content is another case's
//! point), and proves that a broadcast did not arrive with the response to
//! a later request ([`ChatConn::sync`](super::conn::ChatConn::sync)),
//! never by waiting. Every case uses names and markers of its own and
//! closes its connections when it ends.

mod framing;
mod join;
mod room;
mod rpc;
mod send;

use super::generated;
use super::target::Ctx;
use crate::suite::Registry;

/// The chat cases, one per catalog ID.
pub(crate) static CASES: Registry<Ctx> = crate::cases!(Ctx {
    "chat.framing.split" => framing::split,
    "chat.framing.byte-by-byte" => framing::byte_by_byte,
    "chat.framing.several-in-one-write" => framing::several_in_one_write,
    "chat.framing.no-separator" => framing::no_separator,
    "chat.framing.whitespace" => framing::whitespace,
    "chat.framing.pretty" => framing::pretty,
    "chat.framing.newline" => framing::newline,
    "chat.join.success" => join::success,
    "chat.join.announced" => join::announced,
    "chat.join.taken" => join::taken,
    "chat.join.too-long" => join::too_long,
    "chat.join.blank" => join::blank,
    "chat.join.padded" => join::padded,
    "chat.send.broadcast" => send::broadcast,
    "chat.send.not-to-sender" => send::not_to_sender,
    "chat.send.too-long" => send::too_long,
    "chat.send.blank" => send::blank,
    "chat.send.padded" => send::padded,
    "chat.users.listed" => room::listed,
    "chat.users.count" => room::count,
    "chat.leave.announced" => room::leave_announced,
    "chat.leave.no-more-broadcasts" => room::no_more_broadcasts,
    "chat.leave.disconnect" => room::disconnect,
    "chat.state.join-first" => room::join_first,
    "chat.rpc.parse-error" => rpc::parse_error,
    "chat.rpc.unknown-method" => rpc::unknown_method,
    "chat.rpc.bad-params" => rpc::bad_params,
    "chat.rpc.stays-open" => rpc::stays_open,
    "chat.order.pipelined" => rpc::pipelined,
    "chat.schema.valid" => rpc::schema_valid,
    "chat.generated.sessions" => generated::sessions,
});

/// Cases that must run after every other: they judge the whole run.
pub(crate) const RUN_LAST: &[&str] = &["chat.framing.newline", "chat.schema.valid"];
