//! One authorised request to a phone's web server: which logins to try, Basic sent up front,
//! Digest answered fresh each time, wrong Digest logins counted in the state file (never more
//! than two until a success), and a phone that locks out (403) or restarts (503) put aside
//! instead of being asked again and again.

use super::Shared;
use crate::config::AuthScheme;
use crate::http::{self, HttpError, Response};
use crate::phone::{Blocked, Credentials, Phone, PhoneState};
use std::time::{Duration, Instant};
use tapir_core::{Configuration, Connection, DriverError, ErrorKind};

/// How long a phone that answers 503 is left alone.
pub(super) const RESTART_WAIT: Duration = Duration::from_secs(10);

/// Why a fetch failed.
#[derive(Debug)]
pub(super) enum FetchError {
    /// No connection, or no answer in time.
    Unreachable(String),
    /// No login was accepted (or none may be tried).
    Login(String),
    /// The phone refuses access for a while (locked out, restarting).
    Blocked(String),
}

impl FetchError {
    /// The error an application request gets.
    pub(super) fn into_driver_error(self) -> DriverError {
        match self {
            FetchError::Unreachable(m) | FetchError::Blocked(m) => {
                DriverError::new(ErrorKind::Disconnected, m)
            }
            FetchError::Login(m) => DriverError::failed(m),
        }
    }
}

impl Shared {
    fn candidates(&self, phone: &Phone, st: &PhoneState) -> Vec<Credentials> {
        if let Some(admin) = &self.config.admin_password {
            return vec![Credentials {
                login: "admin".into(),
                password: admin.clone(),
            }];
        }
        let mut out: Vec<Credentials> = st.login.iter().cloned().collect();
        match &phone.configured {
            Some(c) => out.push(c.clone()),
            None => out.extend(self.config.passwords.iter().map(|l| Credentials {
                login: l.login.clone(),
                password: l.password.clone(),
            })),
        }
        out.dedup();
        out
    }

    /// Whether the logins tried are the phone's own (configured, set, or admin) rather than
    /// the password list.
    fn own_login(&self, phone: &Phone, st: &PhoneState) -> Option<String> {
        if self.config.admin_password.is_some() {
            return Some("admin".into());
        }
        st.login
            .as_ref()
            .or(phone.configured.as_ref())
            .map(|c| c.login.clone())
    }

    /// Puts the phone aside: no request with credentials until the probe finds it answering
    /// with a login challenge again (locked) or at all (restarting).
    fn block(&self, phone: &Phone, locked: bool, why: String) {
        let wait = if locked {
            Duration::from_secs(self.config.lockout_retry_secs.max(1))
        } else {
            RESTART_WAIT
        };
        {
            let mut st = phone.lock();
            st.blocked = Some(Blocked {
                until: Instant::now() + wait,
                why: why.clone(),
                locked,
            });
            st.connection = if locked {
                Connection::NeedsRegistration
            } else {
                Connection::Connecting
            };
            st.configuration = if locked {
                Configuration::Problem
            } else {
                Configuration::Unknown
            };
            st.detail = None;
        }
        tracing::warn!(phone = %phone.key, %why, "The phone refuses access; it is asked again later.");
        self.settle_service(phone);
    }

