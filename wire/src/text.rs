//! Text-line families (the device hub): the hand-written half of the
//! generated line parsers.
//!
//! A generated text family describes each line kind as a [`LineSpec`]
//! (name, direction, an anchored ECMAScript pattern whose named groups are
//! its fields) in a static [`LineFamily`]; its `Line` enum implements
//! [`LineProtocol`] with the two functions that need the concrete variants
//! ([`LineProtocol::from_match`], [`LineProtocol::index`]) and the writer.
//! Recognising a frame (patterns tried in manifest order, the first that
//! matches the whole frame wins) is written here once.
//!
//! ```
//! use specwire_wire::json::Direction;
//! use specwire_wire::text::{LineFamily, LineProtocol, LineSpec};
//!
//! #[derive(Debug, PartialEq)]
//! enum Line { Ping, Register { id: String } }
//!
//! static MESSAGES: &[LineSpec] = &[
//!     LineSpec { name: "Ping", direction: Direction::ClientToServer, pattern: "^ping$" },
//!     LineSpec { name: "Register", direction: Direction::ClientToServer, pattern: "^id:(?<id>.+)$" },
//! ];
//! static FAMILY: LineFamily = LineFamily::new("demo", MESSAGES);
//!
//! impl LineProtocol for Line {
//!     fn family() -> &'static LineFamily { &FAMILY }
//!     fn index(&self) -> usize { match self { Line::Ping => 0, Line::Register { .. } => 1 } }
//!     fn from_match(index: usize, found: &regress::Match, text: &str) -> Option<Line> {
//!         match index {
//!             0 => Some(Line::Ping),
//!             1 => Some(Line::Register { id: text[found.named_group("id")?].to_owned() }),
//!             _ => None,
//!         }
//!     }
//!     fn to_text(&self) -> String {
//!         match self { Line::Ping => "ping".to_owned(), Line::Register { id } => format!("id:{id}") }
//!     }
//! }
//!
//! assert_eq!(Line::parse("id:lamp-1")?, Line::Register { id: "lamp-1".into() });
//! assert_eq!(Line::parse("ping")?.name(), "Ping");
//! assert!(Line::parse("pong").is_err());
//! # Ok::<(), specwire_wire::text::LineError>(())
//! ```

use std::sync::OnceLock;

use crate::json::Direction;

/// A line kind of a text family.
#[derive(Clone, Copy, Debug)]
pub struct LineSpec {
    /// The message name.
    pub name: &'static str,
    /// Who sends it.
    pub direction: Direction,
    /// The anchored ECMAScript pattern whose named groups are its fields.
    pub pattern: &'static str,
}

/// Why a text frame is not a message of the family.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Nothing to parse.
    #[error("empty frame")]
    Empty,
    /// No line kind matches.
    #[error("no {direction} {family} message matches {text:?}")]
    NoMatch {
        /// The family tried.
        family: &'static str,
        /// The direction tried (`any`), or the message name asked for.
        direction: String,
        /// The frame.
        text: String,
    },
    /// The family has no message of that name.
    #[error("no {family} message is called {name:?}")]
    UnknownMessage {
        /// The family.
        family: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A shipped pattern failed to compile (a codegen bug).
    #[error("pattern does not compile: {0}")]
    BadPattern(String),
}

/// A text family as the generated code describes it: its line kinds, in
/// the order the parser tries them, and their patterns compiled on first
/// use.
pub struct LineFamily {
    /// The family name (`device`).
    pub name: &'static str,
    /// Every line kind, in manifest order.
    pub messages: &'static [LineSpec],
    compiled: OnceLock<Vec<Result<regress::Regex, String>>>,
}

impl LineFamily {
    /// Describes a family.
    pub const fn new(name: &'static str, messages: &'static [LineSpec]) -> LineFamily {
        LineFamily {
            name,
            messages,
            compiled: OnceLock::new(),
        }
    }

