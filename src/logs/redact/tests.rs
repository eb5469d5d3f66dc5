use super::*;

fn all() -> Redactor {
    Redactor::new(
        Sets {
            ip: false,
            ..Sets::ALL
        },
        &[],
    )
    .unwrap()
}

fn r(s: &str) -> String {
    String::from_utf8(all().redact_line(s.as_bytes())).unwrap()
}

#[track_caller]
fn same(s: &str) {
    assert_eq!(r(s), s);
}

#[test]
fn clean_lines_are_untouched() {
    for s in [
        "INFO:     127.0.0.1:54321 - \"GET / HTTP/1.1\" 200 OK",
        "INFO 05-12 11:43:00 [metrics.py:455] Avg prompt throughput: 12.3 tokens/s, Avg generation throughput: 45.6 tokens/s",
        "2025-05-12 11:43:00,123 - httpx - INFO - HTTP Request: GET http://127.0.0.1:7860/startup-events \"HTTP/1.1 200 OK\"",
        "time=2025-05-12T11:43:00.000+08:00 level=INFO source=server.go:405 msg=\"starting llama server\" cmd=\"/usr/bin/ollama runner --model /models/blobs/sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa --ctx-size 8192\"",
        "got prompt",
        "Prompt executed in 3.21 seconds",
        "Failed to validate prompt for output 9:",
        "  File \"/app/app.py\", line 42, in edit",
        "max_tokens=512 tokenizer=Qwen/Qwen2-7B-Instruct keyboard monkey basic setup",
        "Requested to load SDXLClipModel; loaded completely 9.5 GB, 1234567 bytes, 100% 20/20 [00:04<00:00, 4.61it/s]",
        "身份证号码格式错误, 请重新输入",
        "sha256:4f2a9c0e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a",
        "uuid 550e8400-e29b-41d4-a716-446655440000 epoch 1715512980123",
        "@app.get(\"/\") decorator; email me later; user@localhost",
        "Are you sure? yes",
        "bos_token=<|endoftext|> pad_token: None token=Token{id=5,",
        "Authorization scheme: Bearer authentication is required",
        "content-type: application/json; input shape (1, 3, 512, 512)",
        "cwd PWD=/srv/app HOME=/var/lib/app",
    ] {
        same(s);
    }
}

#[test]
fn secrets() {
    let hf = format!("hf_{}", "aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH");
    assert_eq!(
        r(&format!("HF_TOKEN={hf} x")),
        "HF_TOKEN=[REDACTED:hf-token] x"
    );
    assert_eq!(
        r("OPENAI_API_KEY=sk-proj-AbCdEf0123456789_xyzXYZ-99"),
        "OPENAI_API_KEY=[REDACTED:api-key]"
    );
    assert_eq!(
        r("aws AKIAIOSFODNN7EXAMPLE done"),
        "aws [REDACTED:aws-key] done"
    );
    assert_eq!(
        r("push ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 ok"),
        "push [REDACTED:github-token] ok"
    );
    assert_eq!(
        r(
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
        ),
        "Authorization: Bearer [REDACTED:jwt]"
    );
    assert_eq!(
        r("authorization: bearer abc123XYZ.def"),
        "authorization: bearer [REDACTED:credentials]"
    );
    assert_eq!(
        r("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
        "Authorization: Basic [REDACTED:credentials]"
    );
    assert_eq!(
        r("HTTPS_PROXY:http://alice:s3cr3t@proxy.corp:8080 NO_PROXY:"),
        "HTTPS_PROXY:http://[REDACTED:credentials]@proxy.corp:8080 NO_PROXY:"
    );
    assert_eq!(
        r("db password=hunter2 ok"),
        "db password=[REDACTED:secret] ok"
    );
    assert_eq!(
        r("{\"api_key\": \"q8Zr2LmXv0pT\", \"n\": 1}"),
        "{\"api_key\": \"[REDACTED:secret]\", \"n\": 1}"
    );
    assert_eq!(
        r("X-Api-Key: Zk3q9XbT2LmNp4"),
        "X-Api-Key: [REDACTED:secret]"
    );
    assert_eq!(
        r("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig_x end"),
        "jwt [REDACTED:jwt] end"
    );
}

#[test]
fn private_keys_span_lines() {
    let red = all();
    let mut st = State::default();
    let mut out = Vec::new();
    red.redact(
        &mut st,
        b"before\nkey: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\nabcd+/==\n",
        &mut out,
    );
    assert!(st.in_private_key());
    red.redact(
        &mut st,
        b"QUJDRA==\n-----END RSA PRIVATE KEY-----\nafter\n",
        &mut out,
    );
    assert!(!st.in_private_key());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "before\nkey: [REDACTED:private-key]\nafter\n"
    );
    // In one buffer, and escaped on one line.
    assert_eq!(
        r("a\n-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\nb\n"),
        "a\n[REDACTED:private-key]\nb\n"
    );
    assert_eq!(
        r("{\"k\": \"-----BEGIN EC PRIVATE KEY-----\\nMHcC\\n-----END EC PRIVATE KEY-----\\n\"}"),
        "{\"k\": \"[REDACTED:private-key]\\n\"}"
    );
    // A public key or a certificate is not a secret.
    same("-----BEGIN CERTIFICATE-----");
    // A block that stops without END ends at the first line that is not key material.
    assert_eq!(
        r("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\nINFO:app:next\n"),
        "[REDACTED:private-key]\nINFO:app:next\n"
    );
}

