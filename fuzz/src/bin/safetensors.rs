use warden::scan::safetensors::check;

fn main() {
    warden_fuzz::main(
        "safetensors",
        &[b"<\x00\x00\x00\x00\x00\x00\x00{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}  \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"],
        |d| {
            let _ = check(d);
        },
    );
}
