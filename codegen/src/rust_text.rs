//! Rust for a text-lines family (device): one struct per line kind with the
//! pattern's named groups as fields, a parser that tries the patterns in
//! manifest order, a writer from each message's `format` template, and the
//! typed command registry.

use anyhow::{bail, Context, Result};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::model::{Family, MessageEntry};
use crate::rust_json::{raw_string_literal, typify_types};

/// The files of a text-lines family module.
pub struct TextFamilyCode {
    /// `mod.rs`.
    pub module: TokenStream,
    /// `registry.rs`: typify's types for the registry document.
    pub registry: TokenStream,
}

enum Piece {
    Literal(String),
    Field(String),
    Optional(Vec<Piece>),
}

/// Parses a `format` template: `{field}` inserts a field, `[...]` is written
/// only when the optional field inside is present.
fn parse_format(template: &str) -> Result<Vec<Piece>> {
    fn parse(chars: &mut std::iter::Peekable<std::str::Chars>, nested: bool) -> Result<Vec<Piece>> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    pieces.push(Piece::Field(name));
                }
                '[' => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Optional(parse(chars, true)?));
                }
                ']' if nested => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(literal));
                    }
                    return Ok(pieces);
                }
                other => literal.push(other),
            }
        }
        if nested {
            bail!("unclosed [");
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(pieces)
    }
    parse(&mut template.chars().peekable(), false).with_context(|| format!("format {template:?}"))
}

fn field_ident(name: &str) -> proc_macro2::Ident {
    let mut snake = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            snake.push('_');
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    format_ident!("{}", snake)
}

