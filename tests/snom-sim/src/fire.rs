//! Reporting to the host: Action URLs (variable substitution and a minimal HTTP/1.1 GET over
//! loopback) and uaCSTA events (INFO in the SIP session), in the order the phone produced
//! them: one queue per phone, each report finished before the next goes out.

use crate::phone::SimPhone;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// One report.
#[derive(Debug)]
pub(crate) enum Fire {
    /// An Action URL, substituted.
    Url(String),
    /// A CSTA event for the uaCSTA session.
    Csta(String),
}

pub(crate) async fn fire_loop(
    phone: Weak<SimPhone>,
    mut rx: mpsc::UnboundedReceiver<Fire>,
    firing: Arc<tokio::sync::Semaphore>,
) {
    while let Some(report) = rx.recv().await {
        let Ok(_permit) = firing.acquire().await else {
            return;
        };
        match report {
            Fire::Url(url) => {
                let local = phone.upgrade().map(|p| p.addr().ip());
                let status = get_from(&url, local, Duration::from_secs(5)).await;
                match phone.upgrade() {
                    Some(p) => p.record_fired(url, status),
                    None => return,
                }
            }
            Fire::Csta(xml) => {
                let side = match phone.upgrade() {
                    Some(p) => p.sip.lock().unwrap_or_else(PoisonError::into_inner).clone(),
                    None => return,
                };
                if let Some(side) = side {
                    side.send_event(xml).await;
                }
            }
        }
    }
}

/// Replaces `$name` (names of letters, digits, `_` and `-`) with `vars[name]`, percent-encoded;
/// unknown names become empty, as on the phone.
pub fn substitute(template: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut name = String::new();
        while let Some(&(_, n)) = chars.peek() {
            if n.is_ascii_alphanumeric() || n == '_' || n == '-' {
                name.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if let Some(v) = vars.get(&name) {
            for b in v.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@' | b':')
                {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

/// GETs an `http://host:port/path?query` URL; returns the status code.
pub async fn get(url: &str, timeout: Duration) -> Option<u16> {
    get_from(url, None, timeout).await
}

/// Like [`get`], with the client socket bound to `local` (a phone on 127.0.0.2 calls from
/// 127.0.0.2, as a real phone calls from its own address).
pub async fn get_from(
    url: &str,
    local: Option<std::net::IpAddr>,
    timeout: Duration,
) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let work = async {
        let mut stream = match local {
            Some(ip) => {
                let remote = tokio::net::lookup_host(authority).await.ok()?.next()?;
                let socket = if remote.is_ipv4() {
                    tokio::net::TcpSocket::new_v4().ok()?
                } else {
                    tokio::net::TcpSocket::new_v6().ok()?
                };
                socket.bind(std::net::SocketAddr::new(ip, 0)).ok()?;
                socket.connect(remote).await.ok()?
            }
            None => tokio::net::TcpStream::connect(authority).await.ok()?,
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33)\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(timeout, work).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes() {
        let mut v = HashMap::new();
        v.insert("call-id".to_owned(), "x y".to_owned());
        v.insert("mac".to_owned(), "000413000001".to_owned());
        assert_eq!(
            substitute("a?c=$call-id&m=$mac&u=$unknown&z=1", &v),
            "a?c=x%20y&m=000413000001&u=&z=1"
        );
    }
}
