//! Replies: the `Reply` enum over the reply kinds, and `Body`, any body.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::core::{Gen, Scope};
use super::tokens::{byte_lit, docs, field_ident, screaming};
use crate::model::uart::{Field, KindShape, ReplyKindDef};

impl Gen<'_> {
    pub(super) fn replies(&self) -> TokenStream {
        let kinds = &self.m.reply_kinds;
        let mut arms = ReplyArms::default();
        for k in kinds {
            self.reply_kind(k, &mut arms);
        }
        let ReplyArms {
            variants,
            consts,
            decode_arms,
            encode_arms,
            byte_arms,
            label_arms,
            fallible,
        } = arms;
        let bytes: Vec<Ident> = kinds
            .iter()
            .map(|k| format_ident!("{}", screaming(&k.name)))
            .collect();
        let n = Literal::usize_unsuffixed(kinds.len());
        let name_arms = kinds.iter().map(|k| {
            let v = format_ident!("{}", k.name);
            let s = &k.name;
            match &k.shape {
                KindShape::Unit => quote!(Self::#v => #s),
                KindShape::Rest | KindShape::Message(_) => quote!(Self::#v(_) => #s),
                KindShape::Fields(_) => quote!(Self::#v { .. } => #s),
            }
        });
        let ret = Self::encode_ret(fallible);
        let ok = if fallible { quote!(Ok(())) } else { quote!() };
        let (encode_ret, encode_tail) = Self::encode_vec(fallible, &[]);
        quote! {
            /// A module-to-gateway or gateway-to-client body: one kind byte, then
            /// the kind's fields.
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub enum Reply { #(#variants,)* }

            impl Reply {
                #(#consts)*
                /// Every kind byte, in document order.
                pub const KIND_BYTES: [u8; #n] = [#(Self::#bytes),*];

                /// Whether `byte` is a known kind byte.
                pub fn is_kind_byte(byte: u8) -> bool {
                    Self::KIND_BYTES.contains(&byte)
                }

                /// The kind byte.
                pub fn kind_byte(&self) -> u8 {
                    match self { #(#byte_arms,)* }
                }

                /// The kind's name (`"Success"`).
                pub fn kind_name(&self) -> &'static str {
                    match self { #(#name_arms,)* }
                }

                /// A short label: the kind letter, and for messages the
                /// notification (`"M/DataUpdate"`).
                pub fn label(&self) -> String {
                    match self { #(#label_arms,)* }
                }

                /// Decodes a reply body.
                pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
                    let Some((&kind, rest)) = body.split_first() else {
                        return Err(DecodeError::Empty);
                    };
                    match kind {
                        #(#decode_arms,)*
                        _ => Err(DecodeError::UnknownReplyKind(kind)),
                    }
                }

                /// Appends the body to `out`.
                pub fn encode_into(&self, out: &mut Vec<u8>) #ret {
                    match self { #(#encode_arms,)* }
                    #ok
                }

                /// The body in a new `Vec`.
                pub fn encode(&self) -> #encode_ret {
                    let mut out = Vec::new();
                    #encode_tail
                }
            }
        }
    }

    pub(super) fn body(&self) -> TokenStream {
        let cmd_fallible = self.m.commands.iter().any(|c| c.record.fallible());
        let reply_fallible = self.m.reply_kinds.iter().any(|k| match &k.shape {
            KindShape::Unit | KindShape::Rest => false,
            KindShape::Message(head) => {
                self.m.opcodes.iter().any(|o| o.record.fallible())
                    || head.iter().any(Field::fallible)
            }
            KindShape::Fields(fields) => fields.iter().any(Field::fallible),
        });
        let cmd = if cmd_fallible {
            quote!(command.encode())
        } else {
            quote!(Ok(command.encode()))
        };
        let reply = if reply_fallible {
            quote!(reply.encode())
        } else {
            quote!(Ok(reply.encode()))
        };
        quote! {
            /// Any uart body: a command or a reply.
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub enum Body {
                /// A command (five-byte name first).
                Command(Command),
                /// A reply (kind byte first).
                Reply(Reply),
            }

            impl Body {
                /// What the body is: `Command/SEND-`, `Reply/S`, `Reply/M/DataUpdate`.
                pub fn kind_name(&self) -> String {
                    match self {
                        Self::Command(command) => format!("Command/{}", command.name()),
                        Self::Reply(reply) => format!("Reply/{}", reply.label()),
                    }
                }

                /// The body bytes.
                pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
                    match self {
                        Self::Command(command) => #cmd,
                        Self::Reply(reply) => #reply,
                    }
                }
            }

            /// Decodes any body: a command when the first five bytes are a known
            /// command name, else a reply when the first byte is a kind byte.
            ///
            /// Command names win: an unknown five-byte name that starts with a
            /// kind byte (`SENDX...`) decodes as a reply of that kind.
            pub fn decode_any(body: &[u8]) -> Result<Body, DecodeError> {
                let Some(&first) = body.first() else {
                    return Err(DecodeError::Empty);
                };
                if body.get(..5).is_some_and(Command::is_known_name) {
                    return Command::decode(body).map(Body::Command);
                }
                if Reply::is_kind_byte(first) {
                    return Reply::decode(body).map(Body::Reply);
                }
                Err(DecodeError::Unrecognized { first, len: body.len() })
            }

            /// [`decode_any`], then [`Body::kind_name`]: `"Command/SEND-"`, `"Reply/M/NodeConnected"`.
            pub fn describe_body(body: &[u8]) -> Result<String, DecodeError> {
                decode_any(body).map(|body| body.kind_name())
            }
        }
    }

    /// The variant, const and match arms of reply kind `k`.
    fn reply_kind(&self, k: &ReplyKindDef, arms: &mut ReplyArms) {
        let v = format_ident!("{}", k.name);
        let c = format_ident!("{}", screaming(&k.name));
        let b = byte_lit(k.byte);
        let cdoc = docs(&format!("Kind byte of [`Reply::{}`] (`{}`).", k.name, k.ch));
        arms.consts.push(quote!(#cdoc pub const #c: u8 = #b;));
        let vdoc = docs(&format!("`{}`: {}", k.ch, k.description));
        let ch = k.ch.to_string();
        arms.byte_arms.push(match &k.shape {
            KindShape::Unit => quote!(Self::#v => Self::#c),
            KindShape::Rest | KindShape::Message(_) => quote!(Self::#v(_) => Self::#c),
            KindShape::Fields(_) => quote!(Self::#v { .. } => Self::#c),
        });
        match &k.shape {
            KindShape::Unit => {
                arms.variants.push(quote!(#vdoc #v));
                let what = format!("{} reply", k.name);
                arms.decode_arms.push(quote! {
                    Self::#c => {
                        Reader::new(rest).finish(#what)?;
                        Ok(Self::#v)
                    }
                });
                arms.encode_arms
                    .push(quote!(Self::#v => out.push(Self::#c)));
                arms.label_arms.push(quote!(Self::#v => #ch.to_owned()));
            }
            KindShape::Rest => {
                arms.variants.push(quote!(#vdoc #v(Vec<u8>)));
                arms.decode_arms
                    .push(quote!(Self::#c => Ok(Self::#v(rest.to_vec()))));
                arms.encode_arms.push(quote! {
                    Self::#v(bytes) => {
                        out.push(Self::#c);
                        out.extend_from_slice(bytes);
                    }
                });
                arms.label_arms.push(quote!(Self::#v(_) => #ch.to_owned()));
            }
            KindShape::Message(head) => {
                arms.variants.push(quote!(#vdoc #v(UnsolicitedMessage)));
                arms.decode_arms
                    .push(quote!(Self::#c => UnsolicitedMessage::decode(rest).map(Self::#v)));
                let msg_fallible = self.m.opcodes.iter().any(|o| o.record.fallible())
                    || head.iter().any(Field::fallible);
                arms.fallible |= msg_fallible;
                let q = if msg_fallible { quote!(?) } else { quote!() };
                arms.encode_arms.push(quote! {
                    Self::#v(message) => {
                        out.push(Self::#c);
                        message.encode_into(out)#q;
                    }
                });
                let fmt = format!("{ch}/{{}}");
                arms.label_arms
                    .push(quote!(Self::#v(message) => format!(#fmt, message.body.label())));
            }
            KindShape::Fields(fields) => {
                arms.fallible |= fields.iter().any(Field::fallible);
                let defs = fields.iter().filter(|f| !f.is_const()).map(|f| {
                    let d = Self::field_doc(f);
                    let id = field_ident(f);
                    let t = self.field_type(f);
                    quote!(#d #id: #t)
                });
                arms.variants.push(quote!(#vdoc #v { #(#defs,)* }));
                let sc = Scope {
                    owner: &k.name,
                    fields,
                    self_consts: false,
                };
                let code = self.fields_code(sc);
                let decode = &code.decode;
                let encode = &code.encode;
                let stored = &code.stored;
                let what = format!("{} reply", k.name);
                arms.decode_arms.push(quote! {
                    Self::#c => {
                        let mut reader = Reader::new(rest);
                        #(#decode)*
                        reader.finish(#what)?;
                        Ok(Self::#v { #(#stored),* })
                    }
                });
                arms.encode_arms.push(quote! {
                    Self::#v { #(#stored),* } => {
                        out.push(Self::#c);
                        #(#encode)*
                    }
                });
                arms.label_arms
                    .push(quote!(Self::#v { .. } => #ch.to_owned()));
            }
        }
    }
}

/// The parts of `Reply` and its impl, one entry per reply kind.
#[derive(Default)]
struct ReplyArms {
    variants: Vec<TokenStream>,
    consts: Vec<TokenStream>,
    decode_arms: Vec<TokenStream>,
    encode_arms: Vec<TokenStream>,
    byte_arms: Vec<TokenStream>,
    label_arms: Vec<TokenStream>,
    /// Whether encoding any kind can fail.
    fallible: bool,
}
