//! # tapir-tspi: the Windows TSP face of tapir
//!
//! A `cdylib` that exports TAPI's `TSPI_*` and `TUISPI_*` functions by name, so that the
//! Windows telephony service (TAPISRV) can load it as a `.tsp` and drive tapir's lines. The same
//! source builds a `.so` on Linux, which a C harness loads the way TAPISRV would.
//!
//! Two modes behind one provider: the host runs inside the library (`TSPI_providerEnumDevices`
//! reads the configuration named by `TAPIR_CONFIG` or the registry and starts the drivers), or
//! the library is a thin client of a central `tapir run` host ([`remote`], the network split);
//! see `README.md`.
//!
//! The crate is a safe core with a thin pointer layer around it:
//! - [`error`]: why a function refuses, and its LINEERR code;
//! - [`wide`]: UTF-16 strings as TSPI passes them;
//! - [`version`]: TSPI version negotiation;
//! - [`varstruct`]: the variable-size structure convention (total, needed, used; offset/size
//!   strings; nothing written past dwTotalSize);
//! - [`structs`]: LINEDEVCAPS, LINEADDRESSCAPS, LINECALLINFO, LINECALLSTATUS,
//!   LINEADDRESSSTATUS, LINEDEVSTATUS and VARSTRING filled from the front end's snapshots;
//! - [`provider`]: the provider's state (device ids, open lines, call handles, request ids)
//!   and every TSPI operation in safe Rust;
//! - [`dispatch`]: the one thread that sends every callback (no re-entry, no callback after
//!   shutdown);
//! - [`config`]: where the configuration comes from and which mode it asks for;
//! - [`registry`]: tapir's registry values and TAPI's provider list (Windows);
//! - [`backend`]: the host inside, or the [`remote`] link, as one front end;
//! - [`install`]: `TUISPI_providerInstall`'s refusal of a second instance;
//! - [`ffi`]: the few functions that touch caller pointers;
//! - [`exports`]: the `extern "system"` functions themselves.
//!
//! TAPI's numbers come from [`tapir_tsp::tapi`]; this crate defines none of its own.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![warn(unsafe_op_in_unsafe_fn)]

pub mod backend;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod exports;
pub mod ffi;
pub mod install;
pub mod provider;
pub mod registry;
pub mod remote;
pub mod structs;
pub mod varstruct;
pub mod version;
pub mod wide;

pub use error::TspiError;
