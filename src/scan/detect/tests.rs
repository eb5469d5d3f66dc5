use super::*;

/// A stored (uncompressed) zip; `zip64` writes the zip64 end records with saturated classic
/// fields, as large torch checkpoints have.
fn zip(entries: &[(&str, &[u8])], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let size = data.len() as u32;
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&0u32.to_le_bytes()); // crc: never checked by torch
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);

        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u64;
    let cd_size = central.len() as u64;
    out.extend_from_slice(&central);
    let n = entries.len() as u64;
    if zip64 {
        let rec_at = out.len() as u64;
        out.extend_from_slice(b"PK\x06\x06");
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&cd_size.to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(b"PK\x06\x07");
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&rec_at.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0, 0, 0, 0]);
    if zip64 {
        out.extend_from_slice(&[0xff; 12]);
    } else {
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&(cd_size as u32).to_le_bytes());
        out.extend_from_slice(&(cd_offset as u32).to_le_bytes());
    }
    let comment = b"written by a test";
    out.extend_from_slice(&(comment.len() as u16).to_le_bytes());
    out.extend_from_slice(comment);
    out
}

fn safetensors(header: &str, data: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.resize(v.len() + data, 0);
    v
}

fn detect(b: &[u8]) -> Format {
    detect_bytes(b, b.len() as u64)
}

/// A protocol 2 pickle like torch's data.pkl: an OrderedDict rebuilt through GLOBAL + REDUCE.
const DATA_PKL: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.";

#[test]
fn safetensors_by_header_not_name() {
    let f = safetensors(
        r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        8,
    );
    assert_eq!(detect(&f), Format::Safetensors);
    assert_eq!(detect(&safetensors("{}", 0)), Format::Safetensors);
    assert_eq!(
        detect(&safetensors("{ \n \"a\": 1}", 0)),
        Format::Safetensors
    );
    // The header is longer than the file.
    let mut cut = f.clone();
    cut.truncate(20);
    assert_eq!(detect(&cut), Format::Unknown);
    // Larger than the format's bound, though the file claims to be that long.
    let mut huge = (SAFETENSORS_MAX_HEADER + 1).to_le_bytes().to_vec();
    huge.extend_from_slice(b"{\"a\":1}");
    assert_eq!(detect_bytes(&huge, 200_000_000), Format::Unknown);
    // Not a JSON object.
    assert_eq!(detect(&safetensors("[1, 2]", 0)), Format::Unknown);
    assert_eq!(detect(&safetensors("{x}", 0)), Format::Unknown);
}

