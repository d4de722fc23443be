//! Splitting a plain-format dump into what a restore sends: SQL statements (quotes, dollar
//! quotes and comments understood, so a `;` inside a function body does not end anything),
//! `COPY … FROM stdin;` with its data lines, and psql meta-commands (`\restrict`, `\connect`).
//! This is what lets `verify-backup --restore-to` restore a plain dump without `psql`.

use std::io::{self, BufRead};

/// Data lines are sent to the server in pieces of about this size.
const COPY_PIECE: usize = 256 * 1024;

/// One thing to send to the server.
#[derive(Debug, PartialEq)]
pub enum Item {
    /// A statement (with its terminating `;`), and the line it starts on.
    Statement(String, u64),
    /// `COPY … FROM stdin;`: data follows.
    CopyStart(String, u64),
    /// Data lines, whole.
    CopyData(Vec<u8>),
    /// The start or middle of one data line longer than a piece: the next `CopyPart` or
    /// `CopyData` continues it, so both must go to the same session.
    CopyPart(Vec<u8>),
    /// The `\.` line; the number of data lines sent.
    CopyEnd(u64),
    /// A psql meta-command line (`\restrict KEY`, `\connect db`).
    Meta(String, u64),
}

#[derive(Clone, Debug, PartialEq)]
enum Lex {
    Normal,
    Single { backslash: bool },
    Double,
    Dollar(Vec<u8>),
    Block(u32),
}

/// Reads a plain dump item by item, in bounded memory (one statement or one data piece).
pub struct DumpReader<R> {
    r: R,
    line_no: u64,
    stmt: Vec<u8>,
    stmt_line: u64,
    lex: Lex,
    in_copy: bool,
    copy_rows: u64,
    copy_end_pending: bool,
    /// The last data piece ended inside a line.
    copy_mid_line: bool,
    line: Vec<u8>,
    /// Unprocessed rest of a line after a statement ended mid-line.
    rest: Vec<u8>,
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// A dollar-quote tag (`$$`, `$body$`) starting at `s[i] == b'$'`.
fn dollar_tag(s: &[u8], i: usize) -> Option<Vec<u8>> {
    if i > 0 && is_ident(s[i - 1]) {
        return None;
    }
    let mut j = i + 1;
    while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_' || s[j] >= 0x80) {
        j += 1;
    }
    if j < s.len() && s[j] == b'$' && !s.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        Some(s[i..=j].to_vec())
    } else {
        None
    }
}

impl<R: BufRead> DumpReader<R> {
    pub fn new(r: R) -> Self {
        DumpReader {
            r,
            line_no: 0,
            stmt: Vec::new(),
            stmt_line: 0,
            lex: Lex::Normal,
            in_copy: false,
            copy_rows: 0,
            copy_end_pending: false,
            copy_mid_line: false,
            line: Vec::new(),
            rest: Vec::new(),
        }
    }

