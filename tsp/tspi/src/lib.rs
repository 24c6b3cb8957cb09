//! # tapir-tspi: the Windows TSP face of tapir
//!
//! A `cdylib` that exports TAPI's `TSPI_*` and `TUISPI_*` functions by name, so that the
//! Windows telephony service (TAPISRV) can load it as a `.tsp` and drive tapir's lines. The same
//! source builds a `.so` on Linux, which a C harness loads the way TAPISRV would.
//!
//! The host runs inside the library: `TSPI_providerEnumDevices` reads the configuration named
//! by the `TAPIR_CONFIG` environment variable (on Windows also a registry value) and starts
//! the drivers; see `README.md` for why.
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
//! - [`config`]: where the configuration comes from;
//! - [`ffi`]: the few functions that touch caller pointers;
//! - [`exports`]: the `extern "system"` functions themselves.
//!
//! TAPI's numbers come from [`tapir_tsp::tapi`]; this crate defines none of its own.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]
#![warn(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod dispatch;
pub mod error;
pub mod exports;
pub mod ffi;
pub mod provider;
pub mod structs;
pub mod varstruct;
pub mod version;
pub mod wide;

pub use error::TspiError;
