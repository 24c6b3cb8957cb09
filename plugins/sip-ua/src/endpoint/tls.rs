//! TLS as a stream wrapper for the connection layer (`tcp`): the listener's socket, the
//! client handshake (with the name the server's certificate must carry) and the server
//! handshake of accepted connections. Everything after the handshake is the same code as TCP.

use super::TransportError;
use crate::header::{NameAddr, Uri, Via};
use crate::message::Message;
use crate::tls::{describe_handshake_error, TlsContext};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Binds the TLS listener next to the UDP socket: on `port + 1` when the endpoint was given a
/// port (5061 beside 5060), else (or when that port is taken) on any free port.
pub(super) async fn bind_listener(
    udp: SocketAddr,
    configured_port: u16,
) -> std::io::Result<TcpListener> {
    if configured_port != 0 {
        if let Some(next) = configured_port.checked_add(1) {
            match TcpListener::bind(SocketAddr::new(udp.ip(), next)).await {
                Ok(l) => return Ok(l),
                Err(e) => tracing::warn!(
                    port = next,
                    error = %e,
                    "TLS listener: port taken, listening on a free port instead"
                ),
            }
        }
    }
    TcpListener::bind(SocketAddr::new(udp.ip(), 0)).await
}

/// The host whose certificate a new connection must check, from the first message it carries
/// (RFC 5922 §4, RFC 3261 §8.1.2): for a request, the top `Route` when it is a loose router
/// (`lr`), else the Request-URI; for a response, the top Via's sent-by host.
pub(super) fn next_hop_host(first: &[u8]) -> Option<String> {
    let (msg, _) = Message::parse_stream(first).ok()?;
    if msg.is_request() {
        let route = msg
            .header_values("Route")
            .next()
            .and_then(NameAddr::parse)
            .and_then(|n| Uri::parse(&n.uri))
            .filter(|u| u.params.has("lr"));
        let uri = match route {
            Some(r) => r,
            None => Uri::parse(msg.request_uri()?)?,
        };
        return Some(uri.host);
    }
    let via = msg.header_values("Via").next().and_then(Via::parse)?;
    Some(via.host)
}

/// Opens TLS on a connected TCP stream to `peer`, checking the certificate against the host
/// of `first`'s next hop (or the configured `server_name`).
pub(super) async fn connect(
    ctx: &TlsContext,
    stream: TcpStream,
    peer: SocketAddr,
    first: &[u8],
    limit: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TransportError> {
    let host = next_hop_host(first);
    let name: ServerName<'static> = host
        .as_deref()
        .and_then(|h| ctx.name_for(h))
        .or_else(|| ctx.name_for(&peer.ip().to_string()))
        .ok_or_else(|| TransportError::Tls {
            peer,
            reason: "no server name to check the certificate against".into(),
        })?;
    let shown = match &name {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    };
    let handshake = tokio::time::timeout(limit, ctx.connector().connect(name, stream)).await;
    match handshake {
        Ok(Ok(tls)) => {
            if ctx.insecure() {
                tracing::warn!(
                    %peer,
                    server_name = %shown,
                    "TLS: the certificate of {peer} was NOT verified (tls.insecure_skip_verify)"
                );
            }
            Ok(tls)
        }
        Ok(Err(e)) => Err(TransportError::Tls {
            peer,
            reason: format!("{} (expected name {shown})", describe_handshake_error(&e)),
        }),
        Err(_) => Err(TransportError::Tls {
            peer,
            reason: format!("no TLS handshake within {} s", limit.as_secs()),
        }),
    }
}

/// The server handshake of an accepted connection, bounded by `limit`.
pub(super) async fn accept(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    limit: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "incoming TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "incoming TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_hop_names_the_certificate() {
        let via = "Via: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKx\r\n";
        let head = "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\n";
        let req = |extra: &str| {
            format!(
                "INVITE sip:bob@pbx.example.com SIP/2.0\r\n{via}{extra}{head}CSeq: 1 INVITE\r\n\
                 Content-Length: 0\r\n\r\n"
            )
        };
        assert_eq!(
            next_hop_host(req("").as_bytes()).as_deref(),
            Some("pbx.example.com")
        );
        assert_eq!(
            next_hop_host(req("Route: <sips:proxy.example.com:5061;lr>\r\n").as_bytes()).as_deref(),
            Some("proxy.example.com")
        );
        // A strict router's Route does not name the next hop: the Request-URI does.
        assert_eq!(
            next_hop_host(req("Route: <sip:strict.example.com>\r\n").as_bytes()).as_deref(),
            Some("pbx.example.com")
        );
        let resp =
            format!("SIP/2.0 200 OK\r\n{via}{head}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(next_hop_host(resp.as_bytes()).as_deref(), Some("10.0.0.1"));
        assert_eq!(next_hop_host(b"\r\n\r\n"), None);
    }
}
