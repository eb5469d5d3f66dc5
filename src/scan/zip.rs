//! A lenient zip reader: it accepts what PyTorch's reader (miniz) accepts — bad CRCs, odd flag
//! bits, a local header name that differs from the central directory's — reports each of those
//! as an anomaly, and reads the members anyway.

use std::io::Read;

use super::finding::{Finding, Severity};

/// One member, as the central directory describes it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The central directory name (what PyTorch and zipfile look members up by).
    pub name: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    pub crc: u32,
    pub compressed: u64,
    pub size: u64,
    /// Offset of the local header.
    pub local: u64,
    /// Offset of the member's data (after the local header, from its own lengths).
    pub data: u64,
}

impl Entry {
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A parsed archive: the members and what was odd about it.
#[derive(Debug, Default)]
pub struct Archive {
    pub entries: Vec<Entry>,
    pub anomalies: Vec<Finding>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn anomaly(sev: Severity, rule: &'static str, msg: String, member: Option<&Entry>) -> Finding {
    let mut f = Finding::new(sev, rule, msg);
    if let Some(e) = member {
        f.member = Some(e.name_lossy());
        f.offset = Some(e.local);
    }
    f
}

/// Reads the central directory of `data`. `Err` when there is no usable central directory.
pub fn read(data: &[u8]) -> Result<Archive, String> {
    let len = data.len();
    let tail_from = len.saturating_sub(22 + 0xffff);
    let eocd = (tail_from..len.saturating_sub(21))
        .rev()
        .find(|&i| data[i..].starts_with(b"PK\x05\x06"))
        .ok_or("no end of central directory record")?;
    let mut ar = Archive::default();
    let (count, size, offset) = (
        u16_at(data, eocd + 10).ok_or("truncated end record")?,
        u32_at(data, eocd + 12).ok_or("truncated end record")?,
        u32_at(data, eocd + 16).ok_or("truncated end record")?,
    );
    let (mut count, mut size, mut offset) = (u64::from(count), u64::from(size), u64::from(offset));
    let comment = u16_at(data, eocd + 20).unwrap_or(0) as usize;
    if eocd + 22 + comment != len {
        ar.anomalies.push(anomaly(
            Severity::Low,
            "zip/trailing-data",
            format!(
                "{} bytes follow the end of central directory record and its comment",
                len.saturating_sub(eocd + 22 + comment)
            ),
            None,
        ));
    }
    if count == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff {
        let loc = eocd.checked_sub(20).ok_or("zip64 locator missing")?;
        if !data[loc..].starts_with(b"PK\x06\x07") {
            return Err("zip64 locator missing".into());
        }
        let at = u64_at(data, loc + 8).ok_or("truncated zip64 locator")?;
        let at = usize::try_from(at).map_err(|_| "zip64 record out of range")?;
        if !data.get(at..).is_some_and(|r| r.starts_with(b"PK\x06\x06")) {
            return Err("zip64 end record missing".into());
        }
        count = u64_at(data, at + 32).ok_or("truncated zip64 end record")?;
        size = u64_at(data, at + 40).ok_or("truncated zip64 end record")?;
        offset = u64_at(data, at + 48).ok_or("truncated zip64 end record")?;
    }
    let cd_start = usize::try_from(offset).map_err(|_| "central directory out of range")?;
    let cd_end = offset
        .checked_add(size)
        .and_then(|e| usize::try_from(e).ok())
        .filter(|&e| e <= len)
        .ok_or("central directory runs past the end of the data")?;
    let cd = &data[cd_start..cd_end];
    let mut at = 0usize;
    while cd.get(at..).is_some_and(|r| r.starts_with(b"PK\x01\x02")) {
        let field = |o: usize| u16_at(cd, at + o).ok_or("truncated central directory entry");
        let flags = field(8)?;
        let method = field(10)?;
        let crc = u32_at(cd, at + 16).ok_or("truncated central directory entry")?;
        let mut compressed = u64::from(u32_at(cd, at + 20).ok_or("truncated entry")?);
        let mut size = u64::from(u32_at(cd, at + 24).ok_or("truncated entry")?);
        let n = usize::from(field(28)?);
        let extra = usize::from(field(30)?);
        let comment = usize::from(field(32)?);
        let mut local = u64::from(u32_at(cd, at + 42).ok_or("truncated entry")?);
        let name = cd
            .get(at + 46..at + 46 + n)
            .ok_or("truncated central directory name")?
            .to_vec();
        let extra_bytes = cd
            .get(at + 46 + n..at + 46 + n + extra)
            .ok_or("truncated central directory extra field")?;
        // zip64 extended information: the fields that are 0xffffffff, in order.
        let mut e = 0;
        while e + 4 <= extra_bytes.len() {
            let id = u16_at(extra_bytes, e).unwrap_or(0);
            let l = usize::from(u16_at(extra_bytes, e + 2).unwrap_or(0));
            let body = extra_bytes.get(e + 4..e + 4 + l).unwrap_or(&[]);
            if id == 1 {
                let mut p = 0;
                for v in [&mut size, &mut compressed, &mut local] {
                    if *v == 0xffff_ffff {
                        if let Some(x) = u64_at(body, p) {
                            *v = x;
                        }
                        p += 8;
                    }
                }
            }
            e += 4 + l;
        }
        at += 46 + n + extra + comment;
        let mut entry = Entry {
            name,
            method,
            flags,
            crc,
            compressed,
            size,
            local,
            data: 0,
        };
        // The local header: its own name and extra lengths place the data, as miniz does.
        let lh = usize::try_from(local).ok().and_then(|l| data.get(l..));
        match lh {
            Some(h) if h.starts_with(b"PK\x03\x04") && h.len() >= 30 => {
                let ln = usize::from(u16_at(h, 26).unwrap_or(0));
                let le = usize::from(u16_at(h, 28).unwrap_or(0));
                entry.data = local + 30 + ln as u64 + le as u64;
                let lname = h.get(30..30 + ln).unwrap_or(&[]);
                if lname != entry.name.as_slice() {
                    ar.anomalies.push(anomaly(
                        Severity::Low,
                        "zip/name-mismatch",
                        format!(
                            "the local header names this member {:?}: Python's zipfile refuses it, PyTorch loads it",
                            String::from_utf8_lossy(lname)
                        ),
                        Some(&entry),
                    ));
                }
                let lflags = u16_at(h, 6).unwrap_or(0);
                if lflags & 0x61 != flags & 0x61 {
                    ar.anomalies.push(anomaly(
                        Severity::Low,
                        "zip/flags",
                        format!("local flags {lflags:#06x} differ from central flags {flags:#06x}"),
                        Some(&entry),
                    ));
                }
            }
            _ => {
                ar.anomalies.push(anomaly(
                    Severity::Medium,
                    "zip/malformed",
                    "the member's local header is missing or out of range: it cannot be read"
                        .into(),
                    Some(&entry),
                ));
                entry.data = u64::MAX;
            }
        }
        if flags & 0x61 != 0 {
            ar.anomalies.push(anomaly(
                Severity::Low,
                "zip/flags",
                format!(
                    "general purpose flags {flags:#06x} (encrypted/patched/strong-encryption bits): Python's zipfile refuses them, PyTorch reads the member as is"
                ),
                Some(&entry),
            ));
        }
        ar.entries.push(entry);
        if ar.entries.len() as u64 > count.max(1) * 2 + 65536 {
            return Err("central directory has far more entries than it declares".into());
        }
    }
    if ar.entries.len() as u64 != count {
        ar.anomalies.push(anomaly(
            Severity::Low,
            "zip/count",
            format!(
                "the end record declares {count} members, the central directory holds {}",
                ar.entries.len()
            ),
            None,
        ));
    }
    // Duplicate names: which one a loader takes is up to its lookup.
    let mut names: Vec<(Vec<u8>, usize)> = ar
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.to_ascii_lowercase(), i))
        .collect();
    names.sort();
    for w in names.windows(2) {
        if w[0].0 == w[1].0 {
            let e = &ar.entries[w[1].1];
            ar.anomalies.push(anomaly(
                Severity::Medium,
                "zip/duplicate-name",
                "more than one member has this name (compared case-insensitively, as PyTorch does): which one loads depends on the reader".into(),
                Some(e),
            ));
        }
    }
    // Overlapping members.
    let mut spans: Vec<(u64, u64, usize)> = ar
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.data != u64::MAX)
        .map(|(i, e)| (e.local, e.data.saturating_add(e.compressed), i))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            let e = &ar.entries[w[1].2];
            ar.anomalies.push(anomaly(
                Severity::Medium,
                "zip/overlap",
                "this member's data overlaps another member's".into(),
                Some(e),
            ));
        }
    }
    Ok(ar)
}

