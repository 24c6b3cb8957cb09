//! Phone-table operations through the host: `POST /v1/phones/{driver}/{device}/{action}` in
//! process with a tiny recording driver (tokens, errors, secrets), and `tapir phone` against a
//! daemon running the built-in snom driver.

mod support;

use std::process::Output;
use std::sync::{Arc, Mutex};
use support::web::{call, client};
use support::*;
use tapir_core::{
    DeviceAction, DeviceActionOutcome, DeviceStatus, DriverError, ErrorKind, PhoneDriver,
    RequestEnvelope,
};
use tapir_host::api::{self, ApiState};
use tapir_host::config::{Access, ApiToken, Config};
use tapir_host::host::Host;
use tapir_host::secret::Secret;
use tapir_tsp::{Tsp, TspConfig};

const CONTROL: &str = "control-token-phone-actions-1";
const READ: &str = "read-token-phone-actions-0001";

/// A driver with one device that records the actions it gets (passwords only as "matches").
#[derive(Default)]
struct Recording {
    seen: Arc<Mutex<Vec<String>>>,
}

impl PhoneDriver for Recording {
    fn submit(&self, _request: RequestEnvelope) -> Result<(), DriverError> {
        Err(DriverError::unavailable("no calls here"))
    }

    fn devices(&self) -> Vec<DeviceStatus> {
        vec![DeviceStatus {
            key: "000413A1B2C3".into(),
            ..DeviceStatus::default()
        }]
    }

    fn device_action(
        &self,
        device: &str,
        action: DeviceAction,
    ) -> Result<DeviceActionOutcome, DriverError> {
        if device != "000413A1B2C3" && !matches!(action, DeviceAction::Add { .. }) {
            return Err(DriverError::new(ErrorKind::BadDeviceId, "no such phone"));
        }
        let entry = match &action {
            DeviceAction::SetLogin { login, password } => {
                format!("{device} set_login {login} {}", password == "pa ss/word")
            }
            other => format!("{device} {}", other.name()),
        };
        self.seen.lock().expect("lock").push(entry);
        Ok(match action {
            DeviceAction::SaveConfiguration => DeviceActionOutcome::Configuration {
                text: "user_name1!: 100\n".into(),
            },
            DeviceAction::Add { .. } => DeviceActionOutcome::Added {
                key: device.replace(':', "_"),
            },
            DeviceAction::Remove => DeviceActionOutcome::Done,
            _ => DeviceActionOutcome::Queued,
        })
    }

    fn shutdown(&self) {}
}

