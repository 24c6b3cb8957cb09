//! `tapir lines` and `tapir phones`: the tables an administrator reads, with the search and
//! filters of the status page. The host does the searching and filtering
//! (`GET /v1/lines?q=&filter=&driver=&offset=&limit=`, the same for `/v1/phones`), so the
//! CLI, the page and scripts all find the same rows.

use crate::client::{Client, ClientError};
use serde_json::Value;

/// What to list: the page's search box and filter buttons, and paging.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListArgs {
    /// Only rows with every word of TEXT in the name, number, key, MAC (any separators), IP,
    /// model, firmware or identity.
    #[arg(long, short = 's', value_name = "TEXT")]
    pub search: Option<String>,
    /// Only rows in this condition.
    #[arg(long, short = 'f', value_enum)]
    pub filter: Option<Filter>,
    /// Only this driver instance.
    #[arg(long)]
    pub driver: Option<String>,
    /// At most this many rows (up to 1000).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip this many rows first.
    #[arg(long)]
    pub offset: Option<usize>,
}

/// The filters of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Filter {
    /// Out of service, or the phone is not connected.
    OutOfService,
    /// The phone's configuration is wrong.
    Misconfigured,
    /// With a call that is not idle.
    WithCalls,
    /// Served by the simulated office.
    Simulated,
}

impl Filter {
    fn api_name(self) -> &'static str {
        match self {
            Filter::OutOfService => "out_of_service",
            Filter::Misconfigured => "misconfigured",
            Filter::WithCalls => "with_calls",
            Filter::Simulated => "simulated",
        }
    }
}

impl ListArgs {
    /// The query string for the API (empty without any setting).
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(q) = self.search.as_deref().filter(|q| !q.trim().is_empty()) {
            parts.push(format!("q={}", super::remote::segment(q)));
        }
        if let Some(f) = self.filter {
            parts.push(format!("filter={}", f.api_name()));
        }
        if let Some(d) = &self.driver {
            parts.push(format!("driver={}", super::remote::segment(d)));
        }
        if let Some(o) = self.offset {
            parts.push(format!("offset={o}"));
        }
        if let Some(l) = self.limit {
            parts.push(format!("limit={l}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// `tapir lines`.
///
/// # Errors
/// What the client met.
pub async fn lines(client: &Client, args: &ListArgs, as_json: bool) -> Result<(), ClientError> {
    let (lines, total) = client
        .get_counted(&format!("/v1/lines{}", args.query()))
        .await?;
    if as_json {
        println!("{}", pretty(&lines));
        return Ok(());
    }
    let calls = client.get("/v1/calls").await?;
    let mut rows = vec![[
        "LINE",
        "NAME",
        "NUMBER",
        "DRIVER",
        "KEY",
        "SERVICE",
        "MAC",
        "IP",
        "REGISTRATION",
        "CALLS",
    ]
    .map(str::to_owned)
    .to_vec()];
    let shown = lines.as_array().map_or(0, Vec::len);
    for line in lines.as_array().into_iter().flatten() {
        let id = &line["id"];
        let active: Vec<String> = calls
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| &c["line"] == id && c["state"]["state"] != "idle")
            .map(|c| format!("{} {}", c["id"], text(&c["state"]["state"])))
            .collect();
        let phone = &line["phone"];
        let mut name = text(&line["name"]);
        if line["simulated"] == true {
            name.push_str(" (simulated)");
        }
        rows.push(vec![
            id.to_string(),
            name,
            text(&line["caps"]["addresses"][0]["number"]),
            text(&line["driver"]),
            text(&line["key"]),
            if line["in_service"] == true {
                "in service".to_owned()
            } else {
                "out of service".to_owned()
            },
            text(&phone["mac"]),
            text(&phone["ip"]),
            words(&phone["connection"]),
            active.join(", "),
        ]);
    }
    print_table(&rows);
    footer(shown, total, "line");
    Ok(())
}

/// `tapir phones`.
///
/// # Errors
/// What the client met.
pub async fn phones(client: &Client, args: &ListArgs, as_json: bool) -> Result<(), ClientError> {
    let (phones, total) = client
        .get_counted(&format!("/v1/phones{}", args.query()))
        .await?;
    if as_json {
        println!("{}", pretty(&phones));
        return Ok(());
    }
    let mut rows = vec![[
        "DRIVER",
        "DEVICE",
        "MODEL",
        "FIRMWARE",
        "MAC",
        "IP",
        "IDENTITY",
        "REGISTRATION",
        "CONFIGURATION",
        "LINES",
    ]
    .map(str::to_owned)
    .to_vec()];
    let list = phones["phones"].as_array().cloned().unwrap_or_default();
    for p in &list {
        let lines: Vec<String> = p["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let mut driver = text(&p["driver"]);
        if p["simulated"] == true {
            driver.push_str(" (simulated)");
        }
        rows.push(vec![
            driver,
            text(&p["key"]),
            text(&p["model"]),
            text(&p["firmware"]),
            text(&p["mac"]),
            text(&p["ip"]),
            text(&p["identity"]),
            words(&p["connection"]),
            words(&p["configuration"]),
            lines.join(", "),
        ]);
    }
    print_table(&rows);
    if list.is_empty() && args.query().is_empty() {
        println!("(no driver reports devices)");
    } else {
        footer(list.len(), total, "phone");
    }
    for f in phones["failed_drivers"].as_array().into_iter().flatten() {
        println!(
            "driver {} did not start: {}",
            text(&f["driver"]),
            text(&f["reason"])
        );
    }
    Ok(())
}

fn footer(shown: usize, total: Option<u64>, what: &str) {
    match total {
        Some(total) if total as usize != shown => {
            println!("{shown} of {total} matching {what}s shown (--offset, --limit for more)")
        }
        Some(total) => println!("{total} {what}(s)"),
        None => {}
    }
}

/// `needs_registration` → `needs registration`.
fn words(v: &Value) -> String {
    text(v).replace('_', " ")
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

pub(crate) fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_carries_search_filter_and_paging() {
        assert_eq!(ListArgs::default().query(), "");
        let args = ListArgs {
            search: Some("00:04:13 sales".into()),
            filter: Some(Filter::OutOfService),
            driver: Some("office".into()),
            limit: Some(20),
            offset: Some(40),
        };
        assert_eq!(
            args.query(),
            "?q=00%3A04%3A13%20sales&filter=out_of_service&driver=office&offset=40&limit=20"
        );
    }
}
