//! End-to-end tests of client reputation: DNS lists served by a real DNS
//! server (knot) on loopback, rate limits, the pre-greet test, reverse DNS
//! and HELO scores, link domains, all over real SMTP sessions.
//!
//! Clients connect from several loopback addresses (127.0.0.0/8 is all
//! local on Linux) so that listed and unlisted clients can be told apart.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::client::{message, Client};
use common::dns::{DnsServer, Zones};
use common::upstream::{Behaviour, Recorder};
use common::{test_config, Spamgate};
use spamgate::config::Config;
use tokio::net::TcpSocket;

/// Connects to spamgate from the local address `from` (e.g. 127.0.0.5).
async fn connect_from(from: &str, to: SocketAddr) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(to).await.expect("connect to spamgate");
    stream.set_nodelay(true).unwrap();
    Client::over(Box::new(stream))
}

fn dnsbl_zones() -> Zones {
    // bl.test lists the network 127.0.1.64/26, one record per address as
    // an authoritative server without wildcards serves a CIDR...
    let mut zones = Zones::new();
    for host in 64..128 {
        zones.push(&format!("{host}.1.0.127.bl.test"), "A", "127.0.0.3");
    }
    zones
        // ...and the single addresses 127.0.0.1 and 127.0.0.9.
        .a("1.0.0.127.bl.test", "127.0.0.2")
        .a("9.0.0.127.bl.test", "127.0.0.2")
        // wl.test, an allow list, vouches for 127.0.0.9.
        .a("9.0.0.127.wl.test", "127.0.0.2")
        // err.test answers with a Spamhaus-style error code.
        .a("1.0.0.127.err.test", "127.255.255.254")
        .a("6.0.0.127.err.test", "127.255.255.254")
        // filt.test: only 127.0.0.4 means listed.
        .a("1.0.0.127.filt.test", "127.0.0.10")
        .a("5.0.0.127.filt.test", "127.0.0.4")
        .a("6.0.0.127.filt.test", "127.0.0.10")
        // wild.test answers outside 127/8 (a hijacked zone).
        .a("6.0.0.127.wild.test", "192.0.2.1")
        .silent("slow.test")
}

fn dnsbl_yaml(dns: &DnsServer, reject_at: &str) -> String {
    format!(
        "{}      - {{zone: slow.test, weight: 3}}\n",
        dnsbl_yaml_fast(dns, reject_at)
    )
}

/// The lists without the silent zone.
fn dnsbl_yaml_fast(dns: &DnsServer, reject_at: &str) -> String {
    format!(
        "{}\
reputation:
  dnsbl:
    threshold: 3
    reject_at: {reject_at}
    timeout: 2500ms
    zones:
      - {{zone: bl.test, weight: 3}}
      - {{zone: wl.test, weight: -5}}
      - {{zone: err.test, weight: 3}}
      - {{zone: filt.test, weight: 3, filter: ['127.0.0.4']}}
      - {{zone: wild.test, weight: 3}}
",
        dns_yaml(dns)
    )
}

/// Two attempts of 1 s, within the lists' 2.5 s budget. knot's forwarder
/// holds a worker thread for each silent query, and a fast query read in
/// the same batch waits with it: a second attempt, from another source
/// port, goes to another worker, so only the silent zone times out.
fn dns_yaml(dns: &DnsServer) -> String {
    format!(
        "dns:\n  nameservers: ['{}']\n  timeout: 1s\n  attempts: 2\n",
        dns.addr
    )
}

async fn banner_from(from: &str, spamgate: &Spamgate) -> common::client::Reply {
    let mut client = connect_from(from, spamgate.addr).await;
    client.reply().await
}

