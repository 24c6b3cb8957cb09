//! Certificates made by the test: a CA of its own and certificates it issues (for a TLS server
//! such as Kamailio, or a client), written as PEM files into a temporary folder that lives as
//! long as the [`Pki`].

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// A test CA and the folder its files go to.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir.path())
            .finish()
    }
}

fn fail<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("test PKI: {what}: {e}"),
    }
}

impl Pki {
    /// A new CA named `name`; its certificate is written to `ca.pem`.
    ///
    /// # Panics
    /// When a key cannot be made or a file cannot be written.
    pub fn new(name: &str) -> Pki {
        let dir = fail("temporary folder", tempfile::tempdir());
        let mut params = fail(
            "CA parameters",
            CertificateParams::new(Vec::<String>::new()),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = fail("CA key", KeyPair::generate());
        let ca = fail("CA certificate", CertifiedIssuer::self_signed(params, key));
        let ca_file = dir.path().join("ca.pem");
        fail("write ca.pem", std::fs::write(&ca_file, ca.pem()));
        Pki { dir, ca, ca_file }
    }

    /// The CA certificate (PEM file).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The folder the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses), written as
    /// `<stem>.pem` and `<stem>.key`.
    pub fn server(&self, stem: &str, names: &[&str]) -> Identity {
        self.issue(stem, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// Issues a client certificate for `names`.
    pub fn client(&self, stem: &str, names: &[&str]) -> Identity {
        self.issue(stem, names, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, stem: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Identity {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = fail(
            "certificate parameters",
            CertificateParams::new(names.clone()),
        );
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        let key = fail("key", KeyPair::generate());
        let cert = fail("certificate", params.signed_by(&key, &self.ca));
        let cert_path = self.dir.path().join(format!("{stem}.pem"));
        let key_path = self.dir.path().join(format!("{stem}.key"));
        fail("write certificate", std::fs::write(&cert_path, cert.pem()));
        fail("write key", std::fs::write(&key_path, key.serialize_pem()));
        Identity {
            cert: cert_path,
            key: key_path,
        }
    }

    /// Writes `text` to `name` in the folder (a server's TLS configuration) and returns its
    /// path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fail("write file", std::fs::write(&path, text));
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_pem_files_under_its_ca() {
        let pki = Pki::new("tapir test CA");
        let id = pki.server("pbx", &["localhost", "127.0.0.1"]);
        let ca = std::fs::read_to_string(pki.ca_file()).expect("ca");
        let cert = std::fs::read_to_string(&id.cert).expect("cert");
        let key = std::fs::read_to_string(&id.key).expect("key");
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        assert_ne!(ca, cert);
        let other = Pki::new("another CA");
        assert_ne!(
            std::fs::read_to_string(other.ca_file()).expect("ca"),
            ca,
            "each PKI has its own CA"
        );
    }
}
