//! CSTA XML (ECMA-323), sans I/O, as snom phones take it over HTTP (`csta_path`) and over SIP
//! (uaCSTA, [`crate::uacsta`]): the `SnapshotDevice` request and its answer (the snapshot of
//! active calls), `MakeCall`, and the per-call control services (`AnswerCall`,
//! `ClearConnection`, `HoldCall`, `RetrieveCall`, `AlternateCall`, `SingleStepTransferCall`,
//! `TransferCall`, `DeflectCall`) with the positive or negative acknowledgement they get.
//!
//! A call is named by a `ConnectionID`: the phone's CSTA call id (`$csta_id`) plus the device
//! (`user@host` of identity 1, as in `SnapshotDevice`).

pub(crate) const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed5";

/// A `SnapshotDevice` request for `device` (`user@host`).
pub fn snapshot_device(device: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<SnapshotDevice xmlns=\"{NS}\"><snapshotObject>{}</snapshotObject></SnapshotDevice>",
        device.replace('&', "&amp;").replace('<', "&lt;")
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A call on the phone as CSTA names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection<'a> {
    /// `$csta_id`.
    pub call: &'a str,
    /// The phone's device (`user@host`).
    pub device: &'a str,
}

impl Connection<'_> {
    fn xml(&self, element: &str) -> String {
        format!(
            "<{element}><callID>{}</callID><deviceID>{}</deviceID></{element}>",
            escape(self.call),
            escape(self.device)
        )
    }
}

/// One CSTA call-control service, as sent to the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service<'a> {
    /// Answer a ringing call.
    Answer(Connection<'a>),
    /// Release the phone from a call (drop, reject).
    Clear(Connection<'a>),
    /// Hold a connected call.
    Hold(Connection<'a>),
    /// Retrieve a held call.
    Retrieve(Connection<'a>),
    /// Hold the active call and retrieve the held one.
    Alternate {
        /// The call on hold now.
        held: Connection<'a>,
        /// The connected call.
        active: Connection<'a>,
    },
    /// Transfer a connected call to a number (blind).
    SingleStepTransfer {
        /// The call.
        active: Connection<'a>,
        /// Where to.
        to: &'a str,
    },
    /// Join the held call and the consultation call, leaving the phone out.
    Transfer {
        /// The held call.
        held: Connection<'a>,
        /// The consultation call.
        active: Connection<'a>,
    },
    /// Send a ringing call elsewhere.
    Deflect {
        /// The ringing call.
        call: Connection<'a>,
        /// Where to.
        to: &'a str,
    },
    /// Place a call from the phone (`calling`: `sip:user@host` of the identity); the answer
    /// names the new call's id.
    MakeCall {
        /// The identity calling.
        calling: &'a str,
        /// The number.
        to: &'a str,
    },
}

impl Service<'_> {
    /// The ECMA-323 request name (`HoldCall`); its answer is `{name}Response`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Answer(_) => "AnswerCall",
            Self::Clear(_) => "ClearConnection",
            Self::Hold(_) => "HoldCall",
            Self::Retrieve(_) => "RetrieveCall",
            Self::Alternate { .. } => "AlternateCall",
            Self::SingleStepTransfer { .. } => "SingleStepTransferCall",
            Self::Transfer { .. } => "TransferCall",
            Self::Deflect { .. } => "DeflectCall",
            Self::MakeCall { .. } => "MakeCall",
        }
    }

    /// The XML request.
    pub fn to_xml(&self) -> String {
        let inner = match self {
            Self::Answer(c) => c.xml("callToBeAnswered"),
            Self::Clear(c) => c.xml("connectionToBeCleared"),
            Self::Hold(c) => c.xml("callToBeHeld"),
            Self::Retrieve(c) => c.xml("callToBeRetrieved"),
            Self::Alternate { held, active } | Self::Transfer { held, active } => {
                format!("{}{}", held.xml("heldCall"), active.xml("activeCall"))
            }
            Self::SingleStepTransfer { active, to } => format!(
                "{}<transferredTo>{}</transferredTo>",
                active.xml("activeCall"),
                escape(to)
            ),
            Self::Deflect { call, to } => format!(
                "{}<newDestination>{}</newDestination>",
                call.xml("callToBeDiverted"),
                escape(to)
            ),
            Self::MakeCall { calling, to } => format!(
                "<callingDevice>{}</callingDevice><calledDirectoryNumber>{}</calledDirectoryNumber><autoOriginate>doNotPrompt</autoOriginate>",
                escape(calling),
                escape(to)
            ),
        };
        let name = self.name();
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<{name} xmlns=\"{NS}\">{inner}</{name}>"
        )
    }
}

