//! Guessing the service's command and where it listens: from a start script (the line that
//! runs python, uvicorn, gunicorn...; wrappers, assignments, redirections and `&` stripped), or
//! from a single obvious app file. Public tunnels (`--share`) are left out and wildcard
//! addresses replaced by 127.0.0.1, each with a note saying so.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::shell::{self, Simple, Word};
use crate::term;

/// Start scripts looked for at the root, in this order.
const SCRIPTS: &[&str] = &[
    "start.sh",
    "run.sh",
    "launch.sh",
    "serve.sh",
    "start_server.sh",
    "start-server.sh",
    "webui.sh",
];

/// App files that may be the service by themselves.
const APP_FILES: &[&str] = &[
    "app.py",
    "app_gradio.py",
    "gradio_app.py",
    "main.py",
    "server.py",
    "webui.py",
    "api.py",
    "serve.py",
    "run.py",
    "launch.py",
];

/// Programs that run a service (by base name; `python3.11` and `venv/bin/python` count).
const SERVERS: &[&str] = &[
    "uvicorn",
    "gunicorn",
    "hypercorn",
    "daphne",
    "granian",
    "streamlit",
    "gradio",
    "fastapi",
    "flask",
    "waitress-serve",
    "vllm",
    "ollama",
    "llama-server",
    "text-generation-launcher",
    "accelerate",
    "torchrun",
    "deepspeed",
    "node",
    "bun",
    "deno",
];

/// Programs a script starts in the background that are not the service.
const UTILITIES: &[&str] = &[
    "echo",
    "printf",
    "sleep",
    "tail",
    "cat",
    "kill",
    "pkill",
    "killall",
    "wait",
    "true",
    "false",
    "touch",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "ln",
    "chmod",
    "chown",
    "tee",
    "logger",
    "date",
    "watch",
    "read",
    "test",
    "[",
    "exit",
    "set",
    "trap",
    "xdg-open",
    "open",
    "curl",
    "wget",
    "ssh",
    "autossh",
    "ngrok",
    "cloudflared",
    "nvidia-smi",
    "top",
    "htop",
    "less",
    "grep",
    "sed",
    "awk",
];

/// Environment variables warden sets itself, or that must not be inherited from a script.
const ENV_DROPPED: &[&str] = &[
    "HOME",
    "PATH",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "TMPDIR",
    "TMP",
    "TEMP",
    "GRADIO_TEMP_DIR",
    "GRADIO_SHARE",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "LD_PRELOAD",
    "PYTHONSTARTUP",
];

/// The kind of server, for its default address and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Gradio,
    Uvicorn,
    Gunicorn,
    Streamlit,
    ComfyUi,
    Vllm,
    Ollama,
    LlamaServer,
    Unknown,
}

impl Server {
    /// Where it listens when no flag says otherwise: (every interface?, port).
    fn defaults(self) -> (bool, Option<u16>) {
        match self {
            Self::Gradio => (false, Some(7860)),
            Self::Uvicorn | Self::Gunicorn => (false, Some(8000)),
            Self::Streamlit => (true, Some(8501)),
            Self::ComfyUi => (false, Some(8188)),
            Self::Vllm => (true, Some(8000)),
            Self::Ollama => (false, Some(11434)),
            Self::LlamaServer => (false, Some(8080)),
            Self::Unknown => (false, None),
        }
    }

    /// The flag that sets the address, to add when the default is every interface.
    fn host_flag(self) -> &'static str {
        match self {
            Self::Streamlit => "--server.address",
            Self::Gradio => "--server-name",
            _ => "--host",
        }
    }

    /// A readiness URL that answers once the app is up, when the server is known to serve `/`.
    pub fn serves_root(self) -> bool {
        matches!(self, Self::Gradio | Self::ComfyUi | Self::Streamlit)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gradio => "Gradio",
            Self::Uvicorn => "uvicorn",
            Self::Gunicorn => "gunicorn",
            Self::Streamlit => "Streamlit",
            Self::ComfyUi => "ComfyUI",
            Self::Vllm => "vLLM",
            Self::Ollama => "Ollama",
            Self::LlamaServer => "llama.cpp server",
            Self::Unknown => "unknown",
        }
    }
}

/// The guess.
#[derive(Debug, Clone)]
pub struct Guess {
    /// The command, or `None` when nothing obvious was found (a placeholder is written).
    pub command: Option<Vec<String>>,
    /// Where it came from, e.g. `start.sh line 3` (escaped for display).
    pub source: Option<String>,
    /// The line as written (escaped for display, shortened).
    pub original: Option<String>,
    /// The working directory, relative to the root.
    pub workdir: String,
    pub env: BTreeMap<String, String>,
    pub listen: Option<SocketAddr>,
    pub server: Server,
    /// Explanations written as comments above the command.
    pub notes: Vec<String>,
    /// Problems the person must know about (also printed).
    pub warnings: Vec<String>,
    /// The app's script, relative to the root, when known.
    pub script: Option<PathBuf>,
}

