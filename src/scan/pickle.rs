//! An emulated pickle machine: the stack, the memo, MARK and FRAME as CPython's unpickler runs
//! them, without running anything. Every global the pickle imports is resolved (GLOBAL,
//! STACK_GLOBAL, INST, EXT through copyreg's registry as the pickle itself fills it) and judged
//! against the allowlist of the loader that will read it; calls, BUILD and container methods are
//! judged by what they are applied to.
//!
//! Values are kept abstract and small (16 bytes; strings point into the input), so memory stays
//! a small multiple of the number of live stack and memo entries, never of the data itself.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::allow::{self, Loader};
use super::finding::{Finding, Severity};

/// The largest stack and memo the machine keeps; past them the pickle is reported as too large.
const MAX_STACK: usize = 4 << 20;
const MAX_MEMO: usize = 4 << 20;
/// Small tuples whose items are kept (for copyreg.add_extension arguments).
const MAX_TUPLES: usize = 1 << 16;
/// A memo key beyond this many past the dense part goes to the sparse map.
const DENSE_SLACK: u64 = 1 << 16;

/// How a scan of pickle data is run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub loader: Loader,
    /// Probe data that is not known to be a pickle: report only if it runs like one (reaches
    /// STOP, or imports and calls something before failing).
    pub probe: bool,
    /// Scan at most this many pickles back to back (legacy torch: 5), and ignore what follows.
    pub max_pickles: Option<usize>,
}

impl Options {
    pub fn new(loader: Loader) -> Self {
        Self {
            loader,
            probe: false,
            max_pickles: None,
        }
    }
}

/// The result of scanning pickle data.
#[derive(Debug, Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// Pickles that ended with STOP.
    pub pickles: usize,
    /// Where the last complete pickle ended.
    pub end: usize,
    /// In probe mode: whether the data behaved like a pickle.
    pub is_pickle: bool,
}

/// Scans `data` as pickles back to back, as `pickle.load` called repeatedly would read it.
pub fn scan(data: &[u8], opts: &Options) -> Outcome {
    let mut out = Outcome::default();
    let mut pos = 0;
    while pos < data.len() {
        if opts.max_pickles.is_some_and(|m| out.pickles >= m) {
            break;
        }
        let first = out.pickles == 0;
        let mut one = run_one(data, pos, opts.loader);
        let stopped = matches!(one.halt, Halt::Stop);
        if opts.probe && first {
            let runs = stopped && one.ops >= 2 || one.calls > 0;
            if !runs {
                return out;
            }
            out.is_pickle = true;
        }
        if !first && !stopped && one.ops_after_start == 0 {
            // Bytes after the last pickle that are not even an opcode.
            out.findings.push(
                Finding::new(
                    Severity::Low,
                    "pickle/trailing-data",
                    format!(
                        "{} bytes after the end of the pickle are not a pickle",
                        data.len() - pos
                    ),
                )
                .at(pos as u64),
            );
            return out;
        }
        out.findings.append(&mut one.findings);
        match one.halt {
            Halt::Stop => {
                out.pickles += 1;
                pos = one.end;
                out.end = pos;
            }
            Halt::Error(msg, at) => {
                let (sev, rule) = if first {
                    (Severity::Medium, "pickle/malformed")
                } else {
                    (Severity::Low, "pickle/trailing-data")
                };
                let what = if first {
                    "the pickle is malformed".to_owned()
                } else {
                    format!("data after pickle #{} is malformed", out.pickles)
                };
                out.findings
                    .push(Finding::new(sev, rule, format!("{what}: {msg}")).at(at as u64));
                return out;
            }
            Halt::Eof(at) => {
                let (sev, rule) = if first {
                    (Severity::Medium, "pickle/truncated")
                } else {
                    (Severity::Low, "pickle/trailing-data")
                };
                out.findings.push(
                    Finding::new(sev, rule, "the data ends before the pickle's STOP").at(at as u64),
                );
                return out;
            }
            Halt::Limit(msg, at) => {
                out.findings
                    .push(Finding::new(Severity::Medium, "pickle/limit", msg).at(at as u64));
                return out;
            }
        }
    }
    out
}

/// How one pickle ended.
#[derive(Debug, Clone)]
enum Halt {
    Stop,
    /// The unpickler raises here: an invalid opcode or operand.
    Error(String, usize),
    /// The data ran out.
    Eof(usize),
    /// The machine's own bounds.
    Limit(String, usize),
}

struct One {
    halt: Halt,
    end: usize,
    findings: Vec<Finding>,
    ops: usize,
    ops_after_start: usize,
    calls: usize,
}

