use super::*;

/// A deployment holding `files` (path, contents); returns the guess.
fn guess_in(files: &[(&str, &str)]) -> (tempfile::TempDir, Guess) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().canonicalize().unwrap();
    let mut venvs = Vec::new();
    for (p, text) in files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        if p.ends_with("pyvenv.cfg") {
            venvs.push(PathBuf::from(p.trim_end_matches("/pyvenv.cfg")));
        }
    }
    let g = guess(&root, &venvs);
    (d, g)
}

fn cmd(g: &Guess) -> Vec<&str> {
    g.command
        .as_ref()
        .expect("a command")
        .iter()
        .map(String::as_str)
        .collect()
}

const GRADIO: &str = "import gradio as gr\ndemo = gr.Interface(fn=f)\ndemo.launch()\n";

#[test]
fn the_reference_start_script() {
    let (_d, g) = guess_in(&[
        ("app_gradio.py", GRADIO),
        (
            "start.sh",
            "#!/bin/bash\nnohup python3 app_gradio.py --server-name 0.0.0.0 --server-port 7860 \
             --share > gradio.log 2>&1 &\necho $! > app.pid\n",
        ),
    ]);
    assert_eq!(
        cmd(&g),
        [
            "python3",
            "app_gradio.py",
            "--server-name",
            "127.0.0.1",
            "--server-port",
            "7860"
        ]
    );
    assert_eq!(g.listen, Some("127.0.0.1:7860".parse().unwrap()));
    assert_eq!(g.server, Server::Gradio);
    assert_eq!(g.source.as_deref(), Some("start.sh line 2"));
    assert!(
        g.warnings
            .iter()
            .any(|w| w.starts_with("start.sh uses --share: warden will refuse it")),
        "{:?}",
        g.warnings
    );
    assert!(g.notes.iter().any(|n| n.contains("0.0.0.0")));
}

#[test]
fn wrappers_and_environment() {
    let (_d, g) = guess_in(&[
        ("app.py", GRADIO),
        ("venv/bin/python", ""),
        (
            "start.sh",
            "#!/bin/sh\nset -e\nPORT=7861\nexport HF_HUB_OFFLINE=1 TMPDIR=/tmp/x\n\
             source venv/bin/activate\npip install -r requirements.txt\n\
             python -c 'import torch'\n\
             if kill -0 $(cat app.pid) 2>/dev/null; then exit 1; fi\n\
             CUDA_VISIBLE_DEVICES=1 HF_TOKEN=hf_secret sudo -u aiuser -E nice -n 5 \\\n  \
             exec python app.py --server-port $PORT --api-key=abc >> app.log 2>&1 &\n",
        ),
    ]);
    assert_eq!(
        cmd(&g),
        [
            "venv/bin/python",
            "app.py",
            "--server-port",
            "7861",
            "--api-key=abc"
        ]
    );
    assert_eq!(g.listen, Some("127.0.0.1:7861".parse().unwrap()));
    let env: Vec<(&str, &str)> = g
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [("CUDA_VISIBLE_DEVICES", "1"), ("HF_HUB_OFFLINE", "1")]
    );
    let all = format!("{:?} {:?} {:?}", g.warnings, g.notes, g.original);
    assert!(all.contains("HF_TOKEN, a secret"), "{all}");
    assert!(!all.contains("hf_secret"), "{all}");
    assert!(all.contains("--api-key on its command line"), "{all}");
    assert!(all.contains("as aiuser (sudo)"), "{all}");
    assert!(all.contains("TMPDIR: left out"), "{all}");
}