impl Guess {
    fn new() -> Self {
        Self {
            command: None,
            source: None,
            original: None,
            workdir: ".".into(),
            env: BTreeMap::new(),
            listen: None,
            server: Server::Unknown,
            notes: Vec::new(),
            warnings: Vec::new(),
            script: None,
        }
    }
}

/// Guesses the command of the deployment at `root` (canonical). `venvs` are the Python
/// environments found at any depth, relative.
pub fn guess(root: &Path, venvs: &[PathBuf]) -> Guess {
    for name in SCRIPTS {
        let Some(text) = read_small(&root.join(name)) else {
            continue;
        };
        if let Some(g) = from_script(root, name, &text) {
            return g;
        }
    }
    from_app_file(root, venvs)
}

/// Reads a regular file of at most 1 MiB (not through a symlink).
fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    std::fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The state of the script when the service command runs.
#[derive(Default, Clone)]
struct ScriptState {
    vars: BTreeMap<String, String>,
    exported: BTreeMap<String, String>,
    cd: Option<String>,
    venv: Option<String>,
    conda: Option<String>,
}

/// The service command of a script, with what was stripped from it.
struct Found {
    cmd: Simple,
    core: Vec<Word>,
    prefix_env: Vec<(String, String)>,
    state: ScriptState,
    wrappers: Vec<String>,
}

fn from_script(root: &Path, name: &str, text: &str) -> Option<Guess> {
    let mut state = ScriptState::default();
    let mut found: Option<Found> = None;
    for cmd in shell::parse(text) {
        track_state(&cmd.words, &mut state);
        let mut prefix_env = Vec::new();
        let mut wrappers = Vec::new();
        if let Some(core) = unwrap(&cmd.words, &mut prefix_env, &mut wrappers, 0)
            && runs_service(&core, detached(&cmd, &core))
        {
            found = Some(Found {
                cmd: cmd.clone(),
                core,
                prefix_env,
                state: state.clone(),
                wrappers,
            });
        }
    }
    let Found {
        cmd,
        core,
        prefix_env,
        state,
        wrappers,
    } = found?;
    let mut g = Guess::new();
    g.source = Some(format!("{} line {}", term::escape(name), cmd.line));
    // The line as written, secrets in assignments hidden: it goes into a comment.
    let line: String = cmd
        .words
        .iter()
        .map(|w| match shell::assignment(w) {
            Some((k, _)) if is_secret(k) => format!("{k}=..."),
            _ => shell::quote(&w.display()),
        })
        .collect::<Vec<_>>()
        .join(" ");
    g.original = Some(shorten(&term::escape(&line)));

    for w in &wrappers {
        g.notes.push(w.clone());
    }
    if cmd.redirected || cmd.background {
        g.notes.push(format!(
            "{name}'s redirections and `&` are left out: warden captures the output into [logs] \
             (redacted and rotated) and keeps the service in the foreground."
        ));
    }

    // Words: substitute the script's own plain variables; keep the rest as written.
    let lookup = |n: &str| state.vars.get(n).cloned();
    let mut argv = Vec::new();
    let mut unresolved = Vec::new();
    for w in &core {
        match shell::substitute(&w.text, lookup) {
            Some(s) => argv.push(s),
            None => {
                unresolved.push(w.display());
                argv.push(w.display());
            }
        }
    }
    if !unresolved.is_empty() {
        g.warnings.push(format!(
            "the command in {name} uses shell expansions warden cannot resolve ({}): edit them in \
             warden.toml",
            term::escape(&unresolved.join(" "))
        ));
    }

    // Environment: exported variables, then the command's own assignments.
    let mut env: Vec<(String, String)> = state.exported.clone().into_iter().collect();
    env.extend(prefix_env);
    for (k, v) in env {
        add_env(&mut g, name, &k, &v, lookup);
    }

    // Working directory.
    if let Some(cd) = &state.cd {
        match workdir_of(root, cd) {
            Some(w) => g.workdir = w,
            None => g.notes.push(format!(
                "{name} changes to {} first: set workdir to that directory if it is the app's",
                term::escape(cd)
            )),
        }
    }
    if let Some(env) = &state.conda {
        g.notes.push(format!(
            "{name} activates the conda environment {}: give the full path of its python, e.g. \
             /opt/conda/envs/{}/bin/python",
            term::escape(env),
            term::escape(env)
        ));
    }
    finish(root, &mut g, argv, name, state.venv.as_deref());
    Some(g)
}