/// Runs one pickle starting at `start`. When an opcode crosses a frame edge, the pickle is run
/// a second time the way a loader that skips the rest of the frame reads it, and the findings
/// of both readings are reported.
fn run_one(data: &[u8], start: usize, loader: Loader) -> One {
    let mut vm = Vm::new(data, start, loader, false);
    let halt = vm.run();
    let crossed = vm.crossed;
    let mut one = One {
        end: vm.pos,
        ops: vm.ops,
        ops_after_start: vm.ops,
        calls: vm.calls,
        findings: Vec::new(),
        halt,
    };
    let mut findings = vm.rep.finish();
    if crossed {
        let mut alt = Vm::new(data, start, loader, true);
        let _ = alt.run();
        one.calls += alt.calls;
        for f in alt.rep.finish() {
            if !findings
                .iter()
                .any(|g| g.rule == f.rule && g.global == f.global && g.offset == f.offset)
            {
                let mut f = f;
                f.message
                    .push_str(" (as read by a loader that skips the rest of a frame)");
                findings.push(f);
            }
        }
    }
    one.findings = findings;
    one
}

/// A value on the stack or in the memo, abstracted.
#[derive(Debug, Clone, Copy, PartialEq)]
enum V {
    /// A memo slot never written (dense memo only).
    Absent,
    /// None, a bool, a float, an integer that does not fit i64.
    Scalar,
    Int(i64),
    /// A text string from the input: `at..at+len`, to decode as `enc` says.
    Str {
        at: usize,
        len: u32,
        enc: Enc,
    },
    /// A string too long to be a name.
    LongStr,
    Bytes,
    List,
    Dict,
    Set,
    FrozenSet,
    /// A tuple; its items are kept in the arena when it is small (else `NO_TUPLE`).
    Tuple(u32),
    /// A class or function the pickle imported: an index into the globals table.
    Global(u32),
    /// What calling or instantiating the global returned.
    Obj(u32),
    /// Anything else code produced: the result of calling a computed value.
    Computed,
    /// What `persistent_load` returned.
    Persistent,
}

const NO_TUPLE: u32 = u32::MAX;
/// The global id used when a global cannot be resolved statically.
const UNKNOWN_GLOBAL: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Enc {
    /// UTF-8 (BINUNICODE and friends).
    Utf8,
    /// Bytes decoded with the unpickler's encoding (BINSTRING, SHORT_BINSTRING).
    Raw,
    /// A quoted, escaped STRING line (quotes included).
    Quoted,
    /// A raw-unicode-escape UNICODE line.
    RawUnicodeEscape,
}

struct Global {
    full: String,
    allowed: bool,
}

/// Findings of one run, deduplicated by (rule, subject) with a count.
#[derive(Default)]
struct Reporter {
    findings: Vec<Finding>,
    counts: Vec<usize>,
    index: HashMap<(&'static str, String), usize>,
}

impl Reporter {
    fn add(&mut self, f: Finding, key: String) {
        let k = (f.rule, key);
        if let Some(&i) = self.index.get(&k) {
            self.counts[i] += 1;
            if f.severity > self.findings[i].severity {
                self.findings[i].severity = f.severity;
            }
            return;
        }
        self.index.insert(k, self.findings.len());
        self.findings.push(f);
        self.counts.push(1);
    }

    fn finish(self) -> Vec<Finding> {
        self.findings
            .into_iter()
            .zip(self.counts)
            .map(|(mut f, n)| {
                if n > 1 {
                    f.message.push_str(&format!(" ({n} times)"));
                }
                f
            })
            .collect()
    }
}

/// A multiplicative hasher for integer memo keys.
#[derive(Default)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IntMap<V> = HashMap<u64, V, BuildHasherDefault<IntHasher>>;

/// The memo: a dense vector for the usual 0..n keys, a map for the rest. `len` counts keys
/// as `len(memo)` does in CPython (MEMOIZE uses it).
#[derive(Default)]
struct Memo {
    dense: Vec<V>,
    sparse: IntMap<V>,
    len: usize,
}

impl Memo {
    fn get(&self, k: u64) -> Option<V> {
        if let Some(v) = usize::try_from(k).ok().and_then(|i| self.dense.get(i)) {
            return (*v != V::Absent).then_some(*v);
        }
        self.sparse.get(&k).copied()
    }

