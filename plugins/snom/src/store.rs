//! The driver's small persistent state: per phone, the wrong Digest logins since the last
//! success. A snom phone with Digest authentication locks its web server after the third
//! wrong password and counts until a login succeeds, across restarts of tapir and changes of
//! the login; so does this store. One JSON file in the instance's state directory
//! (`digest-logins.json`), rewritten whole (temporary file, then rename) on every change.
//! Without a state directory the counts live in memory only.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The file's name in the state directory.
pub const FILE: &str = "digest-logins.json";

/// One phone's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Wrong Digest logins since the last success.
    pub wrong: u8,
    /// The login of the last wrong attempt (for the phone table; never the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    phones: BTreeMap<String, Record>,
}

/// The records, and where they are kept.
#[derive(Debug, Default)]
pub struct Store {
    dir: Option<PathBuf>,
    records: BTreeMap<String, Record>,
}

impl Store {
    /// Opens the store in `dir` (reading what an earlier run left). A file that cannot be
    /// parsed (it is written atomically, so only a hand edit breaks it) is logged, kept aside
    /// as `.unreadable`, and counting starts afresh.
    pub fn open(dir: Option<PathBuf>) -> Store {
        let Some(dir) = dir else {
            tracing::warn!("snom: no state_dir is configured; wrong Digest logins are counted in memory only, so after a restart a phone could see two more (set [state_dir] in the host configuration).");
            return Store::default();
        };
        let path = dir.join(FILE);
        let records = match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<File>(&text) {
                Ok(f) => f.phones,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "snom: the Digest login counts cannot be read; the file is kept aside and counting starts afresh.");
                    let _ = std::fs::rename(&path, path.with_extension("json.unreadable"));
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "snom: the Digest login counts cannot be read.");
                BTreeMap::new()
            }
        };
        Store {
            dir: Some(dir),
            records,
        }
    }

    /// Whether the counts survive a restart.
    pub fn persistent(&self) -> bool {
        self.dir.is_some()
    }

    /// A phone's record.
    pub fn get(&self, phone: &str) -> Record {
        self.records.get(phone).cloned().unwrap_or_default()
    }

    /// One more wrong login for `phone`; returns the count.
    pub fn wrong(&mut self, phone: &str, login: &str) -> u8 {
        let r = self.records.entry(phone.to_owned()).or_default();
        r.wrong = r.wrong.saturating_add(1);
        r.login = Some(login.to_owned());
        let n = r.wrong;
        self.save();
        n
    }

    /// The phone's count started again (a login succeeded, the phone restarted).
    pub fn reset(&mut self, phone: &str) {
        if self.records.remove(phone).is_some() {
            self.save();
        }
    }

    fn save(&self) {
        let Some(dir) = &self.dir else {
            return;
        };
        let file = File {
            version: 1,
            phones: self.records.clone(),
        };
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
            let tmp = dir.join(format!("{FILE}.tmp"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, dir.join(FILE))
        })();
        if let Err(e) = result {
            tracing::error!(dir = %dir.display(), error = %e, "snom: the Digest login counts cannot be saved; they are kept in memory.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_a_reopen_and_reset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("office");
        let mut s = Store::open(Some(path.clone()));
        assert!(s.persistent());
        assert_eq!(s.wrong("P1", "admin"), 1);
        assert_eq!(s.wrong("P1", "admin"), 2);
        let s2 = Store::open(Some(path.clone()));
        assert_eq!(s2.get("P1").wrong, 2);
        assert_eq!(s2.get("P1").login.as_deref(), Some("admin"));
        let mut s3 = s2;
        s3.reset("P1");
        assert_eq!(Store::open(Some(path.clone())).get("P1").wrong, 0);
        std::fs::write(path.join(FILE), "not json").expect("write");
        assert_eq!(Store::open(Some(path)).get("P1").wrong, 0);
        assert!(!Store::open(None).persistent());
    }
}
