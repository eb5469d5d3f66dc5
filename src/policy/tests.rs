use std::path::{Path, PathBuf};

use super::*;

fn deployment() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("models/base")).unwrap();
    std::fs::create_dir_all(dir.path().join("models/lora")).unwrap();
    let file = dir.path().join("warden.toml");
    (dir, file)
}

const GOOD: &str = r#"
[service]
name = "svc"
command = ["python3", "app.py"]
user = "aiuser"
group = "aiusers"
listen = ["127.0.0.1:7860"]

[[tier]]
path = "models"

[[tier]]
path = "models/lora"
mode = "0444"
"#;

fn load(text: &str, file: &Path) -> Result<Policy, PolicyError> {
    Policy::from_str(text, file)
}

#[test]
fn good_policy_resolves_paths_and_defaults() {
    let (_d, file) = deployment();
    let p = load(GOOD, &file).unwrap();
    let root = file.parent().unwrap().canonicalize().unwrap();
    assert_eq!(p.root, root);
    assert_eq!(p.tiers.len(), 2);
    assert_eq!(p.tiers[0].path, root.join("models"));
    assert_eq!(p.tiers[0].file_mode, RO_FILE_MODE);
    assert_eq!(p.tiers[0].dir_mode, RO_DIR_MODE);
    assert_eq!(p.tiers[0].owner.as_str(), "root");
    assert_eq!(p.tiers[0].group.as_str(), "aiusers");
    assert_eq!(p.tiers[1].file_mode, Mode(0o444));
    assert_eq!(p.tmp_dir, root.join("tmp"));
    assert_eq!(p.logs_dir, root.join("logs"));
    assert_eq!(p.state_dir, root.join("state"));
    // The most specific tier wins.
    assert_eq!(
        p.tier_for(&root.join("models/lora/a.bin"))
            .unwrap()
            .file_mode,
        Mode(0o444)
    );
    assert_eq!(
        p.tier_for(&root.join("models/base/a.bin"))
            .unwrap()
            .file_mode,
        RO_FILE_MODE
    );
    assert!(p.tier_for(&root.join("app.py")).is_none());
}

fn errors(text: &str) -> Vec<String> {
    let (_d, file) = deployment();
    match load(text, &file) {
        Ok(_) => panic!("policy accepted:\n{text}"),
        Err(e) => e
            .diagnostics()
            .iter()
            .map(|d| {
                let s = d.to_string();
                s[s.find("warden.toml").unwrap()..].to_owned()
            })
            .collect(),
    }
}

#[test]
fn unknown_key_has_line_and_column() {
    let e = errors("[service]\nname = \"x\"\ncommand = [\"a\"]\nuser = \"u\"\nusr = \"v\"\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("warden.toml:5:1: unknown field `usr`"),
        "{e:?}"
    );
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = errors("[service]\nname = \"x\n");
    assert!(e[0].starts_with("warden.toml:2:"), "{e:?}");
}

#[test]
fn bad_values_are_located() {
    let e = errors("[service]\nname = \"x\"\ncommand = [\"a\"]\nuser = \"Bad User\"\n");
    assert!(
        e[0].starts_with("warden.toml:4:8:") && e[0].contains("invalid account name"),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("mode = \"0444\"", "mode = 444"));
    assert!(e[0].contains("quoted octal string"), "{e:?}");
    let e = errors(&GOOD.replace("\"0444\"", "\"0999\""));
    assert!(e[0].contains("invalid mode"), "{e:?}");
}

#[test]
fn tier_outside_or_missing_is_rejected() {
    let e = errors(&GOOD.replace("path = \"models\"\n", "path = \"../elsewhere\"\n"));
    assert!(
        e[0].contains("tier[0].path: ../elsewhere is outside the deployment"),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("path = \"models\"\n", "path = \"modles\"\n"));
    assert!(e[0].starts_with("warden.toml:10:8: tier[0].path:"), "{e:?}");
}

#[test]
fn symlinked_tier_escaping_is_rejected() {
    let (d, file) = deployment();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), d.path().join("escape")).unwrap();
    let text = GOOD.replace("path = \"models\"\n", "path = \"escape\"\n");
    let err = load(&text, &file).unwrap_err();
    assert!(err.to_string().contains("leads through a symlink"), "{err}");
}

#[test]
fn dangerous_combinations_are_rejected() {
    let e = errors(&format!("{GOOD}\n[tmp]\ndir = \"models/tmp\"\n"));
    assert!(
        e.iter().any(|m| m.contains("inside the read-only tier")),
        "{e:?}"
    );
    let e = errors(&format!("{GOOD}\n[logs]\ndir = \".\"\n"));
    assert!(e.iter().any(|m| m.contains("whole deployment")), "{e:?}");
    let e = errors(&format!("{GOOD}\n[state]\ndir = \"tmp\"\n"));
    assert!(
        e.iter()
            .any(|m| m.contains("the same directory as tmp.dir")),
        "{e:?}"
    );
    let e = errors(&format!("{GOOD}\n[tmp]\ndir = \"/tmp\"\n"));
    assert!(
        e.iter().any(|m| m.contains("shared system directory")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("user = \"aiuser\"", "user = \"root\""));
    assert!(e.iter().any(|m| m.contains("allow-root")), "{e:?}");
    let e = errors(&GOOD.replace("mode = \"0444\"", "mode = \"0664\""));
    assert!(
        e.iter().any(|m| m.contains("write to a read-only tier")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("mode = \"0444\"", "owner = \"aiuser\""));
    assert!(
        e.iter().any(|m| m.contains("can chmod the files back")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace(
        "path = \"models\"\n",
        "path = \"models\"\naccess = \"read-write\"\n",
    ));
    assert!(
        e.iter().any(|m| m.contains("inside the read-write tier")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace(
        "[[tier]]\npath = \"models/lora\"",
        "[[tier]]\npath = \"models/\"",
    ));
    assert!(
        e.iter().any(|m| m.contains("the same path as tier[0]")),
        "{e:?}"
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = GOOD
        .replace("path = \"models\"\n", "path = \"../x\"\n")
        .replace("user = \"aiuser\"", "user = \"root\"");
    assert!(errors(&text).len() >= 2);
}