    /// One authorised request: Basic is sent up front once known; Digest answers a fresh
    /// challenge each time (a stale nonce must never count as a wrong password). The password
    /// list is walked only with Basic; with Digest at most two wrong attempts are ever made
    /// until a login succeeds, across restarts (the state file) and new logins.
    pub(super) async fn fetch(
        &self,
        phone: &Phone,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<Response, FetchError> {
        if let Some(b) = &phone.lock().blocked {
            return Err(FetchError::Blocked(b.why.clone()));
        }
        let timeout = self.config.request_timeout();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| FetchError::Unreachable("the driver stopped".into()))?;
        let (known, scheme, candidates, own) = {
            let st = phone.lock();
            (
                st.login.clone(),
                st.scheme.or(phone.auth),
                self.candidates(phone, &st),
                self.own_login(phone, &st),
            )
        };
        let first_auth = match (scheme, &known) {
            (Some(AuthScheme::Basic), Some(c)) => Some(http_auth::basic::encode_credentials(
                &c.login,
                c.password.expose(),
            )),
            _ => None,
        };
        let send = |auth: Option<String>| async move {
            http::send(&phone.target, method, path, auth.as_deref(), body, timeout)
                .await
                .map_err(unreachable)
        };
        let mut response = send(first_auth.clone()).await?;
        self.refused(phone, &response).await?;
        if response.status != 401 {
            phone.lock().login_refused = None;
            return Ok(response);
        }
        let mut tried_known_basic = first_auth.is_some();
        for cred in candidates {
            let Some(challenge) = response.header("www-authenticate").map(str::to_owned) else {
                return Err(FetchError::Login(
                    "the phone refused the login without a challenge".into(),
                ));
            };
            let digest = challenge
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("digest");
            if digest {
                let (failures, wrong) = {
                    let st = phone.lock();
                    (st.digest_failures, st.wrong_login.clone())
                };
                if failures >= 2 {
                    return Err(FetchError::Login(format!(
                        "two wrong Digest logins are on record for this phone (last: login {}); the phone locks at the third, so no more are tried. Check the login on the phone, set it (set_login), then remove and add the phone to let tapir try again",
                        wrong.as_deref().map_or("unknown".to_owned(), |l| format!("{l:?}"))
                    )));
                }
            }
            if !digest && tried_known_basic && known.as_ref() == Some(&cred) {
                tried_known_basic = false;
                continue;
            }
            let auth = if digest {
                let mut client = http_auth::PasswordClient::try_from(challenge.as_str())
                    .map_err(|e| FetchError::Login(format!("bad challenge: {e}")))?;
                client
                    .respond(&http_auth::PasswordParams {
                        username: &cred.login,
                        password: cred.password.expose(),
                        uri: path,
                        method,
                        body: None,
                    })
                    .map_err(|e| FetchError::Login(format!("cannot answer the challenge: {e}")))?
            } else {
                http_auth::basic::encode_credentials(&cred.login, cred.password.expose())
            };
            response = send(Some(auth)).await?;
            self.refused(phone, &response).await?;
            if response.status == 401 {
                if digest {
                    let n = self.store_lock().wrong(phone.key.as_str(), &cred.login);
                    let mut st = phone.lock();
                    st.digest_failures = n;
                    st.wrong_login = Some(cred.login.clone());
                }
                let mut st = phone.lock();
                if st.login.as_ref() == Some(&cred) {
                    st.login = None;
                }
                continue;
            }
            if digest && phone.lock().digest_failures > 0 {
                self.store_lock().reset(phone.key.as_str());
            }
            let mut st = phone.lock();
            st.scheme = Some(if digest {
                AuthScheme::Digest
            } else {
                AuthScheme::Basic
            });
            if digest {
                st.digest_failures = 0;
                st.wrong_login = None;
            }
            st.login = Some(cred);
            st.login_refused = None;
            return Ok(response);
        }
        Err(FetchError::Login(match own {
            Some(login) => format!("the phone refused its login {login:?}"),
            None => "no login of the password list was accepted".into(),
        }))
    }

    /// A 503 (restarting) or a 403 that also meets a request without credentials (locked out)
    /// puts the phone aside. A 403 only for this login is the answer to this request.
    async fn refused(&self, phone: &Phone, response: &Response) -> Result<(), FetchError> {
        match response.status {
            503 => {
                let why = "the phone answers 503 (restarting or busy); it is asked again shortly"
                    .to_owned();
                self.block(phone, false, why.clone());
                Err(FetchError::Blocked(why))
            }
            403 => {
                let plain = http::send(
                    &phone.target,
                    "GET",
                    "/",
                    None,
                    None,
                    self.config.request_timeout(),
                )
                .await
                .map_err(unreachable)?;
                if plain.status != 403 {
                    return Ok(());
                }
                let why = format!(
                    "the phone refuses all access (403: locked out after wrong passwords); it is asked again in {} s, without a password",
                    self.config.lockout_retry_secs
                );
                self.block(phone, true, why.clone());
                Err(FetchError::Blocked(why))
            }
            _ => Ok(()),
        }
    }
}

fn unreachable(e: HttpError) -> FetchError {
    match e {
        HttpError::Connect(m) | HttpError::Exchange(m) | HttpError::Address(m) => {
            FetchError::Unreachable(m)
        }
    }
}
