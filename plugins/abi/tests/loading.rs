//! Loading real libraries: the example plugin, the incompatible fixture, junk and non-library
//! files, one by one and as a folder.

mod common;

use common::{library, BAD_ABI, EXAMPLE};
use tapir_plugin_abi::{load_plugin, LoadError};

#[test]
fn the_incompatible_fixture_is_refused_with_a_short_reason() {
    let path = library(BAD_ABI);
    let error = load_plugin(&path).unwrap_err();
    let text = error.to_string();
    eprintln!("{text}");
    assert!(matches!(error, LoadError::Incompatible { .. }), "{text}");
}
