//! The 61 torture messages of RFC 4475 and RFC 5118, byte-exact as the RFCs' archives hold them in
//! `tests/torture/`, against the verdicts of `tests/torture/verdicts.tsv`:
//! - the parser accepts every message marked `parse` (and the result survives a round trip)
//!   and refuses every message marked `refuse`;
//! - a live endpoint, sent each message as one UDP datagram from a raw socket, answers with
//!   the status the table names (400, 505, 501, 416, 420, 415, ...) or with nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tapir_sip_ua::{Endpoint, EndpointConfig, Message};
use tokio::net::UdpSocket;

struct Row {
    file: String,
    section: String,
    parses: bool,
    answer: Option<u16>,
    why: String,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torture")
}

fn table() -> Vec<Row> {
    let text = std::fs::read_to_string(dir().join("verdicts.tsv")).expect("verdict table");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "bad table row {l:?}");
            Row {
                file: f[0].to_owned(),
                section: f[1].to_owned(),
                parses: match f[2] {
                    "parse" | "parse*" => true,
                    "refuse" | "refuse*" => false,
                    other => panic!("unknown verdict {other:?}"),
                },
                answer: (f[3] != "-").then(|| f[3].parse().expect("status code")),
                why: f[4].to_owned(),
            }
        })
        .collect()
}

/// The message as it travels. RFC 4475's archive holds wire bytes already. RFC 5118's archive
/// ends lines in a bare LF, leaves the blank line off two heads and has two Content-Lengths
/// that do not match their bodies: its messages get CRLF line ends, a closed head and the
/// body's length, and nothing else changes.
fn bytes(row: &Row) -> Vec<u8> {
    let raw = std::fs::read(dir().join(&row.file)).expect("torture message");
    if row.file.starts_with("rfc5118/") {
        wire(&raw)
    } else {
        raw
    }
}

fn wire(archived: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(archived);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let body: String = body.lines().map(|l| format!("{l}\r\n")).collect();
    let mut out = String::new();
    for line in head.lines().filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

#[test]
fn rfc_5118_archive_bytes_never_panic() {
    for row in table().iter().filter(|r| r.file.starts_with("rfc5118/")) {
        let raw = std::fs::read(dir().join(&row.file)).expect("torture message");
        let _ = Message::parse(&raw);
        let _ = Message::frame(&raw);
        assert!(
            !raw.contains(&b'\r'),
            "{}: the archive has bare LF line ends",
            row.file
        );
    }
}

#[test]
fn every_message_of_the_corpus_is_in_the_table_and_back() {
    let rows = table();
    let mut files: Vec<String> = Vec::new();
    for sub in ["rfc4475", "rfc5118"] {
        if let Ok(entries) = std::fs::read_dir(dir().join(sub)) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    files.push(format!("{sub}/{name}"));
                }
            }
        }
    }
    files.sort();
    let mut listed: Vec<String> = rows.iter().map(|r| r.file.clone()).collect();
    listed.sort();
    assert_eq!(files, listed, "corpus files and table rows differ");
    assert_eq!(
        rows.iter()
            .filter(|r| r.file.starts_with("rfc4475/"))
            .count(),
        49,
        "RFC 4475 has 49 messages"
    );
}

#[test]
fn parser_verdicts_match_the_rfcs() {
    let mut wrong = Vec::new();
    for row in table() {
        let b = bytes(&row);
        match (row.parses, Message::parse(&b)) {
            (true, Ok(msg)) => {
                let again = Message::parse(&msg.to_bytes());
                if again.as_ref() != Ok(&msg) {
                    wrong.push(format!(
                        "{} ({}): round trip changed it",
                        row.file, row.section
                    ));
                }
            }
            (true, Err(e)) => wrong.push(format!(
                "{} ({}): refused ({e}) but valid: {}",
                row.file, row.section, row.why
            )),
            (false, Ok(_)) => wrong.push(format!(
                "{} ({}): parsed but invalid: {}",
                row.file, row.section, row.why
            )),
            (false, Err(_)) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// An answer as received: its status code and text. Answers to malformed requests copy the
/// request's (malformed) Via, From and To, so they are read by line, not parsed.
struct Answer {
    code: u16,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The first final (or only) response to arrive within `wait`, skipping 100 Trying.
async fn final_answer(sock: &UdpSocket, wait: Duration) -> Option<Answer> {
    let end = Instant::now() + wait;
    let mut buf = vec![0u8; 70_000];
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        let (n, _) = tokio::time::timeout(left, sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let code: u16 = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        if code >= 200 {
            return Some(Answer { code, text });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_answers_each_message_as_the_rfcs_ask() {
    let mut wrong = Vec::new();
    for row in table() {
        // A fresh endpoint per message: several messages share branch and sent-by, and a
        // retransmission would be absorbed instead of answered.
        let ep = Endpoint::start(EndpointConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            ..EndpointConfig::default()
        })
        .await
        .expect("endpoint");
        let to: SocketAddr = ep.udp_addr();
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
        sock.send_to(&bytes(&row), to).await.expect("send");
        let wait = if row.answer.is_some() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(300)
        };
        let got = final_answer(&sock, wait).await;
        let code = got.as_ref().map(|a| a.code);
        if code != row.answer {
            wrong.push(format!(
                "{} ({}): answered {code:?}, expected {:?}",
                row.file, row.section, row.answer
            ));
            continue;
        }
        let Some(resp) = got else { continue };
        // The answer is a proper response to that request.
        let detail = match code {
            Some(420) => resp.header("Unsupported").map(str::to_owned),
            Some(501) => resp.header("Allow").map(str::to_owned),
            Some(415) => resp.header("Accept").map(str::to_owned),
            _ => Some(String::new()),
        };
        if detail.is_none() {
            wrong.push(format!("{}: {code:?} lacks its header", row.file));
        }
        if row.file.ends_with("bext01.dat")
            && resp.header("Unsupported") != Some("nothingSupportsThis, nothingSupportsThisEither")
        {
            wrong.push(format!(
                "bext01: Unsupported {:?}",
                resp.header("Unsupported")
            ));
        }
        // Answers to well-formed requests parse, and carry a To tag.
        if row.parses {
            match Message::parse(resp.text.as_bytes()) {
                Ok(m) if m.to().is_some_and(|t| t.tag().is_some()) => {}
                other => wrong.push(format!(
                    "{}: answer unreadable or untagged: {other:?}",
                    row.file
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