async fn serve(seen: Arc<Mutex<Vec<String>>>) -> String {
    let tsp = Arc::new(Tsp::new(TspConfig::default()));
    tsp.add_driver("desk", |_sink| Ok(Box::new(Recording { seen })))
        .expect("driver builds");
    let host = Arc::new(Host::around(tsp, Vec::new()));
    let mut config = Config::empty();
    config.api.tokens = vec![
        ApiToken {
            name: "admin".into(),
            token: Secret::new(CONTROL),
            access: Access::Control,
        },
        ApiToken {
            name: "wallboard".into(),
            token: Secret::new(READ),
            access: Access::Read,
        },
    ];
    let state = Arc::new(ApiState::new(host, &config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = api::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_reach_the_driver_and_read_tokens_get_403() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let base = serve(Arc::clone(&seen)).await;
    let http = client();
    let url = |device: &str, action: &str| format!("{base}/v1/phones/desk/{device}/{action}");
    let json = Some(("application/json", "{}"));

    let a = call(
        &http,
        "POST",
        &url("000413A1B2C3", "refresh"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["outcome"], "queued");
    assert_eq!(a.body["action"], "refresh");
    assert_eq!(a.body["driver"], "desk");
    assert_eq!(a.body["device"], "000413A1B2C3");

    let a = call(
        &http,
        "POST",
        &url("000413A1B2C3", "write_configuration"),
        Some(CONTROL),
        json,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);

    // The password reaches the driver intact and is not echoed.
    let body = r#"{"login":"admin","password":"pa ss/word"}"#;
    let a = call(
        &http,
        "POST",
        &url("000413A1B2C3", "set_login"),
        Some(CONTROL),
        Some(("application/json", body)),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!a.text.contains("pa ss/word"), "{}", a.text);

    let a = call(
        &http,
        "POST",
        &url("000413A1B2C3", "save_configuration"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["outcome"], "configuration");
    assert_eq!(a.body["text"], "user_name1!: 100\n");

    let a = call(
        &http,
        "POST",
        &url("192.0.2.9:8080", "add"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["outcome"], "added");
    assert_eq!(a.body["key"], "192.0.2.9_8080");

    // A read token may not act; nothing reaches the driver.
    let before = seen.lock().expect("lock").len();
    let a = call(
        &http,
        "POST",
        &url("000413A1B2C3", "remove"),
        Some(READ),
        None,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "forbidden");
    let a = call(&http, "POST", &url("000413A1B2C3", "remove"), None, None).await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert_eq!(seen.lock().expect("lock").len(), before);

    // Errors: unknown driver, unknown device, unknown action, malformed parameters.
    let a = call(
        &http,
        "POST",
        &format!("{base}/v1/phones/nope/000413A1B2C3/refresh"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "bad_device_id");
    let a = call(
        &http,
        "POST",
        &url("unknown", "refresh"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.text);
    let a = call(
        &http,
        "POST",
        &url("000413A1B2C3", "explode"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "bad_request");
    let a = call(
        &http,
        "POST",
        &url("000413A1B2C3", "set_login"),
        Some(CONTROL),
        Some(("application/json", r#"{"password":"hunter2"}"#)),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(!a.text.contains("hunter2"), "{}", a.text);

    assert_eq!(
        *seen.lock().expect("lock"),
        vec![
            "000413A1B2C3 refresh",
            "000413A1B2C3 write_configuration",
            "000413A1B2C3 set_login admin true",
            "000413A1B2C3 save_configuration",
            "192.0.2.9:8080 add",
        ]
    );
}

fn remote(args: &[&str], token: &str, password: Option<&str>) -> Output {
    let mut cmd = tapir();
    cmd.args(args)
        .env_remove("TAPIR_URL")
        .env_remove("TAPIR_PHONE_PASSWORD")
        .env("TAPIR_TOKEN", token);
    if let Some(password) = password {
        cmd.env("TAPIR_PHONE_PASSWORD", password);
    }
    cmd.output().expect("tapir runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The daemon with the built-in snom driver: one phone on a loopback port nobody listens on
/// (it stays unreachable, which is all the table needs here).
#[test]
fn tapir_phone_acts_on_the_snom_driver_of_a_daemon() {
    let extra = "[drivers.desk]\ndriver = \"snom\"\nstatus_interval_secs = 0\nrequest_timeout_ms = 300\nphones = [ { address = \"127.0.0.1:9\" } ]\n";
    let host = web::start("", "", extra, false).wait_ready();
    let url = host.base.clone();
    let phones = |url: &str| -> serde_json::Value {
        let out = remote(&["phones", "--json", "--url", url], web::READ, None);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        serde_json::from_str(&stdout).expect("JSON")
    };
    let table = phones(&url);
    let keys: Vec<&str> = table["phones"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["driver"] == "desk")
        .filter_map(|p| p["key"].as_str())
        .collect();
    assert_eq!(keys, ["127.0.0.1_9"], "{table}");

    // A read token is refused.
    let out = remote(
        &["phone", "refresh", "--url", &url, "desk", "127.0.0.1_9"],
        web::READ,
        None,
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("403 forbidden"), "{stderr}");

    let out = remote(
        &["phone", "refresh", "--url", &url, "desk", "127.0.0.1_9"],
        web::CONTROL,
        None,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("refresh queued"), "{stdout}");

    // set_login: the password comes from the environment and is never printed.
    let out = remote(
        &[
            "phone",
            "set_login",
            "--url",
            &url,
            "--login",
            "admin",
            "desk",
            "127.0.0.1_9",
        ],
        web::CONTROL,
        Some("s3cret-pw"),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("s3cret-pw") && !stderr.contains("s3cret-pw"));

    // save_configuration asks the phone (on a blocking thread of the host): nobody answers
    // there, so the driver reports the phone unreachable.
    let out = remote(
        &[
            "phone",
            "save_configuration",
            "--url",
            &url,
            "desk",
            "127.0.0.1_9",
        ],
        web::CONTROL,
        None,
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("503 disconnected"), "{stderr}");

    // Unknown phone: the driver's BadDeviceId becomes 404.
    let out = remote(
        &["phone", "refresh", "--url", &url, "desk", "nope"],
        web::CONTROL,
        None,
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("404 bad_device_id"), "{stderr}");

    // The virtual phone (a dylib) offers no phone actions: the default crosses the ABI.
    let out = remote(
        &["phone", "refresh", "--url", &url, "office", "x"],
        web::CONTROL,
        None,
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("422 operation_unavailable"), "{stderr}");

    // Add a phone, then remove the first one: the table follows.
    let out = remote(
        &["phone", "add", "--url", &url, "desk", "127.0.0.1:7"],
        web::CONTROL,
        None,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("added 127.0.0.1_7"), "{stdout}");
    let out = remote(
        &["phone", "remove", "--url", &url, "desk", "127.0.0.1_9"],
        web::CONTROL,
        None,
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let table = phones(&url);
    let keys: Vec<&str> = table["phones"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["driver"] == "desk")
        .filter_map(|p| p["key"].as_str())
        .collect();
    assert_eq!(keys, ["127.0.0.1_7"], "{table}");
    let log = host.stop();
    assert!(!log.contains("s3cret-pw"), "the password was logged");
}
