//! Generated log text for the redaction tests and benchmarks: lines in the shapes Gradio,
//! uvicorn, vLLM, Ollama and ComfyUI print, some carrying planted IDs, phones, emails, cards,
//! tokens and prompts (each one labelled), the others clean. Deterministic for a seed.

use std::fmt::Write as _;

/// A small deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    fn digits(&mut self, n: usize) -> String {
        self.chars(b"0123456789", n)
    }
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const B64URL: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

const WORDS: &[&str] = &[
    "portrait",
    "cyberpunk",
    "watercolor",
    "sunset",
    "mountain",
    "lake",
    "fox",
    "castle",
    "neon",
    "rainy",
    "street",
    "vintage",
    "astronaut",
    "garden",
    "dragon",
    "golden",
    "misty",
    "forest",
    "cat",
    "wearing",
    "hat",
    "studio",
    "lighting",
    "oil",
    "painting",
    "of",
    "my",
    "grandmother",
    "in",
    "Shanghai",
    "wedding",
    "dress",
    "remove",
    "background",
    "make",
    "it",
    "warm",
    "翻译",
    "这段",
    "合同",
    "我的",
    "病历",
    "请",
    "总结",
];

/// A prompt of a few words, unlike anything a log template prints.
pub fn prompt(rng: &mut Rng) -> String {
    let n = 4 + rng.below(6) as usize;
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        let w: &str = rng.pick::<&str>(WORDS);
        s.push_str(w);
    }
    let _ = write!(s, " #{}", rng.below(1_000_000));
    s
}

/// A valid China resident ID (checksum computed).
pub fn cn_id(rng: &mut Rng) -> String {
    let region = *rng.pick(&["110105", "310104", "440305", "510107", "330106", "420111"]);
    let year = 1950 + rng.below(56);
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    let body = format!("{region}{year}{month:02}{day:02}{}", rng.digits(3));
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(W)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// A China mobile number in one of the ways people write them.
pub fn phone(rng: &mut Rng) -> String {
    let n = format!("1{}{}", rng.pick(&["3", "5", "7", "8", "9"]), rng.digits(9));
    match rng.below(5) {
        0 => format!("{} {} {}", &n[..3], &n[3..7], &n[7..]),
        1 => format!("+86 {}-{}-{}", &n[..3], &n[3..7], &n[7..]),
        2 => format!("+86{n}"),
        _ => n,
    }
}

/// An email address.
pub fn email(rng: &mut Rng) -> String {
    let user = format!(
        "{}{}{}",
        rng.pick(&["li.wei", "zhang_min", "j.smith", "anna+ai", "wang"]),
        rng.pick(&["", ".", "_"]),
        rng.digits(2)
    );
    let domain = rng.pick(&[
        "qq.com",
        "163.com",
        "example.cn",
        "mail.company.com.cn",
        "gmail.com",
    ]);
    format!("{user}@{domain}")
}

/// A bank card number with a valid Luhn digit, plain or in groups.
pub fn card(rng: &mut Rng) -> String {
    let (prefix, len) = *rng.pick(&[("4", 16), ("5", 16), ("62", 19), ("62", 16)]);
    let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
    while digits.len() < len - 1 {
        digits.push(rng.below(10) as u8);
    }
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    digits.push(((10 - sum % 10) % 10) as u8);
    let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    match rng.below(3) {
        0 if len == 16 => format!("{} {} {} {}", &s[..4], &s[4..8], &s[8..12], &s[12..]),
        1 if len == 16 => format!("{}-{}-{}-{}", &s[..4], &s[4..8], &s[8..12], &s[12..]),
        _ => s,
    }
}

pub fn hf_token(rng: &mut Rng) -> String {
    format!("hf_{}", rng.chars(LETTERS, 34))
}

pub fn sk_key(rng: &mut Rng) -> String {
    format!("sk-proj-{}", rng.chars(ALNUM, 40))
}

pub fn aws_key(rng: &mut Rng) -> String {
    format!("AKIA{}", rng.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
}

pub fn github_token(rng: &mut Rng) -> String {
    format!("ghp_{}", rng.chars(ALNUM, 36))
}

pub fn jwt(rng: &mut Rng) -> String {
    format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
        rng.chars(B64URL, 40),
        rng.chars(B64URL, 43)
    )
}

fn secret(rng: &mut Rng) -> String {
    format!("{}{}", rng.chars(ALNUM, 10), rng.digits(3))
}

fn urlenc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => o.push(b as char),
            b' ' => o.push('+'),
            _ => {
                let _ = write!(o, "%{b:02X}");
            }
        }
    }
    o
}

fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// One generated line and what was planted in it.
#[derive(Debug, Clone)]
pub struct Line {
    pub service: &'static str,
    pub text: String,
    /// Strings that must not survive redaction.
    pub planted: Vec<String>,
}

