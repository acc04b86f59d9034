//! Cluster state: several spamgate instances sharing one real
//! `redis-server` (started here on a free loopback port, killed on drop)
//! enforce one rate limit, one greylist and one DNS list cache; a Redis
//! that dies mid-test gives the configured behaviour, never a crash.

mod common;

use std::time::{Duration, Instant};

use common::client::{message, Client};
use common::dns::{DnsServer, Zones};
use common::redis::RedisServer;
use common::upstream::{Behaviour, Recorder};
use common::{test_config, Spamgate};

fn state_yaml(redis: &RedisServer, on_failure: &str) -> String {
    format!(
        "state:\n  backend: redis\n  redis: {{url: '{}', on_failure: {on_failure}, command_timeout: 300ms, connect_timeout: 300ms}}\n",
        redis.url()
    )
}

const LIMIT: &str = "reputation:
  rate_limits:
    limits:
      - {name: messages_per_ip, key: ip, count: messages, rate: 10/1h, burst: 10}
";

async fn instance(
    upstream: &Recorder,
    redis: &RedisServer,
    on_failure: &str,
    extra: &str,
) -> Spamgate {
    let yaml = format!("{}{extra}", state_yaml(redis, on_failure));
    Spamgate::start(&test_config(upstream.addr, &yaml)).await
}

#[tokio::test]
async fn two_instances_enforce_one_limit_and_survive_redis_dying() {
    let mut redis = RedisServer::start();
    let upstream = Recorder::start(Behaviour::default()).await;
    let a = instance(&upstream, &redis, "tempfail", LIMIT).await;
    let b = instance(&upstream, &redis, "tempfail", LIMIT).await;
    let open = instance(&upstream, &redis, "fail_open", LIMIT).await;

    let mut clients = [Client::ready(a.addr).await, Client::ready(b.addr).await];
    let mut accepted = [0, 0];
    for i in 0..30 {
        let reply = clients[i % 2]
            .send_mail(
                "a@example.com",
                &["b@example.net"],
                &message(&format!("m{i}")),
            )
            .await;
        match reply.code {
            250 => accepted[i % 2] += 1,
            450 => assert_eq!(reply.status(), Some("4.7.1"), "{reply:?}"),
            _ => panic!("{reply:?}"),
        }
    }
    assert_eq!(
        accepted[0] + accepted[1],
        10,
        "one limit for both: {accepted:?}"
    );
    assert!(
        accepted[0] > 0 && accepted[1] > 0,
        "both served: {accepted:?}"
    );
    assert_eq!(upstream.accepted().len(), 10);

    redis.kill();
    let reply = clients[0]
        .send_mail("a@example.com", &["b@example.net"], &message("down"))
        .await;
    assert_eq!(
        (reply.code, reply.status()),
        (451, Some("4.3.0")),
        "tempfail: {reply:?}"
    );
    assert_eq!(
        clients[0].cmd("QUIT").await.code,
        221,
        "the session lives on"
    );
    let mut client = Client::ready(open.addr).await;
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &message("open"))
        .await;
    assert_eq!(reply.code, 250, "fail open: {reply:?}");
    upstream.wait_accepted(11).await;
    for spamgate in [&a, &open] {
        let errors = spamgate
            .metric("spamgate_state_errors_total{op=\"rate_limit\"}")
            .await;
        assert!(errors >= 1.0, "state errors counted: {errors}");
    }

    // Redis comes back (empty): each instance re-makes its connection on
    // its own and the shared limit applies again.
    redis.spawn();
    let mut clients = [Client::ready(a.addr).await, Client::ready(b.addr).await];
    for client in &mut clients {
        until_accepted(client).await;
    }
    let codes = send_many(&mut clients[1], 10).await;
    let count = |code: u16| codes.iter().filter(|c| **c == code).count();
    assert_eq!((count(250), count(450)), (8, 2), "{codes:?}");
}

/// Sends messages until one is accepted (Redis is back), 451 meanwhile.
async fn until_accepted(client: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = client
            .send_mail("a@example.com", &["b@example.net"], &message("back"))
            .await;
        if reply.code == 250 {
            return;
        }
        assert_eq!(reply.code, 451, "{reply:?}");
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `n` messages and returns the reply codes.
async fn send_many(client: &mut Client, n: usize) -> Vec<u16> {
    let mut codes = Vec::new();
    for i in 0..n {
        let body = message(&format!("again{i}"));
        let reply = client
            .send_mail("a@example.com", &["b@example.net"], &body)
            .await;
        codes.push(reply.code);
    }
    codes
}

#[tokio::test]
async fn greylist_triplets_are_shared() {
    let redis = RedisServer::start();
    let upstream = Recorder::start(Behaviour::default()).await;
    let grey = "reputation:\n  greylist: {enabled: true, delay: 1s}\n";
    let a = instance(&upstream, &redis, "tempfail", grey).await;
    let b = instance(&upstream, &redis, "tempfail", grey).await;
    let rcpt = "RCPT TO:<b@example.net>";

    let started = Instant::now();
    let mut client = Client::ready(a.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    let first = client.cmd(rcpt).await;
    assert_eq!(
        (first.code, first.status()),
        (450, Some("4.7.1")),
        "{first:?}"
    );

    let mut other = Client::ready(b.addr).await;
    assert_eq!(other.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    let passed = loop {
        let reply = other.cmd(rcpt).await;
        if reply.code == 250 {
            break started.elapsed();
        }
        assert_eq!(reply.code, 450, "{reply:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "never passed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        passed >= Duration::from_secs(1),
        "passed after the delay only: {passed:?}"
    );
    // Confirmed on B, known on A at once.
    assert_eq!(client.cmd(rcpt).await.code, 250);
    let metric = |result: &str| format!("spamgate_greylist_total{{result=\"{result}\"}}");
    assert_eq!(a.metric(&metric("new")).await, 1.0);
    assert_eq!(b.metric(&metric("passed")).await, 1.0);
    assert_eq!(a.metric(&metric("known")).await, 1.0);
}

#[tokio::test]
async fn dnsbl_cache_is_shared() {
    let redis = RedisServer::start();
    let dns = DnsServer::start(&Zones::new().a("1.0.0.127.bl.test", "127.0.0.2"));
    let upstream = Recorder::start(Behaviour::default()).await;
    let lists = format!(
        "{}reputation:\n  dnsbl:\n    zones: [{{zone: bl.test, weight: 5}}]\n",
        dns.yaml("2s")
    );
    let a = instance(&upstream, &redis, "fail_open", &lists).await;
    let b = instance(&upstream, &redis, "fail_open", &lists).await;
    let lookups = "spamgate_dns_lookup_duration_seconds_count{type=\"a\"}";

    for spamgate in [&a, &b] {
        let mut client = Client::connect(spamgate.addr).await;
        let banner = client.reply().await;
        assert_eq!(banner.code, 554, "{banner:?}");
        assert!(banner.text().contains("bl.test"));
    }
    assert_eq!(a.metric(lookups).await, 1.0, "A asked DNS");
    assert_eq!(b.metric(lookups).await, 0.0, "B found A's answer in Redis");
    assert_eq!(
        b.metric("spamgate_dnsbl_hits_total{zone=\"bl.test\"}")
            .await,
        1.0
    );
}
