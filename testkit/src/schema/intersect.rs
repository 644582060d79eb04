//! Intersecting compiled nodes: `allOf` members and a `$ref`'s siblings
//! admit only what every part admits, so their constraints are merged into
//! one node (the tighter bound, both patterns, ...), or refused as
//! unsatisfiable with the location.

use std::sync::Arc;

use super::compile::{choice_node, Ctx};
use super::*;
use crate::UnsupportedSchema;

impl Ctx<'_> {
    /// The node admitting what both `a` and `b` admit.
    pub(super) fn intersect(&self, a: &Arc<Node>, b: &Arc<Node>, at: &str) -> Result<Arc<Node>> {
        let sources: Vec<String> = a.sources.iter().chain(&b.sources).cloned().collect();
        match (&a.kind, &b.kind) {
            (Kind::Any, _) => Ok(b.clone()),
            (_, Kind::Any) => Ok(a.clone()),
            (Kind::Literals(values), _) => {
                let kept = self.filter_literals(values, &b.sources, at)?;
                Ok(Arc::new(Node {
                    ptr: at.to_owned(),
                    sources,
                    kind: Kind::Literals(kept),
                }))
            }
            (_, Kind::Literals(_)) => self.intersect(b, a, at),
            (Kind::Choice(c), _) => self.distribute(c, b, sources, at),
            (_, Kind::Choice(c)) => self.distribute(c, a, sources, at),
            (Kind::Typed(x), Kind::Typed(y)) => {
                let merged = self.merge_typed(x, y, at)?;
                Ok(Arc::new(Node {
                    ptr: at.to_owned(),
                    sources,
                    kind: Kind::Typed(Box::new(merged)),
                }))
            }
        }
    }

    /// `oneOf`/`anyOf` ∩ X is the combinator over branch ∩ X.
    fn distribute(
        &self,
        c: &Choice,
        other: &Arc<Node>,
        sources: Vec<String>,
        at: &str,
    ) -> Result<Arc<Node>> {
        let mut branches = Vec::with_capacity(c.branches.len());
        for branch in &c.branches {
            branches.push(match branch {
                None => None,
                Some(b) => match self.intersect(b, other, at) {
                    Ok(node) => Some(node),
                    Err(e) if e.unsatisfiable => None,
                    Err(e) => return Err(e),
                },
            });
        }
        choice_node(
            at,
            sources,
            Choice {
                branches,
                ..c.clone()
            },
        )
    }

    fn merge_typed(&self, a: &Typed, b: &Typed, at: &str) -> Result<Typed> {
        let explicit = match (a.explicit, b.explicit) {
            (Some(x), Some(y)) => Some(x.intersection(y)),
            (x, y) => x.or(y),
        };
        let merged = Typed {
            explicit,
            constrained: a.constrained.union(b.constrained),
            num: merge_num(&a.num, &b.num, at)?,
            string: merge_str(&a.string, &b.string, at)?,
            array: self.merge_arr(&a.array, &b.array, at)?,
            object: self.merge_obj(&a.object, &b.object, at)?,
        };
        if merged.generated().is_empty() && merged.explicit.is_some() {
            return Err(UnsupportedSchema::unsatisfiable(
                at,
                "the `type`s allowed do not overlap",
            ));
        }
        Ok(merged)
    }

    fn merge_rest(&self, a: &Rest, b: &Rest, at: &str) -> Result<Rest> {
        Ok(match (a, b) {
            (Rest::Forbidden, _) | (_, Rest::Forbidden) => Rest::Forbidden,
            (Rest::Any, other) | (other, Rest::Any) => other.clone(),
            (Rest::Schema(x), Rest::Schema(y)) => Rest::Schema(self.intersect(x, y, at)?),
        })
    }

    fn merge_arr(&self, a: &ArrC, b: &ArrC, at: &str) -> Result<ArrC> {
        let prefix_meets_items =
            |p: &ArrC, q: &ArrC| !p.prefix.is_empty() && !matches!(q.items, Rest::Any);
        if (!a.prefix.is_empty() && !b.prefix.is_empty())
            || prefix_meets_items(a, b)
            || prefix_meets_items(b, a)
        {
            return Err(UnsupportedSchema::new(
                at,
                "merging two array shapes that both constrain positions is not supported",
            ));
        }
        Ok(ArrC {
            prefix: if a.prefix.is_empty() {
                b.prefix.clone()
            } else {
                a.prefix.clone()
            },
            items: self.merge_rest(&a.items, &b.items, at)?,
            min: a.min.max(b.min),
            max: min_opt(a.max, b.max),
            unique: a.unique || b.unique,
        })
    }

    fn merge_obj(&self, a: &ObjC, b: &ObjC, at: &str) -> Result<ObjC> {
        if a.names.is_some() && b.names.is_some() {
            return Err(UnsupportedSchema::new(
                at,
                "merging two `propertyNames` is not supported",
            ));
        }
        let mut required = a.required.clone();
        for r in &b.required {
            if !required.contains(r) {
                required.push(r.clone());
            }
        }
        let mut props = Vec::new();
        // A property declared on one side meets the other side's declaration, or else its
        // `additionalProperties`.
        for (mine, theirs) in [(a, b), (b, a)] {
            for (name, node) in &mine.props {
                if props.iter().any(|(n, _): &(String, Arc<Node>)| n == name) {
                    continue;
                }
                let other = match (theirs.prop(name), &theirs.additional) {
                    (Some(n), _) => Some(n.clone()),
                    (None, Rest::Schema(n)) => Some(n.clone()),
                    (None, Rest::Any) => None,
                    (None, Rest::Forbidden) if required.contains(name) => {
                        return Err(UnsupportedSchema::unsatisfiable(
                            at,
                            format!("required property `{name}` is forbidden by `additionalProperties: false`"),
                        ))
                    }
                    // Optional and forbidden on the other side: it can only be absent.
                    (None, Rest::Forbidden) => continue,
                };
                let node = match other {
                    Some(o) => self.intersect(node, &o, &join(at, name))?,
                    None => node.clone(),
                };
                props.push((name.clone(), node));
            }
        }
        Ok(ObjC {
            props,
            required,
            additional: self.merge_rest(&a.additional, &b.additional, at)?,
            min: a.min.max(b.min),
            max: min_opt(a.max, b.max),
            names: a.names.clone().or_else(|| b.names.clone()),
        })
    }
}

