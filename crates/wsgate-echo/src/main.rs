//! `wsgate-echo`: the echo server binary; flags and environment in, [`wsgate_echo::run`] out.

use clap::Parser;
use wsgate_echo::{EchoConfig, Mode};

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
    /// `echo` (default) or `stall` (never reads after the handshake; for send-timeout tests).
    #[arg(long, env = "ECHO_MODE", default_value = "echo")]
    mode: Mode,
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
    let config = EchoConfig {
        max_message_bytes: args.max_message_bytes,
        mode: args.mode,
        ..EchoConfig::default()
    };
    let addr = std::net::SocketAddr::new(args.bind_addr, args.bind_port);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(wsgate_echo::run(addr, config))
}
