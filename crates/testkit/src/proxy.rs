//! A TCP proxy on loopback between a fax server and its supervisor, whose link a test cuts and restores.
//!
//! Cut, it closes every connection through it, and a connection opened meanwhile is accepted but left
//! waiting, unanswered, until the link is restored (as for a host whose network is down and whose kernel
//! keeps retrying to connect): the fax server's link and its HTTP requests to the supervisor fail together,
//! and it is back within moments of the restore, not after its reconnect back-off.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct LinkProxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Forwards a fresh loopback port to `upstream` (`http://127.0.0.1:port` or `127.0.0.1:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, _) = watch::channel(true);
        let watch = up.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, upstream, watch.subscribe()));
            }
        });
        Ok(Self { addr, up, accept })
    }

    /// The URL a fax server is given as its supervisor's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts the link: open connections close, new ones wait.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut up: watch::Receiver<bool>) {
    if up.wait_for(|up| *up).await.is_err() {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|up| !*up) => {}
    }
}