    fn put(&mut self, k: u64, v: V) {
        if k < self.dense.len() as u64 + DENSE_SLACK && !self.sparse.contains_key(&k) {
            let i = k as usize;
            if i >= self.dense.len() {
                self.dense.resize(i + 1, V::Absent);
            }
            if self.dense[i] == V::Absent {
                self.len += 1;
            }
            self.dense[i] = v;
        } else if self.sparse.insert(k, v).is_none() {
            self.len += 1;
        }
    }
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    frame_end: Option<usize>,
    /// Read an argument that crosses a frame edge from the end of the frame.
    skip_mode: bool,
    crossed: bool,
    proto: u8,
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: Memo,
    tuples: Vec<[V; 3]>,
    globals: Vec<Global>,
    global_ids: HashMap<(String, String, bool), u32>,
    ext: HashMap<i64, (String, String)>,
    loader: Loader,
    rep: Reporter,
    ops: usize,
    calls: usize,
    /// Offset of the opcode being run.
    op_at: usize,
}

type R<T = ()> = Result<T, Halt>;

impl<'a> Vm<'a> {
    fn new(data: &'a [u8], start: usize, loader: Loader, skip_mode: bool) -> Self {
        Self {
            data,
            pos: start,
            frame_end: None,
            skip_mode,
            crossed: false,
            proto: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::default(),
            tuples: Vec::new(),
            globals: vec![Global {
                full: "<unresolved>".into(),
                allowed: false,
            }],
            global_ids: HashMap::new(),
            ext: HashMap::new(),
            loader,
            rep: Reporter::default(),
            ops: 0,
            calls: 0,
            op_at: start,
        }
    }

    fn err<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(Halt::Error(msg.into(), self.op_at))
    }

    fn report(&mut self, sev: Severity, rule: &'static str, msg: String, key: String) {
        let f = Finding::new(sev, rule, msg).at(self.op_at as u64);
        self.rep.add(f, key);
    }

    // -----------------------------------------------------------------------------------------
    // Reading, with frames

    fn frame_check(&mut self, start: usize, n: usize) -> usize {
        if let Some(fe) = self.frame_end {
            if start >= fe {
                self.frame_end = None;
            } else if n > fe - start {
                self.crossed = true;
                self.frame_end = None;
                let at = self.op_at;
                self.rep.add(
                    Finding::new(
                        Severity::Critical,
                        "pickle/frame",
                        format!(
                            "an opcode at offset {at} runs past the end of its frame (offset {fe}): loaders disagree on what this pickle does"
                        ),
                    )
                    .at(at as u64),
                    format!("cross@{at}"),
                );
                if self.skip_mode {
                    return fe;
                }
            }
        }
        start
    }

