use super::*;

#[test]
fn exit_codes() {
    let mut r = Report::default();
    assert_eq!(r.exit_code(), 0);
    r.files.push(FileReport {
        path: "a".into(),
        format: None,
        size: 0,
        findings: vec![],
        error: Some("x".into()),
    });
    assert_eq!(r.exit_code(), 2);
    r.files.push(FileReport {
        path: "b".into(),
        format: None,
        size: 0,
        findings: vec![Finding::new(Severity::Critical, "pickle/global", "x")],
        error: None,
    });
    // A finding wins over an error.
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn raw_pickle_bytes() {
    let (f, findings) = scan_bytes(b"\x80\x02cos\nsystem\nq\x00.", &Limits::default());
    assert_eq!(f, Format::Pickle { protocol: 2 });
    assert!(!findings.is_empty());
}

#[test]
fn text_pickle_with_garbage_is_still_seen() {
    // Not detected as a pickle (it does not end with STOP), but it runs os.system.
    let (_, findings) = scan_bytes(b"N0cos\nsystem\n(S'id'\ntR.trailing", &Limits::default());
    assert!(
        findings.iter().any(|f| f.severity == Severity::Critical),
        "{findings:?}"
    );
}

#[test]
fn unknown_text_is_clean() {
    let (_, findings) = scan_bytes(b"{\"architectures\": [\"X\"]}\n", &Limits::default());
    assert!(findings.is_empty());
    let (_, findings) = scan_bytes(b"contributing\nguidelines\n", &Limits::default());
    assert!(findings.is_empty());
}

#[test]
fn safetensors_checks() {
    let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header);
    f.extend_from_slice(&[0u8; 8]);
    assert!(safetensors::check(&f).is_empty());
    let mut tail = f.clone();
    tail.extend_from_slice(b"PK\x03\x04hidden");
    assert!(
        safetensors::check(&tail)
            .iter()
            .any(|x| x.rule == "safetensors/trailing-data")
    );
    let dup = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut g = (dup.len() as u64).to_le_bytes().to_vec();
    g.extend_from_slice(dup);
    g.extend_from_slice(&[0u8; 8]);
    assert!(
        safetensors::check(&g)
            .iter()
            .any(|x| x.rule == "safetensors/duplicate-key")
    );
}

#[test]
fn gguf_template() {
    assert!(
        gguf::template_injection("{{ cycler.__init__.__globals__.os.popen('id').read() }}")
            .is_some()
    );
    assert!(gguf::template_injection("{{ ''['\\x5f\\x5fclass\\x5f\\x5f'] }}").is_some());
    assert!(
        gguf::template_injection(
            "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{% endfor %}"
        )
        .is_none()
    );
}
