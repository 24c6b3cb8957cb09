//! Checking a configuration: every problem found, each with its key path and, for a file, the
//! line and column it comes from.

use crate::catalog::Catalog;
use crate::config::{
    ApiConfig, Config, DriverSection, HttpConfig, LogConfig, PhonesConfig, PinnedLine, Source,
    TspSection, Variable, TOP_LEVEL_KEYS,
};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use tapir_core::numbers::NumberPlanConfig;
use toml_edit::{ImDocument, Item};

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path (`drivers.office.ring_ms`, `lines[2].id`); empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Line and column (1-based) in the file, when the problem can be placed there.
    pub location: Option<(usize, usize)>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.location {
            write!(f, "{line}:{column}: ")?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The result of a check: the configuration when it is usable, and every problem found.
pub struct Checked {
    /// The configuration, when it could be read at all.
    pub config: Option<Config>,
    /// The drivers the configuration can use (built-ins and its plugin folder), once the
    /// configuration could be read.
    pub catalog: Option<Catalog>,
    /// Problems; empty when the configuration is good.
    pub problems: Vec<Problem>,
    /// Remarks that are no problem: `TAPIR_` variables that are ignored.
    pub notes: Vec<String>,
}

/// Reads and checks the configuration from `source`. Driver sections are checked by their
/// drivers (built-in or loaded from the plugin folder named in the configuration).
pub fn check(source: &Source, catalog_for: impl FnOnce(&Config) -> Catalog) -> Checked {
    let mut checked = check_unredacted(source, catalog_for);
    for problem in &mut checked.problems {
        if is_secret_path(&problem.path) {
            problem.message = redact_values(&problem.message);
        }
    }
    checked
}

/// Names the setting variable behind a problem, when one sets its key (the environment wins
/// over the file, so the file's position would point at the wrong source).
fn name_variable(problem: &mut Problem, from_env: bool) {
    let keys = keys_of(&parse_path(&problem.path));
    if let Some(name) = crate::config::variable_for(&keys, from_env) {
        problem
            .message
            .push_str(&format!(" (from the environment variable {name})"));
        problem.location = None;
    }
}

/// The keys of a path, without list positions (variables set whole lists).
fn keys_of(parts: &[PathPart]) -> Vec<String> {
    parts
        .iter()
        .filter_map(|p| match p {
            PathPart::Key(k) => Some(k.clone()),
            PathPart::Index(_) => None,
        })
        .collect()
}

/// Keys whose values are secrets: a problem about them must not echo the value.
fn is_secret_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["password", "secret", "token", "callback_key"]
        .iter()
        .any(|word| lower.contains(word))
}

/// Replaces every quoted or back-quoted value in a message with `***`.
fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push_str("***");
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        out.push_str("***");
    }
    out
}

