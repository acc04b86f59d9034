//! Raw rules to compiled rules. Every problem is collected with its file,
//! line, column and rule name; nothing stops at the first error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use regex_syntax::hir::Hir;
use serde_saphyr::Location;

use super::condition::{AuthMethod, Bounds, Condition, Field, AUTH_WORDS};
use super::content::Fact;
use super::error::RuleError;
use super::raw::{
    RawAction, RawAddHeader, RawBulk, RawCondition, RawFact, RawHeader, RawRange, RawReply,
    RawRule, S,
};
use super::{Action, Effect, Rule};
use crate::config::rules::RuleMode;
use crate::judgement::reply::{canned, Reply};
use crate::judgement::Stage;

const STAGES: [Stage; 5] = [
    Stage::Connect,
    Stage::Helo,
    Stage::Mail,
    Stage::Rcpt,
    Stage::Data,
];

pub fn stage_index(stage: Stage) -> usize {
    STAGES.iter().position(|s| *s == stage).unwrap_or(0)
}

/// A regex condition waiting to be checked and indexed once every rule is read.
pub struct PendingAtom {
    pub field: Field,
    pub pattern: String,
    pub file: PathBuf,
    pub location: Location,
    pub rule: Option<String>,
}

/// The regex conditions of one stage, identical ones shared.
#[derive(Default)]
pub struct AtomTable {
    ids: HashMap<(Field, String), usize>,
    pub pending: Vec<PendingAtom>,
}

impl AtomTable {
    fn add(&mut self, atom: PendingAtom) -> usize {
        let key = (atom.field.clone(), atom.pattern.clone());
        let next = self.pending.len();
        let id = *self.ids.entry(key).or_insert(next);
        if id == next {
            self.pending.push(atom);
        }
        id
    }
}

/// Parses one pending atom's regex (with the parser and settings the
/// `regex` crate uses, so what passes here compiles); the error is already
/// a [`RuleError`].
pub fn parse_regex(atom: &PendingAtom) -> Result<Hir, RuleError> {
    regex_syntax::Parser::new()
        .parse(&atom.pattern)
        .map_err(|e| RuleError {
            file: atom.file.clone(),
            line: atom.location.line(),
            column: atom.location.column(),
            rule: atom.rule.clone(),
            message: format!("invalid regex '{}': {}", atom.pattern, regex_why(&e)),
        })
}

/// The regex parser draws a caret diagram; its last line says why.
fn regex_why(error: &regex_syntax::Error) -> String {
    let text = error.to_string();
    let last = text.lines().last().unwrap_or("invalid");
    last.trim_start_matches("error: ").to_string()
}

/// Compiles the rules of one file, adding atoms to the per-stage tables.
pub struct Compiler<'a> {
    pub file: &'a Path,
    pub errors: &'a mut Vec<RuleError>,
    pub tables: &'a mut [AtomTable; 5],
    rule: Option<String>,
    stage: Stage,
}

impl<'a> Compiler<'a> {
    pub fn new(
        file: &'a Path,
        errors: &'a mut Vec<RuleError>,
        tables: &'a mut [AtomTable; 5],
    ) -> Self {
        Compiler {
            file,
            errors,
            tables,
            rule: None,
            stage: Stage::Data,
        }
    }

    pub fn error(&mut self, at: Location, message: impl Into<String>) {
        self.errors.push(RuleError {
            file: self.file.to_path_buf(),
            line: at.line(),
            column: at.column(),
            rule: self.rule.clone(),
            message: message.into(),
        });
    }

    pub fn rule(&mut self, raw: &S<RawRule>) -> Option<Rule> {
        let at = raw.referenced;
        let r = &raw.value;
        self.rule = r.name.as_ref().map(|n| n.value.trim().to_string());
        let name = self.name(at, r.name.as_ref());
        let stage = self.stage(at, r.stage.as_ref());
        self.stage = stage.unwrap_or(Stage::Data);
        let mode = self.mode(r.mode.as_ref());
        let condition = match &r.condition {
            Some(c) => self.condition(c),
            None => {
                self.error(at, "'condition' is missing");
                None
            }
        };
        let action = match &r.action {
            Some(a) => self.action(a),
            None => {
                self.error(at, "'action' is missing");
                None
            }
        };
        Some(Rule {
            name: name?,
            description: r
                .description
                .as_ref()
                .map(|d| d.value.clone())
                .unwrap_or_default(),
            stage: stage?,
            mode,
            condition: condition?,
            action: action?,
            file: self.file.to_path_buf(),
            line: at.line(),
        })
    }

