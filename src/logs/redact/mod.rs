//! Redaction of prompts, personal data and secrets, before anything reaches the disk.
//!
//! One pass finds the few places worth a look, then precise checks run only there:
//! an Aho-Corasick search (SIMD, case-sensitive) for the literal triggers (`hf_`, `sk-`, `eyJ`,
//! `://`, `prompt`, `%40`, ...), `memchr` for `@` and `?`, and a word-at-a-time digit scan that
//! reports only runs long enough for an ID, a phone or a card. Text around a match is copied
//! through untouched; a clean line costs nothing but the scans. Replacements read
//! `[REDACTED:kind]`.

mod pii;
mod prompts;
pub mod scan;
mod secrets;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::Regex;

use crate::policy::schema::RedactSet;
pub use pii::{cn_id_valid, luhn};
use prompts::ValueScan;
use secrets::PemEnd;

/// What a replaced span was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Prompt,
    CnId,
    Phone,
    Email,
    Card,
    Ip,
    HfToken,
    ApiKey,
    AwsKey,
    GithubToken,
    Jwt,
    Credentials,
    PrivateKey,
    Secret,
    /// A custom rule (index into the redactor's rules).
    Custom(u16),
    /// The rest of a private-key block already replaced above: removed.
    Swallow,
}

impl Kind {
    /// Among spans covering the same bytes, the most specific kind names the replacement.
    fn rank(self) -> u8 {
        match self {
            Self::Secret => 3,
            Self::Credentials => 2,
            Self::Prompt => 1,
            _ => 0,
        }
    }

    /// The name in `[REDACTED:name]`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::CnId => "id",
            Self::Phone => "phone",
            Self::Email => "email",
            Self::Card => "card",
            Self::Ip => "ip",
            Self::HfToken => "hf-token",
            Self::ApiKey => "api-key",
            Self::AwsKey => "aws-key",
            Self::GithubToken => "github-token",
            Self::Jwt => "jwt",
            Self::Credentials => "credentials",
            Self::PrivateKey => "private-key",
            Self::Secret => "secret",
            Self::Custom(_) => "custom",
            Self::Swallow => "",
        }
    }
}

/// A byte range of the input to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
    /// For custom rules with group references: the replacement in the state's arena.
    repl: Option<(u32, u32)>,
}

impl Span {
    fn new(start: usize, end: usize, kind: Kind) -> Self {
        Self {
            start,
            end,
            kind,
            repl: None,
        }
    }
}

/// Which rule sets run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sets {
    pub prompts: bool,
    pub secrets: bool,
    pub pii: bool,
    pub ip: bool,
}

impl Sets {
    pub const ALL: Self = Self {
        prompts: true,
        secrets: true,
        pii: true,
        ip: true,
    };

    pub fn from_policy(sets: &[RedactSet]) -> Self {
        Self {
            prompts: sets.contains(&RedactSet::Prompts),
            secrets: sets.contains(&RedactSet::Secrets),
            pii: sets.contains(&RedactSet::Pii),
            ip: sets.contains(&RedactSet::Ip),
        }
    }
}

/// A custom rule: a regular expression and its replacement.
#[derive(Debug, Clone)]
pub struct CustomRule {
    pub name: String,
    pub pattern: String,
    /// `None`: `[REDACTED:name]`. `$1`, `${name}` refer to groups.
    pub replace: Option<String>,
}

#[derive(Debug)]
struct Custom {
    re: Regex,
    replace: Vec<u8>,
    expand: bool,
}

/// What a literal trigger found by Aho-Corasick leads to.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Hf(usize),
    Sk,
    Aws,
    Github,
    GithubPat,
    Jwt,
    Url,
    Pem,
    Bearer,
    Basic,
    KeyWord(usize),
    Email,
    Field(usize),
}

/// Why a redactor could not be built.
#[derive(Debug, thiserror::Error)]
#[error("log rule {name}: invalid pattern: {source}")]
pub struct RuleError {
    pub name: String,
    #[source]
    pub source: regex::Error,
}