#[tokio::test]
async fn dnsbl_refuses_listed_clients_at_connect_and_counts_errors() {
    let dns = DnsServer::start(&dnsbl_zones());
    let upstream = Recorder::start(Behaviour::default()).await;
    let spamgate = Spamgate::start(&test_config(upstream.addr, &dnsbl_yaml(&dns, "connect"))).await;

    let cases = [
        ("127.0.0.1", Some("bl.test")),
        ("127.0.1.77", Some("bl.test")),
        ("127.0.1.63", None),
        ("127.0.0.5", Some("filt.test")),
        ("127.0.0.9", None),
        ("127.0.0.6", None),
        ("127.0.0.8", None),
    ];
    for (from, listed_on) in cases {
        let mut client = connect_from(from, spamgate.addr).await;
        let banner = client.reply().await;
        match listed_on {
            Some(zone) => {
                if banner.code != 554 {
                    let dnsbl: Vec<String> = (spamgate.metrics().await.lines())
                        .filter(|l| l.starts_with("spamgate_dnsbl"))
                        .map(str::to_string)
                        .collect();
                    panic!("{from}: {banner:?}, DNS list metrics: {dnsbl:#?}");
                }
                assert_eq!(banner.status(), Some("5.7.1"), "{from}");
                assert!(
                    banner.text().contains(zone),
                    "{from}: names {zone}: {banner:?}"
                );
                assert!(banner.text().contains(from), "{from}: {banner:?}");
                assert!(client.is_closed().await, "{from}: closed after the refusal");
            }
            None => assert_eq!(banner.code, 220, "{from}: {banner:?}"),
        }
    }
    let m = |s: &str| format!("spamgate_dnsbl_{s}");
    assert_eq!(
        spamgate.metric(&m("hits_total{zone=\"bl.test\"}")).await,
        3.0
    );
    assert_eq!(
        spamgate.metric(&m("hits_total{zone=\"wl.test\"}")).await,
        1.0
    );
    assert_eq!(
        spamgate.metric(&m("hits_total{zone=\"filt.test\"}")).await,
        1.0
    );
    // 127.255.255.x and answers outside 127/8 are errors, never listings:
    // 127.0.0.6 is "listed" only by such answers and was let in.
    assert_eq!(
        spamgate.metric(&m("hits_total{zone=\"err.test\"}")).await,
        0.0
    );
    assert_eq!(
        spamgate
            .metric(&m("errors_total{zone=\"err.test\",kind=\"error_answer\"}"))
            .await,
        2.0
    );
    assert_eq!(
        spamgate
            .metric(&m(
                "errors_total{zone=\"wild.test\",kind=\"outside_loopback\"}"
            ))
            .await,
        1.0
    );
    assert_eq!(
        spamgate
            .metric(&m("errors_total{zone=\"slow.test\",kind=\"timeout\"}"))
            .await,
        7.0
    );
    let refused = "spamgate_rejections_total{stage=\"connect\",reason=\"dnsbl\"}";
    assert_eq!(spamgate.metric(refused).await, 3.0);
    let mails = upstream
        .commands()
        .iter()
        .filter(|c| c.starts_with("MAIL"))
        .count();
    assert_eq!(mails, 0, "nothing reached the upstream");
}

#[tokio::test]
async fn dnsbl_answers_are_cached_and_misses_too() {
    let dns = DnsServer::start(&dnsbl_zones());
    let upstream = Recorder::start(Behaviour::default()).await;
    let spamgate = Spamgate::start(&test_config(
        upstream.addr,
        &dnsbl_yaml_fast(&dns, "connect"),
    ))
    .await;
    let lookups = "spamgate_dns_lookup_duration_seconds_count{type=\"a\"}";

    // 127.0.0.8 is on no list (NXDOMAIN everywhere), 127.0.0.1 on several.
    for (from, code) in [("127.0.0.8", 220), ("127.0.0.1", 554)] {
        let before = spamgate.metric(lookups).await;
        assert_eq!(banner_from(from, &spamgate).await.code, code);
        let first = spamgate.metric(lookups).await;
        assert_eq!(first - before, 5.0, "{from}: one lookup per zone");
        assert_eq!(banner_from(from, &spamgate).await.code, code);
        assert_eq!(
            spamgate.metric(lookups).await,
            first,
            "{from}: all answers cached"
        );
    }
}

