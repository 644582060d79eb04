//! What the suite sends in `cmd:` lines, learnt from the hub's registry
//! (`--registry FILE`): which command to use for what, and parameter
//! values of each parameter's type, one of them carrying a marker so a
//! delivery can be told from any other.
//!
//! A hub may check parameter values against the registry (the profile
//! neither asks nor forbids it), so every value fits its type: a
//! `string` (or a type the schema does not name) is free text, an `int`
//! a number, a `float` a decimal, a `bool` `true`, a `color` six hex
//! digits. Commands called `ping`, `pong` or `error` are never used: a
//! device could not tell them from the hub's own lines.

use specwire_protocol::device::registry::ParameterSpecType;
use specwire_runtime::device::registry::{Command, ParameterKind};
use specwire_runtime::device::Registry;

/// Names a delivered command would be confused with.
const AMBIGUOUS: [&str; 3] = ["ping", "pong", "error"];

/// A command the suite may send and how to fill it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    /// Its name.
    pub name: String,
    /// Its required parameters' kinds, in order.
    pub parameters: Vec<Kind>,
}

/// A parameter kind, as far as choosing a value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Free text (`string`, or a type the schema does not name).
    Text,
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `bool`.
    Bool,
    /// `color`.
    Color,
}

impl Kind {
    fn of(kind: &ParameterKind) -> Kind {
        match kind {
            ParameterKind::Known(ParameterSpecType::String) | ParameterKind::Opaque(_) => {
                Kind::Text
            }
            ParameterKind::Known(ParameterSpecType::Int) => Kind::Int,
            ParameterKind::Known(ParameterSpecType::Float) => Kind::Float,
            ParameterKind::Known(ParameterSpecType::Bool) => Kind::Bool,
            ParameterKind::Known(ParameterSpecType::Color) => Kind::Color,
        }
    }

    /// Whether a value of this kind can be told from another.
    fn marks(self) -> bool {
        !matches!(self, Kind::Bool)
    }

    /// A value of this kind; `n` makes it distinct where the kind allows
    /// (`n` below 10 000 000).
    fn value(self, n: u32) -> String {
        match self {
            Kind::Text => format!("m{n:07}"),
            Kind::Int => format!("{}", 10_000_000 + n),
            Kind::Float => format!("{}.5", 10_000_000 + n),
            Kind::Bool => "true".to_owned(),
            Kind::Color => format!("{:06x}", 0x10_0000 + (n % 0xE0_0000)),
        }
    }
}

impl Pick {
    fn of(command: &Command) -> Pick {
        Pick {
            name: command.name.clone(),
            parameters: command
                .parameters
                .iter()
                .filter(|parameter| !parameter.optional)
                .map(|parameter| Kind::of(&parameter.kind))
                .collect(),
        }
    }

    /// Whether its parameters can carry a marker.
    pub fn marks(&self) -> bool {
        self.parameters.iter().any(|kind| kind.marks())
    }

    /// Its parameters filled in, the first that can carry one carrying
    /// marker `n`; `None` when it takes none.
    pub fn parameters(&self, n: u32) -> Option<String> {
        if self.parameters.is_empty() {
            return None;
        }
        let mut marked = false;
        let values: Vec<String> = self
            .parameters
            .iter()
            .map(|kind| {
                if !marked && kind.marks() {
                    marked = true;
                    kind.value(n)
                } else {
                    kind.value(0)
                }
            })
            .collect();
        Some(values.join(":"))
    }

    /// The marker `n` puts in its parameters (what a delivery carries).
    pub fn marker(&self, n: u32) -> Option<String> {
        self.parameters
            .iter()
            .find(|kind| kind.marks())
            .map(|kind| kind.value(n))
    }

    /// `<name>[:<parameters>]`: the line a device receives.
    pub fn delivered(&self, parameters: Option<&str>) -> String {
        match parameters {
            Some(parameters) => format!("{}:{parameters}", self.name),
            None => self.name.clone(),
        }
    }

    /// `cmd:<target>:<name>[:<parameters>]`.
    pub fn line(&self, target: &str, parameters: Option<&str>) -> String {
        format!("cmd:{target}:{}", self.delivered(parameters))
    }

