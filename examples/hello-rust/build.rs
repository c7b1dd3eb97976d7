//! Compiles `csrc/add.c` with the target's C compiler when the `c-code`
//! feature is on; `cc` reads `CC_<target>` and `AR_<target>`, which xbuild sets.

fn main() {
    println!("cargo::rerun-if-changed=csrc/add.c");
    #[cfg(feature = "c-code")]
    cc::Build::new().file("csrc/add.c").compile("add");
}
