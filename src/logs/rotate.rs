//! The log file and its rotation, done by warden itself between whole lines: daily or hourly
//! and/or by size, `keep` rotated files, gzip with an optional delay of one rotation, never an
//! empty file. Files are created with the policy's mode, owned by the service's account and
//! group. State comes from the files themselves (names and mtimes), so a restart goes on where
//! the last run stopped. A full disk never stops the stream: what cannot be written is counted.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::policy::schema::Every;

/// When and how files rotate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub every: Every,
    pub size: Option<u64>,
    pub keep: u32,
    pub compress: bool,
    pub delay_compress: bool,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            every: Every::Daily,
            size: None,
            keep: 7,
            compress: true,
            delay_compress: true,
        }
    }
}

/// Where a log goes: `DIR/NAME.log`, rotated to `DIR/NAME.log.STAMP.SEQ[.gz]`.
#[derive(Debug, Clone)]
pub struct Target {
    pub dir: PathBuf,
    pub name: String,
    pub mode: u32,
    /// uid and gid of the files, when warden runs as root.
    pub owner: Option<(u32, u32)>,
}

impl Target {
    pub fn current(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }
}

/// A rotated file of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub path: PathBuf,
    pub seq: u64,
    pub compressed: bool,
}

/// The rotated files of `NAME` in `dir`, oldest first. A file present both plain and
/// compressed (a compression cut short) is listed once, as the complete one.
pub fn rotated(dir: &Path, name: &str) -> io::Result<Vec<Rotated>> {
    let prefix = format!("{name}.log.");
    let mut v: Vec<Rotated> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let fname = e.file_name();
        let Some(f) = fname.to_str() else { continue };
        let Some(rest) = f.strip_prefix(&prefix) else {
            continue;
        };
        let (rest, compressed) = match rest.strip_suffix(".gz") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let Some((stamp, seq)) = rest.rsplit_once('.') else {
            continue;
        };
        let Ok(seq) = seq.parse::<u64>() else {
            continue;
        };
        if stamp.len() != 15 || !e.file_type()?.is_file() {
            continue;
        }
        v.push(Rotated {
            path: e.path(),
            seq,
            compressed,
        });
    }
    v.sort_by_key(|r| (r.seq, !r.compressed));
    v.dedup_by_key(|r| r.seq);
    Ok(v)
}