impl Line {
    pub fn is_clean(&self) -> bool {
        self.planted.is_empty()
    }
}

fn time(rng: &mut Rng) -> (u64, u64, u64) {
    (rng.below(24), rng.below(60), rng.below(60))
}

/// A clean line of one of the services (nothing in it may change).
pub fn clean_line(rng: &mut Rng) -> Line {
    let (h, m, s) = time(rng);
    let port = 30000 + rng.below(30000);
    let ms = rng.below(1000);
    let (service, text) = match rng.below(16) {
        0 => (
            "gradio",
            "* Running on local URL:  http://127.0.0.1:7860".to_owned(),
        ),
        1 => (
            "gradio",
            "To create a public link, set `share=True` in `launch()`.".to_owned(),
        ),
        2 => (
            "uvicorn",
            format!(
                "INFO:     127.0.0.1:{port} - \"{} HTTP/1.1\" 200 OK",
                rng.pick(&[
                    "GET /",
                    "GET /healthz",
                    "POST /api/edit",
                    "GET /config",
                    "POST /gradio_api/queue/join"
                ])
            ),
        ),
        3 => (
            "uvicorn",
            format!(
                "INFO:     Started server process [{}]",
                1000 + rng.below(60000)
            ),
        ),
        4 => (
            "vllm",
            format!(
                "INFO 05-12 {h:02}:{m:02}:{s:02} [metrics.py:455] Avg prompt throughput: {}.{} tokens/s, Avg generation throughput: {}.{} tokens/s, Running: {} reqs, Swapped: 0 reqs, Pending: 0 reqs, GPU KV cache usage: {}.{}%, CPU KV cache usage: 0.0%.",
                rng.below(900),
                rng.below(10),
                rng.below(900),
                rng.below(10),
                rng.below(64),
                rng.below(100),
                rng.below(10)
            ),
        ),
        5 => (
            "vllm",
            format!(
                "(APIServer pid={}) INFO 05-12 {h:02}:{m:02}:{s:02} [loggers.py:123] Engine 000: Avg prompt throughput: {}.0 tokens/s, Prefix cache hit rate: {}.{}%",
                100 + rng.below(9000),
                rng.below(500),
                rng.below(100),
                rng.below(10)
            ),
        ),
        6 => (
            "vllm",
            format!("INFO:     127.0.0.1:{port} - \"POST /v1/chat/completions HTTP/1.1\" 200 OK"),
        ),
        7 => (
            "ollama",
            format!(
                "time=2025-05-12T{h:02}:{m:02}:{s:02}.{ms:03}+08:00 level=INFO source=server.go:{} msg=\"llama runner started in {}.{} seconds\"",
                100 + rng.below(900),
                rng.below(30),
                rng.below(100)
            ),
        ),
        8 => (
            "ollama",
            format!(
                "[GIN] 2025/05/12 - {h:02}:{m:02}:{s:02} | 200 | {:>10}ms |       127.0.0.1 | POST     \"/api/chat\"",
                rng.below(99999)
            ),
        ),
        9 => ("comfyui", "got prompt".to_owned()),
        10 => (
            "comfyui",
            format!(
                "Prompt executed in {}.{:02} seconds",
                rng.below(60),
                rng.below(100)
            ),
        ),
        11 => (
            "comfyui",
            format!(
                "{}%|██████████| {}/20 [00:{:02}<00:00,  {}.{:02}it/s]",
                rng.below(101),
                rng.below(21),
                rng.below(60),
                rng.below(9),
                rng.below(100)
            ),
        ),
        12 => (
            "comfyui",
            format!(
                "Requested to load SDXLClipModel\nloaded completely {}.{} {} True",
                rng.below(20000),
                rng.below(100),
                rng.below(20000)
            ),
        ),
        13 => (
            "python",
            format!(
                "2025-05-12 {h:02}:{m:02}:{s:02},{ms:03} - httpx - INFO - HTTP Request: GET https://api.gradio.app/gradio-messaging/en \"HTTP/1.1 200 OK\""
            ),
        ),
        14 => (
            "python",
            format!(
                "  File \"/srv/app/venv/lib/python3.11/site-packages/diffusers/pipelines/pipeline_utils.py\", line {}, in __call__",
                100 + rng.below(2000)
            ),
        ),
        _ => (
            "python",
            format!(
                "WARNING:image_edit:large input {}x{}: this will be slow on CPU; max_tokens={} tokenizer=Qwen/Qwen2-7B",
                256 + rng.below(4000),
                256 + rng.below(4000),
                rng.below(4096)
            ),
        ),
    };
    // A generated two-line template is one record; keep only its first line.
    let text = text.lines().next().unwrap_or("").to_owned();
    Line {
        service,
        text,
        planted: Vec::new(),
    }
}

