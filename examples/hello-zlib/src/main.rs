//! Prints the version of the zlib it is dynamically linked against (the
//! target's Debian `zlib1g`) and checks that a string survives a
//! compress/uncompress round trip through it.

use std::ffi::CStr;
use std::process::ExitCode;

use libz_sys::{Z_OK, compress, compressBound, uLong, uLongf, uncompress, zlibVersion};

const TEXT: &str = "xbuild cross-compiles this, links the target's zlib, and never emulates a build. \
                    xbuild cross-compiles this, links the target's zlib, and never emulates a build.";

fn round_trip(input: &[u8]) -> Result<Vec<u8>, String> {
    // SAFETY: every buffer passed to zlib is valid for the length given with it.
    unsafe {
        let mut compressed_len: uLongf = compressBound(input.len() as uLong);
        let mut compressed = vec![0u8; compressed_len as usize];
        let status = compress(
            compressed.as_mut_ptr(),
            &mut compressed_len,
            input.as_ptr(),
            input.len() as uLong,
        );
        if status != Z_OK {
            return Err(format!("compress returned {status}"));
        }
        compressed.truncate(compressed_len as usize);
        if compressed.len() >= input.len() {
            return Err(format!(
                "{} bytes compressed to {}",
                input.len(),
                compressed.len()
            ));
        }
        let mut output_len: uLongf = input.len() as uLongf;
        let mut output = vec![0u8; input.len()];
        let status = uncompress(
            output.as_mut_ptr(),
            &mut output_len,
            compressed.as_ptr(),
            compressed.len() as uLong,
        );
        if status != Z_OK {
            return Err(format!("uncompress returned {status}"));
        }
        output.truncate(output_len as usize);
        Ok(output)
    }
}

fn main() -> ExitCode {
    // SAFETY: zlibVersion returns a pointer to a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(zlibVersion()) }.to_string_lossy();
    let arch = std::env::consts::ARCH;
    match round_trip(TEXT.as_bytes()) {
        Ok(output) if output == TEXT.as_bytes() => {
            println!("zlib {version} on {arch}: round trip ok");
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("zlib {version} on {arch}: round trip changed the text");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("zlib {version} on {arch}: {error}");
            ExitCode::FAILURE
        }
    }
}