/// What the phone answered to a call-control service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// `{name}Response`: done.
    Positive,
    /// `CSTAErrorCode` with the error's text (`invalidCallID`, `invalidCallState`, ...).
    Negative(String),
    /// Neither: not a CSTA answer.
    Unreadable,
}

/// The text of the first `<tag>…</tag>` in `xml` (namespace prefixes on the tag are not
/// expected: snom writes none).
pub fn text_of<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..start + end].trim())
}

/// The call id a `MakeCallResponse` names (`<callingDevice><callID>2</callID>…`).
pub fn made_call_id(xml: &str) -> Option<&str> {
    xml.contains("MakeCallResponse")
        .then(|| text_of(xml, "callID"))
        .flatten()
        .filter(|id| !id.is_empty())
}

/// Reads the answer to `request_name` (`HoldCall`).
pub fn parse_ack(request_name: &str, xml: &str) -> Ack {
    if xml.contains(&format!("<{request_name}Response")) {
        return Ack::Positive;
    }
    if let Some(start) = xml.find("<CSTAErrorCode") {
        let rest = &xml[start..];
        // The error is the text of the innermost element: <CSTAErrorCode><operation>x</operation>.
        let text = rest
            .split('>')
            .skip(2)
            .find_map(|part| {
                let value = part.split('<').next().unwrap_or("").trim();
                (!value.is_empty()).then(|| value.to_owned())
            })
            .unwrap_or_else(|| "unspecified".to_owned());
        return Ack::Negative(text);
    }
    Ack::Unreadable
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

    fn c<'a>(call: &'a str) -> Connection<'a> {
        Connection {
            call,
            device: "100@pbx",
        }
    }

    #[test]
    fn call_control_requests_name_the_connection() {
        let hold = Service::Hold(c("7")).to_xml();
        assert!(
            hold.contains(&format!("<HoldCall xmlns=\"{NS}\">")),
            "{hold}"
        );
        assert!(hold.contains(
            "<callToBeHeld><callID>7</callID><deviceID>100@pbx</deviceID></callToBeHeld></HoldCall>"
        ));
        let alt = Service::Alternate {
            held: c("1"),
            active: c("2"),
        }
        .to_xml();
        assert!(
            alt.contains("<heldCall><callID>1</callID>")
                && alt.contains("<activeCall><callID>2</callID>"),
            "{alt}"
        );
        let sst = Service::SingleStepTransfer {
            active: c("3"),
            to: "200<&",
        }
        .to_xml();
        assert!(
            sst.contains("<transferredTo>200&lt;&amp;</transferredTo>"),
            "{sst}"
        );
        assert!(Service::Deflect {
            call: c("4"),
            to: "300"
        }
        .to_xml()
        .contains("<callToBeDiverted><callID>4</callID>"));
        assert!(Service::Clear(c("5"))
            .to_xml()
            .contains("<ClearConnection "));
        assert!(Service::Answer(c("6"))
            .to_xml()
            .contains("<callToBeAnswered>"));
        assert!(Service::Retrieve(c("6"))
            .to_xml()
            .contains("<callToBeRetrieved>"));
        assert!(Service::Transfer {
            held: c("1"),
            active: c("2")
        }
        .to_xml()
        .starts_with("<?xml"));
    }

    #[test]
    fn acknowledgements_are_read() {
        assert_eq!(
            parse_ack(
                "HoldCall",
                &format!("<?xml version=\"1.0\"?><HoldCallResponse xmlns=\"{NS}\"/>")
            ),
            Ack::Positive
        );
        assert_eq!(
            parse_ack(
                "HoldCall",
                "<CSTAErrorCode xmlns=\"x\"><operation>invalidCallID</operation></CSTAErrorCode>"
            ),
            Ack::Negative("invalidCallID".into())
        );
        assert_eq!(
            parse_ack("HoldCall", "<RetrieveCallResponse/>"),
            Ack::Unreadable
        );
        assert_eq!(parse_ack("HoldCall", "<html>nope</html>"), Ack::Unreadable);
    }
}
