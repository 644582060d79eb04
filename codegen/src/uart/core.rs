//! The core of the uart emission: [`Gen`] over the checked model, and the
//! decode and encode statements of a record's fields, which every kind of
//! record (struct, layout, command, opcode payload, reply kind) shares.

use std::cell::Cell;

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::tokens::{const_ident, docs, field_ident, ident, int_lit, int_type, to_usize};
use crate::model::uart::{snake, Field, IntTy, Kind, Len, Protocol, Record};

/// Where a record's fields live while its code is emitted.
#[derive(Clone, Copy)]
pub(super) struct Scope<'a> {
    /// Type name used in error labels (`what`).
    pub(super) owner: &'a str,
    /// The record's fields; a length name that is not one of them is a
    /// context parameter (a `usize` argument of the same name).
    pub(super) fields: &'a [Field],
    /// Whether `Self::CONST` names the record's const fields (true for
    /// structs; enum variants use literals).
    pub(super) self_consts: bool,
}

impl Scope<'_> {
    pub(super) fn what(&self, f: &Field) -> String {
        format!("{}.{}", self.owner, f.rust)
    }

    pub(super) fn own(&self, json: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.json == json)
    }

    pub(super) fn const_expr(&self, f: &Field, ty: IntTy, k: u64) -> TokenStream {
        if self.self_consts {
            let c = const_ident(f);
            quote!(Self::#c)
        } else {
            int_lit(ty, k)
        }
    }

    /// A length (as usize) named `json`, while decoding: decoded fields are
    /// locals and context parameters are already usize.
    pub(super) fn len_decode(&self, json: &str) -> TokenStream {
        match self.own(json) {
            Some(Field {
                kind: Kind::Int { ty, .. },
                ..
            }) => {
                let id = ident(&snake(json));
                to_usize(*ty, quote!(#id))
            }
            _ => {
                let id = ident(&snake(json));
                quote!(#id)
            }
        }
    }

    /// A length (as usize) named `json`, while encoding: stored fields are
    /// reference bindings, const fields are constants, parameters are usize.
    pub(super) fn len_encode(&self, json: &str) -> TokenStream {
        match self.own(json) {
            Some(
                f @ Field {
                    kind: Kind::Int { ty, konst },
                    ..
                },
            ) => {
                let value = match konst {
                    Some(k) => self.const_expr(f, *ty, *k),
                    None => {
                        let id = field_ident(f);
                        quote!(*#id)
                    }
                };
                to_usize(*ty, value)
            }
            _ => {
                let id = ident(&snake(json));
                quote!(#id)
            }
        }
    }
}

/// Code for one record's fields.
pub(super) struct FieldsCode {
    /// Statements that decode every field into a local of its Rust name.
    pub(super) decode: Vec<TokenStream>,
    /// Statements that encode every stored field from a reference binding of
    /// its Rust name (and const fields from their constant).
    pub(super) encode: Vec<TokenStream>,
    /// `a, b` for `Self { a, b }`, patterns and constructors.
    pub(super) stored: Vec<Ident>,
}

/// The parts of a record's code that every kind of record shares.
pub(super) struct RecordCore {
    pub(super) def: TokenStream,
    pub(super) consts: TokenStream,
    pub(super) read: TokenStream,
    pub(super) encode_body: TokenStream,
}

pub(super) struct Gen<'m> {
    pub(super) m: &'m Protocol,
    /// Whether the emitted code looks lengths up in the data-type table, so
    /// that the table helpers are emitted only then (no dead code, no `allow`).
    pub(super) uses_table: Cell<bool>,
}

impl<'m> Gen<'m> {
    pub(super) fn new(m: &'m Protocol) -> Self {
        Self {
            m,
            uses_table: Cell::new(false),
        }
    }

    /// The context parameters and fallibility of list item `name`. The model
    /// checked every item name, so the fallback is never taken.
    pub(super) fn item_info(&self, name: &str) -> (&'m [String], bool) {
        self.m
            .structs
            .iter()
            .find(|s| s.name == name)
            .map_or((&[][..], false), |s| (s.params.as_slice(), s.fallible()))
    }

    pub(super) fn field_type(&self, f: &Field) -> TokenStream {
        match &f.kind {
            Kind::Int { ty, .. } => int_type(*ty),
            Kind::Enum { name } => {
                let n = format_ident!("{name}");
                quote!(#n)
            }
            Kind::Uuid => quote!(uuid::Uuid),
            Kind::Bytes(_) | Kind::Rest => quote!(Vec<u8>),
            Kind::Str => quote!(String),
            Kind::List { item } => {
                let n = format_ident!("{item}");
                quote!(Vec<#n>)
            }
        }
    }

    pub(super) fn field_doc(f: &Field) -> TokenStream {
        let text = match &f.description {
            Some(d) => format!("{d}\n\n{}", f.wire_note()),
            None => f.wire_note(),
        };
        docs(&text)
    }

    pub(super) fn fields_code(&self, sc: Scope<'_>) -> FieldsCode {
        let mut decode = Vec::new();
        let mut encode = Vec::new();
        let mut stored = Vec::new();
        for f in sc.fields {
            let id = field_ident(f);
            let what = sc.what(f);
            match &f.kind {
                Kind::Int { ty, konst } => {
                    let t = int_type(*ty);
                    decode.push(quote! { let #id = #t::from_be_bytes(reader.array(#what)?); });
                    match konst {
                        Some(k) => {
                            let kv = sc.const_expr(f, *ty, *k);
                            let k64 = Literal::u64_unsuffixed(*k);
                            decode.push(quote! {
                                if #id != #kv {
                                    return Err(DecodeError::BadConst { what: #what, expected: #k64, actual: u64::from(#id) });
                                }
                            });
                            encode.push(if *ty == IntTy::U8 {
                                quote! { out.push(#kv); }
                            } else {
                                quote! { out.extend_from_slice(&#kv.to_be_bytes()); }
                            });
                        }
                        None => {
                            encode.push(if *ty == IntTy::U8 {
                                quote! { out.push(*#id); }
                            } else {
                                quote! { out.extend_from_slice(&#id.to_be_bytes()); }
                            });
                        }
                    }
                }
                Kind::Enum { name } => {
                    let e = format_ident!("{name}");
                    decode.push(quote! {
                        let #id = u8::from_be_bytes(reader.array(#what)?);
                        let #id = #e::from_value(#id).ok_or(DecodeError::UnknownEnumValue { what: #what, enum_name: #name, value: #id })?;
                    });
                    encode.push(quote! { out.push(#id.value()); });
                }
                Kind::Uuid => {
                    decode.push(quote! { let #id = uuid::Uuid::from_bytes(reader.array(#what)?); });
                    encode.push(quote! { out.extend_from_slice(#id.as_bytes()); });
                }
                Kind::Bytes(Len::Field(from)) => {
                    let len_d = sc.len_decode(from);
                    let len_e = sc.len_encode(from);
                    decode.push(quote! { let #id = reader.take(#len_d, #what)?.to_vec(); });
                    encode.push(quote! {
                        if #id.len() != #len_e {
                            return Err(EncodeError::LengthMismatch { what: #what, length_field: #from, expected: #len_e, actual: #id.len() });
                        }
                        out.extend_from_slice(#id);
                    });
                }
                Kind::Bytes(Len::Table { key }) => {
                    self.uses_table.set(true);
                    let k = ident(&snake(key));
                    decode.push(
                        quote! { let #id = reader.take(table_length(#k)?, #what)?.to_vec(); },
                    );
                    encode.push(quote! {
                        check_table_length(*#k, #id.len(), #what)?;
                        out.extend_from_slice(#id);
                    });
                }
                Kind::Rest => {
                    decode.push(quote! { let #id = reader.rest().to_vec(); });
                    encode.push(quote! { out.extend_from_slice(#id); });
                }
                Kind::Str => {
                    decode.push(quote! { let #id = reader.string_u8(#what)?; });
                    encode.push(quote! {
                        out.push(u8::try_from(#id.len()).map_err(|_| EncodeError::TooLong { what: #what, len: #id.len(), max: 255 })?);
                        out.extend_from_slice(#id.as_bytes());
                    });
                }
                Kind::List { item } => {
                    let (item_params, item_fallible) = self.item_info(item);
                    let t = format_ident!("{item}");
                    let args_d: Vec<TokenStream> =
                        item_params.iter().map(|p| sc.len_decode(p)).collect();
                    let args_e: Vec<TokenStream> =
                        item_params.iter().map(|p| sc.len_encode(p)).collect();
                    let count_what = format!("{what} count");
                    decode.push(quote! {
                        let #id = (0..u8::from_be_bytes(reader.array(#count_what)?))
                            .map(|_| #t::read(reader #(, #args_d)*))
                            .collect::<Result<Vec<_>, _>>()?;
                    });
                    let q = if item_fallible { quote!(?) } else { quote!() };
                    encode.push(quote! {
                        out.push(u8::try_from(#id.len()).map_err(|_| EncodeError::TooManyItems { what: #what, count: #id.len(), max: 255 })?);
                        for element in #id {
                            element.encode_into(out #(, #args_e)*)#q;
                        }
                    });
                }
            }
            if !f.is_const() {
                stored.push(id);
            }
        }
        FieldsCode {
            decode,
            encode,
            stored,
        }
    }

    pub(super) fn param_decls(params: &[String]) -> Vec<TokenStream> {
        params
            .iter()
            .map(|p| {
                let id = ident(&snake(p));
                quote!(#id: usize)
            })
            .collect()
    }

    pub(super) fn param_names(params: &[String]) -> Vec<Ident> {
        params.iter().map(|p| ident(&snake(p))).collect()
    }

    pub(super) fn param_doc(params: &[String]) -> String {
        if params.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = params
                .iter()
                .map(|p| {
                    format!(
                        "\n\n`{0}`: the enclosing record's `{0}` field (a length).",
                        snake(p)
                    )
                })
                .collect();
            list.concat()
        }
    }

    /// The struct definition, associated consts and private `read` of a
    /// record, plus its `encode_into` body (the caller picks the signature).
    pub(super) fn record_core(&self, r: &Record, extra_doc: &str) -> RecordCore {
        let name = format_ident!("{}", r.name);
        let doc = docs(&format!("{}{extra_doc}", r.description));
        let sc = Scope {
            owner: &r.name,
            fields: &r.fields,
            self_consts: true,
        };
        let code = self.fields_code(sc);
        let stored_defs: Vec<TokenStream> = r
            .stored()
            .map(|f| {
                let fd = Self::field_doc(f);
                let id = field_ident(f);
                let t = self.field_type(f);
                quote!(#fd pub #id: #t)
            })
            .collect();
        let def = if stored_defs.is_empty() {
            quote! {
                #doc
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
                pub struct #name;
            }
        } else {
            quote! {
                #doc
                #[derive(Debug, Clone, PartialEq, Eq, Hash)]
                pub struct #name { #(#stored_defs,)* }
            }
        };
        let consts: Vec<TokenStream> = r
            .fields
            .iter()
            .filter_map(|f| match &f.kind {
                Kind::Int { ty, konst: Some(k) } => {
                    let c = const_ident(f);
                    let t = int_type(*ty);
                    let v = Literal::u64_unsuffixed(*k);
                    let d = docs(&format!(
                        "The fixed value of `{}` (not stored; written on encode, checked on decode).",
                        f.rust
                    ));
                    Some(quote!(#d pub const #c: #t = #v;))
                }
                _ => None,
            })
            .collect();
        let decls = Self::param_decls(&r.params);
        let decode = &code.decode;
        let stored = &code.stored;
        let ctor = if stored.is_empty() {
            quote!(Self)
        } else {
            quote!(Self { #(#stored),* })
        };
        let reader_name = if r.fields.is_empty() {
            quote!(_reader)
        } else {
            quote!(reader)
        };
        let read = quote! {
            fn read(#reader_name: &mut Reader<'_> #(, #decls)*) -> Result<Self, DecodeError> {
                #(#decode)*
                Ok(#ctor)
            }
        };
        let encode = &code.encode;
        let bind = if stored.is_empty() {
            quote!()
        } else {
            quote!(let Self { #(#stored),* } = self;)
        };
        let ok = if r.fallible() {
            quote!(Ok(()))
        } else {
            quote!()
        };
        let encode_body = quote! { #bind #(#encode)* #ok };
        RecordCore {
            def,
            consts: quote!(#(#consts)*),
            read,
            encode_body,
        }
    }

    pub(super) fn encode_ret(fallible: bool) -> TokenStream {
        if fallible {
            quote!(-> Result<(), EncodeError>)
        } else {
            quote!()
        }
    }

    /// The return type and body of an `encode` that returns a new `Vec`
    /// by calling `encode_into` (passing `args` on), fallible or not.
    pub(super) fn encode_vec(fallible: bool, args: &[Ident]) -> (TokenStream, TokenStream) {
        if fallible {
            (
                quote!(Result<Vec<u8>, EncodeError>),
                quote! { self.encode_into(&mut out #(, #args)*)?; Ok(out) },
            )
        } else {
            (
                quote!(Vec<u8>),
                quote! { self.encode_into(&mut out #(, #args)*); out },
            )
        }
    }
}