fn check_unredacted(source: &Source, catalog_for: impl FnOnce(&Config) -> Catalog) -> Checked {
    let mut problems = Vec::new();
    let text = match source {
        Source::Embedded => crate::config::EMBEDDED_DEFAULT.to_owned(),
        Source::File(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                problems.push(Problem {
                    path: String::new(),
                    message: format!("cannot read {}: {error}", path.display()),
                    location: None,
                });
                return Checked {
                    config: None,
                    catalog: None,
                    problems,
                    notes: ignored_variables(),
                };
            }
        },
    };
    let doc = match ImDocument::parse(text.clone()) {
        Ok(doc) => doc,
        Err(error) => {
            problems.push(Problem {
                path: String::new(),
                message: format!("TOML syntax: {}", error.message().trim()),
                location: error.span().map(|s| line_column(&text, s.start)),
            });
            return Checked {
                config: None,
                catalog: None,
                problems,
                notes: ignored_variables(),
            };
        }
    };
    let locate = |path: &[PathPart]| locate(&doc, &text, path);

    for (key, _) in doc.as_table().iter() {
        if !TOP_LEVEL_KEYS.contains(&key) {
            let path = [PathPart::Key(key.to_owned())];
            problems.push(Problem {
                path: key.to_owned(),
                message: format!("unknown key; expected one of {}", TOP_LEVEL_KEYS.join(", ")),
                location: locate(&path),
            });
        }
    }

    let figment = source.figment();
    let mut report = |section: &str, error: figment::Error| {
        for e in error {
            // figment names the extracted section at the end of some paths; drop it.
            let mut path = e.path.clone();
            if path.len() > 1 && path.last().map(String::as_str) == Some(section) {
                path.pop();
            }
            let mut parts: Vec<PathPart> = Vec::new();
            if path.first().map(String::as_str) != Some(section) {
                parts.push(PathPart::Key(section.to_owned()));
            }
            parts.extend(path.iter().map(|p| PathPart::parse(p)));
            let mut message = e.kind.to_string();
            if let Some(field) = unknown_field(&message) {
                if path.last() != Some(&field) {
                    parts.push(PathPart::Key(field));
                }
            }
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|meta| meta.name.contains("environment"));
            if from_env && crate::config::variable_for(&keys_of(&parts), true).is_none() {
                message.push_str(" (from the environment)");
            }
            let mut problem = Problem {
                path: render(&parts),
                message,
                location: locate(&parts),
            };
            name_variable(&mut problem, from_env);
            problems.push(problem);
        }
    };
    macro_rules! section {
        ($ty:ty, $name:literal) => {
            match extract::<$ty>(&figment, $name) {
                Ok(value) => Some(value),
                Err(error) => {
                    report($name, error);
                    None
                }
            }
        };
    }
    let log = section!(LogConfig, "log");
    let http = section!(HttpConfig, "http");
    let phones = section!(PhonesConfig, "phones");
    let tsp = section!(TspSection, "tsp");
    let plugin_dir = section!(Option<PathBuf>, "plugin_dir");
    let state_dir = section!(Option<PathBuf>, "state_dir");
    let drivers = section!(BTreeMap<String, DriverSection>, "drivers");
    let numbers = section!(NumberPlanConfig, "numbers");
    let lines = section!(Vec<PinnedLine>, "lines");
    let api = section!(ApiConfig, "api");
    let cluster = section!(crate::cluster::ClusterConfig, "cluster");
    // Problems found from here on are about values, wherever they came from.
    let values_from = problems.len();
    let whole: Option<Config> = if problems.is_empty() {
        figment.extract().ok()
    } else {
        None
    };
    // The sections that could be read are checked further even when others could not, so one
    // run reports every problem.
    let config = Config {
        log: log.flatten().unwrap_or_default(),
        http: http.flatten().unwrap_or_default(),
        phones: phones.flatten().unwrap_or_default(),
        tsp: tsp.flatten().unwrap_or_default(),
        plugin_dir: plugin_dir.flatten().flatten(),
        state_dir: state_dir.flatten().flatten(),
        drivers: drivers.flatten().unwrap_or_default(),
        numbers: numbers.flatten().unwrap_or_default(),
        lines: lines.flatten().unwrap_or_default(),
        api: api.flatten().unwrap_or_default(),
        cluster: cluster.flatten(),
    };
    if whole.is_none() && problems.is_empty() {
        problems.push(Problem {
            path: String::new(),
            message: "the configuration could not be read".to_owned(),
            location: None,
        });
    }

    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        let parts = [PathPart::key("log"), PathPart::key("level")];
        problems.push(Problem {
            path: render(&parts),
            message: format!("not a log filter: {error}"),
            location: locate(&parts),
        });
    }

    if let Err(plan_problems) = crate::numbers::HostNumbers::compile(&config) {
        for (path, message) in plan_problems {
            let parts: Vec<PathPart> = parse_path(&path);
            problems.push(Problem {
                location: locate(&parts),
                path,
                message,
            });
        }
    }

    let instances: Vec<&str> = config.drivers.keys().map(String::as_str).collect();
    let cluster_problems = config
        .cluster
        .as_ref()
        .map(|c| c.problems(&instances))
        .unwrap_or_default();
    for (path, message) in crate::api::auth::check_config(&config)
        .into_iter()
        .chain(cluster_problems)
    {
        let parts = parse_path(&path);
        problems.push(Problem {
            location: locate(&parts),
            path,
            message,
        });
    }

    let catalog = catalog_for(&config);
    for (name, section) in &config.drivers {
        let base = [PathPart::key("drivers"), PathPart::key(name)];
        match catalog.validate(&section.driver, &section.settings_json()) {
            None => {
                let parts = [
                    PathPart::key("drivers"),
                    PathPart::key(name),
                    PathPart::key("driver"),
                ];
                problems.push(Problem {
                    path: render(&parts),
                    message: format!(
                        "no driver named {:?} (known: {})",
                        section.driver,
                        catalog.names().join(", ")
                    ),
                    location: locate(&parts),
                });
            }
            Some(Err(message)) => {
                let mut parts = base.to_vec();
                if let Some(field) = unknown_field(&message).or_else(|| named_field(&message)) {
                    parts.push(PathPart::Key(field));
                }
                problems.push(Problem {
                    path: render(&parts),
                    message: strip_json_position(&message),
                    location: locate(&parts).or_else(|| locate(&base)),
                });
            }
            Some(Ok(())) => {}
        }
    }

    let mut ids: HashMap<u32, usize> = HashMap::new();
    let mut keys: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, line) in config.lines.iter().enumerate() {
        if !config.drivers.contains_key(&line.driver) {
            let parts = [
                PathPart::key("lines"),
                PathPart::Index(i),
                PathPart::key("driver"),
            ];
            problems.push(Problem {
                path: render(&parts),
                message: format!("no driver instance named {:?} in [drivers]", line.driver),
                location: locate(&parts),
            });
        }
        if let Some(first) = line.id.and_then(|id| ids.insert(id, i)) {
            let parts = [
                PathPart::key("lines"),
                PathPart::Index(i),
                PathPart::key("id"),
            ];
            problems.push(Problem {
                path: render(&parts),
                message: format!(
                    "id {} is already given to lines[{first}]",
                    line.id.unwrap_or_default()
                ),
                location: locate(&parts),
            });
        }
        if let Some(first) = keys.insert((&line.driver, &line.key), i) {
            let parts = [
                PathPart::key("lines"),
                PathPart::Index(i),
                PathPart::key("key"),
            ];
            problems.push(Problem {
                path: render(&parts),
                message: format!("this line is already pinned by lines[{first}]"),
                location: locate(&parts),
            });
        }
    }

    for problem in problems.iter_mut().skip(values_from) {
        name_variable(problem, false);
    }
    Checked {
        config: whole,
        catalog: Some(catalog),
        problems,
        notes: ignored_variables(),
    }
}

