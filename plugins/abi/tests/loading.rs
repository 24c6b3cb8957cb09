//! Loading real libraries: the example plugin, the incompatible fixture, junk, a library that
//! is no plugin and files that are no libraries, one by one and as a folder.

mod common;

use common::{library, BAD_ABI, EXAMPLE};
use std::path::{Path, PathBuf};
use tapir_plugin_abi::{load_plugin, scan_dir, LoadError};

const SO: &str = std::env::consts::DLL_EXTENSION;

#[test]
fn the_example_loads_with_its_description() {
    let path = library(EXAMPLE);
    let plugin = load_plugin(&path).unwrap();
    assert_eq!(plugin.name, "virtual-phone");
    assert_eq!(plugin.version, "0.1.0");
    assert!(
        plugin.summary.contains("without hardware"),
        "{}",
        plugin.summary
    );
    assert_eq!(plugin.path, path);
    assert_eq!(plugin.validate(&plugin.example_config), Ok(()));
    let refusal = plugin
        .validate(r#"{ "lines": [], "typo": 1 }"#)
        .unwrap_err();
    assert!(refusal.contains("typo"), "{refusal}");
}

#[test]
fn the_incompatible_fixture_is_refused_with_a_short_reason() {
    let path = library(BAD_ABI);
    let error = load_plugin(&path).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, LoadError::Incompatible { .. }), "{text}");
    assert!(text.starts_with(&format!(
        "{}: incompatible plugin interface: ",
        path.display()
    )));
    // A layout mismatch, not a name or package mismatch, and short.
    assert!(
        text.contains("too many fields") || text.contains("incompatible type size"),
        "{text}"
    );
    assert!(text.lines().count() == 1 && text.len() < 400, "{text}");
}

#[test]
fn junk_named_like_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join(format!("junk.{SO}"));
    std::fs::write(
        &junk,
        b"\x7fELF but not really, just junk bytes \x00\x01\x02",
    )
    .unwrap();
    let error = load_plugin(&junk).unwrap_err();
    assert!(matches!(error, LoadError::CannotOpen { .. }), "{error}");
    assert!(error.to_string().contains("junk"), "{error}");
}

/// A shared library of the system that is certainly not a tapir plugin.
fn system_library() -> PathBuf {
    let candidates = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib64/libm.so.6",
        "/lib64/libm.so.6",
        "/usr/lib/libm.so.6",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("a libm to test with")
}

#[test]
fn a_library_without_the_root_module_is_not_a_plugin() {
    let error = load_plugin(&system_library()).unwrap_err();
    assert!(matches!(error, LoadError::NotAPlugin { .. }), "{error}");
    assert!(error
        .to_string()
        .ends_with("not a tapir plugin (no root module symbol)"));
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn a_folder_scan_loads_the_good_and_refuses_the_rest_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Names chosen so that every bad file sorts before the good one.
    std::fs::copy(library(BAD_ABI), dir.path().join(format!("a-bad-abi.{SO}"))).unwrap();
    std::fs::write(dir.path().join(format!("b-junk.{SO}")), b"junk").unwrap();
    std::fs::copy(system_library(), dir.path().join(format!("c-libm.{SO}"))).unwrap();
    std::fs::write(dir.path().join("d-notes.txt"), "not a library").unwrap();
    std::fs::copy(
        library(EXAMPLE),
        dir.path().join(format!("e-virtual-phone.{SO}")),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join(format!("f-folder.{SO}"))).unwrap();

    let scan = scan_dir(dir.path());

    assert_eq!(scan.loaded.len(), 1, "{:?}", scan.refused);
    assert_eq!(scan.loaded[0].name, "virtual-phone");
    assert_eq!(
        file_name(&scan.loaded[0].path),
        format!("e-virtual-phone.{SO}")
    );
    let refused: Vec<(String, &LoadError)> = scan
        .refused
        .iter()
        .map(|r| (file_name(&r.path), &r.error))
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert_eq!(refused[0].0, format!("a-bad-abi.{SO}"));
    assert!(
        matches!(refused[0].1, LoadError::Incompatible { .. }),
        "{}",
        refused[0].1
    );
    assert!(
        matches!(refused[1].1, LoadError::CannotOpen { .. }),
        "{}",
        refused[1].1
    );
    assert!(
        matches!(refused[2].1, LoadError::NotAPlugin { .. }),
        "{}",
        refused[2].1
    );
    assert_eq!(refused[3].0, "d-notes.txt");
    assert!(matches!(refused[3].1, LoadError::NotALibrary { .. }));
    assert!(
        refused[3].1.to_string().contains("not a shared library"),
        "{}",
        refused[3].1
    );
    for refusal in &scan.refused {
        assert_eq!(refusal.error.path(), refusal.path);
    }
}
