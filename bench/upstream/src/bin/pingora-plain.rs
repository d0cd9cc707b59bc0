//! The benchmark's "bare Pingora" reference: a `ProxyHttp` with no policy at all, forwarding
//! every request to one upstream over the same pooled keep-alive connections and with the same
//! peer options and server settings as a Gatehouse node (one thread, no work stealing, the
//! same connect/read/idle timeouts). The distance between it and nginx is Pingora's own
//! per-request cost; the distance between it and `gatehouse` is what governance costs.
//!
//! Run: `pingora-plain 127.0.0.1:18003 127.0.0.1:18000` (listen, upstream).

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;
use std::time::Duration;

struct Plain {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Plain {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // The options of `gateway::proxy::upstream::peer`, so only the policies differ.
        let mut p = HttpPeer::new(self.upstream, false, String::new());
        p.options.connection_timeout = Some(Duration::from_secs(2));
        p.options.total_connection_timeout = Some(Duration::from_secs(2));
        p.options.read_timeout = Some(Duration::from_secs(30));
        p.options.write_timeout = Some(Duration::from_secs(30));
        p.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(p))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: pingora-plain LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let Ok(upstream) = upstream.parse() else {
        eprintln!("UPSTREAM must be an ip:port, got {upstream}");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let mut service = http_proxy_service(&server.configuration, Plain { upstream });
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever();
}