/// A list that only adds to the score still names itself to the rules:
/// a rule on that zone fires, a rule on a zone that did not list the
/// client does not, and neither fires for an unlisted client.
#[tokio::test]
async fn rules_see_every_zone_that_listed_the_client() {
    let dns = DnsServer::start(&dnsbl_zones().a("7.0.0.127.score.test", "127.0.0.2"));
    let upstream = Recorder::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:
  - {name: ON_SCORE, stage: data, condition: {dnsbl: [score.test]}, action: {add_header: {name: X-Listed, value: score.test}}}
  - {name: ON_BL, stage: data, condition: {dnsbl: [bl.test]}, action: {add_header: {name: X-Listed, value: bl.test}}}
",
    )
    .unwrap();
    let yaml = format!(
        "{}reputation:
  dnsbl:
    threshold: 3
    zones:
      - {{zone: bl.test, weight: 3}}
      - {{zone: score.test, weight: 1}}
rules: {{files: ['{}']}}
",
        dns.yaml("2s"),
        rules.display()
    );
    let spamgate = Spamgate::start(&test_config(upstream.addr, &yaml)).await;
    let cases = [("127.0.0.7", Some("score.test")), ("127.0.0.8", None)];
    for (n, (from, listed)) in cases.into_iter().enumerate() {
        let mut client = connect_from(from, spamgate.addr).await;
        assert_eq!(client.reply().await.code, 220, "{from}");
        assert_eq!(client.cmd("EHLO client.example").await.code, 250);
        let reply = client
            .send_mail("a@example.com", &["b@example.net"], &message("zones"))
            .await;
        assert_eq!(
            reply.code, 250,
            "{from}: listed with weight 1 only: {reply:?}"
        );
        let got = upstream.wait_accepted(n + 1).await.remove(n);
        let text = String::from_utf8_lossy(&got.message).into_owned();
        let headers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("X-Listed:"))
            .collect();
        let want: Vec<String> = listed.iter().map(|z| format!("X-Listed: {z}")).collect();
        assert_eq!(headers, want, "{from}: {text}");
    }
    spamgate.stop().await;
}

#[tokio::test]
async fn dnsbl_can_wait_for_rcpt_so_the_envelope_is_logged() {
    let dns = DnsServer::start(&dnsbl_zones());
    let upstream = Recorder::start(Behaviour::default()).await;
    let spamgate = Spamgate::start(&test_config(upstream.addr, &dnsbl_yaml(&dns, "rcpt"))).await;

    let mut client = connect_from("127.0.0.1", spamgate.addr).await;
    assert_eq!(client.reply().await.code, 220);
    assert_eq!(client.cmd("EHLO client.example").await.code, 250);
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    let rcpt = client.cmd("RCPT TO:<b@example.net>").await;
    assert_eq!(rcpt.code, 554, "{rcpt:?}");
    assert_eq!(rcpt.status(), Some("5.7.1"));
    assert!(rcpt.text().contains("bl.test"), "{rcpt:?}");
    let data = client.cmd("DATA").await;
    assert!(data.code >= 500, "no recipient, no DATA: {data:?}");
    assert!(
        !upstream.commands().iter().any(|c| c.starts_with("RCPT")),
        "the refused recipient never reached the upstream: {:?}",
        upstream.commands()
    );
    assert!(upstream.accepted().is_empty());
}

fn rate_yaml(limits: &str) -> String {
    format!("reputation:\n  rate_limits:\n    limits:\n{limits}")
}

#[tokio::test]
async fn fifty_messages_with_a_limit_of_ten() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let yaml = rate_yaml(
        "      - {name: messages_per_ip, key: ip, count: messages, rate: 10/1h, burst: 10}\n",
    );
    let spamgate = Spamgate::start(&test_config(upstream.addr, &yaml)).await;

    let mut accepted = 0;
    let mut deferred = 0;
    for round in 0..5 {
        let mut client = Client::ready(spamgate.addr).await;
        for i in 0..10 {
            let body = message(&format!("m{round}-{i}"));
            let reply = client
                .send_mail("a@example.com", &["b@example.net"], &body)
                .await;
            match reply.code {
                250 => accepted += 1,
                450 => {
                    assert_eq!(reply.status(), Some("4.7.1"), "{reply:?}");
                    deferred += 1;
                }
                other => panic!("unexpected {other}: {reply:?}"),
            }
        }
        client.cmd("QUIT").await;
    }
    assert_eq!((accepted, deferred), (10, 40));
    assert_eq!(
        upstream.accepted().len(),
        10,
        "nothing over the limit reached the upstream"
    );
    let mails = upstream
        .commands()
        .iter()
        .filter(|c| c.starts_with("MAIL"))
        .count();
    assert_eq!(mails, 10, "refused transactions were never opened upstream");
    let hits = "spamgate_ratelimit_hits_total{limit=\"messages_per_ip\"}";
    assert_eq!(spamgate.metric(hits).await, 40.0);
    let rejections = "spamgate_rejections_total{stage=\"mail\",reason=\"rate_limit\"}";
    assert_eq!(spamgate.metric(rejections).await, 40.0);
}