/// A line carrying planted items.
pub fn dirty_line(rng: &mut Rng) -> Line {
    let (h, m, s) = time(rng);
    let port = 30000 + rng.below(30000);
    let mut planted = Vec::new();
    let plant = |v: String, planted: &mut Vec<String>| {
        planted.push(v.clone());
        v
    };
    let (service, text) = match rng.below(14) {
        0 => {
            let p = prompt(rng);
            planted.push(urlenc(&p));
            let e = email(rng).replace('@', "%40");
            (
                "uvicorn",
                format!(
                    "INFO:     127.0.0.1:{port} - \"GET /api/generate?prompt={}&email={} HTTP/1.1\" 200 OK",
                    urlenc(&p),
                    plant(e, &mut planted)
                ),
            )
        }
        1 => {
            let p = prompt(rng);
            (
                "gradio",
                format!(
                    "INFO:image_edit:edit request prompt={} size=512x512 strength=0.8",
                    py_repr(&plant(p, &mut planted))
                ),
            )
        }
        2 => {
            let p = prompt(rng);
            (
                "vllm",
                format!(
                    "INFO 05-12 {h:02}:{m:02}:{s:02} [logger.py:39] Received request cmpl-{:x}: prompt: {}, params: SamplingParams(n=1, temperature=0.7, max_tokens=512), prompt_token_ids: [151644, {}, {}], lora_request: None.",
                    rng.next_u64(),
                    py_repr(&plant(p, &mut planted)),
                    100_000 + rng.below(50_000),
                    rng.below(150_000)
                ),
            )
        }
        3 => {
            let p = prompt(rng);
            (
                "vllm",
                format!(
                    "INFO 05-12 {h:02}:{m:02}:{s:02} [logger.py:40] Generated response chatcmpl-{:x}: output: {}, output_token_ids: None, finish_reason: stop",
                    rng.next_u64(),
                    py_repr(&plant(p, &mut planted))
                ),
            )
        }
        4 => {
            let p = prompt(rng);
            (
                "ollama",
                format!(
                    "time=2025-05-12T{h:02}:{m:02}:{s:02}.000+08:00 level=TRACE source=server.go:812 msg=\"completion request\" images=0 prompt=\"<|im_start|>user\\n{}<|im_end|>\\n\"",
                    plant(p, &mut planted)
                ),
            )
        }
        5 => {
            let user = format!("proxyuser{}", rng.below(100));
            let pw = secret(rng);
            planted.push(format!("{user}:{pw}"));
            (
                "ollama",
                format!(
                    "time=2025-05-12T{h:02}:{m:02}:{s:02}.000+08:00 level=INFO source=routes.go:1205 msg=\"server config\" env=\"map[CUDA_VISIBLE_DEVICES:0 HF_TOKEN:{} HTTPS_PROXY:http://{user}:{pw}@proxy.corp:3128 OLLAMA_HOST:http://127.0.0.1:11434 OLLAMA_KEEP_ALIVE:5m0s]\"",
                    plant(hf_token(rng), &mut planted)
                ),
            )
        }
        6 => {
            let p = prompt(rng);
            let n = prompt(rng);
            (
                "comfyui",
                format!(
                    "invalid prompt: {{'type': 'prompt_outputs_failed_validation', 'message': 'Prompt outputs failed validation', 'details': '', 'extra_info': {{'text': {}, 'negative': {}}}}}",
                    py_repr(&plant(p, &mut planted)),
                    py_repr(&plant(n, &mut planted))
                ),
            )
        }
        7 => (
            "python",
            format!(
                "WARNING:app:user {} (身份证号{}) uploaded a photo; contact {}",
                plant(phone(rng), &mut planted),
                plant(cn_id(rng), &mut planted),
                plant(email(rng), &mut planted)
            ),
        ),
        8 => (
            "python",
            format!(
                "ERROR:payments:card {} declined for order {}",
                plant(card(rng), &mut planted),
                rng.below(100_000)
            ),
        ),
        9 => (
            "python",
            format!(
                "DEBUG:openai:request headers {{'Authorization': 'Bearer {}', 'OpenAI-Organization': 'org'}}",
                plant(sk_key(rng), &mut planted)
            ),
        ),
        10 => (
            "python",
            format!(
                "INFO:boto:using key {} and github {} for upload",
                plant(aws_key(rng), &mut planted),
                plant(github_token(rng), &mut planted)
            ),
        ),
        11 => (
            "uvicorn",
            format!(
                "WARNING:  rejected token {} from client; db password={}",
                plant(jwt(rng), &mut planted),
                plant(secret(rng), &mut planted)
            ),
        ),
        12 => {
            let p = prompt(rng);
            (
                "fastapi",
                format!(
                    "INFO:app:body {{\"model\": \"qwen2.5\", \"messages\": [{{\"role\": \"user\", \"content\": \"{}\"}}], \"stream\": false}}",
                    plant(p, &mut planted)
                ),
            )
        }
        _ => (
            "python",
            format!(
                "INFO:app:身份证{}，手机{}，邮箱{}",
                plant(cn_id(rng), &mut planted),
                plant(phone(rng), &mut planted),
                plant(email(rng), &mut planted)
            ),
        ),
    };
    Line {
        service,
        text,
        planted,
    }
}

