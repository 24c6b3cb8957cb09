//! CSTA over HTTP (ECMA-323), sans I/O: the `SnapshotDevice` request and its answer, used by
//! the snapshot of active calls.

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed5";

/// A `SnapshotDevice` request for `device` (`user@host`).
pub fn snapshot_device(device: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<SnapshotDevice xmlns=\"{NS}\"><snapshotObject>{}</snapshotObject></SnapshotDevice>",
        device.replace('&', "&amp;").replace('<', "&lt;")
    )
}

/// The call ids of a `SnapshotDeviceResponse`; `None` when the text is not one.
pub fn parse_snapshot(xml: &str) -> Option<Vec<String>> {
    if !xml.contains("SnapshotDeviceResponse") {
        return None;
    }
    let mut ids = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<callID>") {
        rest = &rest[start + "<callID>".len()..];
        let end = rest.find("</callID>")?;
        ids.push(rest[..end].trim().to_owned());
        rest = &rest[end..];
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trip() {
        assert!(snapshot_device("100@pbx").contains("<snapshotObject>100@pbx</snapshotObject>"));
        let answer = "<SnapshotDeviceResponse xmlns=\"x\"><crossRefIDorSnapshotData><snapshotData><snapshotDeviceResponseInfo><connectionIdentifier><callID>7</callID></connectionIdentifier><localCallState><compoundCallState><localConnectionState>alerting</localConnectionState></compoundCallState></localCallState></snapshotDeviceResponseInfo></snapshotData></crossRefIDorSnapshotData></SnapshotDeviceResponse>";
        assert_eq!(parse_snapshot(answer), Some(vec!["7".to_owned()]));
        assert_eq!(parse_snapshot("<SnapshotDeviceResponse/>"), Some(vec![]));
        assert_eq!(parse_snapshot("<html>404</html>"), None);
    }
}
