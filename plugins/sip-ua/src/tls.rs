//! TLS for SIP (RFC 3261 §26.2, RFC 5922): what to trust, what to present, and the sentence an
//! operator reads when a handshake fails.
//!
//! - [`TlsConfig`] is the `tls` table of a driver's configuration (drivers embed it as is).
//! - [`TlsContext`] is that configuration loaded once: a rustls client configuration (ring
//!   provider) that verifies the server's certificate chain against the platform's CA store
//!   (`rustls-native-certs`: `/etc/ssl/certs` on Debian, the Windows certificate store under
//!   Windows) or against `ca_file` alone, and the server's name; and, when `cert_file` and
//!   `key_file` are given, that certificate as client certificate (sent when a PBX asks for
//!   one) and as the certificate of the endpoint's TLS listener.
//! - `insecure_skip_verify` turns verification off for self-signed lab PBXs. It is logged as a
//!   warning when the context is built and on every connection; the handshake signature is
//!   still checked, so the peer must hold the key of the certificate it shows.
//!
//! Which name the certificate must carry is decided by the endpoint (see
//! [`crate::endpoint`]): the host of the URI the request is routed by (RFC 5922 §4), or
//! `server_name` when configured.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// The `tls` table of a SIP driver's configuration. Every field is optional; the default
/// verifies servers against the platform's CA store and presents no certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust instead of the platform's store (a PBX with
    /// certificates from a private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain tapir presents: as client certificate when a PBX asks for one, and
    /// on the endpoint's TLS listener (which exists only with a certificate).
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`. Its contents are never logged.
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, instead of the host of the URI the request
    /// is routed by (for a PBX reached by IP address whose certificate names its domain).
    pub server_name: Option<String>,
    /// Accept any server certificate (self-signed lab PBXs). Off by default; when on, a
    /// warning is logged at start and on every connection.
    pub insecure_skip_verify: bool,
}

/// Why a TLS configuration cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which setting.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("{what} {path} holds no PEM certificate")]
    NoCertificate {
        /// Which setting.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key.
    #[error("tls.key_file {0} holds no PEM private key")]
    NoKey(PathBuf),
    /// Only one of `cert_file` and `key_file` is set.
    #[error("tls.cert_file and tls.key_file go together: set both or neither")]
    HalfIdentity,
    /// Neither the platform's store nor `ca_file` gave a usable CA certificate.
    #[error("no trusted CA certificates: {0}; set tls.ca_file")]
    NoRoots(String),
    /// `server_name` is neither a DNS name nor an IP address.
    #[error("tls.server_name {0:?} is not a host name or IP address")]
    BadServerName(String),
    /// rustls refused the certificates or key.
    #[error("{0}")]
    Rustls(String),
}

/// A loaded TLS configuration: cheap to clone, shared by every connection of an endpoint.
#[derive(Clone)]
pub struct TlsContext {
    client: Arc<rustls::ClientConfig>,
    server: Option<Arc<rustls::ServerConfig>>,
    server_name: Option<ServerName<'static>>,
    insecure: bool,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("listener", &self.server.is_some())
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl TlsContext {
    /// Loads the files `config` names and builds the rustls configurations.
    ///
    /// # Errors
    /// [`TlsError`] naming the setting and file at fault.
    pub fn new(config: &TlsConfig) -> Result<TlsContext, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_name = config
            .server_name
            .as_deref()
            .map(|n| server_name(n).ok_or_else(|| TlsError::BadServerName(n.to_owned())))
            .transpose()?;
        let identity = match (&config.cert_file, &config.key_file) {
            (Some(cert), Some(key)) => Some((read_certs(cert, "tls.cert_file")?, read_key(key)?)),
            (None, None) => None,
            _ => return Err(TlsError::HalfIdentity),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = if config.insecure_skip_verify {
            tracing::warn!(
                "TLS: certificate verification is OFF (tls.insecure_skip_verify): any server \
                 certificate is accepted; use this only with a lab PBX"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
        } else {
            builder.with_root_certificates(roots(config.ca_file.as_deref())?)
        };
        let client = match &identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| TlsError::Rustls(format!("tls.cert_file/key_file: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        let server = match identity {
            Some((chain, key)) => Some(Arc::new(
                rustls::ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| TlsError::Rustls(e.to_string()))?
                    .with_no_client_auth()
                    .with_single_cert(chain, key)
                    .map_err(|e| TlsError::Rustls(format!("tls.cert_file/key_file: {e}")))?,
            )),
            None => None,
        };
        Ok(TlsContext {
            client: Arc::new(client),
            server,
            server_name,
            insecure: config.insecure_skip_verify,
        })
    }

    /// The connector for outgoing connections.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.client.clone())
    }

    /// The acceptor of the TLS listener; `None` without a certificate (then there is no
    /// listener).
    pub fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.server.clone().map(tokio_rustls::TlsAcceptor::from)
    }

    /// True when server certificates are not verified.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// The name a server reached through a URI with this `host` must prove: the configured
    /// `server_name`, else the host itself (a DNS name, or an IP address for IP hosts).
    pub fn name_for(&self, host: &str) -> Option<ServerName<'static>> {
        self.server_name.clone().or_else(|| server_name(host))
    }
}

/// `host` (a name, an IPv4 address, or an IPv6 address with or without brackets) as a rustls
/// server name.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    ServerName::try_from(bare.to_owned()).ok()
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "tls.key_file",
        path: path.to_path_buf(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|_| TlsError::NoKey(path.to_path_buf()))
}

/// The CA certificates to trust: `ca_file` alone when given, else the platform's store.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_certs(path, "tls.ca_file")? {
                store.add(cert).map_err(|e| {
                    TlsError::Rustls(format!("tls.ca_file {}: {e}", path.display()))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!("the platform's store gave none ({e})"))
                    .unwrap_or_else(|| "the platform's store is empty".into());
                return Err(TlsError::NoRoots(why));
            }
            tracing::debug!(
                certificates = added,
                "TLS: trusting the platform's CA store"
            );
        }
    }
    Ok(store)
}

/// The sentence for a failed TLS handshake: what was wrong and, where it helps, what to set.
pub fn describe_handshake_error(error: &std::io::Error) -> String {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("TLS handshake failed: {error}");
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => {
            let why = match cert {
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "it is not valid for the server's name".to_owned()
                }
                CertificateError::UnknownIssuer => {
                    "it is not issued by a trusted CA (set tls.ca_file to the PBX's CA)".to_owned()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "it has expired".to_owned()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "it is not valid yet".to_owned()
                }
                CertificateError::Revoked => "it is revoked".to_owned(),
                CertificateError::BadSignature => "its signature is bad".to_owned(),
                other => format!("{other:?}"),
            };
            format!("the server's certificate was refused: {why} ({tls})")
        }
        rustls::Error::AlertReceived(alert) => format!(
            "the server refused the TLS handshake ({alert:?}); if it requires a client \
             certificate, set tls.cert_file and tls.key_file"
        ),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Accepts any certificate chain (`insecure_skip_verify` here; snom phones' self-signed
/// certificates in the snom driver), still checking the handshake signatures with the
/// certificate's key, with `provider`'s algorithms.
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn identity() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["tapir.test".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn config_reads_from_json_with_defaults() {
        let c: TlsConfig = serde_json::from_str("{}").expect("empty");
        assert_eq!(c, TlsConfig::default());
        assert!(!c.insecure_skip_verify);
        let c: TlsConfig = serde_json::from_str(
            r#"{"ca_file": "/etc/ca.pem", "insecure_skip_verify": true, "server_name": "pbx"}"#,
        )
        .expect("fields");
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert!(c.insecure_skip_verify);
        assert!(serde_json::from_str::<TlsConfig>(r#"{"ca_fiel": "x"}"#).is_err());
    }

    #[test]
    fn files_are_checked_with_clear_errors() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = identity();
        let cert_path = write(dir.path(), "cert.pem", &cert);
        let key_path = write(dir.path(), "key.pem", &key);
        let junk = write(dir.path(), "junk.pem", "not a certificate\n");
        let missing = dir.path().join("missing.pem");

        let err = |c: TlsConfig| TlsContext::new(&c).expect_err("refused").to_string();
        let e = err(TlsConfig {
            ca_file: Some(missing.clone()),
            ..TlsConfig::default()
        });
        assert!(
            e.contains("tls.ca_file") && e.contains("missing.pem"),
            "{e}"
        );
        let e = err(TlsConfig {
            ca_file: Some(junk.clone()),
            ..TlsConfig::default()
        });
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = err(TlsConfig {
            cert_file: Some(cert_path.clone()),
            ..TlsConfig::default()
        });
        assert!(e.contains("go together"), "{e}");
        let e = err(TlsConfig {
            cert_file: Some(cert_path.clone()),
            key_file: Some(junk),
            ..TlsConfig::default()
        });
        assert!(e.contains("no PEM private key"), "{e}");
        // The key's text never appears in an error.
        assert!(!e.contains("PRIVATE KEY"), "{e}");
        let e = err(TlsConfig {
            server_name: Some("not a name".into()),
            ..TlsConfig::default()
        });
        assert!(e.contains("server_name"), "{e}");

        let ok = TlsContext::new(&TlsConfig {
            ca_file: Some(cert_path.clone()),
            cert_file: Some(cert_path),
            key_file: Some(key_path),
            ..TlsConfig::default()
        })
        .expect("valid");
        assert!(ok.acceptor().is_some(), "a certificate gives a listener");
        assert!(!ok.insecure());
        let no_identity = TlsContext::new(&TlsConfig {
            ca_file: Some(write(dir.path(), "ca.pem", &cert)),
            ..TlsConfig::default()
        })
        .expect("valid");
        assert!(no_identity.acceptor().is_none());
    }

    #[test]
    fn names_for_hosts() {
        assert!(matches!(
            server_name("[::1]"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("pbx.example.com."),
            Some(ServerName::DnsName(_))
        ));
        assert!(server_name("bad name").is_none());
        let ctx = TlsContext::new(&TlsConfig {
            insecure_skip_verify: true,
            server_name: Some("pbx.example.com".into()),
            ..TlsConfig::default()
        })
        .expect("insecure needs no CA");
        assert!(ctx.insecure());
        assert_eq!(
            ctx.name_for("10.0.0.1"),
            server_name("pbx.example.com"),
            "the configured name wins"
        );
    }

    #[test]
    fn handshake_errors_read_as_sentences() {
        let wrap = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let name = describe_handshake_error(&wrap(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        )));
        assert!(
            name.contains("certificate was refused") && name.contains("not valid for"),
            "{name}"
        );
        let issuer = describe_handshake_error(&wrap(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )));
        assert!(issuer.contains("tls.ca_file"), "{issuer}");
        let alert = describe_handshake_error(&wrap(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        )));
        assert!(alert.contains("tls.cert_file"), "{alert}");
        let plain = describe_handshake_error(&std::io::Error::other("reset"));
        assert!(plain.contains("reset"), "{plain}");
    }
}
