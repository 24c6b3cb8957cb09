//! Digest authentication for SIP (RFC 3261 §22, RFC 7616 algorithms as used by RFC 8760).
//!
//! Sans-I/O: parse a `WWW-Authenticate`/`Proxy-Authenticate` challenge, pick the strongest one
//! we support when several are offered (RFC 8760 §2.4), and compute the `Authorization` /
//! `Proxy-Authorization` value. MD5, SHA-256 and SHA-512-256 with their `-sess` variants;
//! `qop` lists (`auth` preferred, `auth-int` hashes the body); no `qop` = RFC 2069 style.

use crate::message::Message;
use md5::Md5;
use sha2::{Digest as _, Sha256, Sha512_256};
use std::fmt::Write as _;
use thiserror::Error;

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The header is not a Digest challenge or lacks realm/nonce.
    #[error("unreadable digest challenge")]
    Unreadable,
    /// Only algorithms or qop values we do not implement were offered.
    #[error("unsupported digest algorithm or qop: {0}")]
    Unsupported(String),
    /// The challenge's realm is not the configured one (and the realm is not ignored).
    #[error("challenge realm {offered:?} is not the configured realm {expected:?}")]
    RealmMismatch {
        /// Realm in the challenge.
        offered: String,
        /// Realm configured for the credentials.
        expected: String,
    },
}

/// A digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// MD5 (RFC 2617).
    Md5,
    /// SHA-256 (RFC 7616).
    Sha256,
    /// SHA-512/256 (RFC 7616).
    Sha512_256,
}

impl Algorithm {
    fn parse(token: &str) -> Option<(Algorithm, bool)> {
        let upper = token.trim().to_ascii_uppercase();
        let (base, sess) = match upper.strip_suffix("-SESS") {
            Some(b) => (b.to_owned(), true),
            None => (upper, false),
        };
        let alg = match base.as_str() {
            "MD5" => Algorithm::Md5,
            "SHA-256" => Algorithm::Sha256,
            "SHA-512-256" => Algorithm::Sha512_256,
            _ => return None,
        };
        Some((alg, sess))
    }

    fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => to_hex(&Md5::digest(data)),
            Algorithm::Sha256 => to_hex(&Sha256::digest(data)),
            Algorithm::Sha512_256 => to_hex(&Sha512_256::digest(data)),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A parsed Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// opaque, echoed back
    pub opaque: Option<String>,
    /// algorithm
    pub algorithm: Algorithm,
    /// `-sess` variant
    pub sess: bool,
    /// qop values offered (empty = none, RFC 2069 style)
    pub qop: Vec<String>,
    /// stale=true: the nonce expired, the credentials were fine
    pub stale: bool,
}

/// Splits `a=1, b="x,y", c=z` into pairs, honouring quotes and backslash escapes.
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.trim().is_empty() {
            if chars.next().is_none() {
                break;
            }
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        _ => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        if out.len() > 64 {
            break;
        }
    }
    out
}

impl Challenge {
    /// Parses one challenge header value.
    ///
    /// # Errors
    /// [`AuthError::Unreadable`] if it is not Digest or lacks realm/nonce,
    /// [`AuthError::Unsupported`] for an unknown algorithm.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').ok_or(AuthError::Unreadable)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthError::Unreadable);
        }
        let params = auth_params(rest);
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let realm = get("realm").ok_or(AuthError::Unreadable)?;
        let nonce = get("nonce").ok_or(AuthError::Unreadable)?;
        let (algorithm, sess) = match get("algorithm") {
            None => (Algorithm::Md5, false),
            Some(a) => Algorithm::parse(&a).ok_or(AuthError::Unsupported(a))?,
        };
        let qop = get("qop")
            .map(|q| {
                q.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Challenge {
            realm,
            nonce,
            opaque: get("opaque"),
            algorithm,
            sess,
            qop,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Picks the challenge to answer out of several header values: the strongest supported
    /// algorithm (SHA-512-256 > SHA-256 > MD5), the first offered among equals (RFC 8760 §2.4).
    ///
    /// # Errors
    /// The error of the last unreadable value when none is usable.
    pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Challenge, AuthError> {
        let mut best: Option<Challenge> = None;
        let mut last_err = AuthError::Unreadable;
        for v in values {
            match Challenge::parse(v) {
                Ok(c) => {
                    if best.as_ref().is_none_or(|b| c.algorithm > b.algorithm) {
                        best = Some(c);
                    }
                }
                Err(e) => last_err = e,
            }
        }
        best.ok_or(last_err)
    }
}

/// Who we are towards the server. The password is only ever used for hashing.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Authentication user name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Realm the credentials belong to; `None` = answer any realm (SIPTAPI's "ignore realm").
    pub realm: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .field("realm", &self.realm)
            .finish()
    }
}

