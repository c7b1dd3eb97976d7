//! Debian control files (deb822): paragraphs of `Name: value` fields
//! separated by blank lines, with continuation lines that start with a space
//! or a tab, and `#` comment lines. This module owns the [`Paragraph`] type
//! and the streaming [`ParagraphReader`], which reads one paragraph at a time
//! so that a 50 MB `Packages` index is never held whole in memory.
//!
//! Field values are stored as written: the first line with surrounding
//! whitespace trimmed, then each continuation line after a `\n`, keeping its
//! leading space (dpkg's own representation). Field names are looked up
//! case-insensitively; when a paragraph repeats a field, the first one wins.

use std::fmt;
use std::io::{self, BufRead};
use std::ops::Range;

/// An error while reading a control file. Each variant names the origin
/// (a path or URL, as given by the caller) and the 1-based line number.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot read {origin} at line {line}")]
    Read {
        origin: String,
        line: usize,
        #[source]
        source: io::Error,
    },
    #[error("{origin}:{line}: expected `Name: value`, found {text:?}")]
    MissingColon {
        origin: String,
        line: usize,
        text: String,
    },
    #[error("{origin}:{line}: empty field name")]
    EmptyFieldName { origin: String, line: usize },
    #[error("{origin}:{line}: continuation line before any field")]
    ContinuationWithoutField { origin: String, line: usize },
}

/// Where one field lives inside [`Paragraph::text`].
#[derive(Clone, Debug)]
struct FieldSpan {
    name: Range<usize>,
    value: Range<usize>,
    line: usize,
}

/// One deb822 paragraph: ordered fields with case-insensitive lookup.
///
/// All field text lives in one string, so a paragraph costs a single
/// allocation for its text plus one for the field table.
#[derive(Clone, Debug, Default)]
pub struct Paragraph {
    text: String,
    fields: Vec<FieldSpan>,
}

impl Paragraph {
    /// An empty paragraph, to be filled with [`Paragraph::push`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses text holding exactly one paragraph (blank lines around it are
    /// allowed). Returns `None` for text with no field at all.
    pub fn parse(text: &str, origin: &str) -> Result<Option<Paragraph>, ControlError> {
        let mut reader = ParagraphReader::new(text.as_bytes(), origin);
        match reader.next() {
            None => Ok(None),
            Some(result) => result.map(|(paragraph, _)| Some(paragraph)),
        }
    }

    /// Appends a field. `value` may contain continuation lines after `\n`.
    pub fn push(&mut self, name: &str, value: &str) {
        let name_start = self.text.len();
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push_str(value);
        self.fields.push(FieldSpan {
            name: name_start..name_end,
            value: name_end..self.text.len(),
            line: 0,
        });
    }

    /// The value of the first field called `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).map(|span| &self.text[span.value.clone()])
    }

    /// The line number of the first field called `name`, if the paragraph
    /// was read from a file.
    pub fn line_of(&self, name: &str) -> Option<usize> {
        self.find(name).map(|span| span.line)
    }

    /// Whether a field called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// All fields in file order, as `(name, value)`.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields.iter().map(|span| {
            (
                &self.text[span.name.clone()],
                &self.text[span.value.clone()],
            )
        })
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the paragraph has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn find(&self, name: &str) -> Option<&FieldSpan> {
        self.fields
            .iter()
            .find(|span| self.text[span.name.clone()].eq_ignore_ascii_case(name))
    }
}

/// Writes the paragraph back in deb822 form, one `Name: value` per field,
/// without a trailing blank line.
impl fmt::Display for Paragraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in self.fields() {
            if value.is_empty() || value.starts_with('\n') {
                writeln!(f, "{name}:{value}")?;
            } else {
                writeln!(f, "{name}: {value}")?;
            }
        }
        Ok(())
    }
}

/// Streams paragraphs out of a control file, yielding each paragraph with
/// the line number of its first field. After an error the reader stops.
pub struct ParagraphReader<R> {
    reader: R,
    origin: String,
    line_number: usize,
    line: Vec<u8>,
    finished: bool,
}

impl<R: BufRead> ParagraphReader<R> {
    /// `origin` (a path or URL) is only used in error messages.
    pub fn new(reader: R, origin: impl Into<String>) -> Self {
        ParagraphReader {
            reader,
            origin: origin.into(),
            line_number: 0,
            line: Vec::with_capacity(256),
            finished: false,
        }
    }

    /// The origin given to [`ParagraphReader::new`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Reads the next line into `self.line` without its line ending.
    /// Returns `false` at end of input.
    fn read_line(&mut self) -> Result<bool, ControlError> {
        self.line.clear();
        let read = self
            .reader
            .read_until(b'\n', &mut self.line)
            .map_err(|source| ControlError::Read {
                origin: self.origin.clone(),
                line: self.line_number + 1,
                source,
            })?;
        if read == 0 {
            return Ok(false);
        }
        self.line_number += 1;
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        Ok(true)
    }

