//! Just enough of POSIX `sh` to read maintainer scripts without running
//! them: a lexer (quotes, `\` continuations, expansions, comments,
//! here-documents, operators) and a walk over the token stream that yields
//! every simple command with the compound commands around it (`if`,
//! `case`, loops, function bodies). Nothing here guesses: an expansion it
//! cannot resolve stays [`Part::Opaque`] or [`Part::Variable`], and the
//! caller decides what that means.

/// One piece of a shell word, after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Unquoted literal text (subject to field splitting and globbing).
    Literal(String),
    /// Quoted literal text.
    Quoted(String),
    /// `$NAME` or `${NAME}` (also `$1`, `$@`…); `quoted` when inside `"…"`.
    Variable { name: String, quoted: bool },
    /// An expansion whose value is not known without running the script:
    /// command substitution, arithmetic, `${NAME:-…}` forms, `~`.
    Opaque { what: &'static str, text: String },
}

/// A word and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub parts: Vec<Part>,
    pub line: usize,
}

impl Word {
    /// The word's text when it is a single unquoted literal (how reserved
    /// words and assignments are recognised).
    pub fn bare(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// `NAME` of a `NAME=value` word, with the parts of the value.
    pub fn assignment(&self) -> Option<(&str, Vec<Part>)> {
        let Some(Part::Literal(first)) = self.parts.first() else {
            return None;
        };
        let (name, rest) = first.split_once('=')?;
        if !is_name(name) {
            return None;
        }
        let mut value = Vec::new();
        if !rest.is_empty() {
            value.push(Part::Literal(rest.to_owned()));
        }
        value.extend(self.parts[1..].iter().cloned());
        Some((name, value))
    }
}

/// A valid shell variable name.
pub fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|first| first == '_' || first.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(Word),
    /// `;` `;;` `&&` `||` `|` `&` `(` `)` or a newline (`"\n"`).
    Operator(&'static str, usize),
    /// A redirection operator; the next word is its target.
    Redirect(usize),
}

/// The compound commands a simple command is nested in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    If,
    Case,
    Loop,
    Function,
    Group,
    Subshell,
}

/// A simple command: its words (redirections left out), the lines it
/// spans, the compound commands around it, and whether it is joined to
/// others by a pipe, `&`, `&&` or `||`.
#[derive(Debug, Clone)]
pub struct Command {
    pub words: Vec<Word>,
    pub first_line: usize,
    pub last_line: usize,
    pub contexts: Vec<Context>,
    pub joined: bool,
}

/// Why a script could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

struct Lexer {
    chars: Vec<char>,
    position: usize,
    line: usize,
    tokens: Vec<Token>,
    /// Here-document delimiters waiting for the end of the line
    /// (`<<-` strips leading tabs).
    pending_heredocs: Vec<(String, bool)>,
}

