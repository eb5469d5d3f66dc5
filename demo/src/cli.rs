//! Command-line flags, with Gradio's environment variables as defaults.

use std::path::PathBuf;

pub const USAGE: &str = "\
image-edit-demo: a small image-editing web service that behaves like a Gradio app
(it stands in for e.g. Qwen-Image-Edit served by app_gradio.py).

Usage:
  image-edit-demo [OPTIONS]               serve the web page and the API
  image-edit-demo gen-weights DIR         write the demo model files under DIR (a models/ dir)
  image-edit-demo sample-image OUT.png [--size WxH]
                                          write a small test picture

Options:
  --server-name ADDR   address to listen on [env GRADIO_SERVER_NAME, default 127.0.0.1]
  --server-port PORT   port to listen on, 0 for any [env GRADIO_SERVER_PORT, default 7860]
  --share              open a public share link (simulated: nothing is opened)
                       [env GRADIO_SHARE=True]
  --models DIR         the models directory [default: models]
  -h, --help           print this help
  -V, --version        print the version

Uploads and results are written under GRADIO_TEMP_DIR, else $TMPDIR/gradio, else
/tmp/gradio.

Endpoints:
  GET  /                  the web page
  GET  /healthz           200 \"ok\" once the models are loaded
  GET  /api/info          the loaded models, tensors and operations (JSON)
  POST /api/edit?prompt=TEXT&strength=S   body: a PNG or JPEG image; returns a PNG
";

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Serve(ServeOptions),
    GenWeights {
        dir: PathBuf,
    },
    SampleImage {
        out: PathBuf,
        width: u32,
        height: u32,
    },
    Help,
    Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    pub server_name: String,
    pub server_port: u16,
    pub share: bool,
    pub models: PathBuf,
    pub temp_dir: PathBuf,
}

/// The environment variables the demo reads, like Gradio does.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub server_name: Option<String>,
    pub server_port: Option<String>,
    pub share: Option<String>,
    pub gradio_temp_dir: Option<String>,
    pub tmpdir: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        let get = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        Env {
            server_name: get("GRADIO_SERVER_NAME"),
            server_port: get("GRADIO_SERVER_PORT"),
            share: get("GRADIO_SHARE"),
            gradio_temp_dir: get("GRADIO_TEMP_DIR"),
            tmpdir: get("TMPDIR"),
        }
    }

    /// Where uploads go: GRADIO_TEMP_DIR, else $TMPDIR/gradio, else /tmp/gradio.
    pub fn temp_dir(&self) -> PathBuf {
        match (&self.gradio_temp_dir, &self.tmpdir) {
            (Some(d), _) => PathBuf::from(d),
            (None, Some(t)) => PathBuf::from(t).join("gradio"),
            (None, None) => PathBuf::from("/tmp/gradio"),
        }
    }
}

fn port(s: &str, from: &str) -> Result<u16, String> {
    s.parse()
        .map_err(|_| format!("{from}: {s:?} is not a port number (0-65535)"))
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String], env: &Env) -> Result<Command, String> {
    let mut opts = ServeOptions {
        server_name: env
            .server_name
            .clone()
            .unwrap_or_else(|| "127.0.0.1".into()),
        server_port: match &env.server_port {
            Some(p) => port(p, "GRADIO_SERVER_PORT")?,
            None => 7860,
        },
        share: env
            .share
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        models: PathBuf::from("models"),
        temp_dir: env.temp_dir(),
    };
    let mut it = args.iter();
    match args.first().map(String::as_str) {
        Some("gen-weights") => {
            return match &args[1..] {
                [dir] => Ok(Command::GenWeights {
                    dir: PathBuf::from(dir),
                }),
                _ => Err("usage: image-edit-demo gen-weights DIR".into()),
            };
        }
        Some("sample-image") => return parse_sample(&args[1..]),
        _ => {}
    }
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--server-name" => opts.server_name = value(flag)?,
            "--server-port" => opts.server_port = port(&value(flag)?, flag)?,
            "--models" => opts.models = PathBuf::from(value(flag)?),
            "--share" if inline.is_none() => opts.share = true,
            _ => return Err(format!("unknown argument {arg:?} (see --help)")),
        }
    }
    Ok(Command::Serve(opts))
}

