//! Phone settings, sans I/O: reading a settings dump (snom's text `name!: value` form or its
//! XML form), the settings the driver needs in a phone, checking them, and the
//! mass-configuration XML file.

use crate::action::{mass_url, phone_url, Event};
use std::collections::HashMap;

/// Settings read from a phone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(HashMap<String, String>);

impl Settings {
    /// One value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// How many settings were read.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses a dump: XML (`<name idx="1" perm="">value</name>`, indexed names become
    /// `name1`) or text lines (`name!: value`, `name&: value`, `name$: value`, `name: value`).
    pub fn parse(text: &str) -> Settings {
        if text.trim_start().starts_with('<') {
            parse_xml(text)
        } else {
            parse_text(text)
        }
    }

    /// Builds settings from pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

fn parse_text(text: &str) -> Settings {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('<') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().trim_end_matches(['!', '&', '$']);
        if name.is_empty() || name.contains(char::is_whitespace) {
            continue;
        }
        map.insert(name.to_owned(), value.trim().to_owned());
    }
    Settings(map)
}

fn parse_xml(text: &str) -> Settings {
    let mut map = HashMap::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with(['/', '?', '!']) || tag.ends_with('/') {
            continue;
        }
        let mut parts = tag.split_whitespace();
        let Some(name) = parts.next() else { continue };
        let idx = tag
            .split_once("idx=\"")
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(i, _)| i.to_owned());
        let close = format!("</{name}>");
        let Some(value_end) = rest.find(&close) else {
            continue;
        };
        let value = &rest[..value_end];
        if value.contains('<') {
            continue; // a container element
        }
        let key = match idx {
            Some(i) => format!("{name}{i}"),
            None => name.to_owned(),
        };
        map.insert(key, xml_unescape(value.trim()));
        rest = &rest[value_end + close.len()..];
    }
    Settings(map)
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Settings the driver wants in a phone: `(setting, value)`.
pub type Wanted = Vec<(&'static str, String)>;

/// The Action URL settings one phone needs: `(setting, url)`.
pub fn required(base: &str, phone: &str, secret: &str) -> Wanted {
    Event::ALL
        .into_iter()
        .map(|e| (e.setting(), phone_url(base, phone, secret, e)))
        .collect()
}

/// The Action URL settings of the mass-configuration files.
pub fn required_mass(base: &str, secret: &str) -> Wanted {
    Event::ALL
        .into_iter()
        .map(|e| (e.setting(), mass_url(base, secret, e)))
        .collect()
}

/// The result of comparing a phone's settings with what the driver needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Everything is there.
    Correct,
    /// These Action URL settings are missing or differ.
    Wrong(Vec<&'static str>),
}

/// Compares; `also_ok` are alternative values accepted (the mass-configuration URLs).
pub fn check(
    settings: &Settings,
    wanted: &[(&'static str, String)],
    also_ok: &[(&'static str, String)],
) -> Check {
    let wrong: Vec<&'static str> = wanted
        .iter()
        .filter(|(name, url)| {
            let have = settings.get(name);
            have != Some(url.as_str())
                && !also_ok
                    .iter()
                    .any(|(n, u)| n == name && have == Some(u.as_str()))
        })
        .map(|(name, _)| *name)
        .collect();
    if wrong.is_empty() {
        Check::Correct
    } else {
        Check::Wrong(wrong)
    }
}

/// A snom XML settings file (`<settings><phone-settings>`) holding `settings`, written with
/// permission `perm` (`RW`: overwritten at each provisioning).
pub fn settings_xml(settings: &[(&str, String)], perm: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<settings>\n  <phone-settings e=\"2\">\n",
    );
    for (name, value) in settings {
        out.push_str(&format!(
            "    <{name} perm=\"{}\">{}</{name}>\n",
            xml_escape(perm),
            xml_escape(value)
        ));
    }
    out.push_str("  </phone-settings>\n</settings>\n");
    out
}

/// The firmware's major version from a version string (`8.7.5.8.11` → 8, `snomD785-SIP 10.1…`).
pub fn firmware_major(version: &str) -> Option<u32> {
    let digits = version
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .find(|part| part.contains('.'))?;
    digits.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_dump_formats() {
        let text = "# comment\nuser_name1!: 100\nphone_type&: snomD785\naction_incoming_url$: http://h/a?x=1&y=2\n";
        let s = Settings::parse(text);
        assert_eq!(s.get("user_name1"), Some("100"));
        assert_eq!(s.get("phone_type"), Some("snomD785"));
        assert_eq!(s.get("action_incoming_url"), Some("http://h/a?x=1&y=2"));
        let xml = "<?xml version=\"1.0\"?><settings><phone-settings><user_name idx=\"1\" perm=\"\">100</user_name><action_incoming_url perm=\"RW\">http://h/a?x=1&amp;y=2</action_incoming_url><empty perm=\"\"></empty></phone-settings></settings>";
        let s = Settings::parse(xml);
        assert_eq!(s.get("user_name1"), Some("100"));
        assert_eq!(s.get("action_incoming_url"), Some("http://h/a?x=1&y=2"));
        assert_eq!(s.get("empty"), Some(""));
    }

    #[test]
    fn checks_and_writes() {
        let wanted = required("http://h/phones/o", "K", "s");
        assert_eq!(wanted.len(), Event::ALL.len());
        let mut pairs: Vec<(&str, &str)> = wanted.iter().map(|(n, u)| (*n, u.as_str())).collect();
        assert_eq!(
            check(&Settings::from_pairs(pairs.clone()), &wanted, &[]),
            Check::Correct
        );
        pairs.retain(|(n, _)| *n != "action_hold");
        assert_eq!(
            check(&Settings::from_pairs(pairs), &wanted, &[]),
            Check::Wrong(vec!["action_hold"])
        );
        let xml = settings_xml(
            &[("action_setup_url", "http://h/x?a=1&b=$mac".into())],
            "RW",
        );
        assert!(xml.contains(
            "<action_setup_url perm=\"RW\">http://h/x?a=1&amp;b=$mac</action_setup_url>"
        ));
        assert_eq!(
            Settings::parse(&xml).get("action_setup_url"),
            Some("http://h/x?a=1&b=$mac")
        );
    }

    #[test]
    fn firmware_versions() {
        assert_eq!(firmware_major("8.7.5.8.11"), Some(8));
        assert_eq!(firmware_major("snomD785-SIP 10.1.33.33"), Some(10));
        assert_eq!(firmware_major("none"), None);
    }
}