/// What the answer is computed over.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The request method.
    pub method: &'a str,
    /// The digest-uri: the Request-URI as sent.
    pub uri: &'a str,
    /// The request body (for `auth-int`).
    pub body: &'a [u8],
}

/// Computes the header value answering `challenge`. `cnonce` and `nc` are inputs so that the
/// computation is deterministic and testable; callers pass a random cnonce and count nc per
/// nonce.
///
/// # Errors
/// [`AuthError::RealmMismatch`] when the credentials are bound to another realm;
/// [`AuthError::Unsupported`] when the qop list holds nothing we implement.
pub fn authorization(
    challenge: &Challenge,
    creds: &Credentials,
    req: RequestParts<'_>,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError> {
    if let Some(expected) = &creds.realm {
        if *expected != challenge.realm {
            return Err(AuthError::RealmMismatch {
                offered: challenge.realm.clone(),
                expected: expected.clone(),
            });
        }
    }
    let qop = if challenge.qop.is_empty() {
        None
    } else if challenge.qop.iter().any(|q| q == "auth") {
        Some("auth")
    } else if challenge.qop.iter().any(|q| q == "auth-int") {
        Some("auth-int")
    } else {
        return Err(AuthError::Unsupported(challenge.qop.join(",")));
    };
    let h = |s: &str| challenge.algorithm.hex(s.as_bytes());
    let mut ha1 = h(&format!(
        "{}:{}:{}",
        creds.username, challenge.realm, creds.password
    ));
    if challenge.sess {
        ha1 = h(&format!("{ha1}:{}:{cnonce}", challenge.nonce));
    }
    let ha2 = if qop == Some("auth-int") {
        let body_hash = challenge.algorithm.hex(req.body);
        h(&format!("{}:{}:{body_hash}", req.method, req.uri))
    } else {
        h(&format!("{}:{}", req.method, req.uri))
    };
    let nc_text = format!("{nc:08x}");
    let response = match qop {
        Some(q) => h(&format!(
            "{ha1}:{}:{nc_text}:{cnonce}:{q}:{ha2}",
            challenge.nonce
        )),
        None => h(&format!("{ha1}:{}:{ha2}", challenge.nonce)),
    };
    let alg = if challenge.sess {
        format!("{}-sess", challenge.algorithm.token())
    } else {
        challenge.algorithm.token().to_owned()
    };
    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={alg}",
        quote_safe(&creds.username),
        quote_safe(&challenge.realm),
        quote_safe(&challenge.nonce),
        quote_safe(req.uri)
    );
    if let Some(q) = qop {
        let _ = write!(out, ", qop={q}, nc={nc_text}, cnonce=\"{cnonce}\"");
    }
    if let Some(o) = &challenge.opaque {
        let _ = write!(out, ", opaque=\"{}\"", quote_safe(o));
    }
    Ok(out)
}

