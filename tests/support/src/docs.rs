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

/// Every `[drivers.NAME]` table, in every TOML block of the README, whose `driver` is one of
/// `drivers`: its name and the JSON the host hands the driver (without `driver`), with the
/// text of all those blocks. For checking every example of a README against its parser.
///
/// # Panics
/// When a TOML block does not parse.
pub fn driver_sections(
    readme: &str,
    drivers: &[&str],
) -> (String, Vec<(String, serde_json::Value)>) {
    let mut text = String::new();
    let mut out = Vec::new();
    for block in readme.split("```toml").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        let doc: toml::Value = match toml::from_str(block) {
            Ok(v) => v,
            Err(e) => panic!("a TOML example of the README does not parse: {e}\n{block}"),
        };
        let Some(tables) = doc.get("drivers").and_then(toml::Value::as_table) else {
            continue;
        };
        let mut used = false;
        for (name, table) in tables {
            let driver = table.get("driver").and_then(toml::Value::as_str);
            if !driver.is_some_and(|d| drivers.contains(&d)) {
                continue;
            }
            let mut section = table.clone();
            if let Some(t) = section.as_table_mut() {
                t.remove("driver");
            }
            match serde_json::to_value(&section) {
                Ok(json) => out.push((name.clone(), json)),
                Err(e) => panic!("the README's example {name} is not JSON-shaped: {e}"),
            }
            used = true;
        }
        if used {
            text.push_str(block);
        }
    }
    (text, out)
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