#[tokio::test]
async fn connection_and_recipient_limits() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let yaml = rate_yaml(
        "      - {name: conn_per_net, key: network, count: connections, rate: 3/1h}
      - {name: rcpt_per_ip, key: ip, count: recipients, rate: 4/1h}
      - {name: per_rcpt, key: recipient, count: messages, rate: 1/1h}
",
    );
    let spamgate = Spamgate::start(&test_config(upstream.addr, &yaml)).await;

    let mut client = connect_from("127.0.3.1", spamgate.addr).await;
    assert_eq!(client.reply().await.code, 220);
    assert_eq!(client.cmd("EHLO client.example").await.code, 250);
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    let codes: Vec<u16> = {
        let mut codes = Vec::new();
        for rcpt in [
            "r1@x.example",
            "r1@x.example",
            "r2@x.example",
            "r3@x.example",
            "r4@x.example",
            "r5@x.example",
        ] {
            codes.push(client.cmd(&format!("RCPT TO:<{rcpt}>")).await.code);
        }
        codes
    };
    // r1 twice: the second is over "one message per recipient"; the
    // recipient budget of 4 is spent by r1, r1, r2, r3.
    assert_eq!(codes, [250, 450, 250, 250, 450, 450]);
    client.cmd("QUIT").await;

    // Three connections per /24 (the first one above counts): the fourth is refused.
    for from in ["127.0.3.2", "127.0.3.3"] {
        assert_eq!(banner_from(from, &spamgate).await.code, 220, "{from}");
    }
    let mut fourth = connect_from("127.0.3.4", spamgate.addr).await;
    let refused = fourth.reply().await;
    assert_eq!(
        (refused.code, refused.status()),
        (421, Some("4.7.0")),
        "{refused:?}"
    );
    assert!(fourth.is_closed().await);
    assert_eq!(
        banner_from("127.0.4.1", &spamgate).await.code,
        220,
        "another /24"
    );
    let hits = "spamgate_ratelimit_hits_total{limit=\"conn_per_net\"}";
    assert_eq!(spamgate.metric(hits).await, 1.0);
}

#[tokio::test]
async fn early_talker_is_refused() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let yaml = "reputation:\n  greet_delay: 400ms\n";
    let spamgate = Spamgate::start(&test_config(upstream.addr, yaml)).await;

    let mut rude = Client::connect(spamgate.addr).await;
    rude.send(b"EHLO bot.example\r\n").await;
    let reply = rude.reply().await;
    assert_eq!(
        (reply.code, reply.status()),
        (554, Some("5.5.1")),
        "{reply:?}"
    );
    assert!(rude.is_closed().await);

    // A partial line counts as talking too.
    let mut partial = Client::connect(spamgate.addr).await;
    partial.send(b"EH").await;
    assert_eq!(partial.reply().await.code, 554);

    let mut polite = Client::ready(spamgate.addr).await;
    let reply = polite
        .send_mail("a@example.com", &["b@example.net"], &message("polite"))
        .await;
    assert_eq!(reply.code, 250);
    let early = "spamgate_rejections_total{stage=\"connect\",reason=\"early_talker\"}";
    assert_eq!(spamgate.metric(early).await, 2.0);
}

/// A spamgate whose only listener expects a PROXY header from loopback,
/// so that tests can present clients from any address: the resolver
/// answers every 127/8 PTR query itself with "localhost" (RFC 6761).
async fn behind_proxy(upstream: SocketAddr, extra: &str) -> Spamgate {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let l = listener.local_addr().unwrap();
    let yaml = format!(
        "listen: ['{l}']\nproxy_protocol: {{listeners: ['{l}'], trusted: ['127.0.0.1']}}\n{extra}"
    );
    let config = Config::from_yaml(&test_config(upstream, &yaml), Path::new("test.yaml")).unwrap();
    Spamgate::start_on(vec![listener], config).await
}

