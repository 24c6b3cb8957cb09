//! The Windows build under Wine: `tapir.tsp` as `scripts/build-windows.sh` makes it, loaded
//! with `LoadLibrary` by the C harness built with MinGW as a Windows program, the way TAPISRV
//! loads a provider. In a throw-away Wine prefix it checks, in turn: the host inside with the
//! configuration path from the registry's 64-bit view, then from the 32-bit view;
//! `TUISPI_providerInstall` accepting a first install and refusing a second one; and remote
//! mode against a Linux `tapir run` daemon on loopback that is killed and started again,
//! configured by the registry values `Url`, `Token` and `Lines`.
//!
//! Needs `wine`, MinGW (`x86_64-w64-mingw32-gcc`) and the Windows build
//! (`target/windows/dist`); without them it prints SKIPPED, unless `TSPI_WINE_TESTS=1` (set
//! by `.ci/windows`) makes that a failure.

mod common;

use common::{build, free_port, run_harness, Daemon, COMMON_RULES, REMOTE_RULES, TOKEN};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(240);
const PROVIDERS: &str = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Telephony\Providers";

fn dist() -> PathBuf {
    std::env::var_os("TAPIR_WINDOWS_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::target_dir().join("windows/dist"))
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    for tool in ["wine", "wineboot", "wineserver", "x86_64-w64-mingw32-gcc"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    let tsp = dist().join("tapir.tsp");
    if !tsp.exists() {
        return Some(format!(
            "{} is missing: run scripts/build-windows.sh --debug",
            tsp.display()
        ));
    }
    None
}

/// The Windows path Wine gives a Linux path (drive Z: is `/`).
fn win(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// A throw-away Wine prefix; its wineserver is stopped on drop.
struct Prefix {
    dir: tempfile::TempDir,
}

impl Prefix {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("prefix dir");
        let prefix = Self { dir };
        let status = prefix
            .command("wineboot")
            .arg("-i")
            .status()
            .expect("wineboot runs");
        assert!(status.success(), "wineboot failed");
        prefix
    }

    fn system32(&self) -> PathBuf {
        self.dir.path().join("drive_c/windows/system32")
    }

    /// A Wine command in this prefix: no display, no Wine debug output, and none of the
    /// test's `TAPIR_*` variables (Wine passes the environment on, and the host inside reads
    /// every `TAPIR_*` variable as configuration; the provider must find its configuration
    /// in the registry).
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("WINEPREFIX", self.dir.path())
            .env("WINEDEBUG", "-all")
            .env_remove("DISPLAY");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TAPIR_") {
                command.env_remove(name);
            }
        }
        command
    }

    fn reg(&self, args: &[&str]) {
        let out = self
            .command("wine")
            .arg("reg")
            .args(args)
            .output()
            .expect("wine reg runs");
        assert!(
            out.status.success(),
            "wine reg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = self.command("wineserver").arg("-k").status();
    }
}

fn mingw(output: &Path, args: &[PathBuf], libs: &[&str]) {
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-Wall", "-Wextra", "-Werror", "-O1", "-o"])
        .arg(output)
        .args(args)
        .args(libs)
        .output()
        .expect("MinGW runs");
    assert!(
        out.status.success(),
        "MinGW failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn embedded_config(dir: &Path, phones_port: u16) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins");
    std::fs::copy(
        dist().join("plugins/tapir_example_virtual_phone.dll"),
        plugins.join("tapir_example_virtual_phone.dll"),
    )
    .expect("copy the Windows plugin");
    let config = dir.join("tapir.toml");
    std::fs::write(
        &config,
        format!(
            r#"plugin_dir = '{}'

[log]
level = "warn"

[phones]
listen = "127.0.0.1:{phones_port}"

[http]
enabled = false

[drivers.office]
driver = "virtual-phone"
dial_ms = 50
ring_ms = 100
lines = [ {{ key = "100", name = "Reception" }}, {{ key = "101", name = "Back office" }} ]
"#,
            win(&plugins)
        ),
    )
    .expect("write config");
    config
}

