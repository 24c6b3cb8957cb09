//! The status page at 10,000 phones, measured in headless Chromium as an administrator sees
//! it: time to first useful paint (counts and the first page of lines shown, from the start of
//! the navigation), time for a change to show (a call placed through the API until its state
//! is on its line's row), time for a search to narrow 10,000 phones to one, and the API
//! answers the page reads. Run with `cargo bench -p tapir-host --bench page`; prints a table.
//! Needs `chromium`; says so and stops without it.

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::cdp::{chromium, launch, Cdp};
use support::web::{call, client, poll, simulated_office, CONTROL, READ};

const PHONES: u32 = 10_000;
const NAVIGATIONS: usize = 8;
const UPDATES: usize = 30;
const SEARCHES: usize = 15;
const API_READS: usize = 30;

fn main() {
    let Some(binary) = chromium() else {
        println!("SKIPPED: no chromium installed.");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(measure(&binary));
}

async fn measure(binary: &std::path::Path) {
    let (daemon, base, _phones, _dir) = simulated_office(PHONES);
    let http = client();
    poll(
        &http,
        &format!("{base}/v1/summary"),
        Some(READ),
        Duration::from_secs(120),
        |s| s["lines"]["total"] == PHONES,
    )
    .await;
    let (browser, devtools) = launch(binary);
    let mut cdp = Cdp::connect(&devtools).await;
    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();

    // The token goes into the tab's session storage once; every navigation after uses it.
    cdp.send("Page.navigate", json!({ "url": format!("{base}/") }))
        .await;
    cdp.wait_for(
        "the token box",
        "document.getElementById('auth') && !document.getElementById('auth').hidden",
        Duration::from_secs(30),
    )
    .await;
    cdp.eval(&format!(
        "document.getElementById('token').value = '{CONTROL}'; document.getElementById('token-button').click(); true"
    ))
    .await;
    let mut paint = Vec::new();
    for _ in 0..NAVIGATIONS {
        cdp.send("Page.navigate", json!({ "url": format!("{base}/") }))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ms = cdp
            .wait_for(
                "first useful paint",
                "document.querySelectorAll('#lines tr[data-line]').length === 50 && document.getElementById('count-lines').textContent === '10,000' && window.tapirFirstUseful",
                Duration::from_secs(30),
            )
            .await;
        paint.push(ms.as_f64().unwrap_or(f64::NAN));
    }
    rows.push((
        "first useful paint (navigation start to counts + 50 rows)",
        paint,
    ));
    cdp.wait_for(
        "the live stream",
        "document.getElementById('status').textContent === 'live'",
        Duration::from_secs(30),
    )
    .await;

    let mut update = Vec::new();
    for i in 0..UPDATES {
        // Lines 10 to 39: on the first page, and in service (10007 is not).
        let line = 10 + (i % 30) as u64;
        let started = Instant::now();
        let placed = call(
            &http,
            "POST",
            &format!("{base}/v1/lines/{line}/calls"),
            Some(CONTROL),
            Some(("application/json", r#"{"destination":"200"}"#)),
        )
        .await;
        assert_eq!(placed.status, 202, "{}", placed.text);
        let id = placed.body["call"].as_u64().expect("call");
        cdp.wait_for(
            "the call on its row",
            &format!("(() => {{ const c = document.querySelector('#lines tr[data-line=\"{line}\"] [data-call=\"{id}\"]'); return c !== null && c.getAttribute('data-state') !== 'unknown'; }})()"),
            Duration::from_secs(20),
        )
        .await;
        update.push(started.elapsed().as_secs_f64() * 1000.0);
        let dropped = call(
            &http,
            "POST",
            &format!("{base}/v1/calls/{id}/drop?wait=10"),
            Some(CONTROL),
            None,
        )
        .await;
        assert_eq!(dropped.status, 200, "{}", dropped.text);
    }
    rows.push(("update shown (API call placed to state on its row)", update));

    let mut search = Vec::new();
    for i in 0..SEARCHES {
        let index = 137 + i as u64 * 613;
        let mac = format!(
            "02:74:61:{:02x}:{:02x}:{:02x}",
            (index >> 16) & 0xff,
            (index >> 8) & 0xff,
            index & 0xff
        );
        let started = Instant::now();
        cdp.eval(&format!(
            "(() => {{ const e = document.getElementById('search'); e.value = '{mac}'; e.dispatchEvent(new Event('input')); return true; }})()"
        ))
        .await;
        cdp.wait_for(
            "one row",
            &format!("(() => {{ const r = document.querySelectorAll('#lines tr[data-line]'); return r.length === 1 && r[0].getAttribute('data-line') === '{index}'; }})()"),
            Duration::from_secs(20),
        )
        .await;
        search.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    rows.push((
        "search by MAC shown (typed to one row; includes 200 ms debounce)",
        search,
    ));

    for (what, path) in [
        (
            "GET /v1/lines?limit=50 (10,000 lines joined with phones)",
            "/v1/lines?limit=50",
        ),
        ("GET /v1/summary", "/v1/summary"),
        (
            "GET /v1/lines?q=<MAC>&limit=50",
            "/v1/lines?q=027461001234&limit=50",
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..API_READS {
            let started = Instant::now();
            let a = call(&http, "GET", &format!("{base}{path}"), Some(READ), None).await;
            assert_eq!(a.status, 200, "{}", a.text);
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        rows.push((what, times));
    }

    drop(cdp);
    drop(browser);
    let _ = daemon.stop("TERM");
    println!("\nstatus page with {PHONES} simulated phones (milliseconds)\n");
    println!(
        "{:<66} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "measure", "runs", "min", "median", "p90", "max"
    );
    for (what, mut v) in rows {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "{:<66} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            what,
            v.len(),
            at(0.0),
            at(0.5),
            at(0.9),
            at(1.0)
        );
    }
}
