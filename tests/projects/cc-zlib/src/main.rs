//! Prints what the C code and the target's zlib computed: the same lines on
//! every target, but for the byte order and word size.

use std::ffi::CStr;
use std::os::raw::c_ulong;

fn main() {
    let text = b"hello from every architecture, compressed and back".repeat(20);
    let mut packed = vec![0u8; 4096];
    let mut packed_length = packed.len() as c_ulong;
    let mut unpacked = vec![0u8; text.len()];
    let mut unpacked_length = unpacked.len() as c_ulong;
    let (compress, uncompress) = unsafe {
        (
            libz_sys::compress(
                packed.as_mut_ptr(),
                &mut packed_length,
                text.as_ptr(),
                text.len() as c_ulong,
            ),
            libz_sys::uncompress(
                unpacked.as_mut_ptr(),
                &mut unpacked_length,
                packed.as_ptr(),
                packed_length,
            ),
        )
    };
    let version = unsafe { CStr::from_ptr(libz_sys::zlibVersion()) };
    let round_trip =
        compress == 0 && uncompress == 0 && unpacked[..unpacked_length as usize] == text[..];
    println!("zlib {}", version.to_string_lossy());
    println!(
        "zlib round trip: {}",
        if round_trip { "ok" } else { "FAILED" }
    );
    println!("C: 6 * 7 = {}", ccmath::mul(6, 7));
    println!(
        "C compiled for a {}-endian target, Rust for a {}-endian {}-bit one",
        if ccmath::big_endian() {
            "big"
        } else {
            "little"
        },
        if cfg!(target_endian = "big") {
            "big"
        } else {
            "little"
        },
        usize::BITS
    );
}