    fn pattern(&self, index: usize) -> Result<&regress::Regex, LineError> {
        let compiled = self.compiled.get_or_init(|| {
            self.messages
                .iter()
                .map(|spec| regress::Regex::new(spec.pattern).map_err(|e| e.to_string()))
                .collect()
        });
        match compiled.get(index) {
            Some(Ok(regex)) => Ok(regex),
            Some(Err(error)) => Err(LineError::BadPattern(error.clone())),
            None => Err(LineError::BadPattern(format!("no pattern #{index}"))),
        }
    }

    /// Where line kind `index`'s pattern matches all of `text`.
    fn whole_match(&self, index: usize, text: &str) -> Result<Option<regress::Match>, LineError> {
        let found = self.pattern(index)?.find(text);
        Ok(found.filter(|found| found.range() == (0..text.len())))
    }

    /// The first line kind sent in `direction` (when given) whose pattern
    /// matches the whole frame, and the match.
    pub fn recognise(
        &self,
        text: &str,
        direction: Option<Direction>,
    ) -> Result<(usize, regress::Match), LineError> {
        if text.is_empty() {
            return Err(LineError::Empty);
        }
        for (index, spec) in self.messages.iter().enumerate() {
            if direction.is_some_and(|d| d != spec.direction) {
                continue;
            }
            if let Some(found) = self.whole_match(index, text)? {
                return Ok((index, found));
            }
        }
        Err(LineError::NoMatch {
            family: self.name,
            direction: direction.map_or_else(|| "any".to_owned(), |d| d.to_string()),
            text: text.to_owned(),
        })
    }

    /// The line kind called `name` and its match of the whole frame.
    pub fn recognise_as(
        &self,
        name: &str,
        text: &str,
    ) -> Result<(usize, regress::Match), LineError> {
        let unknown = || LineError::UnknownMessage {
            family: self.name,
            name: name.to_owned(),
        };
        let index = self
            .messages
            .iter()
            .position(|spec| spec.name == name)
            .ok_or_else(unknown)?;
        match self.whole_match(index, text)? {
            Some(found) => Ok((index, found)),
            None => Err(LineError::NoMatch {
                family: self.name,
                direction: name.to_owned(),
                text: text.to_owned(),
            }),
        }
    }
}

/// Any line of one text family: implemented by the generated `Line` enum.
pub trait LineProtocol: Sized {
    /// The family's line kinds.
    fn family() -> &'static LineFamily;

    /// This line's position in [`LineFamily::messages`].
    fn index(&self) -> usize;

    /// Builds line kind `index` from its pattern's match of `text`
    /// (`None` when the family has no such kind).
    fn from_match(index: usize, found: &regress::Match, text: &str) -> Option<Self>;

    /// The line as sent on the wire.
    fn to_text(&self) -> String;

    /// Parses one frame, trying every line kind in order.
    fn parse(text: &str) -> Result<Self, LineError> {
        Self::parse_from(text, None)
    }

    /// Parses one frame sent in `direction` (when given). Patterns are
    /// tried in manifest order; the first that matches the whole frame
    /// wins.
    fn parse_from(text: &str, direction: Option<Direction>) -> Result<Self, LineError> {
        let (index, found) = Self::family().recognise(text, direction)?;
        Self::from_match(index, &found, text)
            .ok_or_else(|| LineError::BadPattern(format!("no line kind #{index}")))
    }

    /// Parses one frame as the message called `name`: for a receiver that
    /// knows what it gets.
    fn parse_as(name: &str, text: &str) -> Result<Self, LineError> {
        let (index, found) = Self::family().recognise_as(name, text)?;
        Self::from_match(index, &found, text).ok_or_else(|| LineError::UnknownMessage {
            family: Self::family().name,
            name: name.to_owned(),
        })
    }

    /// The line kind's entry in the family table.
    fn spec(&self) -> &'static LineSpec {
        &Self::family().messages[self.index()]
    }

    /// The message name.
    fn name(&self) -> &'static str {
        self.spec().name
    }
}