/// The redactor: immutable, shared by every stream; each stream keeps its own [`State`].
#[derive(Debug)]
pub struct Redactor {
    sets: Sets,
    ac: Option<AhoCorasick>,
    triggers: Vec<Trigger>,
    custom: Vec<Custom>,
    names: Vec<Vec<u8>>,
}

/// Per-stream state: an open private-key block, a value cut at the line-length cap, scratch.
#[derive(Debug, Default)]
pub struct State {
    in_pem: bool,
    carry: Option<ValueScan>,
    open: Option<ValueScan>,
    spans: Vec<Span>,
    arena: Vec<u8>,
}

impl State {
    /// Whether a private-key block is open (its lines are being removed).
    pub fn in_private_key(&self) -> bool {
        self.in_pem
    }
}

fn triggers(sets: Sets) -> Vec<(&'static [u8], Trigger)> {
    let mut t: Vec<(&'static [u8], Trigger)> = Vec::new();
    if sets.secrets {
        t.extend([
            (&b"hf_"[..], Trigger::Hf(3)),
            (b"api_org_", Trigger::Hf(8)),
            (b"sk-", Trigger::Sk),
            (b"AKIA", Trigger::Aws),
            (b"ASIA", Trigger::Aws),
            (b"ABIA", Trigger::Aws),
            (b"ACCA", Trigger::Aws),
            (b"A3T", Trigger::Aws),
            (b"ghp_", Trigger::Github),
            (b"gho_", Trigger::Github),
            (b"ghu_", Trigger::Github),
            (b"ghs_", Trigger::Github),
            (b"ghr_", Trigger::Github),
            (b"github_pat_", Trigger::GithubPat),
            (b"eyJ", Trigger::Jwt),
            (b"://", Trigger::Url),
            (b"-----BEGIN ", Trigger::Pem),
            (b"earer", Trigger::Bearer),
            (b"EARER", Trigger::Bearer),
            (b"asic", Trigger::Basic),
            (b"ASIC", Trigger::Basic),
        ]);
        for w in [
            &b"key"[..],
            b"Key",
            b"KEY",
            b"ecret",
            b"ECRET",
            b"oken",
            b"OKEN",
            b"assword",
            b"ASSWORD",
            b"asswd",
            b"ASSWD",
            b"pwd",
            b"Pwd",
            b"PWD",
        ] {
            t.push((w, Trigger::KeyWord(w.len())));
        }
    }
    if sets.pii {
        t.push((b"%40", Trigger::Email));
    }
    if sets.prompts {
        for w in [
            &b"prompt"[..],
            b"messages",
            b"content",
            b"text",
            b"input",
            b"output",
        ] {
            t.push((w, Trigger::Field(w.len())));
        }
    }
    t
}

impl Redactor {
    /// A redactor running `sets` and the custom rules.
    pub fn new(sets: Sets, rules: &[CustomRule]) -> Result<Self, RuleError> {
        let t = triggers(sets);
        let ac = if t.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(t.iter().map(|(p, _)| p))
                    .map_err(|e| RuleError {
                        name: "built-in".into(),
                        source: regex::Error::Syntax(e.to_string()),
                    })?,
            )
        };
        let mut custom = Vec::new();
        let mut names = Vec::new();
        for r in rules {
            let re = regex::bytes::RegexBuilder::new(&r.pattern)
                .multi_line(true)
                .build()
                .map_err(|source| RuleError {
                    name: r.name.clone(),
                    source,
                })?;
            let replace = r
                .replace
                .clone()
                .unwrap_or_else(|| format!("[REDACTED:{}]", r.name));
            custom.push(Custom {
                re,
                expand: r.replace.as_deref().is_some_and(|s| s.contains('$')),
                replace: replace.into_bytes(),
            });
            names.push(r.name.clone().into_bytes());
        }
        Ok(Self {
            sets,
            ac,
            triggers: t.into_iter().map(|(_, k)| k).collect(),
            custom,
            names,
        })
    }

    /// The rule sets in use.
    pub fn sets(&self) -> Sets {
        self.sets
    }

    /// Whether nothing is ever redacted.
    pub fn is_noop(&self) -> bool {
        self.ac.is_none()
            && !self.sets.pii
            && !self.sets.ip
            && !self.sets.prompts
            && self.custom.is_empty()
    }

    /// Redacts whole lines (each ending in `\n`, the last one may not) into `out`.
    pub fn redact(&self, st: &mut State, buf: &[u8], out: &mut Vec<u8>) {
        st.spans.clear();
        st.arena.clear();
        st.open = None;
        st.carry = None;
        let mut from = 0;
        if st.in_pem {
            from = self.pem_resume(st, buf, false);
        }
        self.collect(st, buf, from);
        self.emit(st, buf, out);
    }

    /// Redacts one piece of a line cut at the length cap (no `\n`). `continued`: it goes on
    /// from the piece before; `cut`: it goes on in the next one. A value (a quoted prompt, a
    /// private key) open at a cut stays redacted in the following pieces.
    pub fn redact_piece(
        &self,
        st: &mut State,
        buf: &[u8],
        cut: bool,
        continued: bool,
        out: &mut Vec<u8>,
    ) {
        st.spans.clear();
        st.arena.clear();
        st.open = None;
        let mut from = 0;
        if continued {
            if st.in_pem {
                from = match memchr::memmem::find(buf, b"-----END") {
                    Some(i) => {
                        st.in_pem = false;
                        memchr::memmem::find(&buf[i + 8..], b"-----")
                            .map_or(buf.len(), |j| i + 8 + j + 5)
                    }
                    None => buf.len(),
                };
                st.spans.push(Span::new(0, from, Kind::Swallow));
            } else if let Some(mut scan) = st.carry.take() {
                let end = match scan.run(buf, 0) {
                    Ok(e) => e,
                    Err(stop) => {
                        st.open = Some(scan);
                        stop
                    }
                };
                st.spans.push(Span::new(0, end, Kind::Prompt));
                from = end;
            }
        } else {
            st.carry = None;
            if st.in_pem {
                from = self.pem_resume(st, buf, true);
            }
        }
        self.collect(st, buf, from);
        st.carry = if cut { st.open.take() } else { None };
        self.emit(st, buf, out);
    }

    /// Redacts a single line; for tests and tools.
    pub fn redact_line(&self, line: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(line.len());
        self.redact(&mut State::default(), line, &mut out);
        out
    }

    /// Lines at the start of `buf` that continue an open private-key block are removed.
    fn pem_resume(&self, st: &mut State, buf: &[u8], piece: bool) -> usize {
        let end = match secrets::pem_continue(buf, 0) {
            PemEnd::Ended { at, line_end } => {
                st.in_pem = false;
                if buf[at..line_end].trim_ascii().is_empty() && line_end < buf.len() {
                    line_end + 1
                } else {
                    at
                }
            }
            PemEnd::Stopped { line_start } => {
                st.in_pem = false;
                line_start
            }
            PemEnd::Open => buf.len(),
        };
        let _ = piece;
        if end > 0 {
            st.spans.push(Span::new(0, end, Kind::Swallow));
        }
        end
    }

    fn collect(&self, st: &mut State, buf: &[u8], from: usize) {
        let hay = &buf[from..];
        if let Some(ac) = &self.ac {
            for m in ac.find_iter(hay) {
                let p = from + m.start();
                if let Some(span) = self.check(st, buf, p, self.triggers[m.pattern().as_usize()]) {
                    st.spans.push(span);
                }
            }
        }
        let (pii, prompts) = (self.sets.pii, self.sets.prompts);
        if pii || prompts {
            let on = |p: usize, st: &mut State| {
                let span = if buf[p] == b'@' {
                    pii::email(buf, p, 1)
                } else {
                    prompts::query(buf, p)
                };
                if let Some(s) = span {
                    st.spans.push(s);
                }
            };
            match (pii, prompts) {
                (true, true) => {
                    memchr::memchr2_iter(b'@', b'?', hay).for_each(|i| on(from + i, st))
                }
                (true, false) => memchr::memchr_iter(b'@', hay).for_each(|i| on(from + i, st)),
                _ => memchr::memchr_iter(b'?', hay).for_each(|i| on(from + i, st)),
            }
        }
        if pii {
            let spans = &mut st.spans;
            scan::digit_spans(hay, |s, e| pii::digits(buf, from + s, from + e, spans));
        }
        if self.sets.ip {
            let mut skip = 0;
            for i in memchr::memchr2_iter(b'.', b':', hay) {
                let p = from + i;
                if p >= skip {
                    skip = pii::ip(buf, p, &mut st.spans);
                }
            }
        }
        for (idx, c) in self.custom.iter().enumerate() {
            let kind = Kind::Custom(idx as u16);
            if c.expand {
                for caps in c.re.captures_iter(hay) {
                    let Some(m) = caps.get(0) else { continue };
                    let a = st.arena.len();
                    caps.expand(&c.replace, &mut st.arena);
                    let mut span = clip(buf, from + m.start(), from + m.end(), kind);
                    span.repl = Some((a as u32, st.arena.len() as u32));
                    if span.end > span.start {
                        st.spans.push(span);
                    }
                }
            } else {
                for m in c.re.find_iter(hay) {
                    let span = clip(buf, from + m.start(), from + m.end(), kind);
                    if span.end > span.start {
                        st.spans.push(span);
                    }
                }
            }
        }
    }

    fn check(&self, st: &mut State, buf: &[u8], p: usize, t: Trigger) -> Option<Span> {
        match t {
            Trigger::Hf(n) => secrets::hf(buf, p, n),
            Trigger::Sk => secrets::sk(buf, p),
            Trigger::Aws => secrets::aws(buf, p),
            Trigger::Github => secrets::github(buf, p, false),
            Trigger::GithubPat => secrets::github(buf, p, true),
            Trigger::Jwt => secrets::jwt(buf, p),
            Trigger::Url => secrets::url_userinfo(buf, p),
            Trigger::Bearer => secrets::bearer(buf, p),
            Trigger::Basic => secrets::basic(buf, p),
            Trigger::KeyWord(n) => secrets::key_value(buf, p, n),
            Trigger::Email => pii::email(buf, p, 3),
            Trigger::Field(n) => prompts::field(buf, p, n, &mut st.open),
            Trigger::Pem => {
                let (span, open) = secrets::pem_begin(buf, p)?;
                if open {
                    st.in_pem = true;
                }
                Some(span)
            }
        }
    }

    fn emit(&self, st: &mut State, buf: &[u8], out: &mut Vec<u8>) {
        if st.spans.is_empty() {
            out.extend_from_slice(buf);
            return;
        }
        st.spans
            .sort_unstable_by_key(|s| (s.start, std::cmp::Reverse(s.end), s.kind.rank()));
        let mut at = 0;
        let mut i = 0;
        let spans = &st.spans;
        while i < spans.len() {
            let mut s = spans[i];
            i += 1;
            while i < spans.len() && spans[i].start < s.end {
                s.end = s.end.max(spans[i].end);
                i += 1;
            }
            let start = s.start.max(at);
            out.extend_from_slice(&buf[at..start]);
            match s.kind {
                Kind::Swallow => {}
                Kind::Custom(idx) => match s.repl {
                    Some((a, b)) => out.extend_from_slice(&st.arena[a as usize..b as usize]),
                    None => out.extend_from_slice(&self.custom[idx as usize].replace),
                },
                k => {
                    out.extend_from_slice(b"[REDACTED:");
                    out.extend_from_slice(k.name().as_bytes());
                    out.push(b']');
                }
            }
            at = s.end.max(at);
        }
        out.extend_from_slice(&buf[at..]);
    }

    /// The name of a custom rule.
    pub fn rule_name(&self, idx: u16) -> Option<&[u8]> {
        self.names.get(idx as usize).map(Vec::as_slice)
    }
}

/// A custom match never crosses a line end.
fn clip(buf: &[u8], start: usize, end: usize, kind: Kind) -> Span {
    let end = memchr::memchr(b'\n', &buf[start..end]).map_or(end, |i| start + i);
    Span::new(start, end, kind)
}

#[cfg(test)]
mod tests;
