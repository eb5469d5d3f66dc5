//! Starts the demo binary on an ephemeral loopback port and talks HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::ImageFormat;
use image_edit_demo::edit::sample_image;

const BIN: &str = env!("CARGO_BIN_EXE_image-edit-demo");

fn example_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/image-edit/models")
}

/// A running demo with its output collected line by line.
struct Demo {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    lines: Receiver<String>,
}

fn collect(
    r: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
    tx: Option<std::sync::mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line.clone());
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    });
}

impl Demo {
    fn start(args: &[&str], env: &[(&str, &Path)]) -> Demo {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("GRADIO_SHARE")
            .env_remove("GRADIO_SERVER_NAME")
            .env_remove("GRADIO_SERVER_PORT")
            .env_remove("GRADIO_TEMP_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the demo");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = channel();
        collect(child.stdout.take().unwrap(), Arc::clone(&stdout), Some(tx));
        collect(child.stderr.take().unwrap(), Arc::clone(&stderr), None);
        Demo {
            child,
            stdout,
            stderr,
            lines,
        }
    }

    /// Waits for the stdout line that contains `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!(
            "no line with {needle:?}\nstdout: {:#?}\nstderr: {:#?}",
            self.stdout(),
            self.stderr()
        );
    }

    /// The address from `Running on local URL:  http://ADDR`.
    fn address(&self) -> String {
        let line = self.wait_for("Running on local URL:");
        line.rsplit("http://").next().unwrap().trim().to_owned()
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let t = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, t.elapsed());
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the demo did not exit"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`; the reply has a Content-Length.
fn http(addr: &str, method: &str, target: &str, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete reply head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = raw[split + 4..].to_vec();
    let reply = Reply {
        status,
        headers,
        body,
    };
    if let Some(len) = reply.header("Content-Length") {
        assert_eq!(len.parse::<usize>().unwrap(), reply.body.len());
    }
    reply
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    sample_image(width, height)
        .write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn serves_edits_logs_prompts_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let models = example_models();
    let mut demo = Demo::start(
        &[
            "--server-name",
            "127.0.0.1",
            "--server-port",
            "0",
            "--models",
            models.to_str().unwrap(),
        ],
        &[("TMPDIR", tmp.path())],
    );
    let addr = demo.address();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let r = http(&addr, "GET", "/healthz", b"");
    assert_eq!((r.status, r.body.as_slice()), (200, b"ok".as_slice()));

    let r = http(&addr, "GET", "/", b"");
    assert_eq!(r.status, 200);
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("/api/edit") && page.contains("type=\"file\""));

    let r = http(&addr, "GET", "/api/info", b"");
    assert_eq!(r.status, 200);
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let names: Vec<&str> = info["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Qwen/Qwen-Image",
            "Qwen/Qwen-Image-Edit",
            "DiffSynth-Studio/Qwen-Image-Edit-F2P"
        ]
    );
    assert!(info["models"][0]["tensors"][0]["shape"].is_array());

    let input = png(40, 30);
    let r = http(
        &addr,
        "POST",
        "/api/edit?prompt=make+it+warm&strength=1",
        &input,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("Content-Type"), Some("image/png"));
    assert_eq!(r.header("X-Edit-Plan"), Some("warm=1.00"));
    let out = image::load_from_memory_with_format(&r.body, ImageFormat::Png).unwrap();
    assert_eq!((out.width(), out.height()), (40, 30));
    assert_ne!(out.to_rgb8().into_raw(), sample_image(40, 30).into_raw());
    let edited = r.body;

    // An undecodable upload: 400 and a Python-like traceback on stderr.
    let r = http(&addr, "POST", "/api/edit?prompt=oops", b"not an image");
    assert_eq!(r.status, 400);
    let r = http(&addr, "GET", "/nope", b"");
    assert_eq!(r.status, 404);

    // The upload and its result are in $TMPDIR/gradio.
    let files = files_under(tmp.path());
    let upload = files
        .iter()
        .find(|p| p.file_name().unwrap() == "upload.png")
        .unwrap_or_else(|| panic!("no upload in {files:?}"));
    assert!(upload.starts_with(tmp.path().join("gradio")));
    assert_eq!(std::fs::read(upload).unwrap(), input);
    let result = files
        .iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "png")
                && p.parent() == upload.parent()
                && *p != upload
        })
        .expect("the result is next to the upload");
    assert_eq!(std::fs::read(result).unwrap(), edited);

    demo.wait_for("\"GET /nope HTTP/1.1\" 404");
    let (status, took) = demo.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(1), "took {took:?} to stop");

    let stdout = demo.stdout();
    let has = |needle: &str| stdout.iter().any(|l| l.contains(needle));
    assert!(
        has("INFO:image_edit:edit request prompt='make it warm' size=40x30"),
        "{stdout:#?}"
    );
    assert!(
        has("INFO:     127.0.0.1:")
            && has("\"POST /api/edit?prompt=make+it+warm&strength=1 HTTP/1.1\" 200 OK"),
        "{stdout:#?}"
    );
    assert!(has("\"GET /healthz HTTP/1.1\" 200 OK"));
    assert!(has("Shutting down"), "{stdout:#?}");
    let stderr = demo.stderr();
    assert!(
        stderr
            .iter()
            .any(|l| l == "Traceback (most recent call last):")
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("PIL.UnidentifiedImageError: cannot identify image file")),
        "{stderr:#?}"
    );
    assert!(stderr.iter().any(|l| l.starts_with("WARNING:image_edit:")));
}

#[test]
fn share_prints_a_public_url_and_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let models = example_models();
    let mut demo = Demo::start(
        &["--server-port", "0", "--models", models.to_str().unwrap()],
        &[("TMPDIR", tmp.path()), ("GRADIO_SHARE", Path::new("True"))],
    );
    let line = demo.wait_for("Running on public URL:");
    assert!(
        line.contains("https://") && line.ends_with(".gradio.live"),
        "{line}"
    );
    let (status, _) = demo.terminate();
    assert!(status.success());
    assert!(
        demo.stderr()
            .iter()
            .any(|l| l.starts_with("WARNING:image_edit:share=True")),
        "{:#?}",
        demo.stderr()
    );
}

fn run_to_end(models: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["--server-port", "0", "--models", models.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_model_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_end(dir.path());
    assert_eq!(code, 1);
    let want = dir.path().join("Qwen/Qwen-Image/config.json");
    assert!(
        stderr.contains(&format!("{}: file not found", want.display())),
        "{stderr}"
    );

    // With everything but the adapter present, the adapter is named.
    image_edit_demo::generate::write_all(dir.path()).unwrap();
    let adapter = dir
        .path()
        .join("DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.safetensors");
    std::fs::remove_file(&adapter).unwrap();
    let (code, stderr) = run_to_end(dir.path());
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{}: file not found", adapter.display())),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_model_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    image_edit_demo::generate::write_all(dir.path()).unwrap();
    let edit = dir
        .path()
        .join("Qwen/Qwen-Image-Edit/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&edit).unwrap();
    std::fs::write(&edit, &bytes[..bytes.len() / 2]).unwrap();
    let (code, stderr) = run_to_end(dir.path());
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{}: not a valid safetensors file", edit.display())),
        "{stderr}"
    );

    // A pickle where the weights should be is refused, not run.
    std::fs::write(
        &edit,
        b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",
    )
    .unwrap();
    let (code, stderr) = run_to_end(dir.path());
    assert_eq!(code, 1);
    assert!(stderr.contains("not a valid safetensors file"), "{stderr}");
}
