//! `herald healthcheck`: one `GET /readyz` to a running node over plain
//! HTTP/1.1, for container healthchecks (the image has no curl, and
//! `/bin/sh` there is dash, without `/dev/tcp`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::HealthcheckArgs;

pub async fn run(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let address = reachable(args.listen);
    let timeout = Duration::from_secs(args.timeout_seconds);
    let status = tokio::time::timeout(timeout, ready(address))
        .await
        .with_context(|| format!("{address} did not answer within {}s", timeout.as_secs()))??;
    if status == 200 {
        Ok(())
    } else {
        anyhow::bail!("{address}/readyz answered {status}")
    }
}

/// Where to reach a node listening on `listen` from this host.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The status code of `GET /readyz`.
async fn ready(address: SocketAddr) -> anyhow::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 32];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).await?;
        anyhow::ensure!(n > 0, "{address} closed the connection without an answer");
        read += n;
    }
    let line = std::str::from_utf8(&head[..read]).unwrap_or_default();
    line.strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{address} did not answer HTTP"))
}

#[cfg(test)]
mod tests {
    use super::reachable;

    #[test]
    fn an_unspecified_listen_address_is_reached_on_localhost() {
        let to = |s: &str| reachable(s.parse().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(to("0.0.0.0:8080").to_string(), "127.0.0.1:8080");
        assert_eq!(to("[::]:9").to_string(), "[::1]:9");
        assert_eq!(to("10.1.2.3:80").to_string(), "10.1.2.3:80");
    }
}
