//! Through the `tapir` binary: `tapir call` against a simulated phone (the phone answers, the
//! call is hung up, exit 0), and `tapir snom mass-config`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tapir_snom_sim::{Sim, SimConfig};

/// The `tapir` binary of this workspace, built if it is not there yet.
fn tapir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target
        .join("debug")
        .join(format!("tapir{}", std::env::consts::EXE_SUFFIX));
    // Always ask cargo: a no-op when the binary is up to date, a rebuild when it is stale.
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "tapir-host", "--bin", "tapir"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building tapir failed");
    bin
}

/// Runs a command with a deadline; kills it (by its own PID) when the deadline passes.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (status, out, err)
}

#[test]
fn tapir_call_against_a_simulated_phone() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim
        .phone(SimConfig {
            mac: "000413000041".into(),
            answer_after: Some(Duration::from_millis(300)),
            ..SimConfig::default()
        })
        .expect("phone");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("tapir.toml");
    std::fs::write(
        &config,
        format!(
            "[phones]\nlisten = \"127.0.0.1:0\"\n\n[log]\nlevel = \"warn\"\n\n[drivers.office]\ndriver = \"snom\"\nstatus_interval_secs = 0\nphones = [{{ address = \"{}\", mac = \"000413000041\" }}]\n",
            phone.addr()
        ),
    )
    .expect("config");
    let (status, out, err) = run_bounded(
        Command::new(tapir())
            .args(["call", "--config"])
            .arg(&config)
            .args([
                "--line",
                "000413000041",
                "--hangup-after",
                "1",
                "--timeout",
                "20",
                "200",
            ]),
        Duration::from_secs(40),
    );
    let states: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "call_state")
        .filter_map(|v| v["state"]["state"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(status, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        states,
        vec!["dialing", "ringback", "connected", "idle"],
        "{out}"
    );
    assert!(phone.requests().iter().any(|r| r.contains("number=200")));
    assert!(phone.requests().iter().any(|r| r.contains("key=CANCEL")));
    assert!(phone.calls().is_empty());
    assert_eq!(phone.parallel_violations(), 0);
}

#[test]
fn tapir_snom_mass_config_writes_one_file_per_type() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("tapir.toml");
    std::fs::write(
        &config,
        "[phones]\nlisten = \"127.0.0.1:8781\"\npublic_url = \"http://pbx.example.com:8781\"\n\n[drivers.office]\ndriver = \"snom\"\nmass_config_secret = \"m4ss\"\nphone_types = [\"snomD785\", \"snom320\"]\n",
    )
    .expect("config");
    let out_dir = dir.path().join("out");
    let (status, out, err) = run_bounded(
        Command::new(tapir())
            .args(["snom", "mass-config", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out_dir),
        Duration::from_secs(20),
    );
    assert_eq!(status, Some(0), "{out}{err}");
    let xml = std::fs::read_to_string(out_dir.join("snomD785.xml")).expect("file");
    assert!(xml.contains("<settings>") && xml.contains("<phone-settings"));
    assert!(xml.contains(
        "<action_incoming_url perm=\"RW\">http://pbx.example.com:8781/phones/office/m/m4ss/incoming?mac=$mac"
    ));
    assert!(out_dir.join("snom320.xml").exists());
    // Without the secret it refuses.
    std::fs::write(&config, "[drivers.office]\ndriver = \"snom\"\n").expect("config");
    let (status, _, err) = run_bounded(
        Command::new(tapir())
            .args(["snom", "mass-config", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out_dir),
        Duration::from_secs(20),
    );
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("mass_config_secret"), "{err}");
}
