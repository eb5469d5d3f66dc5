//! Writing the proposal as a commented warden.toml (strings escaped as TOML basic strings,
//! comments stripped of control characters), and the short summary printed beside it.

use std::fmt::Write as _;
use std::path::Path;

use super::command::Server;
use super::tiers::{TierKind, TierProposal};
use super::{Private, Proposal, human_size};
use crate::term;

/// Width comments are wrapped at.
const WIDTH: usize = 96;

/// A TOML basic string: `"` and `\` escaped, control characters as `\uXXXX` or short escapes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, quoted otherwise.
fn key(s: &str) -> String {
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { s.to_owned() } else { quote(s) }
}

fn array(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", parts.join(", "))
}

/// Appends `text` as `#` comment lines, wrapped; control characters are escaped so that no
/// file name can end the comment and inject a key.
fn comment(out: &mut String, text: &str) {
    for para in text.split('\n') {
        let para = term::escape(para);
        if para.starts_with(' ') {
            out.push_str("# ");
            out.push_str(&para);
            out.push('\n');
            continue;
        }
        let mut line = String::from("#");
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
                out.push_str(&line);
                out.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
}

fn rel(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn formats_list(formats: impl IntoIterator<Item = (&'static str, usize)>) -> String {
    let parts: Vec<String> = formats
        .into_iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn count(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

pub fn render(p: &Proposal) -> String {
    let mut o = String::new();
    let root = term::path(&p.root);
    comment(
        &mut o,
        &format!(
            "warden.toml for {root}, proposed by `warden init`.\n\nwarden runs the service \
             described here as an unprivileged account, with the model tiers read-only, a \
             private temp directory, and logs that are redacted and rotated. This is a \
             proposal: read every comment, change what is wrong, then check it with\n    \
             warden validate -c {root}/warden.toml\nRelative paths are relative to the \
             directory that holds this file."
        ),
    );
    o.push('\n');
    service(&mut o, p);
    tiers(&mut o, p);
    private(&mut o, p);
    o
}

fn service(o: &mut String, p: &Proposal) {
    let g = &p.guess;
    o.push_str("[service]\n");
    comment(
        o,
        "The service's name: it names the lock, and the unit `warden export` writes.",
    );
    let _ = writeln!(o, "name = {}", quote(&p.name));
    match &g.command {
        Some(cmd) => {
            let mut text = String::from(
                "The program and its arguments, run directly: no shell, so no redirections, \
                 `&` or `$VARIABLES`.",
            );
            if let (Some(src), Some(orig)) = (&g.source, &g.original) {
                let _ = write!(text, "\nGuessed from {src}:\n    {orig}");
            } else if let Some(src) = &g.source {
                let _ = write!(text, "\nGuessed from {src}.");
            }
            comment(o, &text);
            for n in &g.notes {
                comment(o, n);
            }
            let _ = writeln!(o, "command = {}", array(cmd));
        }
        None => {
            comment(
                o,
                "FILL IN: the program and its arguments, run directly (no shell). CHANGE-ME is \
                 a placeholder that does not run.",
            );
            for n in &g.notes {
                comment(o, n);
            }
            o.push_str("command = [\"CHANGE-ME\"]\n");
        }
    }
    comment(o, "Where the command runs, relative to this file.");
    let _ = writeln!(o, "workdir = {}", quote(&g.workdir));
    let mut who = String::from(
        "The system account the service runs as: no login shell, no home directory, no \
         password. `warden harden` (as root) creates it and a group of the same name; that \
         group is what may read the tiers below.",
    );
    if p.user_derived {
        who.push_str(
            " Derived from the directory's name; `warden init --user NAME` picks another.",
        );
    }
    comment(o, &who);
    let _ = writeln!(o, "user = {}", quote(&p.user));
    if p.nvidia {
        comment(
            o,
            "GPU nodes are usually group video or render; list the groups it needs, e.g.\n\
             groups = [\"video\"]",
        );
    }
    match g.listen {
        Some(addr) => {
            comment(
                o,
                "Where it may listen: warden checks it at runtime and, with Landlock ABI 4 or \
                 later, the kernel refuses any other port.",
            );
            let _ = writeln!(o, "listen = {}", array(&[addr.to_string()]));
        }
        None => comment(
            o,
            "FILL IN where the service listens, e.g.\nlisten = [\"127.0.0.1:8000\"]",
        ),
    }
    comment(
        o,
        "Its environment starts clean: PATH, LANG and TZ from the caller, HOME, TMPDIR in [tmp], \
         the caches in [state], telemetry off, then these variables.",
    );
    if g.env.is_empty() {
        o.push_str("# env = { HF_HUB_OFFLINE = \"1\" }\n");
    } else {
        let parts: Vec<String> = g
            .env
            .iter()
            .map(|(k, v)| format!("{} = {}", key(k), quote(v)))
            .collect();
        let _ = writeln!(o, "env = {{ {} }}", parts.join(", "));
    }
    comment(
        o,
        "How long a stop may take before SIGKILL, and when to restart it if it dies.",
    );
    o.push_str("stop-timeout = \"15s\"\n");
    o.push_str("restart = { policy = \"on-failure\", max = 5, within = \"10m\" }\n");
    if let Some(addr) = g.listen {
        let line = format!(
            "ready = {{ http = {}, timeout = \"300s\" }}",
            quote(&format!("http://{addr}/"))
        );
        if g.server.serves_root() {
            comment(
                o,
                &format!(
                    "Ready once {} answers; loading a model can take minutes.",
                    g.server.name()
                ),
            );
            let _ = writeln!(o, "{line}");
        } else {
            comment(
                o,
                &format!(
                    "When is it ready? Uncomment with a URL that answers once the model is \
                     loaded, or use tcp = \"{addr}\".\n{line}"
                ),
            );
        }
    }
    o.push('\n');
}

fn tiers(o: &mut String, p: &Proposal) {
    comment(
        o,
        "Read-only tiers: the model files. Each is owned by root with the service's group \
         (directories 0550, files 0440), so the service can read the files but never change, \
         chmod, rename or replace them, and Landlock denies writes even if the modes drift. \
         Each is sealed: listed in the integrity manifest (verified before every start) and \
         scanned for code.\nWeights are recognised by their content, not their names.",
    );
    o.push('\n');
    if p.tiers.is_empty() {
        comment(
            o,
            "No model weights were found (safetensors, PyTorch, pickle, GGUF, ONNX, NumPy or \
             HDF5 content). Add a tier for each directory the service must only read:\n\
             [[tier]]\npath = \"models\"\naccess = \"read-only\"",
        );
        o.push('\n');
        return;
    }
    for t in &p.tiers {
        comment(o, &tier_comment(t));
        o.push_str("[[tier]]\n");
        let _ = writeln!(o, "path = {}", quote(&rel(&t.rel)));
        o.push_str("access = \"read-only\"\n\n");
    }
}

fn tier_comment(t: &TierProposal) -> String {
    let mut s = match t.kind {
        TierKind::Models if t.models.len() > 1 => {
            let names: Vec<String> = t.models.iter().map(|m| rel(m)).collect();
            format!("Base models ({}): {}.", t.models.len(), names.join(", "))
        }
        TierKind::Models => "A base model.".to_owned(),
        TierKind::Adapter => "An adapter (LoRA or similar): small weights loaded on top of a \
                              base model, often downloaded on their own and replaced more \
                              often; a tier of its own so it is sealed and checked on its own."
            .to_owned(),
        TierKind::HfCache => "A Hugging Face cache entry (blobs/, snapshots/ and refs/): the \
                              whole entry is read-only, the symlinks in snapshots/ included."
            .to_owned(),
        TierKind::File => "A single weight file beside the app's code: the directory cannot be \
                           read-only as a whole, so the file is. Better: move it into a \
                           directory of its own, such as models/."
            .to_owned(),
    };
    if let Some(outer) = &t.inside {
        let _ = write!(
            s,
            " It is inside the tier {} (read-only as well) and listed on its own.",
            rel(outer)
        );
    }
    let _ = write!(
        s,
        "\nFound: {}, {}; weights: {}.",
        count(t.files, "file"),
        human_size(t.bytes),
        formats_list(t.formats.iter().map(|(k, v)| (*k, *v)))
    );
    for c in t.code.iter().take(5) {
        let name = c
            .file_name()
            .map_or_else(|| rel(c), |n| n.to_string_lossy().into_owned());
        let _ = write!(
            s,
            "\n{name} is a pickle: it runs code when loaded. Prefer a safetensors version; \
             warden scans it before every start."
        );
    }
    if t.code.len() > 5 {
        let _ = write!(s, "\n... and {} more pickle files.", t.code.len() - 5);
    }
    s
}

fn private(o: &mut String, p: &Proposal) {
    let state = |d: &Private| {
        if d.exists {
            "it exists"
        } else {
            "`warden harden` creates it"
        }
    };
    comment(
        o,
        &format!(
            "What the service prints on stdout and stderr is captured here ({}): redacted \
             (prompts, secrets, personal data), filtered by level and rotated between lines, so \
             nothing is lost. Owned by the service, 0750; files 0640.",
            state(&p.logs)
        ),
    );
    o.push_str("[logs]\n");
    let _ = writeln!(o, "dir = {}", quote(&p.logs.dir));
    o.push_str("level = \"info\"\n");
    o.push_str("redact = [\"prompts\", \"secrets\", \"pii\"]\n");
    o.push_str(
        "rotate = { every = \"daily\", size = \"100MiB\", keep = 7, compress = true, \
         delay-compress = true }\n\n",
    );
    comment(
        o,
        &format!(
            "The service's private temp directory, 0700 ({}): TMPDIR and GRADIO_TEMP_DIR point \
             here, so uploads land here too.",
            state(&p.tmp)
        ),
    );
    o.push_str("[tmp]\n");
    let _ = writeln!(o, "dir = {}", quote(&p.tmp.dir));
    o.push_str("clean-on-start = false\n\n");
    comment(
        o,
        &format!(
            "Private state, 0700 ({}): the integrity manifest, the caches (XDG_CACHE_HOME, \
             HF_HOME...), and the service's HOME when its account has none.",
            state(&p.state)
        ),
    );
    o.push_str("[state]\n");
    let _ = writeln!(o, "dir = {}\n", quote(&p.state.dir));
    comment(
        o,
        "Kernel-enforced limits. landlock = \"required\" refuses to start without Landlock; \
         \"best-effort\" uses what the kernel offers and says what is missing.",
    );
    o.push_str("[sandbox]\n");
    o.push_str("landlock = \"best-effort\"\n");
    if p.nvidia {
        comment(
            o,
            "An NVIDIA GPU is present: the service may open its devices.",
        );
        o.push_str("devices = [\"nvidia\"]\n\n");
    } else {
        comment(
            o,
            "Device presets the service may open, for GPUs:\ndevices = [\"nvidia\"]  # or \"dri\"",
        );
        o.push('\n');
    }
    comment(
        o,
        "Before every start: check the sealed tiers against the manifest (quick: sizes and \
         times; full: hashes), and refuse model files that would run code.",
    );
    o.push_str("[integrity]\n");
    o.push_str("verify = \"quick\"\n");
    o.push_str("scan = true\n");
}

/// The summary printed to stderr.
pub fn summary(p: &Proposal) -> String {
    let g = &p.guess;
    let mut s = String::new();
    let _ = writeln!(s, "warden init: {}", term::path(&p.root));
    let _ = writeln!(
        s,
        "  service  {} (account {}{})",
        term::escape(&p.name),
        term::escape(&p.user),
        if p.user_derived {
            ", from the directory name"
        } else {
            ""
        }
    );
    match &g.command {
        Some(cmd) => {
            let shown: Vec<String> = cmd.iter().map(|a| super::shell::quote(a)).collect();
            let _ = writeln!(
                s,
                "  command  {}{}",
                term::escape(&shown.join(" ")),
                g.source
                    .as_ref()
                    .map(|src| format!("  (from {src})"))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(s, "  command  CHANGE-ME (a placeholder: fill it in)");
        }
    }
    let _ = writeln!(
        s,
        "  listen   {}{}",
        g.listen
            .map_or_else(|| "(fill it in)".to_owned(), |a| a.to_string()),
        if g.server == Server::Unknown {
            String::new()
        } else {
            format!("  ({})", g.server.name())
        }
    );
    if p.tiers.is_empty() {
        let _ = writeln!(s, "  tiers    none (no model weights found)");
    }
    for (i, t) in p.tiers.iter().enumerate() {
        let what = match t.kind {
            TierKind::Models if t.models.len() > 1 => format!("{} models", t.models.len()),
            TierKind::Models => "model".into(),
            TierKind::Adapter => "adapter".into(),
            TierKind::HfCache => "Hugging Face cache".into(),
            TierKind::File => "single file".into(),
        };
        let _ = writeln!(
            s,
            "  {}  {}  read-only, {}: {}, {}",
            if i == 0 { "tiers  " } else { "       " },
            term::path(&t.rel),
            what,
            count(t.files, "file"),
            human_size(t.bytes)
        );
    }
    let private = |d: &Private| {
        format!(
            "{}{}",
            term::escape(&d.dir),
            if d.exists { "" } else { " (new)" }
        )
    };
    let _ = writeln!(
        s,
        "  logs     {}   tmp {}   state {}",
        private(&p.logs),
        private(&p.tmp),
        private(&p.state)
    );
    let _ = writeln!(
        s,
        "  formats  {} (in {}, {})",
        formats_list(p.formats.iter().map(|(k, (n, _))| (*k, *n))),
        count(p.files, "file"),
        human_size(p.bytes)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_are_valid_toml() {
        for s in [
            "plain",
            "a\"b",
            r"back\slash",
            "new\nline",
            "it's",
            "tab\t\u{7f}\u{1b}[2J",
            "ünï",
            "",
        ] {
            let doc = format!("k = {}\n", quote(s));
            let v: toml::Table = toml::from_str(&doc).unwrap();
            assert_eq!(v["k"].as_str(), Some(s), "{doc}");
            assert!(!doc.trim_end().contains('\n'));
        }
        assert_eq!(key("HF_HUB_OFFLINE"), "HF_HUB_OFFLINE");
        assert_eq!(key("a.b"), "\"a.b\"");
    }

    #[test]
    fn comments_cannot_be_escaped() {
        let mut o = String::new();
        comment(&mut o, "file x\u{b}\r[service]\u{85}y");
        for line in o.lines() {
            assert!(line.starts_with('#'), "{line:?}");
        }
        let t: toml::Table = toml::from_str(&o).unwrap();
        assert!(t.is_empty());
    }
}
