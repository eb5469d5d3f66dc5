//! The web service: a page, a health check, model information, and the edit API.

use std::io::{Cursor, Read};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tiny_http::{Header, Request, Response, Server};

use crate::cli::ServeOptions;
use crate::logging::{self, py_repr};
use crate::model::{LORA_DIR, Models};

/// The page, embedded in the binary.
pub const PAGE: &str = include_str!("page.html");
/// Largest accepted upload.
pub const MAX_UPLOAD: usize = 32 * 1024 * 1024;
/// Largest accepted image side, in pixels.
pub const MAX_SIDE: u32 = 4096;
/// Inputs with more pixels than this are processed with a warning.
const LARGE_PIXELS: u64 = 2048 * 2048;
/// Request-handling threads.
const WORKERS: usize = 4;

/// The loaded service.
pub struct App {
    pub models: Models,
    pub temp_dir: PathBuf,
    info: String,
}

impl App {
    pub fn new(models: Models, temp_dir: PathBuf) -> App {
        let info = info_json(&models).to_string();
        App {
            models,
            temp_dir,
            info,
        }
    }
}

fn info_json(m: &Models) -> serde_json::Value {
    let files: Vec<_> = m
        .files
        .iter()
        .map(|f| {
            let tensors: Vec<_> = f
                .tensors
                .iter()
                .map(|t| serde_json::json!({"name": t.name, "dtype": t.dtype, "shape": t.shape}))
                .collect();
            serde_json::json!({
                "role": f.role,
                "name": f.name,
                "file": f.path.display().to_string(),
                "bytes": f.bytes,
                "tensors": tensors,
            })
        })
        .collect();
    let ops: Vec<_> = m
        .edit
        .ops
        .iter()
        .map(|o| serde_json::json!({"name": o.name, "keywords": o.keywords}))
        .collect();
    serde_json::json!({
        "service": "image-edit-demo",
        "version": env!("CARGO_PKG_VERSION"),
        "device": "cpu",
        "models": files,
        "operations": ops,
        "lora": {"name": LORA_DIR, "r": m.lora.rank, "alpha": m.lora.alpha},
    })
}

/// A reply before it becomes a tiny_http response.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    fn json_error(status: u16, msg: &str) -> Reply {
        let body = serde_json::json!({ "error": msg }).to_string();
        Reply::new(status, "application/json", body)
    }
}

/// 64-bit FNV-1a, for content-addressed temp directories.
fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in a query string, decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (url_decode(k) == key).then(|| url_decode(v))
    })
}

/// What Python would call the exception for an I/O error, e.g.
/// `PermissionError: [Errno 13] Permission denied: '/tmp/x'`.
fn py_os_error(e: &std::io::Error, path: &Path) -> String {
    let class = match e.kind() {
        std::io::ErrorKind::PermissionDenied => "PermissionError",
        std::io::ErrorKind::NotFound => "FileNotFoundError",
        std::io::ErrorKind::AlreadyExists => "FileExistsError",
        _ => "OSError",
    };
    let errno = e.raw_os_error().unwrap_or(5);
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    format!(
        "{class}: [Errno {errno}] {text}: {}",
        py_repr(&path.display().to_string())
    )
}

/// A Python-ish object address for tracebacks.
fn fake_address(seed: &[u8]) -> String {
    format!("0x7f{:010x}", fnv64(&[seed]) & 0xff_ffff_fff0)
}

