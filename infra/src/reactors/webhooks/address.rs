//! The SSRF guard: webhook URLs may only reach globally routable addresses.
//!
//! A URL is checked when an endpoint is created or changed (every address its
//! host resolves to must be allowed), and again at connect time: the
//! delivery client resolves through [`GuardedResolver`], which drops
//! forbidden addresses, so the address a request connects to is one that
//! passed the check (no time-of-check / time-of-use gap for DNS rebinding).
//! IP-literal hosts never reach a resolver and are checked before sending.
//!
//! Forbidden: loopback, private (RFC 1918), link-local, carrier-grade NAT,
//! unique-local, multicast, documentation, benchmarking, reserved and every
//! other special-purpose block, IPv4 embedded in IPv6 judged as IPv4. The
//! operator may allow networks with `HERALD_WEBHOOK_ALLOW_NETS`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// An IP network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (a single host).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{raw:?} has an invalid prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Net {
    Net {
        addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        prefix,
    }
}

const fn v6(segments: [u16; 8], prefix: u8) -> Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Net {
        addr: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
        prefix,
    }
}

/// IANA's special-purpose IPv4 blocks (and multicast, reserved): not global.
const NOT_GLOBAL_V4: [Net; 15] = [
    v4(0, 0, 0, 0, 8),
    v4(10, 0, 0, 0, 8),
    v4(100, 64, 0, 0, 10),
    v4(127, 0, 0, 0, 8),
    v4(169, 254, 0, 0, 16),
    v4(172, 16, 0, 0, 12),
    v4(192, 0, 0, 0, 24),
    v4(192, 0, 2, 0, 24),
    v4(192, 88, 99, 0, 24),
    v4(192, 168, 0, 0, 16),
    v4(198, 18, 0, 0, 15),
    v4(198, 51, 100, 0, 24),
    v4(203, 0, 113, 0, 24),
    v4(224, 0, 0, 0, 4),
    v4(240, 0, 0, 0, 4),
];

/// Inside global unicast (2000::/3), the blocks that are not global.
const NOT_GLOBAL_V6: [Net; 5] = [
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
    v6([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
    // 6to4 and NAT64 carry an IPv4 address; judged by it below.
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
    v6([0x0064, 0xff9b, 0x0001, 0, 0, 0, 0, 0], 48),
];

/// Whether `ip` is a globally routable unicast address.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !NOT_GLOBAL_V4.iter().any(|n| n.contains(IpAddr::V4(v4))),
        IpAddr::V6(v6) => {
            if let Some(mapped) = v6.to_ipv4_mapped() {
                return is_global(IpAddr::V4(mapped));
            }
            let s = v6.segments();
            // NAT64 well-known prefix 64:ff9b::/96: the IPv4 address decides.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return is_global(IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15])));
            }
            // 6to4 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
            if s[0] == 0x2002 {
                let o = v6.octets();
                return is_global(IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5])));
            }
            let global_unicast = (s[0] & 0xe000) == 0x2000;
            global_unicast && !NOT_GLOBAL_V6.iter().any(|n| n.contains(IpAddr::V6(v6)))
        }
    }
}

/// Which addresses webhook deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow: Vec<Net>,
}

impl AddressPolicy {
    /// Global addresses, plus these networks.
    pub fn allowing(allow: Vec<Net>) -> Self {
        Self { allow }
    }

    /// A comma- or space-separated list of networks.
    pub fn parse_nets(raw: &str) -> Result<Vec<Net>, String> {
        raw.split([',', ' '])
            .filter(|s| !s.trim().is_empty())
            .map(Net::parse)
            .collect()
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        is_global(ip) || self.allow.iter().any(|n| n.contains(ip))
    }

    /// Resolves `url`'s host; every address must be permitted.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|_| "is not a valid URL".to_owned())?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| format!("the host {name} does not resolve"))?
                .map(|a| a.ip())
                .collect(),
            None => return Err("names no host".into()),
        };
        if addrs.is_empty() {
            return Err("the host does not resolve".into());
        }
        match addrs.iter().find(|ip| !self.permits(**ip)) {
            Some(ip) => Err(format!("resolves to {ip}, which is not a public address")),
            None => Ok(()),
        }
    }

    /// For an IP-literal URL (which no resolver sees): whether it is permitted.
    pub fn check_literal(&self, url: &url::Url) -> Result<(), String> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(format!("{ip} is not a public address"))
        }
    }
}

/// A DNS resolver that only yields permitted addresses.
pub struct GuardedResolver(pub Arc<AddressPolicy>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                let shown = found
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("blocked: {host} resolves to {shown}, which is not a public address")
                        .into();
                return Err(err);
            }
            let addrs: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn special_purpose_addresses_are_not_global() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2001:db8::1",
        ] {
            assert!(!is_global(ip(s)), "{s} counted as global");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_global(ip(s)), "{s} counted as not global");
        }
    }

    #[test]
    fn allowed_networks_open_exactly_their_range() {
        let nets =
            AddressPolicy::parse_nets("127.0.0.0/8, 10.1.0.0/16").unwrap_or_else(|e| panic!("{e}"));
        let policy = AddressPolicy::allowing(nets);
        assert!(policy.permits(ip("127.0.0.1")) && policy.permits(ip("10.1.200.1")));
        assert!(!policy.permits(ip("10.2.0.1")) && !policy.permits(ip("192.168.0.1")));
        assert!(policy.permits(ip("8.8.8.8")));
        assert!(AddressPolicy::parse_nets("10.0.0.0/33").is_err());
        assert!(AddressPolicy::parse_nets("nonsense").is_err());
    }

    #[tokio::test]
    async fn urls_are_checked_by_what_their_host_resolves_to() {
        let closed = AddressPolicy::default();
        assert!(closed.check_url("http://127.0.0.1:9/x").await.is_err());
        assert!(closed.check_url("http://localhost:9/x").await.is_err());
        assert!(closed.check_url("http://[::1]:9/x").await.is_err());
        let open = AddressPolicy::allowing(vec![v4(127, 0, 0, 0, 8)]);
        assert!(open.check_url("http://127.0.0.1:9/x").await.is_ok());
    }
}
