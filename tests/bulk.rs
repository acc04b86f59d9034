//! Bulk detection end to end: one campaign, personalised per recipient,
//! sent from several client networks (the test binds its client sockets
//! to 127.1.0.1, 127.2.0.1, ..., which Linux routes on loopback) through
//! the real proxy to the recording upstream; and two instances sharing
//! one real `redis-server` count one campaign across both.

mod common;

use std::net::IpAddr;

use common::client::Client;
use common::redis::RedisServer;
use common::upstream::{Behaviour, Recorder};
use common::{test_config, Spamgate};

/// Bulk at 6 recipients from 3 networks; the bulk score alone tags.
const BULK: &str = "bulk: {enabled: true, window: 1h, min_recipients: 6, min_clients: 3, min_words: 20, score: 6}\nscoring: {tag_score: 5, reject_score: 20}\n";

/// The campaign as each recipient gets it: name, amount and link vary.
fn campaign(n: usize) -> String {
    let names = [
        "John Smith",
        "Maria Garcia",
        "Wei Chen",
        "Olga Ivanova",
        "Ana Lima",
    ];
    let name = names[n % names.len()];
    format!(
        "From: Account Service <service@bank{n}.example>\r\n\
To: {name} <u{n}@victim.example>\r\n\
Subject: Your account {n}{n}7 needs attention\r\n\
Message-ID: <{n}.campaign@bank{n}.example>\r\n\
\r\n\
Dear {name},\r\n\
\r\n\
We noticed unusual activity on your account and have temporarily limited\r\n\
access to protect you. To restore full access please confirm your details\r\n\
within 48 hours at http://bank{n}.example/verify?id={n}0{n}. If you do not\r\n\
confirm your information your account will be suspended and the pending\r\n\
transfer of ${n}{n}0.00 will be cancelled. Thank you for being a valued\r\n\
customer of our bank.\r\n"
    )
}

/// A source address in its own /24: 127.<n>.0.1.
fn network(n: u8) -> IpAddr {
    IpAddr::from([127, n, 0, 1])
}

async fn send_from(gate: &Spamgate, source: IpAddr, rcpts: &[&str], message: &str) -> u16 {
    let mut client = Client::connect_from(gate.addr, source).await;
    assert_eq!(client.reply().await.code, 220);
    assert_eq!(client.cmd("EHLO client.example").await.code, 250);
    let reply = client
        .send_mail("service@bank.example", rcpts, message)
        .await;
    client.cmd("QUIT").await;
    reply.code
}

fn tagged_bulk(message: &[u8]) -> bool {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .any(|l| l.starts_with("X-Spam-Status: Yes") && l.contains("tests=bulk"))
}

const TWO: [&str; 2] = ["a@victim.example", "b@victim.example"];

#[tokio::test]
async fn campaign_from_several_networks_is_tagged_bulk() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let gate = Spamgate::start(&test_config(upstream.addr, BULK)).await;
    for n in 1..=3 {
        assert_eq!(
            send_from(&gate, network(n), &TWO, &campaign(n as usize)).await,
            250
        );
    }
    let got = upstream.wait_accepted(3).await;
    // Two networks and four recipients: not yet bulk; the third makes it.
    assert!(!tagged_bulk(&got[0].message) && !tagged_bulk(&got[1].message));
    assert!(
        tagged_bulk(&got[2].message),
        "{}",
        String::from_utf8_lossy(&got[2].message)
    );
    assert_eq!(
        gate.metric("spamgate_bulk_checks_total{outcome=\"bulk\"}")
            .await,
        1.0
    );
    assert_eq!(
        gate.metric("spamgate_bulk_checks_total{outcome=\"not_bulk\"}")
            .await,
        2.0
    );
    assert!(gate.metric("spamgate_bulk_entries").await >= 8.0);
    gate.stop().await;
}

