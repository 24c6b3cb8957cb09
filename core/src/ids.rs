//! Identifiers: newtypes so that a line, a call and a request can never be confused.
//!
//! Two kinds of identity exist side by side:
//! - [`LineKey`] is the *driver's* name for a line (a phone's MAC plus line index, a SIP account
//!   name). It is stable and chosen by the driver.
//! - [`LineId`] is the *front end's* numbered device id (TAPI's dwDeviceID), assigned by the TSP
//!   front end from its line table. Drivers never see it.
//!
//! [`CallId`] and [`RequestId`] are allocated by the host and shared by both sides.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A numbered line device as applications see it (TAPI's device id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LineId(pub u32);

/// An address on a line. Desk phones usually have one (address 0); multi-identity phones more.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct AddressId(pub u32);

/// A call, from the moment it is created until the application closes it after Idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub u64);

/// An asynchronous request; it completes exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// The driver's own stable name for one of its lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LineKey(pub String);

impl LineKey {
    /// Creates a key from anything string-like.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for LineKey {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

macro_rules! display_number {
    ($($ty:ty => $prefix:literal),* $(,)?) => {
        $(impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        })*
    };
}

display_number!(LineId => "", AddressId => "", CallId => "", RequestId => "");

impl fmt::Display for LineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
