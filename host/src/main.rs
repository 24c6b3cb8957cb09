//! `tapir`: the daemon and its administration commands.
//!
//! - `tapir run [--config FILE]`: run the host (embedded default when no file is given);
//! - `tapir check-config FILE`: report every problem of a configuration file;
//! - `tapir plugins [--plugin-dir DIR] [--json]`: list drivers and refused plugin files;
//! - `tapir format [--config FILE] [--line LINE] --category C NUMBER`: the number-rule check tool;
//! - `tapir call --config FILE --line LINE NUMBER`: place one call and print its events;
//! - `tapir lines | dial LINE NUMBER | drop CALL | events | phones | reload`: talk to a running
//!   host (`lines` and `phones` take `--search` and `--filter` like the status page)
//! - `tapir phone ACTION DRIVER DEVICE`: a phone-table operation on a running host
//!   over its API (`--url` or `--config`, token from `TAPIR_TOKEN`, `--json` for scripts);
//! - `tapir snom mass-config --config FILE --out DIR`: snom provisioning files.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tapir_host::commands::listing::ListArgs;
use tapir_host::commands::remote::{self, Remote, Target};

#[derive(Parser)]
#[command(
    name = "tapir",
    version,
    about = "An open CTI driver host: control desk phones from TAPI-style applications."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host until SIGINT or SIGTERM.
    Run {
        /// Configuration file; without it the embedded default is used (the simulated office,
        /// loopback).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and report every problem with its place.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// List the drivers this host can start, and the plugin files it refused.
    Plugins {
        /// A folder of driver libraries.
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show how a number is formatted by the number rules: which rule matched, and the result.
    Format {
        /// Configuration file; the embedded default (no rules) without it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A line with rules of its own: its key, DRIVER/KEY, or pinned id.
        #[arg(long)]
        line: Option<String>,
        /// dial, incoming or outgoing.
        #[arg(long)]
        category: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The number.
        number: String,
    },
    /// Place one call, print every event as a JSON line, exit 0 when it ended normally.
    Call {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The line: its device id, or its driver key.
        #[arg(long)]
        line: String,
        /// The address (identity) to call from.
        #[arg(long, default_value_t = 0)]
        address: u32,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Hang up this many seconds after the call is connected.
        #[arg(long)]
        hangup_after: Option<u64>,
        /// What to dial.
        number: String,
    },
    /// List the lines of a running host with their phones (MAC, IP, registration) and calls;
    /// search and filter like the status page.
    Lines {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Place a call through a running host.
    Dial {
        #[command(flatten)]
        target: Target,
        /// The address (identity) to call from.
        #[arg(long, default_value_t = 0)]
        address: u32,
        /// Wait up to this many seconds for the request to complete.
        #[arg(long)]
        wait: Option<f64>,
        /// The line: its device id, key or name.
        line: String,
        /// What to dial.
        number: String,
    },
    /// Hang up a call through a running host.
    Drop {
        #[command(flatten)]
        target: Target,
        /// Wait up to this many seconds for the request to complete.
        #[arg(long)]
        wait: Option<f64>,
        /// The call id.
        call: u64,
    },
    /// Follow the event stream of a running host.
    Events {
        #[command(flatten)]
        target: Target,
        /// Resume after this event position.
        #[arg(long)]
        after: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Show the phone table of a running host (model, firmware, MAC, IP, registration,
    /// configuration); search and filter like the status page.
    Phones {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Make a running host read its configuration again (as SIGHUP does); prints what changed,
    /// or every problem of a configuration it refused (then nothing changed).
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// Act on one phone of the phone table of a running host: refresh, write_configuration,
    /// remove, set_login, save_configuration, add. A password (set_login, add) is read from the
    /// environment variable TAPIR_PHONE_PASSWORD, never from the command line.
    Phone {
        #[command(flatten)]
        target: Target,
        /// The login (set_login, add).
        #[arg(long)]
        login: Option<String>,
        /// The MAC address (add).
        #[arg(long)]
        mac: Option<String>,
        /// save_configuration: write the configuration to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// refresh, write_configuration, remove, set_login, save_configuration or add.
        action: String,
        /// The driver instance (its config section name).
        driver: String,
        /// The device key from `tapir phones`; for add, the phone's address.
        device: String,
    },
    /// snom driver tools.
    Snom {
        #[command(subcommand)]
        command: SnomCommand,
    },
}

#[derive(Subcommand)]
enum SnomCommand {
    /// Write one snom XML settings file per phone type (Action URLs with the
    /// mass-configuration secret) for an existing provisioning server.
    MassConfig {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => tapir_host::commands::run::run(config),
        Command::CheckConfig { file } => tapir_host::commands::check_config::run(&file),
        Command::Plugins { plugin_dir, json } => {
            tapir_host::commands::plugins::run(plugin_dir.as_deref(), json)
        }
        Command::Format {
            config,
            line,
            category,
            json,
            number,
        } => tapir_host::commands::format::run(config, line, &category, &number, json),
        Command::Call {
            config,
            line,
            address,
            timeout,
            hangup_after,
            number,
        } => tapir_host::commands::call::run(tapir_host::commands::call::Args {
            config,
            line,
            address,
            timeout: std::time::Duration::from_secs(timeout),
            hangup_after: hangup_after.map(std::time::Duration::from_secs),
            number,
        }),
        Command::Lines { target, list } => remote::run(target, Remote::Lines(list)),
        Command::Dial {
            target,
            address,
            wait,
            line,
            number,
        } => remote::run(
            target,
            Remote::Dial {
                line,
                number,
                address,
                wait,
            },
        ),
        Command::Drop { target, wait, call } => remote::run(target, Remote::Drop { call, wait }),
        Command::Events {
            target,
            after,
            count,
        } => remote::run(target, Remote::Events { after, count }),
        Command::Phones { target, list } => remote::run(target, Remote::Phones(list)),
        Command::Reload { target } => remote::run(target, Remote::Reload),
        Command::Phone {
            target,
            login,
            mac,
            out,
            action,
            driver,
            device,
        } => remote::run(
            target,
            Remote::PhoneAction {
                action,
                driver,
                device,
                login,
                mac,
                password: std::env::var("TAPIR_PHONE_PASSWORD")
                    .ok()
                    .map(tapir_host::secret::Secret::new),
                out,
            },
        ),
        Command::Snom {
            command: SnomCommand::MassConfig { config, out },
        } => tapir_host::commands::snom::mass_config(&config, &out),
    }
}
