//! Content-based format detection: what a file is, from its first bytes (and, for zips, the
//! central directory found from the end), never from its name.
//!
//! Detection answers "what would a loader take this for", conservatively for text-like
//! formats (protocol 0/1 pickles) and leniently where the loader is lenient (torch zips are
//! recognised through the central directory, whatever Python's zipfile would say). It does not
//! judge whether the content is safe: that is the scanner's work.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// How many bytes of a file detection reads from its start.
pub const HEAD_LEN: usize = 16 * 1024;

/// The largest safetensors header accepted (the format's own limit).
pub const SAFETENSORS_MAX_HEADER: u64 = 100_000_000;

/// The largest zip central directory read to list the members.
const ZIP_MAX_CENTRAL_DIR: u64 = 64 << 20;

/// The first pickle of a legacy (pre-1.6) torch checkpoint, after PROTO 2: LONG1 of the magic
/// number 0x1950a86a20f9469cfc6c, then STOP.
const LEGACY_TORCH_MAGIC: [u8; 13] = [
    0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

/// A file format, as recognised from the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// safetensors: an 8-byte header length, a JSON header, raw tensors.
    Safetensors,
    /// A PyTorch zip checkpoint (`torch.save` since 1.6): a zip with a `data.pkl` member.
    TorchZip,
    /// A pre-1.6 PyTorch checkpoint: pickles back to back after the legacy magic number.
    LegacyTorch,
    /// A raw pickle stream (also what `.pt`/`.pkl`/`.bin` files often are).
    Pickle {
        /// The protocol: from the PROTO opcode, or 0/1 when there is none.
        protocol: u8,
    },
    /// GGUF (llama.cpp).
    Gguf {
        /// The header's version, 1 to 3.
        version: u32,
    },
    /// ONNX: a serialized protobuf `ModelProto`.
    Onnx,
    /// A NumPy `.npy` array.
    Npy,
    /// A NumPy `.npz` archive: a zip of `.npy` members.
    Npz,
    /// HDF5, e.g. Keras `.h5` models.
    Hdf5,
    /// Any other zip archive.
    Zip,
    /// A tar archive (ustar or GNU).
    Tar,
    /// A gzip stream.
    Gzip,
    /// A 7z archive.
    SevenZip,
    /// None of the above.
    Unknown,
}

/// What a format is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Model weights or tensors a model loader reads.
    Weights,
    /// A generic archive that may contain anything, weights included.
    Archive,
    /// Not a model format.
    Other,
}

impl Format {
    /// What the format is for.
    pub fn kind(self) -> Kind {
        match self {
            Self::Safetensors
            | Self::TorchZip
            | Self::LegacyTorch
            | Self::Pickle { .. }
            | Self::Gguf { .. }
            | Self::Onnx
            | Self::Npy
            | Self::Npz
            | Self::Hdf5 => Kind::Weights,
            Self::Zip | Self::Tar | Self::Gzip | Self::SevenZip => Kind::Archive,
            Self::Unknown => Kind::Other,
        }
    }

    /// Whether this is a model-weights format.
    pub fn is_weights(self) -> bool {
        self.kind() == Kind::Weights
    }

    /// Whether loading the file the usual way unpickles it, which runs whatever code the pickle
    /// holds (`torch.load` with `weights_only=False`, `pickle.load`).
    pub fn runs_code(self) -> bool {
        matches!(
            self,
            Self::TorchZip | Self::LegacyTorch | Self::Pickle { .. }
        )
    }

