//! The log pipeline: the redaction corpus, no loss across forced rotations with a real child
//! process writing into the pipe, and `warden logs` reading it all back.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use predicates::prelude::*;
use warden::logs::capture::Capture;
use warden::logs::corpus;
use warden::logs::read::{self, Query};
use warden::logs::redact::{Redactor, Sets, State};
use warden::logs::{Config, TIMESTAMP_LEN, rotate};
use warden::policy::Level;

use crate::common::Deployment;

fn default_sets() -> Sets {
    Sets {
        prompts: true,
        secrets: true,
        pii: true,
        ip: false,
    }
}

/// Every line read back from the log, without timestamps.
fn read_back(dir: &std::path::Path, name: &str) -> Vec<String> {
    let mut v = Vec::new();
    read::read(dir, name, &Query::default(), |l| {
        assert_eq!(l[TIMESTAMP_LEN], b' ', "{}", String::from_utf8_lossy(l));
        v.push(String::from_utf8_lossy(&l[TIMESTAMP_LEN + 1..]).into_owned());
    })
    .unwrap();
    v
}

#[test]
fn redaction_corpus_removes_every_planted_item_and_keeps_clean_lines() {
    let lines = corpus::labelled(42, 30_000, 4);
    let red = Redactor::new(default_sets(), &[]).unwrap();
    let mut text = Vec::new();
    for l in &lines {
        text.extend_from_slice(l.text.as_bytes());
        text.push(b'\n');
    }
    let mut out = Vec::new();
    red.redact(&mut State::default(), &text, &mut out);
    let got: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
    assert_eq!(got.len(), lines.len() + 1);
    let (mut clean, mut dirty, mut planted) = (0, 0, 0);
    let mut services: BTreeMap<&str, usize> = BTreeMap::new();
    for (l, g) in lines.iter().zip(&got) {
        let g = String::from_utf8_lossy(g);
        *services.entry(l.service).or_default() += 1;
        // A line alone gives the same as in a batch.
        assert_eq!(red.redact_line(l.text.as_bytes()), g.as_bytes());
        if l.is_clean() {
            clean += 1;
            assert_eq!(g, l.text, "a clean line changed");
        } else {
            dirty += 1;
            assert!(g.contains("[REDACTED:"), "{g}");
            for p in &l.planted {
                planted += 1;
                assert!(!g.contains(p.as_str()), "{p:?} survived in {g}");
            }
        }
    }
    assert!(
        clean > 15_000 && dirty > 5_000 && planted > 10_000,
        "{clean} {dirty} {planted}"
    );
    for s in ["gradio", "uvicorn", "vllm", "ollama", "comfyui"] {
        assert!(services.get(s).copied().unwrap_or(0) > 500, "{services:?}");
    }
}

#[test]
fn nothing_planted_reaches_the_disk() {
    let d = tempfile::tempdir().unwrap();
    let lines = corpus::labelled(7, 5_000, 3);
    let mut text = String::new();
    for l in &lines {
        text.push_str(&l.text);
        text.push('\n');
    }
    let input = d.path().join("input.txt");
    std::fs::write(&input, &text).unwrap();
    let logs = d.path().join("logs");
    let mut cfg = Config::for_dir(&logs, "svc");
    cfg.level = Level::Trace;
    let cap = Capture::start(&cfg, false).unwrap();
    let (out, err) = cap.stdio().unwrap();
    let st = Command::new("cat")
        .arg(&input)
        .stdout(out)
        .stderr(err)
        .status()
        .unwrap();
    assert!(st.success());
    drop(cap);
    let got = read_back(&logs, "svc");
    assert_eq!(got.len(), lines.len());
    let disk = std::fs::read_to_string(logs.join("svc.log")).unwrap();
    for (l, g) in lines.iter().zip(&got) {
        if l.is_clean() {
            assert_eq!(g, &l.text);
        }
        for p in &l.planted {
            assert!(!disk.contains(p.as_str()), "{p:?} reached the disk");
        }
    }
}

const LINES: u64 = 400_000;
const ROUNDS: u64 = 100;

#[test]
fn no_line_is_lost_or_split_across_100_forced_rotations() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    let mut cfg = Config::for_dir(&logs, "svc");
    cfg.rotation = rotate::Rotation {
        every: warden::policy::schema::Every::Never,
        size: Some(4 << 20),
        keep: 1000,
        compress: true,
        delay_compress: true,
    };
    let cap = Capture::start(&cfg, false).unwrap();
    let (out, err) = cap.stdio().unwrap();
    // A real process writing 400,000 numbered lines in 100 bursts, one per line it reads on
    // stdin; awk's buffered writes cut lines across pipe writes. A rotation is forced during
    // each burst, as soon as some of it reached the file.
    let per = LINES / ROUNDS;
    let script = format!(
        "i=0; while read go; do \
           awk -v s=$((i*{per}+1)) -v e=$((i*{per}+{per})) \
             'BEGIN {{ for (n = s; n <= e; n++) printf \"line %07d of the no-loss test\\n\", n }}'; \
           i=$((i+1)); done"
    );
    let t = Instant::now();
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut forced = 0;
    for _ in 0..ROUNDS {
        writeln!(stdin, "go").unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while !cap.rotate().unwrap() {
            assert!(Instant::now() < end, "the service wrote nothing");
            std::thread::sleep(Duration::from_micros(200));
        }
        forced += 1;
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert!(cap.wait(Duration::from_secs(10)));
    drop(cap);
    assert_eq!(forced, ROUNDS);
    let files = read::files(&logs, "svc").unwrap();
    assert!(files.len() > 100, "{} files", files.len());
    assert!(files.iter().filter(|f| f.compressed).count() > 90);
    let got = read_back(&logs, "svc");
    assert_eq!(got.len() as u64, LINES);
    for (i, l) in got.iter().enumerate() {
        let want = format!("line {:07} of the no-loss test", i + 1);
        assert!(l == &want, "line {}: {l:?}", i + 1);
    }
    assert!(t.elapsed() < Duration::from_secs(45), "{:?}", t.elapsed());
}