    /// Reads `n` bytes; returns where they start.
    fn read(&mut self, n: usize) -> R<usize> {
        let start = self.frame_check(self.pos, n);
        match start.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                self.pos = end;
                Ok(start)
            }
            _ => Err(Halt::Eof(self.op_at)),
        }
    }

    fn byte(&mut self) -> R<u8> {
        let at = self.read(1)?;
        Ok(self.data[at])
    }

    fn uint(&mut self, n: usize) -> R<u64> {
        let at = self.read(n)?;
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.data[at..at + n]);
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a newline-terminated line; returns it without the newline.
    fn line(&mut self) -> R<&'a [u8]> {
        let data = self.data;
        let find = |from: usize| memchr::memchr(b'\n', &data[from..]).map(|i| from + i);
        let Some(nl) = find(self.pos) else {
            return Err(Halt::Eof(self.op_at));
        };
        let start = self.frame_check(self.pos, nl + 1 - self.pos);
        let nl = if start != self.pos {
            find(start).ok_or(Halt::Eof(self.op_at))?
        } else {
            nl
        };
        self.pos = nl + 1;
        Ok(&data[start..nl])
    }

    // -----------------------------------------------------------------------------------------
    // The stack

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, v: V) -> R {
        if self.stack.len() >= MAX_STACK {
            return Err(Halt::Limit(
                format!("the pickle's stack grows past {MAX_STACK} items"),
                self.op_at,
            ));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> R<V> {
        if self.stack.len() <= self.fence() {
            return self.err("unpickling stack underflow");
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> R<V> {
        if self.stack.len() <= self.fence() {
            return self.err("unpickling stack underflow");
        }
        Ok(*self.stack.last().expect("checked above"))
    }

    /// Pops the items since the last MARK (and the mark); returns where they started.
    fn pop_mark(&mut self) -> R<usize> {
        match self.marks.pop() {
            Some(m) => Ok(m),
            None => self.err("could not find MARK"),
        }
    }

    fn tuple_of(&mut self, items: &[V]) -> V {
        if items.len() <= 3 && self.tuples.len() < MAX_TUPLES {
            let mut t = [V::Scalar; 3];
            t[..items.len()].copy_from_slice(items);
            self.tuples.push(t);
            V::Tuple(self.tuples.len() as u32 - 1)
        } else {
            V::Tuple(NO_TUPLE)
        }
    }

    fn str_value(&self, at: usize, len: usize, enc: Enc) -> V {
        match u32::try_from(len) {
            Ok(len) => V::Str { at, len, enc },
            Err(_) => V::LongStr,
        }
    }

    /// The text of a string value, when it is a literal from the input.
    fn text(&self, v: V) -> Option<String> {
        let V::Str { at, len, enc } = v else {
            return None;
        };
        let raw = &self.data[at..at + len as usize];
        Some(match enc {
            Enc::Utf8 | Enc::Raw => String::from_utf8_lossy(raw).into_owned(),
            Enc::Quoted => decode_escapes(&raw[1..raw.len() - 1]),
            Enc::RawUnicodeEscape => decode_raw_unicode_escape(raw),
        })
    }

    // -----------------------------------------------------------------------------------------
    // Globals and calls

    /// `find_class`: maps Python 2 names, resolves, judges; returns the global's id.
    fn find_class(&mut self, module: &str, name: &str, how: &str) -> u32 {
        let py2 = self.proto < 3;
        let key = (module.to_owned(), name.to_owned(), py2);
        let id = match self.global_ids.get(&key) {
            Some(&id) => id,
            None => {
                let (m, n) = if py2 {
                    allow::map_py2(module, name)
                } else {
                    (module, name)
                };
                let full = format!("{m}.{n}");
                let dotted = n.contains('.');
                let allowed = !dotted && self.loader.allows(&full);
                let id = self.globals.len() as u32;
                self.globals.push(Global {
                    full: full.clone(),
                    allowed,
                });
                self.global_ids.insert(key, id);
                id
            }
        };
        let g = &self.globals[id as usize];
        if !g.allowed {
            let full = g.full.clone();
            let (_, n) = if py2 {
                allow::map_py2(module, name)
            } else {
                (module, name)
            };
            let original = format!("{module}.{name}");
            if n.contains('.') {
                self.report(
                    Severity::Critical,
                    "pickle/dotted-name",
                    format!(
                        "{how} imports `{}` from module `{module}`: a dotted name walks attributes and can reach anything (resolves to {full})",
                        escape(name)
                    ),
                    full.clone(),
                );
            }
            let sev = allow::severity(&full).max(allow::severity(&original));
            let why = match sev {
                Severity::Critical => "can run code",
                Severity::High => "reaches files or the network",
                _ => "is not on the allowlist",
            };
            let mut f = Finding::new(
                sev,
                "pickle/global",
                format!(
                    "{how} imports {} which {why} (loader: {})",
                    escape(&full),
                    self.loader.name()
                ),
            )
            .at(self.op_at as u64)
            .global(full.clone());
            if full != original {
                f.message
                    .push_str(&format!(" [written as {}]", escape(&original)));
            }
            self.rep.add(f, full);
        }
        id
    }

    fn unresolved(&mut self, why: String) -> V {
        self.report(
            Severity::Critical,
            "pickle/stack-global-operand",
            why,
            format!("sg@{}", self.op_at),
        );
        V::Global(UNKNOWN_GLOBAL)
    }

    /// Calls `callee` (REDUCE, OBJ, INST, NEWOBJ): judges it and returns the result.
    fn call(&mut self, callee: V, what: &str, args: V) -> R<V> {
        match callee {
            V::Global(g) => {
                self.calls += 1;
                let full = self.globals[g as usize].full.clone();
                if full == "copyreg.add_extension" {
                    self.add_extension(args);
                }
                if !self.globals[g as usize].allowed && g != UNKNOWN_GLOBAL {
                    let sev = allow::severity(&full);
                    self.report(
                        sev,
                        "pickle/call",
                        format!("{what} calls {} at load time", escape(&full)),
                        full.clone(),
                    );
                }
                Ok(V::Obj(g))
            }
            V::Obj(_) | V::Computed | V::Persistent => {
                self.calls += 1;
                self.report(
                    Severity::Critical,
                    "pickle/call-computed",
                    format!(
                        "{what} calls a value computed while loading (the callable is hidden from a list of imports)"
                    ),
                    format!("cc@{}", self.op_at),
                );
                Ok(V::Computed)
            }
            _ => self.err(format!("{what} calls a value that is not callable")),
        }
    }

    fn add_extension(&mut self, args: V) {
        let V::Tuple(t) = args else { return };
        let Some(items) = self.tuples.get(t as usize).copied() else {
            return;
        };
        if let (Some(m), Some(n), V::Int(code)) =
            (self.text(items[0]), self.text(items[1]), items[2])
        {
            self.ext.insert(code, (m, n));
        }
    }

    /// Container methods the unpickler calls on whatever object is on the stack.
    fn method_target(&mut self, target: V, op: &str, ok: fn(&str) -> bool, literal: V) {
        if target == literal {
            return;
        }
        let (sev, what) = match target {
            V::Obj(g) => {
                let g = &self.globals[g as usize];
                if g.allowed && ok(&g.full) {
                    return;
                }
                (
                    Severity::Medium,
                    format!("an instance of {}", escape(&g.full)),
                )
            }
            V::Global(g) => (
                Severity::High,
                format!(
                    "the class or function {}",
                    escape(&self.globals[g as usize].full)
                ),
            ),
            V::Computed | V::Persistent => {
                (Severity::High, "a value computed while loading".into())
            }
            _ => (Severity::Medium, "a value of the wrong type".into()),
        };
        self.report(
            sev,
            "pickle/method-call",
            format!("{op} calls a method of {what}"),
            format!("{op}:{what}"),
        );
    }

    // -----------------------------------------------------------------------------------------
    // The loop

    fn run(&mut self) -> Halt {
        loop {
            self.op_at = self.pos;
            match self.step() {
                Ok(true) => return Halt::Stop,
                Ok(false) => self.ops += 1,
                Err(h) => return h,
            }
        }
    }

    /// Runs one opcode; `Ok(true)` on STOP.
    fn step(&mut self) -> R<bool> {
        let op = self.byte()?;
        match op {
            // PROTO
            0x80 => {
                let p = self.byte()?;
                if p > 5 {
                    return self.err(format!("unsupported pickle protocol: {p}"));
                }
                self.proto = p;
            }
            // STOP
            b'.' => {
                self.pop()?;
                return Ok(true);
            }
            // FRAME
            0x95 => {
                let n = self.uint(8)?;
                if let Some(fe) = self.frame_end
                    && self.op_at < fe
                {
                    self.report(
                        Severity::High,
                        "pickle/frame",
                        format!(
                            "a FRAME starts at offset {} inside an unfinished frame",
                            self.op_at
                        ),
                        format!("nested@{}", self.op_at),
                    );
                }
                let left = (self.data.len() - self.pos) as u64;
                if n > left {
                    self.report(
                        Severity::High,
                        "pickle/frame",
                        format!("a FRAME of {n} bytes is longer than the {left} bytes left"),
                        format!("long@{}", self.op_at),
                    );
                }
                self.frame_end = Some(
                    self.pos
                        .saturating_add(usize::try_from(n).unwrap_or(usize::MAX)),
                );
            }
            // Integers and floats
            b'I' => {
                let l = self.line()?;
                let v = if l == b"00" || l == b"01" {
                    V::Scalar
                } else {
                    parse_int(l)
                        .ok_or(())
                        .or_else(|()| self.err("invalid INT"))?
                };
                self.push(v)?;
            }
            b'L' => {
                let l = self.line()?;
                let l = l.strip_suffix(b"L").unwrap_or(l);
                let v = parse_int(l)
                    .ok_or(())
                    .or_else(|()| self.err("invalid LONG"))?;
                self.push(v)?;
            }
            b'J' => {
                let v = self.uint(4)? as u32 as i32;
                self.push(V::Int(v.into()))?;
            }
            b'K' => {
                let v = self.uint(1)?;
                self.push(V::Int(v as i64))?;
            }
            b'M' => {
                let v = self.uint(2)?;
                self.push(V::Int(v as i64))?;
            }
            0x8a => {
                let n = self.uint(1)? as usize;
                let at = self.read(n)?;
                let v = long_le(&self.data[at..at + n]);
                self.push(v)?;
            }
            0x8b => {
                let n = self.uint(4)? as u32 as i32;
                if n < 0 {
                    return self.err("LONG pickle has negative byte count");
                }
                let at = self.read(n as usize)?;
                let v = long_le(&self.data[at..at + n as usize]);
                self.push(v)?;
            }
            b'F' => {
                let l = self.line()?;
                if std::str::from_utf8(l)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .is_none()
                {
                    return self.err("invalid FLOAT");
                }
                self.push(V::Scalar)?;
            }
            b'G' => {
                self.read(8)?;
                self.push(V::Scalar)?;
            }
            b'N' | 0x88 | 0x89 => self.push(V::Scalar)?,
            // Strings
            b'S' => {
                let l = self.line()?;
                let at = self.pos - l.len() - 1;
                let quoted =
                    l.len() >= 2 && l[0] == l[l.len() - 1] && (l[0] == b'\'' || l[0] == b'"');
                if !quoted {
                    return self.err("the STRING opcode argument must be quoted");
                }
                let v = self.str_value(at, l.len(), Enc::Quoted);
                self.push(v)?;
            }
            b'T' => {
                let n = self.uint(4)? as u32 as i32;
                if n < 0 {
                    return self.err("BINSTRING pickle has negative byte count");
                }
                let at = self.read(n as usize)?;
                let v = self.str_value(at, n as usize, Enc::Raw);
                self.push(v)?;
            }
            b'U' => {
                let n = self.uint(1)? as usize;
                let at = self.read(n)?;
                let v = self.str_value(at, n, Enc::Raw);
                self.push(v)?;
            }
            b'V' => {
                let l = self.line()?;
                let at = self.pos - l.len() - 1;
                let v = self.str_value(at, l.len(), Enc::RawUnicodeEscape);
                self.push(v)?;
            }
            b'X' | 0x8c | 0x8d => {
                let w = match op {
                    b'X' => 4,
                    0x8c => 1,
                    _ => 8,
                };
                let n = self.uint(w)?;
                let n = usize::try_from(n).or_else(|_| self.err("string too long"))?;
                let at = self.read(n)?;
                if std::str::from_utf8(&self.data[at..at + n]).is_err()
                    && simdless_surrogates(&self.data[at..at + n])
                {
                    return self.err("invalid UTF-8 in a unicode string");
                }
                let v = self.str_value(at, n, Enc::Utf8);
                self.push(v)?;
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                let w = match op {
                    b'B' => 4,
                    b'C' => 1,
                    _ => 8,
                };
                let n = self.uint(w)?;
                let n = usize::try_from(n).or_else(|_| self.err("bytes too long"))?;
                self.read(n)?;
                self.push(V::Bytes)?;
            }
            0x97 => {
                return self.err(
                    "NEXT_BUFFER: the pickle refers to out-of-band data, but none is given to a loader",
                );
            }
            0x98 => {
                self.top()?;
            }
            // Containers
            b')' => {
                let v = self.tuple_of(&[]);
                self.push(v)?;
            }
            b't' => {
                let m = self.pop_mark()?;
                let items: Vec<V> = self.stack.drain(m..).collect();
                let v = self.tuple_of(&items);
                self.push(v)?;
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < self.fence() + n {
                    return self.err("unpickling stack underflow");
                }
                let at = self.stack.len() - n;
                let items: Vec<V> = self.stack.drain(at..).collect();
                let v = self.tuple_of(&items);
                self.push(v)?;
            }
            b']' => self.push(V::List)?,
            b'l' => {
                let m = self.pop_mark()?;
                self.stack.truncate(m);
                self.push(V::List)?;
            }
            b'}' => self.push(V::Dict)?,
            b'd' => {
                let m = self.pop_mark()?;
                if !(self.stack.len() - m).is_multiple_of(2) {
                    return self.err("odd number of items for DICT");
                }
                self.stack.truncate(m);
                self.push(V::Dict)?;
            }
            0x8f => self.push(V::Set)?,
            0x91 => {
                let m = self.pop_mark()?;
                self.stack.truncate(m);
                self.push(V::FrozenSet)?;
            }
            b'a' => {
                self.pop()?;
                let t = self.top()?;
                self.method_target(t, "APPEND", |_| false, V::List);
            }
            b'e' => {
                let m = self.pop_mark()?;
                self.stack.truncate(m);
                let t = self.top()?;
                self.method_target(t, "APPENDS", |_| false, V::List);
            }
            b's' => {
                self.pop()?;
                self.pop()?;
                let t = self.top()?;
                self.method_target(t, "SETITEM", allow::is_mapping_type, V::Dict);
            }
            b'u' => {
                let m = self.pop_mark()?;
                if !(self.stack.len() - m).is_multiple_of(2) {
                    return self.err("odd number of items for SETITEMS");
                }
                self.stack.truncate(m);
                let t = self.top()?;
                self.method_target(t, "SETITEMS", allow::is_mapping_type, V::Dict);
            }
            0x90 => {
                let m = self.pop_mark()?;
                self.stack.truncate(m);
                let t = self.top()?;
                self.method_target(t, "ADDITEMS", allow::is_set_type, V::Set);
            }
            // Stack
            b'0' => {
                if self.stack.len() > self.fence() {
                    self.stack.pop();
                } else {
                    self.pop_mark()?;
                }
            }
            b'2' => {
                let v = self.top()?;
                self.push(v)?;
            }
            b'(' => {
                if self.marks.len() >= MAX_STACK {
                    return Err(Halt::Limit("too many MARKs".into(), self.op_at));
                }
                self.marks.push(self.stack.len());
            }
            b'1' => {
                let m = self.pop_mark()?;
                self.stack.truncate(m);
            }
            // Memo
            b'g' | b'h' | b'j' => {
                let k = match op {
                    b'g' => {
                        let l = self.line()?;
                        parse_key(l)
                            .ok_or(())
                            .or_else(|()| self.err("invalid GET key"))?
                    }
                    b'h' => self.uint(1)?,
                    _ => self.uint(4)?,
                };
                let Some(v) = self.memo.get(k) else {
                    return self.err(format!("memo value not found at index {k}"));
                };
                self.push(v)?;
            }
            b'p' | b'q' | b'r' | 0x94 => {
                let k = match op {
                    b'p' => {
                        let l = self.line()?;
                        if l.first() == Some(&b'-') {
                            return self.err("negative PUT argument");
                        }
                        parse_key(l)
                            .ok_or(())
                            .or_else(|()| self.err("invalid PUT key"))?
                    }
                    b'q' => self.uint(1)?,
                    b'r' => self.uint(4)?,
                    _ => self.memo.len as u64,
                };
                let v = self.top()?;
                if self.memo.len >= MAX_MEMO {
                    return Err(Halt::Limit(
                        format!("the pickle's memo grows past {MAX_MEMO} entries"),
                        self.op_at,
                    ));
                }
                self.memo.put(k, v);
            }
            // Imports
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                let (Ok(module), Ok(name)) =
                    (std::str::from_utf8(module), std::str::from_utf8(name))
                else {
                    return self.err("GLOBAL names are not UTF-8");
                };
                let id = self.find_class(module, name, "GLOBAL");
                self.push(V::Global(id))?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let v = match (self.text(module), self.text(name)) {
                    (Some(m), Some(n)) => V::Global(self.find_class(&m, &n, "STACK_GLOBAL")),
                    _ => {
                        let literal = |v: V| {
                            matches!(
                                v,
                                V::Scalar | V::Int(_) | V::Bytes | V::LongStr | V::Str { .. }
                            )
                        };
                        if literal(module) && literal(name)
                            || matches!(
                                module,
                                V::List | V::Dict | V::Set | V::FrozenSet | V::Tuple(_)
                            ) && literal(name)
                        {
                            return self.err("STACK_GLOBAL requires str");
                        }
                        self.unresolved(
                            "STACK_GLOBAL takes its module or name from a value computed while loading, not from a literal string: what it imports is hidden"
                                .into(),
                        )
                    }
                };
                self.push(v)?;
            }
            b'i' => {
                let module = self.line()?;
                let name = self.line()?;
                let (Ok(module), Ok(name)) =
                    (std::str::from_utf8(module), std::str::from_utf8(name))
                else {
                    return self.err("INST names are not UTF-8");
                };
                let id = self.find_class(module, name, "INST");
                let m = self.pop_mark()?;
                let items: Vec<V> = self.stack.drain(m..).collect();
                let args = self.tuple_of(&items);
                let v = self.call(V::Global(id), "INST", args)?;
                self.push(v)?;
            }
            0x82..=0x84 => {
                let code = match op {
                    0x82 => self.uint(1)? as i64,
                    0x83 => self.uint(2)? as i64,
                    _ => i64::from(self.uint(4)? as u32 as i32),
                };
                if code <= 0 {
                    return self.err("EXT specifies code <= 0");
                }
                let v = match self.ext.get(&code).cloned() {
                    Some((m, n)) => V::Global(self.find_class(&m, &n, "EXT")),
                    None => {
                        self.report(
                            Severity::High,
                            "pickle/ext",
                            format!(
                                "EXT imports extension code {code}, which is not in copyreg's registry as this pickle leaves it: what it imports cannot be checked"
                            ),
                            format!("ext{code}"),
                        );
                        V::Global(UNKNOWN_GLOBAL)
                    }
                };
                self.push(v)?;
            }
            // Calls
            b'R' => {
                let args = self.pop()?;
                let f = self.pop()?;
                if !matches!(args, V::Tuple(_) | V::Obj(_) | V::Computed | V::Persistent) {
                    return self.err("REDUCE: the argument list must be a tuple");
                }
                let v = self.call(f, "REDUCE", args)?;
                self.push(v)?;
            }
            b'o' => {
                let m = self.pop_mark()?;
                if self.stack.len() == m {
                    return self.err("OBJ without a class");
                }
                let cls = self.stack[m];
                let items: Vec<V> = self.stack.drain(m..).skip(1).collect();
                let args = self.tuple_of(&items);
                let v = self.call(cls, "OBJ", args)?;
                self.push(v)?;
            }
            0x81 => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = self.call(cls, "NEWOBJ", args)?;
                self.push(v)?;
            }
            0x92 => {
                self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = self.call(cls, "NEWOBJ_EX", args)?;
                self.push(v)?;
            }
            b'b' => {
                self.pop()?;
                let inst = self.top()?;
                self.build(inst);
            }
            // Persistent ids
            b'P' => {
                self.line()?;
                self.push(V::Persistent)?;
            }
            b'Q' => {
                self.pop()?;
                self.push(V::Persistent)?;
            }
            other => {
                return self.err(format!("invalid load key {other:#04x}"));
            }
        }
        Ok(false)
    }

    fn build(&mut self, inst: V) {
        let (sev, what) = match inst {
            V::Obj(g) if self.globals[g as usize].allowed => return,
            V::Obj(g) => (
                Severity::Medium,
                format!(
                    "an instance of {}, which is not on the allowlist",
                    escape(&self.globals[g as usize].full)
                ),
            ),
            V::Global(g) => (
                Severity::Critical,
                format!(
                    "the class or module {} itself: it sets attributes of code",
                    escape(&self.globals[g as usize].full)
                ),
            ),
            V::Computed | V::Persistent => {
                (Severity::High, "a value computed while loading".into())
            }
            _ => (Severity::Medium, "a plain value".into()),
        };
        self.report(
            sev,
            "pickle/build",
            format!("BUILD sets the state of {what}"),
            what.clone(),
        );
    }
}

/// Whether invalid UTF-8 is something CPython's `surrogatepass` decoding refuses too (lone
/// surrogates encoded as 3 bytes are accepted there).
fn simdless_surrogates(b: &[u8]) -> bool {
    // Replace encoded surrogates (ED A0..BF xx) with a valid sequence and re-check.
    let mut v = b.to_vec();
    let mut i = 0;
    while i + 2 < v.len() {
        if v[i] == 0xed && (0xa0..=0xbf).contains(&v[i + 1]) {
            v[i] = b'?';
            v[i + 1] = b'?';
            v[i + 2] = b'?';
            i += 3;
        } else {
            i += 1;
        }
    }
    std::str::from_utf8(&v).is_err()
}

fn parse_int(l: &[u8]) -> Option<V> {
    let s = std::str::from_utf8(l).ok()?.trim();
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    Some(s.replace('_', "").parse::<i64>().map_or(V::Scalar, V::Int))
}

fn parse_key(l: &[u8]) -> Option<u64> {
    std::str::from_utf8(l).ok()?.trim().parse().ok()
}

fn long_le(b: &[u8]) -> V {
    if b.is_empty() {
        return V::Int(0);
    }
    if b.len() > 8 {
        return V::Scalar;
    }
    let neg = b[b.len() - 1] & 0x80 != 0;
    let mut buf = [if neg { 0xff } else { 0 }; 8];
    buf[..b.len()].copy_from_slice(b);
    V::Int(i64::from_le_bytes(buf))
}

/// Python's `codecs.escape_decode` (what STRING arguments go through), lossy to UTF-8.
fn decode_escapes(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' || i >= s.len() {
            out.push(c);
            continue;
        }
        let e = s[i];
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'x' => {
                let h = s.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                match h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.extend_from_slice(b"\\x"),
                }
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Python's `raw_unicode_escape` decoding: `\uXXXX` and `\UXXXXXXXX`, other bytes as Latin-1.
fn decode_raw_unicode_escape(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() && (s[i + 1] == b'u' || s[i + 1] == b'U') {
            let n = if s[i + 1] == b'u' { 4 } else { 8 };
            if let Some(c) = s
                .get(i + 2..i + 2 + n)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                out.push(c);
                i += 2 + n;
                continue;
            }
        }
        out.push(char::from(s[i]));
        i += 1;
    }
    out
}

/// Makes a name from a file safe to print: control characters escaped, length bounded.
pub fn escape(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i >= 200 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
