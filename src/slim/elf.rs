//! What an ELF file needs before its first instruction runs, read from its
//! program headers and dynamic section: the program interpreter
//! (`PT_INTERP`, the dynamic loader the kernel or qemu maps, which no
//! traced call names), the `DT_NEEDED` libraries and the `DT_RUNPATH` /
//! `DT_RPATH` directories they are looked for in first. 32- and 64-bit,
//! either byte order; anything malformed reads as "needs nothing more".

const MAGIC: &[u8; 4] = b"\x7fELF";
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// The dynamic-linking facts of one ELF file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dynamic {
    /// `PT_INTERP`: `/lib/ld-linux-aarch64.so.1`.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` sonames, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` (or `DT_RPATH`) directories, `$ORIGIN` unexpanded.
    pub runpath: Vec<String>,
}

/// Whether `bytes` start like an ELF file.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Little reader of fixed-width fields in the file's byte order.
struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
    wide: bool,
}

impl Reader<'_> {
    fn u16(&self, offset: usize) -> Option<u16> {
        let slice: [u8; 2] = self.bytes.get(offset..offset + 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(slice)
        } else {
            u16::from_le_bytes(slice)
        })
    }

    fn u32(&self, offset: usize) -> Option<u32> {
        let slice: [u8; 4] = self.bytes.get(offset..offset + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(slice)
        } else {
            u32::from_le_bytes(slice)
        })
    }

    fn u64(&self, offset: usize) -> Option<u64> {
        let slice: [u8; 8] = self.bytes.get(offset..offset + 8)?.try_into().ok()?;
        Some(if self.big_endian {
            u64::from_be_bytes(slice)
        } else {
            u64::from_le_bytes(slice)
        })
    }

    /// An address-sized field: 8 bytes in ELF64, 4 in ELF32.
    fn word(&self, offset: usize) -> Option<u64> {
        if self.wide {
            self.u64(offset)
        } else {
            self.u32(offset).map(u64::from)
        }
    }

    fn string(&self, offset: usize) -> Option<String> {
        let rest = self.bytes.get(offset..)?;
        let end = rest.iter().position(|&byte| byte == 0)?;
        String::from_utf8(rest[..end].to_vec()).ok()
    }
}

/// A program header's type, file offset, virtual address and file size.
struct Segment {
    kind: u32,
    offset: u64,
    address: u64,
    file_size: u64,
}

