use super::*;
use crate::policy::Policy;

/// A deployment built from (path, contents); a path ending in `->target` is a symlink.
fn deployment(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, data) in files {
        if let Some((link, target)) = p.split_once("->") {
            let path = d.path().join(link);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, path).unwrap();
            continue;
        }
        let path = d.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    d
}

fn safetensors() -> Vec<u8> {
    let h = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut v = (h.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(h);
    v.extend_from_slice(&[0; 4]);
    v
}

const PICKLE: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.";

fn tiers(p: &Proposal) -> Vec<(String, TierKind)> {
    p.tiers
        .iter()
        .map(|t| (t.rel.to_string_lossy().into_owned(), t.kind))
        .collect()
}

/// The proposal must load as the deployment's own policy.
fn validates(d: &tempfile::TempDir, p: &Proposal) -> Policy {
    let file = d.path().canonicalize().unwrap().join("warden.toml");
    Policy::from_str(&p.to_toml(), &file).unwrap_or_else(|e| panic!("{e}\n{}", p.to_toml()))
}

#[test]
fn models_sharing_a_parent_collapse_adapters_stay_apart() {
    let st = safetensors();
    let d = deployment(&[
        ("app.py", b"import gradio\n"),
        ("models/Qwen/Qwen-Image/transformer/a.safetensors", &st),
        ("models/Qwen/Qwen-Image/vae/b.safetensors", &st),
        ("models/Qwen/Qwen-Image/model_index.json", b"{}"),
        ("models/Qwen/Qwen-Image/tokenizer/vocab.json", b"{}"),
        ("models/Qwen/Qwen-Image-Edit/weights.dat", &st),
        ("models/DiffSynth/F2P/adapter_model.bin", PICKLE),
        ("models/DiffSynth/F2P/adapter_config.json", b"{}"),
        ("models/loras/style.safetensors", &st),
        (
            "other/solo/model.gguf",
            b"GGUF\x03\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ),
        ("docs/model.safetensors", b"not a model at all\n"),
    ]);
    let p = propose(d.path(), None).unwrap();
    assert_eq!(
        tiers(&p),
        [
            ("models/DiffSynth/F2P".into(), TierKind::Adapter),
            ("models/Qwen".into(), TierKind::Models),
            ("models/loras".into(), TierKind::Adapter),
            ("other/solo".into(), TierKind::Models),
        ]
    );
    let qwen = &p.tiers[1];
    assert_eq!(qwen.models.len(), 2);
    assert_eq!(qwen.files, 5);
    assert_eq!(qwen.formats["safetensors"], 3);
    assert_eq!(p.tiers[0].code.len(), 1);
    assert!(p.warnings.iter().any(|w| {
        w.contains("models/DiffSynth/F2P/adapter_model.bin is a pickle: it runs code when loaded")
    }));
    assert!(!p.formats.contains_key("unknown"));
    validates(&d, &p);
}

#[test]
fn collapsing_stops_at_the_app_and_the_root() {
    let st = safetensors();
    let d = deployment(&[
        ("a/model.safetensors", &st),
        ("b/model.safetensors", &st),
        ("src/app.py", b"import gradio\n"),
        ("src/weights/x.safetensors", &st),
        ("src/weights2/y.safetensors", &st),
        ("beside_the_app.pt", PICKLE),
    ]);
    let p = propose(d.path(), None).unwrap();
    assert_eq!(
        tiers(&p),
        [
            ("a".into(), TierKind::Models),
            ("b".into(), TierKind::Models),
            ("beside_the_app.pt".into(), TierKind::File),
            ("src/weights".into(), TierKind::Models),
            ("src/weights2".into(), TierKind::Models),
        ]
    );
    validates(&d, &p);
}

#[test]
fn hugging_face_cache_entries_are_tiers() {
    let st = safetensors();
    let d = deployment(&[
        ("start.sh", b"python3 app.py\n"),
        ("app.py", b"import gradio\n"),
        ("hub/models--Qwen--Qwen-Image/blobs/0123abcd", &st),
        ("hub/models--Qwen--Qwen-Image/blobs/4567ef01", b"{\"a\": 1}"),
        ("hub/models--Qwen--Qwen-Image/refs/main", b"deadbeef"),
        (
            "hub/models--Qwen--Qwen-Image/snapshots/deadbeef/model.safetensors->../../blobs/0123abcd",
            b"",
        ),
        ("hub/models--org--lora/blobs/89ab", &st),
        (
            "hub/models--org--lora/snapshots/r/adapter_config.json->../../blobs/x",
            b"",
        ),
        (
            "hub/models--org--lora/snapshots/r/adapter_model.safetensors->../../blobs/89ab",
            b"",
        ),
        ("hub/version.txt", b"1"),
    ]);
    let p = propose(d.path(), None).unwrap();
    assert_eq!(
        tiers(&p),
        [
            ("hub/models--Qwen--Qwen-Image".into(), TierKind::HfCache),
            ("hub/models--org--lora".into(), TierKind::HfCache),
        ]
    );
    assert_eq!(p.tiers[0].files, 3);
    assert_eq!(p.guess.env["HF_HUB_OFFLINE"], "1");
    validates(&d, &p);
}

#[test]
fn skipped_places_and_private_dirs() {
    let st = safetensors();
    let d = deployment(&[
        ("app.py", b"import gradio\n"),
        (".git/objects/x", &st),
        (".venv/pyvenv.cfg", b""),
        (".venv/lib/model.safetensors", &st),
        ("node_modules/m/model.safetensors", &st),
        ("log/old.safetensors", &st),
        ("tmp/upload.pkl", PICKLE),
        ("state", b"a file where state would go"),
        ("out->/nonexistent", b""),
    ]);
    let p = propose(d.path(), Some("svc")).unwrap();
    assert!(p.tiers.is_empty(), "{:?}", tiers(&p));
    assert_eq!((p.logs.dir.as_str(), p.logs.exists), ("log", true));
    assert_eq!((p.tmp.dir.as_str(), p.tmp.exists), ("tmp", true));
    assert_eq!(
        (p.state.dir.as_str(), p.state.exists),
        ("service-state", false)
    );
    assert_eq!(p.user, "svc");
    assert!(!p.user_derived);
    assert!(p.warnings.iter().any(|w| w.contains("no model weights")));
    validates(&d, &p);
}

#[test]
fn hostile_names_stay_inside_their_strings() {
    let st = safetensors();
    let d = deployment(&[
        ("app.py", b"import gradio\n"),
        ("a/we\"ird\\name/m.safetensors", &st),
        ("b/new\nline]\n[service]/m.pt", PICKLE),
    ]);
    let p = propose(d.path(), None).unwrap();
    let text = p.to_toml();
    let policy = validates(&d, &p);
    let rels: Vec<String> = policy
        .tiers
        .iter()
        .map(|t| t.rel.to_string_lossy().into_owned())
        .collect();
    assert!(rels.contains(&"a/we\"ird\\name".to_owned()), "{rels:?}");
    assert!(
        rels.contains(&"b/new\nline]\n[service]".to_owned()),
        "{rels:?}"
    );
    for w in &p.warnings {
        assert!(!w.contains('\n'), "{w:?}");
    }
    assert!(!p.summary().contains("line]\n"));
    assert!(text.contains("\n# m.pt is a pickle"), "{text}");
    assert!(text.contains("b/new\\nline]\\n[service]"), "{text}");
}

#[test]
fn account_and_service_names() {
    let a = |s: &str| account_from_dir(Path::new(s));
    assert_eq!(a("/srv/qwen_image"), "qwen_image");
    assert_eq!(a("/srv/Qwen Image Edit!"), "qwen-image-edit");
    assert_eq!(a("/srv/2024-app"), "svc-2024-app");
    assert_eq!(a("/srv/_x"), "svc-x");
    assert_eq!(a("/root"), "svc-root");
    assert_eq!(a("/srv/docker"), "svc-docker");
    assert_eq!(a("/"), "svc");
    assert_eq!(a("/srv/ünïcode"), "n-code");
    let long = a(&format!("/srv/{}", "abc-".repeat(20)));
    assert!(long.len() <= 32 && !long.ends_with('-'), "{long}");
    for s in [
        "/srv/qwen_image",
        "/srv/2024-app",
        "/",
        "/srv/ünïcode",
        "/srv/---",
    ] {
        AccountName::parse(&a(s)).unwrap();
    }
    assert_eq!(service_name(Path::new("/srv/qwen image")), "qwen-image");
    assert_eq!(service_name(Path::new("/")), "service");
    assert!(matches!(
        propose(Path::new("/"), Some("Root")),
        Err(InitError::User(_))
    ));
}

#[test]
fn sizes() {
    assert_eq!(human_size(512), "512 B");
    assert_eq!(human_size(1536), "1.5 KiB");
    assert_eq!(human_size(5 << 30), "5.0 GiB");
}