/// Follows assignments, `export`, `cd`, `source .../activate` and `conda activate` through
/// the script.
fn track_state(words: &[Word], st: &mut ScriptState) {
    let Some(first) = words.first() else {
        return;
    };
    let literal = |vars: &BTreeMap<String, String>, w: &Word| {
        shell::substitute(&w.text, |n| vars.get(n).cloned())
    };
    let value = |vars: &BTreeMap<String, String>, w: &Word| {
        literal(vars, w).and_then(|s| s.split_once('=').map(|(_, v)| v.to_owned()))
    };
    if words
        .iter()
        .all(|w| !w.quoted && shell::assignment(w).is_some())
    {
        for w in words {
            if let Some((k, _)) = shell::assignment(w)
                && let Some(v) = value(&st.vars, w)
            {
                st.vars.insert(k.to_owned(), v.clone());
                if st.exported.contains_key(k) {
                    st.exported.insert(k.to_owned(), v);
                }
            }
        }
        return;
    }
    match first.text.as_str() {
        "export" | "declare" | "readonly" | "typeset" => {
            let export = first.text == "export"
                || words
                    .iter()
                    .any(|w| w.text.starts_with('-') && w.text.contains('x'));
            for w in &words[1..] {
                if let Some((k, _)) = shell::assignment(w) {
                    if let Some(v) = value(&st.vars, w) {
                        st.vars.insert(k.to_owned(), v.clone());
                        if export {
                            st.exported.insert(k.to_owned(), v);
                        }
                    }
                } else if export
                    && shell::is_name(&w.text)
                    && let Some(v) = st.vars.get(&w.text).cloned()
                {
                    st.exported.insert(w.text.clone(), v);
                }
            }
        }
        "cd" | "pushd" => {
            st.cd = words
                .get(1)
                .map(|w| literal(&st.vars, w).unwrap_or_else(|| w.text.clone()));
        }
        "source" | "." => {
            if let Some(w) = words.get(1)
                && let Some(s) = literal(&st.vars, w)
                && let Some(venv) = s.strip_suffix("/bin/activate")
            {
                st.venv = Some(venv.to_owned());
            }
        }
        "conda" | "mamba" | "micromamba" if words.get(1).is_some_and(|w| w.text == "activate") => {
            st.conda = words.get(2).map(Word::display);
        }
        _ => {}
    }
}

