//! Basic and Digest checks as the phone does them, with the Digest lock-out.

use md5::{Digest, Md5};

/// Base64 (standard alphabet, padded).
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Lower-case hex MD5.
pub fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The parameters of a Digest `Authorization` header.
pub fn digest_params(header: &str) -> Option<std::collections::HashMap<String, String>> {
    let rest = header.trim_start().strip_prefix("Digest ")?;
    let mut map = std::collections::HashMap::new();
    let mut s = rest;
    loop {
        s = s.trim_start_matches([',', ' ']);
        if s.is_empty() {
            break;
        }
        let (name, after) = s.split_once('=')?;
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        map.insert(name.trim().to_ascii_lowercase(), value.to_owned());
        s = next;
    }
    Some(map)
}

/// Whether a Digest answer is right for `user`/`pass` and one of `nonces`.
pub fn digest_ok(
    header: &str,
    method: &str,
    realm: &str,
    user: &str,
    pass: &str,
    nonces: &[String],
) -> bool {
    let Some(p) = digest_params(header) else {
        return false;
    };
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("username") != user || get("realm") != realm || !nonces.iter().any(|n| n == get("nonce"))
    {
        return false;
    }
    let ha1 = md5_hex(&format!("{user}:{realm}:{pass}"));
    let ha2 = md5_hex(&format!("{method}:{}", get("uri")));
    let expected = if get("qop").is_empty() {
        md5_hex(&format!("{ha1}:{}:{ha2}", get("nonce")))
    } else {
        md5_hex(&format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            get("nonce"),
            get("nc"),
            get("cnonce"),
            get("qop")
        ))
    };
    expected == get("response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_params() {
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(b"ab"), "YWI=");
        let p = digest_params(r#"Digest username="a", realm="snom", nc=00000001, qop=auth"#)
            .expect("parses");
        assert_eq!(p.get("username").map(String::as_str), Some("a"));
        assert_eq!(p.get("nc").map(String::as_str), Some("00000001"));
    }
}
