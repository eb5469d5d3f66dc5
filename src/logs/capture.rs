//! Capture: one pipe per service start carries its stdout and stderr (in the order written);
//! a thread per pipe frames the stream into lines, filters them by level, redacts them and
//! appends them, time-stamped, to the log (and, for `warden run`, the redacted lines to
//! warden's own stdout). Buffers are bounded: a read, the unfinished line (capped), and the
//! output of one read.

use std::io::{self, Read, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::frame::{Framer, Segment};
use super::level::Filter;
use super::redact::{Redactor, State};
use super::rotate::Writer;
use super::{Config, Error};

/// Appended to a piece of a line cut at the length cap.
pub const CUT_MARK: &[u8] = b" [...]";
/// Starts a piece that continues a cut line.
pub const CONTINUED_MARK: &[u8] = b"[...] ";

/// How much one read takes from the pipe.
const READ_SIZE: usize = 256 << 10;
/// The pipe's capacity (the kernel may grant less).
const PIPE_SIZE: usize = 1 << 20;

struct Shared {
    writer: Mutex<Writer>,
    redactor: Redactor,
    cfg: Config,
    dropped: Arc<AtomicU64>,
    echo: bool,
}

/// A running capture. Each service start gets a fresh pipe from [`Capture::stdio`].
pub struct Capture {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Capture {
    /// Opens the log (creating it and its directory if needed) and builds the redactor.
    pub fn start(cfg: &Config, echo: bool) -> Result<Self, Error> {
        let redactor = Redactor::new(cfg.sets, &cfg.rules)?;
        let writer = Writer::open(cfg.target.clone(), cfg.rotation.clone()).map_err(|source| {
            Error::Open {
                path: cfg.target.current(),
                source,
            }
        })?;
        let dropped = writer.dropped();
        Ok(Self {
            shared: Arc::new(Shared {
                writer: Mutex::new(writer),
                redactor,
                cfg: cfg.clone(),
                dropped,
                echo,
            }),
            threads: Mutex::new(Vec::new()),
        })
    }

    /// A new pipe for one service process: (stdout, stderr), both its write end.
    pub fn stdio(&self) -> io::Result<(Stdio, Stdio)> {
        let (reader, writer) = io::pipe()?;
        let _ = rustix::pipe::fcntl_setpipe_size(&reader, PIPE_SIZE);
        let writer2 = writer.try_clone()?;
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name("warden-logs".into())
            .spawn(move || Stream::new(&shared).run(reader))?;
        if let Ok(mut t) = self.threads.lock() {
            t.retain(|h| !h.is_finished());
            t.push(handle);
        }
        Ok((Stdio::from(writer), Stdio::from(writer2)))
    }

    /// Rotates the log now (between two lines); `Ok(false)` when it was empty.
    pub fn rotate(&self) -> io::Result<bool> {
        self.shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rotate()
    }

    /// Bytes that could not be written (a full disk) since the capture started.
    pub fn dropped_bytes(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every stream has ended, at most `limit`. Returns whether they all did.
    pub fn wait(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let done = self
                .threads
                .lock()
                .map(|t| t.iter().all(JoinHandle::is_finished))
                .unwrap_or(true);
            if done || Instant::now() >= deadline {
                return done;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Capture {
    /// Drains what the service wrote before it exited. A process that escaped the process group
    /// and still holds the pipe cannot keep warden from exiting: the wait is bounded.
    fn drop(&mut self) {
        self.wait(Duration::from_secs(2));
        if let Ok(mut t) = self.threads.lock() {
            for h in t.drain(..).filter(JoinHandle::is_finished) {
                let _ = h.join();
            }
        }
        self.shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish(Duration::from_secs(10));
    }
}

/// One pipe's processing state.
struct Stream<'a> {
    shared: &'a Shared,
    framer: Framer,
    filter: Filter,
    keep_all: bool,
    keeping: bool,
    red_state: State,
    /// Whole kept lines waiting for the redactor.
    staging: Vec<u8>,
    /// Redacted lines.
    redacted: Vec<u8>,
    /// Time-stamped lines for the file.
    out: Vec<u8>,
}

impl<'a> Stream<'a> {
    fn new(shared: &'a Shared) -> Self {
        let filter = Filter::new(shared.cfg.level);
        Self {
            shared,
            framer: Framer::new(shared.cfg.max_line),
            keep_all: filter.keeps_all(),
            filter,
            keeping: true,
            red_state: State::default(),
            staging: Vec::with_capacity(READ_SIZE + 1024),
            redacted: Vec::with_capacity(READ_SIZE + 1024),
            out: Vec::with_capacity(READ_SIZE * 2),
        }
    }

    fn run(mut self, mut reader: io::PipeReader) {
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.chunk(&buf[..n], false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.chunk(&[], true);
    }

    /// Processes one read (or the end of the stream) and writes the result.
    fn chunk(&mut self, data: &[u8], end: bool) {
        self.staging.clear();
        self.redacted.clear();
        let Self {
            shared,
            framer,
            filter,
            keep_all,
            keeping,
            red_state,
            staging,
            redacted,
            ..
        } = self;
        let red = &shared.redactor;
        let mut emit = |seg: Segment<'_>| {
            if !seg.continued {
                *keeping = *keep_all || filter.keep(seg.text);
            }
            if !*keeping {
                return;
            }
            if seg.cut || seg.continued {
                if !staging.is_empty() {
                    red.redact(red_state, staging, redacted);
                    staging.clear();
                }
                if seg.continued {
                    redacted.extend_from_slice(CONTINUED_MARK);
                }
                red.redact_piece(red_state, seg.text, seg.cut, seg.continued, redacted);
                if seg.cut {
                    redacted.extend_from_slice(CUT_MARK);
                }
                redacted.push(b'\n');
            } else {
                staging.extend_from_slice(seg.text);
                staging.push(b'\n');
            }
        };
        framer.push(data, &mut emit);
        if end {
            framer.finish(&mut emit);
        }
        if !staging.is_empty() {
            red.redact(red_state, staging, redacted);
        }
        if self.redacted.is_empty() {
            return;
        }
        let ts = super::timestamp(SystemTime::now());
        self.out.clear();
        let mut at = 0;
        for nl in memchr::memchr_iter(b'\n', &self.redacted) {
            self.out.extend_from_slice(&ts);
            self.out.push(b' ');
            self.out.extend_from_slice(&self.redacted[at..=nl]);
            at = nl + 1;
        }
        self.shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(&self.out);
        if self.shared.echo {
            let _ = io::stdout().lock().write_all(&self.redacted);
        }
    }
}
