//! UTF-16 strings the way TSPI passes them ("W" convention): NUL-terminated, sizes in bytes
//! including the terminator, native byte order.

/// The bytes of `text` as a NUL-terminated UTF-16 string.
pub fn encode(text: &str) -> Vec<u8> {
    text.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_ne_bytes)
        .collect()
}

/// A TAPI multi-string: each entry NUL-terminated, one more NUL at the end.
pub fn encode_multi(entries: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        out.extend(encode(entry));
    }
    out.extend(0u16.to_ne_bytes());
    out
}

/// The text of UTF-16 code units, up to the first NUL; bad surrogates become U+FFFD.
pub fn decode(units: &[u16]) -> String {
    let end = units.iter().position(|u| *u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

/// The text of a UTF-16 string held in bytes (as inside a LINEFORWARDLIST).
pub fn decode_bytes(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_ne_bytes([pair[0], pair[1]]))
        .collect();
    decode(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_terminator() {
        let bytes = encode("Zürich ☎");
        assert_eq!(bytes.len(), (8 + 1) * 2);
        assert_eq!(&bytes[bytes.len() - 2..], &[0, 0]);
        assert_eq!(decode_bytes(&bytes), "Zürich ☎");
    }

    #[test]
    fn multi_string_ends_twice() {
        let bytes = encode_multi(&["tapi/line"]);
        assert_eq!(bytes.len(), (9 + 2) * 2);
        assert_eq!(decode_bytes(&bytes), "tapi/line");
    }
}
