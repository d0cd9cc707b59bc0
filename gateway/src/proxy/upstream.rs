//! Upstream side of a request: weighted target choice with passive health, the Pingora peer
//! (timeouts, keep-alive pool), and what a Pingora error means for metrics, retries and the
//! answer.

use crate::holder::Live;
use crate::metrics::UpstreamErrorKind;
use gatehouse_registry::snapshot::{TargetKind, UpstreamEntry};
use pingora::upstreams::peer::{HttpPeer, HttpUpstreamRequestPolicy};
use pingora::{Error, ErrorSource, ErrorType};
use rand::Rng;
use std::net::SocketAddr;
use std::time::Duration;

/// How long an idle pooled upstream connection is kept. Shorter than the usual upstream
/// keep-alive timeouts (nginx 75 s, Node 5 s is the outlier), so the gateway closes first.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// The chosen target of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    /// Index in the upstream's targets.
    pub index: usize,
    /// Slot in the snapshot's target list (health, addresses).
    pub slot: usize,
    pub mock: bool,
}

/// Picks a target by weight, skipping ejected and unresolved targets and those already
/// `tried`. On a first attempt (`tried` empty) it falls back to any target when all are
/// unhealthy; on a retry it returns `None` rather than reuse a tried target.
pub fn choose(live: &Live, up: &UpstreamEntry, tried: &[usize]) -> Option<Chosen> {
    if up.total_weight == 0 {
        return None;
    }
    let roll = rand::rng().random_range(0..up.total_weight);
    let unusable = |slot: usize, kind: &TargetKind| {
        live.health.get(slot).is_some_and(|h| h.is_ejected())
            || (matches!(kind, TargetKind::Http(_))
                && live.addrs.get(slot).is_none_or(Option::is_none))
    };
    let index = up.choose(roll, |t| {
        tried.contains(&t.slot) || unusable(t.slot, &t.kind)
    })?;
    let t = up.targets.get(index)?;
    if tried.contains(&t.slot) {
        return None;
    }
    Some(Chosen {
        index,
        slot: t.slot,
        mock: t.kind == TargetKind::Mock,
    })
}

/// Whether another target remains for a retry.
pub fn has_untried(live: &Live, up: &UpstreamEntry, tried: &[usize]) -> bool {
    up.targets.iter().any(|t| {
        t.weight > 0
            && !tried.contains(&t.slot)
            && matches!(t.kind, TargetKind::Http(_))
            && live.addrs.get(t.slot).is_some_and(Option::is_some)
            && !live.health.get(t.slot).is_some_and(|h| h.is_ejected())
    })
}

/// The Pingora peer for an HTTP target at `addr`.
pub fn peer(addr: SocketAddr, up: &UpstreamEntry) -> HttpPeer {
    let mut p = HttpPeer::new(addr, false, String::new());
    p.options.connection_timeout = Some(up.connect_timeout);
    p.options.total_connection_timeout = Some(up.connect_timeout);
    p.options.read_timeout = Some(up.read_timeout);
    p.options.write_timeout = Some(up.read_timeout);
    p.options.idle_timeout = Some(POOL_IDLE);
    // Strip hop-by-hop fields and never tunnel an upgrade through a governance gateway.
    p.options.http_upstream_request_policy = HttpUpstreamRequestPolicy::deny_upgrades();
    p
}

/// The kind of an upstream failure; `None` when the error did not come from the upstream
/// (the client went away, or the gateway itself failed).
pub fn classify(e: &Error) -> Option<UpstreamErrorKind> {
    use ErrorType::*;
    if *e.esource() != ErrorSource::Upstream {
        return None;
    }
    Some(match e.etype() {
        ConnectTimedout => UpstreamErrorKind::ConnectTimeout,
        ConnectRefused => UpstreamErrorKind::ConnectRefused,
        ConnectNoRoute | ConnectError | BindError | SocketError | ConnectProxyFailure
        | TLSHandshakeFailure | TLSHandshakeTimedout | HandshakeError | InvalidCert => {
            UpstreamErrorKind::ConnectOther
        }
        ReadTimedout => UpstreamErrorKind::ReadTimeout,
        WriteTimedout => UpstreamErrorKind::WriteTimeout,
        _ => UpstreamErrorKind::Protocol,
    })
}
