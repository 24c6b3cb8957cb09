//! Logging: a `tracing` subscriber with the level filter, destination and format from config.

use crate::config::{LogConfig, LogFormat};
use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the configured level.
///
/// # Errors
/// The log file cannot be opened, or the level is not a valid filter.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env)?,
        _ => EnvFilter::try_new(&config.level)?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match (&config.file, config.format) {
        (Some(path), format) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let builder = builder.with_writer(Mutex::new(file)).with_ansi(false);
            match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().try_init(),
            }
        }
        (None, LogFormat::Text) => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        (None, LogFormat::Json) => builder.with_writer(std::io::stderr).json().try_init(),
    };
    // A second init (tests running several commands in one process) keeps the first subscriber.
    let _ = result;
    Ok(())
}
