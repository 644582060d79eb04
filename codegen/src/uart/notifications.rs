//! Unsolicited messages: a payload struct per opcode, the `Notification`
//! enum and `UnsolicitedMessage`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::core::{Gen, Scope};
use super::tokens::{docs, field_ident, hex};
use crate::model::uart::{Field, KindShape};

impl Gen<'_> {
    pub(super) fn notifications(&self) -> TokenStream {
        let ops = &self.m.opcodes;
        let mut out = TokenStream::new();
        for o in ops {
            let code = hex(o.code);
            let name = &o.name;
            let consts = quote! {
                /// The opcode byte.
                pub const OPCODE: u8 = #code;
                /// The opcode's name in the table.
                pub const NAME: &str = #name;
            };
            let extra = format!("\n\nPayload of opcode {:#04x} `{}`.", o.code, o.name);
            out.extend(self.record(&o.record, &extra, consts));
            let id = format_ident!("{}", o.record.name);
            out.extend(quote! {
                impl From<#id> for Notification {
                    fn from(payload: #id) -> Self {
                        Self::#id(payload)
                    }
                }
            });
        }
        let fallible = ops.iter().any(|o| o.record.fallible());
        out.extend(self.notification_enum(fallible));
        out.extend(self.unsolicited_message(fallible));
        out
    }

    /// `Notification`: the payload of an unsolicited message by opcode.
    /// `fallible` is whether any payload's encoding can fail.
    fn notification_enum(&self, fallible: bool) -> TokenStream {
        let ops = &self.m.opcodes;
        let idents: Vec<Ident> = ops
            .iter()
            .map(|o| format_ident!("{}", o.record.name))
            .collect();
        let ident_strs: Vec<&str> = ops.iter().map(|o| o.record.name.as_str()).collect();
        let variant_docs = ops.iter().map(|o| {
            docs(&format!(
                "Opcode {:#04x} `{}`: {}",
                o.code, o.name, o.record.description
            ))
        });
        let arms: Vec<TokenStream> = ops
            .iter()
            .map(|o| {
                let i = format_ident!("{}", o.record.name);
                if o.record.fallible() || !fallible {
                    quote!(Self::#i(payload) => payload.encode_into(out))
                } else {
                    quote!(Self::#i(payload) => { payload.encode_into(out); Ok(()) })
                }
            })
            .collect();
        let unknown_arm = if fallible {
            quote!(Self::Unknown { payload, .. } => { out.extend_from_slice(payload); Ok(()) })
        } else {
            quote!(Self::Unknown { payload, .. } => out.extend_from_slice(payload))
        };
        let ret = Self::encode_ret(fallible);
        quote! {
            /// The payload of an unsolicited message, typed by the opcode table.
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub enum Notification {
                #(#variant_docs #idents(#idents),)*
                /// An opcode the table does not list, kept verbatim so that a
                /// listener still receives every message.
                Unknown {
                    /// The opcode byte.
                    opcode: u8,
                    /// The payload bytes.
                    payload: Vec<u8>,
                },
            }

            impl Notification {
                /// The opcode byte.
                pub fn opcode(&self) -> u8 {
                    match self {
                        #(Self::#idents(_) => #idents::OPCODE,)*
                        Self::Unknown { opcode, .. } => *opcode,
                    }
                }

                /// The opcode's name in the table, or `None` for an unlisted opcode.
                pub fn name(&self) -> Option<&'static str> {
                    match self {
                        #(Self::#idents(_) => Some(#idents::NAME),)*
                        Self::Unknown { .. } => None,
                    }
                }

                /// The Rust name (`"DataUpdate"`), or `"Unknown"`.
                pub fn ident(&self) -> &'static str {
                    match self {
                        #(Self::#idents(_) => #ident_strs,)*
                        Self::Unknown { .. } => "Unknown",
                    }
                }

                /// A short label: the Rust name, or `Unknown(0x..)` with the opcode.
                pub fn label(&self) -> String {
                    match self {
                        Self::Unknown { opcode, .. } => format!("Unknown({opcode:#04x})"),
                        other => other.ident().to_owned(),
                    }
                }

                /// Decodes `payload` by `opcode`. A listed opcode must have a
                /// well-formed payload; an unlisted one is kept as [`Self::Unknown`].
                pub fn decode(opcode: u8, payload: &[u8]) -> Result<Self, DecodeError> {
                    match opcode {
                        #(#idents::OPCODE => #idents::decode(payload).map(Self::#idents),)*
                        _ => Ok(Self::Unknown { opcode, payload: payload.to_vec() }),
                    }
                }

                /// Appends the payload (without the opcode) to `out`.
                pub fn encode_payload_into(&self, out: &mut Vec<u8>) #ret {
                    match self {
                        #(#arms,)*
                        #unknown_arm
                    }
                }
            }

        }
    }

    /// `UnsolicitedMessage`: the message reply kind's head fields, then the
    /// opcode and its payload.
    fn unsolicited_message(&self, fallible: bool) -> TokenStream {
        // The message kind's fields before opcode + payload.
        let head: &[Field] = self
            .m
            .reply_kinds
            .iter()
            .find_map(|k| match &k.shape {
                KindShape::Message(head) => Some(head.as_slice()),
                _ => None,
            })
            .unwrap_or(&[]);
        let sc = Scope {
            owner: "UnsolicitedMessage",
            fields: head,
            self_consts: false,
        };
        let code = self.fields_code(sc);
        let head_defs = head.iter().filter(|f| !f.is_const()).map(|f| {
            let d = Self::field_doc(f);
            let id = field_ident(f);
            let t = self.field_type(f);
            quote!(#d pub #id: #t)
        });
        let decode = &code.decode;
        let encode = &code.encode;
        let stored = &code.stored;
        let msg_fallible = fallible || head.iter().any(Field::fallible);
        let msg_ret = Self::encode_ret(msg_fallible);
        let q = if fallible { quote!(?) } else { quote!() };
        let ok = if msg_fallible {
            quote!(Ok(()))
        } else {
            quote!()
        };
        let (encode_ret, encode_tail) = Self::encode_vec(msg_fallible, &[]);
        quote! {
            /// An unsolicited message from the network (the `M` reply kind).
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub struct UnsolicitedMessage {
                #(#head_defs,)*
                /// The opcode and payload.
                pub body: Notification,
            }

            impl UnsolicitedMessage {
                /// Decodes the bytes after the kind byte.
                pub fn decode(input: &[u8]) -> Result<Self, DecodeError> {
                    let mut reader = Reader::new(input);
                    #(#decode)*
                    let opcode = u8::from_be_bytes(reader.array("UnsolicitedMessage.opcode")?);
                    let body = Notification::decode(opcode, reader.rest())?;
                    Ok(Self { #(#stored,)* body })
                }

                /// Appends the bytes after the kind byte to `out`.
                pub fn encode_into(&self, out: &mut Vec<u8>) #msg_ret {
                    let Self { #(#stored,)* body } = self;
                    #(#encode)*
                    out.push(body.opcode());
                    body.encode_payload_into(out)#q;
                    #ok
                }

                /// The bytes after the kind byte in a new `Vec`.
                pub fn encode(&self) -> #encode_ret {
                    let mut out = Vec::new();
                    #encode_tail
                }
            }
        }
    }
}
