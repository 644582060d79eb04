//! The document's enums and its data-type table (`DataType`, `DataValue`),
//! and the table lookups the codecs call.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::core::Gen;
use super::tokens::{byte_lit, docs, value_type};
use crate::model::uart::ValueType;

impl Gen<'_> {
    pub(super) fn enums(&self) -> TokenStream {
        let mut out = TokenStream::new();
        for e in &self.m.enums {
            let name = format_ident!("{}", e.name);
            let ename = &e.name;
            let n = Literal::usize_unsuffixed(e.values.len());
            let variants: Vec<Ident> = e
                .values
                .iter()
                .map(|v| format_ident!("{}", v.name))
                .collect();
            let values: Vec<TokenStream> = e.values.iter().map(|v| byte_lit(v.value)).collect();
            let names: Vec<&str> = e.values.iter().map(|v| v.name.as_str()).collect();
            let defs = e.values.iter().map(|v| {
                let d = docs(&v.description);
                let id = format_ident!("{}", v.name);
                let val = byte_lit(v.value);
                quote!(#d #id = #val)
            });
            let chars = e.values.iter().any(|v| v.ch.is_some()).then(|| {
                let arms = e.values.iter().map(|v| {
                    let id = format_ident!("{}", v.name);
                    match v.ch {
                        Some(c) => quote!(Self::#id => Some(#c)),
                        None => quote!(Self::#id => None),
                    }
                });
                quote! {
                    /// The letter the document gives this value, if any.
                    pub const fn as_char(self) -> Option<char> {
                        match self { #(#arms,)* }
                    }
                }
            });
            out.extend(quote! {
                #[doc = concat!("The `", #ename, "` enum (one byte on the wire).")]
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
                #[repr(u8)]
                pub enum #name { #(#defs,)* }

                impl #name {
                    /// Every value, in document order.
                    pub const ALL: [Self; #n] = [#(Self::#variants),*];

                    /// The wire byte.
                    pub const fn value(self) -> u8 {
                        self as u8
                    }

                    /// The value for a wire byte, if listed.
                    pub const fn from_value(value: u8) -> Option<Self> {
                        match value {
                            #(#values => Some(Self::#variants),)*
                            _ => None,
                        }
                    }

                    /// The value's name.
                    pub const fn name(self) -> &'static str {
                        match self { #(Self::#variants => #names,)* }
                    }

                    #chars
                }

                impl From<#name> for u8 {
                    fn from(value: #name) -> u8 {
                        value.value()
                    }
                }

                impl TryFrom<u8> for #name {
                    type Error = DecodeError;

                    fn try_from(value: u8) -> Result<Self, DecodeError> {
                        Self::from_value(value).ok_or(DecodeError::UnknownEnumValue { what: #ename, enum_name: #ename, value })
                    }
                }
            });
        }
        out
    }

    pub(super) fn data_types(&self) -> TokenStream {
        let dts = &self.m.data_types;
        let n = Literal::usize_unsuffixed(dts.len());
        let variants: Vec<Ident> = dts.iter().map(|d| format_ident!("{}", d.variant)).collect();
        let ids: Vec<Literal> = dts.iter().map(|d| Literal::u8_unsuffixed(d.id)).collect();
        let lengths: Vec<Literal> = dts
            .iter()
            .map(|d| Literal::usize_unsuffixed(d.length))
            .collect();
        let names: Vec<&str> = dts.iter().map(|d| d.name.as_str()).collect();
        let descriptions: Vec<&str> = dts.iter().map(|d| d.description.as_str()).collect();
        let units: Vec<TokenStream> = dts
            .iter()
            .map(|d| match &d.unit {
                Some(u) => quote!(Some(#u)),
                None => quote!(None),
            })
            .collect();
        let type_defs = dts.iter().map(|d| {
            let doc = docs(&format!(
                "{} Id {}, {} bytes{}.",
                d.description,
                d.id,
                d.length,
                d.unit
                    .as_deref()
                    .map(|u| format!(", unit {u}"))
                    .unwrap_or_default()
            ));
            let v = format_ident!("{}", d.variant);
            quote!(#doc #v)
        });
        let value_defs = dts.iter().map(|d| {
            let doc = docs(&format!(
                "{}{}",
                d.description,
                d.unit
                    .as_deref()
                    .map(|u| format!(" Unit: {u}."))
                    .unwrap_or_default()
            ));
            let v = format_ident!("{}", d.variant);
            let t = value_type(d.value, d.length);
            quote!(#doc #v(#t))
        });
        let decode_arms = dts.iter().map(|d| {
            let v = format_ident!("{}", d.variant);
            let what = format!("DataValue::{}", d.variant);
            match d.value {
                ValueType::Bytes => quote!(DataType::#v => Self::#v(reader.array(#what)?)),
                other => {
                    let t = value_type(other, d.length);
                    quote!(DataType::#v => Self::#v(#t::from_be_bytes(reader.array(#what)?)))
                }
            }
        });
        let encode_arms = dts.iter().map(|d| {
            let v = format_ident!("{}", d.variant);
            match d.value {
                ValueType::Bytes => quote!(Self::#v(value) => out.extend_from_slice(value)),
                _ => quote!(Self::#v(value) => out.extend_from_slice(&value.to_be_bytes())),
            }
        });
        quote! {
            /// The data-type table: what a node can report, with the byte length of
            /// each value.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
            pub enum DataType { #(#type_defs,)* }

            impl DataType {
                /// Every data type, in table order.
                pub const ALL: [Self; #n] = [#(Self::#variants),*];

                /// The data id on the wire.
                pub const fn id(self) -> u8 {
                    match self { #(Self::#variants => #ids,)* }
                }

                /// The data type with this id, if the table lists it.
                pub const fn from_id(id: u8) -> Option<Self> {
                    match id {
                        #(#ids => Some(Self::#variants),)*
                        _ => None,
                    }
                }

                /// Length in bytes of one value.
                pub const fn length(self) -> usize {
                    match self { #(Self::#variants => #lengths,)* }
                }

                /// The table's name (`temperature`).
                pub const fn name(self) -> &'static str {
                    match self { #(Self::#variants => #names,)* }
                }

                /// The unit of one step of the value, if the table gives one.
                pub const fn unit(self) -> Option<&'static str> {
                    match self { #(Self::#variants => #units,)* }
                }

                /// The table's description.
                pub const fn description(self) -> &'static str {
                    match self { #(Self::#variants => #descriptions,)* }
                }
            }

            /// One value of a data type, typed by the table's `valueType`
            /// (big-endian on the wire).
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum DataValue { #(#value_defs,)* }

            impl DataValue {
                /// Which data type this is a value of.
                pub const fn data_type(&self) -> DataType {
                    match self { #(Self::#variants(_) => DataType::#variants,)* }
                }

                /// Decodes a value of `data_type` from exactly `bytes`.
                pub fn decode(data_type: DataType, bytes: &[u8]) -> Result<Self, DecodeError> {
                    let mut reader = Reader::new(bytes);
                    let value = match data_type { #(#decode_arms,)* };
                    reader.finish("DataValue")?;
                    Ok(value)
                }

                /// Decodes a value of the data type with id `data_id` from exactly `bytes`.
                pub fn decode_id(data_id: u8, bytes: &[u8]) -> Result<Self, DecodeError> {
                    let data_type = DataType::from_id(data_id).ok_or(DecodeError::UnknownDataType(data_id))?;
                    Self::decode(data_type, bytes)
                }

                /// Appends the value's bytes (exactly [`DataType::length`] of them) to `out`.
                pub fn encode_into(&self, out: &mut Vec<u8>) {
                    match self { #(#encode_arms,)* }
                }

                /// The value's bytes in a new `Vec`.
                pub fn encode(&self) -> Vec<u8> {
                    let mut out = Vec::with_capacity(self.data_type().length());
                    self.encode_into(&mut out);
                    out
                }
            }
        }
    }
}