    /// A short name for people, without version details.
    pub fn name(self) -> &'static str {
        match self {
            Self::Safetensors => "safetensors",
            Self::TorchZip => "PyTorch zip checkpoint",
            Self::LegacyTorch => "legacy PyTorch checkpoint",
            Self::Pickle { .. } => "pickle",
            Self::Gguf { .. } => "GGUF",
            Self::Onnx => "ONNX",
            Self::Npy => "NumPy array",
            Self::Npz => "NumPy archive",
            Self::Hdf5 => "HDF5",
            Self::Zip => "zip archive",
            Self::Tar => "tar archive",
            Self::Gzip => "gzip",
            Self::SevenZip => "7z archive",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pickle { protocol } => write!(f, "pickle (protocol {protocol})"),
            Self::Gguf { version } => write!(f, "GGUF v{version}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Detects the format of the file at `path`, reading at most [`HEAD_LEN`] bytes from its start
/// and, for zips, the end-of-central-directory and the central directory. A symlink is not
/// followed: it is opened with `O_NOFOLLOW` and fails with `ELOOP`.
pub fn detect_path(path: &Path) -> io::Result<Format> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Format::Unknown);
    }
    let len = meta.len();
    let mut head = Vec::with_capacity(HEAD_LEN.min(usize::try_from(len).unwrap_or(HEAD_LEN)));
    (&mut file).take(HEAD_LEN as u64).read_to_end(&mut head)?;
    let len = len.max(head.len() as u64);
    if head.starts_with(b"PK\x03\x04") {
        let names = zip_member_names(&mut file, len)?;
        return Ok(zip_format(&head, names.as_deref()));
    }
    let last = if head.len() as u64 >= len {
        head.last().copied()
    } else {
        let mut b = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut b).ok().map(|()| b[0])
    };
    Ok(detect_parts(&head, len, last))
}

/// Detects the format from the first bytes of a file (`head`) and the file's length. When
/// `head` is the whole file, zips are read through their central directory and protocol 0/1
/// pickles must end with STOP; otherwise detection relies on the head alone.
pub fn detect_bytes(head: &[u8], len: u64) -> Format {
    let complete = head.len() as u64 >= len;
    if head.starts_with(b"PK\x03\x04") {
        let names = if complete {
            zip_member_names(&mut io::Cursor::new(head), head.len() as u64)
                .ok()
                .flatten()
        } else {
            None
        };
        return zip_format(head, names.as_deref());
    }
    let last = if complete { head.last().copied() } else { None };
    detect_parts(head, len.max(head.len() as u64), last)
}

/// Everything but zips: `last` is the file's last byte when known.
fn detect_parts(head: &[u8], len: u64, last: Option<u8>) -> Format {
    if is_safetensors(head, len) {
        return Format::Safetensors;
    }
    if head.starts_with(b"PK\x05\x06") {
        return Format::Zip;
    }
    if let Some(version) = gguf_version(head) {
        return Format::Gguf { version };
    }
    if head.starts_with(b"\x93NUMPY") && head.len() >= 8 && (1..=3).contains(&head[6]) {
        return Format::Npy;
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Format::Hdf5;
    }
    if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        return Format::SevenZip;
    }
    if head.starts_with(b"\x1f\x8b\x08") {
        return Format::Gzip;
    }
    if head.len() >= 263 && (&head[257..263] == b"ustar\0" || &head[257..263] == b"ustar ") {
        return Format::Tar;
    }
    if head.len() >= 15
        && head[0] == 0x80
        && (2..=5).contains(&head[1])
        && head[2..15] == LEGACY_TORCH_MAGIC
    {
        return Format::LegacyTorch;
    }
    if let Some(protocol) = binary_pickle(head) {
        return Format::Pickle { protocol };
    }
    if is_onnx(head, len) {
        return Format::Onnx;
    }
    if let Some(protocol) = text_pickle(head, len, last) {
        return Format::Pickle { protocol };
    }
    Format::Unknown
}

// ---------------------------------------------------------------------------------------------
// safetensors, GGUF

fn is_safetensors(head: &[u8], len: u64) -> bool {
    let Some(n) = head.get(..8) else {
        return false;
    };
    let n = u64::from_le_bytes(n.try_into().expect("8 bytes"));
    if !(2..=SAFETENSORS_MAX_HEADER).contains(&n) || n > len - 8 {
        return false;
    }
    // The header is a JSON object: `{`, optional whitespace, then a key or the closing brace.
    let header = &head[8..head.len().min(8 + n as usize)];
    match header.split_first() {
        Some((b'{', rest)) => match rest.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'"' | b'}') => true,
            Some(_) => false,
            // Only whitespace seen so far: plausible only if the header goes on past the head.
            None => (header.len() as u64) < n,
        },
        _ => false,
    }
}