async fn proxied_client(spamgate: &Spamgate, from: &str) -> Client {
    let mut client = Client::connect(spamgate.addr).await;
    client
        .send(format!("PROXY TCP4 {from} 127.0.0.1 40000 25\r\n").as_bytes())
        .await;
    client
}

#[tokio::test]
async fn reverse_dns_and_helo_scores_and_xclient_name() {
    let zones = Zones::new()
        .record("10.2.0.192.in-addr.arpa", "PTR", "client.test.")
        .a("client.test", "192.0.2.10")
        .record("20.2.0.192.in-addr.arpa", "PTR", "liar.test.")
        .a("liar.test", "192.0.2.1");
    let dns = DnsServer::start(&zones);
    let upstream = Recorder::start(Behaviour::default()).await;
    let yaml = format!(
        "{}scoring: {{tag_score: 0.5, reject_score: 100}}
reputation:
  fcrdns: {{enabled: true, no_ptr_score: 1.5, mismatch_score: 1.3, timeout: 5s}}
  helo: {{enabled: true, our_name_score: 3, literal_mismatch_score: 2}}
",
        dns.yaml("2s")
    );
    let spamgate = behind_proxy(upstream.addr, &yaml).await;

    let cases = [
        ("192.0.2.10", "client.test", None),
        ("192.0.2.20", "liar.test", Some(("1.3", "fcrdns"))),
        ("192.0.2.30", "client.example", Some(("1.5", "fcrdns"))),
        ("192.0.2.10", "spamgate.test", Some(("3.0", "helo"))),
        ("192.0.2.10", "[192.0.2.99]", Some(("2.0", "helo"))),
        ("192.0.2.10", "[192.0.2.10]", None),
    ];
    for (n, (from, helo, tagged)) in cases.into_iter().enumerate() {
        let mut client = proxied_client(&spamgate, from).await;
        assert_eq!(client.reply().await.code, 220);
        assert_eq!(client.cmd(&format!("EHLO {helo}")).await.code, 250);
        let reply = client
            .send_mail(
                "a@example.com",
                &["b@example.net"],
                &message(&format!("m{n}")),
            )
            .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        let got = upstream.wait_accepted(n + 1).await.remove(n);
        let text = String::from_utf8_lossy(&got.message).to_string();
        match tagged {
            None => assert!(!text.contains("X-Spam-Status"), "{from} {helo}: {text}"),
            Some((score, test)) => {
                let status = format!("X-Spam-Status: Yes, score={score}");
                assert!(
                    text.contains(&status),
                    "{from} {helo}: wants {status}: {text}"
                );
                assert!(text.contains(test), "{from} {helo}: {text}");
            }
        }
        let name = got.xclient.iter().any(|x| x.contains("NAME=client.test"));
        assert_eq!(name, from == "192.0.2.10", "{from}: {:?}", got.xclient);
    }
}

#[tokio::test]
async fn listed_link_and_sender_domains_add_to_the_score() {
    let zones = Zones::new()
        .a("evil.example.dbl.test", "127.0.1.2")
        .a("spammer.example.dbl.test", "127.0.1.2")
        .a("harmless.example.dbl.test", "127.0.1.255");
    let dns = DnsServer::start(&zones);
    let upstream = Recorder::start(Behaviour::default()).await;
    let yaml = format!(
        "{}scoring: {{tag_score: 3, reject_score: 5}}
reputation:
  domain_lists:
    timeout: 5s
    zones:
      - {{zone: dbl.test, weight: 3, filter: ['127.0.1.2-99']}}
",
        dns.yaml("2s")
    );
    let spamgate = Spamgate::start(&test_config(upstream.addr, &yaml)).await;
    let link = |host: &str| {
        format!(
            "From: a@example.com\r\nSubject: offer\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             <a href=3D\"https://{host}/buy\">buy</a>\r\n"
        )
    };
    let cases = [
        ("a@good.example", link("harmless.example"), 250, false),
        ("a@good.example", link("evil.example"), 250, true),
        ("a@spammer.example", link("harmless.example"), 250, true),
        ("a@spammer.example", link("evil.example"), 550, false),
    ];
    let mut relayed = 0;
    for (from, body, code, tagged) in cases {
        let mut client = Client::ready(spamgate.addr).await;
        let reply = client.send_mail(from, &["b@example.net"], &body).await;
        assert_eq!(reply.code, code, "{from} {body}: {reply:?}");
        if code == 250 {
            relayed += 1;
            let got = upstream.wait_accepted(relayed).await.remove(relayed - 1);
            let text = String::from_utf8_lossy(&got.message).to_string();
            assert_eq!(
                text.contains("X-Spam-Status: Yes"),
                tagged,
                "{from}: {text}"
            );
        }
    }
    assert_eq!(
        spamgate
            .metric("spamgate_dnsbl_hits_total{zone=\"dbl.test\"}")
            .await,
        4.0
    );
}

