//! The fault proxy's view of a byte stream of JSON objects: each read cut
//! into segments (bytes between objects, bytes of an object), so a rule
//! can tell where a read began and ended relative to the objects in it,
//! forward it as it came, or rebuild it without some of it.

/// A run of one read's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Bytes outside any object (white space or junk), as received.
    Between(Vec<u8>),
    /// Bytes of an object.
    Object {
        /// This read's bytes of it.
        bytes: Vec<u8>,
        /// Its first byte is in this read.
        started: bool,
        /// Its last byte is in this read: then the whole object.
        complete: Option<Vec<u8>>,
    },
}

impl Segment {
    /// Its bytes in this read.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Segment::Between(bytes) | Segment::Object { bytes, .. } => bytes,
        }
    }
}

/// Cuts a stream into [`Segment`]s, read by read (brackets counted
/// outside strings, like the servers' decoders).
#[derive(Default)]
pub struct Scanner {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The object in progress, so far.
    current: Vec<u8>,
}

impl Scanner {
    /// The segments of the next read.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Segment> {
        let mut segments = Vec::new();
        let mut run = Vec::new();
        let mut in_object = self.depth > 0;
        let mut continuing = self.depth > 0;
        for &byte in chunk {
            if self.depth == 0 {
                if byte == b'{' || byte == b'[' {
                    if !run.is_empty() {
                        segments.push(Segment::Between(std::mem::take(&mut run)));
                    }
                    self.depth = 1;
                    self.current = vec![byte];
                    run.push(byte);
                    in_object = true;
                    continuing = false;
                } else {
                    run.push(byte);
                }
                continue;
            }
            run.push(byte);
            self.current.push(byte);
            if self.escaped {
                self.escaped = false;
            } else if self.in_string {
                match byte {
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
            } else {
                match byte {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => self.depth -= 1,
                    _ => {}
                }
                if self.depth == 0 {
                    segments.push(Segment::Object {
                        bytes: std::mem::take(&mut run),
                        started: !continuing,
                        complete: Some(std::mem::take(&mut self.current)),
                    });
                    in_object = false;
                    continuing = false;
                }
            }
        }
        if !run.is_empty() {
            segments.push(if in_object {
                Segment::Object {
                    bytes: run,
                    started: !continuing,
                    complete: None,
                }
            } else {
                Segment::Between(run)
            });
        }
        segments
    }

    /// Whether an object is in progress.
    pub fn inside(&self) -> bool {
        self.depth > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_cut_at_object_boundaries() {
        let mut scanner = Scanner::default();
        let segments = scanner.feed(b" {\"a\":\"}\"}\n{\"b\"");
        assert_eq!(
            segments,
            [
                Segment::Between(b" ".to_vec()),
                Segment::Object {
                    bytes: b"{\"a\":\"}\"}".to_vec(),
                    started: true,
                    complete: Some(b"{\"a\":\"}\"}".to_vec()),
                },
                Segment::Between(b"\n".to_vec()),
                Segment::Object {
                    bytes: b"{\"b\"".to_vec(),
                    started: true,
                    complete: None,
                },
            ]
        );
        assert!(scanner.inside());
        let segments = scanner.feed(b":[1]}x");
        assert_eq!(
            segments,
            [
                Segment::Object {
                    bytes: b":[1]}".to_vec(),
                    started: false,
                    complete: Some(b"{\"b\":[1]}".to_vec()),
                },
                Segment::Between(b"x".to_vec()),
            ]
        );
    }
}
