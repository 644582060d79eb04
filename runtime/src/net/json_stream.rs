//! The [`tokio_util::codec`] codec for a TCP stream of JSON values (the
//! chat family's framing): [`specwire_wire::json::stream`] cuts the bytes
//! read into values, and every value written is sent as it is (the sender
//! serializes once, ending the object with `\n` as the profile asks, and
//! may share the bytes between many connections).
//!
//! ```
//! use bytes::BytesMut;
//! use tokio_util::codec::{Decoder, Encoder};
//! use specwire_runtime::net::json_stream::JsonStreamCodec;
//! use specwire_wire::json::stream::StreamItem;
//!
//! let mut codec = JsonStreamCodec::new(1 << 20);
//! let mut read = BytesMut::from(&b"{\"a\":1}\n{\"b\""[..]);
//! assert_eq!(codec.decode(&mut read)?, Some(StreamItem::Value("{\"a\":1}".into())));
//! assert_eq!(codec.decode(&mut read)?, None);
//!
//! let mut written = BytesMut::new();
//! codec.encode(bytes::Bytes::from_static(b"{\"ok\":true}\n"), &mut written)?;
//! assert_eq!(&written[..], b"{\"ok\":true}\n");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;

use bytes::{Bytes, BytesMut};
use specwire_wire::json::stream::{JsonStreamDecoder, StreamItem};
use tokio_util::codec::{Decoder, Encoder};

/// Splits what is read into [`StreamItem`]s; writes [`Bytes`] as they are.
#[derive(Clone, Debug)]
pub struct JsonStreamCodec(JsonStreamDecoder);

impl JsonStreamCodec {
    /// A codec refusing values longer than `max_value_bytes`.
    pub fn new(max_value_bytes: usize) -> JsonStreamCodec {
        JsonStreamCodec(JsonStreamDecoder::new(max_value_bytes))
    }
}

impl Decoder for JsonStreamCodec {
    type Item = StreamItem;
    type Error = io::Error;

    fn decode(&mut self, buffer: &mut BytesMut) -> io::Result<Option<StreamItem>> {
        Ok(self.0.decode(buffer))
    }

    /// At the end of the stream, an unfinished value is dropped: its sender
    /// is gone, so there is nobody to answer.
    fn decode_eof(&mut self, buffer: &mut BytesMut) -> io::Result<Option<StreamItem>> {
        let item = self.0.decode(buffer);
        if item.is_none() {
            buffer.clear();
        }
        Ok(item)
    }
}

impl Encoder<Bytes> for JsonStreamCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Bytes, buffer: &mut BytesMut) -> io::Result<()> {
        buffer.extend_from_slice(&item);
        Ok(())
    }
}