#[tokio::test]
async fn spamgate_test_reports_dnsbl_and_rate_limits() {
    let dns = DnsServer::start(&dnsbl_zones());
    let yaml = format!(
        "{}  rate_limits:\n    limits:\n      - {{name: per_sender, key: sender, count: messages, rate: 1/1h}}\n",
        dnsbl_yaml_fast(&dns, "connect")
    );
    let config = Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap();
    let input = |ip: &str| spamgate::offline::TestInput {
        ip: ip.parse().unwrap(),
        helo: "client.example".into(),
        mail_from: "a@example.com".into(),
        rcpts: vec!["b@example.net".into()],
        message: message("offline").into_bytes(),
    };

    let report = spamgate::offline::run(&config, &input("127.0.0.6"))
        .await
        .unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["verdict"], "accept", "{json:#}");
    assert_eq!(json["dnsbl"]["score"], 0.0);
    let errors: Vec<(String, String)> = json["dnsbl"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["zone"].as_str().unwrap().into(),
                e["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("err.test", "error_answer"),
        ("wild.test", "outside_loopback"),
    ];
    assert_eq!(errors, want.map(|(z, k)| (z.to_string(), k.to_string())));
    assert_eq!(json["rate_limits"][0]["name"], "per_sender");
    assert_eq!(json["rate_limits"][0]["key"], "a@example.com");
    assert_eq!(json["rate_limits"][0]["result"], "allowed");

    let report = spamgate::offline::run(&config, &input("127.0.0.1"))
        .await
        .unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        (json["verdict"].as_str(), json["stage"].as_str()),
        (Some("reject"), Some("connect"))
    );
    assert_eq!(json["dnsbl"]["listed"][0]["zone"], "bl.test");
    assert_eq!(json["dnsbl"]["listed"][0]["answers"], "127.0.0.2");
    assert_eq!(json["dnsbl"]["score"], 3.0);
}

#[tokio::test]
async fn dnsbl_asks_about_ipv6_clients_by_reversed_nibbles() {
    let listed = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test";
    let dns = DnsServer::start(&Zones::new().a(listed, "127.0.0.2"));
    let upstream = Recorder::start(Behaviour::default()).await;
    let yaml = format!(
        "{}reputation:\n  dnsbl:\n    zones: [{{zone: bl.test, weight: 3}}]\n",
        dns.yaml("2s")
    );
    let spamgate = behind_proxy(upstream.addr, &yaml).await;
    for (from, code) in [("2001:db8::1", 554), ("2001:db8::2", 220)] {
        let mut client = Client::connect(spamgate.addr).await;
        let header = format!("PROXY TCP6 {from} ::1 40000 25\r\n");
        client.send(header.as_bytes()).await;
        let banner = client.reply().await;
        assert_eq!(banner.code, code, "{from}: {banner:?}");
    }
}

/// A limit configured to answer 421 ends the session, as 421 means.
#[tokio::test]
async fn rate_limit_with_421_closes_the_session() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let yaml = rate_yaml(
        "      - {name: per_ip, key: ip, count: messages, rate: 1/1h, burst: 1, reply: 421}\n",
    );
    let spamgate = Spamgate::start(&test_config(upstream.addr, &yaml)).await;
    let mut client = Client::ready(spamgate.addr).await;
    let first = client
        .send_mail("a@example.com", &["b@example.net"], &message("one"))
        .await;
    assert_eq!(first.code, 250, "{first:?}");
    let second = client.cmd("MAIL FROM:<a@example.com>").await;
    assert_eq!(
        (second.code, second.status()),
        (421, Some("4.7.0")),
        "{second:?}"
    );
    assert!(client.is_closed().await, "421 closes the channel");
    assert_eq!(upstream.accepted().len(), 1);
}
