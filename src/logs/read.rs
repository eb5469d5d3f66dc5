//! Reading a log back: its rotated files (gzip included) and the current one, oldest first,
//! optionally only the last lines or those since a time, and following the current file across
//! rotations.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Error;
use super::rotate;

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only the last N lines.
    pub lines: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<SystemTime>,
}

/// One file of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    pub compressed: bool,
}

/// The files of `DIR/NAME.log`, oldest first (the current file last).
pub fn files(dir: &Path, name: &str) -> Result<Vec<LogFile>, Error> {
    let read_err = |source| Error::Read {
        path: dir.to_owned(),
        source,
    };
    let mut v: Vec<LogFile> = match rotate::rotated(dir, name) {
        Ok(r) => r
            .into_iter()
            .map(|r| LogFile {
                path: r.path,
                compressed: r.compressed,
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(read_err(e)),
    };
    let current = dir.join(format!("{name}.log"));
    if current.is_file() {
        v.push(LogFile {
            path: current,
            compressed: false,
        });
    }
    Ok(v)
}

/// The time a line was written, from its timestamp.
pub fn line_time(line: &[u8]) -> Option<SystemTime> {
    let t = line.get(..super::TIMESTAMP_LEN)?;
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = &t[r];
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0u64, |a, b| a * 10 + u64::from(b - b'0')))
    };
    if t[4] != b'-'
        || t[7] != b'-'
        || t[10] != b'T'
        || t[13] != b':'
        || t[19] != b'.'
        || t[23] != b'Z'
    {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let days = days_from_civil(
        i64::try_from(y).ok()?,
        u32::try_from(m).ok()?,
        u32::try_from(d).ok()?,
    );
    let secs =
        u64::try_from(days).ok()? * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(num(20..23)?))
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn open(f: &LogFile) -> Result<Box<dyn BufRead>, Error> {
    let file = File::open(&f.path).map_err(|source| Error::Read {
        path: f.path.clone(),
        source,
    })?;
    Ok(if f.compressed {
        Box::new(BufReader::with_capacity(
            256 << 10,
            flate2::read::MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(BufReader::with_capacity(256 << 10, file))
    })
}

/// Every line of a file (without its newline), in order; returns how many bytes were read.
fn each_line(f: &LogFile, mut each: impl FnMut(&[u8]) -> bool) -> Result<u64, Error> {
    let mut r = open(f)?;
    let mut line = Vec::new();
    let mut total = 0u64;
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|source| Error::Read {
                path: f.path.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if !each(&line) {
            return Ok(total);
        }
    }
}

fn recent(line: &[u8], since: Option<SystemTime>) -> bool {
    since.is_none_or(|s| line_time(line).is_none_or(|t| t >= s))
}

/// The last `n` lines of a plain file that pass `since`, read backwards from its end.
fn tail_plain(
    f: &LogFile,
    n: usize,
    since: Option<SystemTime>,
) -> Result<(Vec<Vec<u8>>, Position), Error> {
    let err = |source| Error::Read {
        path: f.path.clone(),
        source,
    };
    let mut file = File::open(&f.path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    let pos = Position {
        ino: meta.ino(),
        offset: meta.len(),
    };
    let mut end = meta.len();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut first = true;
    while end > 0 && lines.len() < n {
        let start = end.saturating_sub(64 << 10);
        let mut block = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(err)?;
        file.read_exact(&mut block).map_err(err)?;
        block.extend_from_slice(&carry);
        let mut text = &block[..];
        if first && text.last() == Some(&b'\n') {
            text = &text[..text.len() - 1];
        }
        first = false;
        while let Some(i) = memchr::memrchr(b'\n', text) {
            let line = &text[i + 1..];
            if !recent(line, since) {
                lines.reverse();
                return Ok((lines, pos));
            }
            lines.push(line.to_vec());
            text = &text[..i];
            if lines.len() == n {
                lines.reverse();
                return Ok((lines, pos));
            }
        }
        carry = text.to_vec();
        end = start;
    }
    if lines.len() < n && !carry.is_empty() && recent(&carry, since) {
        lines.push(carry);
    }
    lines.reverse();
    Ok((lines, pos))
}

/// How far the current file was read: where following it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub ino: u64,
    pub offset: u64,
}

/// Calls `out` with each selected line of the log, oldest first.
/// Returns how far the current file was read, for [`follow`].
pub fn read(
    dir: &Path,
    name: &str,
    q: &Query,
    mut out: impl FnMut(&[u8]),
) -> Result<Option<Position>, Error> {
    let files = files(dir, name)?;
    let current = dir.join(format!("{name}.log"));
    let current_ino = std::fs::metadata(&current).map(|m| m.ino()).ok();
    let mut pos = None;
    // Files last written before `since` hold nothing newer.
    let files: Vec<LogFile> = files
        .into_iter()
        .filter(|f| {
            q.since.is_none_or(|s| {
                std::fs::metadata(&f.path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= s)
            })
        })
        .collect();
    let Some(n) = q.lines else {
        for f in &files {
            let read = each_line(f, |l| {
                if recent(l, q.since) {
                    out(l);
                }
                true
            })?;
            if f.path == current {
                pos = current_ino.map(|ino| Position { ino, offset: read });
            }
        }
        return Ok(pos);
    };
    // The last n: from the newest file back.
    let mut parts: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut have = 0;
    for f in files.iter().rev() {
        if have >= n {
            break;
        }
        let need = n - have;
        let lines = if f.compressed {
            let mut ring: VecDeque<Vec<u8>> = VecDeque::with_capacity(need.min(1 << 16));
            each_line(f, |l| {
                if recent(l, q.since) {
                    if ring.len() == need {
                        ring.pop_front();
                    }
                    ring.push_back(l.to_vec());
                }
                true
            })?;
            ring.into_iter().collect()
        } else {
            let (lines, p) = tail_plain(f, need, q.since)?;
            if f.path == current {
                pos = Some(p);
            }
            lines
        };
        have += lines.len();
        parts.push(lines);
    }
    for part in parts.iter().rev() {
        for l in part {
            out(l);
        }
    }
    Ok(pos)
}

/// Follows the current file from `from` (where [`read`] stopped; its end when `None`): new
/// lines as they come, across rotations (the old file is read to its end before the new one is
/// opened). Returns only on an error or when `go_on` says to stop.
pub fn follow(
    dir: &Path,
    name: &str,
    from: Option<Position>,
    mut out: impl FnMut(&[u8]),
    mut go_on: impl FnMut() -> bool,
) -> Result<(), Error> {
    let path = dir.join(format!("{name}.log"));
    let err = |source| Error::Read {
        path: path.clone(),
        source,
    };
    let mut file: Option<(File, u64)> = None;
    if let Ok(mut f) = File::open(&path) {
        let ino = f.metadata().map_err(err)?.ino();
        // A file created since `read` is read from its start.
        let at = match from {
            Some(p) if p.ino == ino => SeekFrom::Start(p.offset),
            Some(_) => SeekFrom::Start(0),
            None => SeekFrom::End(0),
        };
        f.seek(at).map_err(err)?;
        file = Some((f, ino));
    }
    let mut partial: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while go_on() {
        let mut got = false;
        if let Some((f, _)) = file.as_mut() {
            loop {
                let n = f.read(&mut buf).map_err(err)?;
                if n == 0 {
                    break;
                }
                got = true;
                partial.extend_from_slice(&buf[..n]);
                let mut at = 0;
                for nl in memchr::memchr_iter(b'\n', &partial) {
                    out(&partial[at..nl]);
                    at = nl + 1;
                }
                partial.drain(..at);
            }
        }
        // Rotated (or created): switch to the new file once the old one is drained.
        let now = std::fs::metadata(&path).map(|m| m.ino()).ok();
        if !got
            && now.is_some()
            && now != file.as_ref().map(|(_, i)| *i)
            && let Ok(f) = File::open(&path)
        {
            {
                let ino = f.metadata().map_err(err)?.ino();
                file = Some((f, ino));
                partial.clear();
                continue;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn timestamps_round_trip() {
        let t = UNIX_EPOCH + Duration::from_millis(1_747_050_180_123);
        let ts = crate::logs::timestamp(t);
        assert_eq!(&ts, b"2025-05-12T11:43:00.123Z");
        assert_eq!(line_time(b"2025-05-12T11:43:00.123Z x"), Some(t));
        assert_eq!(line_time(b"INFO: not a timestamp at all, no"), None);
    }

    fn line(secs: u64, text: &str) -> String {
        let ts = crate::logs::timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        format!("{} {text}\n", String::from_utf8_lossy(&ts))
    }

    #[test]
    fn reads_rotated_compressed_and_current_in_order() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let mut gz = flate2::write::GzEncoder::new(
            File::create(p.join("s.log.20250512-000000.1.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all((line(100, "a") + &line(200, "b")).as_bytes())
            .unwrap();
        gz.finish().unwrap();
        std::fs::write(
            p.join("s.log.20250512-000001.2"),
            line(300, "c") + &line(400, "d"),
        )
        .unwrap();
        std::fs::write(p.join("s.log"), line(500, "e") + &line(600, "f")).unwrap();
        std::fs::write(p.join("other.log"), "x\n").unwrap();
        let get = |q: Query| {
            let mut v = Vec::new();
            read(p, "s", &q, |l| {
                v.push(String::from_utf8_lossy(&l[25..]).into_owned())
            })
            .unwrap();
            v.join("")
        };
        assert_eq!(get(Query::default()), "abcdef");
        assert_eq!(
            get(Query {
                lines: Some(3),
                since: None
            }),
            "def"
        );
        assert_eq!(
            get(Query {
                lines: Some(5),
                since: None
            }),
            "bcdef"
        );
        assert_eq!(
            get(Query {
                lines: Some(50),
                since: None
            }),
            "abcdef"
        );
        assert_eq!(
            get(Query {
                lines: None,
                since: Some(UNIX_EPOCH + Duration::from_secs(250))
            }),
            "cdef"
        );
        assert_eq!(
            get(Query {
                lines: Some(10),
                since: Some(UNIX_EPOCH + Duration::from_secs(450))
            }),
            "ef"
        );
    }
}
