use super::*;

fn scan_any(d: &[u8]) -> Outcome {
    scan(d, &Options::new(Loader::Pickle))
}

fn rules(o: &Outcome) -> Vec<&'static str> {
    o.findings.iter().map(|f| f.rule).collect()
}

#[test]
fn benign_protocol2_ordered_dict() {
    // collections.OrderedDict() with one item, protocol 2.
    let d = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00aq\x02K\x01s.";
    let o = scan_any(d);
    assert!(o.findings.is_empty(), "{:?}", o.findings);
    assert_eq!(o.pickles, 1);
}

#[test]
fn os_system_protocol0() {
    let o = scan_any(b"cos\nsystem\n(S'echo hi'\ntR.");
    assert!(rules(&o).contains(&"pickle/global"));
    assert!(o.findings.iter().any(|f| f.severity == Severity::Critical));
}

#[test]
fn stack_global_from_memo_literal_resolves() {
    // PROTO 4, 'os' MEMOIZE, 'system' MEMOIZE, POP POP, GET 0, GET 1, STACK_GLOBAL.
    let d = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x9400h\x00h\x01\x93)R.";
    let o = scan_any(d);
    assert!(
        o.findings
            .iter()
            .any(|f| f.global.as_deref() == Some("os.system")),
        "{:?}",
        o.findings
    );
}

#[test]
fn stack_global_nonliteral_is_critical() {
    // The module name is the result of a call.
    let d = b"\x80\x04\x8c\x08builtins\x8c\x03str\x93)R\x8c\x06system\x93.";
    let o = scan_any(d);
    assert!(
        rules(&o).contains(&"pickle/stack-global-operand"),
        "{:?}",
        o.findings
    );
}

#[test]
fn missing_memo_key_is_malformed() {
    let o = scan_any(b"\x80\x04h\x05.");
    assert!(rules(&o).contains(&"pickle/malformed"));
}

#[test]
fn trailing_garbage_after_malicious() {
    let o = scan_any(b"cos\nsystem\n(S'x'\ntR.\xff\xfe garbage");
    assert!(o.findings.iter().any(|f| f.severity == Severity::Critical));
    assert!(rules(&o).contains(&"pickle/trailing-data"));
}

#[test]
fn frame_crossing_is_flagged_and_both_readings_scanned() {
    // FRAME of 3 bytes, then SHORT_BINUNICODE of 8 whose bytes run past it.
    let mut d = b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00".to_vec();
    d.extend_from_slice(b"\x8c\x08");
    d.extend_from_slice(b"cos\nsystem\n)R.");
    let o = scan_any(&d);
    assert!(rules(&o).contains(&"pickle/frame"), "{:?}", o.findings);
}

#[test]
fn dotted_name() {
    let d = b"\x80\x04\x8c\x07pathlib\x8c\tos.system\x93.";
    let o = scan_any(d);
    assert!(rules(&o).contains(&"pickle/dotted-name"));
}

#[test]
fn build_on_module() {
    let d = b"\x80\x02cnumpy\ndtype\n}b.";
    let o = scan_any(d);
    assert!(rules(&o).contains(&"pickle/build"), "{:?}", o.findings);
}

#[test]
fn ext_via_add_extension() {
    // copyreg.add_extension('os', 'system', 7) then EXT1 7.
    let d = b"\x80\x02ccopyreg\nadd_extension\nX\x02\x00\x00\x00osX\x06\x00\x00\x00systemK\x07\x87R0\x82\x07)R.";
    let o = scan_any(d);
    assert!(
        o.findings
            .iter()
            .any(|f| f.global.as_deref() == Some("os.system")),
        "{:?}",
        o.findings
    );
}

#[test]
fn probe_ignores_text() {
    let o = scan(
        b"contributing\nguidelines\nare here\n",
        &Options {
            probe: true,
            ..Options::new(Loader::Pickle)
        },
    );
    assert!(o.findings.is_empty());
    assert!(!o.is_pickle);
}

#[test]
fn escapes() {
    assert_eq!(decode_escapes(br"o\x73"), "os");
    assert_eq!(decode_escapes(br"\157s"), "os");
    assert_eq!(decode_raw_unicode_escape(br"\u006fs"), "os");
}
