//! A TCP proxy in front of a real server that a test can cut off and
//! restore: the database "goes down" (connections drop, new ones are
//! refused) without touching the shared server. It can also hold the
//! server's replies back (a slow answer, deterministically).

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    /// Bumped on every cut; open connections end when it changes.
    cuts: watch::Sender<u64>,
    /// While true, nothing the server sends is passed on.
    held: watch::Sender<bool>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let cuts = watch::Sender::new(0u64);
        let held = watch::Sender::new(false);
        let task = tokio::spawn(accept(listener, target, cuts.clone(), held.clone()));
        Self {
            addr,
            target,
            cuts,
            held,
            accept: Mutex::new(Some(task)),
        }
    }

    /// From now on the server's replies wait in the proxy (requests still
    /// reach the server).
    pub fn hold_replies(&self) {
        self.held.send_replace(true);
    }

    /// Passes on the replies held back, and those to come.
    pub fn release_replies(&self) {
        self.held.send_replace(false);
    }

    /// Closes every open connection and stops listening (connections are
    /// refused).
    pub fn cut(&self) {
        if let Ok(mut accept) = self.accept.lock()
            && let Some(task) = accept.take()
        {
            task.abort();
        }
        self.cuts.send_modify(|c| *c += 1);
    }

    /// Listens again on the same address.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("rebind: {e}"));
        let task = tokio::spawn(accept(
            listener,
            self.target,
            self.cuts.clone(),
            self.held.clone(),
        ));
        if let Ok(mut accept) = self.accept.lock() {
            *accept = Some(task);
        }
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    cuts: watch::Sender<u64>,
    held: watch::Sender<bool>,
) {
    while let Ok((inbound, _)) = listener.accept().await {
        let mut cut = cuts.subscribe();
        cut.mark_unchanged();
        let never = watch::Sender::new(false);
        let (never_held, replies_held) = (never.subscribe(), held.subscribe());
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            // The proxy itself never waits on Nagle: what a test measures
            // through it is its client's socket.
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (from_client, to_client) = inbound.into_split();
            let (from_server, to_server) = outbound.into_split();
            tokio::select! {
                () = pump(from_client, to_server, never_held) => {}
                () = pump(from_server, to_client, replies_held) => {}
                _ = cut.changed() => {}
            }
            drop(never);
        });
    }
}

/// Copies `from` to `to`, waiting while `held` says so.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut held: watch::Receiver<bool>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if held.wait_for(|held| !*held).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
