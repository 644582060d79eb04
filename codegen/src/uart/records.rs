//! Structs, reply layouts and opcode payloads: a Rust struct each, with
//! `decode_prefix`, `decode`, `encode_into` and `encode`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::core::{Gen, RecordCore};
use super::tokens::{docs, field_ident};
use crate::model::uart::{IntTy, Kind, Len, Record, ReplyRef};

impl Gen<'_> {
    /// Extra methods for records with a `dataId` key or a table-sized field.
    pub(super) fn data_helpers(&self, r: &Record) -> TokenStream {
        let mut out = TokenStream::new();
        let key = r.fields.iter().find(|f| {
            f.json == "dataId"
                && matches!(
                    f.kind,
                    Kind::Int {
                        ty: IntTy::U8,
                        konst: None
                    }
                )
        });
        if let Some(key) = key {
            let k = field_ident(key);
            out.extend(quote! {
                /// The data-type table entry for `data_id`, if the id is known.
                pub fn data_type(&self) -> Option<DataType> {
                    DataType::from_id(self.#k)
                }
            });
        }
        let table = r
            .fields
            .iter()
            .find(|f| matches!(f.kind, Kind::Bytes(Len::Table { .. })));
        if let (Some(key), Some(table)) = (key, table) {
            let k = field_ident(key);
            let t = field_ident(table);
            let doc = docs(&format!(
                "`{}` decoded as the typed value of data type `{}`.",
                table.rust, key.rust
            ));
            out.extend(quote! {
                #doc
                pub fn value(&self) -> Result<DataValue, DecodeError> {
                    DataValue::decode_id(self.#k, &self.#t)
                }
            });
        }
        out
    }

    pub(super) fn impl_from_data_value(&self, r: &Record) -> TokenStream {
        let only_key_and_table = r.fields.len() == 2
            && r.fields[0].json == "dataId"
            && matches!(
                r.fields[0].kind,
                Kind::Int {
                    ty: IntTy::U8,
                    konst: None
                }
            )
            && matches!(r.fields[1].kind, Kind::Bytes(Len::Table { .. }));
        if !only_key_and_table {
            return TokenStream::new();
        }
        let name = format_ident!("{}", r.name);
        let k = field_ident(&r.fields[0]);
        let t = field_ident(&r.fields[1]);
        quote! {
            impl From<DataValue> for #name {
                fn from(value: DataValue) -> Self {
                    Self { #k: value.data_type().id(), #t: value.encode() }
                }
            }
        }
    }

    /// A layout, struct or opcode payload: `decode_prefix`, `decode`,
    /// `encode_into`, `encode`.
    pub(super) fn record(&self, r: &Record, extra_doc: &str, consts: TokenStream) -> TokenStream {
        let name = format_ident!("{}", r.name);
        let param_doc = Self::param_doc(&r.params);
        let RecordCore {
            def,
            consts: field_consts,
            read,
            encode_body,
        } = self.record_core(r, extra_doc);
        let decls = Self::param_decls(&r.params);
        let names = Self::param_names(&r.params);
        let fallible = r.fallible();
        let ret = Self::encode_ret(fallible);
        let out_name = if r.fields.is_empty() {
            quote!(_out)
        } else {
            quote!(out)
        };
        let label = r.name.clone();
        let (encode_ret, encode_tail) = Self::encode_vec(fallible, &names);
        let decode_prefix_doc = docs(&format!(
            "Decodes one `{label}` from the front of `input` and returns it with the bytes after it.{param_doc}"
        ));
        let decode_doc = docs(&format!(
            "Decodes exactly one `{label}`: trailing bytes are an error.{param_doc}"
        ));
        let encode_doc = docs(if fallible {
            "Appends the wire form to `out`. Fails (having written part of it) when a count or length does not fit or disagrees with its length field."
        } else {
            "Appends the wire form to `out`."
        });
        let helpers = self.data_helpers(r);
        let from = self.impl_from_data_value(r);
        quote! {
            #def
            impl #name {
                #consts
                #field_consts
                #decode_prefix_doc
                pub fn decode_prefix(input: &[u8] #(, #decls)*) -> Result<(Self, &[u8]), DecodeError> {
                    let mut reader = Reader::new(input);
                    let value = Self::read(&mut reader #(, #names)*)?;
                    Ok((value, reader.remaining()))
                }
                #decode_doc
                pub fn decode(input: &[u8] #(, #decls)*) -> Result<Self, DecodeError> {
                    let mut reader = Reader::new(input);
                    let value = Self::read(&mut reader #(, #names)*)?;
                    reader.finish(#label)?;
                    Ok(value)
                }
                #encode_doc
                pub fn encode_into(&self, #out_name: &mut Vec<u8> #(, #decls)*) #ret {
                    #encode_body
                }
                /// The wire form in a new `Vec`.
                pub fn encode(&self #(, #decls)*) -> #encode_ret {
                    let mut out = Vec::new();
                    #encode_tail
                }
                #helpers
                #read
            }
            #from
        }
    }

    pub(super) fn structs(&self) -> TokenStream {
        let mut out = TokenStream::new();
        for s in &self.m.structs {
            out.extend(self.record(s, "", TokenStream::new()));
        }
        for l in &self.m.layouts {
            let users: Vec<String> = self
                .m
                .commands
                .iter()
                .filter(|c| matches!(&c.reply, ReplyRef::Layout(n) if n == &l.name))
                .map(|c| format!("`{}`", c.name))
                .collect();
            let extra = if users.is_empty() {
                "\n\nA reply layout.".to_owned()
            } else {
                format!("\n\nThe success result of {}.", users.join(", "))
            };
            out.extend(self.record(l, &extra, TokenStream::new()));
        }
        out
    }
}
