//! TCP_NODELAY on the sockets to PostgreSQL.
//!
//! sqlx 0.9.0 stopped setting it (sqlx issue #4335; the fix is merged but
//! not in a release yet). Without it a message that does not fit in one
//! segment leaves its tail waiting for the server's delayed ACK (Nagle's
//! algorithm): ~40 ms per statement. Appending a 23 KB batch record of a
//! campaign took 45-50 ms instead of a few, capping PostgreSQL campaigns at
//! 7,800 sends/s (BENCHMARKS.md).
//!
//! sqlx gives no access to its socket, so every new pooled connection (see
//! `after_connect` in [`crate::database`]) sets the option on each of the
//! process's TCP sockets whose peer is the server's port: Linux duplicates
//! each socket with `pidfd_getfd`, and the option belongs to the socket, not
//! to the descriptor. Setting it twice, or on another PostgreSQL connection,
//! is harmless. The module is Linux's only; elsewhere sockets stay as sqlx
//! makes them.

/// Sets TCP_NODELAY on the process's TCP sockets connected to `port`;
/// returns how many it set it on.
pub fn set_on_sockets_to(port: u16) -> usize {
    sockets_to(port)
        .iter()
        .filter(|fd| rustix::net::sockopt::set_tcp_nodelay(fd, true).is_ok())
        .count()
}

/// Whether each of the process's TCP sockets connected to `port` has
/// TCP_NODELAY (for tests).
pub fn states_of_sockets_to(port: u16) -> Vec<bool> {
    sockets_to(port)
        .iter()
        .map(|fd| rustix::net::sockopt::tcp_nodelay(fd).unwrap_or(false))
        .collect()
}

/// Duplicates of this process's TCP sockets whose peer port is `port`.
fn sockets_to(port: u16) -> Vec<rustix::fd::OwnedFd> {
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};
    let (Ok(me), Ok(entries)) = (
        pidfd_open(getpid(), PidfdFlags::empty()),
        std::fs::read_dir("/proc/self/fd"),
    ) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|number| pidfd_getfd(&me, number, PidfdGetfdFlags::empty()).ok())
        .filter(|fd| {
            rustix::net::getpeername(fd)
                .ok()
                .flatten()
                .and_then(|a| std::net::SocketAddr::try_from(a).ok())
                .is_some_and(|peer| peer.port() == port)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn sets_the_option_on_sockets_to_the_port_only() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let other = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = server.local_addr().map(|a| a.port()).unwrap_or_default();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
        let bystander = TcpStream::connect(other.local_addr().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.nodelay().ok(), Some(false));
        assert_eq!(super::set_on_sockets_to(port), 1);
        assert_eq!(client.nodelay().ok(), Some(true));
        assert_eq!(bystander.nodelay().ok(), Some(false));
        assert_eq!(super::states_of_sockets_to(port), [true]);
    }
}