fn merge_num(a: &NumC, b: &NumC, at: &str) -> Result<NumC> {
    let pick = |x: Option<Bound>, y: Option<Bound>, upper: bool| match (x, y) {
        (Some(p), Some(q)) => Some(
            if (upper && q.tighter_upper(p)) || (!upper && q.tighter_lower(p)) {
                q
            } else {
                p
            },
        ),
        (p, q) => p.or(q),
    };
    let multiple_of = match (&a.multiple_of, &b.multiple_of) {
        (Some(x), Some(y)) if x.k != y.k => {
            return Err(UnsupportedSchema::new(
                at,
                "merging two different `multipleOf`s is not supported",
            ))
        }
        (x, y) => x.clone().or_else(|| y.clone()),
    };
    Ok(NumC {
        lo: pick(a.lo, b.lo, false),
        hi: pick(a.hi, b.hi, true),
        multiple_of,
    })
}

fn merge_str(a: &StrC, b: &StrC, at: &str) -> Result<StrC> {
    let format = match (a.format, b.format) {
        (Some(x), Some(y)) if x != y => {
            return Err(UnsupportedSchema::unsatisfiable(
                at,
                "two different `format`s",
            ))
        }
        (x, y) => x.or(y),
    };
    Ok(StrC {
        min: a.min.max(b.min),
        max: min_opt(a.max, b.max),
        patterns: a.patterns.iter().chain(&b.patterns).cloned().collect(),
        format,
        base64: a.base64 || b.base64,
    })
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}