fn quote_safe(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The challenge header a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`) carries, and
/// the header that answers it.
fn header_names(resp: &Message) -> (&'static str, &'static str) {
    if resp.code() == Some(407) {
        ("Proxy-Authenticate", "Proxy-Authorization")
    } else {
        ("WWW-Authenticate", "Authorization")
    }
}

/// True when a 401/407 says our last answer was right but its nonce has expired (`stale=true`),
/// so answering once more is not a refusal of our credentials.
pub fn is_stale(resp: &Message) -> bool {
    resp.header_values_raw(header_names(resp).0)
        .any(|v| Challenge::parse(v).is_ok_and(|c| c.stale))
}

/// Answers the strongest challenge of a 401/407 to `req`: the header (name, value) to add to
/// the request sent again.
///
/// # Errors
/// [`AuthError`] when no challenge can be answered with `creds`.
pub fn answer_challenge(
    req: &Message,
    resp: &Message,
    creds: &Credentials,
) -> Result<(&'static str, String), AuthError> {
    let (challenge_name, auth_name) = header_names(resp);
    let challenge = Challenge::choose(resp.header_values_raw(challenge_name))?;
    let method = req.method().map(|m| m.to_string()).unwrap_or_default();
    let value = authorization(
        &challenge,
        creds,
        RequestParts {
            method: &method,
            uri: req.request_uri().unwrap_or_default(),
            body: &req.body,
        },
        &new_cnonce(),
        1,
    )?;
    Ok((auth_name, value))
}

/// A fresh random client nonce.
pub fn new_cnonce() -> String {
    format!("{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        // RFC 7616 §3.9.1 example user.
        Credentials {
            username: "Mufasa".into(),
            password: "Circle of Life".into(),
            realm: None,
        }
    }

    fn response_of(header: &str) -> String {
        let i = header.find("response=\"").expect("has response") + 10;
        header[i..i + header[i..].find('"').expect("closed")].to_owned()
    }

    const RFC7616_URI: &str = "/dir/index.html";

    #[test]
    fn rfc7616_md5_vector() {
        let ch = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=MD5, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .expect("parses");
        let v = authorization(
            &ch,
            &creds(),
            RequestParts {
                method: "GET",
                uri: RFC7616_URI,
                body: b"",
            },
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        )
        .expect("answers");
        assert_eq!(response_of(&v), "8ca523f5e9506fed4657c9700eebdbec");
        assert!(v.contains("qop=auth, nc=00000001"));
        assert!(v.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""));
    }

    #[test]
    fn rfc7616_sha256_vector() {
        let ch = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .expect("parses");
        let v = authorization(
            &ch,
            &creds(),
            RequestParts {
                method: "GET",
                uri: RFC7616_URI,
                body: b"",
            },
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        )
        .expect("answers");
        assert_eq!(
            response_of(&v),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert!(v.contains("algorithm=SHA-256"));
    }

    #[test]
    fn sip_md5_without_qop_and_realm_binding() {
        // Independently computed with Python hashlib:
        // md5(md5("alice:kam:secret"):abc:md5("INVITE:sip:bob@127.0.0.1"))
        let ch = Challenge::parse("Digest realm=\"kam\", nonce=\"abc\"").expect("parses");
        let c = Credentials {
            username: "alice".into(),
            password: "secret".into(),
            realm: None,
        };
        let v = authorization(
            &ch,
            &c,
            RequestParts {
                method: "INVITE",
                uri: "sip:bob@127.0.0.1",
                body: b"",
            },
            "x",
            1,
        )
        .expect("answers");
        assert_eq!(response_of(&v), "8cb29d9df2309cdb3a0d1d017b3a469d");
        assert!(!v.contains("qop"));
        let bound = Credentials {
            realm: Some("other".into()),
            ..c
        };
        assert!(matches!(
            authorization(
                &ch,
                &bound,
                RequestParts {
                    method: "INVITE",
                    uri: "sip:x",
                    body: b""
                },
                "x",
                1
            ),
            Err(AuthError::RealmMismatch { .. })
        ));
    }

    #[test]
    fn chooses_strongest_and_rejects_unknown() {
        let ch = Challenge::choose([
            "Digest realm=\"r\", nonce=\"1\", algorithm=MD5",
            "Digest realm=\"r\", nonce=\"2\", algorithm=SHA-256",
            "Digest realm=\"r\", nonce=\"3\", algorithm=FOO",
        ])
        .expect("one usable");
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"1\", algorithm=FOO"),
            Err(AuthError::Unsupported(_))
        ));
        assert_eq!(
            Challenge::parse("Basic realm=\"r\""),
            Err(AuthError::Unreadable)
        );
        assert!(format!("{:?}", creds()).contains("***"));
        assert!(!format!("{:?}", creds()).contains("Circle"));
    }
}
