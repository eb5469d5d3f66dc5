//! The service's environment: built from scratch, never inherited whole. An allow-list of the
//! caller's variables, then warden's AI-aware defaults (temp and cache directories in the
//! private dirs, telemetry off), then the policy's own `env`, which wins over both.

use std::collections::BTreeMap;
use std::path::Path;

use crate::policy::Policy;

/// Variables copied from warden's caller when set. `LC_*` is matched as a prefix.
pub const INHERITED: &[&str] = &["PATH", "LANG", "LANGUAGE", "TZ", "LC_*"];

/// PATH when the caller has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a default points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The private temp directory.
    Tmp,
    /// The state directory (persistent caches and config).
    State,
    /// A literal value.
    Value,
}

/// warden's defaults: (variable, base, value). Paths are relative to their base directory.
pub const DEFAULTS: &[(&str, Base, &str)] = &[
    ("TMPDIR", Base::Tmp, ""),
    ("TEMP", Base::Tmp, ""),
    ("TMP", Base::Tmp, ""),
    ("GRADIO_TEMP_DIR", Base::Tmp, "gradio"),
    ("XDG_CACHE_HOME", Base::State, "cache"),
    ("XDG_CONFIG_HOME", Base::State, "config"),
    ("XDG_DATA_HOME", Base::State, "data"),
    ("HF_HOME", Base::State, "cache/huggingface"),
    ("TORCH_HOME", Base::State, "cache/torch"),
    (
        "TORCHINDUCTOR_CACHE_DIR",
        Base::State,
        "cache/torchinductor",
    ),
    ("TRITON_CACHE_DIR", Base::State, "cache/triton"),
    ("CUDA_CACHE_PATH", Base::State, "cache/nv"),
    ("NUMBA_CACHE_DIR", Base::State, "cache/numba"),
    ("MPLCONFIGDIR", Base::State, "cache/matplotlib"),
    ("PYTHONPYCACHEPREFIX", Base::State, "cache/pycache"),
    ("PYTHONUNBUFFERED", Base::Value, "1"),
    ("GRADIO_ANALYTICS_ENABLED", Base::Value, "False"),
    ("GRADIO_SHARE", Base::Value, "False"),
    ("HF_HUB_DISABLE_TELEMETRY", Base::Value, "1"),
    ("DO_NOT_TRACK", Base::Value, "1"),
    ("DISABLE_TELEMETRY", Base::Value, "1"),
    ("VLLM_NO_USAGE_STATS", Base::Value, "1"),
    ("VLLM_DO_NOT_TRACK", Base::Value, "1"),
    ("ANONYMIZED_TELEMETRY", Base::Value, "False"),
    ("STREAMLIT_BROWSER_GATHER_USAGE_STATS", Base::Value, "false"),
    ("WANDB_MODE", Base::Value, "disabled"),
];

/// Who the service runs as, for HOME, USER and LOGNAME.
#[derive(Debug, Clone)]
pub struct Identity<'a> {
    pub user: &'a str,
    /// The account's home directory; used only when it exists and is not `/`.
    pub home: Option<&'a Path>,
}

/// Builds the service's environment. `caller` is warden's own environment.
pub fn build<I>(policy: &Policy, who: &Identity<'_>, caller: I) -> BTreeMap<String, String>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut env = BTreeMap::new();
    for (k, v) in caller {
        let allowed = INHERITED.iter().any(|a| {
            a.strip_suffix('*')
                .map_or(*a == k, |prefix| k.starts_with(prefix))
        });
        if allowed && !v.contains('\0') {
            env.insert(k, v);
        }
    }
    env.entry("PATH".to_owned())
        .or_insert_with(|| DEFAULT_PATH.to_owned());
    let home = who
        .home
        .filter(|h| h.is_absolute() && *h != Path::new("/") && h.is_dir())
        .unwrap_or(&policy.state_dir);
    env.insert("HOME".to_owned(), home.to_string_lossy().into_owned());
    env.insert("USER".to_owned(), who.user.to_owned());
    env.insert("LOGNAME".to_owned(), who.user.to_owned());
    for (k, base, v) in DEFAULTS {
        let value = match base {
            Base::Tmp => join(&policy.tmp_dir, v),
            Base::State => join(&policy.state_dir, v),
            Base::Value => (*v).to_owned(),
        };
        env.insert((*k).to_owned(), value);
    }
    for (k, v) in &policy.service.env {
        env.insert(k.clone(), v.clone());
    }
    env
}