/// A member's content.
pub enum Content<'a> {
    /// Stored: a slice of the archive.
    Borrowed(&'a [u8]),
    /// Deflated: decompressed into memory.
    Owned(Vec<u8>),
}

impl std::ops::Deref for Content<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Content::Borrowed(b) => b,
            Content::Owned(v) => v,
        }
    }
}

/// Why a member could not be read.
#[derive(Debug)]
pub enum ReadError {
    Unsupported(u16),
    OutOfRange,
    TooLarge(u64),
    Corrupt(String),
}

/// Reads a member's content (at most `limit` bytes decompressed).
pub fn content<'a>(data: &'a [u8], e: &Entry, limit: u64) -> Result<Content<'a>, ReadError> {
    let start = usize::try_from(e.data).map_err(|_| ReadError::OutOfRange)?;
    let end = e
        .data
        .checked_add(e.compressed)
        .and_then(|x| usize::try_from(x).ok())
        .filter(|&x| x <= data.len())
        .ok_or(ReadError::OutOfRange)?;
    let raw = &data[start..end];
    match e.method {
        0 => Ok(Content::Borrowed(raw)),
        8 => {
            let cap = e.size.min(limit);
            let mut out = Vec::with_capacity(usize::try_from(cap.min(64 << 20)).unwrap_or(0));
            let mut dec = flate2::read::DeflateDecoder::new(raw).take(limit.saturating_add(1));
            dec.read_to_end(&mut out)
                .map_err(|err| ReadError::Corrupt(err.to_string()))?;
            if out.len() as u64 > limit {
                return Err(ReadError::TooLarge(limit));
            }
            Ok(Content::Owned(out))
        }
        m => Err(ReadError::Unsupported(m)),
    }
}