    fn read_paragraph(&mut self) -> Result<Option<(Paragraph, usize)>, ControlError> {
        let mut paragraph = Paragraph::new();
        let mut first_line = 0;
        loop {
            if !self.read_line()? {
                break;
            }
            let line = String::from_utf8_lossy(&self.line);
            if line.trim().is_empty() {
                if paragraph.is_empty() {
                    continue;
                }
                break;
            }
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let Some(last) = paragraph.fields.last_mut() else {
                    return Err(ControlError::ContinuationWithoutField {
                        origin: self.origin.clone(),
                        line: self.line_number,
                    });
                };
                paragraph.text.push('\n');
                paragraph.text.push_str(line.trim_end());
                last.value.end = paragraph.text.len();
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(ControlError::MissingColon {
                    origin: self.origin.clone(),
                    line: self.line_number,
                    text: line.into_owned(),
                });
            };
            let name = name.trim_end();
            if name.is_empty() {
                return Err(ControlError::EmptyFieldName {
                    origin: self.origin.clone(),
                    line: self.line_number,
                });
            }
            if paragraph.is_empty() {
                first_line = self.line_number;
            }
            let name_start = paragraph.text.len();
            paragraph.text.push_str(name);
            let name_end = paragraph.text.len();
            paragraph.text.push_str(value.trim());
            paragraph.fields.push(FieldSpan {
                name: name_start..name_end,
                value: name_end..paragraph.text.len(),
                line: self.line_number,
            });
        }
        if paragraph.is_empty() {
            Ok(None)
        } else {
            Ok(Some((paragraph, first_line)))
        }
    }
}

impl<R: BufRead> Iterator for ParagraphReader<R> {
    type Item = Result<(Paragraph, usize), ControlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.read_paragraph() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Vec<(Paragraph, usize)> {
        ParagraphReader::new(text.as_bytes(), "test")
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    #[test]
    fn reads_paragraphs_with_line_numbers() {
        let text = "\n\nPackage: a\nVersion: 1\n\n\n# comment\nPackage: b\r\nVersion: 2\r\n";
        let paragraphs = read_all(text);
        assert_eq!(paragraphs.len(), 2);
        assert_eq!(paragraphs[0].1, 3);
        assert_eq!(paragraphs[0].0.get("package"), Some("a"));
        assert_eq!(paragraphs[1].1, 8);
        assert_eq!(paragraphs[1].0.get("VERSION"), Some("2"));
        assert_eq!(paragraphs[1].0.line_of("Version"), Some(9));
    }

    #[test]
    fn continuation_lines_are_kept_as_written() {
        let text = "Description: short\n long line\n .\n\tlast  \nDepends: a,\n b\n";
        let paragraphs = read_all(text);
        let paragraph = &paragraphs[0].0;
        assert_eq!(
            paragraph.get("Description"),
            Some("short\n long line\n .\n\tlast")
        );
        assert_eq!(paragraph.get("depends"), Some("a,\n b"));
        let names: Vec<_> = paragraph.fields().map(|(name, _)| name).collect();
        assert_eq!(names, ["Description", "Depends"]);
    }

    #[test]
    fn comments_inside_a_paragraph_are_skipped() {
        let text = "Types: deb\n# a comment\nURIs: http://example.invalid/debian\n";
        let paragraphs = read_all(text);
        assert_eq!(paragraphs.len(), 1);
        assert_eq!(paragraphs[0].0.len(), 2);
        assert_eq!(
            paragraphs[0].0.get("uris"),
            Some("http://example.invalid/debian")
        );
    }

    #[test]
    fn whitespace_only_lines_separate_paragraphs() {
        let paragraphs = read_all("A: 1\n  \t\nB: 2\n");
        assert_eq!(paragraphs.len(), 2);
        assert_eq!(paragraphs[1].0.get("b"), Some("2"));
    }

    #[test]
    fn value_may_contain_colons_and_be_empty() {
        let paragraphs = read_all("Url: http://x/y\nEmpty:\nFiles:\n abc 1 f\n");
        let paragraph = &paragraphs[0].0;
        assert_eq!(paragraph.get("url"), Some("http://x/y"));
        assert_eq!(paragraph.get("empty"), Some(""));
        assert_eq!(paragraph.get("files"), Some("\n abc 1 f"));
        assert!(!paragraph.contains("missing"));
    }

    #[test]
    fn first_duplicate_field_wins() {
        let paragraphs = read_all("A: 1\na: 2\n");
        assert_eq!(paragraphs[0].0.get("A"), Some("1"));
    }

    #[test]
    fn missing_colon_is_an_error_with_origin_and_line() {
        let mut reader = ParagraphReader::new("A: 1\n\nB: 2\nbroken\n".as_bytes(), "lists/x");
        assert!(reader.next().unwrap().is_ok());
        let error = reader.next().unwrap().unwrap_err();
        assert_eq!(
            error.to_string(),
            "lists/x:4: expected `Name: value`, found \"broken\""
        );
        assert!(reader.next().is_none());
    }

    #[test]
    fn continuation_first_is_an_error() {
        let error = ParagraphReader::new(" x\n".as_bytes(), "f")
            .next()
            .unwrap()
            .unwrap_err();
        assert!(matches!(
            error,
            ControlError::ContinuationWithoutField { line: 1, .. }
        ));
    }

    #[test]
    fn display_round_trips() {
        let text = "Package: a\nDescription: d\n more\nFiles:\n x\n";
        let paragraph = Paragraph::parse(text, "t").unwrap().unwrap();
        assert_eq!(paragraph.to_string(), text);
        let again = Paragraph::parse(&paragraph.to_string(), "t")
            .unwrap()
            .unwrap();
        assert_eq!(again.get("description"), Some("d\n more"));
    }

    #[test]
    fn push_builds_a_paragraph() {
        let mut paragraph = Paragraph::new();
        paragraph.push("Package", "a");
        paragraph.push("Version", "1.0");
        assert_eq!(paragraph.get("version"), Some("1.0"));
        assert_eq!(paragraph.to_string(), "Package: a\nVersion: 1.0\n");
        assert!(Paragraph::parse("\n\n", "t").unwrap().is_none());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let bytes = b"Maintainer: J\xe9r\xf4me\n";
        let paragraphs: Vec<_> = ParagraphReader::new(&bytes[..], "t")
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(paragraphs[0].0.get("maintainer").unwrap().starts_with('J'));
    }
}
