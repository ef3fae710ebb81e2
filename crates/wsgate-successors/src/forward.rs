//! A pod's server: connections accepted on a pod address (a socket opened in a network
//! namespace of the run, `wsgate_bare::PodNet`) are relayed, bytes unchanged in both directions
//! and half-closes passed on, to a server on loopback (the echo server, or a team's own
//! `--backend`). The relay sets no timeout of its own; it stops on drop.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running relay; stopped on drop (open relayed connections are dropped with it).
#[derive(Debug)]
pub struct Forward {
    pub listen: SocketAddr,
    pub target: SocketAddr,
    task: JoinHandle<()>,
}

impl Forward {
    /// Relays `listener`'s connections to `target`. `listener` must be non-blocking.
    pub fn start(listener: std::net::TcpListener, target: SocketAddr) -> std::io::Result<Self> {
        let listen = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let _ = inbound.set_nodelay(true);
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self {
            listen,
            target,
            task,
        })
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        // The JoinSet inside is dropped with the task: every relayed connection closes.
        self.task.abort();
    }
}