    /// Parameters that hold `:` besides the joins, marker `n` first: in a
    /// text parameter when there is one (`m<n> time: 12:00:00`), else
    /// the joins of two or more parameters. `None` when neither is
    /// possible.
    pub fn with_colons(&self, n: u32) -> Option<String> {
        let text = self.parameters.iter().position(|kind| *kind == Kind::Text);
        match text {
            Some(at) => {
                let values: Vec<String> = self
                    .parameters
                    .iter()
                    .enumerate()
                    .map(|(index, kind)| {
                        if index == at {
                            format!("{} time: 12:00:00", kind.value(n))
                        } else {
                            kind.value(0)
                        }
                    })
                    .collect();
                Some(values.join(":"))
            }
            None if self.parameters.len() >= 2 => self.parameters(n),
            None => None,
        }
    }
}

/// The registry's commands as the suite uses them.
#[derive(Clone, Debug)]
pub struct Commands {
    picks: Vec<Pick>,
}

impl Commands {
    /// The usable commands of `registry`, in name order.
    pub fn of(registry: &Registry) -> Commands {
        Commands {
            picks: registry
                .commands()
                .filter(|command| !AMBIGUOUS.contains(&command.name.as_str()))
                .map(Pick::of)
                .collect(),
        }
    }

    /// Every usable command.
    pub fn all(&self) -> &[Pick] {
        &self.picks
    }

    /// The command cases use as a tool: one whose parameters carry a
    /// marker (a text parameter preferred), else any.
    pub fn tool(&self) -> Option<&Pick> {
        self.picks
            .iter()
            .find(|pick| pick.parameters.first() == Some(&Kind::Text))
            .or_else(|| self.picks.iter().find(|pick| pick.marks()))
            .or_else(|| self.picks.first())
    }

    /// A command whose parameters can hold `:` (see [`Pick::with_colons`]).
    pub fn with_colons(&self) -> Option<&Pick> {
        self.picks
            .iter()
            .find(|pick| pick.parameters.contains(&Kind::Text))
            .or_else(|| self.picks.iter().find(|pick| pick.parameters.len() >= 2))
    }

    /// A command without required parameters.
    pub fn bare(&self) -> Option<&Pick> {
        self.picks.iter().find(|pick| pick.parameters.is_empty())
    }

    /// The commands whose parameters carry a marker (the generated
    /// sessions use these).
    pub fn marking(&self) -> Vec<&Pick> {
        self.picks.iter().filter(|pick| pick.marks()).collect()
    }

    /// A command name the registry does not list, `tag` in it.
    pub fn unknown(&self, tag: &str) -> String {
        let mut name = format!("nosuch{tag}");
        while self.picks.iter().any(|pick| pick.name == name) {
            name.push('x');
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Commands {
        let text = include_str!("../../../schema/device/commands.json");
        let (registry, _) = Registry::parse(text.as_bytes(), "commands.json").unwrap();
        Commands::of(&registry)
    }

    #[test]
    fn the_shipped_registry_offers_every_kind_of_command() {
        let commands = shipped();
        let tool = commands.tool().unwrap();
        assert_eq!(tool.name, "say");
        assert_eq!(tool.parameters(7).as_deref(), Some("m0000007"));
        assert_eq!(tool.marker(7).as_deref(), Some("m0000007"));
        assert_eq!(
            tool.line("lamp", tool.parameters(7).as_deref()),
            "cmd:lamp:say:m0000007"
        );
        let colons = commands.with_colons().unwrap();
        assert_eq!(
            colons.with_colons(3).as_deref(),
            Some("m0000003 time: 12:00:00")
        );
        let bare = commands.bare().unwrap();
        assert_eq!(bare.name, "reset");
        assert_eq!(bare.delivered(None), "reset");
        assert_eq!(commands.marking().len(), 3, "led, say, vibrate");
        assert_eq!(commands.unknown("1"), "nosuch1");
    }

    #[test]
    fn values_fit_their_types_and_markers_differ() {
        let pick = Pick {
            name: "move".into(),
            parameters: vec![Kind::Bool, Kind::Int, Kind::Color, Kind::Float],
        };
        assert_eq!(
            pick.parameters(5).as_deref(),
            Some("true:10000005:100000:10000000.5")
        );
        assert_ne!(pick.parameters(5), pick.parameters(6));
        assert_eq!(pick.marker(5).as_deref(), Some("10000005"));
        assert_eq!(
            pick.with_colons(5).as_deref(),
            pick.parameters(5).as_deref()
        );
        let flag = Pick {
            name: "blink".into(),
            parameters: vec![Kind::Bool],
        };
        assert!(!flag.marks());
        assert_eq!(flag.with_colons(1), None);
        assert_eq!(Kind::Color.value(1).len(), 6);
        assert_eq!(Kind::Color.value(9_999_999).len(), 6);
    }
}
