//! The session descriptions of a leg that carries no media (RFC 4566, offer/answer RFC 3264):
//! tapir places and hands over calls, it never sends or receives audio. The offer names the
//! discard port (9) so that nothing is ever sent to us; an answer to a re-INVITE or UPDATE mirrors
//! the offered direction and first payload type so the peer's hold/resume goes through.

use std::net::IpAddr;

/// Our SDP: an audio offer on the discard port, or, when `offer` is given, an answer mirroring
/// its direction and first payload type.
pub fn sdp(ip: IpAddr, offer: Option<&[u8]>) -> String {
    let (family, addr) = match ip {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    let offered = offer
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("");
    let direction = if offered.contains("a=sendonly") {
        "recvonly"
    } else if offered.contains("a=recvonly") {
        "sendonly"
    } else if offered.contains("a=inactive") {
        "inactive"
    } else {
        "sendrecv"
    };
    let first_pt = offered
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .and_then(|l| l.split_whitespace().nth(3))
        .filter(|pt| !pt.is_empty() && pt.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or("0");
    let formats = if offer.is_some() { first_pt } else { "0 8 101" };
    let version = if offer.is_some() { 2 } else { 1 };
    let mut s = format!(
        "v=0\r\no=tapir 1 {version} IN {family} {addr}\r\ns=tapir\r\nc=IN {family} {addr}\r\nt=0 0\r\nm=audio 9 RTP/AVP {formats}\r\n"
    );
    if offer.is_none() {
        s.push_str(
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
    }
    s.push_str("a=");
    s.push_str(direction);
    s.push_str("\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_and_mirrored_answers() {
        let ip: IpAddr = [10, 0, 0, 1].into();
        let offer = sdp(ip, None);
        assert!(offer.contains("c=IN IP4 10.0.0.1\r\n"));
        assert!(offer.contains("m=audio 9 RTP/AVP 0 8 101\r\n"));
        assert!(offer.ends_with("a=sendrecv\r\n"));
        let hold = b"v=0\r\nm=audio 4000 RTP/AVP 8 0\r\na=sendonly\r\n";
        let answer = sdp(ip, Some(hold));
        assert!(answer.contains("m=audio 9 RTP/AVP 8\r\n") && answer.ends_with("a=recvonly\r\n"));
        assert!(sdp(ip, Some(b"a=inactive")).ends_with("a=inactive\r\n"));
        let v6 = sdp("::1".parse().expect("ip"), None);
        assert!(v6.contains("c=IN IP6 ::1"));
    }
}