/// `YYYYmmdd-HHMMSS` (UTC) of a unix time.
pub fn stamp(secs: u64) -> String {
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}{mo:02}{d:02}-{:02}{:02}{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn period(every: Every, secs: u64) -> u64 {
    match every {
        Every::Daily => secs / 86_400,
        Every::Hourly => secs / 3600,
        Every::Never => 0,
    }
}

fn open_log(path: &Path, t: &Target) -> io::Result<File> {
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(t.mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    if let Some((uid, gid)) = t.owner {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    }
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(t.mode))?;
    Ok(f)
}

/// Serialises renames and removals between the writer and the compressor.
type FileOps = Arc<Mutex<()>>;

/// The background gzip worker: one file at a time, in the order given.
#[derive(Debug)]
struct Compressor {
    tx: Option<Sender<PathBuf>>,
    handle: Option<JoinHandle<()>>,
}

impl Compressor {
    fn start(t: Target, ops: FileOps) -> Self {
        let (tx, rx): (Sender<PathBuf>, Receiver<PathBuf>) = channel();
        let handle = std::thread::Builder::new()
            .name("warden-gzip".into())
            .spawn(move || {
                for path in rx {
                    if let Err(e) = compress(&path, &t, &ops) {
                        eprintln!("warden: cannot compress {}: {e}", crate::term::path(&path));
                    }
                }
            })
            .ok();
        Self {
            tx: Some(tx),
            handle,
        }
    }

    fn send(&self, path: PathBuf) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(path);
        }
    }

    /// Waits for queued compressions, at most `limit`; what is left is redone at the next start.
    fn finish(&mut self, limit: Duration) {
        self.tx = None;
        let end = std::time::Instant::now() + limit;
        if let Some(h) = self.handle.take() {
            while !h.is_finished() && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

/// `X` -> `X.gz` (through `X.gz.tmp`), with X's mode and owner; then X is removed.
fn compress(path: &Path, t: &Target, ops: &FileOps) -> io::Result<()> {
    let mut src = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let gz = with_suffix(path, ".gz");
    let tmp = with_suffix(path, ".gz.tmp");
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(t.mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    if let Some((uid, gid)) = t.owner {
        std::os::unix::fs::fchown(&out, Some(uid), Some(gid))?;
    }
    let mut enc =
        flate2::write::GzEncoder::new(io::BufWriter::new(out), flate2::Compression::new(6));
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        enc.write_all(&buf[..n])?;
    }
    let out = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
    out.sync_data()?;
    drop(out);
    let _guard = ops
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !path.exists() {
        // Removed meanwhile (keep).
        let _ = std::fs::remove_file(&tmp);
        return Ok(());
    }
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(path)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The open log: appends whole lines, rotates between them.
#[derive(Debug)]
pub struct Writer {
    t: Target,
    rot: Rotation,
    file: Option<File>,
    size: u64,
    period: u64,
    next_seq: u64,
    dropped: Arc<AtomicU64>,
    /// Whether the last write failed (the next success says so once).
    failing: bool,
    ops: FileOps,
    compressor: Compressor,
}

impl Writer {
    /// Opens `DIR/NAME.log`, finishing what an earlier run left: compressions cut short,
    /// a current file from an earlier period, rotated files beyond `keep`.
    pub fn open(t: Target, rot: Rotation) -> io::Result<Self> {
        std::fs::create_dir_all(&t.dir)?;
        // Leftovers of a compression cut short.
        for e in std::fs::read_dir(&t.dir)? {
            let p = e?.path();
            if p.file_name().and_then(|f| f.to_str()).is_some_and(|f| {
                f.starts_with(&format!("{}.log.", t.name)) && f.ends_with(".gz.tmp")
            }) {
                let _ = std::fs::remove_file(&p);
            }
        }
        let existing = rotated(&t.dir, &t.name)?;
        for r in &existing {
            let plain = if r.compressed {
                r.path.with_extension("")
            } else {
                continue;
            };
            // Both present: the .gz was complete when renamed.
            let _ = std::fs::remove_file(plain);
        }
        let next_seq = existing.last().map_or(1, |r| r.seq + 1);
        let path = t.current();
        let file = open_log(&path, &t)?;
        let meta = file.metadata()?;
        let now = unix_now();
        let ops: FileOps = Arc::default();
        let compressor = Compressor::start(t.clone(), ops.clone());
        let mut w = Self {
            period: period(rot.every, now),
            size: meta.len(),
            file: Some(file),
            next_seq,
            dropped: Arc::default(),
            failing: false,
            ops,
            compressor,
            t,
            rot,
        };
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        if w.size > 0 && period(w.rot.every, mtime) < w.period {
            w.rotate()?;
        }
        w.queue_compression(false);
        w.enforce_keep();
        Ok(w)
    }

    /// The counter of bytes that could not be written.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    pub fn target(&self) -> &Target {
        &self.t
    }

    /// Appends whole lines, rotating first when the period changed or the size would be
    /// exceeded (a file holds at least one line, so a line longer than the size limit still
    /// goes somewhere whole).
    pub fn write(&mut self, mut buf: &[u8]) {
        if buf.is_empty() {
            return;
        }
        if self.rot.every != Every::Never {
            let p = period(self.rot.every, unix_now());
            if p != self.period {
                if self.size > 0 {
                    self.rotate_or_count();
                }
                self.period = p;
            }
        }
        if let Some(limit) = self.rot.size {
            while self.size + buf.len() as u64 > limit {
                let room = limit.saturating_sub(self.size) as usize;
                let cut = memchr::memrchr(b'\n', &buf[..room.min(buf.len())]).map(|i| i + 1);
                match cut {
                    Some(c) => {
                        self.append(&buf[..c]);
                        buf = &buf[c..];
                    }
                    None if self.size == 0 => {
                        // One line longer than the limit: it gets a file of its own.
                        let c = memchr::memchr(b'\n', buf).map_or(buf.len(), |i| i + 1);
                        self.append(&buf[..c]);
                        buf = &buf[c..];
                    }
                    None => {}
                }
                if self.size > 0 {
                    self.rotate_or_count();
                }
                if buf.is_empty() {
                    return;
                }
            }
        }
        self.append(buf);
    }

    fn rotate_or_count(&mut self) {
        if let Err(e) = self.rotate() {
            self.report_failure(&e);
        }
    }

    /// Writes whole lines; a write cut short (a full disk) is trimmed back to the last whole
    /// line, and what was not written is counted.
    fn append(&mut self, buf: &[u8]) {
        if self.file.is_none() {
            match open_log(&self.t.current(), &self.t) {
                Ok(f) => {
                    self.size = f.metadata().map_or(0, |m| m.len());
                    self.file = Some(f);
                }
                Err(e) => {
                    self.dropped.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    self.report_failure(&e);
                    return;
                }
            }
        }
        let Some(f) = self.file.as_mut() else { return };
        let mut written = 0;
        let err = loop {
            if written == buf.len() {
                break None;
            }
            match f.write(&buf[written..]) {
                Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let Some(e) = err else {
            self.size += written as u64;
            if self.failing {
                self.failing = false;
                eprintln!(
                    "warden: writing {} again ({} bytes could not be written)",
                    crate::term::path(&self.t.current()),
                    self.dropped.load(Ordering::Relaxed)
                );
            }
            return;
        };
        // Keep the file made of whole lines.
        let whole = memchr::memrchr(b'\n', &buf[..written]).map_or(0, |i| i + 1);
        if whole < written {
            let _ = f.set_len(self.size + whole as u64);
        }
        self.size += whole as u64;
        self.dropped
            .fetch_add((buf.len() - whole) as u64, Ordering::Relaxed);
        self.report_failure(&e);
    }

    fn report_failure(&mut self, e: &io::Error) {
        if !self.failing {
            self.failing = true;
            eprintln!(
                "warden: cannot write {}: {e}; dropping log lines until it can (counted in `warden status`)",
                crate::term::path(&self.t.current())
            );
        }
    }

    /// Rotates now (between lines): the current file gets its rotated name and a new one is
    /// opened. An empty file is not rotated: `Ok(false)`.
    pub fn rotate(&mut self) -> io::Result<bool> {
        if self.size == 0 {
            return Ok(false);
        }
        let now = unix_now();
        let to = self.t.dir.join(format!(
            "{}.log.{}.{}",
            self.t.name,
            stamp(now),
            self.next_seq
        ));
        {
            let _g = self
                .ops
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::fs::rename(self.t.current(), &to)?;
        }
        self.next_seq += 1;
        self.file = None;
        self.size = 0;
        match open_log(&self.t.current(), &self.t) {
            Ok(f) => self.file = Some(f),
            Err(e) => self.report_failure(&e),
        }
        self.queue_compression(true);
        self.enforce_keep();
        Ok(true)
    }

    /// Queues the rotated files still plain, but the newest when compression is delayed.
    fn queue_compression(&self, _just_rotated: bool) {
        if !self.rot.compress {
            return;
        }
        let Ok(all) = rotated(&self.t.dir, &self.t.name) else {
            return;
        };
        let plain: Vec<&Rotated> = all.iter().filter(|r| !r.compressed).collect();
        let newest = all.last().map(|r| r.seq);
        for r in plain {
            if self.rot.delay_compress && Some(r.seq) == newest {
                continue;
            }
            self.compressor.send(r.path.clone());
        }
    }

    fn enforce_keep(&self) {
        let Ok(all) = rotated(&self.t.dir, &self.t.name) else {
            return;
        };
        let excess = all.len().saturating_sub(self.rot.keep as usize);
        let _g = self
            .ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in &all[..excess] {
            let plain = if r.compressed {
                r.path.with_extension("")
            } else {
                r.path.clone()
            };
            let _ = std::fs::remove_file(&plain);
            let _ = std::fs::remove_file(with_suffix(&plain, ".gz"));
        }
    }

    /// Waits (bounded) for queued compressions.
    pub fn finish(&mut self, limit: Duration) {
        if let Some(f) = self.file.as_ref() {
            let _ = f.sync_data();
        }
        self.compressor.finish(limit);
    }

    #[cfg(test)]
    fn with_file(&mut self, f: File) {
        self.file = Some(f);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.compressor.finish(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(d: &Path) -> Target {
        Target {
            dir: d.to_owned(),
            name: "svc".into(),
            mode: 0o640,
            owner: None,
        }
    }

    fn read_all(d: &Path) -> String {
        let mut s = String::new();
        for r in rotated(d, "svc").unwrap() {
            let mut f = File::open(&r.path).unwrap();
            if r.compressed {
                flate2::read::GzDecoder::new(f)
                    .read_to_string(&mut s)
                    .unwrap();
            } else {
                f.read_to_string(&mut s).unwrap();
            }
        }
        s + &std::fs::read_to_string(d.join("svc.log")).unwrap_or_default()
    }

    #[test]
    fn dates() {
        assert_eq!(stamp(0), "19700101-000000");
        assert_eq!(stamp(1_747_050_180), "20250512-114300");
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn rotates_by_size_between_lines_keeps_and_compresses() {
        let d = tempfile::tempdir().unwrap();
        let rot = Rotation {
            every: Every::Never,
            size: Some(100),
            keep: 3,
            compress: true,
            delay_compress: true,
        };
        let mut w = Writer::open(target(d.path()), rot.clone()).unwrap();
        let mut all = String::new();
        for i in 0..40 {
            let line = format!("line {i:03} {}\n", "x".repeat(i % 7 * 5));
            all.push_str(&line);
            w.write(line.as_bytes());
        }
        w.finish(Duration::from_secs(10));
        drop(w);
        let r = rotated(d.path(), "svc").unwrap();
        assert_eq!(r.len(), 3, "{r:?}");
        // The newest rotated file waits one rotation before it is compressed.
        assert!(
            r[0].compressed && r[1].compressed && !r[2].compressed,
            "{r:?}"
        );
        for f in &r {
            let m = std::fs::metadata(&f.path).unwrap();
            assert_eq!(m.mode() & 0o777, 0o640);
            if !f.compressed {
                assert!(m.len() <= 100);
                assert!(std::fs::read_to_string(&f.path).unwrap().ends_with('\n'));
            }
        }
        // What is kept is the tail of what was written, in order, in whole lines.
        let kept = read_all(d.path());
        assert!(all.ends_with(&kept), "{kept}");
        // A restart goes on numbering after the last file and compresses what is left.
        let mut w = Writer::open(
            target(d.path()),
            Rotation {
                delay_compress: false,
                ..rot
            },
        )
        .unwrap();
        w.rotate().unwrap();
        w.finish(Duration::from_secs(10));
        let r2 = rotated(d.path(), "svc").unwrap();
        assert!(r2.last().unwrap().seq > r.last().unwrap().seq);
        assert!(r2.iter().all(|r| r.compressed), "{r2:?}");
    }

    #[test]
    fn a_file_from_an_earlier_day_is_rotated_at_start() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("svc.log"), "old line\n").unwrap();
        let f = File::options()
            .write(true)
            .open(d.path().join("svc.log"))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(2 * 86_400))
            .unwrap();
        drop(f);
        let mut w = Writer::open(target(d.path()), Rotation::default()).unwrap();
        w.write(b"new line\n");
        drop(w);
        assert_eq!(rotated(d.path(), "svc").unwrap().len(), 1);
        assert_eq!(
            std::fs::read_to_string(d.path().join("svc.log")).unwrap(),
            "new line\n"
        );
        // notifempty: an empty file is never rotated.
        let mut w = Writer::open(target(d.path()), Rotation::default()).unwrap();
        std::fs::write(d.path().join("svc.log"), "").unwrap();
        w.size = 0;
        w.rotate().unwrap();
        assert_eq!(rotated(d.path(), "svc").unwrap().len(), 1);
    }

    #[test]
    fn a_full_disk_is_counted_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::open(target(d.path()), Rotation::default()).unwrap();
        w.with_file(File::options().append(true).open("/dev/full").unwrap());
        w.write(b"one\ntwo\n");
        w.write(b"three\n");
        assert_eq!(w.dropped().load(Ordering::Relaxed), 14);
    }
}