#[tokio::test]
async fn one_message_to_one_recipient_and_short_texts_are_not_bulk() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let gate = Spamgate::start(&test_config(upstream.addr, BULK)).await;
    let one = ["a@victim.example"];
    assert_eq!(send_from(&gate, network(1), &one, &campaign(1)).await, 250);
    let short = "From: a@b.example\r\nSubject: lunch\r\n\r\nSee you at noon.\r\n";
    assert_eq!(send_from(&gate, network(2), &one, short).await, 250);
    let got = upstream.wait_accepted(2).await;
    assert!(got.iter().all(|r| !tagged_bulk(&r.message)));
    assert_eq!(
        gate.metric("spamgate_bulk_checks_total{outcome=\"not_bulk\"}")
            .await,
        1.0
    );
    assert_eq!(
        gate.metric("spamgate_bulk_checks_total{outcome=\"no_fingerprint\"}")
            .await,
        1.0
    );
    gate.stop().await;
}

#[tokio::test]
async fn allowlisted_clients_are_counted_but_never_scored() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let extra = format!("{BULK}checks: {{ip_lists: {{allow: ['127.3.0.0/24']}}}}\n");
    let gate = Spamgate::start(&test_config(upstream.addr, &extra)).await;
    for n in 1..=4 {
        assert_eq!(
            send_from(&gate, network(n), &TWO, &campaign(n as usize)).await,
            250
        );
    }
    let got = upstream.wait_accepted(4).await;
    // The allow-listed third client made it bulk but is not scored; its
    // count still makes the fourth bulk.
    assert!(!tagged_bulk(&got[2].message));
    assert!(tagged_bulk(&got[3].message));
    assert_eq!(
        gate.metric("spamgate_bulk_checks_total{outcome=\"bulk\"}")
            .await,
        2.0
    );
    gate.stop().await;
}

#[tokio::test]
async fn two_instances_share_the_counts_through_redis() {
    let redis = RedisServer::start();
    let upstream = Recorder::start(Behaviour::default()).await;
    let state = format!(
        "state:\n  backend: redis\n  redis: {{url: '{}', on_failure: fail_open, command_timeout: 500ms, connect_timeout: 500ms}}\n",
        redis.url()
    );
    let yaml = test_config(upstream.addr, &format!("{state}{BULK}"));
    let (a, b) = (Spamgate::start(&yaml).await, Spamgate::start(&yaml).await);
    assert_eq!(send_from(&a, network(1), &TWO, &campaign(1)).await, 250);
    assert_eq!(send_from(&b, network(2), &TWO, &campaign(2)).await, 250);
    assert_eq!(send_from(&a, network(3), &TWO, &campaign(3)).await, 250);
    let got = upstream.wait_accepted(3).await;
    assert!(!tagged_bulk(&got[1].message));
    assert!(tagged_bulk(&got[2].message));
    // Each instance alone saw too little: only the shared count says bulk.
    assert_eq!(
        b.metric("spamgate_bulk_checks_total{outcome=\"not_bulk\"}")
            .await,
        1.0
    );
    assert_eq!(
        a.metric("spamgate_bulk_checks_total{outcome=\"bulk\"}")
            .await,
        1.0
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn redis_outage_follows_on_failure() {
    let mut redis = RedisServer::start();
    let upstream = Recorder::start(Behaviour::default()).await;
    let state = format!(
        "state:\n  backend: redis\n  redis: {{url: '{}', on_failure: tempfail, command_timeout: 300ms, connect_timeout: 300ms}}\n",
        redis.url()
    );
    let gate = Spamgate::start(&test_config(upstream.addr, &format!("{state}{BULK}"))).await;
    redis.kill();
    assert_eq!(send_from(&gate, network(1), &TWO, &campaign(1)).await, 451);
    assert_eq!(
        gate.metric("spamgate_bulk_checks_total{outcome=\"error\"}")
            .await,
        1.0
    );
    gate.stop().await;
}