fn gguf_version(head: &[u8]) -> Option<u32> {
    if !head.starts_with(b"GGUF") || head.len() < 8 {
        return None;
    }
    let version = u32::from_le_bytes(head[4..8].try_into().ok()?);
    if !(1..=3).contains(&version) {
        return None;
    }
    // v2 and v3 give 64-bit tensor and key/value counts: absurd counts are not GGUF.
    if version >= 2 && head.len() >= 24 {
        let tensors = u64::from_le_bytes(head[8..16].try_into().ok()?);
        let kvs = u64::from_le_bytes(head[16..24].try_into().ok()?);
        if tensors > u64::from(u32::MAX) || kvs > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(version)
}

// ---------------------------------------------------------------------------------------------
// zip

/// Decides between torch checkpoint, npz and plain zip from the member names (central
/// directory), or from the first local header when the central directory cannot be read.
fn zip_format(head: &[u8], names: Option<&[Vec<u8>]>) -> Format {
    let first_local;
    let names = match names {
        Some(n) => n,
        None => {
            first_local = first_local_name(head).map(|n| vec![n.to_vec()]);
            match &first_local {
                Some(n) => n.as_slice(),
                None => return Format::Zip,
            }
        }
    };
    if names.iter().any(|n| is_torch_data_pkl(n)) {
        return Format::TorchZip;
    }
    if !names.is_empty()
        && names
            .iter()
            .all(|n| n.len() > 4 && n[n.len() - 4..].eq_ignore_ascii_case(b".npy"))
    {
        return Format::Npz;
    }
    Format::Zip
}

/// `data.pkl` or `<prefix>/data.pkl`, compared case-insensitively as torch does.
fn is_torch_data_pkl(name: &[u8]) -> bool {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    let depth = name.iter().filter(|&&b| b == b'/').count();
    depth <= 1 && base.eq_ignore_ascii_case(b"data.pkl")
}

fn first_local_name(head: &[u8]) -> Option<&[u8]> {
    let n = usize::from(u16::from_le_bytes(head.get(26..28)?.try_into().ok()?));
    head.get(30..30 + n)
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Lists the member names of a zip from its central directory (zip64 included). `Ok(None)`
/// when there is no readable central directory, or it is larger than the bound.
pub fn zip_member_names<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Option<Vec<Vec<u8>>>> {
    // The end-of-central-directory record: 22 bytes plus a comment of up to 65535.
    let tail_len = len.min(22 + 0xffff);
    let tail_start = len - tail_len;
    let mut tail = vec![0u8; tail_len as usize];
    r.seek(SeekFrom::Start(tail_start))?;
    r.read_exact(&mut tail)?;
    let Some(eocd) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
    else {
        return Ok(None);
    };
    let rec = &tail[eocd..];
    let (Some(count), Some(size), Some(offset)) =
        (le_u16(rec, 10), le_u32(rec, 12), le_u32(rec, 16))
    else {
        return Ok(None);
    };
    let (mut count, mut size, mut offset) = (u64::from(count), u64::from(size), u64::from(offset));
    if count == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff {
        // zip64: a locator just before the record points to the zip64 end record.
        let Some(loc) = eocd.checked_sub(20) else {
            return Ok(None);
        };
        if !tail[loc..].starts_with(b"PK\x06\x07") {
            return Ok(None);
        }
        let Some(at) = le_u64(&tail, loc + 8) else {
            return Ok(None);
        };
        if at.checked_add(56).is_none_or(|end| end > len) {
            return Ok(None);
        }
        let mut rec64 = [0u8; 56];
        r.seek(SeekFrom::Start(at))?;
        r.read_exact(&mut rec64)?;
        if !rec64.starts_with(b"PK\x06\x06") {
            return Ok(None);
        }
        count = le_u64(&rec64, 32).unwrap_or(0);
        size = le_u64(&rec64, 40).unwrap_or(0);
        offset = le_u64(&rec64, 48).unwrap_or(0);
    }
    if size > ZIP_MAX_CENTRAL_DIR || offset.checked_add(size).is_none_or(|end| end > len) {
        return Ok(None);
    }
    let mut cd = vec![0u8; size as usize];
    r.seek(SeekFrom::Start(offset))?;
    r.read_exact(&mut cd)?;
    let mut names = Vec::new();
    let mut at = 0usize;
    while (names.len() as u64) < count && cd[at..].starts_with(b"PK\x01\x02") {
        let (Some(n), Some(extra), Some(comment)) = (
            le_u16(&cd, at + 28),
            le_u16(&cd, at + 30),
            le_u16(&cd, at + 32),
        ) else {
            break;
        };
        let name_at = at + 46;
        let Some(name) = cd.get(name_at..name_at + usize::from(n)) else {
            break;
        };
        names.push(name.to_vec());
        at = name_at + usize::from(n) + usize::from(extra) + usize::from(comment);
        if at >= cd.len() {
            break;
        }
    }
    Ok(Some(names))
}

// ---------------------------------------------------------------------------------------------
// ONNX

/// A protobuf `ModelProto`: field 1 (ir_version, varint) first with a plausible value, then
/// fields of the message with the right wire types and lengths that fit the file, at least one
/// of producer_name (2), graph (7) or opset_import (8) among them.
fn is_onnx(head: &[u8], len: u64) -> bool {
    if head.first() != Some(&0x08) {
        return false;
    }
    let mut at = 1;
    let Some(ir_version) = varint(head, &mut at) else {
        return false;
    };
    if !(1..=64).contains(&ir_version) {
        return false;
    }
    let mut fields = 1;
    let mut typical = false;
    while at < head.len() {
        let Some(tag) = varint(head, &mut at) else {
            // A tag cut off by the end of the head: judge on what was seen.
            break;
        };
        let (field, wire) = (tag >> 3, tag & 7);
        // ModelProto fields: 1, 5 varints; 2, 3, 4, 6, 7, 8, 14, 20, 25, 26 length-delimited.
        let expected = match field {
            1 | 5 => 0,
            2 | 3 | 4 | 6 | 7 | 8 | 14 | 20 | 25 | 26 => 2,
            _ => return false,
        };
        if wire != expected {
            return false;
        }
        fields += 1;
        if wire == 0 {
            if varint(head, &mut at).is_none() {
                break;
            }
            continue;
        }
        let Some(n) = varint(head, &mut at) else {
            break;
        };
        if n > len.saturating_sub(at as u64) {
            return false;
        }
        if (2..=4).contains(&field) {
            // Strings: UTF-8 when they are in the head.
            if let Some(s) = at.checked_add(n as usize).and_then(|end| head.get(at..end))
                && std::str::from_utf8(s).is_err()
            {
                return false;
            }
        }
        if matches!(field, 2 | 7 | 8) {
            typical = true;
        }
        match at.checked_add(n as usize) {
            Some(next) if next <= head.len() => at = next,
            _ => break,
        }
    }
    fields >= 2 && typical
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// pickle

/// The argument an opcode takes.
#[derive(Clone, Copy)]
enum Arg {
    None,
    Fixed(usize),
    /// A newline-terminated line, checked by the given rule.
    Line(LineRule),
    /// Two lines: module and name (GLOBAL, INST).
    TwoNames,
    /// A length prefix of 1, 4 or 8 bytes, then that many bytes.
    Counted(usize),
}

#[derive(Clone, Copy)]
enum LineRule {
    Int,
    Float,
    Quoted,
    Digits,
    Any,
}

/// The opcode table: the argument, and the protocol that introduced the opcode.
fn opcode(op: u8) -> Option<(Arg, u8)> {
    use Arg::*;
    use LineRule::*;
    Some(match op {
        b'(' | b'.' | b'0' | b'2' | b'N' | b'R' | b'a' | b'b' | b'd' | b'l' | b's' | b't' => {
            (None, 0)
        }
        b'F' => (Line(Float), 0),
        b'I' | b'L' => (Line(Int), 0),
        b'P' | b'V' => (Line(Any), 0),
        b'S' => (Line(Quoted), 0),
        b'c' | b'i' => (TwoNames, 0),
        b'g' | b'p' => (Line(Digits), 0),
        b')' | b'1' | b'Q' | b']' | b'e' | b'o' | b'u' | b'}' => (None, 1),
        b'G' => (Fixed(8), 1),
        b'J' | b'j' | b'r' => (Fixed(4), 1),
        b'K' | b'h' | b'q' => (Fixed(1), 1),
        b'M' => (Fixed(2), 1),
        b'T' | b'X' => (Counted(4), 1),
        b'U' => (Counted(1), 1),
        0x80 | 0x82 => (Fixed(1), 2),
        0x83 => (Fixed(2), 2),
        0x84 => (Fixed(4), 2),
        0x81 | 0x85..=0x89 => (None, 2),
        0x8a => (Counted(1), 2),
        0x8b => (Counted(4), 2),
        b'B' => (Counted(4), 3),
        b'C' => (Counted(1), 3),
        0x8c => (Counted(1), 4),
        0x8d | 0x8e => (Counted(8), 4),
        0x8f..=0x94 => (None, 4),
        0x95 => (Fixed(8), 4),
        0x96 => (Counted(8), 5),
        0x97 | 0x98 => (None, 5),
        _ => return Option::None,
    })
}

/// How a walk over pickle opcodes ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// STOP (counted in `ops`).
    Stop,
    /// The data ran out with every opcode so far valid.
    OutOfData,
    /// An unknown opcode or a malformed argument.
    Invalid,
}

/// The result of a walk: how it ended, the valid opcodes seen, the highest protocol among them.
struct Walk {
    end: End,
    ops: usize,
    protocol: u8,
}

/// What an opcode does to the unpickler's stack, which is split into segments by MARKs.
#[derive(Clone, Copy)]
enum Effect {
    /// Needs `needs` items in the top segment, then changes its size by `delta`.
    Simple { needs: usize, delta: isize },
    /// MARK: opens a segment.
    Mark,
    /// Closes the top segment (which needs `min` items), needs `below` items in the segment
    /// under it, then pushes `push` items there.
    PopMark {
        min: usize,
        below: usize,
        push: usize,
    },
    /// POP: an item, or the mark when the segment is empty.
    Pop,
}

fn effect(op: u8) -> Effect {
    use Effect::*;
    let simple = |needs, delta| Simple { needs, delta };
    match op {
        b'(' => Mark,
        b'0' => Pop,
        b'.' | b'Q' | b'p' | b'q' | b'r' | 0x94 | 0x98 | 0x85 => simple(1, 0),
        b'2' => simple(1, 1),
        b'R' | b'a' | b'b' | 0x81 | 0x93 | 0x86 => simple(2, -1),
        b's' | 0x92 | 0x87 => simple(3, -2),
        0x80 | 0x95 => simple(0, 0),
        b'd' | b'l' | b't' | b'i' | 0x91 => PopMark {
            min: 0,
            below: 0,
            push: 1,
        },
        b'o' => PopMark {
            min: 1,
            below: 0,
            push: 1,
        },
        b'e' | b'u' | 0x90 => PopMark {
            min: 0,
            below: 1,
            push: 0,
        },
        b'1' => PopMark {
            min: 0,
            below: 0,
            push: 0,
        },
        // Everything else pushes one value.
        _ => simple(0, 1),
    }
}

/// Applies `e` to the segment sizes; false when the stack would underflow.
fn apply(stack: &mut Vec<usize>, e: Effect) -> bool {
    match e {
        Effect::Simple { needs, delta } => {
            let top = stack
                .last_mut()
                .expect("the bottom segment is never popped");
            if *top < needs {
                return false;
            }
            *top = top.wrapping_add_signed(delta);
        }
        Effect::Mark => stack.push(0),
        Effect::Pop => {
            let top = stack.last_mut().expect("bottom segment");
            if *top > 0 {
                *top -= 1;
            } else if stack.len() > 1 {
                stack.pop();
            } else {
                return false;
            }
        }
        Effect::PopMark { min, below, push } => {
            if stack.len() < 2 || stack[stack.len() - 1] < min {
                return false;
            }
            stack.pop();
            let top = stack.last_mut().expect("bottom segment");
            if *top < below {
                return false;
            }
            *top += push;
        }
    }
    true
}

/// Walks opcodes from the start of `data`, accepting those of protocols up to `max_protocol`.
/// With `strict`, the stack is simulated too: an underflow, or a STOP that leaves anything but
/// one object, ends the walk as invalid.
fn walk(data: &[u8], max_protocol: u8, strict: bool) -> Walk {
    let mut w = Walk {
        end: End::OutOfData,
        ops: 0,
        protocol: 0,
    };
    let mut stack = vec![0usize];
    let mut at = 0;
    while at < data.len() {
        let op = data[at];
        let Some((arg, proto)) = opcode(op).filter(|&(_, p)| p <= max_protocol) else {
            w.end = End::Invalid;
            return w;
        };
        if strict && !apply(&mut stack, effect(op)) {
            w.end = End::Invalid;
            return w;
        }
        if op == b'.' {
            w.ops += 1;
            w.end = if strict && stack != [1] {
                End::Invalid
            } else {
                End::Stop
            };
            return w;
        }
        at += 1;
        let next = match arg_end(data, op, arg, at) {
            Ok(next) => next,
            Err(end) => {
                w.end = end;
                return w;
            }
        };
        w.ops += 1;
        w.protocol = w.protocol.max(proto);
        match next {
            Some(n) if n <= data.len() => at = n,
            _ => return w,
        }
    }
    w
}

/// Where the argument of `op` (starting at `at`) ends: `Ok(None)` when its length overflows.
fn arg_end(data: &[u8], op: u8, arg: Arg, at: usize) -> Result<Option<usize>, End> {
    Ok(match arg {
        Arg::None => Some(at),
        Arg::Fixed(n) => at.checked_add(n),
        Arg::Counted(w) => {
            let lenb = data.get(at..at + w).ok_or(End::OutOfData)?;
            let mut buf = [0u8; 8];
            buf[..w].copy_from_slice(lenb);
            let n = u64::from_le_bytes(buf);
            // BINSTRING and LONG4 lengths are signed.
            if (op == b'T' || op == 0x8b) && n > i32::MAX as u64 {
                return Err(End::Invalid);
            }
            usize::try_from(n)
                .ok()
                .and_then(|n| (at + w).checked_add(n))
        }
        Arg::Line(rule) => match line(data, at) {
            LineEnd::At(end) if line_ok(rule, &data[at..end]) => Some(end + 1),
            LineEnd::At(_) | LineEnd::TooLong => return Err(End::Invalid),
            LineEnd::OutOfData => return Err(End::OutOfData),
        },
        Arg::TwoNames => {
            let mut from = at;
            for _ in 0..2 {
                match line(data, from) {
                    LineEnd::At(end) if dotted_name(&data[from..end]) => from = end + 1,
                    LineEnd::OutOfData => return Err(End::OutOfData),
                    _ => return Err(End::Invalid),
                }
            }
            Some(from)
        }
    })
}

enum LineEnd {
    At(usize),
    TooLong,
    OutOfData,
}

/// Finds the newline ending the line at `from` (lines longer than 64 KiB are refused).
fn line(data: &[u8], from: usize) -> LineEnd {
    let window = &data[from..data.len().min(from + 65536)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => LineEnd::At(from + i),
        None if from + 65536 <= data.len() => LineEnd::TooLong,
        None => LineEnd::OutOfData,
    }
}

fn line_ok(rule: LineRule, s: &[u8]) -> bool {
    match rule {
        LineRule::Int => {
            let d = s.strip_prefix(b"-").unwrap_or(s);
            let d = d.strip_suffix(b"L").unwrap_or(d);
            !d.is_empty() && d.iter().all(u8::is_ascii_digit)
        }
        LineRule::Float => {
            !s.is_empty()
                && s.iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
        }
        LineRule::Quoted => {
            s.len() >= 2 && (s[0] == b'\'' || s[0] == b'"') && s.last() == Some(&s[0])
        }
        LineRule::Digits => !s.is_empty() && s.iter().all(u8::is_ascii_digit),
        LineRule::Any => !s.contains(&b'\r') || s.ends_with(b"\r"),
    }
}

/// A Python dotted name: identifiers separated by dots.
fn dotted_name(s: &[u8]) -> bool {
    !s.is_empty()
        && s.split(|&b| b == b'.').all(|part| {
            part.first()
                .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
                && part.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// A pickle that starts with PROTO 2..=5 followed by a valid opcode. The loader runs every
/// opcode up to the first invalid one, so one valid opcode after PROTO is enough.
fn binary_pickle(head: &[u8]) -> Option<u8> {
    if head.len() < 3 || head[0] != 0x80 || !(2..=5).contains(&head[1]) {
        return None;
    }
    (walk(&head[2..], 5, false).ops >= 1).then_some(head[1])
}

/// A protocol 0/1 pickle, judged conservatively since it can look like text: it starts with
/// MARK, EMPTY_DICT, EMPTY_LIST or GLOBAL; its opcodes and their stack effects are valid up to
/// a STOP that leaves exactly one object (or through the whole head of a longer file); and the
/// file ends with STOP when its end is known.
fn text_pickle(head: &[u8], len: u64, last: Option<u8>) -> Option<u8> {
    if !matches!(head.first(), Some(b'(' | b'}' | b']' | b'c')) {
        return None;
    }
    if last.is_some_and(|b| b != b'.') {
        return None;
    }
    let complete = head.len() as u64 >= len;
    let w = walk(head, 1, true);
    let ok = match w.end {
        End::Stop => w.ops >= 3,
        End::OutOfData => !complete && w.ops >= 8,
        End::Invalid => false,
    };
    ok.then_some(w.protocol)
}

#[cfg(test)]
mod tests;
