//! Small token builders of the uart emission: doc attributes, literals,
//! identifiers, and the Rust types of the model's wire types.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};

use crate::model::uart::{Field, IntTy, ValueType};

/// `#[doc = " line"]` per line of `text` (the leading space makes
/// prettyplease print `/// line`).
pub(super) fn docs(text: &str) -> TokenStream {
    let lines = doc_lines(text);
    quote!(#(#[doc = #lines])*)
}

/// `#![doc = " line"]` per line of `text`: the module's own docs.
pub(super) fn inner_docs(text: &str) -> TokenStream {
    let lines = doc_lines(text);
    quote!(#(#![doc = #lines])*)
}

fn doc_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().map(|l| {
        if l.is_empty() {
            String::new()
        } else {
            format!(" {l}")
        }
    })
}

pub(super) fn hex(b: u8) -> TokenStream {
    let lit = syn::LitInt::new(&format!("0x{b:02X}"), Span::call_site());
    quote!(#lit)
}

/// `b'S'` for printable ASCII, else `0x..`.
pub(super) fn byte_lit(b: u8) -> TokenStream {
    if b.is_ascii_graphic() && b != b'\'' && b != b'\\' {
        let lit = Literal::byte_character(b);
        quote!(#lit)
    } else {
        hex(b)
    }
}

pub(super) fn int_lit(ty: IntTy, v: u64) -> TokenStream {
    let lit = match ty {
        IntTy::U8 => Literal::u8_suffixed(v as u8),
        IntTy::U16 => Literal::u16_suffixed(v as u16),
        IntTy::U32 => Literal::u32_suffixed(v as u32),
    };
    quote!(#lit)
}

/// `Success` / `NodeState` -> `SUCCESS` / `NODE_STATE`.
pub(super) fn screaming(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// An identifier, raw (`r#type`) when the name is a keyword.
pub(super) fn ident(name: &str) -> Ident {
    if syn::parse_str::<Ident>(name).is_ok() {
        Ident::new(name, Span::call_site())
    } else {
        Ident::new_raw(name, Span::call_site())
    }
}

/// The Rust type of an integer field.
pub(super) fn int_type(ty: IntTy) -> TokenStream {
    match ty {
        IntTy::U8 => quote!(u8),
        IntTy::U16 => quote!(u16),
        IntTy::U32 => quote!(u32),
    }
}

/// `usize` from a value of type `ty`. `usize::from` has no u32 impl; on a
/// target with a 16-bit usize, saturating makes an over-large length fail
/// the bounds check (decode) or the length check (encode) instead of
/// wrapping.
pub(super) fn to_usize(ty: IntTy, value: TokenStream) -> TokenStream {
    match ty {
        IntTy::U8 | IntTy::U16 => quote!(usize::from(#value)),
        IntTy::U32 => quote!(usize::try_from(#value).unwrap_or(usize::MAX)),
    }
}

/// The Rust type of a data-type value of `length` bytes.
pub(super) fn value_type(value: ValueType, length: usize) -> TokenStream {
    match value {
        ValueType::U8 => quote!(u8),
        ValueType::I8 => quote!(i8),
        ValueType::U16 => quote!(u16),
        ValueType::I16 => quote!(i16),
        ValueType::U32 => quote!(u32),
        ValueType::I32 => quote!(i32),
        ValueType::Bytes => {
            let n = Literal::usize_unsuffixed(length);
            quote!([u8; #n])
        }
    }
}

/// The field's Rust name as an identifier.
pub(super) fn field_ident(f: &Field) -> Ident {
    ident(&f.rust)
}

/// The name of the associated const of a `const` field.
pub(super) fn const_ident(f: &Field) -> Ident {
    format_ident!("{}", f.rust.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_helpers() {
        assert_eq!(screaming("NodeState"), "NODE_STATE");
        assert_eq!(ident("type").to_string(), "r#type");
    }
}
