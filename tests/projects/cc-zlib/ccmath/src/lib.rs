//! C functions compiled for the target by the `cc` crate.

unsafe extern "C" {
    fn ccmath_mul(a: i32, b: i32) -> i32;
    fn ccmath_big_endian() -> i32;
}

pub fn mul(a: i32, b: i32) -> i32 {
    unsafe { ccmath_mul(a, b) }
}

pub fn big_endian() -> bool {
    unsafe { ccmath_big_endian() != 0 }
}
