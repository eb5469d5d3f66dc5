//! Redaction of prompts, personal data and secrets, before anything reaches the disk.
//!
//! One pass over every byte finds the few places worth a look ([`classify`]): vectors (AVX2
//! when the CPU has it) sort each 64-byte block into bit masks, and shifts across neighbouring
//! blocks keep only candidates: digit groups that may be an ID, a phone or a card, `@` `?` `%`,
//! `:`/`=` right after a key such as `token=` or `"content": `, and the prefixes of tokens
//! (`hf_`, `sk-`, `AKIA`, `ghp_`, `eyJ`, `-----BEGIN`, bearer and basic schemes). Precise checks
//! run only there.
//!
//! Text around a match is copied through untouched; a clean block costs its classification and
//! nothing else. Replacements read `[REDACTED:kind]`.

pub(crate) mod classify;
mod pii;
mod prompts;
pub mod scan;
mod secrets;

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
    /// The order spans are merged in: by start, the longest first, the most specific kind first.
    fn order(&self) -> (usize, std::cmp::Reverse<usize>, u8) {
        (self.start, std::cmp::Reverse(self.end), self.kind.rank())
    }

    fn new(start: usize, end: usize, kind: Kind) -> Self {
        Self {
            start,
            end,
            kind,
            repl: None,
        }
    }
}