/// A note for every `TAPIR_` variable that is neither a setting nor the CLI's own.
fn ignored_variables() -> Vec<String> {
    crate::config::variables()
        .into_iter()
        .filter(|(_, kind)| *kind == Variable::Ignored)
        .map(|(name, _)| {
            format!(
                "note: {name} is ignored: it is no setting (settings are TAPIR_ plus a top-level key, sections separated by `__`, e.g. TAPIR_HTTP__LISTEN) and not one of {}",
                crate::config::CLI_VARIABLES.join(", ")
            )
        })
        .collect()
}

/// One section; `Ok(None)` when it is absent (its defaults apply). The large error is built
/// once per problem and consumed at once, so boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn extract<T: DeserializeOwned>(
    figment: &figment::Figment,
    key: &str,
) -> Result<Option<T>, figment::Error> {
    match figment.extract_inner::<T>(key) {
        Ok(value) => Ok(Some(value)),
        Err(e) if matches!(e.kind, figment::error::Kind::MissingField(_)) && e.path.is_empty() => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathPart {
    Key(String),
    Index(usize),
}

impl PathPart {
    fn key(k: &str) -> Self {
        PathPart::Key(k.to_owned())
    }

    fn parse(p: &str) -> Self {
        p.parse::<usize>()
            .map(PathPart::Index)
            .unwrap_or_else(|_| PathPart::Key(p.to_owned()))
    }
}

/// Parses `a.b[2].c` back into parts.
fn parse_path(path: &str) -> Vec<PathPart> {
    let mut parts = Vec::new();
    for segment in path.split('.') {
        let mut rest = segment;
        if let Some(open) = rest.find('[') {
            parts.push(PathPart::key(&rest[..open]));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(i) = rest[1..close].parse() {
                    parts.push(PathPart::Index(i));
                }
                rest = &rest[close + 1..];
            }
        } else {
            parts.push(PathPart::key(rest));
        }
    }
    parts
}

fn render(parts: &[PathPart]) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            PathPart::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathPart::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Finds where a key path is written in the file; falls back to the nearest enclosing key.
fn locate(doc: &ImDocument<String>, text: &str, path: &[PathPart]) -> Option<(usize, usize)> {
    let mut best = None;
    let mut item: Option<&Item> = None;
    let mut table = Some(doc.as_table() as &dyn toml_edit::TableLike);
    for part in path {
        match part {
            PathPart::Key(k) => {
                let (key, next) = table?.get_key_value(k)?;
                if let Some(span) = key.span().or_else(|| next.span()) {
                    best = Some(line_column(text, span.start));
                }
                item = Some(next);
                table = next.as_table_like();
            }
            PathPart::Index(i) => {
                let current = item?;
                if let Some(array) = current.as_array_of_tables() {
                    let t = array.get(*i)?;
                    if let Some(span) = t.span() {
                        best = Some(line_column(text, span.start));
                    }
                    table = Some(t as &dyn toml_edit::TableLike);
                } else {
                    let value = current.as_array()?.get(*i)?;
                    if let Some(span) = value.span() {
                        best = Some(line_column(text, span.start));
                    }
                    table = value
                        .as_inline_table()
                        .map(|t| t as &dyn toml_edit::TableLike);
                }
            }
        }
    }
    best
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// The field named in serde's "unknown field `x`" message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message
        .split("unknown field `")
        .nth(1)
        .or_else(|| message.split("unknown field: found `").nth(1))?;
    Some(rest.split('`').next()?.to_owned())
}

/// A field named at the start of a driver's own message (`ring_ms: must be positive`).
fn named_field(message: &str) -> Option<String> {
    let rest = message.split("field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

/// serde_json's "at line 1 column 42" means nothing to a TOML author.
fn strip_json_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn check_text(text: &str) -> Vec<Problem> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        check(&Source::File(file.path().to_owned()), |_| {
            Catalog::builtins_only()
        })
        .problems
    }

    #[test]
    fn syntax_errors_have_a_line_and_column() {
        let problems = check_text("[log]\nlevel = \"info\"\n[http\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].location.map(|l| l.0), Some(3));
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = "[log]\nlevel = \"info\"\nformat = \"xml\"\n\n[http]\nlisten = \"not an address\"\n\n[tsp]\nline_bas = 3\n\n[drivers.office]\ndriver = \"no-such-driver\"\n\n[[lines]]\ndriver = \"office\"\nkey = \"1\"\nid = 1\n\n[[lines]]\ndriver = \"nowhere\"\nkey = \"2\"\nid = 1\n";
        let problems = check_text(text);
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        for expected in ["log.format", "http.listen", "tsp.line_bas"] {
            assert!(
                paths.contains(&expected),
                "{expected} missing in {problems:#?}"
            );
        }
        let format = problems
            .iter()
            .find(|p| p.path == "log.format")
            .expect("format");
        assert_eq!(format.location, Some((3, 1)));
        let listen = problems
            .iter()
            .find(|p| p.path == "http.listen")
            .expect("listen");
        assert_eq!(listen.location, Some((6, 1)));
        let typo = problems
            .iter()
            .find(|p| p.path == "tsp.line_bas")
            .expect("typo");
        assert_eq!(typo.location, Some((9, 1)));
    }

    #[test]
    fn nested_keys_are_placed() {
        let problems = check_text("[drivers.office]\ndriver = \"x\"\nenabled = \"yes\"\n\n[[lines]]\ndriver = \"office\"\nkey = \"1\"\nid = -4\n");
        let paths: Vec<_> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.location))
            .collect();
        assert!(
            paths.contains(&("drivers.office.enabled", Some((3, 1)))),
            "{problems:#?}"
        );
        assert!(
            paths.contains(&("lines[0].id", Some((8, 1)))),
            "{problems:#?}"
        );
    }

    #[test]
    fn semantic_problems_are_found_when_the_shape_is_right() {
        let text = "[drivers.office]\ndriver = \"no-such-driver\"\n\n[[lines]]\ndriver = \"office\"\nkey = \"1\"\nid = 1\n\n[[lines]]\ndriver = \"nowhere\"\nkey = \"2\"\nid = 1\n";
        let problems = check_text(text);
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"drivers.office.driver"), "{problems:#?}");
        assert!(paths.contains(&"lines[1].driver"), "{problems:#?}");
        assert!(paths.contains(&"lines[1].id"), "{problems:#?}");
        let dup = problems
            .iter()
            .find(|p| p.path == "lines[1].id")
            .expect("dup");
        assert_eq!(dup.location, Some((12, 1)));
    }

    #[test]
    fn bad_number_rules_are_placed_by_category_and_position() {
        let text = "[numbers]\n[[numbers.incoming]]\nsearch = \"^0(.*)\"\nreplace = '\\1'\n[[numbers.incoming]]\nsearch = \"^50[0-9](.*\"\nreplace = ''\n";
        let problems = check_text(text);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].path, "numbers.incoming[1]");
        assert_eq!(problems[0].location, Some((5, 1)));
        assert!(
            problems[0].message.contains("incoming rule 2"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn an_open_api_off_loopback_and_short_tokens_are_refused() {
        let problems = check_text("[http]\nlisten = \"0.0.0.0:8780\"\n");
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].path, "http.listen");
        assert_eq!(problems[0].location, Some((2, 1)));
        let problems = check_text(
            "[http]\nlisten = \"0.0.0.0:8780\"\n\n[[api.tokens]]\nname = \"crm\"\ntoken = \"short\"\naccess = \"control\"\n",
        );
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].path, "api.tokens[0].token");
        assert_eq!(problems[0].location, Some((6, 1)));
        let problems = check_text(
            "[[api.tokens]]\nname = \"crm\"\ntoken = \"0123456789abcdef\"\naccess = \"admin\"\n",
        );
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].path.starts_with("api.tokens"), "{problems:#?}");
        assert!(
            !format!("{problems:?}").contains("0123456789abcdef"),
            "{problems:#?}"
        );
    }

    #[test]
    fn problems_about_secrets_do_not_echo_the_value() {
        let problems =
            check_text("[[api.tokens]]\nname = \"crm\"\ntoken = 987654321\naccess = \"control\"\n");
        let token = problems
            .iter()
            .find(|p| p.path.contains("token"))
            .unwrap_or_else(|| panic!("{problems:#?}"));
        assert!(!token.message.contains("987654321"), "{}", token.message);
        assert_eq!(
            redact_values("found string \"hunter2\", expected `u32`"),
            "found string \"***\", expected `***`"
        );
    }

    #[test]
    fn the_embedded_default_is_clean() {
        let checked = check(&Source::Embedded, |_| Catalog::builtins_only());
        assert!(checked.problems.is_empty(), "{:?}", checked.problems);
    }
}
