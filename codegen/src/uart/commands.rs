//! Commands: a struct per command, the `Command` enum, and the success
//! shapes and results (`SuccessShape`, `SuccessReply`).

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::core::{Gen, RecordCore};
use super::tokens::docs;
use crate::model::uart::{CommandDef, ReplyRef};

impl Gen<'_> {
    pub(super) fn commands(&self) -> TokenStream {
        let cmds = &self.m.commands;
        let fallible = cmds.iter().any(|c| c.record.fallible());
        let mut out = TokenStream::new();
        for c in cmds {
            out.extend(self.command(c, fallible));
        }

        let idents: Vec<Ident> = cmds
            .iter()
            .map(|c| format_ident!("{}", c.record.name))
            .collect();
        let ident_strs: Vec<&str> = cmds.iter().map(|c| c.record.name.as_str()).collect();
        let names: Vec<&str> = cmds.iter().map(|c| c.name.as_str()).collect();
        let n = Literal::usize_unsuffixed(cmds.len());
        let variant_docs = cmds
            .iter()
            .map(|c| docs(&format!("`{}`: {}", c.name, c.record.description)));
        let handled: Vec<TokenStream> = cmds
            .iter()
            .map(|c| {
                if c.handled_by_gateway {
                    quote!(HandledBy::Gateway)
                } else {
                    quote!(HandledBy::Module)
                }
            })
            .collect();
        let shapes: Vec<TokenStream> = cmds
            .iter()
            .map(|c| match &c.reply {
                ReplyRef::Empty => quote!(SuccessShape::Empty),
                ReplyRef::Bytes => quote!(SuccessShape::Bytes),
                ReplyRef::Json => quote!(SuccessShape::Json),
                ReplyRef::Layout(l) => {
                    let l = format_ident!("{l}");
                    quote!(SuccessShape::#l)
                }
            })
            .collect();
        let encode_arms: Vec<TokenStream> = idents
            .iter()
            .map(|i| quote!(Self::#i(command) => command.encode_into(out)))
            .collect();
        let (encode_ret, encode_tail) = Self::encode_vec(fallible, &[]);
        let outer_ret = Self::encode_ret(fallible);
        out.extend(quote! {
            /// Who answers a command.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum HandledBy {
                /// The gateway forwards it over the UART; the root module answers.
                Module,
                /// The gateway answers it from its own state.
                Gateway,
            }

            /// A client-to-gateway (or gateway-to-module) command: five ASCII bytes,
            /// then the arguments.
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub enum Command { #(#variant_docs #idents(#idents),)* }

            impl Command {
                /// Every command name, in document order.
                pub const NAMES: [[u8; 5]; #n] = [#(#idents::NAME),*];

                /// Whether `name` is exactly a known five-byte command name.
                pub fn is_known_name(name: &[u8]) -> bool {
                    Self::NAMES.iter().any(|known| known.as_slice() == name)
                }

                /// The five-byte name as text (`"SEND-"`).
                pub fn name(&self) -> &'static str {
                    match self { #(Self::#idents(_) => #names,)* }
                }

                /// The five-byte name.
                pub fn name_bytes(&self) -> [u8; 5] {
                    match self { #(Self::#idents(_) => #idents::NAME,)* }
                }

                /// The Rust name of the command (`"Send"`).
                pub fn ident(&self) -> &'static str {
                    match self { #(Self::#idents(_) => #ident_strs,)* }
                }

                /// Who answers this command.
                pub fn handled_by(&self) -> HandledBy {
                    match self { #(Self::#idents(_) => #handled,)* }
                }

                /// How the result bytes of a success reply to this command are laid out.
                pub fn success_shape(&self) -> SuccessShape {
                    match self { #(Self::#idents(_) => #shapes,)* }
                }

                /// Decodes the result bytes of a success reply to this command.
                pub fn decode_success(&self, result: &[u8]) -> Result<SuccessReply, DecodeError> {
                    self.success_shape().decode(result)
                }

                /// Decodes a command body: the five-byte name, then its arguments.
                pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
                    let Some((name, args)) = body.split_first_chunk::<5>() else {
                        return Err(if body.is_empty() {
                            DecodeError::Empty
                        } else {
                            DecodeError::Truncated { what: "command name", needed: 5, available: body.len() }
                        });
                    };
                    match *name {
                        #(#idents::NAME => #idents::decode_args(args).map(Self::#idents),)*
                        _ => Err(DecodeError::UnknownCommand(*name)),
                    }
                }

                /// Appends the body (name and arguments) to `out`.
                pub fn encode_into(&self, out: &mut Vec<u8>) #outer_ret {
                    match self { #(#encode_arms,)* }
                }

                /// The body in a new `Vec`.
                pub fn encode(&self) -> #encode_ret {
                    let mut out = Vec::new();
                    #encode_tail
                }
            }
        });
        out
    }

    pub(super) fn success(&self) -> TokenStream {
        let layouts = &self.m.layouts;
        let names: Vec<Ident> = layouts
            .iter()
            .map(|l| format_ident!("{}", l.name))
            .collect();
        let shape_docs: Vec<TokenStream> = layouts
            .iter()
            .map(|l| docs(&format!("A [`{}`]: {}", l.name, l.description)))
            .collect();
        let encode_arms = layouts.iter().map(|l| {
            let n = format_ident!("{}", l.name);
            if l.fallible() {
                quote!(Self::#n(value) => value.encode())
            } else {
                quote!(Self::#n(value) => Ok(value.encode()))
            }
        });
        quote! {
            /// How the result bytes of a success reply are laid out, by command.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum SuccessShape {
                /// No result bytes.
                Empty,
                /// Opaque bytes (the module's own).
                Bytes,
                /// UTF-8 JSON.
                Json,
                #(#shape_docs #names,)*
            }

            impl SuccessShape {
                /// Decodes result bytes of this shape. Trailing bytes are an error.
                pub fn decode(self, result: &[u8]) -> Result<SuccessReply, DecodeError> {
                    match self {
                        Self::Empty => {
                            if result.is_empty() {
                                Ok(SuccessReply::Empty)
                            } else {
                                Err(DecodeError::TrailingBytes { what: "empty success result", count: result.len() })
                            }
                        }
                        Self::Bytes => Ok(SuccessReply::Bytes(result.to_vec())),
                        Self::Json => serde_json::from_slice(result)
                            .map(SuccessReply::Json)
                            .map_err(|e| DecodeError::InvalidJson(e.to_string())),
                        #(Self::#names => #names::decode(result).map(SuccessReply::#names),)*
                    }
                }
            }

            /// The typed result of a success reply (see [`Command::decode_success`]).
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub enum SuccessReply {
                /// No result bytes.
                Empty,
                /// Opaque bytes.
                Bytes(Vec<u8>),
                /// A JSON document.
                Json(serde_json::Value),
                #(#shape_docs #names(#names),)*
            }

            impl SuccessReply {
                /// The shape of this result.
                pub fn shape(&self) -> SuccessShape {
                    match self {
                        Self::Empty => SuccessShape::Empty,
                        Self::Bytes(_) => SuccessShape::Bytes,
                        Self::Json(_) => SuccessShape::Json,
                        #(Self::#names(_) => SuccessShape::#names,)*
                    }
                }

                /// The result bytes (what follows the success kind byte). JSON is
                /// written compactly, so it need not match the bytes it was decoded from.
                pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
                    match self {
                        Self::Empty => Ok(Vec::new()),
                        Self::Bytes(bytes) => Ok(bytes.clone()),
                        Self::Json(value) => Ok(value.to_string().into_bytes()),
                        #(#encode_arms,)*
                    }
                }
            }
        }
    }

    /// One command's struct: its arguments, `NAME`, and the codecs of the
    /// arguments and of the whole body. `fallible` is whether any command's
    /// encoding can fail (then every `encode` returns a `Result`).
    fn command(&self, c: &CommandDef, fallible: bool) -> TokenStream {
        let r = &c.record;
        let name = format_ident!("{}", r.name);
        let wire = Literal::byte_string(&c.wire);
        let by = if c.handled_by_gateway {
            "the gateway"
        } else {
            "the module"
        };
        let reply = match &c.reply {
            ReplyRef::Empty => "`S` alone".to_owned(),
            ReplyRef::Bytes => "`S` then opaque bytes".to_owned(),
            ReplyRef::Json => "`S` then UTF-8 JSON".to_owned(),
            ReplyRef::Layout(l) => format!("`S` then a [`{l}`]"),
        };
        let extra = format!(
            "\n\nWire name `{}`, handled by {by}; success reply: {reply}.",
            c.name
        );
        let RecordCore {
            def,
            consts,
            read,
            encode_body,
        } = self.record_core(r, &extra);
        let own_fallible = r.fallible();
        let ret = Self::encode_ret(own_fallible);
        let outer_ret = Self::encode_ret(fallible);
        let q = if own_fallible { quote!(?) } else { quote!() };
        let ok = if fallible { quote!(Ok(())) } else { quote!() };
        let (encode_ret, encode_tail) = Self::encode_vec(fallible, &[]);
        let out_name = if r.fields.is_empty() {
            quote!(_out)
        } else {
            quote!(out)
        };
        let what = format!("{} arguments", r.name);
        let helpers = self.data_helpers(r);
        quote! {
            #def
            impl #name {
                /// The command's five ASCII bytes.
                pub const NAME: [u8; 5] = *#wire;
                #consts

                /// Decodes the arguments (the body after the five-byte name).
                pub fn decode_args(args: &[u8]) -> Result<Self, DecodeError> {
                    let mut reader = Reader::new(args);
                    let value = Self::read(&mut reader)?;
                    reader.finish(#what)?;
                    Ok(value)
                }

                /// Appends the arguments (without the name) to `out`.
                pub fn encode_args_into(&self, #out_name: &mut Vec<u8>) #ret {
                    #encode_body
                }

                /// Appends the whole body (name and arguments) to `out`.
                pub fn encode_into(&self, out: &mut Vec<u8>) #outer_ret {
                    out.extend_from_slice(&Self::NAME);
                    self.encode_args_into(out)#q;
                    #ok
                }

                /// The whole body in a new `Vec`.
                pub fn encode(&self) -> #encode_ret {
                    let mut out = Vec::new();
                    #encode_tail
                }

                #helpers
                #read
            }

            impl From<#name> for Command {
                fn from(command: #name) -> Self {
                    Self::#name(command)
                }
            }
        }
    }
}
