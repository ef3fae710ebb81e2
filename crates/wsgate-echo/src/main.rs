//! `wsgate-echo`: the echo server binary; flags and environment in, [`wsgate_echo::run`] out.

use clap::Parser;
use wsgate_echo::{EchoConfig, Heartbeat, HeartbeatKind, Mode};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "WebSocket echo server (the documented Deployment's container)"
)]
struct Args {
    /// Port to listen on, on all interfaces (the documented Deployment sets BIND_PORT=3000).
    #[arg(long, env = "BIND_PORT", default_value_t = 3000)]
    bind_port: u16,
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0")]
    bind_addr: std::net::IpAddr,
    /// Largest message accepted; larger ones are refused with close code 1009.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = wsgate_echo::DEFAULT_MAX_MESSAGE)]
    max_message_bytes: usize,
    /// `echo` (default), `stall` (never reads after the handshake; for send-timeout tests) or
    /// `sink` (reads, never answers). A connection's query may override it (`?mode=sink`).
    #[arg(long, env = "ECHO_MODE", default_value = "echo")]
    mode: Mode,
    /// Send a ping frame to every client every this many seconds (heartbeat experiments).
    #[arg(long, env = "PING_EVERY", conflicts_with = "push_every")]
    ping_every: Option<f64>,
    /// Send a text message to every client every this many seconds.
    #[arg(long, env = "PUSH_EVERY")]
    push_every: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        // Plain text when not on a terminal (container logs, CI).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    let heartbeat = match (args.ping_every, args.push_every) {
        (Some(s), _) => Some((s, HeartbeatKind::Ping)),
        (None, Some(s)) => Some((s, HeartbeatKind::Text)),
        (None, None) => None,
    }
    .map(|(secs, kind)| {
        anyhow::ensure!(
            secs.is_finite() && secs > 0.0,
            "a heartbeat interval must be a positive number of seconds, not {secs}"
        );
        Ok(Heartbeat {
            every: std::time::Duration::from_secs_f64(secs),
            kind,
        })
    })
    .transpose()?;
    let config = EchoConfig {
        max_message_bytes: args.max_message_bytes,
        mode: args.mode,
        heartbeat,
        ..EchoConfig::default()
    };
    let addr = std::net::SocketAddr::new(args.bind_addr, args.bind_port);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(wsgate_echo::run(addr, config))
}