    /// Scan `s` in the current lexer state; the index just past a top-level `;`, if any.
    fn scan(&mut self, s: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < s.len() {
            let b = s[i];
            match &mut self.lex {
                Lex::Normal => match b {
                    b'-' if s.get(i + 1) == Some(&b'-') => return None,
                    b'/' if s.get(i + 1) == Some(&b'*') => {
                        self.lex = Lex::Block(1);
                        i += 1;
                    }
                    b'\'' => {
                        let e = i > 0
                            && (s[i - 1] == b'E' || s[i - 1] == b'e')
                            && (i < 2 || !is_ident(s[i - 2]));
                        self.lex = Lex::Single { backslash: e };
                    }
                    b'"' => self.lex = Lex::Double,
                    b'$' => {
                        if let Some(tag) = dollar_tag(s, i) {
                            i += tag.len() - 1;
                            self.lex = Lex::Dollar(tag);
                        }
                    }
                    b';' => return Some(i + 1),
                    _ => {}
                },
                Lex::Single { backslash } => match b {
                    b'\\' if *backslash => i += 1,
                    b'\'' if s.get(i + 1) == Some(&b'\'') => i += 1,
                    b'\'' => self.lex = Lex::Normal,
                    _ => {}
                },
                Lex::Double => {
                    if b == b'"' {
                        if s.get(i + 1) == Some(&b'"') {
                            i += 1;
                        } else {
                            self.lex = Lex::Normal;
                        }
                    }
                }
                Lex::Dollar(tag) => {
                    if b == b'$' && s[i..].starts_with(tag) {
                        i += tag.len() - 1;
                        self.lex = Lex::Normal;
                    }
                }
                Lex::Block(depth) => {
                    if b == b'*' && s.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.lex = Lex::Normal;
                        }
                    } else if b == b'/' && s.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        i += 1;
                    }
                }
            }
            i += 1;
        }
        None
    }

    fn read_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        if !self.rest.is_empty() {
            std::mem::swap(&mut self.line, &mut self.rest);
            return Ok(true);
        }
        let n = self.r.read_until(b'\n', &mut self.line)?;
        if n > 0 {
            self.line_no += 1;
        }
        Ok(n > 0)
    }

    /// The next item, or `None` at the end of the dump.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        if self.in_copy && self.copy_end_pending {
            self.copy_end_pending = false;
            self.in_copy = false;
            return Ok(Some(Item::CopyEnd(self.copy_rows)));
        }
        if self.in_copy {
            return self.copy_piece().map(Some);
        }
        loop {
            if !self.read_line()? {
                if self.stmt.iter().any(|b| !b.is_ascii_whitespace()) {
                    let s = String::from_utf8_lossy(&std::mem::take(&mut self.stmt)).into_owned();
                    return Ok(Some(Item::Statement(s, self.stmt_line)));
                }
                return Ok(None);
            }
            let line = std::mem::take(&mut self.line);
            let starts_stmt =
                self.lex == Lex::Normal && self.stmt.iter().all(|b| b.is_ascii_whitespace());
            if starts_stmt {
                let t = line.trim_ascii_start();
                if t.starts_with(b"\\") {
                    self.stmt.clear();
                    let s = String::from_utf8_lossy(t.trim_ascii_end()).into_owned();
                    return Ok(Some(Item::Meta(s, self.line_no)));
                }
                if t.starts_with(b"--") || t.is_empty() {
                    continue;
                }
                self.stmt.clear();
                self.stmt_line = self.line_no;
            }
            match self.scan(&line) {
                None => self.stmt.extend_from_slice(&line),
                Some(end) => {
                    self.stmt.extend_from_slice(&line[..end]);
                    let rest = &line[end..];
                    if rest.iter().any(|b| !b.is_ascii_whitespace()) {
                        self.rest = rest.to_vec();
                    }
                    let text = String::from_utf8(std::mem::take(&mut self.stmt)).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "line {}: statement is not UTF-8 (only UTF-8 dumps are restored)",
                                self.stmt_line
                            ),
                        )
                    })?;
                    let trimmed = text.trim();
                    if is_copy_from_stdin(trimmed) {
                        self.in_copy = true;
                        self.copy_rows = 0;
                        return Ok(Some(Item::CopyStart(trimmed.to_string(), self.stmt_line)));
                    }
                    return Ok(Some(Item::Statement(trimmed.to_string(), self.stmt_line)));
                }
            }
        }
    }

    /// The next piece of a COPY block: whole data lines up to about `COPY_PIECE` bytes, or a
    /// `CopyPart` of a line longer than that (a big `bytea` or `text` value), so memory stays
    /// bounded whatever the rows hold.
    fn copy_piece(&mut self) -> io::Result<Item> {
        let mut piece = Vec::with_capacity(2 * COPY_PIECE);
        // Where the line being read started in `piece` (0 when it began in an earlier piece).
        let mut line_start = 0;
        loop {
            let buf = self.r.fill_buf()?;
            let (take, line_ends) = if buf.is_empty() {
                // Only the `\.` line may end the dump without its newline.
                let last = &piece[line_start..];
                if self.copy_mid_line || last.strip_suffix(b"\r").unwrap_or(last) != b"\\." {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the dump ends inside a COPY block after {} rows",
                            self.copy_rows
                        ),
                    ));
                }
                (0, true)
            } else {
                // A line shorter than a piece is never cut: a piece stops growing at
                // COPY_PIECE, so at least that much room is left for the line being read.
                let room = (2 * COPY_PIECE).saturating_sub(piece.len());
                match super::pgdump::find_nl(&buf[..buf.len().min(room)]) {
                    Some(nl) => (nl + 1, true),
                    None => (buf.len().min(room), false),
                }
            };
            piece.extend_from_slice(&buf[..take]);
            self.r.consume(take);
            if !line_ends {
                if piece.len() >= 2 * COPY_PIECE {
                    self.copy_mid_line = true;
                    return Ok(Item::CopyPart(piece));
                }
                continue;
            }
            self.line_no += 1;
            let whole_line = !self.copy_mid_line;
            self.copy_mid_line = false;
            let line = &piece[line_start..];
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if whole_line && body == b"\\." {
                piece.truncate(line_start);
                if piece.is_empty() {
                    self.in_copy = false;
                    return Ok(Item::CopyEnd(self.copy_rows));
                }
                // Send the data first; the end comes next time.
                self.copy_end_pending = true;
                return Ok(Item::CopyData(piece));
            }
            self.copy_rows += 1;
            line_start = piece.len();
            if piece.len() >= COPY_PIECE {
                return Ok(Item::CopyData(piece));
            }
        }
    }
}

