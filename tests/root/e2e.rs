//! End to end: real services run under warden as their account and answer HTTP on the allowed
//! port: a FastAPI app served by uvicorn and a Gradio app (from the Python environment that
//! `.ci/run` installs), and the demo image-edit service.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Deployment, TestAccount, make_traversable};

/// The Python environment with gradio, fastapi and uvicorn, readable by every account.
fn venv() -> PathBuf {
    let v = PathBuf::from(
        std::env::var("WARDEN_E2E_VENV").unwrap_or_else(|_| "/opt/warden-ci/venv".into()),
    );
    assert!(
        v.join("bin/python").exists(),
        "no Python environment at {} (set WARDEN_E2E_VENV, or run the setup step of .ci/run: \
         python3 -m venv /opt/warden-ci/venv && /opt/warden-ci/venv/bin/pip install gradio fastapi uvicorn)",
        v.display()
    );
    v
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A deployment of a Python app run as a fresh account.
struct App {
    d: Deployment,
    acct: TestAccount,
    port: u16,
}

impl App {
    fn new(tag: &str, files: &[(&str, &str)], command: &[String], ready_path: &str) -> Self {
        let acct = TestAccount::create(tag);
        let d = Deployment::empty();
        make_traversable(d.path());
        d.write("models/base/model.safetensors", b"weights");
        for (name, text) in files {
            d.write(name, text);
        }
        let port = command
            .iter()
            .find_map(|a| a.parse::<u16>().ok())
            .expect("a port in the command");
        let cmd = command
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let name = &acct.name;
        d.write(
            "warden.toml",
            format!(
                "[service]\nname = \"{name}\"\ncommand = [{cmd}]\nuser = \"{name}\"\n\
                 listen = [\"127.0.0.1:{port}\"]\n\
                 ready = {{ http = \"http://127.0.0.1:{port}{ready_path}\", timeout = \"120s\" }}\n\
                 restart = {{ policy = \"never\" }}\n\n[[tier]]\npath = \"models\"\n"
            ),
        );
        for p in ["models", "models/base"] {
            make_traversable(&d.path().join(p));
        }
        // Runs verify the weights against the manifest before every start.
        d.warden(&["seal"]).assert().success();
        Self { d, acct, port }
    }

    fn root(&self) -> PathBuf {
        self.d.path().canonicalize().unwrap()
    }

    fn up(&self) {
        let out = self.d.warden(&["up"]).output().unwrap();
        assert!(
            out.status.success(),
            "warden up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn status(&self) -> serde_json::Value {
        self.d.status_json()
    }

    /// Checks that the service runs as the account and listens exactly where allowed.
    fn assert_running_as_account(&self) {
        let st = self.status();
        assert_eq!(st["state"], "running", "{st}");
        assert_eq!(st["uid"], self.acct.uid(), "{st}");
        let svc = st["service_pid"].as_i64().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{svc}/status")).unwrap();
        let uid = self.acct.uid();
        assert!(
            status.contains(&format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}")),
            "{status}"
        );
        assert_eq!(
            st["listening"],
            serde_json::json!([format!("127.0.0.1:{}", self.port)]),
            "{st}"
        );
        assert_eq!(st["warnings"], serde_json::json!([]), "{st}");
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.d.warden(&["stop"]).output();
    }
}

const FASTAPI_APP: &str = r#"import os, tempfile
from fastapi import FastAPI

app = FastAPI()

@app.get("/")
def root():
    return {"uid": os.getuid(), "tmp": tempfile.gettempdir(), "home": os.environ.get("HOME")}
"#;

#[test]
fn fastapi_under_uvicorn_runs_as_the_account() {
    let v = venv();
    let port = free_port();
    let cmd: Vec<String> = vec![
        v.join("bin/uvicorn").to_string_lossy().into(),
        "main:app".into(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
    ];
    let app = App::new("uvicorn", &[("main.py", FASTAPI_APP)], &cmd, "/");
    app.up();
    app.assert_running_as_account();
    let body: serde_json::Value =
        serde_json::from_str(&curl(&[&format!("http://127.0.0.1:{port}/")])).unwrap();
    assert_eq!(body["uid"], app.acct.uid());
    assert_eq!(
        body["tmp"],
        app.root().join("tmp").to_string_lossy().as_ref()
    );
    app.d.warden(&["stop"]).assert().success();
    // uvicorn's access log went through warden into the log file.
    let log = std::fs::read_to_string(
        app.root()
            .join("logs")
            .join(format!("{}.log", app.acct.name)),
    )
    .unwrap();
    assert!(log.contains("GET / HTTP/1.1"), "{log}");
}

const GRADIO_APP: &str = r#"import os, sys
import gradio as gr

def size(path):
    return f"{os.path.getsize(path)} bytes at {path}"

demo = gr.Interface(fn=size, inputs=gr.File(type="filepath"), outputs="text")
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
"#;

#[test]
fn gradio_runs_as_the_account_and_uploads_land_in_the_private_temp_dir() {
    let v = venv();
    let port = free_port();
    let cmd: Vec<String> = vec![
        v.join("bin/python").to_string_lossy().into(),
        "app_gradio.py".into(),
        port.to_string(),
    ];
    let app = App::new("gradio", &[("app_gradio.py", GRADIO_APP)], &cmd, "/");
    app.up();
    app.assert_running_as_account();
    let upload = app.d.path().join("upload.txt");
    std::fs::write(&upload, "a user's private upload").unwrap();
    let out = curl(&[
        "-F",
        &format!("files=@{}", upload.display()),
        &format!("http://127.0.0.1:{port}/gradio_api/upload"),
    ]);
    let paths: Vec<String> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let tmp = app.root().join("tmp");
    assert_eq!(paths.len(), 1);
    let stored = Path::new(&paths[0]);
    assert!(
        stored.starts_with(&tmp),
        "upload stored at {} outside {}",
        stored.display(),
        tmp.display()
    );
    assert_eq!(
        std::fs::read_to_string(stored).unwrap(),
        "a user's private upload"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(stored).unwrap().uid(), app.acct.uid());
    app.d.warden(&["stop"]).assert().success();
}

/// The demo binary, built into the same target directory as warden by `cargo nextest run
/// --workspace` (or `cargo build --workspace`).
fn demo_binary() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_warden")).with_file_name("image-edit-demo");
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

#[test]
fn demo_image_edit_service_hardened_and_run_as_the_account() {
    let acct = TestAccount::reserve("demo");
    let d = Deployment::example("image-edit");
    make_traversable(d.path());
    let port = free_port();
    let name = &acct.name;
    let policy = std::fs::read_to_string(d.policy())
        .unwrap()
        .replace("7860", &port.to_string())
        .replace("name    = \"image-edit\"", &format!("name    = \"{name}\""))
        .replace("\"aiuser\"", &format!("\"{name}\""))
        .replace("\"aiusers\"", &format!("\"{name}\""));
    std::fs::write(d.policy(), policy).unwrap();
    std::fs::copy(demo_binary(), d.path().join("bin/image-edit-demo")).unwrap();
    // harden creates the account and its group; the guard `acct` deletes them at the end.
    let out = d.warden(&["harden"]).output().unwrap();
    assert!(
        out.status.success(),
        "harden: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    d.warden(&["seal"]).assert().success();
    let out = d.warden(&["up"]).output().unwrap();
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(curl(&[&format!("{url}/healthz")]), "ok");
    let input = d.path().join("input.png");
    let st = Command::new(demo_binary())
        .arg("sample-image")
        .arg(&input)
        .args(["--size", "64x48"])
        .status()
        .unwrap();
    assert!(st.success());
    let result = d.path().join("result.png");
    curl(&[
        "-f",
        "-H",
        "Content-Type: image/png",
        "--data-binary",
        &format!("@{}", input.display()),
        "-o",
        &result.to_string_lossy(),
        &format!("{url}/api/edit?prompt=make+it+warm&strength=1"),
    ]);
    let png = std::fs::read(&result).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        (&png[16..20], &png[20..24]),
        (&64u32.to_be_bytes()[..], &48u32.to_be_bytes()[..])
    );
    // The upload landed in the private temp dir, owned by the account.
    let tmp = d.path().canonicalize().unwrap().join("tmp");
    let uid = nix::unistd::User::from_name(name)
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let files: Vec<PathBuf> = walk(&tmp);
    assert!(!files.is_empty(), "no upload in {}", tmp.display());
    use std::os::unix::fs::MetadataExt;
    for f in &files {
        assert_eq!(std::fs::metadata(f).unwrap().uid(), uid, "{}", f.display());
    }
    let st = d.status_json();
    assert_eq!(st["uid"], uid);
    assert_eq!(
        st["listening"],
        serde_json::json!([format!("127.0.0.1:{port}")])
    );
    d.warden(&["stop"]).assert().success();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
