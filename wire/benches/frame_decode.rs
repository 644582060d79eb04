//! Decoder throughput on ~1 MiB of concatenated frames, next to a plain memcpy
//! of the same bytes so the number can be read as "fraction of copy speed".

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use specwire_wire::{encode_frame, FrameDecoder};

/// Deterministic xorshift so every run decodes the same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Frames with 64..=256 byte bodies of uniformly random bytes: about 1.2% of
/// body bytes are FF/FE/FA, i.e. one to three escapes per frame.
fn stream() -> (Vec<u8>, u64) {
    let mut rng = Rng(0x5eed_f00d_dead_beef);
    let mut wire = Vec::with_capacity(1 << 20);
    let mut body = Vec::with_capacity(256);
    let mut frames = 0;
    while wire.len() < 1 << 20 {
        let len = 64 + (rng.next() % 193) as usize;
        body.clear();
        body.extend((0..len).map(|_| (rng.next() >> 24) as u8));
        encode_frame(&body, &mut wire);
        frames += 1;
    }
    (wire, frames)
}

fn frame_decode(c: &mut Criterion) {
    let (wire, frames) = stream();
    let mut group = c.benchmark_group("frame_decode");
    group.throughput(Throughput::Bytes(wire.len() as u64));

    let mut decoder = FrameDecoder::new();
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut total = 0usize;
            decoder.decode(black_box(&wire), |body| total += body.len());
            black_box(total)
        })
    });
    let stats = decoder.stats();
    assert_eq!(stats.dropped(), 0);
    assert_eq!(stats.frames % frames, 0);

    let mut dst = vec![0u8; wire.len()];
    group.bench_function("memcpy_baseline", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&wire));
            black_box(&mut dst);
        })
    });
    group.finish();
}

criterion_group!(benches, frame_decode);
criterion_main!(benches);
