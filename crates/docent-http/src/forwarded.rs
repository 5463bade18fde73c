//! The client's address behind trusted proxies. A request whose peer is one of
//! `server.trusted_proxies` gets, as its `ConnectInfo`, the address its `X-Forwarded-For`
//! names: read from the right (each proxy appends the address it received from), the first
//! one that is not itself a trusted proxy. Every per-address rule (rate limits, sign-in
//! lockouts, the widget's per-client limits) reads `ConnectInfo`, so they all see the client.
//! From any other peer the header is ignored: a client cannot pick the address it is limited by.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The trusted proxies, shared by the middleware.
pub(crate) type Proxies = Arc<[IpNet]>;

/// Replaces the peer address with the forwarded client's when the peer is a trusted proxy.
pub(crate) async fn client_address(
    State(proxies): State<Proxies>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = client_of(peer.ip(), req.headers(), &proxies);
        if client != peer.ip() {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        }
    }
    next.run(req).await
}

fn trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    proxies.iter().any(|n| n.contains(&ip))
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`1.2.3.4:5`, `[::1]:5`).
fn entry_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client a request from `peer` speaks for.
fn client_of(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if proxies.is_empty() || !trusted(proxies, peer) {
        return peer;
    }
    // Several headers read as one list, in order.
    let hops: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // An entry that is not an address (`unknown`, garbage) ends the trusted chain: what is
        // left of it cannot be vouched for, so the last proxy's view stands.
        let Some(ip) = entry_ip(hop) else { break };
        client = ip;
        if !trusted(proxies, ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        let p = nets(&["10.0.0.0/16"]);
        assert_eq!(
            client_of(ip("203.0.113.9"), &xff(&["1.1.1.1"]), &p),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_of(ip("10.0.0.5"), &xff(&["1.1.1.1"]), &[]),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let p = nets(&["10.0.0.0/16", "127.0.0.1/32"]);
        // The client put a forged entry first; the ALB appended the real address.
        let h = xff(&["6.6.6.6, 198.51.100.7", "10.0.3.4"]);
        assert_eq!(client_of(ip("127.0.0.1"), &h, &p), ip("198.51.100.7"));
        // Only proxies in the chain: the leftmost one seen.
        assert_eq!(
            client_of(ip("127.0.0.1"), &xff(&["10.0.0.1"]), &p),
            ip("10.0.0.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_of(ip("127.0.0.1"), &HeaderMap::new(), &p),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn ports_v6_and_garbage() {
        let p = nets(&["::1/128", "127.0.0.1/32"]);
        assert_eq!(
            client_of(ip("::1"), &xff(&["[2001:db8::1]:443"]), &p),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_of(ip("::ffff:127.0.0.1"), &xff(&["192.0.2.1:80"]), &p),
            ip("192.0.2.1")
        );
        // Garbage stops the walk at the last address vouched for.
        assert_eq!(
            client_of(ip("127.0.0.1"), &xff(&["192.0.2.1, unknown"]), &p),
            ip("127.0.0.1")
        );
    }
}
