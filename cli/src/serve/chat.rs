//! `specwire serve chat`: the chat server over raw TCP.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use specwire_runtime::chat::{ChatConfig, ChatServer, NamePolicy, UserListing};

use super::TlsArgs;
use crate::duration::parse_duration;
use crate::file_limit::raise_file_limit;
use crate::signals::wait_for_stop_signal;

/// What `join_chat` does with a name that is taken.
#[derive(Clone, Copy, clap::ValueEnum)]
enum OnTaken {
    /// Answer `{"status":"error","message":"Username already taken"}`.
    Refuse,
    /// Give the joiner `NAME_<its port>` (the seed's server).
    Suffix,
}

/// How `get_users` lists users.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Users {
    /// `["Alice", "Bob"]`.
    Names,
    /// `[{"username": "Alice", "address": "127.0.0.1:50412"}, ...]`.
    Address,
}

#[derive(clap::Args)]
pub(crate) struct ChatArgs {
    /// Address to listen on. Other than loopback exposes the chat to the
    /// network.
    #[arg(long, default_value = "127.0.0.1:65432", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    /// A username someone already has: refuse it, or suffix the joiner's
    /// port (both conform to the profile).
    #[arg(long, value_enum, default_value = "refuse")]
    on_taken: OnTaken,
    /// Users in `get_users` and the join response: plain names, or with
    /// each connection's address (both conform).
    #[arg(long, value_enum, default_value = "names")]
    users: Users,
    /// Send each joiner "Welcome to the chat, NAME!" after its response.
    #[arg(long)]
    welcome: bool,
    /// Objects that may wait for one connection; a reader that falls
    /// further behind is disconnected and announced as having left.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    queue: usize,
    /// Requests per second a connection may send before `Rate limit
    /// exceeded` (0: no limit, the default).
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    rate_limit: f64,
    /// Connections in all.
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    max_connections: usize,
    /// Connections per IP address.
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    ip_limit: usize,
    #[command(flatten)]
    tls: TlsArgs,
    /// On shutdown, how long connections get to receive what is queued.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    grace: Duration,
}

pub(super) async fn serve_chat(args: ChatArgs) -> Result<(), String> {
    raise_file_limit();
    let mut config = ChatConfig::new(args.bind);
    config.server.tls = args.tls.config()?;
    let limits = &mut config.server.limits;
    limits.max_queued = args.queue.max(1);
    limits.messages_per_second = (args.rate_limit > 0.0).then_some(args.rate_limit);
    limits.burst = args.rate_limit.clamp(1.0, 1_000_000.0) as u32;
    limits.max_connections = args.max_connections;
    limits.max_connections_per_ip = args.ip_limit;
    config.names = match args.on_taken {
        OnTaken::Refuse => NamePolicy::Refuse,
        OnTaken::Suffix => NamePolicy::SuffixPort,
    };
    config.users = match args.users {
        Users::Names => UserListing::Names,
        Users::Address => UserListing::WithAddress,
    };
    config.welcome = args.welcome;
    let server = ChatServer::start(config)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.bind))?;
    eprintln!(
        "specwire: chat on {}; try `specwire chat --target {} --username NAME`",
        server.endpoint(),
        server.local_addr()
    );
    // The one line scripts and tests wait for.
    println!("listening on {}", server.endpoint());
    let _ = std::io::stdout().flush();

    wait_for_stop_signal().await;
    let stats = server.stats();
    server.shutdown(args.grace).await;
    eprintln!(
        "specwire: stopped after {} message(s), {} broadcast cop(ies) delivered, {} error reply(ies), {} slow reader(s) disconnected",
        stats.messages, stats.delivered, stats.errors, stats.slow_closed
    );
    Ok(())
}