#[test]
fn tapir_tsp_under_wine_in_both_modes() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("TSPI_WINE_TESTS").as_deref() != Ok("1"),
            "TSPI_WINE_TESTS=1 but {why}"
        );
        println!("SKIPPED: {why}");
        return;
    }
    let (_, plugin, tapir) = build();
    let prefix = Prefix::new();
    let work = tempfile::tempdir().expect("work dir");
    // The test fixture standing in for bcryptprimitives.dll (Wine 8 lacks it), then the
    // provider where TAPISRV finds providers.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine");
    mingw(
        &prefix.system32().join("bcryptprimitives.dll"),
        &[
            "-shared".into(),
            fixture.join("bcryptprimitives.c"),
            fixture.join("bcryptprimitives.def"),
        ],
        &["-lbcrypt"],
    );
    std::fs::copy(
        dist().join("tapir.tsp"),
        prefix.system32().join("tapir.tsp"),
    )
    .expect("copy");
    let harness = work.path().join("tspi_harness.exe");
    let sources = common::harness_dir();
    mingw(
        &harness,
        &[
            sources.join("tspi_harness.c"),
            sources.join("compat_win32.c"),
        ],
        &["-lws2_32"],
    );
    let phones_port = free_port();
    let config = embedded_config(work.path(), phones_port);
    let harness_run = |mode: Option<&str>, port: u16, host: &mut dyn FnMut(&str)| {
        let mut command = prefix.command("wine");
        command
            .arg(&harness)
            .arg("tapir.tsp")
            .env("TSPI_HARNESS_PHONES_PORT", port.to_string());
        if let Some(mode) = mode {
            command.env("TSPI_HARNESS_MODE", mode);
        }
        run_harness(command, DEADLINE, host)
    };
    let key = r"HKLM\SOFTWARE\tapir";

    // 1. The host inside, the configuration named in the 64-bit view.
    prefix.reg(&[
        "add",
        key,
        "/v",
        "Config",
        "/t",
        "REG_SZ",
        "/d",
        &win(&config),
        "/f",
        "/reg:64",
    ]);
    let run = harness_run(None, phones_port, &mut |w| panic!("unexpected HOST {w}"));
    common::assert_passed(&run, COMMON_RULES);

    // 2. The same, named in the 32-bit view only.
    prefix.reg(&["delete", key, "/f", "/reg:64"]);
    prefix.reg(&[
        "add",
        key,
        "/v",
        "Config",
        "/t",
        "REG_SZ",
        "/d",
        &win(&config),
        "/f",
        "/reg:32",
    ]);
    let run = harness_run(None, phones_port, &mut |w| panic!("unexpected HOST {w}"));
    common::assert_passed(&run, COMMON_RULES);
    prefix.reg(&["delete", key, "/f", "/reg:32"]);

    // 3. Add provider: the first install is accepted, a second one refused.
    let install = |expect: &str| {
        let out = prefix
            .command("wine")
            .arg(&harness)
            .args(["tapir.tsp", "install"])
            .output()
            .expect("harness runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(expect), "providerInstall: {text}");
    };
    install("providerInstall r=0x0");
    prefix.reg(&[
        "add",
        PROVIDERS,
        "/v",
        "NumProviders",
        "/t",
        "REG_DWORD",
        "/d",
        "1",
        "/f",
    ]);
    prefix.reg(&[
        "add",
        PROVIDERS,
        "/v",
        "ProviderFileName0",
        "/t",
        "REG_SZ",
        "/d",
        "tapir.tsp",
        "/f",
    ]);
    install("providerInstall r=0x80000056");

    // 4. Remote mode against a Linux daemon, configured by registry values alone; the
    //    daemon is killed and started again while the harness runs.
    let mut daemon = Daemon::new(&tapir, work.path(), &plugin);
    daemon.start();
    prefix.reg(&[
        "add",
        key,
        "/v",
        "Url",
        "/t",
        "REG_SZ",
        "/d",
        &daemon.url(),
        "/f",
    ]);
    prefix.reg(&["add", key, "/v", "Token", "/t", "REG_SZ", "/d", TOKEN, "/f"]);
    prefix.reg(&[
        "add",
        key,
        "/v",
        "Lines",
        "/t",
        "REG_SZ",
        "/d",
        "100, 101, 300",
        "/f",
    ]);
    let phones = daemon.phones_port;
    let run = harness_run(Some("remote"), phones, &mut |what| match what {
        "stop" => daemon.kill(),
        "start" => daemon.start(),
        other => panic!("unexpected HOST {other}"),
    });
    common::assert_passed(&run, COMMON_RULES);
    common::assert_passed(&run, REMOTE_RULES);
}
