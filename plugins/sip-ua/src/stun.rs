//! A small STUN client (RFC 5389), sans-I/O: the Binding request that asks a STUN server which
//! address our UDP socket's packets come from (the NAT's mapping), the decoding of its answer
//! (XOR-MAPPED-ADDRESS, or the classic MAPPED-ADDRESS of RFC 3489 servers), and the
//! retransmission schedule of RFC 5389 §7.2.1.
//!
//! Decision: written here rather than taken from a crate. tapir needs one request type and two
//! attributes without authentication; the codec is about 200 lines and fits the endpoint's
//! socket (STUN and SIP share the SIP port, so the mapping learned is the SIP socket's own,
//! RFC 5626 §8 demultiplexing) without a second I/O layer. The endpoint sends what these
//! functions build and hands back what [`is_stun`] recognises.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use thiserror::Error;

/// The magic cookie of RFC 5389 §6.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Length of the fixed header.
const HEADER: usize = 20;
/// Binding request, success response, error response (RFC 5389 §6, §18.1).
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
/// Attributes (RFC 5389 §18.2).
const MAPPED_ADDRESS: u16 = 0x0001;
const ERROR_CODE: u16 = 0x0009;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const SOFTWARE: u16 = 0x8022;

/// The 96-bit transaction ID of a STUN transaction.
pub type TransactionId = [u8; 12];

/// A fresh random transaction ID.
pub fn new_transaction_id() -> TransactionId {
    let mut id = [0u8; 12];
    for b in &mut id {
        *b = fastrand::u8(..);
    }
    id
}

/// A Binding request with a SOFTWARE attribute naming tapir.
pub fn binding_request(id: &TransactionId) -> Vec<u8> {
    let software = b"tapir";
    let padded = software.len().div_ceil(4) * 4;
    let length = 4 + padded;
    let mut out = Vec::with_capacity(HEADER + length);
    out.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    out.extend_from_slice(&(length as u16).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&SOFTWARE.to_be_bytes());
    out.extend_from_slice(&(software.len() as u16).to_be_bytes());
    out.extend_from_slice(software);
    out.resize(HEADER + length, 0);
    out
}