/// Strips what only wraps the real command: assignments, `nohup`, `exec`, `sudo -u x -E`, `env`,
/// `nice`, `setsid`...; follows `sh -c "..."` and `su -c "..."`. Returns the real command.
fn unwrap(
    words: &[Word],
    env: &mut Vec<(String, String)>,
    notes: &mut Vec<String>,
    depth: usize,
) -> Option<Vec<Word>> {
    let mut i = 0;
    let at = |i: usize| words.get(i).map(|w| w.text.as_str());
    while let Some(w) = words.get(i) {
        if !w.quoted
            && let Some((k, v)) = shell::assignment(w)
        {
            env.push((k.to_owned(), v.to_owned()));
            i += 1;
            continue;
        }
        match w.text.as_str() {
            "nohup" | "exec" | "setsid" | "command" | "builtin" | "time" | "unbuffer" => i += 1,
            "nice" | "ionice" | "stdbuf" | "chrt" => {
                i += 1;
                while let Some(a) = at(i).filter(|a| a.starts_with('-')) {
                    let takes = matches!(a, "-n" | "-c" | "-t" | "--adjustment" | "--class");
                    i += if takes { 2 } else { 1 };
                }
                if w.text == "chrt" {
                    i += 1; // the priority
                }
            }
            "taskset" => {
                i += 1;
                while at(i).is_some_and(|a| a.starts_with('-')) {
                    i += 1;
                }
                i += 1; // the mask or list
            }
            "timeout" => {
                i += 1;
                while let Some(a) = at(i).filter(|a| a.starts_with('-')) {
                    i += if matches!(a, "-s" | "-k" | "--signal" | "--kill-after") {
                        2
                    } else {
                        1
                    };
                }
                i += 1; // the duration
            }
            "env" => {
                i += 1;
                while let Some(a) = at(i).filter(|a| a.starts_with('-')) {
                    i += if matches!(a, "-u" | "--unset" | "-C" | "--chdir") {
                        2
                    } else {
                        1
                    };
                }
            }
            "sudo" | "doas" | "runuser" => {
                i += 1;
                let mut user = None;
                while let Some(a) = at(i).filter(|a| a.starts_with('-')) {
                    if a == "--" {
                        i += 1;
                        break;
                    }
                    if matches!(a, "-u" | "--user" | "-l") {
                        user = at(i + 1).map(str::to_owned);
                        i += 2;
                    } else if let Some(u) = a.strip_prefix("--user=") {
                        user = Some(u.to_owned());
                        i += 1;
                    } else if matches!(
                        a,
                        "-g" | "--group"
                            | "-C"
                            | "-D"
                            | "-h"
                            | "-p"
                            | "-r"
                            | "-t"
                            | "-U"
                            | "-T"
                            | "-R"
                    ) {
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                if let Some(u) = user {
                    notes.push(format!(
                        "The script ran it as {} ({}): warden runs it as the account in `user`, \
                         with a clean environment.",
                        term::escape(&u),
                        w.text
                    ));
                }
            }
            "su" => {
                // su [options] [-] [user] -c "command"
                let c = words
                    .iter()
                    .position(|w| w.text == "-c" || w.text == "--command")?;
                if let Some(u) = words[1..c]
                    .iter()
                    .chain(words.get(c + 2..).unwrap_or(&[]))
                    .find(|w| !w.text.starts_with('-'))
                {
                    notes.push(format!(
                        "The script ran it as {} (su): warden runs it as the account in `user`.",
                        term::escape(&u.text)
                    ));
                }
                return inner(words.get(c + 1)?, env, notes, depth);
            }
            "sh" | "bash" | "dash" | "zsh" | "/bin/sh" | "/bin/bash" | "/usr/bin/bash" => {
                let c = words
                    .iter()
                    .position(|w| w.text == "-c" || w.text == "-lc")?;
                return inner(words.get(c + 1)?, env, notes, depth);
            }
            _ => return Some(words[i..].to_vec()),
        }
    }
    None
}

/// The last service command inside a `-c` string.
fn inner(
    w: &Word,
    env: &mut Vec<(String, String)>,
    notes: &mut Vec<String>,
    depth: usize,
) -> Option<Vec<Word>> {
    if depth > 3 {
        return None;
    }
    let mut found = None;
    for cmd in shell::parse(&w.text.replace(shell::EXPANSION, "")) {
        let mut e = Vec::new();
        let mut n = Vec::new();
        if let Some(core) = unwrap(&cmd.words, &mut e, &mut n, depth + 1)
            && runs_service(&core, detached(&cmd, &core))
        {
            found = Some((core, e, n));
        }
    }
    let (core, e, n) = found?;
    env.extend(e);
    notes.extend(n);
    Some(core)
}

fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn is_python(program: &str) -> bool {
    let b = base_name(program);
    b.strip_prefix("python")
        .is_some_and(|v| v.is_empty() || v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// Whether a command was started to outlive the script: put in the background, or run under
/// `nohup`, `exec` or `setsid`.
fn detached(cmd: &Simple, core: &[Word]) -> bool {
    let wrappers = &cmd.words[..cmd.words.len().saturating_sub(core.len())];
    cmd.background
        || wrappers
            .iter()
            .any(|w| matches!(w.text.as_str(), "nohup" | "exec" | "setsid" | "daemonize"))
}

/// Whether the words run a service: a known server or interpreter (not `python -c ...`,
/// `pip install`, `python --version`), or any other program started detached that is not a
/// common utility (`nohup bin/server &`).
fn runs_service(words: &[Word], detached: bool) -> bool {
    let Some(program) = words.first().map(|w| w.text.as_str()) else {
        return false;
    };
    let arg = |i: usize| words.get(i).map(|w| w.text.as_str());
    if is_python(program) {
        return match arg(1) {
            None | Some("-c" | "-V" | "--version" | "-h" | "--help") => false,
            Some("-m") => !matches!(
                arg(2),
                Some("pip" | "venv" | "ensurepip" | "pytest" | "unittest" | "compileall") | None
            ),
            Some(a) => !a.ends_with("setup.py") && !a.ends_with("download.py"),
        };
    }
    let b = base_name(program);
    match b {
        "ollama" => arg(1) == Some("serve"),
        "vllm" => arg(1) == Some("serve"),
        "uv" | "poetry" | "pipenv" | "conda" | "pdm" | "hatch" => {
            arg(1) == Some("run") && words.len() > 2
        }
        _ if SERVERS.contains(&b) => true,
        _ => {
            detached
                && !words[0].text.contains(shell::EXPANSION)
                && !UTILITIES.contains(&b)
                && !b.ends_with(".sh")
        }
    }
}

/// Adds `k=v` to the service's environment unless warden sets it itself or it is a secret.
fn add_env(g: &mut Guess, script: &str, k: &str, v: &str, lookup: impl Fn(&str) -> Option<String>) {
    if is_secret(k) {
        g.warnings.push(format!(
            "{script} sets {k}, a secret: it is not copied into warden.toml; give it to the \
             service from a file only the service can read"
        ));
        return;
    }
    if k == "GRADIO_SHARE" {
        if !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no" | "") {
            g.warnings.push(format!(
                "{script} sets GRADIO_SHARE={}: warden will refuse it (it opens a public tunnel); \
                 it is left out",
                term::escape(v)
            ));
        }
        return;
    }
    if ENV_DROPPED.contains(&k) || k.starts_with("XDG_") {
        g.notes.push(format!(
            "{script} sets {k}: left out, warden sets it itself (temp and cache variables point \
             into [tmp], HOME into [state])"
        ));
        return;
    }
    let value = match shell::substitute(v, &lookup) {
        Some(v) => v,
        None => {
            g.warnings.push(format!(
                "{script} sets {k} from a shell expansion ({}): left out, add it to env by hand",
                term::escape(&v.replace(shell::EXPANSION, ""))
            ));
            return;
        }
    };
    g.env.insert(k.to_owned(), value);
}

/// Whether a variable or flag name names a secret (`HF_TOKEN`, `--api-key`...).
fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase().replace('-', "_");
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "APIKEY",
        "CREDENTIAL",
        "PRIVATE_KEY",
    ]
    .iter()
    .any(|s| upper.contains(s))
        || upper.ends_with("_KEY")
}

/// The working directory a `cd` in the script leads to, relative to the root, when it is a
/// literal path inside it.
fn workdir_of(root: &Path, cd: &str) -> Option<String> {
    if cd.contains(shell::EXPANSION) {
        // `cd "$(dirname "$0")"` and the like: the script's own directory, the root.
        return Some(".".into());
    }
    let mut target = PathBuf::new();
    for c in root.join(cd).components() {
        match c {
            std::path::Component::ParentDir => {
                target.pop();
            }
            std::path::Component::CurDir => {}
            other => target.push(other),
        }
    }
    let rel = target.strip_prefix(root).ok()?;
    if !root.join(rel).is_dir() {
        return None;
    }
    let s = rel.to_str()?;
    Some(if s.is_empty() {
        ".".into()
    } else {
        s.to_owned()
    })
}

/// Shared by the script and app-file paths: `--share` out, the server recognised, the address
/// made local, the venv's python used.
fn finish(root: &Path, g: &mut Guess, mut argv: Vec<String>, source: &str, venv: Option<&str>) {
    let before = argv.len();
    argv.retain(|a| a != "--share" && !a.starts_with("--share="));
    if argv.len() != before {
        g.warnings.push(format!(
            "{source} uses --share: warden will refuse it (it opens a public tunnel to the \
             service); the proposed command leaves it out"
        ));
        g.notes.push(
            "--share is left out: it opens a public tunnel to the service, and warden refuses to \
             start a service that asks for one."
                .into(),
        );
    }
    for a in argv.iter().skip(1).filter(|a| a.starts_with("--")) {
        let flag = a.split_once('=').map_or(a.as_str(), |(f, _)| f);
        if is_secret(flag) {
            g.warnings.push(format!(
                "the command passes {} on its command line, where any local user can read it \
                 (ps, /proc): have the app read it from a file instead",
                term::escape(flag)
            ));
        }
    }
    let workdir = root.join(&g.workdir);
    let (server, script) = recognise(&workdir, &argv);
    g.server = server;
    g.script = script.as_ref().and_then(|s| {
        workdir
            .join(s)
            .strip_prefix(root)
            .ok()
            .map(Path::to_path_buf)
    });
    let app_text = script.as_ref().and_then(|s| read_small(&workdir.join(s)));
    if let Some(text) = &app_text {
        let name = term::path(script.as_deref().unwrap_or(Path::new("the app")));
        if text.contains("share=True") {
            g.warnings.push(format!(
                "{name} calls launch(share=True): warden will refuse to start it; change it to \
                 share=False"
            ));
        }
    }
    listen(g, &mut argv, app_text.as_deref());
    if let Some(v) = venv {
        use_venv(g, &mut argv, &workdir, v, source);
    }
    g.command = Some(argv);
}

/// What serves, and the app's script (relative to the workdir) when there is one.
fn recognise(workdir: &Path, argv: &[String]) -> (Server, Option<PathBuf>) {
    let program = argv.first().map_or("", |s| base_name(s));
    let mut args = &argv[1.min(argv.len())..];
    // `uv run python app.py` and the like.
    if matches!(
        program,
        "uv" | "poetry" | "pipenv" | "conda" | "pdm" | "hatch"
    ) {
        return recognise(workdir, &argv[2.min(argv.len())..]);
    }
    let module_file = |spec: &str| {
        let module = spec.split(':').next().unwrap_or(spec);
        PathBuf::from(format!("{}.py", module.replace('.', "/")))
    };
    let app_spec = |args: &[String]| {
        args.iter()
            .rev()
            .find(|a| {
                !a.starts_with('-')
                    && a.contains(':')
                    && !a
                        .rsplit(':')
                        .next()
                        .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
            })
            .map(|a| module_file(a))
    };
    let by_program = |p: &str, args: &[String]| -> Option<(Server, Option<PathBuf>)> {
        Some(match p {
            "uvicorn" | "hypercorn" | "granian" | "daphne" => (Server::Uvicorn, app_spec(args)),
            "gunicorn" => (Server::Gunicorn, app_spec(args)),
            "streamlit" => (
                Server::Streamlit,
                args.iter().find(|a| a.ends_with(".py")).map(PathBuf::from),
            ),
            "vllm" => (Server::Vllm, None),
            "ollama" => (Server::Ollama, None),
            "llama-server" => (Server::LlamaServer, None),
            "gradio" => (
                Server::Gradio,
                args.iter().find(|a| a.ends_with(".py")).map(PathBuf::from),
            ),
            _ => return None,
        })
    };
    if let Some(r) = by_program(program, args) {
        return r;
    }
    if !is_python(program) {
        return (Server::Unknown, None);
    }
    let mut script = None;
    while let Some((a, rest)) = args.split_first() {
        match a.as_str() {
            "-m" => {
                let Some((module, rest)) = rest.split_first() else {
                    break;
                };
                let m = module.as_str();
                if let Some(r) = by_program(m.split('.').next().unwrap_or(m), rest) {
                    return r;
                }
                if m.starts_with("vllm") {
                    return (Server::Vllm, None);
                }
                script = Some(module_file(m));
                break;
            }
            "-X" | "-W" => args = rest.get(1..).unwrap_or(&[]),
            s if s.starts_with('-') => args = rest,
            s => {
                script = Some(PathBuf::from(s));
                break;
            }
        }
    }
    let Some(script) = script else {
        return (Server::Unknown, None);
    };
    let text = read_small(&workdir.join(&script)).unwrap_or_default();
    let comfy = script.file_name().is_some_and(|n| n == "main.py")
        && (workdir.join("comfy").is_dir() || workdir.join("comfy_extras").is_dir());
    let server = if comfy {
        Server::ComfyUi
    } else if text.contains("import gradio") || text.contains("from gradio") {
        Server::Gradio
    } else if text.contains("import streamlit") {
        Server::Streamlit
    } else if text.contains("uvicorn") || text.contains("FastAPI(") {
        Server::Uvicorn
    } else {
        Server::Unknown
    };
    (server, Some(script))
}

/// A flag's value in `args` (the last occurrence wins, as argparse does).
struct Flag {
    /// Index of the flag.
    at: usize,
    /// `--flag=value` rather than `--flag value`.
    attached: bool,
    value: Option<String>,
}

fn find_flag(args: &[String], names: &[&str], optional: bool) -> Option<Flag> {
    let mut found = None;
    for (i, a) in args.iter().enumerate().skip(1) {
        if let Some((n, v)) = a.split_once('=')
            && names.contains(&n)
        {
            found = Some(Flag {
                at: i,
                attached: true,
                value: Some(v.to_owned()),
            });
        } else if names.contains(&a.as_str()) {
            let next = args
                .get(i + 1)
                .filter(|n| !(optional && n.starts_with('-')));
            found = Some(Flag {
                at: i,
                attached: false,
                value: next.cloned(),
            });
        }
    }
    found
}

fn set_flag(args: &mut Vec<String>, f: &Flag, value: &str) {
    if f.attached {
        let name = args[f.at].split_once('=').map_or("", |(n, _)| n).to_owned();
        args[f.at] = format!("{name}={value}");
    } else if f.value.is_some() {
        args[f.at + 1] = value.to_owned();
    } else {
        args.insert(f.at + 1, value.to_owned());
    }
}

fn is_wildcard(host: &str) -> bool {
    matches!(host, "" | "0.0.0.0" | "::" | "[::]" | "*" | "0")
}

/// A literal keyword argument in source text: `name="value"`, `name='value'` or `name=1234`.
fn kwarg(text: &str, name: &str) -> Option<String> {
    let mut rest = text;
    while let Some(i) = rest.find(name) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + name.len()..].trim_start();
        rest = &rest[i + name.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(v) = after.strip_prefix('=') else {
            continue;
        };
        let v = v.trim_start();
        if let Some(q) = v.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let body = &v[1..];
            if let Some(end) = body.find(q) {
                return Some(body[..end].to_owned());
            }
        } else {
            let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() {
                return Some(digits);
            }
        }
    }
    None
}