/// `POST /api/edit?prompt=...&strength=...` with the image as the body.
fn edit(app: &App, req: &mut Request, query: &str) -> Reply {
    let prompt = query_param(query, "prompt").unwrap_or_default();
    let strength = match query_param(query, "strength") {
        None => 1.0,
        Some(s) => match s.trim().parse::<f32>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                logging::warning(&format!("invalid strength {}", py_repr(&s)));
                return Reply::json_error(400, "strength must be a number");
            }
        },
    };
    if req.body_length().is_some_and(|n| n > MAX_UPLOAD) {
        logging::warning(&format!(
            "upload rejected: larger than {} MiB",
            MAX_UPLOAD >> 20
        ));
        return Reply::json_error(413, "the image is too large");
    }
    let mut body = Vec::new();
    if let Err(e) = req
        .as_reader()
        .take(MAX_UPLOAD as u64 + 1)
        .read_to_end(&mut body)
    {
        logging::warning(&format!("could not read the request body: {e}"));
        return Reply::json_error(400, "could not read the request body");
    }
    if body.len() > MAX_UPLOAD {
        logging::warning(&format!(
            "upload rejected: larger than {} MiB",
            MAX_UPLOAD >> 20
        ));
        return Reply::json_error(413, "the image is too large");
    }
    if body.is_empty() {
        logging::warning("edit request without an image");
        return Reply::json_error(400, "send the image as the request body");
    }

    let frames_load = |extra: (&'static str, u32, &'static str, String)| {
        vec![
            (
                "/app/image_edit/app.py",
                131,
                "edit",
                format!(
                    "image = load_image(await request.body(), prompt={})",
                    py_repr(&prompt)
                ),
            ),
            (
                "/app/image_edit/io.py",
                58,
                "load_image",
                "return Image.open(io.BytesIO(data)).convert(\"RGB\")".to_owned(),
            ),
            extra,
        ]
    };
    let reader = match image::ImageReader::new(Cursor::new(&body)).with_guessed_format() {
        Ok(r) => r,
        Err(e) => {
            logging::error(&format!("could not read upload: {e}"));
            return Reply::json_error(400, "cannot identify image file");
        }
    };
    let Some(format) = reader.format() else {
        logging::traceback(
            &format!("edit failed for prompt={}", py_repr(&prompt)),
            &frames_load((
                "/usr/lib/python3/dist-packages/PIL/Image.py",
                3339,
                "open",
                "raise UnidentifiedImageError(msg)".to_owned(),
            )),
            &format!(
                "PIL.UnidentifiedImageError: cannot identify image file <_io.BytesIO object at {}>",
                fake_address(&body)
            ),
        );
        return Reply::json_error(400, "cannot identify image file");
    };
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let img = match reader.decode() {
        Ok(img) => img,
        Err(e) => {
            let (exception, msg) = match &e {
                image::ImageError::Limits(_) => (
                    format!(
                        "PIL.Image.DecompressionBombError: Image exceeds the limit of {MAX_SIDE} pixels per side, could be decompression bomb DOS attack."
                    ),
                    "the image is too large",
                ),
                _ => (format!("OSError: {e}"), "cannot decode the image"),
            };
            logging::traceback(
                &format!("edit failed for prompt={}", py_repr(&prompt)),
                &frames_load((
                    "/usr/lib/python3/dist-packages/PIL/ImageFile.py",
                    300,
                    "load",
                    "raise OSError(msg)".to_owned(),
                )),
                &exception,
            );
            return Reply::json_error(400, msg);
        }
    };
    let (w, h) = (img.width(), img.height());
    logging::info(&format!(
        "edit request prompt={} size={w}x{h} strength={strength:?}",
        py_repr(&prompt)
    ));
    if prompt.trim().is_empty() {
        logging::warning("empty prompt: only the base model and the LoRA adapter apply");
    }
    if u64::from(w) * u64::from(h) > LARGE_PIXELS {
        logging::warning(&format!("large input {w}x{h}: this will be slow on CPU"));
    }

    let ext = format.extensions_str().first().copied().unwrap_or("bin");
    let dir = app.temp_dir.join(format!("{:016x}", fnv64(&[&body])));
    let upload = dir.join(format!("upload.{ext}"));
    let saved = std::fs::create_dir_all(&dir)
        .map_err(|e| (e, dir.clone()))
        .and_then(|()| std::fs::write(&upload, &body).map_err(|e| (e, upload.clone())));
    if let Err((e, path)) = saved {
        logging::traceback(
            &format!("edit failed for prompt={}", py_repr(&prompt)),
            &[
                (
                    "/app/image_edit/app.py",
                    137,
                    "edit",
                    format!("path = save_upload(image, prompt={})", py_repr(&prompt)),
                ),
                (
                    "/usr/lib/python3.11/tempfile.py",
                    559,
                    "NamedTemporaryFile",
                    "file = _io.open(dir, mode, buffering=buffering,".to_owned(),
                ),
            ],
            &py_os_error(&e, &path),
        );
        return Reply::json_error(500, "could not store the upload");
    }

    let started = Instant::now();
    let plan = app.models.plan(&prompt, strength);
    if let crate::edit::Matched::Embedding { op, score } = &plan.matched {
        logging::info(&format!(
            "no edit keyword in prompt={}; nearest operation by embedding: {op} (score {score:.2})",
            py_repr(&prompt)
        ));
    }
    let out = app.models.apply(&plan, &img);
    let mut png = Vec::new();
    if let Err(e) = out.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png) {
        logging::error(&format!("could not encode the result: {e}"));
        return Reply::json_error(500, "could not encode the result");
    }
    let result = dir.join(format!(
        "edited-{:016x}.png",
        fnv64(&[prompt.as_bytes(), &strength.to_le_bytes()])
    ));
    if let Err(e) = std::fs::write(&result, &png) {
        logging::traceback(
            &format!("could not save the result for prompt={}", py_repr(&prompt)),
            &[(
                "/app/image_edit/app.py",
                149,
                "edit",
                "result.save(out_path)".to_owned(),
            )],
            &py_os_error(&e, &result),
        );
        return Reply::json_error(500, "could not store the result");
    }
    logging::info(&format!(
        "applied {} + lora {} (r={}) in {:.1} ms; saved {}",
        plan.summary(),
        LORA_DIR,
        app.models.lora.rank,
        started.elapsed().as_secs_f64() * 1000.0,
        result.display()
    ));
    let mut reply = Reply::new(200, "image/png", png);
    reply.headers.push(("X-Edit-Plan", plan.summary()));
    reply
}