/// The dynamic-linking facts of the ELF file `bytes`; `None` if it is not
/// an ELF file or its headers are out of bounds.
pub fn read(bytes: &[u8]) -> Option<Dynamic> {
    if !is_elf(bytes) {
        return None;
    }
    let reader = Reader {
        bytes,
        wide: *bytes.get(4)? == 2,
        big_endian: *bytes.get(5)? == 2,
    };
    let (phoff, phentsize, phnum) = if reader.wide {
        (reader.u64(0x20)?, reader.u16(0x36)?, reader.u16(0x38)?)
    } else {
        (
            u64::from(reader.u32(0x1c)?),
            reader.u16(0x2a)?,
            reader.u16(0x2c)?,
        )
    };
    let mut segments = Vec::new();
    for index in 0..usize::from(phnum) {
        let base = usize::try_from(phoff).ok()? + index * usize::from(phentsize);
        segments.push(if reader.wide {
            Segment {
                kind: reader.u32(base)?,
                offset: reader.u64(base + 8)?,
                address: reader.u64(base + 16)?,
                file_size: reader.u64(base + 32)?,
            }
        } else {
            Segment {
                kind: reader.u32(base)?,
                offset: u64::from(reader.u32(base + 4)?),
                address: u64::from(reader.u32(base + 8)?),
                file_size: u64::from(reader.u32(base + 16)?),
            }
        });
    }
    let mut dynamic = Dynamic::default();
    if let Some(interp) = segments.iter().find(|segment| segment.kind == PT_INTERP) {
        dynamic.interpreter = reader.string(usize::try_from(interp.offset).ok()?);
    }
    let Some(section) = segments.iter().find(|segment| segment.kind == PT_DYNAMIC) else {
        return Some(dynamic);
    };
    let entry_size = if reader.wide { 16 } else { 8 };
    let mut entries = Vec::new();
    let start = usize::try_from(section.offset).ok()?;
    let count = usize::try_from(section.file_size).ok()? / entry_size;
    for index in 0..count {
        let base = start + index * entry_size;
        let tag = reader.word(base)?;
        if tag == DT_NULL {
            break;
        }
        entries.push((tag, reader.word(base + entry_size / 2)?));
    }
    // DT_STRTAB is an address: the loaded segment holding it says where
    // it is in the file.
    let strtab_address = entries
        .iter()
        .find(|(tag, _)| *tag == DT_STRTAB)
        .map(|(_, value)| *value)?;
    let strtab = segments
        .iter()
        .filter(|segment| segment.kind == PT_LOAD)
        .find(|segment| {
            strtab_address >= segment.address
                && strtab_address < segment.address + segment.file_size
        })
        .map(|segment| strtab_address - segment.address + segment.offset)?;
    let string_at = |offset: u64| reader.string(usize::try_from(strtab + offset).ok()?);
    let mut rpath = Vec::new();
    for (tag, value) in &entries {
        match *tag {
            DT_NEEDED => dynamic.needed.extend(string_at(*value)),
            DT_RUNPATH => dynamic.runpath.extend(string_at(*value)),
            DT_RPATH => rpath.extend(string_at(*value)),
            _ => {}
        }
    }
    // DT_RPATH counts only when there is no DT_RUNPATH.
    if dynamic.runpath.is_empty() {
        dynamic.runpath = rpath;
    }
    dynamic.runpath = dynamic
        .runpath
        .iter()
        .flat_map(|list| list.split(':'))
        .filter(|dir| !dir.is_empty())
        .map(str::to_owned)
        .collect();
    Some(dynamic)
}

/// The interpreter of a `#!` script (`#!/usr/bin/env perl` → `/usr/bin/env`).
pub fn shebang(bytes: &[u8]) -> Option<String> {
    let rest = bytes.strip_prefix(b"#!")?;
    let line = &rest[..rest.iter().position(|&byte| byte == b'\n')?];
    let line = std::str::from_utf8(line).ok()?.trim();
    let interpreter = line.split_whitespace().next()?;
    interpreter.starts_with('/').then(|| interpreter.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_elf_reads_as_none() {
        assert_eq!(read(b"#!/bin/sh\n"), None);
        assert_eq!(read(b"\x7fELF"), None);
        assert_eq!(read(b""), None);
    }

    #[test]
    fn shebang_lines() {
        assert_eq!(
            shebang(b"#!/usr/bin/perl -w\nprint 1;\n"),
            Some("/usr/bin/perl".into())
        );
        assert_eq!(shebang(b"#! /bin/sh\n"), Some("/bin/sh".into()));
        assert_eq!(shebang(b"#!perl\n"), None);
        assert_eq!(shebang(b"\x7fELF"), None);
    }

    /// The host's own `/bin/sh` (an ELF of the host's machine): read the
    /// same way, it has an interpreter and needs libc.
    #[test]
    fn the_hosts_shell() {
        let bytes = std::fs::read("/bin/sh").expect("/bin/sh");
        let resolved = std::fs::canonicalize("/bin/sh").unwrap();
        let dynamic = read(&bytes).expect("an ELF file");
        assert!(
            dynamic
                .interpreter
                .as_deref()
                .is_some_and(|path| path.contains("ld-")),
            "{resolved:?}: {dynamic:?}"
        );
        assert!(
            dynamic
                .needed
                .iter()
                .any(|name| name.starts_with("libc.so")),
            "{dynamic:?}"
        );
    }
}
