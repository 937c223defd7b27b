//! The guard against server-side request forgery for URLs that users give us (Web Push
//! endpoints): in production they must be `https` to a public address. It is checked when a
//! subscription is stored (the URL, and an IP literal in it) and again when a push is sent
//! (every address the host name resolves to, by the HTTP client's resolver), so a name that
//! later points at an internal address is refused too. Embedded mode, or
//! `PUSH_ALLOW_INSECURE=true`, allows `http` and loopback for tests and local development.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What user-given URLs may point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointPolicy {
    /// `https` to public addresses only.
    PublicHttps,
    /// Also `http`, loopback and private addresses.
    AllowInsecure,
}

/// Checks the scheme and host of `url`; the reason when refused.
pub fn check_endpoint(url: &str, policy: EndpointPolicy) -> Result<(), &'static str> {
    let parsed = url::Url::parse(url).map_err(|_| "must be an absolute URL")?;
    match (parsed.scheme(), policy) {
        ("https", _) | ("http", EndpointPolicy::AllowInsecure) => {}
        _ if policy == EndpointPolicy::PublicHttps => return Err("must be an https URL"),
        _ => return Err("must be an http(s) URL"),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials");
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            if policy == EndpointPolicy::PublicHttps && (name == "localhost" || name.ends_with(".localhost")) {
                return Err("must point at a public address");
            }
            return Ok(());
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        None => return Err("must name a host"),
    };
    if policy == EndpointPolicy::PublicHttps && !is_public(host) {
        return Err("must point at a public address");
    }
    Ok(())
}

/// Whether `ip` is a globally routable unicast address (not loopback, private, link-local,
/// shared, documentation, benchmarking, multicast or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)) // NAT64: an IPv4 address in disguise
}

/// A DNS resolver for the push client that drops non-public addresses (and fails when none
/// is left): the send-time half of the guard.
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to no public address").into();
                return Err(refused);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_wants_https_to_public_addresses() {
        let strict = EndpointPolicy::PublicHttps;
        assert!(check_endpoint("https://fcm.googleapis.com/fcm/send/abc", strict).is_ok());
        assert!(check_endpoint("https://93.184.216.34/push", strict).is_ok());
        for refused in [
            "http://fcm.googleapis.com/x",
            "https://localhost/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://100.64.0.1/x",
            "https://user:pw@push.example.com/x",
            "ftp://push.example.com/x",
            "not a url",
        ] {
            assert!(check_endpoint(refused, strict).is_err(), "{refused}");
        }
        let loose = EndpointPolicy::AllowInsecure;
        assert!(check_endpoint("http://127.0.0.1:9000/push/1", loose).is_ok());
        assert!(check_endpoint("ftp://127.0.0.1/x", loose).is_err());
    }

    #[test]
    fn public_means_globally_routable() {
        assert!(is_public("8.8.8.8".parse().unwrap()));
        assert!(is_public("2a00:1450::1".parse().unwrap()));
        for private in [
            "0.0.0.0",
            "127.0.0.1",
            "172.16.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "fe80::1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }
}