/// Splits `script` into tokens.
fn lex(script: &str) -> Result<Vec<Token>, SyntaxError> {
    let mut lexer = Lexer {
        chars: script.chars().collect(),
        position: 0,
        line: 1,
        tokens: Vec::new(),
        pending_heredocs: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

impl Lexer {
    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.position + offset).copied()
    }

    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError {
            line: self.line,
            message: message.to_owned(),
        }
    }

    fn run(&mut self) -> Result<(), SyntaxError> {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' => self.position += 1,
                '\\' if self.peek(1) == Some('\n') => {
                    self.position += 2;
                    self.line += 1;
                }
                '\n' => {
                    self.tokens.push(Token::Operator("\n", self.line));
                    self.position += 1;
                    self.line += 1;
                    self.skip_heredocs()?;
                }
                '#' => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.position += 1;
                    }
                }
                ';' | '&' | '|' | '(' | ')' => self.operator(c),
                '<' | '>' => self.redirect()?,
                _ => self.word()?,
            }
        }
        Ok(())
    }

    fn operator(&mut self, c: char) {
        let next = self.peek(1);
        let (operator, length) = match (c, next) {
            (';', Some(';')) => (";;", 2),
            ('&', Some('&')) => ("&&", 2),
            ('|', Some('|')) => ("||", 2),
            (';', _) => (";", 1),
            ('&', _) => ("&", 1),
            ('|', _) => ("|", 1),
            ('(', _) => ("(", 1),
            _ => (")", 1),
        };
        self.tokens.push(Token::Operator(operator, self.line));
        self.position += length;
    }

    fn redirect(&mut self) -> Result<(), SyntaxError> {
        let line = self.line;
        if self.peek(0) == Some('<') && self.peek(1) == Some('<') {
            self.position += 2;
            let strip_tabs = self.peek(0) == Some('-');
            if strip_tabs {
                self.position += 1;
            }
            while matches!(self.peek(0), Some(' ' | '\t')) {
                self.position += 1;
            }
            let delimiter = self.word_parts()?;
            let text: String = delimiter
                .iter()
                .map(|part| match part {
                    Part::Literal(text) | Part::Quoted(text) => text.clone(),
                    Part::Variable { name, .. } => format!("${name}"),
                    Part::Opaque { text, .. } => text.clone(),
                })
                .collect();
            self.pending_heredocs.push((text, strip_tabs));
            return Ok(());
        }
        self.position += 1;
        if matches!(self.peek(0), Some('>' | '&' | '|')) {
            self.position += 1;
        }
        self.tokens.push(Token::Redirect(line));
        Ok(())
    }

    fn skip_heredocs(&mut self) -> Result<(), SyntaxError> {
        for (delimiter, strip_tabs) in std::mem::take(&mut self.pending_heredocs) {
            loop {
                if self.position >= self.chars.len() {
                    return Err(self.error(&format!("here-document `{delimiter}` never ends")));
                }
                let start = self.position;
                while self.peek(0).is_some_and(|c| c != '\n') {
                    self.position += 1;
                }
                let line: String = self.chars[start..self.position].iter().collect();
                self.position += 1;
                self.line += 1;
                let line = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if line == delimiter {
                    break;
                }
            }
        }
        Ok(())
    }

    fn word(&mut self) -> Result<(), SyntaxError> {
        let line = self.line;
        let parts = self.word_parts()?;
        // `2>&1`: the digits before a redirection are its descriptor.
        if matches!(self.peek(0), Some('<' | '>'))
            && matches!(parts.as_slice(), [Part::Literal(text)] if text.chars().all(|c| c.is_ascii_digit()))
        {
            return Ok(());
        }
        self.tokens.push(Token::Word(Word { parts, line }));
        Ok(())
    }

    /// Reads one word up to an unquoted blank or operator.
    fn word_parts(&mut self) -> Result<Vec<Part>, SyntaxError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let flush = |parts: &mut Vec<Part>, literal: &mut String| {
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(literal)));
            }
        };
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>' => break,
                '\\' => {
                    match self.peek(1) {
                        Some('\n') => self.line += 1,
                        Some(escaped) => {
                            flush(&mut parts, &mut literal);
                            parts.push(Part::Quoted(escaped.to_string()));
                        }
                        None => {}
                    }
                    self.position += 2;
                }
                '\'' => {
                    flush(&mut parts, &mut literal);
                    self.position += 1;
                    let mut text = String::new();
                    loop {
                        match self.peek(0) {
                            None => return Err(self.error("unterminated single quote")),
                            Some('\'') => break,
                            Some(c) => {
                                if c == '\n' {
                                    self.line += 1;
                                }
                                text.push(c);
                                self.position += 1;
                            }
                        }
                    }
                    self.position += 1;
                    parts.push(Part::Quoted(text));
                }
                '"' => {
                    flush(&mut parts, &mut literal);
                    self.position += 1;
                    self.double_quoted(&mut parts)?;
                }
                '$' | '`' => {
                    flush(&mut parts, &mut literal);
                    let part = self.expansion(false)?;
                    parts.push(part);
                }
                '~' if parts.is_empty() && literal.is_empty() => {
                    self.position += 1;
                    parts.push(Part::Opaque {
                        what: "tilde expansion",
                        text: "~".into(),
                    });
                }
                _ => {
                    literal.push(c);
                    self.position += 1;
                }
            }
        }
        flush(&mut parts, &mut literal);
        Ok(parts)
    }

    fn double_quoted(&mut self, parts: &mut Vec<Part>) -> Result<(), SyntaxError> {
        let mut text = String::new();
        loop {
            match self.peek(0) {
                None => return Err(self.error("unterminated double quote")),
                Some('"') => {
                    self.position += 1;
                    break;
                }
                Some('\\') => {
                    match self.peek(1) {
                        Some('\n') => self.line += 1,
                        Some(c @ ('$' | '`' | '"' | '\\')) => text.push(c),
                        Some(c) => {
                            text.push('\\');
                            text.push(c);
                        }
                        None => return Err(self.error("unterminated double quote")),
                    }
                    self.position += 2;
                }
                Some('$' | '`') => {
                    if !text.is_empty() {
                        parts.push(Part::Quoted(std::mem::take(&mut text)));
                    }
                    let part = self.expansion(true)?;
                    parts.push(part);
                }
                Some(c) => {
                    if c == '\n' {
                        self.line += 1;
                    }
                    text.push(c);
                    self.position += 1;
                }
            }
        }
        // `""` is an empty word, not no word.
        parts.push(Part::Quoted(text));
        Ok(())
    }

    /// At `$` or a backquote.
    fn expansion(&mut self, quoted: bool) -> Result<Part, SyntaxError> {
        let start = self.position;
        if self.peek(0) == Some('`') {
            self.position += 1;
            loop {
                match self.peek(0) {
                    None => return Err(self.error("unterminated backquote")),
                    Some('\\') => self.position += 2,
                    Some('`') => break,
                    Some(c) => {
                        if c == '\n' {
                            self.line += 1;
                        }
                        self.position += 1;
                    }
                }
            }
            self.position += 1;
            return Ok(self.opaque("command substitution", start));
        }
        self.position += 1;
        match self.peek(0) {
            Some('(') => {
                let arithmetic = self.peek(1) == Some('(');
                self.skip_balanced('(', ')')?;
                let what = if arithmetic {
                    "arithmetic expansion"
                } else {
                    "command substitution"
                };
                Ok(self.opaque(what, start))
            }
            Some('{') => {
                self.skip_balanced('{', '}')?;
                let inner: String = self.chars[start + 2..self.position - 1].iter().collect();
                if is_name(&inner) || is_special(&inner) {
                    Ok(Part::Variable {
                        name: inner,
                        quoted,
                    })
                } else {
                    Ok(self.opaque("parameter expansion", start))
                }
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.position += 1;
                Ok(Part::Variable {
                    name: c.to_string(),
                    quoted,
                })
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let name_start = self.position;
                while self
                    .peek(0)
                    .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
                {
                    self.position += 1;
                }
                Ok(Part::Variable {
                    name: self.chars[name_start..self.position].iter().collect(),
                    quoted,
                })
            }
            // A lone `$` is literal.
            _ => Ok(if quoted {
                Part::Quoted("$".into())
            } else {
                Part::Literal("$".into())
            }),
        }
    }

    fn opaque(&self, what: &'static str, start: usize) -> Part {
        Part::Opaque {
            what,
            text: self.chars[start..self.position].iter().collect(),
        }
    }

    /// From an opening bracket to its match, minding quotes.
    fn skip_balanced(&mut self, open: char, close: char) -> Result<(), SyntaxError> {
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek(0) {
            self.position += 1;
            if c == '\n' {
                self.line += 1;
            }
            match (quote, c) {
                (Some('\''), '\'') | (Some('"'), '"') => quote = None,
                (Some('"'), '\\') | (None, '\\') => self.position += 1,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, c) if c == open => depth += 1,
                (None, c) if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(self.error(&format!("unterminated `{open}`")))
    }
}

