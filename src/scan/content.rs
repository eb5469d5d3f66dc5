//! Scanning one piece of content (a file, or an archive member): decide its format from the
//! bytes, check it with the right parser, and descend into archives within limits.

use std::io::Read;

use super::allow::Loader;
use super::detect::{Format, detect_bytes};
use super::finding::{Finding, Severity};
use super::{Limits, gguf, npy, pickle, safetensors, zip};

/// Where a piece of content sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A file, or a member that a loader may open as a file.
    Normal,
    /// A raw tensor storage of a torch checkpoint: a loader reads it as bytes, never parses
    /// it; only content that would run as a pickle or open as an archive is reported.
    Storage,
}

pub(super) struct Ctx<'l> {
    limits: &'l Limits,
    pub findings: Vec<Finding>,
    /// Decompressed bytes still allowed for this file.
    budget: u64,
    /// The address range of the file's read-only mapping, when it is mapped: stored members
    /// inside it are dropped from the resident set once scanned.
    mapped: Option<(usize, usize)>,
}

impl<'l> Ctx<'l> {
    pub fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            findings: Vec::new(),
            budget: limits.max_total,
            mapped: None,
        }
    }

    /// Marks `data` as a read-only file mapping.
    pub fn mapped(mut self, data: &[u8]) -> Self {
        self.mapped = Some((data.as_ptr() as usize, data.len()));
        self
    }

    fn release(&self, piece: &[u8]) {
        let Some((start, len)) = self.mapped else {
            return;
        };
        let p = piece.as_ptr() as usize;
        if p >= start && p + piece.len() <= start + len {
            crate::integrity::hash::release(piece);
        }
    }

    fn push(&mut self, mut f: Finding, chain: &str) {
        if !chain.is_empty() {
            f.member = Some(match f.member.take() {
                Some(m) => format!("{chain}/{m}"),
                None => chain.to_owned(),
            });
        }
        self.findings.push(f);
    }

    fn extend(&mut self, fs: Vec<Finding>, chain: &str) {
        for f in fs {
            self.push(f, chain);
        }
    }

    /// Scans the whole content of a file; returns its format.
    pub fn file(&mut self, data: &[u8]) -> Format {
        self.blob(data, "", 0, None, Role::Normal)
    }

    fn blob(
        &mut self,
        data: &[u8],
        chain: &str,
        depth: u32,
        loader: Option<Loader>,
        role: Role,
    ) -> Format {
        let format = detect_bytes(data, data.len() as u64);
        if role == Role::Storage {
            match format {
                Format::TorchZip | Format::Npz | Format::Zip if data.starts_with(b"PK\x03\x04") => {
                }
                Format::Npy | Format::LegacyTorch => {}
                _ => {
                    self.pickle(data, chain, loader.unwrap_or(Loader::Torch), true, None);
                    return Format::Unknown;
                }
            }
        }
        match format {
            Format::Safetensors => {
                let f = safetensors::check(data);
                self.extend(f, chain);
            }
            Format::Gguf { .. } => {
                let f = gguf::check(data);
                self.extend(f, chain);
            }
            Format::TorchZip | Format::Npz | Format::Zip => {
                if self.enter(chain, depth) {
                    self.zip(data, chain, depth, format, loader);
                }
            }
            Format::LegacyTorch => self.pickle(data, chain, Loader::Torch, false, Some(5)),
            Format::Pickle { .. } => {
                self.pickle(data, chain, loader.unwrap_or(Loader::Pickle), false, None);
            }
            Format::Npy => self.npy(data, chain),
            Format::Tar => {
                if self.enter(chain, depth) {
                    self.tar(data, chain, depth, loader);
                }
            }
            Format::Gzip => {
                if self.enter(chain, depth) {
                    self.gzip(data, chain, depth, loader);
                }
            }
            Format::SevenZip => self.push(
                Finding::new(
                    Severity::Medium,
                    "format/unsupported",
                    "a 7z archive: its content is not read, so it cannot be shown to be safe",
                ),
                chain,
            ),
            Format::Hdf5 => self.hdf5(data, chain),
            Format::Onnx => self.onnx(data, chain),
            Format::Unknown => {
                // What a loader would still try: a GGUF or safetensors header detection refused
                // (bad version, absurd counts, oversized header) is checked and reported.
                if data.starts_with(b"GGUF") {
                    let f = gguf::check(data);
                    self.extend(f, chain);
                } else if data.get(8) == Some(&b'{') {
                    let f = safetensors::check(data);
                    self.extend(f, chain);
                }
                self.pickle(data, chain, loader.unwrap_or(Loader::Pickle), true, None);
            }
        }
        format
    }

    /// Whether an archive at `depth` may be opened; reports it when not.
    fn enter(&mut self, chain: &str, depth: u32) -> bool {
        if depth >= self.limits.max_depth {
            self.push(
                Finding::new(
                    Severity::Medium,
                    "archive/depth",
                    format!(
                        "an archive nested deeper than {} levels is not opened",
                        self.limits.max_depth
                    ),
                ),
                chain,
            );
            return false;
        }
        true
    }

    fn pickle(
        &mut self,
        data: &[u8],
        chain: &str,
        loader: Loader,
        probe: bool,
        max: Option<usize>,
    ) {
        let opts = pickle::Options {
            loader,
            probe,
            max_pickles: max,
        };
        let out = pickle::scan(data, &opts);
        if probe && out.is_pickle {
            self.push(
                Finding::new(
                    Severity::Medium,
                    "pickle/hidden",
                    "content not recognised as a model format starts with a pickle that imports or calls something",
                ),
                chain,
            );
        }
        self.extend(out.findings, chain);
    }

    fn npy(&mut self, data: &[u8], chain: &str) {
        match npy::header(data) {
            Err(e) => self.push(
                Finding::new(
                    Severity::Medium,
                    "npy/header",
                    format!("malformed .npy header: {e}"),
                ),
                chain,
            ),
            Ok(h) if h.object => {
                let payload = &data[h.data..];
                let out = pickle::scan(payload, &pickle::Options::new(Loader::Numpy));
                for mut f in out.findings {
                    f.offset = f.offset.map(|o| o + h.data as u64);
                    self.push(f, chain);
                }
                if out.pickles == 0 && payload.is_empty() {
                    self.push(
                        Finding::new(
                            Severity::Medium,
                            "npy/object",
                            "an object array with no pickle data",
                        ),
                        chain,
                    );
                }
            }
            Ok(h) => {
                let have = (data.len() - h.data) as u64;
                if let Some(n) = h.nbytes
                    && n != have
                {
                    self.push(
                        Finding::new(
                            if have > n {
                                Severity::Medium
                            } else {
                                Severity::Low
                            },
                            "npy/size",
                            format!(
                                "the header describes {n} bytes of data, the file holds {have}"
                            ),
                        )
                        .at(h.data as u64),
                        chain,
                    );
                }
            }
        }
    }

    fn zip(
        &mut self,
        data: &[u8],
        chain: &str,
        depth: u32,
        format: Format,
        inherited: Option<Loader>,
    ) {
        let ar = match zip::read(data) {
            Ok(a) => a,
            Err(e) => {
                self.push(
                    Finding::new(
                        Severity::Medium,
                        "zip/malformed",
                        format!("the zip cannot be read: {e}"),
                    ),
                    chain,
                );
                return;
            }
        };
        self.extend(ar.anomalies, chain);
        let loader = match format {
            Format::TorchZip => Some(Loader::Torch),
            Format::Npz => Some(Loader::Numpy),
            _ => inherited,
        };
        let prefix: Option<Vec<u8>> = (format == Format::TorchZip)
            .then(|| {
                ar.entries
                    .first()
                    .map(|e| e.name.split(|&b| b == b'/').next().unwrap_or(&[]).to_vec())
            })
            .flatten();
        let mut torchscript = false;
        let is_keras = ar.entries.iter().any(|e| e.name == b"metadata.json")
            && ar.entries.iter().any(|e| e.name == b"config.json");
        for e in &ar.entries {
            let name = e.name_lossy();
            let member = if chain.is_empty() {
                name.clone()
            } else {
                format!("{chain}/{name}")
            };
            if e.name.ends_with(b"/") && e.size == 0 {
                continue;
            }
            let lower = e.name.to_ascii_lowercase();
            if format == Format::TorchZip
                && (lower.ends_with(b"constants.pkl") || lower.windows(6).any(|w| w == b"/code/"))
            {
                torchscript = true;
            }
            let limit = self.limits.max_member.min(self.budget);
            let content = match zip::content(data, e, limit) {
                Ok(c) => c,
                Err(err) => {
                    let (sev, rule, msg) = match err {
                        zip::ReadError::Unsupported(m) => (
                            Severity::Medium,
                            "zip/unsupported-method",
                            format!(
                                "compression method {m} is not supported: the member cannot be checked"
                            ),
                        ),
                        zip::ReadError::OutOfRange => (
                            Severity::Medium,
                            "zip/malformed",
                            "the member's data runs past the end of the archive".to_owned(),
                        ),
                        zip::ReadError::TooLarge(l) => (
                            Severity::Medium,
                            "archive/size",
                            format!("the member decompresses to more than {l} bytes: not checked"),
                        ),
                        zip::ReadError::Corrupt(m) => (
                            Severity::Medium,
                            "zip/malformed",
                            format!("the member cannot be decompressed: {m}"),
                        ),
                    };
                    self.push(Finding::new(sev, rule, msg).at(e.local), &member);
                    continue;
                }
            };
            if let zip::Content::Owned(v) = &content {
                self.budget = self.budget.saturating_sub(v.len() as u64);
            }
            if crc32fast::hash(&content) != e.crc {
                self.push(
                    Finding::new(
                        Severity::Low,
                        "zip/bad-crc",
                        "the member's CRC-32 does not match its data: PyTorch never checks it, Python's zipfile refuses the member",
                    )
                    .at(e.local),
                    &member,
                );
            }
            if content.len() as u64 != e.size {
                self.push(
                    Finding::new(
                        Severity::Low,
                        "zip/size",
                        format!(
                            "the central directory gives {} bytes, the member holds {}",
                            e.size,
                            content.len()
                        ),
                    )
                    .at(e.local),
                    &member,
                );
            }
            if is_keras && e.name == b"config.json" {
                self.keras_config(&content, &member);
            }
            let role = match &prefix {
                Some(p) if is_storage(&e.name, p) => Role::Storage,
                _ => Role::Normal,
            };
            self.blob(&content, &member, depth + 1, loader, role);
            if let zip::Content::Borrowed(b) = &content {
                self.release(b);
            }
        }
        if torchscript {
            self.push(
                Finding::new(
                    Severity::Medium,
                    "torch/torchscript",
                    "a TorchScript archive: torch.jit.load compiles and runs the code it carries",
                ),
                chain,
            );
        }
    }

    fn keras_config(&mut self, data: &[u8], chain: &str) {
        if lambda_layer(data) {
            self.push(
                Finding::new(
                    Severity::Critical,
                    "keras/lambda",
                    "a Keras Lambda layer: loading the model runs its code",
                ),
                chain,
            );
        }
    }

    fn hdf5(&mut self, data: &[u8], chain: &str) {
        if lambda_layer(data) {
            self.keras_config(data, chain);
        } else {
            self.push(
                Finding::new(
                    Severity::Low,
                    "format/unsupported",
                    "HDF5 is not parsed (only Keras Lambda layers are looked for): it cannot be shown to be safe",
                ),
                chain,
            );
        }
    }

    fn onnx(&mut self, data: &[u8], chain: &str) {
        // StringStringEntryProto { key = "location", value = PATH } as it is serialized.
        let pat = b"\x0a\x08location\x12";
        let mut from = 0;
        while let Some(i) = memchr::memmem::find(&data[from..], pat) {
            let at = from + i + pat.len();
            from = at;
            let mut p = at;
            let mut n = 0usize;
            let mut shift = 0;
            while let Some(&b) = data.get(p) {
                p += 1;
                n |= usize::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 || shift > 28 {
                    break;
                }
            }
            let Some(v) = p.checked_add(n).and_then(|e| data.get(p..e)) else {
                continue;
            };
            let loc = String::from_utf8_lossy(v);
            let escapes = loc.starts_with('/')
                || loc.starts_with('\\')
                || loc.as_bytes().get(1) == Some(&b':')
                || loc.split(['/', '\\']).any(|c| c == "..");
            if escapes {
                self.push(
                    Finding::new(
                        Severity::High,
                        "onnx/external-data",
                        format!(
                            "external data location {:?} points outside the model's directory",
                            pickle::escape(&loc)
                        ),
                    )
                    .at(at as u64),
                    chain,
                );
            }
        }
    }

    fn gzip(&mut self, data: &[u8], chain: &str, depth: u32, loader: Option<Loader>) {
        let limit = self.limits.max_member.min(self.budget);
        let mut out = Vec::new();
        let r = flate2::read::MultiGzDecoder::new(data)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out);
        if let Err(e) = r {
            self.push(
                Finding::new(
                    Severity::Medium,
                    "gzip/malformed",
                    format!("the gzip stream cannot be read: {e}"),
                ),
                chain,
            );
            return;
        }
        if out.len() as u64 > limit {
            self.push(
                Finding::new(
                    Severity::Medium,
                    "archive/size",
                    format!("the gzip stream decompresses to more than {limit} bytes: not checked"),
                ),
                chain,
            );
            return;
        }
        self.budget = self.budget.saturating_sub(out.len() as u64);
        let member = if chain.is_empty() {
            "(gunzipped)".to_owned()
        } else {
            format!("{chain}/(gunzipped)")
        };
        self.blob(&out, &member, depth + 1, loader, Role::Normal);
    }

    fn tar(&mut self, data: &[u8], chain: &str, depth: u32, loader: Option<Loader>) {
        let mut at = 0usize;
        let mut long_name: Option<String> = None;
        let mut pax_name: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        let mut zeros = 0;
        while at + 512 <= data.len() {
            let h = &data[at..at + 512];
            if h.iter().all(|&b| b == 0) {
                zeros += 1;
                at += 512;
                if zeros == 2 {
                    break;
                }
                continue;
            }
            zeros = 0;
            let sum: u64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(b)
                    }
                })
                .sum();
            let stored = octal(&h[148..156]);
            if stored != Some(sum) {
                self.push(
                    Finding::new(
                        Severity::Medium,
                        "tar/malformed",
                        "a tar header checksum does not match: the rest is not read",
                    )
                    .at(at as u64),
                    chain,
                );
                return;
            }
            let size = pax_size.take().or_else(|| tar_size(&h[124..136]));
            let Some(size) = size else {
                self.push(
                    Finding::new(
                        Severity::Medium,
                        "tar/malformed",
                        "a tar header has an invalid size",
                    )
                    .at(at as u64),
                    chain,
                );
                return;
            };
            let kind = h[156];
            let start = at + 512;
            let Some(end) = usize::try_from(size)
                .ok()
                .and_then(|s| start.checked_add(s))
                .filter(|&e| e <= data.len())
            else {
                self.push(
                    Finding::new(
                        Severity::Medium,
                        "tar/malformed",
                        "a tar member runs past the end of the archive",
                    )
                    .at(at as u64),
                    chain,
                );
                return;
            };
            let body = &data[start..end];
            let cstr = |b: &[u8]| {
                String::from_utf8_lossy(b.split(|&c| c == 0).next().unwrap_or(&[])).into_owned()
            };
            match kind {
                b'L' => long_name = Some(cstr(body)),
                b'x' => {
                    for rec in String::from_utf8_lossy(body).lines() {
                        if let Some((_, kv)) = rec.split_once(' ')
                            && let Some((k, v)) = kv.split_once('=')
                        {
                            match k {
                                "path" => pax_name = Some(v.to_owned()),
                                "size" => pax_size = v.parse().ok(),
                                _ => {}
                            }
                        }
                    }
                }
                b'0' | 0 | b'7' => {
                    let mut name = cstr(&h[0..100]);
                    if &h[257..262] == b"ustar" {
                        let prefix = cstr(&h[345..500]);
                        if !prefix.is_empty() {
                            name = format!("{prefix}/{name}");
                        }
                    }
                    let name = pax_name.take().or(long_name.take()).unwrap_or(name);
                    let member = if chain.is_empty() {
                        name
                    } else {
                        format!("{chain}/{name}")
                    };
                    self.blob(body, &member, depth + 1, loader, Role::Normal);
                }
                _ => {
                    pax_name = None;
                    long_name = None;
                }
            }
            at = start + (end - start).div_ceil(512) * 512;
        }
    }
}

/// `<prefix>/data/<digits>`: a raw storage of a torch checkpoint.
fn is_storage(name: &[u8], prefix: &[u8]) -> bool {
    let Some(rest) = name
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix(b"/data/"))
    else {
        return false;
    };
    !rest.is_empty() && rest.iter().all(u8::is_ascii_digit)
}

fn lambda_layer(data: &[u8]) -> bool {
    [
        &b"\"class_name\": \"Lambda\""[..],
        b"\"class_name\":\"Lambda\"",
    ]
    .iter()
    .any(|p| memchr::memmem::find(data, p).is_some())
}

fn octal(b: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(b).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn tar_size(b: &[u8]) -> Option<u64> {
    if b[0] & 0x80 != 0 {
        // Base-256: big-endian, the top bit of the first byte set.
        let mut v: u64 = u64::from(b[0] & 0x7f);
        for &x in &b[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(x))?;
        }
        return Some(v);
    }
    octal(b)
}