#[test]
fn pii() {
    assert_eq!(r("身份证号11010519491231002X。"), "身份证号[REDACTED:id]。");
    assert_eq!(r("id=440524188001010014"), "id=[REDACTED:id]");
    same("id=440524188001010015");
    assert_eq!(r("手机13800138000"), "手机[REDACTED:phone]");
    assert_eq!(r("tel: +86 138-0013-8000."), "tel: [REDACTED:phone].");
    assert_eq!(r("tel:+8613800138000"), "tel:[REDACTED:phone]");
    assert_eq!(r("call 138 0013 8000 now"), "call [REDACTED:phone] now");
    same("n=12800138000");
    same("013800138000");
    assert_eq!(r("card 4111 1111 1111 1111"), "card [REDACTED:card]");
    assert_eq!(r("card=4111-1111-1111-1111;"), "card=[REDACTED:card];");
    assert_eq!(r("amex 378282246310005."), "amex [REDACTED:card].");
    same("card 4111 1111 1111 1112");
    assert_eq!(
        r("mail bob.smith+ai@example.co.uk!"),
        "mail [REDACTED:email]!"
    );
    assert_eq!(
        r("GET /x?email=bob%40example.com"),
        "GET /x?[REDACTED:prompt]"
    );
    let pii_only = Redactor::new(
        Sets {
            pii: true,
            ..Sets::default()
        },
        &[],
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(pii_only.redact_line(b"GET /x?email=bob%40example.com&tel=13800138000"))
            .unwrap(),
        "GET /x?email=[REDACTED:email]&tel=[REDACTED:phone]"
    );
    same("2025-05-12 13:38:00 13800 138000");
}

#[test]
fn ip_addresses_are_optional() {
    let ip = Redactor::new(
        Sets {
            ip: true,
            ..Sets::default()
        },
        &[],
    )
    .unwrap();
    let r = |s: &str| String::from_utf8(ip.redact_line(s.as_bytes())).unwrap();
    assert_eq!(
        r("INFO:     10.1.2.3:54321 - \"GET / HTTP/1.1\" 200 OK"),
        "INFO:     [REDACTED:ip]:54321 - \"GET / HTTP/1.1\" 200 OK"
    );
    assert_eq!(
        r("from 2001:db8::8a2e:370:7334, to"),
        "from [REDACTED:ip], to"
    );
    assert_eq!(r("from 192.168.0.1."), "from [REDACTED:ip].");
    for s in [
        "listen 127.0.0.1:7860 and [::1]:8000 and 0.0.0.0",
        "version 1.2.3.4.5 time 11:43:00 mac aa:bb:cc:dd:ee:ff",
        "octets 256.1.1.1 and 01.2.3.4",
        "std::io::Error",
    ] {
        assert_eq!(r(s), s);
    }
    // Off by default.
    same("INFO:     10.1.2.3:54321 - \"GET / HTTP/1.1\" 200 OK");
}