fn is_special(name: &str) -> bool {
    name.len() == 1 && "@*#?$!-0123456789".contains(name)
        || name.chars().all(|c| c.is_ascii_digit())
}

/// Every simple command of `script`, in order.
pub fn commands(script: &str) -> Result<Vec<Command>, SyntaxError> {
    let tokens = lex(script)?;
    let mut walker = Walker::default();
    let mut index = 0;
    while index < tokens.len() {
        index = walker.token(&tokens, index)?;
    }
    walker.finish(None);
    Ok(walker.commands)
}

#[derive(Default)]
struct Walker {
    commands: Vec<Command>,
    stack: Vec<Context>,
    words: Vec<Word>,
    last_line: usize,
    /// The operator before the command being read joins it to another.
    joined_before: bool,
    /// Inside `case … in` where a pattern is expected.
    in_pattern: bool,
    /// A `NAME ( )` was read: the next `{` opens a function body.
    function_next: bool,
    /// After `for`: skipping the loop header up to `do`.
    in_for_header: bool,
}

impl Walker {
    fn finish(&mut self, separator: Option<&str>) {
        if self.words.is_empty() {
            return;
        }
        let joined_after = matches!(separator, Some("|" | "&" | "&&" | "||"));
        let words = std::mem::take(&mut self.words);
        self.commands.push(Command {
            first_line: words[0].line,
            last_line: self.last_line.max(words[0].line),
            words,
            contexts: self.stack.clone(),
            joined: self.joined_before || joined_after,
        });
    }

    fn pop(&mut self, expected: &[Context], word: &str, line: usize) -> Result<(), SyntaxError> {
        match self.stack.pop() {
            Some(context) if expected.contains(&context) => Ok(()),
            _ => Err(SyntaxError {
                line,
                message: format!("`{word}` without its opening"),
            }),
        }
    }