#[test]
fn shell_dash_c_and_su() {
    let (_d, g) = guess_in(&[
        (
            "start.sh",
            "su - aiuser -c 'cd /nonexistent; uvicorn main:app --host 0.0.0.0'\n",
        ),
        ("main.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
    ]);
    assert_eq!(cmd(&g), ["uvicorn", "main:app", "--host", "127.0.0.1"]);
    assert_eq!(g.server, Server::Uvicorn);
    assert_eq!(g.listen, Some("127.0.0.1:8000".parse().unwrap()));
    assert_eq!(g.script.as_deref(), Some(Path::new("main.py")));

    let (_d, g) = guess_in(&[(
        "run.sh",
        "bash -c \"gunicorn -w 2 -b 0.0.0.0:9000 api:app\"\n",
    )]);
    assert_eq!(
        cmd(&g),
        ["gunicorn", "-w", "2", "-b", "127.0.0.1:9000", "api:app"]
    );
    assert_eq!(g.listen, Some("127.0.0.1:9000".parse().unwrap()));
}

#[test]
fn bare_listen_and_servers_that_default_to_every_interface() {
    let (_d, g) = guess_in(&[
        ("comfy/__init__.py", ""),
        ("main.py", "import comfy\n"),
        ("start.sh", "python main.py --listen --port 8189\n"),
    ]);
    assert_eq!(g.server, Server::ComfyUi);
    assert_eq!(
        cmd(&g),
        [
            "python",
            "main.py",
            "--listen",
            "127.0.0.1",
            "--port",
            "8189"
        ]
    );
    assert_eq!(g.listen, Some("127.0.0.1:8189".parse().unwrap()));
    assert!(g.notes.iter().any(|n| n.contains("bare --listen")));

    let (_d, g) = guess_in(&[("start.sh", "exec streamlit run ui.py\n")]);
    assert_eq!(
        cmd(&g),
        ["streamlit", "run", "ui.py", "--server.address", "127.0.0.1"]
    );
    assert_eq!(g.listen, Some("127.0.0.1:8501".parse().unwrap()));

    let (_d, g) = guess_in(&[("start.sh", "OLLAMA_HOST=0.0.0.0:11500 ollama serve\n")]);
    assert_eq!(cmd(&g), ["ollama", "serve"]);
    assert_eq!(g.env["OLLAMA_HOST"], "127.0.0.1:11500");
    assert_eq!(g.listen, Some("127.0.0.1:11500".parse().unwrap()));
}

#[test]
fn the_app_source_fills_in_and_warns() {
    let (_d, g) = guess_in(&[
        (
            "app.py",
            "import gradio as gr\ndemo.launch(server_name=\"0.0.0.0\", server_port=7999, share=True)\n",
        ),
        ("start.sh", "python3 app.py\n"),
    ]);
    assert_eq!(g.listen, Some("127.0.0.1:7999".parse().unwrap()));
    let w = g.warnings.join("\n");
    assert!(w.contains("share=True"), "{w}");
    assert!(w.contains("server_name=\"0.0.0.0\""), "{w}");
}

#[test]
fn an_obvious_app_file_without_a_script() {
    let (_d, g) = guess_in(&[("app_gradio.py", GRADIO), ("README.md", "hi")]);
    assert_eq!(cmd(&g), ["python3", "app_gradio.py"]);
    assert_eq!(g.listen, Some("127.0.0.1:7860".parse().unwrap()));

    let (_d, g) = guess_in(&[
        (
            "server.py",
            "from fastapi import FastAPI\napi = FastAPI(title='x')\n",
        ),
        (".venv/pyvenv.cfg", ""),
        (".venv/bin/python3", ""),
    ]);
    assert_eq!(
        cmd(&g),
        [
            ".venv/bin/python3",
            "-m",
            "uvicorn",
            "server:api",
            "--host",
            "127.0.0.1",
            "--port",
            "8000"
        ]
    );
    assert_eq!(g.listen, Some("127.0.0.1:8000".parse().unwrap()));
}

#[test]
fn nothing_obvious_leaves_a_placeholder() {
    let (_d, g) = guess_in(&[("app.py", GRADIO), ("webui.py", GRADIO)]);
    assert!(g.command.is_none());
    assert!(g.notes[0].contains("app.py, webui.py"), "{:?}", g.notes);

    let (_d, g) = guess_in(&[
        (
            "start.sh",
            "echo starting\npip install -r requirements.txt\n",
        ),
        ("tool.py", "print(1)"),
    ]);
    assert!(g.command.is_none());
    assert!(g.listen.is_none());
}

#[test]
fn unresolved_expansions_are_kept_and_reported() {
    let (_d, g) = guess_in(&[("start.sh", "python3 app.py --port \"$(cat port)\"\n")]);
    assert_eq!(cmd(&g), ["python3", "app.py", "--port", "$(cat port)"]);
    assert!(g.warnings.iter().any(|w| w.contains("shell expansions")));
}

#[test]
fn kwargs_in_source() {
    assert_eq!(
        kwarg("x(server_port = 7861)", "server_port").as_deref(),
        Some("7861")
    );
    assert_eq!(kwarg("x(host='::')", "host").as_deref(), Some("::"));
    assert_eq!(kwarg("ghost=1", "host"), None);
    assert_eq!(kwarg("host", "host"), None);
}

#[test]
fn a_detached_program_of_the_deployment() {
    let (_d, g) = guess_in(&[(
        "start.sh",
        "cd \"$(dirname \"$0\")\"\nnohup bin/image-edit-demo --server-name 127.0.0.1 --server-port 7860 \\\n    >> gradio.log 2>&1 &\n\
         nohup tail -f gradio.log &\necho started\n",
    )]);
    assert_eq!(
        cmd(&g),
        [
            "bin/image-edit-demo",
            "--server-name",
            "127.0.0.1",
            "--server-port",
            "7860"
        ]
    );
    assert_eq!(g.listen, Some("127.0.0.1:7860".parse().unwrap()));
    assert_eq!(g.server, Server::Unknown);

    // Run in the foreground, an unknown program is not taken for the service.
    let (_d, g) = guess_in(&[(
        "start.sh",
        "bin/migrate --all
",
    )]);
    assert!(g.command.is_none());
}
