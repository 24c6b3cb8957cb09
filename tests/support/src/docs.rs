//! Documentation checked by tests: the TOML example of a driver's README, read as the section
//! the host would hand the driver, and the keys it names.

/// The first ```` ```toml ```` block of `readme`, and the table at `path` in it (a driver
/// section: `["drivers", "pbx"]`) as the JSON the host hands the driver, without its `driver`
/// key.
///
/// # Panics
/// When the README has no TOML block, it does not parse, or the table is missing (the test
/// fails with the reason).
pub fn toml_example(readme: &str, path: &[&str]) -> (String, serde_json::Value) {
    let block = readme
        .split("```toml")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("the README has no TOML example"));
    let doc: toml::Value = match toml::from_str(block) {
        Ok(v) => v,
        Err(e) => panic!("the README's TOML example does not parse: {e}"),
    };
    let mut table = &doc;
    for part in path {
        table = table
            .get(part)
            .unwrap_or_else(|| panic!("the README's example has no table {path:?}"));
    }
    let mut section = table.clone();
    if let Some(t) = section.as_table_mut() {
        t.remove("driver");
    }
    match serde_json::to_value(&section) {
        Ok(json) => (block.to_owned(), json),
        Err(e) => panic!("the README's example is not JSON-shaped: {e}"),
    }
}

/// The keys of `keys` that `block` never sets (`key = ...` at the start of a line, or
/// commented out as `# key = ...`).
pub fn keys_not_named<'a>(block: &str, keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    keys.into_iter()
        .filter(|key| {
            let set = format!("\n{key} = ");
            let commented = format!("# {key} = ");
            !block.contains(&set) && !block.contains(&commented)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_section_and_its_keys() {
        let readme =
            "text\n```toml\n[drivers.x]\ndriver = \"acd\"\nuser = \"a\"\n# realm = \"r\"\n```\n";
        let (block, json) = toml_example(readme, &["drivers", "x"]);
        assert_eq!(json, serde_json::json!({ "user": "a" }));
        assert_eq!(
            keys_not_named(&block, ["user", "realm", "domain"]),
            ["domain"]
        );
    }
}
