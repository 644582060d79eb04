//! Rust for a JSON family: typify types, a tagged message enum, validators.
//!
//! typify turns the bundled schema into structs and enums (`types.rs`). It
//! cannot produce a properly tagged union of `$ref`ed messages (it emits an
//! untagged enum that may pick the wrong variant), so the message enum and
//! its decoder are written here: the discriminator rules of the manifest
//! choose the message, its schema validates, then its struct deserializes.

use anyhow::{Context, Result};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use serde_json::Value;

use crate::model::{Family, Manifest, MessageEntry};

/// The three files of a JSON family module.
pub struct JsonFamilyCode {
    /// `mod.rs`: the message enum, specs, validators, decode.
    pub module: TokenStream,
    /// `types.rs`: typify's output.
    pub types: TokenStream,
    /// `schema.rs`: the bundled schema as a string constant.
    pub schema: TokenStream,
}

/// Generates a JSON family's module.
pub fn generate(family: &Family) -> Result<JsonFamilyCode> {
    let manifest = &family.manifest;
    let bundle = family
        .bundle
        .as_ref()
        .with_context(|| format!("{}: no bundled schema", manifest.family))?;
    let types =
        typify_types(bundle).with_context(|| format!("typify on family {}", manifest.family))?;
    let schema = schema_const(bundle)?;
    let module = message_module(manifest);
    Ok(JsonFamilyCode {
        module,
        types,
        schema,
    })
}

/// Runs typify over a bundled document. Used for the device registry too.
pub fn typify_types(bundle: &Value) -> Result<TokenStream> {
    let mut input = bundle.clone();
    prepare_for_typify(&mut input);
    // A root `title` would make typify add the root itself as one more
    // (empty) type; every type we want is under `$defs`.
    if let Some(root) = input.as_object_mut() {
        root.remove("title");
    }
    let root: schemars::schema::RootSchema = serde_json::from_value(input)
        .context("bundled schema does not fit typify's schema model")?;
    let mut settings = typify::TypeSpaceSettings::default();
    settings.with_derive("PartialEq".to_owned());
    let mut space = typify::TypeSpace::new(&settings);
    // typify panics on some unsupported constructs instead of erroring;
    // turn that into an error that names the family.
    let added =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| space.add_root_schema(root)));
    match added {
        Ok(result) => {
            result.context("typify rejected the schema")?;
        }
        Err(_) => anyhow::bail!("typify panicked on the schema"),
    }
    Ok(space.to_stream())
}

/// Adapts a bundle for typify.
///
/// - A string `const` becomes a one-value `enum`: typify renders `const` as
///   `serde_json::Value`, but a one-value enum as a real Rust enum, so a
///   message struct cannot be built with the wrong discriminator.
/// - String length, pattern and format constraints are dropped: the
///   validator is the authority for constraints (typify does not enforce
///   numeric bounds either), and without them typify emits plain `String`s
///   instead of newtypes that re-check and re-allocate every string on
///   decode. This also rules out the type rejecting what the schema accepts
///   (typify's regex dialect is not the validator's), and keeps a
///   timestamp exactly as the sender wrote it (chrono would turn `+02:00`
///   into `Z` and drop a zero fraction): nothing received is altered.
fn prepare_for_typify(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(constant @ Value::String(_)) = object.remove("const") {
                object.insert("enum".into(), Value::Array(vec![constant]));
            }
            if object.get("type").and_then(Value::as_str) == Some("string") {
                for keyword in ["minLength", "maxLength", "pattern", "format"] {
                    object.remove(keyword);
                }
            }
            object.remove("$id");
            object.retain(|key, _| !key.starts_with("x-"));
            object.values_mut().for_each(prepare_for_typify);
        }
        Value::Array(items) => items.iter_mut().for_each(prepare_for_typify),
        _ => {}
    }
}

fn schema_const(bundle: &Value) -> Result<TokenStream> {
    let text = serde_json::to_string_pretty(bundle)?;
    let literal = raw_string_literal(&text)?;
    Ok(quote! {
        /// The family's bundled JSON Schema (2020-12): every message and
        /// definition under `$defs`, as checked by the validators.
        pub const SCHEMA: &str = #literal;
    })
}

/// A raw string literal with enough `#`s for `text`.
pub fn raw_string_literal(text: &str) -> Result<TokenStream> {
    let mut hashes = 1;
    while text.contains(&format!("\"{}", "#".repeat(hashes))) {
        hashes += 1;
    }
    let fence = "#".repeat(hashes);
    format!("r{fence}\"{text}\"{fence}")
        .parse()
        .map_err(|error| anyhow::anyhow!("embedding a schema as a raw string literal: {error}"))
}

fn direction_tokens(direction: &str) -> TokenStream {
    match direction {
        "client-to-server" => quote!(Direction::ClientToServer),
        "server-to-client" => quote!(Direction::ServerToClient),
        _ => quote!(Direction::Broadcast),
    }
}

