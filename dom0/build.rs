//! Links dom0 with its own linker script and generates the 256 interrupt entry stubs.
use std::fmt::Write as _;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
        println!("cargo:rustc-link-arg-bins=--icf=all");
    }
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");

    // Vectors for which the CPU pushes an error code (SDM vol. 3, table 6-1).
    let with_error = [8u32, 10, 11, 12, 13, 14, 17, 21, 29, 30];
    let mut s = String::new();
    s.push_str(".section .text.vectors, \"ax\"\n.code64\n");
    for v in 0..256u32 {
        writeln!(s, ".p2align 4\nvector_stub_{v}:").unwrap();
        if !with_error.contains(&v) {
            s.push_str("    push 0\n");
        }
        writeln!(s, "    push {v}\n    jmp vector_common").unwrap();
    }
    s.push_str(
        ".section .rodata.vectors, \"a\"\n.p2align 3\n.global VECTOR_STUBS\nVECTOR_STUBS:\n",
    );
    for v in 0..256u32 {
        writeln!(s, "    .quad vector_stub_{v}").unwrap();
    }
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{out}/vectors.s"), s).unwrap();
}