fn join(dir: &Path, rel: &str) -> String {
    if rel.is_empty() {
        dir.to_owned()
    } else {
        dir.join(rel)
    }
    .to_string_lossy()
    .into_owned()
}

/// Directories named by the defaults that must exist before the service starts.
pub fn dirs_to_create(env: &BTreeMap<String, String>, policy: &Policy) -> Vec<std::path::PathBuf> {
    DEFAULTS
        .iter()
        .filter(|(_, base, _)| *base != Base::Value)
        .filter_map(|(k, _, _)| env.get(*k))
        .map(std::path::PathBuf::from)
        .filter(|p| p.starts_with(&policy.tmp_dir) || p.starts_with(&policy.state_dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> (tempfile::TempDir, Policy) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("models")).unwrap();
        let text = format!(
            "[service]\nname = \"s\"\ncommand = [\"x\"]\nuser = \"svc\"\n{extra}\n[[tier]]\npath = \"models\"\n"
        );
        let p = Policy::from_str(&text, &d.path().join("warden.toml")).unwrap();
        (d, p)
    }

    fn caller() -> Vec<(String, String)> {
        [
            ("PATH", "/opt/venv/bin:/usr/bin"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("SECRET_TOKEN", "hunter2"),
            ("HF_TOKEN", "hf_xxx"),
            ("HOME", "/root"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("TMPDIR", "/tmp"),
            ("http_proxy", "http://user:pw@proxy:3128"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn only_the_allow_list_gets_through() {
        let (_d, p) = policy("");
        let env = build(
            &p,
            &Identity {
                user: "svc",
                home: None,
            },
            caller(),
        );
        assert_eq!(env["PATH"], "/opt/venv/bin:/usr/bin");
        assert_eq!(env["LANG"], "C.UTF-8");
        assert_eq!(env["LC_ALL"], "C");
        for k in ["SECRET_TOKEN", "HF_TOKEN", "LD_PRELOAD", "http_proxy"] {
            assert!(!env.contains_key(k), "{k} leaked");
        }
        assert_eq!(env["HOME"], p.state_dir.to_string_lossy());
        assert_eq!(env["USER"], "svc");
    }

    #[test]
    fn temp_and_caches_point_into_private_dirs() {
        let (_d, p) = policy("");
        let env = build(
            &p,
            &Identity {
                user: "svc",
                home: Some(Path::new("/nonexistent")),
            },
            caller(),
        );
        assert_eq!(env["TMPDIR"], p.tmp_dir.to_string_lossy());
        assert_eq!(
            env["GRADIO_TEMP_DIR"],
            p.tmp_dir.join("gradio").to_string_lossy()
        );
        assert_eq!(
            env["HF_HOME"],
            p.state_dir.join("cache/huggingface").to_string_lossy()
        );
        assert_eq!(env["GRADIO_ANALYTICS_ENABLED"], "False");
        assert_eq!(env["HF_HUB_DISABLE_TELEMETRY"], "1");
        assert_eq!(env["HOME"], p.state_dir.to_string_lossy());
        let dirs = dirs_to_create(&env, &p);
        assert!(dirs.contains(&p.tmp_dir.join("gradio")));
    }

    #[test]
    fn policy_env_overrides_defaults() {
        let (_d, p) =
            policy("env = { HF_HOME = \"/data/hf\", DO_NOT_TRACK = \"0\", EXTRA = \"1\" }");
        let env = build(
            &p,
            &Identity {
                user: "svc",
                home: None,
            },
            caller(),
        );
        assert_eq!(env["HF_HOME"], "/data/hf");
        assert_eq!(env["DO_NOT_TRACK"], "0");
        assert_eq!(env["EXTRA"], "1");
    }
}
