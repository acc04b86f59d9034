use super::*;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_yaml(text, Path::new("test.yaml"))
}

#[test]
fn empty_file_gives_defaults() {
    let config = load("").unwrap();
    assert_eq!(config.listen, vec!["127.0.0.1:2525".parse().unwrap()]);
    assert_eq!(config.limits.max_command_line, 512);
    assert_eq!(config.limits.max_text_line, 1000);
    assert!(config.upstream.xclient);
    assert_eq!(config.smtp.bare_newline, BareNewline::Reject);
}

#[test]
fn full_file_is_read() {
    let text = "\
hostname: mx.example.org
listen: ['127.0.0.1:25', '[::1]:25']
upstream: {address: 'mail.internal:10025', xclient: false}
metrics: {listen: '127.0.0.1:9425'}
dns: {nameservers: ['127.0.0.1:5353'], timeout: 500ms}
limits: {max_message_size: 1048576, max_recipients: 5}
timeouts: {idle: 1m, data: 2m}
smtp: {bare_newline: normalize}
log: {format: json}
checks: {ip_lists: {deny: ['192.0.2.0/24', '2001:db8::1']}}
";
    let c = load(text).unwrap();
    assert_eq!(c.hostname, "mx.example.org");
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.upstream.address, "mail.internal:10025");
    assert!(!c.upstream.xclient);
    assert_eq!(c.upstream.helo_name, "mx.example.org");
    assert_eq!(c.dns.timeout, Duration::from_millis(500));
    assert_eq!(c.limits.max_recipients, 5);
    assert_eq!(c.timeouts.idle, Duration::from_secs(60));
    assert_eq!(c.smtp.bare_newline, BareNewline::Normalize);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.checks.ip_lists.deny[1].to_string(), "2001:db8::1/128");
}

#[test]
fn every_error_is_reported_with_its_line() {
    let text = "\
listen: ['nonsense']
upstream: {address: 'no-port'}
limits:
  max_recipients: 0
timeouts: {idle: 5 days}
checks: {ip_lists: {allow: ['10.0.0.0/33']}}
";
    let errors = load(text).unwrap_err().0;
    let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (1, "listen"),
            (2, "upstream.address"),
            (4, "limits.max_recipients"),
            (5, "timeouts.idle"),
            (6, "checks.ip_lists.allow"),
        ]
    );
    assert!(errors[0].to_string().starts_with("test.yaml:1:"));
}

#[test]
fn unknown_keys_are_rejected_with_location() {
    let errors = load("upstream:\n  adress: 'x:1'\n").unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].column), (2, 3));
    assert_eq!(errors[0].key, "upstream.adress");
    assert_eq!(errors[0].message, "unknown key; did you mean `address`?");
}

/// A typo no longer hides the other errors: all come in one run, in file
/// order, each place printed once.
#[test]
fn unknown_keys_and_bad_values_are_reported_together() {
    let yaml = "upstream:\n  xclinet: true\n  address: 'no port'\nlimits:\n  max_recipients: 0\nrelay_domain: [example.org]\n";
    let errors = load(yaml).unwrap_err().0;
    let keys: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        keys,
        [
            (2, "upstream.xclinet"),
            (3, "upstream.address"),
            (5, "limits.max_recipients"),
            (6, "relay_domain"),
        ]
    );
    assert!(
        errors[3].message.ends_with("did you mean `relay_domains`?"),
        "{}",
        errors[3]
    );
    let text = errors[0].to_string();
    assert_eq!(text.matches(":2:").count(), 1, "{text}");
    assert!(!text.contains("line 2"), "{text}");
}

#[test]
fn wrong_types_are_rejected() {
    let errors = load("limits: {max_recipients: many}\n").unwrap_err().0;
    assert_eq!(errors[0].line, 1);
}

#[test]
fn shipped_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
    Config::load(&path).unwrap();
}
