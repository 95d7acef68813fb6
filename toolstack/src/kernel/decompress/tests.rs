//! Host tests of the decompressors.

use std::vec;

use super::*;

#[test]
fn smoke_real_xz() {
    let Ok(img) = std::fs::read("/tmp/vmlinuz-6.1") else {
        return;
    };
    let p = crate::kernel::locate_payload(&img).unwrap();
    let payload = &img[p.offset..p.offset + p.len];
    let size = decompressed_size(p.compression, payload).unwrap();
    let room = output_room(p.compression, payload).unwrap();
    std::eprintln!("size {size} room {room}");
    let mut out = vec![0u8; room];
    let t = std::time::Instant::now();
    let n = decompress_into(p.compression, payload, &mut out).unwrap();
    std::eprintln!("{n} in {:?}", t.elapsed());
    crate::kernel::elf::parse(&out[..n]).unwrap();
}