    fn name(&mut self, at: Location, name: Option<&S<String>>) -> Option<String> {
        let Some(name) = name else {
            self.error(at, "'name' is missing");
            return None;
        };
        let text = name.value.trim();
        let valid = !text.is_empty()
            && text.len() <= 100
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !valid {
            let why = "names are 1 to 100 letters, digits, '_', '-' or '.'";
            self.error(name.referenced, format!("'{text}': {why}"));
            return None;
        }
        Some(text.to_string())
    }

    fn stage(&mut self, at: Location, stage: Option<&S<String>>) -> Option<Stage> {
        let Some(stage) = stage else {
            self.error(at, "'stage' is missing (connect, helo, mail, rcpt or data)");
            return None;
        };
        let found = STAGES.iter().find(|s| s.as_str() == stage.value.trim());
        if found.is_none() {
            let message = format!(
                "'{}' is not one of: connect, helo, mail, rcpt, data",
                stage.value
            );
            self.error(stage.referenced, message);
        }
        found.copied()
    }

    fn mode(&mut self, mode: Option<&S<String>>) -> RuleMode {
        match mode.map(|m| (m, m.value.trim())) {
            None | Some((_, "enforce")) => RuleMode::Enforce,
            Some((_, "monitor")) => RuleMode::Monitor,
            Some((m, other)) => {
                self.error(
                    m.referenced,
                    format!("mode '{other}' is not one of: enforce, monitor"),
                );
                RuleMode::Enforce
            }
        }
    }

    /// Checks that a condition's data exists at the rule's stage.
    fn needs(&mut self, at: Location, what: &str, first: Stage) -> bool {
        if stage_index(self.stage) >= stage_index(first) {
            return true;
        }
        let message = format!(
            "'{what}' is not known at stage {}; it needs stage {} or later",
            self.stage.as_str(),
            first.as_str()
        );
        self.error(at, message);
        false
    }

    fn condition(&mut self, raw: &S<RawCondition>) -> Option<Condition> {
        let keys = present_keys(&raw.value);
        match keys.as_slice() {
            [_] => self.one_condition(raw),
            [] => {
                self.error(raw.referenced, "empty condition: give one of all, any, not, client_ip, helo, sender, recipient, header, any_header, body, raw, attachment_name, attachment_type, size, recipients, spf, dkim, dmarc, arc, dnsbl, score, bayes, bulk, fact");
                None
            }
            many => {
                let message = format!(
                    "a condition has exactly one key, found {}; combine them with 'all' or 'any'",
                    many.join(", ")
                );
                self.error(raw.referenced, message);
                None
            }
        }
    }

    fn one_condition(&mut self, raw: &S<RawCondition>) -> Option<Condition> {
        let c = &raw.value;
        if let Some(list) = &c.all {
            return self.list(list).map(Condition::All);
        }
        if let Some(list) = &c.any {
            return self.list(list).map(Condition::Any);
        }
        if let Some(inner) = &c.not {
            return self.condition(inner).map(|c| Condition::Not(Box::new(c)));
        }
        if let Some(nets) = &c.client_ip {
            return self.cidrs(raw.referenced, nets).map(Condition::ClientIp);
        }
        if let Some(h) = &c.header {
            return self.header(h);
        }
        if let Some((field, pattern)) = regex_condition(c) {
            return self.atom(field, pattern);
        }
        self.other_condition(raw)
    }

