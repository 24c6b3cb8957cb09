//! JSON encoding of what crosses the boundary, the fallbacks for text one side cannot read, and
//! turning a caught panic into a message.

use abi_stable::std_types::RString;
use serde::Serialize;
use std::any::Any;
use tapir_core::{DriverError, ErrorKind};

/// Serializes a payload. The tapir-core types serialize infallibly (no maps with non-string
/// keys, no custom serializers that fail); should one ever fail, the error text is returned so
/// the other side reports an unreadable payload instead of crashing.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<RString, String> {
    serde_json::to_string(value)
        .map(RString::from)
        .map_err(|e| e.to_string())
}

/// Encodes an error for the other side; falls back to a hand-built JSON if serializing fails.
pub(crate) fn encode_error(error: &DriverError) -> RString {
    encode(error).unwrap_or_else(|_| {
        RString::from(r#"{"kind":"operation_failed","detail":"unencodable error"}"#)
    })
}

/// Decodes an error sent by the other side. Text that is not a `DriverError` (for example a
/// kind this side does not know yet) becomes an `OperationFailed` error carrying the raw text.
pub(crate) fn decode_error(raw: &str) -> DriverError {
    serde_json::from_str(raw).unwrap_or_else(|_| {
        DriverError::new(
            ErrorKind::OperationFailed,
            format!("unreadable error from the other side of the plugin boundary: {raw}"),
        )
    })
}

/// The message of a caught panic (`panic!("...")` payloads are `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip() {
        let error = DriverError::invalid_state("call is on hold");
        let text = encode_error(&error);
        assert_eq!(decode_error(text.as_str()), error);
    }

    #[test]
    fn unknown_error_kinds_become_operation_failed_with_the_text() {
        let error = decode_error(r#"{"kind":"from_the_future","detail":"x"}"#);
        assert_eq!(error.kind, ErrorKind::OperationFailed);
        assert!(error.detail.contains("from_the_future"), "{}", error.detail);
    }

    #[test]
    fn panic_messages_are_extracted_from_both_payload_kinds() {
        let literal = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&*literal), "plain");
        let number = 7;
        let formatted = std::panic::catch_unwind(|| panic!("formatted {number}")).unwrap_err();
        assert_eq!(panic_message(&*formatted), "formatted 7");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(5_u8)).unwrap_err();
        assert_eq!(panic_message(&*other), "panic with a non-text payload");
    }
}
