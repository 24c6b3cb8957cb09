//! Codec and state benchmark (plain binary, no harness): parse and serialize throughput, and
//! memory per client transaction and per dialog, measured as resident-set growth.
//!
//! Run: `cargo bench -p tapir-sip-ua --bench codec`

use std::hint::black_box;
use std::time::{Duration, Instant};
use tapir_sip_ua::transaction::{Timers, TransactionLayer};
use tapir_sip_ua::{Dialog, Message};

const INVITE: &str = "INVITE sip:alice@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK3f1c2a9b7d0e4411;rport\r\n\
Max-Forwards: 70\r\n\
From: \"tapir\" <sip:alice@pbx.example.com>;tag=9b44e17d47e4\r\n\
To: <sip:alice@pbx.example.com>\r\n\
Call-ID: 519efafbcb250e021c552df4@pbx.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, REFER, NOTIFY, OPTIONS\r\n\
Supported: replaces\r\n\
Subject: click2dial call\r\n\
Call-Info: <sip:pbx.example.com>;answer-after=0\r\n\
User-Agent: tapir/0.1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 183\r\n\r\n\
v=0\r\no=tapir 1 1 IN IP4 192.0.2.10\r\ns=tapir\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let bytes = INVITE.as_bytes();
    let Ok(msg) = Message::parse(bytes) else {
        eprintln!("benchmark message does not parse");
        return;
    };
    let n: u64 = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        black_box(Message::parse(black_box(bytes)).is_ok());
    }
    let parse = t.elapsed();
    let t = Instant::now();
    for _ in 0..n {
        black_box(black_box(&msg).to_bytes());
    }
    let ser = t.elapsed();

    // Transaction state one click-to-dial leaves behind for the RFC windows (UDP): INVITE client
    // after 2xx (Timer M), REFER and BYE clients after 2xx (Timer K), three NOTIFY server
    // transactions after 200 (Timer J).
    let calls: usize = 20_000;
    let now = Instant::now();
    let before_c = rss_kib();
    let mut layer: TransactionLayer<u32> = TransactionLayer::new(Timers::default(), 10 * calls);
    let notify_text = "NOTIFY sip:alice@192.0.2.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKnotify{I}x{N}\r\nFrom: <sip:phone@192.0.2.20>;tag=ptag\r\nTo: <sip:alice@pbx.example.com>;tag=9b44e17d47e4\r\nCall-ID: {I}@pbx\r\nCSeq: {N} NOTIFY\r\nEvent: refer\r\nSubscription-State: active;expires=60\r\nContent-Type: message/sipfrag\r\nContent-Length: 20\r\n\r\nSIP/2.0 180 Ringing\n";
    for i in 0..calls {
        for (method, branch) in [("INVITE", "i"), ("REFER", "r"), ("BYE", "b")] {
            let mut req = msg.clone();
            req.start = tapir_sip_ua::StartLine::Request {
                method: tapir_sip_ua::Method::parse(method),
                uri: "sip:alice@pbx.example.com".into(),
            };
            req.set("CSeq", format!("1 {method}"));
            req.set(
                "Via",
                format!("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{branch}{i:016x};rport"),
            );
            if let Ok(key) = layer.send_request(&req, 1, false, now) {
                let _ = key;
                layer.on_message(
                    Message::response_to(&req, 200, "OK", Some("rt")),
                    1,
                    false,
                    now,
                );
            }
        }
        for n in 1..=3 {
            let text = notify_text
                .replace("{I}", &i.to_string())
                .replace("{N}", &n.to_string());
            if let Ok(notify) = Message::parse(text.as_bytes()) {
                layer.on_message(notify.clone(), 2, false, now);
                while let Some(ev) = layer.pop_event() {
                    if let tapir_sip_ua::transaction::LayerEvent::Request { key, msg, .. } = ev {
                        let _ =
                            layer.respond(&key, Message::response_to(&msg, 200, "OK", None), now);
                    }
                }
            }
        }
        while layer.pop_event().is_some() {}
    }
    let after_c = rss_kib();
    let per_call = (after_c.saturating_sub(before_c)) as f64 * 1024.0 / calls as f64;
    let live_c = layer.len();
    drop(layer);

    // Memory per dialog.
    let count: usize = 100_000;
    let mut ok = Message::response_to(&msg, 200, "OK", Some("remote-tag-1234"));
    ok.push("Contact", "<sip:phone@192.0.2.20:5062;transport=udp>");
    ok.push("Record-Route", "<sip:192.0.2.1;lr;ftag=9b44e17d47e4>");
    let before_d = rss_kib();
    let mut dialogs = Vec::with_capacity(count);
    for _ in 0..count {
        if let Ok(d) = Dialog::from_uac(&msg, &ok) {
            dialogs.push(d);
        }
    }
    let after_d = rss_kib();
    let per_dialog_rss =
        (after_d.saturating_sub(before_d)) as f64 * 1024.0 / dialogs.len().max(1) as f64;
    // RSS growth is unreliable here (the heap reuses what earlier steps freed), so also count
    // the bytes exactly: the struct plus every string it owns (allocator overhead excluded).
    let per_dialog = dialogs.first().map_or(0, |d| {
        std::mem::size_of::<Dialog>()
            + d.call_id.capacity()
            + d.local_tag.capacity()
            + d.remote_tag.capacity()
            + d.local.capacity()
            + d.remote.capacity()
            + d.remote_target.capacity()
            + d.route_set.capacity() * std::mem::size_of::<String>()
            + d.route_set.iter().map(String::capacity).sum::<usize>()
    });

    // Memory per client transaction (INVITE, UDP: keeps the request bytes and a copy).
    let before = rss_kib();
    let mut layer: TransactionLayer<u32> = TransactionLayer::new(Timers::default(), count + 1);
    let now = Instant::now();
    let mut template = msg.clone();
    for i in 0..count {
        template.set(
            "Via",
            format!("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{i:016x};rport"),
        );
        let _ = layer.send_request(&template, 1, false, now);
        while layer.pop_event().is_some() {}
    }
    let after_tx = rss_kib();
    let per_tx = (after_tx.saturating_sub(before)) as f64 * 1024.0 / count as f64;
    let live = layer.len();
    drop(layer);

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| message size | {} bytes (INVITE with SDP, 14 headers) |",
        bytes.len()
    );
    println!(
        "| parse | {:.0} msgs/s ({:.2} µs each) |",
        rate(n, parse),
        parse.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "| serialize | {:.0} msgs/s ({:.2} µs each) |",
        rate(n, ser),
        ser.as_secs_f64() * 1e6 / n as f64
    );
    println!("| memory per INVITE client transaction | {per_tx:.0} bytes ({live} live) |");
    println!(
        "| memory per dialog | {per_dialog} bytes owned (RSS growth {per_dialog_rss:.0} bytes; {} dialogs) |",
        dialogs.len()
    );
    println!("| transaction state one click-to-dial leaves for the UDP timer windows | {per_call:.0} bytes ({live_c} transactions for {calls} calls) |");
}