fn parse_sample(args: &[String]) -> Result<Command, String> {
    let usage = "usage: image-edit-demo sample-image OUT.png [--size WxH]";
    let (mut width, mut height) = (64, 48);
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--size" {
            let s = it.next().ok_or(usage)?;
            let (w, h) = s.split_once('x').ok_or(usage)?;
            width = w.parse().map_err(|_| usage)?;
            height = h.parse().map_err(|_| usage)?;
            if width == 0 || height == 0 || width > 4096 || height > 4096 {
                return Err("--size: each side must be 1-4096".into());
            }
        } else if out.is_none() && !a.starts_with('-') {
            out = Some(PathBuf::from(a));
        } else {
            return Err(usage.into());
        }
    }
    Ok(Command::SampleImage {
        out: out.ok_or(usage)?,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn serve(s: &str, env: &Env) -> ServeOptions {
        match parse(&args(s), env).unwrap() {
            Command::Serve(o) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_gradios() {
        let o = serve("", &Env::default());
        assert_eq!(o.server_name, "127.0.0.1");
        assert_eq!(o.server_port, 7860);
        assert!(!o.share);
        assert_eq!(o.models, PathBuf::from("models"));
        assert_eq!(o.temp_dir, PathBuf::from("/tmp/gradio"));
    }

    #[test]
    fn flags_override_the_environment() {
        let env = Env {
            server_name: Some("0.0.0.0".into()),
            server_port: Some("8000".into()),
            share: Some("True".into()),
            gradio_temp_dir: None,
            tmpdir: Some("/srv/app/tmp".into()),
        };
        let o = serve("", &env);
        assert_eq!(
            (o.server_name.as_str(), o.server_port, o.share),
            ("0.0.0.0", 8000, true)
        );
        assert_eq!(o.temp_dir, PathBuf::from("/srv/app/tmp/gradio"));
        let o = serve("--server-name 127.0.0.2 --server-port=0 --models /m", &env);
        assert_eq!((o.server_name.as_str(), o.server_port), ("127.0.0.2", 0));
        assert_eq!(o.models, PathBuf::from("/m"));
    }

    #[test]
    fn share_from_flag_or_env() {
        assert!(serve("--share", &Env::default()).share);
        let env = |v: &str| Env {
            share: Some(v.into()),
            ..Env::default()
        };
        assert!(serve("", &env("true")).share);
        assert!(!serve("", &env("False")).share);
        assert!(!serve("", &env("1")).share);
    }

    #[test]
    fn gradio_temp_dir_wins() {
        let env = Env {
            gradio_temp_dir: Some("/g".into()),
            tmpdir: Some("/t".into()),
            ..Env::default()
        };
        assert_eq!(env.temp_dir(), PathBuf::from("/g"));
    }

    #[test]
    fn subcommands_and_errors() {
        assert_eq!(
            parse(&args("gen-weights out"), &Env::default()).unwrap(),
            Command::GenWeights { dir: "out".into() }
        );
        assert_eq!(
            parse(&args("sample-image a.png --size 10x20"), &Env::default()).unwrap(),
            Command::SampleImage {
                out: "a.png".into(),
                width: 10,
                height: 20
            }
        );
        assert_eq!(
            parse(&args("--help"), &Env::default()).unwrap(),
            Command::Help
        );
        assert!(parse(&args("--server-port 99999"), &Env::default()).is_err());
        assert!(parse(&args("--server-port"), &Env::default()).is_err());
        assert!(parse(&args("--bogus"), &Env::default()).is_err());
        assert!(parse(&args("gen-weights"), &Env::default()).is_err());
        let bad_env = Env {
            server_port: Some("http".into()),
            ..Env::default()
        };
        assert!(parse(&[], &bad_env).is_err());
    }
}
