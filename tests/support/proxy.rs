//! A TCP proxy in front of a real server that a test can cut off and
//! restore: the database "goes down" (connections drop, new ones are
//! refused) without touching the shared server.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    /// Bumped on every cut; open connections end when it changes.
    cuts: watch::Sender<u64>,
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
        let task = tokio::spawn(accept(listener, target, cuts.clone()));
        Self {
            addr,
            target,
            cuts,
            accept: Mutex::new(Some(task)),
        }
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
        let task = tokio::spawn(accept(listener, self.target, self.cuts.clone()));
        if let Ok(mut accept) = self.accept.lock() {
            *accept = Some(task);
        }
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, cuts: watch::Sender<u64>) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        let mut cut = cuts.subscribe();
        cut.mark_unchanged();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            // The proxy itself never waits on Nagle: what a test measures
            // through it is its client's socket.
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = cut.changed() => {}
            }
        });
    }
}