const POLICY: &str = r#"[service]
name = "svc"
command = ["python3", "app.py"]
user = "aiuser"

[[tier]]
path = "models"
"#;

fn ts(secs: u64) -> String {
    String::from_utf8(
        warden::logs::timestamp(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_vec(),
    )
    .unwrap()
}

#[test]
fn warden_logs_reads_rotated_compressed_and_current_files_in_order() {
    let d = Deployment::empty();
    d.write("models/a.safetensors", b"x")
        .write("warden.toml", POLICY);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut gz,
        format!("{} one\n{} two\n", ts(1_000), ts(2_000)).as_bytes(),
    )
    .unwrap();
    d.write("logs/svc.log.19700101-003320.1.gz", gz.finish().unwrap());
    d.write(
        "logs/svc.log.19700101-005000.2",
        format!("{} three\n", ts(3_000)),
    );
    d.write(
        "logs/svc.log",
        format!("{} four\n{} five \x1b[2Jboom\n", ts(4_000), ts(5_000)),
    );
    let out = d
        .warden(&["logs"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let words: Vec<&str> = text.lines().map(|l| &l[TIMESTAMP_LEN + 1..]).collect();
    assert_eq!(words, ["one", "two", "three", "four", "five \x1b[2Jboom"]);
    d.warden(&["logs", "-n", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("four").and(predicate::str::contains("three").not()));
    d.warden(&["logs", "--since", "1970-01-01 00:40:00"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(ts(3_000)));
    d.warden(&["logs", "--since", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--since"));
}

#[test]
fn warden_logs_with_no_log_yet_prints_nothing() {
    let d = Deployment::empty();
    d.write("models/a.safetensors", b"x")
        .write("warden.toml", POLICY);
    d.warden(&["logs", "-n", "5"]).assert().success().stdout("");
}

#[test]
fn the_pipeline_filters_levels_cuts_long_lines_and_strips_escapes() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    let mut cfg = Config::for_dir(&logs, "svc");
    cfg.level = Level::Warning;
    cfg.max_line = 64;
    let cap = Capture::start(&cfg, false).unwrap();
    let (out, err) = cap.stdio().unwrap();
    let long = format!("WARNING:app:prompt='{}' end", "x".repeat(100));
    let script = format!(
        "echo 'INFO:app:dropped'; echo 'DEBUG:app:dropped too'; \
         printf 'WARNING:app:\\033[31mred\\033[0m kept\\n'; \
         printf ' 10%%|#   |\\r100%%|####|\\n'; \
         echo \"{long}\"; \
         echo 'ERROR:app:failed for prompt=secret-words'; \
         printf 'Traceback (most recent call last):\\n  File \"a.py\", line 1\\nValueError: x\\n'; \
         echo 'INFO:app:dropped again'; echo '  indented under a dropped record'"
    );
    let st = Command::new("sh")
        .args(["-c", &script])
        .stdout(out)
        .stderr(err)
        .status()
        .unwrap();
    assert!(st.success());
    drop(cap);
    let got = read_back(&logs, "svc");
    assert_eq!(
        got,
        [
            "WARNING:app:red kept",
            "100%|####|",
            "WARNING:app:prompt='[REDACTED:prompt] [...]",
            "[...] [REDACTED:prompt]' end",
            "ERROR:app:failed for prompt=[REDACTED:prompt]",
            "Traceback (most recent call last):",
            "  File \"a.py\", line 1",
            "ValueError: x",
        ]
    );
}

#[test]
fn warden_logs_follow_goes_on_across_a_rotation() {
    use std::io::BufRead as _;
    let d = Deployment::empty();
    d.write("models/a.safetensors", b"x")
        .write("warden.toml", POLICY);
    d.write("logs/svc.log", format!("{} old\n", ts(1)));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("-c")
        .arg(d.policy())
        .args(["logs", "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut next = || {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        l[TIMESTAMP_LEN + 1..].trim_end().to_owned()
    };
    assert_eq!(next(), "old");
    let log = d.path().join("logs/svc.log");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "{} new", ts(2)).unwrap();
    assert_eq!(next(), "new");
    std::fs::rename(&log, d.path().join("logs/svc.log.19700101-000002.1")).unwrap();
    writeln!(f, "{} last of the old file", ts(3)).unwrap();
    std::fs::write(&log, format!("{} first of the new file\n", ts(4))).unwrap();
    assert_eq!(next(), "last of the old file");
    assert_eq!(next(), "first of the new file");
    child.kill().unwrap();
    child.wait().unwrap();
}
