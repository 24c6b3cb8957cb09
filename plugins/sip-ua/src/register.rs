//! REGISTER client (RFC 3261 §10) for incoming-call indication: one binding per line, refreshed
//! before it expires, retried with exponential backoff and jitter after failures, and paced by a
//! shared [`TokenBucket`] so thousands of lines do not flood the registrar at start-up.
//!
//! The timing rules ([`refresh_delay`], [`Backoff`], [`granted_expires`], [`TokenBucket`]) are
//! sans-I/O and unit-tested; [`run`] is the small async loop that uses them.
//!
//! Once registered, the loop watches its flow ([`Endpoint::watch_flow`]): the endpoint keeps
//! it alive (CRLF or STUN keep-alives, RFC 5626 §4.4) and tells the loop when it failed (no
//! pong, its connection closed, a changed NAT mapping) or the public address changed; the loop
//! then registers again at once, on a new connection, instead of waiting for the refresh.

use crate::digest::{self, Credentials};
use crate::endpoint::Endpoint;
use crate::header::{NameAddr, Params, Uri};
use crate::message::{Message, Method};
use crate::resolve::failover::{send_non_invite, Sent};
use crate::resolve::{Resolver, Transport};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;

/// When to refresh a binding the registrar granted for `granted` seconds: at 80 % of it, but
/// at least 30 s before expiry when that is earlier, and never sooner than 1 s.
pub fn refresh_delay(granted: u32) -> Duration {
    let granted = u64::from(granted);
    let at_80 = granted * 8 / 10;
    let minus_30 = granted.saturating_sub(30);
    Duration::from_secs(at_80.min(minus_30).max(1))
}

/// Exponential backoff after failed registrations: `base · 2^attempt`, at most `max`, then
/// scaled by a jitter factor in [0.5, 1.0) (RFC 5626 §4.5 style) so lines that failed together
/// do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 = first retry); `jitter` in [0, 1).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(20));
        let raw = self.base.saturating_mul(factor).min(self.max);
        let j = 0.5 + jitter.clamp(0.0, 0.999) / 2.0;
        raw.mul_f64(j)
    }
}

