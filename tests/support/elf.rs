//! Just enough ELF reading to tell how a cross-compiled binary is linked:
//! its machine, whether it asks for a program interpreter, and the shared
//! libraries its dynamic section names (`DT_NEEDED`). Little-endian ELF32
//! and ELF64 only (every target the tests run).

/// What the tests want to know about a binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// 32 or 64.
    pub class: u8,
    /// `e_machine`: 183 aarch64, 40 arm, 62 x86-64, …
    pub machine: u16,
    /// A `PT_INTERP` program header is present (dynamically linked).
    pub has_interpreter: bool,
    /// `DT_NEEDED` entries, in order.
    pub needed: Vec<String>,
}

pub const EM_ARM: u16 = 40;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

const PT_INTERP: u32 = 3;
const SHT_DYNAMIC: u32 = 6;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(bytes[offset..offset + 2].try_into().unwrap())
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

/// Parses `bytes` as an ELF file; panics on anything else.
pub fn read_elf(bytes: &[u8]) -> ElfInfo {
    assert!(
        bytes.len() > 64 && bytes[..4] == *b"\x7fELF",
        "not an ELF file"
    );
    let class = match bytes[4] {
        1 => 32,
        2 => 64,
        other => panic!("unknown ELF class {other}"),
    };
    assert_eq!(bytes[5], 1, "only little-endian ELF is read here");
    let wide = class == 64;
    // A native-width word (address or offset) at `offset`.
    let word = |offset: usize| -> u64 {
        if wide {
            u64_at(bytes, offset)
        } else {
            u64::from(u32_at(bytes, offset))
        }
    };
    let machine = u16_at(bytes, 18);
    let (phoff, shoff) = if wide {
        (word(32) as usize, word(40) as usize)
    } else {
        (word(28) as usize, word(32) as usize)
    };
    let (phentsize, phnum, shentsize, shnum) = if wide {
        (
            u16_at(bytes, 54),
            u16_at(bytes, 56),
            u16_at(bytes, 58),
            u16_at(bytes, 60),
        )
    } else {
        (
            u16_at(bytes, 42),
            u16_at(bytes, 44),
            u16_at(bytes, 46),
            u16_at(bytes, 48),
        )
    };

    let has_interpreter = (0..phnum as usize)
        .any(|index| u32_at(bytes, phoff + index * phentsize as usize) == PT_INTERP);

    // Section header fields: (type, offset, size, link).
    let section = |index: usize| -> (u32, usize, usize, usize) {
        let base = shoff + index * shentsize as usize;
        if wide {
            (
                u32_at(bytes, base + 4),
                u64_at(bytes, base + 24) as usize,
                u64_at(bytes, base + 32) as usize,
                u32_at(bytes, base + 40) as usize,
            )
        } else {
            (
                u32_at(bytes, base + 4),
                u32_at(bytes, base + 16) as usize,
                u32_at(bytes, base + 20) as usize,
                u32_at(bytes, base + 24) as usize,
            )
        }
    };
    let mut needed = Vec::new();
    for index in 0..shnum as usize {
        let (kind, offset, size, link) = section(index);
        if kind != SHT_DYNAMIC {
            continue;
        }
        let (_, strings, strings_size, _) = section(link);
        let strings = &bytes[strings..strings + strings_size];
        let entry_size = if wide { 16 } else { 8 };
        for entry in bytes[offset..offset + size].chunks_exact(entry_size) {
            let (tag, value) = if wide {
                (u64_at(entry, 0), u64_at(entry, 8))
            } else {
                (u64::from(u32_at(entry, 0)), u64::from(u32_at(entry, 4)))
            };
            if tag == DT_NULL {
                break;
            }
            if tag == DT_NEEDED {
                let name = &strings[value as usize..];
                let end = name.iter().position(|&byte| byte == 0).unwrap();
                needed.push(String::from_utf8_lossy(&name[..end]).into_owned());
            }
        }
    }
    ElfInfo {
        class,
        machine,
        has_interpreter,
        needed,
    }
}
