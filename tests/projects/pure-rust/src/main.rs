fn main() {
    let words: Vec<String> = ["pure", "rust"]
        .iter()
        .map(|word| word.to_uppercase())
        .collect();
    println!(
        "{} on a {}-endian {}-bit target",
        words.join(" "),
        if cfg!(target_endian = "big") {
            "big"
        } else {
            "little"
        },
        usize::BITS
    );
}
