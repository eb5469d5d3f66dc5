use warden::scan::gguf::{check, template_injection};

fn target(data: &[u8]) {
    let _ = check(data);
    let _ = template_injection(&String::from_utf8_lossy(data));
}

fn main() {
    let mut seed =
        b"GGUF\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00"
            .to_vec();
    let key = b"general.alignment";
    seed.extend_from_slice(&(key.len() as u64).to_le_bytes());
    seed.extend_from_slice(key);
    seed.extend_from_slice(&4u32.to_le_bytes());
    seed.extend_from_slice(&32u32.to_le_bytes());
    let name = b"w";
    seed.extend_from_slice(&(name.len() as u64).to_le_bytes());
    seed.extend_from_slice(name);
    seed.extend_from_slice(&1u32.to_le_bytes());
    seed.extend_from_slice(&8u64.to_le_bytes());
    seed.extend_from_slice(&0u32.to_le_bytes());
    seed.extend_from_slice(&0u64.to_le_bytes());
    while seed.len() % 32 != 0 {
        seed.push(0);
    }
    seed.extend_from_slice(&[0u8; 32]);
    warden_fuzz::main("gguf", &[&seed], target);
}