/// `out.push(c)` for one character (clippy's preference), else `push_str`.
fn push_literal(text: &str) -> TokenStream {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => quote!(out.push(#c);),
        _ => quote!(out.push_str(#text);),
    }
}

fn write_pieces(
    pieces: &[Piece],
    message: &MessageEntry,
    optional_scope: bool,
) -> Result<TokenStream> {
    let mut out = TokenStream::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.extend(push_literal(text)),
            Piece::Field(name) => {
                let field = message
                    .fields
                    .iter()
                    .find(|f| &f.name == name)
                    .with_context(|| {
                        format!("{}: format names unknown field {name}", message.name)
                    })?;
                let ident = field_ident(name);
                if field.optional && !optional_scope {
                    bail!(
                        "{}: optional field {name} must sit inside [...] in the format",
                        message.name
                    );
                }
                if field.optional {
                    out.extend(quote!(out.push_str(value);));
                } else {
                    out.extend(quote!(out.push_str(&line.#ident);));
                }
            }
            Piece::Optional(inner) => {
                let field = inner
                    .iter()
                    .find_map(|p| match p {
                        Piece::Field(name) => Some(name.clone()),
                        _ => None,
                    })
                    .with_context(|| {
                        format!("{}: [...] in the format holds no field", message.name)
                    })?;
                let ident = field_ident(&field);
                let body = write_pieces(inner, message, true)?;
                out.extend(quote!(if let Some(value) = &line.#ident { #body }));
            }
        }
    }
    Ok(out)
}

/// Generates the device family module.
/// The code of one line kind, for the module's tables and `match`es.
struct LineKind {
    spec: TokenStream,
    definition: Option<TokenStream>,
    variant: TokenStream,
    parse_arm: TokenStream,
    write_arm: TokenStream,
    index_arm: TokenStream,
}

fn line_kind(index: usize, message: &MessageEntry) -> Result<LineKind> {
    let ident = format_ident!("{}", message.name);
    let index_lit = Literal::usize_unsuffixed(index);
    let message_name = &message.name;
    let pattern = message.pattern.as_deref().unwrap_or_default();
    let direction = match message.direction.as_str() {
        "client-to-server" => quote!(Direction::ClientToServer),
        "server-to-client" => quote!(Direction::ServerToClient),
        _ => quote!(Direction::Broadcast),
    };
    let spec = quote!(LineSpec { name: #message_name, direction: #direction, pattern: #pattern });
    let doc = format!(
        " `{}` ({}): {} Pattern: `{}`.",
        message.name, message.direction, message.summary, pattern
    );
    if message.fields.is_empty() {
        let push = push_literal(message.format.as_deref().unwrap_or_default());
        return Ok(LineKind {
            spec,
            definition: None,
            variant: quote!(#[doc = #doc] #ident),
            parse_arm: quote!(#index_lit => Some(Line::#ident)),
            write_arm: quote!(Line::#ident => { #push }),
            index_arm: quote!(Line::#ident => #index_lit),
        });
    }
    let mut fields = Vec::new();
    let mut extract = Vec::new();
    for field in &message.fields {
        let field_name = &field.name;
        let fident = field_ident(&field.name);
        let fdoc = format!(" The `{}` group.", field.name);
        if field.optional {
            fields.push(quote!(#[doc = #fdoc] pub #fident: Option<String>));
            extract.push(
                quote!(#fident: found.named_group(#field_name).map(|range| text[range].to_owned())),
            );
        } else {
            fields.push(quote!(#[doc = #fdoc] pub #fident: String));
            extract.push(quote!(#fident: found.named_group(#field_name).map(|range| text[range].to_owned()).unwrap_or_default()));
        }
    }
    let pieces = parse_format(message.format.as_deref().unwrap_or_default())?;
    let body = write_pieces(&pieces, message, false)?;
    Ok(LineKind {
        spec,
        definition: Some(quote! {
            #[doc = #doc]
            #[derive(Clone, Debug, PartialEq, Eq)]
            pub struct #ident { #(#fields,)* }
        }),
        variant: quote!(#[doc = #doc] #ident(#ident)),
        parse_arm: quote!(#index_lit => Some(Line::#ident(#ident { #(#extract,)* }))),
        write_arm: quote!(Line::#ident(line) => { #body }),
        index_arm: quote!(Line::#ident(_) => #index_lit),
    })
}

/// The module of a text-lines family: data (the line kinds, the registry
/// schema) and the `Line` enum over `specwire_wire::text`.
pub fn generate(family: &Family) -> Result<TextFamilyCode> {
    let manifest = &family.manifest;
    let name = &manifest.family;
    let registry = manifest
        .registry
        .as_ref()
        .context("text family without registry")?;
    let registry_schema = family
        .registry_schema
        .as_ref()
        .context("registry schema not loaded")?;
    let registry_types = typify_types(registry_schema).context("typify on the registry schema")?;
    let registry_schema_literal =
        raw_string_literal(&serde_json::to_string_pretty(registry_schema)?)?;
    let registry_ident = format_ident!("{}", registry.name);
    let registry_name = &registry.name;

    let kinds = manifest
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| line_kind(index, message))
        .collect::<Result<Vec<_>>>()?;
    let specs = kinds.iter().map(|kind| &kind.spec);
    let structs = kinds.iter().filter_map(|kind| kind.definition.as_ref());
    let variants = kinds.iter().map(|kind| &kind.variant);
    let parse_arms = kinds.iter().map(|kind| &kind.parse_arm);
    let write_arms = kinds.iter().map(|kind| &kind.write_arm);
    let index_arms = kinds.iter().map(|kind| &kind.index_arm);

    let port = Literal::u16_unsuffixed(manifest.transport.default_port);
    let host = &manifest.transport.default_host;
    let max_bytes =
        Literal::usize_unsuffixed(manifest.transport.max_message_bytes.unwrap_or(65536) as usize);
    let title_doc = format!(" The **{name}** family: {}.", manifest.title);
    let summary_doc = format!(" {}", manifest.summary);
    let see_doc = format!(" Generated from `schema/{name}/`; see `generated/docs/{name}.md`.");

    let module = quote! {
        #![doc = #title_doc]
        #![doc = ""]
        #![doc = #summary_doc]
        #![doc = ""]
        #![doc = #see_doc]

        pub mod registry;

        use serde_json::Value;
        use specwire_wire::json::{DecodeError, Direction, LazyValidator, Violation};
        use specwire_wire::text::LineFamily;

        pub use registry::#registry_ident;
        pub use specwire_wire::text::{LineError, LineProtocol, LineSpec};

        /// The family name.
        pub const FAMILY: &str = #name;
        /// Default host to bind or connect to.
        pub const DEFAULT_HOST: &str = #host;
        /// Default port.
        pub const DEFAULT_PORT: u16 = #port;
        /// Largest frame a receiver must accept, in bytes.
        pub const MAX_MESSAGE_BYTES: usize = #max_bytes;
        /// The registry's bundled JSON Schema.
        pub const REGISTRY_SCHEMA: &str = #registry_schema_literal;

        /// Every line kind, in the order the parser tries them.
        pub static MESSAGES: &[LineSpec] = &[#(#specs),*];

        static TABLE: LineFamily = LineFamily::new(FAMILY, MESSAGES);

        #(#structs)*

        /// Any line of the family. Parse with [`LineProtocol::parse`],
        /// [`LineProtocol::parse_from`] or [`LineProtocol::parse_as`].
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Line {
            #(#variants,)*
        }

        impl LineProtocol for Line {
            fn family() -> &'static LineFamily {
                &TABLE
            }

            fn index(&self) -> usize {
                match self { #(#index_arms,)* }
            }

            fn from_match(index: usize, found: &regress::Match, text: &str) -> Option<Line> {
                match index {
                    #(#parse_arms,)*
                    _ => None,
                }
            }

            fn to_text(&self) -> String {
                let mut out = String::new();
                match self {
                    #(#write_arms,)*
                }
                out
            }
        }

        static REGISTRY_VALIDATOR: LazyValidator = LazyValidator::new(REGISTRY_SCHEMA, #registry_name);

        /// Every violation of the registry schema by `value`.
        pub fn registry_violations(value: &Value) -> Vec<Violation> {
            REGISTRY_VALIDATOR.violations(value)
        }

        /// Parses and validates a registry document (`commands.json`).
        pub fn parse_registry(bytes: &[u8]) -> Result<#registry_ident, DecodeError> {
            let value: Value = serde_json::from_slice(bytes).map_err(DecodeError::NotJson)?;
            let violations = REGISTRY_VALIDATOR.violations(&value);
            if !violations.is_empty() {
                return Err(DecodeError::Invalid { family: FAMILY, message: #registry_name, violations });
            }
            serde_json::from_value(value).map_err(|source| DecodeError::TypeMismatch { family: FAMILY, message: #registry_name, source })
        }
    };
    Ok(TextFamilyCode {
        module,
        registry: registry_types,
    })
}
