//! NAPTR records (RFC 3403) and the choice RFC 3263 §4.1 makes with them: which SIP services a
//! domain offers over which transport, in which order, and where to look next (an SRV owner
//! name for the `S` flag, a host for the `A` flag).

use super::Transport;

/// One NAPTR record, as read from DNS (text fields as bytes are decoded lossily).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    /// Lower is processed first; records of a higher order are not considered once one of a
    /// lower order matched (RFC 3403 §4.1).
    pub order: u16,
    /// Lower is preferred among records of one order.
    pub preference: u16,
    /// Flags (`S`, `A`, `U`, `P`, or empty for a non-terminal rule).
    pub flags: String,
    /// The service field (`SIP+D2U`, `E2U+sip`, ...).
    pub services: String,
    /// The substitution expression (empty for RFC 3263 records).
    pub regexp: String,
    /// The replacement domain (`.` when unused).
    pub replacement: String,
}

impl NaptrRecord {
    /// True when the flags contain `flag` (case-insensitive, RFC 3403 §4.1).
    pub fn has_flag(&self, flag: char) -> bool {
        self.flags.chars().any(|c| c.eq_ignore_ascii_case(&flag))
    }

    /// The replacement without its final dot, `None` when it is empty or the root.
    pub fn replacement_domain(&self) -> Option<&str> {
        let r = self.replacement.trim().trim_end_matches('.');
        (!r.is_empty()).then_some(r)
    }
}

/// The transport a RFC 3263 service field names (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`), with
/// whether it is a `SIPS` service. Others (`SIP+D2S` SCTP, `SIP+D2W` WebSocket, unknown) give
/// `None`.
pub fn sip_service(services: &str) -> Option<(Transport, bool)> {
    match services.trim().to_ascii_uppercase().as_str() {
        "SIP+D2U" => Some((Transport::Udp, false)),
        "SIP+D2T" => Some((Transport::Tcp, false)),
        "SIPS+D2T" => Some((Transport::Tls, true)),
        _ => None,
    }
}

/// Where a usable record leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// `S` flag: an SRV look-up of this owner name.
    Srv(String),
    /// `A` flag: A/AAAA of this host, on the transport's default port.
    Host(String),
}

/// One usable record: its order, transport and next look-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The record's order (choices of one order are one rule, RFC 3403 §4.1).
    pub order: u16,
    /// Transport of the service.
    pub transport: Transport,
    /// What to look up next.
    pub next: Next,
}

/// The records RFC 3263 §4.1 lets a client use, best first: SIP services over a transport in
/// `usable`, only `SIPS` ones for a `sips:` URI, with the `S` (or `A`) flag and a replacement;
/// sorted by order, then preference. Records of other applications (ENUM's `E2U`, ...), of
/// transports we cannot send on, and non-terminal ones are left out.
pub fn sip_choices(records: &[NaptrRecord], usable: &[Transport], sips: bool) -> Vec<Choice> {
    let mut found: Vec<(u16, u16, Choice)> = records
        .iter()
        .filter_map(|r| {
            let (transport, is_sips) = sip_service(&r.services)?;
            if sips && !is_sips || !usable.contains(&transport) {
                return None;
            }
            let target = r.replacement_domain()?.to_owned();
            let next = if r.has_flag('S') {
                Next::Srv(format!("{target}."))
            } else if r.has_flag('A') {
                Next::Host(target)
            } else {
                return None;
            };
            Some((
                r.order,
                r.preference,
                Choice {
                    order: r.order,
                    transport,
                    next,
                },
            ))
        })
        .collect();
    found.sort_by_key(|(order, pref, _)| (*order, *pref));
    found.into_iter().map(|(_, _, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn naptr(
        order: u16,
        pref: u16,
        flags: &str,
        services: &str,
        repl: &str,
    ) -> NaptrRecord {
        NaptrRecord {
            order,
            preference: pref,
            flags: flags.into(),
            services: services.into(),
            regexp: String::new(),
            replacement: repl.into(),
        }
    }

    const BOTH: [Transport; 2] = [Transport::Udp, Transport::Tcp];

    #[test]
    fn order_then_preference_and_only_usable_services() {
        let records = vec![
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.example.com."),
            naptr(10, 20, "S", "SIP+D2T", "_sip._tcp.example.com."),
            naptr(10, 10, "s", "SIPS+D2T", "_sips._tcp.example.com."),
            naptr(10, 5, "s", "SIP+D2S", "_sip._sctp.example.com."),
            naptr(5, 5, "u", "E2U+sip", "."),
            naptr(30, 5, "a", "sip+d2u", "host.example.com."),
            naptr(40, 5, "", "SIP+D2U", "other.example.com."),
        ];
        let got = sip_choices(&records, &BOTH, false);
        assert_eq!(
            got,
            vec![
                Choice {
                    order: 10,
                    transport: Transport::Tcp,
                    next: Next::Srv("_sip._tcp.example.com.".into())
                },
                Choice {
                    order: 20,
                    transport: Transport::Udp,
                    next: Next::Srv("_sip._udp.example.com.".into())
                },
                Choice {
                    order: 30,
                    transport: Transport::Udp,
                    next: Next::Host("host.example.com".into())
                },
            ]
        );
        // With TLS the SIPS record (same order, better preference) comes first.
        let all = [Transport::Udp, Transport::Tcp, Transport::Tls];
        let got = sip_choices(&records, &all, false);
        assert_eq!(got[0].transport, Transport::Tls);
        // A sips: URI keeps only SIPS services.
        let got = sip_choices(&records, &all, true);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].next, Next::Srv("_sips._tcp.example.com.".into()));
        assert!(sip_choices(&records, &BOTH, true).is_empty());
    }

    #[test]
    fn records_without_a_replacement_are_unusable() {
        let records = vec![naptr(10, 10, "s", "SIP+D2U", ".")];
        assert!(sip_choices(&records, &BOTH, false).is_empty());
        assert_eq!(sip_service(" sips+d2t "), Some((Transport::Tls, true)));
        assert_eq!(sip_service("SIP+D2W"), None);
    }
}