#[test]
fn prompts() {
    assert_eq!(
        r("INFO:     127.0.0.1:5000 - \"GET /gen?prompt=a%20cat&steps=20 HTTP/1.1\" 200 OK"),
        "INFO:     127.0.0.1:5000 - \"GET /gen?[REDACTED:prompt] HTTP/1.1\" 200 OK"
    );
    assert_eq!(
        r(
            "[GIN] 2025/05/12 - 11:43:00 | 200 |  1.2s | 127.0.0.1 | POST     \"/api/generate?prompt=hi\""
        ),
        "[GIN] 2025/05/12 - 11:43:00 | 200 |  1.2s | 127.0.0.1 | POST     \"/api/generate?[REDACTED:prompt]\""
    );
    assert_eq!(
        r(
            "INFO 05-12 11:43:00 [logger.py:39] Received request cmpl-1: prompt: 'It\\'s a \"cat\"', params: SamplingParams(n=1), prompt_token_ids: [1, 2, 3], lora_request: None."
        ),
        "INFO 05-12 11:43:00 [logger.py:39] Received request cmpl-1: prompt: '[REDACTED:prompt]', params: SamplingParams(n=1), prompt_token_ids: [REDACTED:prompt], lora_request: None."
    );
    assert_eq!(
        r(
            "INFO 05-12 11:43:01 [logger.py:40] Generated response cmpl-1: output: \"I'm fine\", finish_reason: stop"
        ),
        "INFO 05-12 11:43:01 [logger.py:40] Generated response cmpl-1: output: \"[REDACTED:prompt]\", finish_reason: stop"
    );
    assert_eq!(
        r(
            "time=x level=TRACE msg=\"completion request\" prompt=\"<|user|>\\n\\\"hi\\\"\" images=0"
        ),
        "time=x level=TRACE msg=\"completion request\" prompt=\"[REDACTED:prompt]\" images=0"
    );
    assert_eq!(
        r(
            "{\"model\":\"qwen\",\"messages\":[{\"role\":\"user\",\"content\":\"hi ]\"}],\"stream\":false}"
        ),
        "{\"model\":\"qwen\",\"messages\":[REDACTED:prompt],\"stream\":false}"
    );
    assert_eq!(
        r("body {'prompt': 'a red fox', 'negative_prompt': 'blurry', 'text': 'x', 'input': 7}"),
        "body {'prompt': '[REDACTED:prompt]', 'negative_prompt': '[REDACTED:prompt]', 'text': '[REDACTED:prompt]', 'input': 7}"
    );
    assert_eq!(
        r("INFO:image_edit:edit request prompt='make it warm' size=64x64"),
        "INFO:image_edit:edit request prompt='[REDACTED:prompt]' size=64x64"
    );
    assert_eq!(r("prompt=hello world"), "prompt=[REDACTED:prompt] world");
    assert_eq!(
        r("invalid prompt: {'type': 'x', 'details': 'a cat'}"),
        "invalid prompt: [REDACTED:prompt]"
    );
    // An unterminated value is redacted to the end of its line only.
    assert_eq!(
        r("prompt: 'cut short\nnext line\n"),
        "prompt: '[REDACTED:prompt]\nnext line\n"
    );
}

#[test]
fn sets_switch_off_on_their_own() {
    let line = "prompt='hi' token=Zk3q9XbT2LmNp4 mail a@b.cn";
    let only = |sets: Sets| {
        String::from_utf8(
            Redactor::new(sets, &[])
                .unwrap()
                .redact_line(line.as_bytes()),
        )
        .unwrap()
    };
    assert_eq!(only(Sets::default()), line);
    assert_eq!(
        only(Sets {
            prompts: true,
            ..Sets::default()
        }),
        "prompt='[REDACTED:prompt]' token=Zk3q9XbT2LmNp4 mail a@b.cn"
    );
    assert_eq!(
        only(Sets {
            secrets: true,
            ..Sets::default()
        }),
        "prompt='hi' token=[REDACTED:secret] mail a@b.cn"
    );
    assert_eq!(
        only(Sets {
            pii: true,
            ..Sets::default()
        }),
        "prompt='hi' token=Zk3q9XbT2LmNp4 mail [REDACTED:email]"
    );
}