    fn other_condition(&mut self, raw: &S<RawCondition>) -> Option<Condition> {
        let c = &raw.value;
        let at = raw.referenced;
        if let Some(r) = &c.size {
            let ok = self.needs(at, "size", Stage::Data);
            return self.bounds(r).filter(|_| ok).map(Condition::Size);
        }
        if let Some(r) = &c.recipients {
            let ok = self.needs(at, "recipients", Stage::Rcpt);
            return self.bounds(r).filter(|_| ok).map(Condition::Recipients);
        }
        if let Some(r) = &c.score {
            return self.bounds(r).map(Condition::Score);
        }
        if let Some(p) = &c.bayes {
            let ok = self.needs(at, "bayes", Stage::Data);
            return self.probability(p).filter(|_| ok).map(Condition::Bayes);
        }
        if let Some(b) = &c.bulk {
            let ok = self.needs(at, "bulk", Stage::Data);
            return self.bulk(&b.value).filter(|_| ok);
        }
        if let Some(f) = &c.fact {
            let ok = self.needs(at, "fact", Stage::Data);
            return self.fact(f).filter(|_| ok);
        }
        if let Some(zones) = &c.dnsbl {
            let zones = zones.iter().map(|z| z.value.trim().to_ascii_lowercase());
            return Some(Condition::Dnsbl(zones.collect()));
        }
        let methods = [
            (&c.spf, AuthMethod::Spf, "spf"),
            (&c.dkim, AuthMethod::Dkim, "dkim"),
            (&c.dmarc, AuthMethod::Dmarc, "dmarc"),
            (&c.arc, AuthMethod::Arc, "arc"),
        ];
        let (words, method, name) = methods.into_iter().find(|(w, _, _)| w.is_some())?;
        let ok = self.needs(at, name, method.first_stage());
        let words = self.auth_words(words.as_deref().unwrap_or_default());
        words.filter(|_| ok).map(|w| Condition::Auth(method, w))
    }

    fn bulk(&mut self, raw: &RawBulk) -> Option<Condition> {
        let mut range = |r: &Option<S<RawRange>>| match r {
            Some(r) => self.bounds(r).map(Some),
            None => Some(None),
        };
        let recipients = range(&raw.recipients);
        let clients = range(&raw.clients);
        Some(Condition::Bulk {
            recipients: recipients?,
            clients: clients?,
        })
    }

    fn list(&mut self, list: &[S<RawCondition>]) -> Option<Vec<Condition>> {
        let compiled: Vec<Option<Condition>> = list.iter().map(|c| self.condition(c)).collect();
        compiled.into_iter().collect()
    }