/// Works out `listen`, rewriting a wildcard address in the command to 127.0.0.1.
fn listen(g: &mut Guess, argv: &mut Vec<String>, app: Option<&str>) {
    const LOCAL: &str = "127.0.0.1";
    let server = g.server;
    let (wild_default, default_port) = server.defaults();
    let mut host: Option<String> = None;
    let mut port: Option<String>;

    let bind = if server == Server::Gunicorn {
        find_flag(argv, &["-b", "--bind"], false)
    } else {
        None
    };
    if let Some(b) = bind {
        let v = b.value.clone().unwrap_or_default();
        if v.starts_with("unix:") {
            g.notes
                .push("It listens on a unix socket: listen is for TCP only.".into());
            return;
        }
        let (h, p) = v.rsplit_once(':').unwrap_or((v.as_str(), "8000"));
        host = Some(h.to_owned());
        port = Some(p.to_owned());
        if is_wildcard(h) {
            set_flag(argv, &b, &format!("{LOCAL}:{p}"));
            g.notes
                .push(wildcard_note(&format!("--bind {}", term::escape(&v))));
            host = Some(LOCAL.into());
        }
    } else {
        let listen_flag = find_flag(argv, &["--listen"], true);
        let host_flag = find_flag(
            argv,
            &[
                "--server-name",
                "--server_name",
                "--host",
                "--server.address",
                "--ip",
                "--address",
            ],
            false,
        );
        if let Some(f) = listen_flag.filter(|f| host_flag.as_ref().is_none_or(|h| f.at > h.at)) {
            match &f.value {
                None => {
                    set_flag(argv, &f, LOCAL);
                    g.notes.push(
                        "A bare --listen means every interface (0.0.0.0): the proposal gives \
                         --listen 127.0.0.1 instead. Put a reverse proxy in front, or write \
                         0.0.0.0 in both places if the service must be reachable directly."
                            .into(),
                    );
                    host = Some(LOCAL.into());
                }
                Some(v) if is_wildcard(v) => {
                    set_flag(argv, &f, LOCAL);
                    g.notes
                        .push(wildcard_note(&format!("--listen {}", term::escape(v))));
                    host = Some(LOCAL.into());
                }
                Some(v) => host = Some(v.clone()),
            }
        } else if let Some(f) = host_flag {
            let v = f.value.clone().unwrap_or_default();
            if is_wildcard(&v) {
                let flag = args_flag_name(argv, &f);
                set_flag(argv, &f, LOCAL);
                g.notes
                    .push(wildcard_note(&format!("{flag} {}", term::escape(&v))));
                host = Some(LOCAL.into());
            } else {
                host = Some(v);
            }
        }
        let port_flag = find_flag(
            argv,
            &["--server-port", "--server_port", "--port", "--server.port"],
            false,
        );
        port = port_flag.and_then(|f| f.value);
    }

    // Environment variables some servers read.
    let env_host = match server {
        Server::Gradio => Some("GRADIO_SERVER_NAME"),
        Server::Ollama => Some("OLLAMA_HOST"),
        _ => None,
    };
    if host.is_none()
        && let Some(k) = env_host
        && let Some(v) = g.env.get(k).cloned()
    {
        let (h, p) = match v.rsplit_once(':') {
            Some((h, p)) if server == Server::Ollama => (h.to_owned(), Some(p.to_owned())),
            _ => (v.clone(), None),
        };
        if is_wildcard(&h) {
            let local = match &p {
                Some(p) => format!("{LOCAL}:{p}"),
                None => LOCAL.to_owned(),
            };
            g.env.insert(k.to_owned(), local);
            g.notes
                .push(wildcard_note(&format!("{k}={}", term::escape(&v))));
            host = Some(LOCAL.into());
        } else {
            host = Some(h);
        }
        port = port.or(p);
    }
    if port.is_none() && server == Server::Gradio {
        port = g.env.get("GRADIO_SERVER_PORT").cloned();
    }

    // What the app's source says, when the command says nothing.
    if let Some(text) = app {
        let (host_kw, port_kw) = match server {
            Server::Gradio => ("server_name", "server_port"),
            _ => ("host", "port"),
        };
        if host.is_none() {
            match kwarg(text, host_kw) {
                Some(h) if is_wildcard(&h) => g.warnings.push(format!(
                    "{} sets {host_kw}=\"{}\": it listens on every interface whatever warden.toml \
                     says; make it 127.0.0.1 (or read it from a flag)",
                    g.script.as_deref().map_or("the app".into(), term::path),
                    term::escape(&h)
                )),
                Some(h) => host = Some(h),
                None if text.contains("0.0.0.0") => g.notes.push(format!(
                    "{} mentions 0.0.0.0: check that it listens where `listen` says",
                    g.script.as_deref().map_or("the app".into(), term::path)
                )),
                None => {}
            }
        }
        if port.is_none() {
            port = kwarg(text, port_kw);
        }
    }

    if host.is_none() && wild_default {
        argv.push(server.host_flag().into());
        argv.push(LOCAL.into());
        g.notes.push(format!(
            "{} listens on every interface by default: the proposal adds {} 127.0.0.1.",
            server.name(),
            server.host_flag()
        ));
        host = Some(LOCAL.into());
    }
    let host = host.unwrap_or_else(|| LOCAL.into());
    let ip = if host == "localhost" {
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
    };
    let port = port.and_then(|p| p.parse::<u16>().ok()).or(default_port);
    match (ip, port) {
        (Some(ip), Some(port)) => g.listen = Some(SocketAddr::new(ip, port)),
        (None, _) => g.notes.push(format!(
            "It listens on {}, not an IP address: write the address in listen.",
            term::escape(&host)
        )),
        (_, None) => {}
    }
}