#[test]
fn custom_rules() {
    let red = Redactor::new(
        Sets::default(),
        &[
            CustomRule {
                name: "order".into(),
                pattern: r"ORD-\d{6}".into(),
                replace: None,
            },
            CustomRule {
                name: "user".into(),
                pattern: r"user=(\w)\w*".into(),
                replace: Some("user=$1***".into()),
            },
        ],
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(red.redact_line(b"ORD-123456 by user=alice\nuser=bob")).unwrap(),
        "[REDACTED:order] by user=a***\nuser=b***"
    );
    assert!(
        Redactor::new(
            Sets::default(),
            &[CustomRule {
                name: "bad".into(),
                pattern: "(".into(),
                replace: None
            }]
        )
        .is_err()
    );
}

#[test]
fn values_cut_at_the_cap_stay_redacted() {
    let red = all();
    let mut st = State::default();
    let mut out = Vec::new();
    red.redact_piece(
        &mut st,
        b"INFO:x:prompt='first part of a long",
        true,
        false,
        &mut out,
    );
    out.push(b'\n');
    red.redact_piece(&mut st, b"prompt, still going", true, true, &mut out);
    out.push(b'\n');
    red.redact_piece(&mut st, b" and done' size=1", false, true, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "INFO:x:prompt='[REDACTED:prompt]\n[REDACTED:prompt]\n[REDACTED:prompt]' size=1"
    );
}

#[test]
fn every_key_word_is_recognised() {
    for (w, secret) in super::KEY_WORDS {
        for key in [
            w.to_vec(),
            w.to_ascii_uppercase(),
            [b"x_".as_slice(), w].concat(),
        ] {
            assert_eq!(
                super::word_at(&key, key.len()),
                Some(secret),
                "{}",
                String::from_utf8_lossy(&key)
            );
        }
    }
    for other in [
        "throughput",
        "https",
        "Request",
        "Swapped",
        "pid",
        "image_edit",
        "level",
    ] {
        assert_eq!(
            super::word_at(other.as_bytes(), other.len()),
            None,
            "{other}"
        );
    }
}

#[test]
fn every_vector_width_gives_the_same_text() {
    let text = crate::logs::corpus::mixed_log(3, 4 << 20);
    let sets = [
        Sets::ALL,
        Sets {
            ip: false,
            ..Sets::ALL
        },
    ];
    for sets in sets {
        let wide = Redactor::new(sets, &[]).unwrap();
        let narrow = Redactor::new(sets, &[]).unwrap().with_portable_vectors();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut sa, mut sb) = (State::default(), State::default());
        for part in text.chunks(64 << 10) {
            // Whole lines only, as the capture hands them over.
            let part = &part[..=memchr::memrchr(b'\n', part).unwrap_or(0)];
            wide.redact(&mut sa, part, &mut a);
            narrow.redact(&mut sb, part, &mut b);
        }
        assert!(a == b, "the AVX2 and portable paths differ");
        assert!(a.len() < text.len() && a.windows(10).any(|w| w == b"[REDACTED:"));
    }
}

#[test]
fn a_number_running_out_of_a_redacted_value_is_still_checked() {
    // The key ends at the space; the phone number it ends with goes on past it.
    let out = r("key sk-abcdefghijklmnopqrstu1380013 8000 end");
    assert_eq!(out, "key [REDACTED:api-key] end");
    // A token inside a prompt: the prompt names the replacement.
    assert_eq!(
        r("INFO: prompt: 'use hf_aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH now'"),
        "INFO: prompt: '[REDACTED:prompt]'"
    );
}

#[test]
fn arbitrary_bytes_never_panic_and_both_widths_agree() {
    // Text made of the bytes the rules look at, so candidates sit at every offset and edge.
    const ALPHABET: &[u8] =
        b"0123456789 -_:=@?%'\"\t\nAJbBeyhfskgptnd.KIS3/\\-----BEGIN PRIVATE KEY\xe4\xb8\xad";
    let wide = Redactor::new(Sets::ALL, &[]).unwrap();
    let narrow = Redactor::new(Sets::ALL, &[])
        .unwrap()
        .with_portable_vectors();
    let mut rng = crate::logs::corpus::Rng::new(99);
    for _ in 0..20_000 {
        let len = rng.below(300) as usize;
        let text: Vec<u8> = (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
            .collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        wide.redact(&mut State::default(), &text, &mut a);
        narrow.redact(&mut State::default(), &text, &mut b);
        assert!(a == b, "{:?}", String::from_utf8_lossy(&text));
    }
}