fn rule_tokens(message: &MessageEntry) -> Vec<TokenStream> {
    message
        .match_rules
        .iter()
        .map(|rule| {
            let pointer = &rule.pointer;
            match &rule.constant {
                Some(constant) => {
                    let text = constant.to_string();
                    quote!(MatchRule::Const { pointer: #pointer, value: #text })
                }
                None => quote!(MatchRule::Present { pointer: #pointer }),
            }
        })
        .collect()
}

fn message_module(manifest: &Manifest) -> TokenStream {
    let family = &manifest.family;
    let count = manifest.messages.len();
    let port = Literal::u16_unsuffixed(manifest.transport.default_port);
    let host = &manifest.transport.default_host;
    let transport = &manifest.transport.kind;
    let max_bytes =
        Literal::usize_unsuffixed(manifest.transport.max_message_bytes.unwrap_or(1 << 20) as usize);
    let pointers: Vec<&String> = manifest
        .discriminator
        .as_ref()
        .map(|d| d.pointers.iter().collect())
        .unwrap_or_default();
    let title_doc = format!(" The **{family}** family: {}.", manifest.title);
    let summary_doc = format!(" {}", manifest.summary);
    let see_doc = format!(" Generated from `schema/{family}/`; see `generated/docs/{family}.md`.");

    let idents: Vec<_> = manifest
        .messages
        .iter()
        .map(|m| format_ident!("{}", m.name))
        .collect();
    let names: Vec<&String> = manifest.messages.iter().map(|m| &m.name).collect();
    let indices: Vec<Literal> = (0..count).map(Literal::usize_unsuffixed).collect();
    let specs: Vec<TokenStream> = manifest
        .messages
        .iter()
        .map(|message| {
            let name = &message.name;
            let direction = direction_tokens(&message.direction);
            let rules = rule_tokens(message);
            quote! {
                MessageSpec { name: #name, direction: #direction, rules: &[#(#rules),*] }
            }
        })
        .collect();
    let variant_docs: Vec<String> = manifest
        .messages
        .iter()
        .map(|m| format!(" `{}` ({}): {}", m.name, m.direction, m.summary))
        .collect();

    quote! {
        #![doc = #title_doc]
        #![doc = ""]
        #![doc = #summary_doc]
        #![doc = ""]
        #![doc = #see_doc]

        mod schema;
        pub mod types;

        pub use schema::SCHEMA;
        pub use types::*;

        use serde_json::Value;
        use specwire_wire::json::{Direction, Family, JsonProtocol, LazyValidator, MatchRule, MessageSpec, Transport};

        /// The family name.
        pub const FAMILY: &str = #family;
        /// The transport (`websocket`, `tcp`, `udp-broadcast`).
        pub const TRANSPORT: &str = #transport;
        /// Default host to bind or connect to.
        pub const DEFAULT_HOST: &str = #host;
        /// Default port.
        pub const DEFAULT_PORT: u16 = #port;
        /// Largest message a receiver must accept, in bytes.
        pub const MAX_MESSAGE_BYTES: usize = #max_bytes;
        /// The members that tell messages apart.
        pub const DISCRIMINATOR: &[&str] = &[#(#pointers),*];

        /// Every message of the family, in manifest order.
        pub static MESSAGES: &[MessageSpec] = &[#(#specs),*];

        static VALIDATORS: [LazyValidator; #count] = [#(LazyValidator::new(SCHEMA, #names)),*];

        static TABLE: Family = Family::new(FAMILY, DISCRIMINATOR, MESSAGES, &VALIDATORS);

        /// Any message of the family.
        ///
        /// Serializes as the message itself (the discriminator is a field of
        /// each message struct). Decode with [`JsonProtocol::from_slice`] or
        /// [`JsonProtocol::decode`], which validate against the schema first.
        #[derive(Clone, Debug, PartialEq, serde::Serialize)]
        #[serde(untagged)]
        pub enum Message {
            #(#[doc = #variant_docs] #idents(types::#idents),)*
        }

        #(
            impl From<types::#idents> for Message {
                fn from(message: types::#idents) -> Self {
                    Message::#idents(message)
                }
            }
        )*

        impl JsonProtocol for Message {
            const TRANSPORT: Transport = Transport {
                kind: TRANSPORT,
                default_host: DEFAULT_HOST,
                default_port: DEFAULT_PORT,
                max_message_bytes: MAX_MESSAGE_BYTES,
            };

            fn family() -> &'static Family {
                &TABLE
            }

            fn index(&self) -> usize {
                match self { #(Message::#idents(_) => #indices,)* }
            }

            fn from_validated(index: usize, value: Value) -> Result<Message, serde_json::Error> {
                match index {
                    #(#indices => serde_json::from_value(value).map(Message::#idents),)*
                    _ => Err(serde::de::Error::custom(format!("{FAMILY} has no message #{index}"))),
                }
            }
        }
    }
}
