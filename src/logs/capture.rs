//! Capture: one pipe for the service's stdout and stderr, drained by a thread into the log file
//! (and, for `warden run`, warden's own stdout). The file is opened by warden, append-only,
//! owned by the account and its group with the policy's mode.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// A running capture. Each service start gets a fresh pipe from [`Capture::stdio`].
pub struct Capture {
    file: std::sync::Arc<Mutex<File>>,
    echo: bool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Capture {
    /// Opens (creating if needed) the log file.
    pub fn start(
        path: &Path,
        owner: Option<(u32, u32)>,
        mode: u32,
        echo: bool,
    ) -> io::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        Ok(Self {
            file: std::sync::Arc::new(Mutex::new(file)),
            echo,
            threads: Mutex::new(Vec::new()),
        })
    }

    /// A new pipe for one service process: (stdout, stderr), both its write end.
    pub fn stdio(&self) -> io::Result<(Stdio, Stdio)> {
        let (mut reader, writer) = io::pipe()?;
        let writer2 = writer.try_clone()?;
        let file = self.file.clone();
        let echo = self.echo;
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Ok(mut f) = file.lock() {
                            let _ = f.write_all(&buf[..n]);
                        }
                        if echo {
                            let _ = io::stdout().lock().write_all(&buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        if let Ok(mut t) = self.threads.lock() {
            t.retain(|h| !h.is_finished());
            t.push(handle);
        }
        Ok((Stdio::from(writer), Stdio::from(writer2)))
    }
}

impl Drop for Capture {
    /// Drains what the service wrote before it exited. A process that escaped the process group
    /// and still holds the pipe cannot keep warden from exiting: the wait is bounded.
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        if let Ok(mut t) = self.threads.lock() {
            while t.iter().any(|h| !h.is_finished()) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            for h in t.drain(..).filter(JoinHandle::is_finished) {
                let _ = h.join();
            }
        }
    }
}
