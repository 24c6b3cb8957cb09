//! # tapir-plugin-abi: drivers as dynamic libraries
//!
//! This is the *interface crate* between the tapir host and out-of-tree drivers built as
//! `cdylib`s, on top of [abi_stable]. It has three parts:
//! - [`ffi`]: what crosses the boundary: the root module [`DriverMod`] every plugin exports,
//!   and two `#[sabi_trait]` objects, [`FfiDriver`] (implemented by the plugin) and [`FfiSink`]
//!   (implemented by the host);
//! - the plugin side ([`export_driver!`] and the hidden [`plugin`] module): a driver author
//!   writes an ordinary [`tapir_core::PhoneDriver`] and one macro call, and never sees
//!   abi_stable;
//! - the host side ([`load_plugin`], [`scan_dir`], [`LoadedPlugin::build`]): loading
//!   libraries with typed errors, and an adapter that makes a dylib driver look exactly like a
//!   built-in one.
//!
//! ## Writing a plugin
//!
//! Make the crate `crate-type = ["cdylib", "rlib"]`, depend on `tapir-core` and
//! `tapir-plugin-abi`, write a `validate` and a `build` function with tapir-core's
//! [`ValidateFn`](tapir_core::ValidateFn) and [`BuildFn`](tapir_core::BuildFn) signatures, and
//! call [`export_driver!`] once (its documentation has a complete, compiled example).
//! `examples/virtual-phone` is a full plugin to copy.
//!
//! ## Design decision: payloads cross as JSON
//!
//! Requests, events, outcomes and errors cross the boundary as JSON text (`RString`/`RStr`) of
//! the tapir-core serde types, not as `#[repr(C)]` mirrors of them. Reasons:
//! - the layout-checked ABI stays tiny (six root-module functions, two traits with six methods
//!   in all), so it rarely has to change, and a change is easy to review;
//! - the domain types (`Request`, `DriverEvent`, `CallState`...) keep evolving with tapir-core;
//!   serde's `#[serde(default)]` and its tolerance of unknown fields let a plugin built against
//!   an older tapir-core keep working, where a layout-checked mirror would refuse to load;
//! - what one side cannot read is handled, not fatal: an unknown request is refused
//!   (`OperationUnavailable`), an unknown event is dropped with a warning, and an unreadable
//!   completion still completes its request (with an error), so "every request completes
//!   exactly once" survives version skew.
//!
//! The cost, a JSON encode and decode per request and event, is negligible at telephony rates.
//!
//! ## Panics
//!
//! abi_stable ends the process (`std::process::exit(1)`) when a panic reaches the boundary.
//! So every entry point catches panics on its own side: in the plugin, `validate` and `build`
//! panics become errors, and a panic in `submit` becomes
//! `DriverError { kind: OperationFailed, detail: "driver panicked: <message>" }` for that
//! request only; in the host, a panicking sink is logged. The host keeps running.
//!
//! ## Logs
//!
//! A cdylib has its own copy of `tracing`. The plugin side installs a forwarding subscriber
//! the first time a driver is built; the host re-emits each line under the target
//! [`PLUGIN_LOG_TARGET`] with fields `plugin` and `source` (see [`logging`]).

// abi_stable's derive and attribute macros (`StableAbi`, `#[sabi_trait]`) expand to `unsafe`
// code and to impls that the `non_local_definitions` lint flags; the export macro needs
// `#[no_mangle]` and `LibHeader::from_constructor`. This crate is the one place of tapir,
// with the loader, where that is allowed.
#![allow(unsafe_code)]
#![allow(non_local_definitions)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

mod adapter;
pub mod ffi;
mod loader;
pub mod logging;
#[doc(hidden)]
pub mod plugin;
mod wire;

pub use ffi::{DriverMod, DriverModRef, FfiDriver, FfiSink, LogLevel};
pub use loader::{load_plugin, scan_dir, LoadError, LoadedPlugin, PluginScan, RefusedPlugin};
pub use logging::PLUGIN_LOG_TARGET;

/// What [`export_driver!`] expands to refers to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::plugin::{lib_header, PluginDef};
    pub use abi_stable::library::LibHeader;
    pub use tapir_core::{BuildFn, ValidateFn};
}
