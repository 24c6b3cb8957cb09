//! Discovery: scanning address ranges for snom web servers (`Server: snom embedded`).

use std::net::Ipv4Addr;

/// Most addresses one range may hold.
pub const MAX_RANGE: u64 = 65_536;

/// An IPv4 address range with a port range: `A[-B][:P[-Q]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    first: u32,
    last: u32,
    ports: (u16, u16),
}

impl Range {
    /// Parses the range.
    ///
    /// # Errors
    /// A sentence for a malformed or oversized range.
    pub fn parse(text: &str) -> Result<Range, String> {
        let (hosts, ports) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        let ip = |s: &str| {
            s.trim()
                .parse::<Ipv4Addr>()
                .map(u32::from)
                .map_err(|_| format!("{s:?} is not an IPv4 address"))
        };
        let (first, last) = match hosts.split_once('-') {
            Some((a, b)) => (ip(a)?, ip(b)?),
            None => (ip(hosts)?, ip(hosts)?),
        };
        let port = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("{s:?} is not a port"))
        };
        let ports = match ports {
            None => (80, 80),
            Some(p) => match p.split_once('-') {
                Some((a, b)) => (port(a)?, port(b)?),
                None => (port(p)?, port(p)?),
            },
        };
        if last < first || ports.1 < ports.0 {
            return Err("the range ends before it starts".into());
        }
        let count = (u64::from(last - first) + 1) * (u64::from(ports.1 - ports.0) + 1);
        if count > MAX_RANGE {
            return Err(format!("{count} addresses; at most {MAX_RANGE} per range"));
        }
        Ok(Range { first, last, ports })
    }

    /// Every `ip:port` of the range.
    pub fn addresses(&self) -> impl Iterator<Item = String> + '_ {
        (self.first..=self.last).flat_map(move |ip| {
            (self.ports.0..=self.ports.1).map(move |port| format!("{}:{port}", Ipv4Addr::from(ip)))
        })
    }
}

/// What a scan learns from a web server that says it is a snom phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `ip:port`.
    pub address: String,
    /// The model, when the page names one (`snomD785`).
    pub model: Option<String>,
}

/// Whether a response comes from a snom phone, and which model it names.
pub fn recognise(server: Option<&str>, body: &str) -> Option<Option<String>> {
    if !server.is_some_and(|s| s.to_ascii_lowercase().contains("snom embedded")) {
        return None;
    }
    let model = body.find("snom").and_then(|start| {
        let word: String = body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        (word.len() > 4).then_some(word)
    });
    Some(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = Range::parse("127.0.0.1-127.0.0.2:8000-8001").expect("parses");
        let all: Vec<_> = r.addresses().collect();
        assert_eq!(
            all,
            vec![
                "127.0.0.1:8000",
                "127.0.0.1:8001",
                "127.0.0.2:8000",
                "127.0.0.2:8001"
            ]
        );
        assert_eq!(
            Range::parse("10.0.0.9")
                .expect("parses")
                .addresses()
                .next()
                .as_deref(),
            Some("10.0.0.9:80")
        );
        assert!(Range::parse("10.0.0.0-10.255.0.0").is_err());
        assert!(Range::parse("10.0.0.2-10.0.0.1").is_err());
        assert!(Range::parse("x").is_err());
    }

    #[test]
    fn recognises_snom() {
        assert_eq!(
            recognise(Some("snom embedded"), "<title>snomD785</title>"),
            Some(Some("snomD785".into()))
        );
        assert_eq!(recognise(Some("nginx"), "snomD785"), None);
        assert_eq!(recognise(None, ""), None);
    }
}