    fn cidrs(&mut self, at: Location, nets: &[S<String>]) -> Option<Vec<IpNet>> {
        if nets.is_empty() {
            self.error(at, "client_ip needs at least one address or network");
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for net in nets {
            let text = net.value.trim();
            let parsed = text
                .parse::<IpNet>()
                .ok()
                .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from));
            match parsed {
                Some(n) => out.push(n.trunc()),
                None => {
                    ok = false;
                    self.error(
                        net.referenced,
                        format!("'{text}' is not an IP address or CIDR network"),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    fn header(&mut self, raw: &S<RawHeader>) -> Option<Condition> {
        self.needs(raw.referenced, "header", Stage::Data);
        let Some(name) = &raw.value.name else {
            self.error(raw.referenced, "header needs a 'name'");
            return None;
        };
        let text = name.value.trim();
        if !valid_header_name(text) {
            self.error(
                name.referenced,
                format!("'{text}' is not a header field name"),
            );
            return None;
        }
        let field = Field::Header(text.to_ascii_lowercase());
        // Without a regex the condition is "the header is present": the
        // empty regex matches every occurrence.
        let empty = S {
            value: String::new(),
            referenced: name.referenced,
            defined: name.defined,
        };
        self.atom(field, raw.value.regex.as_ref().unwrap_or(&empty))
    }

    fn atom(&mut self, field: Field, pattern: &S<String>) -> Option<Condition> {
        let what = field_key(&field);
        let ok = self.needs(pattern.referenced, what, field.first_stage());
        let atom = PendingAtom {
            field,
            pattern: pattern.value.clone(),
            file: self.file.to_path_buf(),
            location: pattern.referenced,
            rule: self.rule.clone(),
        };
        let id = self.tables[stage_index(self.stage)].add(atom);
        ok.then_some(Condition::Atom(id))
    }

    fn fact(&mut self, raw: &S<RawFact>) -> Option<Condition> {
        let RawFact { name, min, max } = &raw.value;
        let Some(name) = name else {
            self.error(raw.referenced, "fact needs a 'name'");
            return None;
        };
        let fact = Fact::from_name(name.value.trim());
        if fact.is_none() {
            let names: Vec<&str> = Fact::NAMES.iter().map(|(n, _)| *n).collect();
            let message = format!(
                "'{}' is not one of: {}",
                name.value.trim(),
                names.join(", ")
            );
            self.error(name.referenced, message);
        }
        let range = S {
            value: RawRange {
                min: *min,
                max: *max,
            },
            referenced: raw.referenced,
            defined: raw.defined,
        };
        let bounds = self.bounds(&range);
        Some(Condition::Fact(fact?, bounds?))
    }

    fn bounds(&mut self, raw: &S<RawRange>) -> Option<Bounds> {
        let RawRange { min, max } = raw.value;
        match (min, max) {
            (None, None) => self.error(raw.referenced, "give 'min', 'max' or both"),
            (Some(a), Some(b)) if a > b => {
                self.error(raw.referenced, format!("min {a} is above max {b}"))
            }
            _ => return Some(Bounds { min, max }),
        }
        None
    }

    /// `above`/`below` of the bayes condition, as bounds within 0..1.
    fn probability(&mut self, raw: &S<super::raw::RawProbability>) -> Option<Bounds> {
        let (min, max) = (raw.value.above, raw.value.below);
        let outside = [min, max]
            .into_iter()
            .flatten()
            .find(|p| !(0.0..=1.0).contains(p));
        match (min, max, outside) {
            (None, None, _) => self.error(raw.referenced, "give 'above', 'below' or both"),
            (_, _, Some(p)) => {
                self.error(raw.referenced, format!("{p} is not a probability (0 to 1)"))
            }
            (Some(a), Some(b), _) if a > b => {
                self.error(raw.referenced, format!("above {a} is more than below {b}"))
            }
            _ => return Some(Bounds { min, max }),
        }
        None
    }

    fn auth_words(&mut self, words: &[S<String>]) -> Option<Vec<crate::judgement::AuthResult>> {
        let mut out = Vec::new();
        for word in words {
            let text = word.value.trim().to_ascii_lowercase();
            match AUTH_WORDS.iter().find(|w| w.as_str() == text) {
                Some(w) => out.push(*w),
                None => {
                    let names: Vec<&str> = AUTH_WORDS.iter().map(|w| w.as_str()).collect();
                    let message = format!("'{text}' is not one of: {}", names.join(", "));
                    self.error(word.referenced, message);
                    return None;
                }
            }
        }
        Some(out)
    }

    fn action(&mut self, raw: &S<RawAction>) -> Option<Action> {
        let a = &raw.value;
        let effects = [a.reject.is_some(), a.tempfail.is_some(), a.accept.is_some()];
        if effects.iter().filter(|e| **e).count() > 1 {
            self.error(
                raw.referenced,
                "only one of reject, tempfail and accept per rule",
            );
            return None;
        }
        if a.score.is_none() && a.add_header.is_none() && !effects.contains(&true) {
            self.error(
                raw.referenced,
                "empty action: give score, reject, tempfail, accept or add_header",
            );
            return None;
        }
        let effect = self.effect(a)?;
        let header = match &a.add_header {
            Some(h) => Some(self.add_header(h)?),
            None => None,
        };
        let score = a.score.as_ref().map_or(0.0, |s| s.value);
        if !score.is_finite() {
            self.error(raw.referenced, "score must be a finite number");
            return None;
        }
        Some(Action {
            score,
            effect,
            header,
        })
    }

    fn effect(&mut self, a: &RawAction) -> Option<Effect> {
        if let Some(r) = &a.reject {
            return self.reply(r, 5).map(Effect::Reject);
        }
        if let Some(r) = &a.tempfail {
            return self.reply(r, 4).map(Effect::Tempfail);
        }
        match &a.accept {
            Some(accept) if accept.value => Some(Effect::Accept),
            Some(accept) => {
                self.error(accept.referenced, "accept: false does nothing; remove it");
                None
            }
            None => Some(Effect::None),
        }
    }

    fn reply(&mut self, raw: &S<RawReply>, class: u8) -> Option<Reply> {
        let r = &raw.value;
        let default = match class {
            5 => canned::rule_rejected(),
            _ => canned::rule_tempfailed(),
        };
        if r.code.is_none() && r.status.is_none() && r.text.is_none() {
            return Some(default);
        }
        let code = r.code.as_ref().map_or(default.code, |c| c.value);
        let text = r
            .text
            .as_ref()
            .map_or_else(|| default.lines.join(" "), |t| t.value.clone());
        let status = r.status.as_ref().map(|s| s.value.as_str());
        Reply::operator(class, code, status, &text)
            .map_err(|e| self.error(raw.referenced, e.to_string()))
            .ok()
    }

    fn add_header(&mut self, raw: &S<RawAddHeader>) -> Option<(String, String)> {
        let (Some(name), Some(value)) = (&raw.value.name, &raw.value.value) else {
            self.error(raw.referenced, "add_header needs 'name' and 'value'");
            return None;
        };
        let text = name.value.trim();
        if !valid_header_name(text) {
            self.error(
                name.referenced,
                format!("'{text}' is not a header field name"),
            );
            return None;
        }
        if value.value.chars().any(char::is_control) {
            self.error(
                value.referenced,
                "the value must be one line without control characters",
            );
            return None;
        }
        Some((text.to_string(), value.value.clone()))
    }
}

/// RFC 5322 field names: printable ASCII except the colon.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

fn regex_condition(c: &RawCondition) -> Option<(Field, &S<String>)> {
    let fields = [
        (&c.helo, Field::Helo),
        (&c.sender, Field::Sender),
        (&c.recipient, Field::Recipient),
        (&c.any_header, Field::AnyHeader),
        (&c.body, Field::Body),
        (&c.raw, Field::Raw),
        (&c.attachment_name, Field::AttachmentName),
        (&c.attachment_type, Field::AttachmentType),
    ];
    fields
        .into_iter()
        .find_map(|(value, field)| value.as_ref().map(|v| (field, v)))
}

fn field_key(field: &Field) -> &'static str {
    match field {
        Field::Helo => "helo",
        Field::Sender => "sender",
        Field::Recipient => "recipient",
        Field::Header(_) => "header",
        Field::AnyHeader => "any_header",
        Field::Body => "body",
        Field::Raw => "raw",
        Field::AttachmentName => "attachment_name",
        Field::AttachmentType => "attachment_type",
    }
}

fn present_keys(c: &RawCondition) -> Vec<&'static str> {
    let keys = [
        ("all", c.all.is_some()),
        ("any", c.any.is_some()),
        ("not", c.not.is_some()),
        ("client_ip", c.client_ip.is_some()),
        ("helo", c.helo.is_some()),
        ("sender", c.sender.is_some()),
        ("recipient", c.recipient.is_some()),
        ("header", c.header.is_some()),
        ("any_header", c.any_header.is_some()),
        ("body", c.body.is_some()),
        ("raw", c.raw.is_some()),
        ("attachment_name", c.attachment_name.is_some()),
        ("attachment_type", c.attachment_type.is_some()),
        ("size", c.size.is_some()),
        ("recipients", c.recipients.is_some()),
        ("spf", c.spf.is_some()),
        ("dkim", c.dkim.is_some()),
        ("dmarc", c.dmarc.is_some()),
        ("arc", c.arc.is_some()),
        ("dnsbl", c.dnsbl.is_some()),
        ("score", c.score.is_some()),
        ("bayes", c.bayes.is_some()),
        ("bulk", c.bulk.is_some()),
        ("fact", c.fact.is_some()),
    ];
    keys.into_iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| k)
        .collect()
}
