//! The simulated phone's web server.

use crate::auth;
use crate::phone::SimPhone;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

const REALM: &str = "snom";

/// Binds the phone's address (port 0 the first time, the same port later) and serves.
pub(crate) async fn listen(phone: &Arc<SimPhone>) -> std::io::Result<()> {
    let addr = phone.addr();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    *phone.addr.lock().unwrap_or_else(PoisonError::into_inner) = bound;
    phone.set_setting("http_port", &bound.port().to_string());
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::clone(phone));
    let task = if phone.config.tls {
        let acceptor = tls_acceptor()?;
        phone.handle.spawn(serve_tls(listener, app, acceptor))
    } else {
        phone.handle.spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    };
    *phone.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    Ok(())
}

fn tls_acceptor() -> std::io::Result<tokio_rustls::TlsAcceptor> {
    let key =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(std::io::Error::other)?;
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(vec![cert], private)
    .map_err(std::io::Error::other)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, extra: Vec<(&'static str, String)>, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        "server",
        axum::http::HeaderValue::from_static("snom embedded"),
    );
    for (k, v) in extra {
        if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

async fn handle(
    State(phone): State<Arc<SimPhone>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    if phone.busy.swap(true, Ordering::AcqRel) {
        phone.note_parallel();
    }
    let _serial = phone.serial.lock().await;
    phone.busy.store(true, Ordering::Release);
    let response = serve(&phone, &method, &uri, &headers, &body);
    phone.busy.store(false, Ordering::Release);
    response
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(&b[i + 1..i + 3]), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(
    phone: &Arc<SimPhone>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    let mut st = phone.lock();
    st.requests.push(format!("{path}?{query}"));
    if st.requests.len() > 2000 {
        st.requests.drain(..1000);
    }
    let now = std::time::Instant::now();
    if st.rebooting_until.is_some_and(|t| now < t) {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![],
            "restarting\n".into(),
        );
    }
    if st.locked && st.locked_until.is_some_and(|t| now >= t) {
        // The lock-out is over: the phone counts from zero again.
        st.locked = false;
        st.locked_until = None;
        st.wrong_passwords = 0;
    }
    if st.locked {
        return reply(StatusCode::FORBIDDEN, vec![], "locked\n".into());
    }
    if let Some((user, pass)) = &phone.config.login {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
        let ok = match (given, phone.config.digest) {
            (None, _) => false,
            (Some(h), false) => {
                h == format!(
                    "Basic {}",
                    auth::base64(format!("{user}:{pass}").as_bytes())
                )
            }
            (Some(h), true) => {
                let ok = auth::digest_ok(h, method.as_str(), REALM, user, pass, &st.nonces);
                if ok {
                    // The phone counts wrong passwords until a login succeeds.
                    st.wrong_passwords = 0;
                }
                if !ok {
                    st.wrong_passwords += 1;
                    if st.wrong_passwords >= 3 {
                        st.locked = true;
                        st.locked_until = phone.config.lockout.map(|d| now + d);
                        return reply(StatusCode::FORBIDDEN, vec![], "locked\n".into());
                    }
                }
                ok
            }
        };
        if !ok {
            let challenge = if phone.config.digest {
                let nonce = auth::md5_hex(&format!("{}{}", st.requests.len(), phone.config.mac));
                st.nonces.push(nonce.clone());
                if st.nonces.len() > 8 {
                    st.nonces.remove(0);
                }
                format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5")
            } else {
                format!("Basic realm=\"{REALM}\"")
            };
            return reply(
                StatusCode::UNAUTHORIZED,
                vec![("www-authenticate", challenge)],
                "unauthorized\n".into(),
            );
        }
    }
    let pairs = query_pairs(query);
    match path {
        "/" => reply(
            StatusCode::OK,
            vec![("content-type", "text/html".into())],
            format!(
                "<html><title>{}</title><body>MAC {}</body></html>",
                phone.config.model, phone.config.mac
            ),
        ),
        "/command.htm" if st.refuse_commands.is_some() => {
            let status = st.refuse_commands.unwrap_or(500);
            reply(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                vec![],
                "refused\n".into(),
            )
        }
        "/command.htm" => {
            let identity = pairs
                .iter()
                .find(|(k, _)| k == "outgoing_uri")
                .map_or(0, |(_, v)| phone.identity_of(v));
            for (k, v) in &pairs {
                match k.as_str() {
                    "number" => {
                        phone.dial(&mut st, v, identity);
                    }
                    "key_dtmf" => st.dtmf.push(v.clone()),
                    "key" => {
                        for ev in v.split(';') {
                            let key = ev.split(',').next().unwrap_or("");
                            phone.key(&mut st, key);
                        }
                    }
                    _ => {}
                }
            }
            reply(StatusCode::OK, vec![], "<html>OK</html>".into())
        }
        "/dummy.htm" => {
            if pairs.iter().any(|(k, v)| k == "settings" && v == "save") {
                for (k, v) in pairs {
                    if k != "settings" && k != "store_settings" {
                        st.settings.insert(k, v);
                    }
                }
            }
            reply(StatusCode::OK, vec![], "<html>saved</html>".into())
        }
        "/settings.xml" if phone.config.settings_page => {
            let mut names: Vec<_> = st
                .settings
                .keys()
                .filter(|k| !k.contains("pass"))
                .cloned()
                .collect();
            names.sort();
            let mut xml = String::from(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<settings>\n<phone-settings>\n",
            );
            for n in names {
                let v = st.settings.get(&n).cloned().unwrap_or_default();
                let v = v
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                xml.push_str(&format!("<{n} perm=\"\">{v}</{n}>\n"));
            }
            xml.push_str("</phone-settings>\n</settings>\n");
            reply(
                StatusCode::OK,
                vec![("content-type", "application/xml".into())],
                xml,
            )
        }
        "/csta" if phone.config.csta && method == Method::POST => {
            let xml = crate::csta::serve_any(phone, &mut st, body);
            reply(
                StatusCode::OK,
                vec![("content-type", "application/xml".into())],
                xml,
            )
        }
        _ => reply(StatusCode::NOT_FOUND, vec![], "not found\n".into()),
    }
}