    fn token(&mut self, tokens: &[Token], index: usize) -> Result<usize, SyntaxError> {
        match &tokens[index] {
            Token::Redirect(line) => {
                self.last_line = *line;
                // The target is not part of the command.
                if let Some(Token::Word(word)) = tokens.get(index + 1) {
                    self.last_line = word.line;
                    return Ok(index + 2);
                }
                Ok(index + 1)
            }
            Token::Operator(operator, line) => {
                self.last_line = self.last_line.max(*line);
                self.operator(tokens, index, operator, *line)
            }
            Token::Word(word) => {
                self.last_line = self.last_line.max(word.line);
                self.word(tokens, index, word)?;
                Ok(index + 1)
            }
        }
    }

    fn operator(
        &mut self,
        tokens: &[Token],
        index: usize,
        operator: &str,
        line: usize,
    ) -> Result<usize, SyntaxError> {
        if self.in_pattern {
            // `(pattern | pattern)`: the closing parenthesis ends it.
            if operator == ")" {
                self.in_pattern = false;
            }
            return Ok(index + 1);
        }
        match operator {
            "(" if self.words.len() == 1
                && matches!(tokens.get(index + 1), Some(Token::Operator(")", _))) =>
            {
                // `name ( )`: a function definition.
                self.words.clear();
                self.function_next = true;
                return Ok(index + 2);
            }
            "(" if self.words.is_empty() => self.stack.push(Context::Subshell),
            ")" => {
                self.finish(Some(operator));
                self.pop(&[Context::Subshell], ")", line)?;
            }
            _ => {
                self.finish(Some(operator));
                if operator == ";;" {
                    if self.stack.last() != Some(&Context::Case) {
                        return Err(SyntaxError {
                            line,
                            message: "`;;` outside `case`".into(),
                        });
                    }
                    self.in_pattern = true;
                }
            }
        }
        self.joined_before = matches!(operator, "|" | "&&" | "||");
        Ok(index + 1)
    }

    fn word(&mut self, tokens: &[Token], index: usize, word: &Word) -> Result<(), SyntaxError> {
        let at_start = self.words.is_empty();
        let bare = word.bare();
        if self.in_for_header {
            if bare == Some("do") {
                self.in_for_header = false;
            }
            return Ok(());
        }
        if self.in_pattern {
            if bare == Some("esac") {
                self.in_pattern = false;
                self.pop(&[Context::Case], "esac", word.line)?;
            }
            return Ok(());
        }
        if at_start {
            match bare {
                Some("if") => return self.push(Context::If),
                Some("while" | "until") => return self.push(Context::Loop),
                Some("then" | "else" | "elif" | "do" | "!") => return Ok(()),
                Some("fi") => return self.pop(&[Context::If], "fi", word.line),
                Some("done") => return self.pop(&[Context::Loop], "done", word.line),
                Some("esac") => return self.pop(&[Context::Case], "esac", word.line),
                Some("}") => return self.pop(&[Context::Group, Context::Function], "}", word.line),
                Some("{") => {
                    let context = if std::mem::take(&mut self.function_next) {
                        Context::Function
                    } else {
                        Context::Group
                    };
                    return self.push(context);
                }
                Some("for") => {
                    self.stack.push(Context::Loop);
                    self.in_for_header = true;
                    // The loop variable is assigned: keep it as a command
                    // of its own so the caller sees the assignment.
                    if let Some(Token::Word(name)) = tokens.get(index + 1) {
                        self.commands.push(Command {
                            words: vec![word.clone(), name.clone()],
                            first_line: word.line,
                            last_line: name.line,
                            contexts: self.stack.clone(),
                            joined: false,
                        });
                    }
                    return Ok(());
                }
                Some("case") => {
                    self.stack.push(Context::Case);
                    // Subject and `in`, then patterns.
                    self.in_pattern = true;
                    return Ok(());
                }
                Some("function") => {
                    self.function_next = true;
                    return Ok(());
                }
                _ => {}
            }
            if self.function_next
                && bare != Some("{")
                && matches!(tokens.get(index + 1), Some(Token::Word(next)) if next.bare() == Some("{"))
            {
                // `function name {`
                return Ok(());
            }
        }
        self.words.push(word.clone());
        Ok(())
    }

    fn push(&mut self, context: Context) -> Result<(), SyntaxError> {
        self.stack.push(context);
        self.joined_before = false;
        Ok(())
    }
}