/// Moves the spans from `first` on into order, one at a time (each is usually in place or
/// one step off: the spans of one block are found by kind, not by position).
fn settle(spans: &mut [Span], first: usize) {
    for i in first.max(1)..spans.len() {
        let mut j = i;
        while j > 0 && spans[j - 1].order() > spans[j].order() {
            spans.swap(j - 1, j);
            j -= 1;
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
    /// Classify with the portable 128-bit vectors even where wider ones exist.
    portable: bool,
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

impl Redactor {
    /// A redactor running `sets` and the custom rules.
    pub fn new(sets: Sets, rules: &[CustomRule]) -> Result<Self, RuleError> {
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
            portable: false,
            custom,
            names,
        })
    }

    /// The same redactor on the portable 128-bit vectors even where AVX2 is there: the speed
    /// of CPUs without it, and a check that both give the same text.
    #[must_use]
    pub fn with_portable_vectors(mut self) -> Self {
        self.portable = true;
        self
    }

    /// The rule sets in use.
    pub fn sets(&self) -> Sets {
        self.sets
    }

    /// Whether nothing is ever redacted.
    pub fn is_noop(&self) -> bool {
        !self.sets.secrets
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
        let mut from = 0;
        if st.in_pem {
            from = self.pem_resume(st, buf);
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
                from = self.pem_resume(st, buf);
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
    fn pem_resume(&self, st: &mut State, buf: &[u8]) -> usize {
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
        if end > 0 {
            st.spans.push(Span::new(0, end, Kind::Swallow));
        }
        end
    }

    fn collect(&self, st: &mut State, buf: &[u8], from: usize) {
        let hay = &buf[from..];
        let sets = self.sets;
        if sets.pii || sets.prompts || sets.secrets {
            let State {
                spans,
                open,
                in_pem,
                ..
            } = st;
            let mut digit_runs = scan::DigitRuns::default();
            classify::candidates_with(
                hay,
                from,
                |found| {
                    for blk in found {
                        let base = blk.base;
                        let first = spans.len();
                        if sets.pii {
                            let mut core = blk.digits;
                            while core != 0 {
                                let pos = base - from + core.trailing_zeros() as usize;
                                core &= core - 1;
                                if let Some((s, e)) = digit_runs.at(hay, pos) {
                                    pii::digits(buf, from + s, from + e, spans);
                                }
                            }
                        }
                        let mut special = blk.special;
                        while special != 0 {
                            let p = base + special.trailing_zeros() as usize;
                            special &= special - 1;
                            let span = match buf[p] {
                                b'@' => {
                                    if sets.secrets
                                        && let Some(s) = url_userinfo_before(buf, p)
                                    {
                                        spans.push(s);
                                    }
                                    if sets.pii {
                                        pii::email(buf, p, 1)
                                    } else {
                                        None
                                    }
                                }
                                b'?' if sets.prompts => prompts::query(buf, p),
                                b'%' if sets.pii && buf[p + 1..].starts_with(b"40") => {
                                    pii::email(buf, p, 3)
                                }
                                _ => None,
                            };
                            spans.extend(span);
                        }
                        if sets.prompts || sets.secrets {
                            let mut ends = blk.keys;
                            while ends != 0 {
                                let p = base + ends.trailing_zeros() as usize;
                                ends &= ends - 1;
                                spans.extend(keyed(sets, buf, p, open));
                            }
                        }
                        if sets.secrets {
                            let mut marks = blk.marks;
                            while marks != 0 {
                                let p = base + marks.trailing_zeros() as usize;
                                marks &= marks - 1;
                                spans.extend(token(buf, p, in_pem));
                            }
                        }
                        settle(spans, first);
                    }
                },
                self.portable,
            );
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

    fn emit(&self, st: &mut State, buf: &[u8], out: &mut Vec<u8>) {
        if st.spans.is_empty() {
            out.extend_from_slice(buf);
            return;
        }
        // Spans found block by block are in order already; IPs and custom rules may not be.
        if !st.spans.is_sorted_by_key(Span::order) {
            st.spans.sort_by_key(Span::order);
        }
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

/// Key names (their last letters, lowercase) whose values are secrets (`true`) or prompts:
/// a cheap first sort, the rules check the whole name. Grouped by their last two letters, on
/// which [`word_at`] dispatches: its ranges follow this order.
const KEY_WORDS: [(&[u8], bool); 17] = [
    (b"token", true),
    (b"secret", true),
    (b"password", true),
    (b"passwd", true),
    (b"pwd", true),
    (b"apikey", true),
    (b"_key", true),
    (b"-key", true),
    (b"prompt", false),
    (b"prompts", false),
    (b"oken_ids", false),
    (b"nput_ids", false),
    (b"messages", false),
    (b"content", false),
    (b"text", false),
    (b"input", false),
    (b"output", false),
];

/// A key word packed big-endian into a `u64`, with the mask of its bytes.
const fn pack(w: &[u8]) -> (u64, u64) {
    let mut v = 0u64;
    let mut i = 0;
    while i < w.len() {
        v = (v << 8) | (w[i] | 0x20) as u64;
        i += 1;
    }
    let mask = if w.len() >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * w.len())) - 1
    };
    (v, mask)
}

const fn packed_words() -> [(u64, u64, bool); 17] {
    let mut out = [(0u64, 0u64, false); 17];
    let mut i = 0;
    while i < KEY_WORDS.len() {
        let (v, m) = pack(KEY_WORDS[i].0);
        out[i] = (v, m, KEY_WORDS[i].1);
        i += 1;
    }
    out
}

const PACKED_WORDS: [(u64, u64, bool); 17] = packed_words();

/// Whether the key ending at `e` names a secret (`Some(true)`) or a prompt (`Some(false)`);
/// plurals (`inputs`, `outputs`) count as the word.
#[inline]
fn key_kind(buf: &[u8], e: usize) -> Option<bool> {
    let last = buf[e - 1].to_ascii_lowercase();
    // Most keys (`level`, `time`, `msg`, `INFO`) end in none of these.
    if !matches!(last, b'n' | b't' | b'd' | b'y' | b's') {
        return None;
    }
    word_at(buf, e).or_else(|| {
        if last == b's' && e > 3 {
            word_at(buf, e - 1)
        } else {
            None
        }
    })
}

#[inline]
fn word_at(buf: &[u8], e: usize) -> Option<bool> {
    // The last eight bytes, big-endian, with bit 5 set in each: letters lowercase (`_` becomes
    // 0x7f, digits and `-` stay), as the packed words are.
    let (t, avail) = match buf.get(e.wrapping_sub(8)..e) {
        Some(w) => (
            u64::from_be_bytes(w.try_into().unwrap_or([0; 8])) | 0x2020_2020_2020_2020,
            u64::MAX,
        ),
        None => (
            buf[..e]
                .iter()
                .fold(0u64, |t, &b| (t << 8) | u64::from(b | 0x20)),
            (1u64 << (8 * e)) - 1,
        ),
    };
    // The last two letters pick the few words to compare (the table is grouped by them).
    let last2 = |w: &[u8; 2]| u64::from(u16::from_be_bytes([w[0] | 0x20, w[1] | 0x20]));
    let range = match t & 0xffff {
        x if x == last2(b"en") => 0..1,
        x if x == last2(b"et") => 1..2,
        x if x == last2(b"rd") => 2..3,
        x if x == last2(b"wd") => 3..5,
        x if x == last2(b"ey") => 5..8,
        x if x == last2(b"pt") => 8..9,
        x if x == last2(b"ts") => 9..10,
        x if x == last2(b"ds") => 10..12,
        x if x == last2(b"es") => 12..13,
        x if x == last2(b"nt") => 13..14,
        x if x == last2(b"xt") => 14..15,
        x if x == last2(b"ut") => 15..17,
        _ => return None,
    };
    PACKED_WORDS[range]
        .iter()
        .find(|(v, mask, _)| mask & avail == *mask && t & mask == *v)
        .map(|w| w.2)
}

/// A key ending right before the separator at `p` (`token=`, `"content": `, `prompt: '`): its
/// value, when the key names a secret or a prompt.
fn keyed(sets: Sets, buf: &[u8], p: usize, open: &mut Option<ValueScan>) -> Option<Span> {
    let mut e = p;
    if e > 0 && buf[e - 1] == b' ' {
        e -= 1;
    }
    if e > 0 && matches!(buf[e - 1], b'"' | b'\'') {
        e -= 1;
    }
    if e < 3 {
        return None;
    }
    match key_kind(buf, e)? {
        true if sets.secrets => secrets::key_value(buf, e, 0),
        false if sets.prompts => prompts::field(buf, e, 0, open),
        _ => None,
    }
}

/// A token recognised around the mark at `p` (see [`classify`]): a prefixed key (`hf_`,
/// `api_org_`, `ghp_`, `github_pat_`, `sk-`, `AKIA`..., `eyJ`), a bearer or basic credential, or
/// a private-key block (`in_pem` is set when it goes on past the buffer).
fn token(buf: &[u8], p: usize, in_pem: &mut bool) -> Option<Span> {
    let head = &buf[..=p];
    match buf[p] {
        b'_' => {
            if head.ends_with(b"hf_") {
                secrets::hf(buf, p - 2, 3)
            } else if head.ends_with(b"api_org_") {
                secrets::hf(buf, p - 7, 8)
            } else if head.ends_with(b"github_pat_") {
                secrets::github(buf, p - 10, true)
            } else if p >= 3
                && &buf[p - 3..p - 1] == b"gh"
                && matches!(buf[p - 1], b'p' | b'o' | b'u' | b's' | b'r')
            {
                secrets::github(buf, p - 3, false)
            } else {
                None
            }
        }
        b'-' => {
            if head.ends_with(b"sk-") {
                secrets::sk(buf, p - 2)
            } else if buf[p..].starts_with(b"-----BEGIN ") {
                let (span, open) = secrets::pem_begin(buf, p)?;
                *in_pem |= open;
                Some(span)
            } else {
                None
            }
        }
        b'A' => {
            let rest = &buf[p + 1..];
            let prefixed = [&b"KIA"[..], b"SIA", b"BIA", b"CCA", b"3T"]
                .iter()
                .any(|x| rest.starts_with(x));
            if prefixed { secrets::aws(buf, p) } else { None }
        }
        b'J' if p >= 2 && &buf[p - 2..p] == b"ey" => secrets::jwt(buf, p - 2),
        b'b' | b'B' => {
            let word = |w: &[u8]| {
                buf.get(p + 1..p + 1 + w.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(w))
            };
            if word(b"earer") {
                secrets::bearer(buf, p + 1)
            } else if word(b"asic") {
                secrets::basic(buf, p + 1)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// `scheme://user:password@` ending at the `@` at `p`.
fn url_userinfo_before(buf: &[u8], p: usize) -> Option<Span> {
    let tok = scan::back_len(buf, p, |b| !scan::is_space(b) && b != b'"' && b != b'\'');
    let start = p - tok.min(512);
    let scheme = scan::rfind(&buf[start..p], b"://")?;
    secrets::url_userinfo(buf, start + scheme)
}

/// A custom match never crosses a line end.
fn clip(buf: &[u8], start: usize, end: usize, kind: Kind) -> Span {
    let end = memchr::memchr(b'\n', &buf[start..end]).map_or(end, |i| start + i);
    Span::new(start, end, kind)
}

#[cfg(test)]
mod tests;
