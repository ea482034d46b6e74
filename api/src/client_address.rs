//! Who a request came from, for the per-address limits: the TCP peer, or — when the peer is a
//! proxy the operator trusts (`--trusted-proxies`, an ingress controller or load balancer) —
//! the client that proxy says it forwarded for. Without trusted proxies every client behind an
//! ingress would share the ingress's address, and one client's wrong passwords would lock out
//! everyone; with them, a client can still not choose its address by sending the header itself.

use std::{net::IpAddr, str::FromStr};

use crate::{Error, Result};

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = || {
            Error::Invalid(format!(
                "{text:?} is not a network: write it as 10.0.0.0/8, fd00::/8 or one address"
            ))
        };
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| invalid())?,
            None => bits,
        };
        if prefix > bits {
            return Err(invalid());
        }
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is in the network (an IPv4 address given as IPv6, `::ffff:a.b.c.d`, too).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client of a request that reached us from `peer` with the `X-Forwarded-For` header
/// `forwarded_for`: the peer itself unless it is a trusted proxy; then, reading the header from
/// its end (each proxy appends the address it received from), the first address that is not a
/// trusted proxy. A header that does not parse is not believed.
pub fn resolve(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|cidr| cidr.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        let Ok(hop) = hop.trim().parse::<IpAddr>() else {
            return client;
        };
        client = hop;
        if !is_trusted(hop) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let private: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(private.contains(ip("10.1.2.3")));
        assert!(private.contains(ip("::ffff:10.1.2.3")));
        assert!(!private.contains(ip("11.0.0.1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let everything: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "ten", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_end() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        // No trusted proxy: the header is the client's own claim and is ignored.
        assert_eq!(
            resolve(ip("203.0.113.9"), Some("198.51.100.1"), &trusted),
            ip("203.0.113.9")
        );
        // Through the ingress: the address the ingress appended.
        assert_eq!(
            resolve(ip("10.0.0.5"), Some("198.51.100.1, 203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        // Through two trusted proxies.
        assert_eq!(
            resolve(ip("10.0.0.5"), Some("203.0.113.9, 10.0.0.7"), &trusted),
            ip("203.0.113.9")
        );
        // A trusted peer with no header, or a header that does not parse.
        assert_eq!(resolve(ip("10.0.0.5"), None, &trusted), ip("10.0.0.5"));
        assert_eq!(
            resolve(ip("10.0.0.5"), Some("garbage"), &trusted),
            ip("10.0.0.5")
        );
        // No proxies trusted at all: always the peer.
        assert_eq!(
            resolve(ip("10.0.0.5"), Some("203.0.113.9"), &[]),
            ip("10.0.0.5")
        );
    }
}