/// The expiry the registrar granted our binding: the `expires` parameter of our Contact in the
/// 200 (matched by URI), else the `Expires` header, else what we asked for.
pub fn granted_expires(ok: &Message, our_contact: &str, requested: u32) -> u32 {
    let ours = NameAddr::parse(our_contact).map(|n| n.uri);
    for value in ok.header_values("Contact") {
        if let Some(c) = NameAddr::parse(value) {
            if Some(&c.uri) == ours.as_ref() {
                if let Some(e) = c.param("expires").and_then(|e| e.trim().parse().ok()) {
                    return e;
                }
            }
        }
    }
    ok.header("Expires")
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or(requested)
}

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` is clamped to at least 0.001 per second, `burst` to at least 1.
    pub fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: rate.max(0.001),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token: `None` when one was available, else how long until the next one.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// A [`TokenBucket`] shared by many registration tasks.
#[derive(Debug)]
pub struct Pacer {
    bucket: Mutex<TokenBucket>,
}

impl Pacer {
    /// `rate` REGISTERs per second, bursts of at most `burst`.
    pub fn new(rate: f64, burst: u32) -> Pacer {
        Pacer {
            bucket: Mutex::new(TokenBucket::new(rate, burst, Instant::now())),
        }
    }

    /// Waits for a token (each wait bounded by the bucket's refill time; at most 10 000 waits).
    pub async fn acquire(&self) {
        for _ in 0..10_000 {
            let wait = match self.bucket.lock() {
                Ok(mut b) => b.take(Instant::now()),
                Err(_) => None,
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d.min(Duration::from_secs(60))).await,
            }
        }
    }
}

/// What a registration needs.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Address of record (To/From), e.g. `sip:alice@pbx.example.com`.
    pub aor: String,
    /// Registrar (Request-URI), e.g. `sip:pbx.example.com`.
    pub registrar: Uri,
    /// Where to send (the registrar, or an outbound proxy).
    pub next_hop: Uri,
    /// A preloaded Route (outbound proxy), if any.
    pub route: Option<String>,
    /// User part of our Contact.
    pub contact_user: String,
    /// Extra Contact URI parameters (e.g. `line=7`, which tells the lines apart).
    pub contact_params: Vec<(String, Option<String>)>,
    /// Requested expiry in seconds.
    pub expires: u32,
    /// Transport.
    pub transport: Transport,
    /// Credentials for digest challenges.
    pub credentials: Credentials,
    /// Backoff after failures.
    pub backoff: Backoff,
    /// `User-Agent` of the REGISTERs; `None`: the endpoint's.
    pub user_agent: Option<String>,
}

/// What the registration loop reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// The binding is in place for `expires` seconds.
    Registered {
        /// Granted seconds.
        expires: u32,
    },
    /// The binding is not in place; the next try comes after `retry_in`.
    Failed {
        /// Why.
        error: RegisterError,
        /// When the next attempt starts.
        retry_in: Duration,
    },
}

/// Why a REGISTER failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegisterError {
    /// The registrar answered with a final error.
    #[error("the registrar answered {code} {reason}")]
    Rejected {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// Our credentials were refused (challenged again, or the challenge cannot be answered).
    #[error("the registrar refused our credentials: {0}")]
    Auth(String),
    /// No answer in time, or the transport failed.
    #[error("the registrar cannot be reached: {0}")]
    Unreachable(String),
}

struct State {
    call_id: String,
    from_tag: String,
    cseq: u32,
}

impl Registration {
    fn contact(&self, endpoint: &Endpoint, target: &crate::Target) -> String {
        let local = endpoint.local_addr_for(target);
        let mut uri = Uri::sip(Some(&self.contact_user), "", Some(local.port()));
        uri.host = match local.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        };
        // The transport of this target (NAPTR may pick another than configured).
        if let Some(t) = target.transport.uri_param() {
            uri.params.set("transport", Some(t));
        }
        for (k, v) in &self.contact_params {
            uri.params.set(k, v.as_deref());
        }
        format!("<{uri}>")
    }

    fn build(
        &self,
        st: &mut State,
        contact: &str,
        expires: u32,
        auth: Option<&(&'static str, String)>,
    ) -> Message {
        st.cseq += 1;
        let mut m = Message::request(Method::Register, self.registrar.to_string());
        m.push("Max-Forwards", "70");
        if let Some(r) = &self.route {
            m.push("Route", r.clone());
        }
        let from = NameAddr {
            display: None,
            uri: self.aor.clone(),
            params: Params(vec![("tag".into(), Some(st.from_tag.clone()))]),
        };
        m.push("From", from.to_string());
        m.push("To", format!("<{}>", self.aor));
        m.push("Call-ID", st.call_id.clone());
        m.push("CSeq", format!("{} REGISTER", st.cseq));
        m.push("Contact", contact.to_owned());
        m.push("Expires", expires.to_string());
        m.push("Allow", crate::ALLOW);
        if let Some((n, v)) = auth {
            m.push(n, v.clone());
        }
        if let Some(ua) = &self.user_agent {
            m.push("User-Agent", ua.clone());
        }
        m
    }

    /// One REGISTER exchange (with up to two digest rounds). Returns the granted expiry and
    /// where the REGISTER went (the flow). The registrar's targets are tried in RFC 3263
    /// order: a target that is down, silent or answers 503 gives way to the next
    /// (`resolve::failover`).
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        resolver: &Resolver,
        st: &mut State,
        expires: u32,
    ) -> Result<(u32, crate::Target), RegisterError> {
        let targets = resolver
            .resolve(&self.next_hop, self.transport)
            .await
            .map_err(|e| RegisterError::Unreachable(e.to_string()))?;
        let mut failover = resolver.failover(targets).ok_or_else(|| {
            RegisterError::Unreachable(format!("no address for {}", self.next_hop))
        })?;
        let mut auth: Option<(&'static str, String)> = None;
        let mut expires = expires;
        for _round in 0..4 {
            // Timer F bounds each transaction; the limit is a second guard.
            let sent = send_non_invite(
                endpoint,
                &mut failover,
                |target| {
                    let contact = self.contact(endpoint, target);
                    self.build(st, &contact, expires, auth.as_ref())
                },
                Duration::from_secs(40),
            )
            .await;
            let (req, resp, target) = match sent {
                Sent::Final(answered) => (answered.request, answered.response, answered.target),
                Sent::Failed(why) => return Err(RegisterError::Unreachable(why)),
            };
            let contact = req.header("Contact").unwrap_or_default().to_owned();
            let code = resp.code().unwrap_or(0);
            match code {
                200..=299 => {
                    if expires == 0 {
                        return Ok((0, target));
                    }
                    return Ok((granted_expires(&resp, &contact, expires), target));
                }
                401 | 407 => {
                    let stale = digest::is_stale(&resp);
                    if auth.is_some() && !stale {
                        return Err(RegisterError::Auth(format!(
                            "challenged again ({code} {})",
                            resp.reason_phrase().to_owned()
                        )));
                    }
                    auth = Some(answer(&req, &resp, &self.credentials)?);
                }
                423 => {
                    let min = resp
                        .header("Min-Expires")
                        .and_then(|v| v.trim().parse::<u32>().ok())
                        .filter(|m| *m > expires)
                        .ok_or(RegisterError::Rejected {
                            code,
                            reason: resp.reason_phrase().to_owned(),
                        })?;
                    expires = min;
                }
                _ => {
                    return Err(RegisterError::Rejected {
                        code,
                        reason: resp.reason_phrase().to_owned(),
                    })
                }
            }
        }
        Err(RegisterError::Auth("too many challenges".into()))
    }
}

/// Answers a 401/407 to `req` with the header (name, value) to add.
///
/// # Errors
/// [`RegisterError::Auth`] when no challenge can be answered.
pub fn answer(
    req: &Message,
    resp: &Message,
    creds: &Credentials,
) -> Result<(&'static str, String), RegisterError> {
    digest::answer_challenge(req, resp, creds).map_err(|e| RegisterError::Auth(e.to_string()))
}

/// Keeps `reg` registered until `stop` becomes true (or its sender is dropped), then removes
/// the binding (Expires: 0, waiting at most 5 s). Every attempt first takes a token from
/// `pacer`. `report` hears every change.
pub async fn run(
    endpoint: Endpoint,
    resolver: Arc<Resolver>,
    reg: Registration,
    pacer: Arc<Pacer>,
    mut stop: watch::Receiver<bool>,
    report: impl Fn(RegistrationEvent) + Send,
) {
    let host = reg.registrar.host.clone();
    let mut st = State {
        call_id: crate::dialog::new_call_id(&host),
        from_tag: crate::dialog::new_tag(),
        cseq: 0,
    };
    let mut failures: u32 = 0;
    let mut registered = false;
    let mut gauge = StateGauge(None);
    let mut flow: Option<(crate::Target, crate::endpoint::FlowWatch)> = None;
    gauge.set("registering");
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            () = pacer.acquire() => {}
            _ = stop.changed() => break,
        }
        let result = tokio::select! {
            r = reg.exchange(&endpoint, &resolver, &mut st, reg.expires) => r,
            _ = stop.changed() => break,
        };
        let wait = match result {
            Ok((expires, target)) => {
                failures = 0;
                registered = true;
                gauge.set("registered");
                if flow.as_ref().map(|(t, _)| *t) != Some(target) {
                    flow = endpoint.watch_flow(target).await.ok().map(|w| (target, w));
                }
                report(RegistrationEvent::Registered { expires });
                refresh_delay(expires)
            }
            Err(error) => {
                registered = false;
                gauge.set("failed");
                let retry_in = reg.backoff.delay(failures, fastrand::f64());
                failures = failures.saturating_add(1);
                tracing::info!(aor = %reg.aor, %error, ?retry_in, "Registration failed.");
                report(RegistrationEvent::Failed { error, retry_in });
                retry_in
            }
        };
        let flow_news = async {
            match flow.as_mut() {
                Some((_, w)) if registered => w.changed().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            news = flow_news => {
                let why = news.unwrap_or_else(|| "the endpoint stopped".into());
                tracing::info!(aor = %reg.aor, %why, "Registering again at once.");
            }
            _ = stop.changed() => break,
        }
    }
    if registered {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            reg.exchange(&endpoint, &resolver, &mut st, 0),
        )
        .await;
    }
}

/// One registration in the `tapir_sip_registrations{state}` gauge (registering, registered,
/// failed); it leaves the gauge when the loop ends.
struct StateGauge(Option<&'static str>);

impl StateGauge {
    fn set(&mut self, state: &'static str) {
        if self.0 == Some(state) {
            return;
        }
        if let Some(old) = self.0.replace(state) {
            metrics::gauge!("tapir_sip_registrations", "state" => old).decrement(1.0);
        }
        metrics::gauge!("tapir_sip_registrations", "state" => state).increment(1.0);
    }
}

impl Drop for StateGauge {
    fn drop(&mut self) {
        if let Some(old) = self.0.take() {
            metrics::gauge!("tapir_sip_registrations", "state" => old).decrement(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_comes_before_expiry() {
        assert_eq!(refresh_delay(3600), Duration::from_secs(2880));
        assert_eq!(refresh_delay(300), Duration::from_secs(240));
        assert_eq!(refresh_delay(60), Duration::from_secs(30));
        assert_eq!(refresh_delay(20), Duration::from_secs(1));
        assert_eq!(refresh_delay(0), Duration::from_secs(1));
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = Backoff {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(b.delay(0, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(0, 0.999).as_millis(), 1999);
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(8));
        assert_eq!(b.delay(10, 0.0), Duration::from_secs(30));
        assert!(b.delay(40, 0.99) < Duration::from_secs(60));
    }

    #[test]
    fn granted_expiry_prefers_our_contact() {
        let req = Message::parse(
            b"REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
              From: <sip:a@pbx>;tag=1\r\nTo: <sip:a@pbx>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\n\r\n",
        )
        .expect("register");
        let mut ok = Message::response_to(&req, 200, "OK", Some("x"));
        ok.push("Contact", "<sip:a@10.0.0.1:5060;line=2>;expires=100");
        ok.push("Contact", "<sip:a@10.0.0.1:5060;line=1>;expires=90");
        ok.push("Expires", "120");
        assert_eq!(
            granted_expires(&ok, "<sip:a@10.0.0.1:5060;line=1>", 300),
            90
        );
        assert_eq!(
            granted_expires(&ok, "<sip:a@10.0.0.1:5060;line=3>", 300),
            120
        );
        ok.remove("Expires");
        assert_eq!(
            granted_expires(&ok, "<sip:a@10.0.0.1:5060;line=3>", 300),
            300
        );
    }

    #[test]
    fn token_bucket_paces() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 2, t0);
        assert_eq!(b.take(t0), None);
        assert_eq!(b.take(t0), None);
        let wait = b.take(t0).expect("empty");
        assert!(wait <= Duration::from_millis(10) && wait >= Duration::from_millis(9));
        assert_eq!(b.take(t0 + Duration::from_millis(10)), None);
        // A long pause refills at most `burst`.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.take(later), None);
        assert_eq!(b.take(later), None);
        assert!(b.take(later).is_some());
    }
}