fn is_copy_from_stdin(stmt: &str) -> bool {
    let upper = stmt
        .get(..5)
        .map(|s| s.eq_ignore_ascii_case("COPY "))
        .unwrap_or(false);
    upper && stmt.len() >= 12 && stmt[stmt.len() - 12..].eq_ignore_ascii_case(" FROM stdin;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<Item> {
        let mut r = DumpReader::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(i) = r.next_item().expect("item") {
            out.push(i);
        }
        out
    }

    #[test]
    fn statements_copy_and_meta() {
        let dump = "--\n-- c\n\\restrict k\nSET a = 1;\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n\
COPY public.t (a) FROM stdin;\n1\n2\n\\.\nSELECT 'a;''b', \"x;\" /* ; */; SELECT 2;\n";
        let got = items(dump);
        assert_eq!(got[0], Item::Meta("\\restrict k".into(), 3));
        assert_eq!(got[1], Item::Statement("SET a = 1;".into(), 4));
        assert!(matches!(&got[2], Item::Statement(s, 5) if s.ends_with("LANGUAGE sql;")));
        assert!(matches!(&got[3], Item::CopyStart(s, 6) if s.starts_with("COPY public.t")));
        assert_eq!(got[4], Item::CopyData(b"1\n2\n".to_vec()));
        assert_eq!(got[5], Item::CopyEnd(2));
        assert!(matches!(&got[6], Item::Statement(s, _) if s.ends_with("/* ; */;")));
        assert_eq!(got[7], Item::Statement("SELECT 2;".into(), 10));
        assert_eq!(got.len(), 8);
    }

    /// Every item of `text` read through a `BufReader` of `cap` bytes, or the first error.
    fn items_through(text: &[u8], cap: usize) -> io::Result<Vec<Item>> {
        let mut r = DumpReader::new(io::BufReader::with_capacity(cap, text));
        let mut out = Vec::new();
        while let Some(i) = r.next_item()? {
            out.push(i);
        }
        Ok(out)
    }

    #[test]
    fn a_long_data_line_comes_in_bounded_parts() {
        // Cut where its last part is `\.` alone: still data, not the end of the block.
        let long = format!("{}\\.", "x".repeat(2 * COPY_PIECE - 2));
        let dump = format!("COPY t (a) FROM stdin;\n1\n{long}\n\\.x\n\\.\r\nSELECT 1;\n");
        let got = items(&dump);
        // However the bytes arrive, the pieces are the same.
        for cap in [7, 4099, 3 * COPY_PIECE] {
            let other = items_through(dump.as_bytes(), cap).expect("items");
            assert!(other == got, "different items through a {cap}-byte buffer");
        }
        assert!(matches!(&got[0], Item::CopyStart(..)));
        let mut data = Vec::new();
        let mut parts = 0;
        for item in &got[1..got.len() - 2] {
            match item {
                Item::CopyPart(d) => {
                    assert!(d.len() <= 2 * COPY_PIECE, "a part of {} bytes", d.len());
                    parts += 1;
                    data.extend_from_slice(d);
                }
                Item::CopyData(d) => {
                    assert!(d.len() <= 2 * COPY_PIECE, "a piece of {} bytes", d.len());
                    assert!(d.ends_with(b"\n"));
                    data.extend_from_slice(d);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(parts >= 1, "{parts} parts");
        assert_eq!(data, format!("1\n{long}\n\\.x\n").into_bytes());
        assert_eq!(got[got.len() - 2], Item::CopyEnd(3));
        assert_eq!(got[got.len() - 1], Item::Statement("SELECT 1;".into(), 6));
    }

    #[test]
    fn the_end_of_a_copy_block_at_the_end_of_the_file() {
        // `\.` may end the file without its newline; anything else there is a cut dump.
        for cap in [1, 64] {
            let got = items_through(b"COPY t (a) FROM stdin;\n1\n\\.", cap).expect("items");
            assert_eq!(
                got[1..],
                [Item::CopyData(b"1\n".to_vec()), Item::CopyEnd(1)]
            );
            for cut in [
                b"COPY t (a) FROM stdin;\n1\n\\".to_vec(),
                b"COPY t (a) FROM stdin;\n1\n2".to_vec(),
                [
                    b"COPY t (a) FROM stdin;\n".to_vec(),
                    vec![b'y'; 3 * COPY_PIECE],
                ]
                .concat(),
            ] {
                let err = items_through(&cut, cap).expect_err("a cut COPY block");
                assert!(
                    err.to_string().contains("ends inside a COPY block"),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn unterminated_copy_is_an_error() {
        let mut r = DumpReader::new("COPY t (a) FROM stdin;\n1\n".as_bytes());
        assert!(matches!(r.next_item(), Ok(Some(Item::CopyStart(..)))));
        assert!(r.next_item().is_err());
    }
}