fn args_flag_name(argv: &[String], f: &Flag) -> String {
    let a = &argv[f.at];
    a.split_once('=').map_or(a.as_str(), |(n, _)| n).to_owned()
}

fn wildcard_note(what: &str) -> String {
    format!(
        "{what} listens on every interface: the proposal uses 127.0.0.1 instead, reachable \
         only from this machine. Put a reverse proxy in front, or use 0.0.0.0 in both the \
         command and listen if the service must be reachable directly."
    )
}

/// Uses `VENV/bin/PROGRAM` when the script activated a virtualenv that has it.
fn use_venv(g: &mut Guess, argv: &mut [String], workdir: &Path, venv: &str, source: &str) {
    let Some(program) = argv.first() else {
        return;
    };
    if program.contains('/') {
        return;
    }
    let candidate = format!("{}/bin/{program}", venv.trim_end_matches('/'));
    if std::fs::symlink_metadata(workdir.join(&candidate)).is_ok() {
        g.notes.push(format!(
            "{source} activates the virtualenv {}: the command uses its {program}.",
            term::escape(venv)
        ));
        argv[0] = candidate;
    }
}

/// No start script: a single app file that is obviously the service.
fn from_app_file(root: &Path, venvs: &[PathBuf]) -> Guess {
    let mut g = Guess::new();
    let apps: Vec<(&str, String)> = APP_FILES
        .iter()
        .filter_map(|n| read_small(&root.join(n)).map(|t| (*n, t)))
        .filter(|(_, t)| t.contains("gradio") || t.contains("uvicorn") || t.contains("FastAPI"))
        .collect();
    let venv = venvs
        .iter()
        .filter(|v| v.components().count() == 1)
        .find(|v| std::fs::symlink_metadata(root.join(v).join("bin/python3")).is_ok())
        .and_then(|v| v.to_str());
    match apps.as_slice() {
        [(name, text)] => {
            g.source = Some((*name).to_owned());
            let python = match venv {
                Some(v) => {
                    g.notes.push(format!(
                        "The command uses the python of the virtualenv {}.",
                        term::escape(v)
                    ));
                    format!("{v}/bin/python3")
                }
                None => "python3".to_owned(),
            };
            let runs_itself = text.contains(".launch(")
                || text.contains("uvicorn.run(")
                || text.contains("__main__");
            let argv = if !runs_itself && text.contains("FastAPI(") {
                let var = fastapi_var(text).unwrap_or_else(|| "app".into());
                let module = name.trim_end_matches(".py");
                vec![
                    python,
                    "-m".into(),
                    "uvicorn".into(),
                    format!("{module}:{var}"),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    "8000".into(),
                ]
            } else {
                vec![python, (*name).to_owned()]
            };
            g.notes.push(format!(
                "There is no start script: the command runs {name}, the one app file found. Add \
                 the arguments it needs."
            ));
            finish(root, &mut g, argv, name, None);
        }
        [] => g.notes.push(
            "No start script (start.sh) or obvious app file was found. Write the program and \
             its arguments as a list, the way the service is started by hand, e.g. \
             [\"python3\", \"app.py\", \"--server-name\", \"127.0.0.1\", \"--server-port\", \
             \"7860\"]."
                .into(),
        ),
        several => {
            let names: Vec<&str> = several.iter().map(|(n, _)| *n).collect();
            g.notes.push(format!(
                "Several app files could be the service ({}): write the program and its \
                 arguments as a list, e.g. [\"python3\", \"{}\"].",
                names.join(", "),
                names[0]
            ));
        }
    }
    g
}

/// `app = FastAPI(`: the variable's name.
fn fastapi_var(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (lhs, rhs) = l.split_once('=')?;
        let lhs = lhs.trim();
        (rhs.trim_start().starts_with("FastAPI(") && shell::is_name(lhs)).then(|| lhs.to_owned())
    })
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 160 {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(157).collect();
    t.push_str("...");
    t
}

#[cfg(test)]
mod tests;