#[test]
fn text_is_not_a_model() {
    for text in [
        &b"this is not a model, just a text file named model.safetensors\n"[..],
        b"(hello world)\n",
        b"(a).",
        b"cat model.bin > /dev/null\n.",
        b"c = 1\n.",
        b"}\n",
        b"]].",
        b"{\"weights\": [1, 2, 3]}\n",
        b"# README\n\nSee https://example.invalid.\n",
        b"",
        b"PK",
        b"GGUF",
        b"\x08",
    ] {
        assert_eq!(
            detect(text),
            Format::Unknown,
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn torch_zip_checkpoints() {
    let entries: &[(&str, &[u8])] = &[
        ("archive/data.pkl", DATA_PKL),
        ("archive/.format_version", b"1"),
        ("archive/byteorder", b"little"),
        ("archive/data/0", &[0u8; 64]),
        ("archive/version", b"3\n"),
    ];
    let z = zip(entries, false);
    assert_eq!(detect(&z), Format::TorchZip);
    assert_eq!(detect(&zip(entries, true)), Format::TorchZip);
    // Found by name through the central directory, case-insensitively, not only as member 0.
    let later: &[(&str, &[u8])] = &[("model/version", b"3\n"), ("model/DATA.PKL", DATA_PKL)];
    assert_eq!(detect(&zip(later, false)), Format::TorchZip);
    assert_eq!(
        detect(&zip(&[("data.pkl", DATA_PKL)], false)),
        Format::TorchZip
    );
    // Only the head: the first local header decides.
    assert_eq!(detect_bytes(&z[..64], 1 << 30), Format::TorchZip);
    // Deeper than torch looks is not a checkpoint.
    assert_eq!(
        detect(&zip(&[("a/b/data.pkl", DATA_PKL)], false)),
        Format::Zip
    );
}

#[test]
fn other_zips() {
    assert_eq!(detect(&zip(&[("readme.txt", b"hi")], false)), Format::Zip);
    let npy = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
    assert_eq!(
        detect(&zip(&[("a.npy", npy), ("b.npy", npy)], false)),
        Format::Npz
    );
    // Truncated: no central directory, and the first member is not data.pkl.
    let z = zip(&[("readme.txt", b"hi")], false);
    assert_eq!(detect(&z[..40]), Format::Zip);
    assert_eq!(
        detect(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"),
        Format::Zip
    );
}

#[test]
fn zip_read_from_a_file_uses_the_central_directory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("adapter_model.bin");
    // data.pkl far beyond the head: only the central directory finds it.
    let big = vec![7u8; HEAD_LEN * 2];
    std::fs::write(
        &p,
        zip(
            &[("archive/data/0", &big), ("archive/data.pkl", DATA_PKL)],
            false,
        ),
    )
    .unwrap();
    assert_eq!(detect_path(&p).unwrap(), Format::TorchZip);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    assert!(detect_path(&link).is_err(), "symlinks are not followed");
    assert_eq!(detect_path(dir.path()).unwrap(), Format::Unknown);
}

#[test]
fn binary_pickles() {
    assert_eq!(detect(DATA_PKL), Format::Pickle { protocol: 2 });
    assert_eq!(detect(b"\x80\x03}q\x00."), Format::Pickle { protocol: 3 });
    assert_eq!(
        detect(b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s."),
        Format::Pickle { protocol: 4 }
    );
    assert_eq!(
        detect(b"\x80\x05\x95\x02\x00\x00"),
        Format::Pickle { protocol: 5 }
    );
    // Garbage after valid opcodes still runs them: still a pickle.
    assert_eq!(
        detect(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R\xff\xff"),
        Format::Pickle { protocol: 2 }
    );
    assert_eq!(detect(b"\x80\x06}."), Format::Unknown);
    assert_eq!(detect(b"\x80\x02\xff\xff"), Format::Unknown);
}

#[test]
fn text_protocol_pickles() {
    assert_eq!(
        detect(b"(dp0\nVa\np1\nI1\ns."),
        Format::Pickle { protocol: 0 }
    );
    assert_eq!(
        detect(b"cos\nsystem\n(S'id'\ntR."),
        Format::Pickle { protocol: 0 }
    );
    assert_eq!(
        detect(b"(lp0\nL12L\naF1.5\na."),
        Format::Pickle { protocol: 0 }
    );
    assert_eq!(
        detect(b"}q\x00X\x01\x00\x00\x00aq\x01K\x01s."),
        Format::Pickle { protocol: 1 }
    );
    assert_eq!(
        detect(b"]q\x00(K\x01K\x02e."),
        Format::Pickle { protocol: 1 }
    );
    // Must end with STOP.
    assert_eq!(detect(b"(dp0\nVa\np1\nI1\ns.\n"), Format::Unknown);
    // Longer than the head: the walk through the head and the last byte decide.
    let mut long = b"(lp0\n".to_vec();
    while long.len() < HEAD_LEN + 100 {
        long.extend_from_slice(b"I1\na");
    }
    long.push(b'.');
    assert_eq!(
        detect_bytes(&long[..HEAD_LEN], long.len() as u64),
        Format::Pickle { protocol: 0 }
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, &long).unwrap();
    assert_eq!(detect_path(&p).unwrap(), Format::Pickle { protocol: 0 });
    long.push(b'\n');
    std::fs::write(&p, &long).unwrap();
    assert_eq!(detect_path(&p).unwrap(), Format::Unknown);
}

#[test]
fn legacy_torch() {
    let mut f = vec![0x80, 0x02];
    f.extend_from_slice(&LEGACY_TORCH_MAGIC);
    f.extend_from_slice(b"\x80\x02M\xe9\x03.\x80\x02}q\x00.");
    assert_eq!(detect(&f), Format::LegacyTorch);
    assert!(Format::LegacyTorch.runs_code());
}

#[test]
fn gguf() {
    let mut f = b"GGUF".to_vec();
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&2u64.to_le_bytes());
    f.extend_from_slice(&5u64.to_le_bytes());
    assert_eq!(detect(&f), Format::Gguf { version: 3 });
    f[4] = 9;
    assert_eq!(detect(&f), Format::Unknown);
    f[4] = 3;
    f[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(detect(&f), Format::Unknown);
}

/// The start of a `ModelProto` as torch.onnx.export writes it.
fn onnx() -> Vec<u8> {
    let mut f = vec![0x08, 0x08, 0x12, 0x07];
    f.extend_from_slice(b"pytorch");
    f.extend_from_slice(&[0x1a, 0x03]);
    f.extend_from_slice(b"2.1");
    let graph = [0x0a, 0x02, 0x01, 0x02];
    f.extend_from_slice(&[0x3a, graph.len() as u8]);
    f.extend_from_slice(&graph);
    f.extend_from_slice(&[0x42, 0x02, 0x10, 0x11]);
    f
}

#[test]
fn onnx_models() {
    assert_eq!(detect(&onnx()), Format::Onnx);
    // A graph longer than what was read is fine, longer than the file is not.
    let mut f = onnx();
    f.truncate(f.len() - 8);
    assert_eq!(detect_bytes(&f, 1 << 20), Format::Onnx);
    assert_eq!(detect(&f), Format::Unknown);
    // Only ir_version: not enough.
    assert_eq!(detect(&[0x08, 0x07]), Format::Unknown);
    // An implausible ir_version, an unknown field, a wrong wire type.
    let mut bad = onnx();
    bad[1] = 0x7f;
    assert_eq!(detect(&bad), Format::Unknown);
    assert_eq!(detect(&[0x08, 0x07, 0x7a, 0x01, 0x00]), Format::Unknown);
    assert_eq!(detect(&[0x08, 0x07, 0x10, 0x01]), Format::Unknown);
}

#[test]
fn arrays_and_archives() {
    let npy = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
    assert_eq!(detect(npy), Format::Npy);
    assert_eq!(detect(b"\x89HDF\r\n\x1a\n\0\0\0\0"), Format::Hdf5);
    assert_eq!(detect(b"\x1f\x8b\x08\0\0\0\0\0\0\x03"), Format::Gzip);
    assert_eq!(detect(b"7z\xbc\xaf\x27\x1c\0\x04"), Format::SevenZip);
    let mut tar = vec![0u8; 1024];
    tar[..8].copy_from_slice(b"data.pkl");
    tar[257..265].copy_from_slice(b"ustar\x0000");
    assert_eq!(detect(&tar), Format::Tar);
}

#[test]
fn kinds_and_names() {
    assert!(Format::Safetensors.is_weights());
    assert!(!Format::Safetensors.runs_code());
    assert!(Format::TorchZip.runs_code());
    assert_eq!(Format::Zip.kind(), Kind::Archive);
    assert_eq!(Format::Unknown.kind(), Kind::Other);
    assert_eq!(
        Format::Pickle { protocol: 4 }.to_string(),
        "pickle (protocol 4)"
    );
    assert_eq!(Format::Gguf { version: 3 }.to_string(), "GGUF v3");
    assert_eq!(Format::TorchZip.name(), "PyTorch zip checkpoint");
}

/// Files written by CPython's own pickle and zipfile modules, when python3 is there.
#[test]
fn python_written_files() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import pickle, zipfile, sys, collections
d = sys.argv[1]
obj = {"w": [1, 2.5, "x", b"y", (None, True)], "o": collections.OrderedDict(a=1)}
for p in range(6):
    open(f"{d}/p{p}.pkl", "wb").write(pickle.dumps(obj, protocol=p))
with zipfile.ZipFile(f"{d}/ckpt.pt", "w") as z:
    z.writestr("ckpt/data.pkl", pickle.dumps(obj, protocol=2))
    z.writestr("ckpt/data/0", b"\0" * 64)
    z.writestr("ckpt/version", "3\n")
with zipfile.ZipFile(f"{d}/deflated.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("notes.txt", "hello " * 100)
"#;
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("python3 unavailable: skipped");
        return;
    }
    for p in 0..6u8 {
        let got = detect_path(&dir.path().join(format!("p{p}.pkl"))).unwrap();
        assert_eq!(got, Format::Pickle { protocol: p }, "protocol {p}");
    }
    assert_eq!(
        detect_path(&dir.path().join("ckpt.pt")).unwrap(),
        Format::TorchZip
    );
    assert_eq!(
        detect_path(&dir.path().join("deflated.zip")).unwrap(),
        Format::Zip
    );
}

/// Truncations and corruptions of every sample, with any claimed length: never a panic.
#[test]
fn no_panics_on_bad_input() {
    let mut samples: Vec<Vec<u8>> = vec![
        zip(&[("archive/data.pkl", DATA_PKL)], false),
        zip(&[("a.npy", b"x")], true),
        safetensors("{}", 4),
        onnx(),
        DATA_PKL.to_vec(),
        b"(dp0\nVa\np1\nI1\ns.".to_vec(),
        b"GGUF\x03\0\0\0".to_vec(),
    ];
    // A deterministic xorshift for corruptions.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for s in samples.clone() {
        for _ in 0..200 {
            let mut c = s.clone();
            let i = (rand() as usize) % c.len();
            c[i] = rand() as u8;
            samples.push(c);
        }
    }
    for s in &samples {
        for cut in 0..=s.len().min(80) {
            let head = &s[..cut];
            for len in [cut as u64, cut as u64 + 1, s.len() as u64, u64::MAX] {
                let _ = detect_bytes(head, len);
            }
        }
        let _ = detect_bytes(s, s.len() as u64);
    }
}