/// True when `bytes` look like a STUN message (RFC 5389 §6: the two top bits zero, the magic
/// cookie, a length that is a multiple of four and matches the datagram). SIP never starts
/// with a byte below 0x40, so the two can share a socket.
pub fn is_stun(bytes: &[u8]) -> bool {
    if bytes.len() < HEADER || bytes[0] & 0xC0 != 0 {
        return false;
    }
    let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    length % 4 == 0 && HEADER + length == bytes.len() && bytes[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// A decoded answer to a Binding request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingResponse {
    /// Success: the address the server saw the request come from.
    Success {
        /// The transaction it answers.
        id: TransactionId,
        /// XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS.
        mapped: SocketAddr,
    },
    /// The server refused the request.
    Error {
        /// The transaction it answers.
        id: TransactionId,
        /// The error code (300..=699).
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
}

impl BindingResponse {
    /// The transaction the response answers.
    pub fn id(&self) -> &TransactionId {
        match self {
            BindingResponse::Success { id, .. } | BindingResponse::Error { id, .. } => id,
        }
    }
}

/// Why bytes are not a usable Binding response.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StunError {
    /// Not a STUN message at all.
    #[error("not a STUN message")]
    NotStun,
    /// A STUN message, but not a Binding response (a request, an indication, another method).
    #[error("not a Binding response (type {0:#06x})")]
    NotBindingResponse(u16),
    /// An attribute runs past the end, or an address attribute is malformed.
    #[error("malformed attribute {0:#06x}")]
    Malformed(u16),
    /// A success response without a mapped address.
    #[error("no (XOR-)MAPPED-ADDRESS in the Binding response")]
    NoAddress,
}

/// Decodes a Binding response (success or error).
///
/// # Errors
/// [`StunError`] for anything else.
pub fn parse_response(bytes: &[u8]) -> Result<BindingResponse, StunError> {
    if !is_stun(bytes) {
        return Err(StunError::NotStun);
    }
    let kind = u16::from_be_bytes([bytes[0], bytes[1]]);
    if kind != BINDING_SUCCESS && kind != BINDING_ERROR {
        return Err(StunError::NotBindingResponse(kind));
    }
    let mut id = [0u8; 12];
    id.copy_from_slice(&bytes[8..HEADER]);
    let mut xor_mapped = None;
    let mut mapped = None;
    let mut error = None;
    let mut at = HEADER;
    while at + 4 <= bytes.len() {
        let attr = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let value = bytes
            .get(at + 4..at + 4 + len)
            .ok_or(StunError::Malformed(attr))?;
        match attr {
            XOR_MAPPED_ADDRESS if xor_mapped.is_none() => {
                xor_mapped = Some(address(value, Some(&id)).ok_or(StunError::Malformed(attr))?);
            }
            MAPPED_ADDRESS if mapped.is_none() => {
                mapped = Some(address(value, None).ok_or(StunError::Malformed(attr))?);
            }
            ERROR_CODE if error.is_none() && value.len() >= 4 => {
                let code = u16::from(value[2] & 0x07) * 100 + u16::from(value[3]);
                let reason = String::from_utf8_lossy(&value[4..]).into_owned();
                error = Some((code, reason));
            }
            _ => {} // comprehension-optional or not needed (SOFTWARE, FINGERPRINT, ...)
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    if kind == BINDING_ERROR {
        let (code, reason) = error.unwrap_or((0, String::new()));
        return Ok(BindingResponse::Error { id, code, reason });
    }
    let mapped = xor_mapped.or(mapped).ok_or(StunError::NoAddress)?;
    Ok(BindingResponse::Success { id, mapped })
}

/// Decodes a (XOR-)MAPPED-ADDRESS value (RFC 5389 §15.1, §15.2); with `xor_id` the port and
/// address are XORed with the magic cookie (and, for IPv6, the transaction ID).
fn address(value: &[u8], xor_id: Option<&TransactionId>) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
    if xor_id.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let ip = match (family, value.len()) {
        (0x01, 8) => {
            let mut o = [value[4], value[5], value[6], value[7]];
            if xor_id.is_some() {
                for (b, k) in o.iter_mut().zip(cookie) {
                    *b ^= k;
                }
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        (0x02, 20) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&value[4..20]);
            if let Some(id) = xor_id {
                let key = cookie.iter().chain(id.iter());
                for (b, k) in o.iter_mut().zip(key) {
                    *b ^= k;
                }
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// When to send each try of a Binding request over UDP, from the first send (RFC 5389 §7.2.1
/// with RTO 500 ms, Rc 7, Rm 16): 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s; the transaction fails
/// at 39.5 s.
pub const RETRANSMIT_AT: [Duration; 7] = [
    Duration::from_millis(0),
    Duration::from_millis(500),
    Duration::from_millis(1_500),
    Duration::from_millis(3_500),
    Duration::from_millis(7_500),
    Duration::from_millis(15_500),
    Duration::from_millis(31_500),
];

/// When a Binding transaction without an answer fails, from its first send.
pub const GIVE_UP_AT: Duration = Duration::from_millis(39_500);

#[cfg(test)]
mod tests {
    use super::*;

    /// The transaction ID of RFC 5769 §2.2 and §2.3.
    const RFC5769_ID: TransactionId = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    /// A Binding success response with a SOFTWARE attribute and the given address attribute.
    fn response(attr: u16, value: &[u8]) -> Vec<u8> {
        let software = b"test vector ";
        let mut body = Vec::new();
        body.extend_from_slice(&SOFTWARE.to_be_bytes());
        body.extend_from_slice(&(software.len() as u16).to_be_bytes());
        body.extend_from_slice(software);
        body.extend_from_slice(&attr.to_be_bytes());
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend_from_slice(value);
        let mut out = Vec::new();
        out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&RFC5769_ID);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn rfc5769_ipv4_xor_mapped_address() {
        // RFC 5769 §2.2: 192.0.2.1:32853 encodes as port 0xa147, address 0xe112a643.
        let bytes = response(
            XOR_MAPPED_ADDRESS,
            &[0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43],
        );
        assert!(is_stun(&bytes));
        assert_eq!(
            parse_response(&bytes),
            Ok(BindingResponse::Success {
                id: RFC5769_ID,
                mapped: "192.0.2.1:32853".parse().expect("addr"),
            })
        );
    }

    #[test]
    fn rfc5769_ipv6_xor_mapped_address() {
        // RFC 5769 §2.3: [2001:db8:1234:5678:11:2233:4455:6677]:32853.
        let mut value = vec![0x00, 0x02, 0xa1, 0x47];
        value.extend_from_slice(&[
            0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2,
            0xb9, 0xd9,
        ]);
        let bytes = response(XOR_MAPPED_ADDRESS, &value);
        assert_eq!(
            parse_response(&bytes),
            Ok(BindingResponse::Success {
                id: RFC5769_ID,
                mapped: "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                    .parse()
                    .expect("addr"),
            })
        );
    }

    #[test]
    fn classic_mapped_address_is_read_when_alone() {
        let bytes = response(MAPPED_ADDRESS, &[0x00, 0x01, 0x13, 0xc4, 10, 0, 0, 7]);
        assert!(matches!(
            parse_response(&bytes),
            Ok(BindingResponse::Success { mapped, .. }) if mapped == "10.0.0.7:5060".parse().expect("addr")
        ));
    }

    #[test]
    fn requests_are_well_formed_and_not_sip() {
        let id = new_transaction_id();
        let req = binding_request(&id);
        assert!(is_stun(&req));
        assert_eq!(req.len() % 4, 0);
        assert_eq!(&req[8..20], &id);
        assert_eq!(
            parse_response(&req),
            Err(StunError::NotBindingResponse(BINDING_REQUEST))
        );
        assert!(!is_stun(b"OPTIONS sip:x SIP/2.0\r\n\r\n"));
        assert!(!is_stun(b"\r\n\r\n"));
    }

    #[test]
    fn error_responses_and_damage() {
        let mut bytes = response(ERROR_CODE, &[0, 0, 4, 20, b'U', b'n', b'k', b'n']);
        bytes[0..2].copy_from_slice(&BINDING_ERROR.to_be_bytes());
        assert_eq!(
            parse_response(&bytes),
            Ok(BindingResponse::Error {
                id: RFC5769_ID,
                code: 420,
                reason: "Unkn".into()
            })
        );
        // An attribute longer than the message.
        let mut bad = response(XOR_MAPPED_ADDRESS, &[0, 1, 0, 0, 0, 0, 0, 0]);
        let n = bad.len();
        bad[n - 10] = 0x40;
        assert!(parse_response(&bad).is_err());
        // A success without an address.
        let none = response(SOFTWARE, b"abcd");
        assert_eq!(parse_response(&none), Err(StunError::NoAddress));
        // Truncated datagrams are not STUN.
        assert_eq!(parse_response(&none[..19]), Err(StunError::NotStun));
    }

    #[test]
    fn retransmissions_follow_rfc5389() {
        let gaps: Vec<u64> = RETRANSMIT_AT
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis() as u64)
            .collect();
        assert_eq!(gaps, [500, 1000, 2000, 4000, 8000, 16000]);
        assert_eq!(GIVE_UP_AT - RETRANSMIT_AT[6], Duration::from_millis(8000));
    }
}
