//! The [`tokio_util::codec`] codec for byte-stuffed frames (`0xFF` body
//! `0xFE`, [`specwire_wire::frame`]) over TCP: the uart gateway's local
//! API speaks the same frames as the UART. Reading resynchronises on the
//! next `0xFF` after garbage and drops frames with bad escapes, as the
//! wire decoder does; writing escapes each body.
//!
//! ```
//! use bytes::BytesMut;
//! use tokio_util::codec::{Decoder, Encoder};
//! use specwire_runtime::net::frame_codec::FrameCodec;
//!
//! let mut codec = FrameCodec::default();
//! let mut wire = BytesMut::new();
//! codec.encode(vec![b'S', 0xFF], &mut wire)?;
//! assert_eq!(&wire[..], [0xFF, b'S', 0xFA, 0x05, 0xFE]);
//! assert_eq!(codec.decode(&mut wire)?, Some(vec![b'S', 0xFF]));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::VecDeque;
use std::io;

use bytes::BytesMut;
use specwire_wire::frame::{encode_frame, DecoderStats, FrameDecoder};
use tokio_util::codec::{Decoder, Encoder};

/// Frame bodies in and out.
#[derive(Debug, Default)]
pub struct FrameCodec {
    decoder: FrameDecoder,
    /// Bodies decoded from one read, handed out one at a time.
    ready: VecDeque<Vec<u8>>,
}

impl FrameCodec {
    /// What the decoder dropped and delivered so far.
    pub fn stats(&self) -> DecoderStats {
        self.decoder.stats()
    }
}

impl Decoder for FrameCodec {
    type Item = Vec<u8>;
    type Error = io::Error;

    fn decode(&mut self, buffer: &mut BytesMut) -> io::Result<Option<Vec<u8>>> {
        if self.ready.is_empty() && !buffer.is_empty() {
            let ready = &mut self.ready;
            self.decoder
                .decode(buffer, |body| ready.push_back(body.to_vec()));
            buffer.clear();
        }
        Ok(self.ready.pop_front())
    }
}

impl Encoder<Vec<u8>> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, body: Vec<u8>, buffer: &mut BytesMut) -> io::Result<()> {
        let mut frame = Vec::with_capacity(body.len() + 8);
        encode_frame(&body, &mut frame);
        buffer.extend_from_slice(&frame);
        Ok(())
    }
}