fn handle(app: &App, mut req: Request) {
    let client = req
        .remote_addr()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    let method = req.method().as_str().to_owned();
    let target = req.url().to_owned();
    let version = req.http_version().to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let reply = match (method.as_str(), path) {
        ("GET", "/") => Reply::new(200, "text/html; charset=utf-8", PAGE),
        ("GET", "/healthz") => Reply::new(200, "text/plain; charset=utf-8", "ok"),
        ("GET", "/api/info") => Reply::new(200, "application/json", app.info.as_str()),
        ("POST", "/api/edit") => edit(app, &mut req, query),
        (_, "/" | "/healthz" | "/api/info" | "/api/edit") => {
            Reply::json_error(405, "Method Not Allowed")
        }
        _ => Reply::new(404, "application/json", r#"{"detail":"Not Found"}"#),
    };
    let status = reply.status;
    let mut resp = Response::from_data(reply.body)
        .with_status_code(status)
        .with_chunked_threshold(usize::MAX);
    let headers = [("Content-Type", reply.content_type.to_owned())]
        .into_iter()
        .chain(reply.headers);
    for (k, v) in headers {
        if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    if let Err(e) = req.respond(resp) {
        logging::warning(&format!("client {client} went away: {e}"));
    }
    logging::access(&client, &method, &target, &version, status);
}

/// A random-looking share host like Gradio's (`<18 hex>.gradio.live`).
fn share_host() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = fnv64(&[&nanos.to_le_bytes(), &std::process::id().to_le_bytes()]);
    let h2 = fnv64(&[&h.to_le_bytes()]);
    format!("{h:016x}{:02x}.gradio.live", h2 & 0xff)
}

fn resolve(name: &str, port: u16) -> Result<SocketAddr, String> {
    (name, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve --server-name {name:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--server-name {name:?} resolves to no address"))
}

/// Loads the models, listens, and serves until SIGTERM or SIGINT.
pub fn run(opts: &ServeOptions) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    let pid = std::process::id();

    logging::info(&format!("loading models from {}", opts.models.display()));
    let models = Models::load(&opts.models).map_err(|e| format!("cannot load the models: {e}"))?;
    for f in &models.files {
        let what = match f.role {
            "base" => "base model",
            "edit" => "edit model",
            _ => "LoRA adapter",
        };
        logging::info(&format!(
            "loaded {what} {} from {} ({} tensors, {} bytes)",
            f.name,
            f.path.display(),
            f.tensors.len(),
            f.bytes
        ));
    }
    logging::info(&format!(
        "LoRA adapter {LORA_DIR} fused (r={}, alpha={}); {} edit operations",
        models.lora.rank,
        models.lora.alpha,
        models.edit.ops.len()
    ));
    logging::warning("CUDA is not available: running on CPU");
    if let Err(e) = std::fs::create_dir_all(&opts.temp_dir) {
        logging::warning(&format!(
            "cannot create the temp directory {}: {e}; uploads will fail",
            opts.temp_dir.display()
        ));
    }
    let app = Arc::new(App::new(models, opts.temp_dir.clone()));

    let addr = resolve(&opts.server_name, opts.server_port)?;
    let listener = TcpListener::bind(addr).map_err(|e| {
        format!(
            "[Errno {}] error while attempting to bind on address ('{}', {}): {e}",
            e.raw_os_error().unwrap_or(0),
            addr.ip(),
            addr.port()
        )
    })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let server = Arc::new(Server::from_listener(listener, None).map_err(|e| e.to_string())?);

    logging::server(&format!("Started server process [{pid}]"));
    logging::server("Waiting for application startup.");
    logging::server("Application startup complete.");
    logging::server(&format!(
        "Uvicorn running on http://{local} (Press CTRL+C to quit)"
    ));
    logging::print(&format!("* Running on local URL:  http://{local}"));
    if opts.share {
        logging::print(&format!(
            "* Running on public URL: https://{}",
            share_host()
        ));
        logging::print("");
        logging::print(
            "This share link expires in 1 week. For free permanent hosting and GPU upgrades, run `gradio deploy` from the terminal in the working directory.",
        );
        logging::warning(
            "share=True: anyone on the internet could now use this service through the public URL (this demo opens no tunnel)",
        );
    } else {
        logging::print("");
        logging::print("To create a public link, set `share=True` in `launch()`.");
    }
    if !addr.ip().is_loopback() {
        logging::warning(&format!(
            "listening on {}: reachable from other machines",
            addr.ip()
        ));
    }

    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (server, app, stop) = (Arc::clone(&server), Arc::clone(&app), Arc::clone(&stop));
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match server.recv_timeout(Duration::from_millis(100)) {
                    Ok(Some(req)) => handle(&app, req),
                    Ok(None) => {}
                    Err(e) => {
                        logging::warning(&format!("accept failed: {e}"));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }));
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    logging::server("Shutting down");
    server.unblock();
    // Requests in progress get a short grace period; the process exits after it regardless.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline && workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    logging::server(&format!("Finished server process [{pid}]"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(url_decode("make+it+warm"), "make it warm");
        assert_eq!(url_decode("caf%C3%A9%20%26%3d"), "café &=");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz%4"), "%zz%4");
        assert_eq!(
            query_param("prompt=a+b&strength=0.5", "prompt").as_deref(),
            Some("a b")
        );
        assert_eq!(
            query_param("prompt=a+b&strength=0.5", "strength").as_deref(),
            Some("0.5")
        );
        assert_eq!(query_param("prompt", "prompt").as_deref(), Some(""));
        assert_eq!(query_param("", "prompt"), None);
    }

    #[test]
    fn share_hosts_look_like_gradios() {
        let h = share_host();
        let (id, domain) = h.split_once('.').unwrap();
        assert_eq!(domain, "gradio.live");
        assert_eq!(id.len(), 18);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn os_errors_read_like_python() {
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(
            py_os_error(&e, Path::new("/srv/tmp/x")),
            "PermissionError: [Errno 13] Permission denied: '/srv/tmp/x'"
        );
    }
}
