//! Prints the CPU architecture it was compiled for and, with the `c-code`
//! feature, a sum computed by C code cross-compiled alongside it.

#[cfg(feature = "c-code")]
unsafe extern "C" {
    fn xbuild_add(a: i32, b: i32) -> i32;
}

fn main() {
    println!("hello from {}", std::env::consts::ARCH);
    #[cfg(feature = "c-code")]
    {
        // SAFETY: `xbuild_add` (csrc/add.c) takes and returns plain ints.
        let sum = unsafe { xbuild_add(2, 3) };
        println!("2 + 3 = {sum} (from C)");
    }
}