/// A labelled corpus: `n` lines, about one in `dirty_every` carrying planted items.
pub fn labelled(seed: u64, n: usize, dirty_every: u64) -> Vec<Line> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            if rng.below(dirty_every) == 0 {
                dirty_line(&mut rng)
            } else {
                clean_line(&mut rng)
            }
        })
        .collect()
}

/// A realistic mixed log of at least `bytes` bytes: one line in ten carries something to redact.
pub fn mixed_log(seed: u64, bytes: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(bytes + 1024);
    while out.len() < bytes {
        let l = if rng.below(10) == 0 {
            dirty_line(&mut rng)
        } else {
            clean_line(&mut rng)
        };
        out.extend_from_slice(l.text.as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::logs::redact::{Redactor, Sets, State, classify};

    /// CPU time of this thread, from the kernel's scheduler statistics.
    fn cpu_ns() -> u64 {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// MB per CPU-second of `reps` runs of `f` over `bytes` bytes.
    fn rate(bytes: usize, reps: usize, mut f: impl FnMut()) -> f64 {
        let t = cpu_ns();
        for _ in 0..reps {
            f();
        }
        (reps * bytes) as f64 / ((cpu_ns() - t) as f64 / 1e9) / 1e6
    }

    /// Whole-line batches of at most 256 KiB.
    fn batches(text: &[u8]) -> Vec<&[u8]> {
        let mut v = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let end = (at + (256 << 10)).min(text.len());
            let end = memchr::memrchr(b'\n', &text[at..end]).map_or(text.len(), |i| at + i + 1);
            v.push(&text[at..end]);
            at = end;
        }
        v
    }

    #[test]
    #[ignore = "a speed probe; the benchmark is `cargo bench --bench logs`"]
    fn speed_probe() {
        let text = super::mixed_log(7, 64 << 20);
        let parts = batches(&text);
        let which = std::env::var("PROBE").unwrap_or_default();
        let red = Redactor::new(
            Sets {
                ip: which.contains('a'),
                prompts: which.is_empty() || which.contains('p'),
                secrets: which.is_empty() || which.contains('s'),
                pii: which.is_empty() || which.contains('i'),
            },
            &[],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut keys = 0u32;
        let mb = rate(text.len(), 5, || {
            for p in &parts {
                classify::candidates(p, 0, |b| {
                    keys += b.iter().map(|b| b.keys.count_ones()).sum::<u32>();
                });
            }
        });
        eprintln!("{mb:.0} MB/s classification alone ({keys} keys)");
        for (name, every) in [("clean only", u64::MAX), ("dirty only", 1)] {
            let lines = super::labelled(5, 3000, every);
            let mut some = Vec::new();
            for l in &lines {
                some.extend_from_slice(l.text.as_bytes());
                some.push(b'\n');
            }
            let mut st = State::default();
            let mb = rate(some.len(), 300, || {
                out.clear();
                red.redact(&mut st, &some, &mut out);
            });
            eprintln!("{mb:.0} MB/s {name}, {} bytes a line", some.len() / 3000);
        }
        let hot = parts[0];
        let mut st = State::default();
        let mb = rate(hot.len(), 1000, || {
            out.clear();
            red.redact(&mut st, hot, &mut out);
        });
        eprintln!("{mb:.0} MB/s one batch in cache");
        let mb = rate(hot.len(), 1000, || classify::candidates(hot, 0, |_| {}));
        eprintln!("{mb:.0} MB/s classification of one batch in cache");
        let mut buf = Vec::with_capacity(256 << 10);
        for through in [false, true] {
            let mb = rate(text.len(), 4, || {
                let mut st = State::default();
                for p in &parts {
                    out.clear();
                    if through {
                        // As the capture reads the pipe: into a reused buffer first.
                        buf.clear();
                        buf.extend_from_slice(p);
                        red.redact(&mut st, &buf, &mut out);
                    } else {
                        red.redact(&mut st, p, &mut out);
                    }
                }
            });
            let how = if through { " through a buffer" } else { "" };
            eprintln!("{mb:.0} MB/s{how}");
        }
    }
}
