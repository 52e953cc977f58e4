//! The edge's per-request services, shared by every request: the session check, the
//! throttle of account mutations, the graphql-ws message rate, and which peers' forwarded
//! addresses are believed.

use crate::session::Sessions;
use crate::throttle::{Throttle, ThrottleArgs};
use crate::ws::WsLimiter;
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The edge's per-request services, shared by every request.
#[derive(Clone)]
pub struct Edge {
    pub sessions: Sessions,
    pub throttle: Arc<Throttle>,
    pub ws: WsLimiter,
    /// None: trust every peer's `x-forwarded-for`.
    pub trusted_proxies: Option<Vec<IpAddr>>,
}

impl Edge {
    /// `trusted_proxies`: IPs, or `any` to believe every peer.
    pub fn new(
        session_cache: Duration,
        throttle: ThrottleArgs,
        ws_messages_per_second: u32,
        trusted_proxies: &[String],
    ) -> Self {
        let trusted_proxies = if trusted_proxies.iter().any(|p| p.trim() == "any") {
            None
        } else {
            Some(
                trusted_proxies
                    .iter()
                    .filter_map(|p| p.trim().parse().ok())
                    .collect(),
            )
        };
        Self {
            sessions: Sessions::new(session_cache),
            throttle: Arc::new(Throttle::new(throttle)),
            ws: WsLimiter::new(ws_messages_per_second),
            trusted_proxies,
        }
    }

    /// The client's address: the hop Envoy appended to `x-forwarded-for` when the peer is a
    /// trusted proxy, else the peer's own address.
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
        let peer_ip = peer.map(|p| p.ip());
        let trusted = match (&self.trusted_proxies, peer_ip) {
            (None, _) => true,
            (Some(list), Some(ip)) => list.contains(&ip),
            (Some(_), None) => false,
        };
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
            .and_then(|v| v.parse::<IpAddr>().ok());
        match (trusted, forwarded, peer_ip) {
            (true, Some(ip), _) => ip.to_string(),
            (_, _, Some(ip)) => ip.to_string(),
            _ => "unknown".into(),
        }
    }
}
