//! What the module simulates: the mesh's nodes and their sensors, and the
//! noise on the line.

use specwire_protocol::uart::{DataType, DataValue, NodeEntry};

/// Per-byte corruption of the module's output.
pub(super) struct Noise {
    rate: f64,
    rng: fastrand::Rng,
}

impl Noise {
    pub(super) fn new(rate: f64, seed: u64) -> Noise {
        Noise {
            rate,
            rng: fastrand::Rng::with_seed(seed ^ 0x6e6f_6973_6520_2121),
        }
    }

    /// Corrupts `wire` in place; returns (bytes flipped, bytes dropped).
    pub(super) fn apply(&mut self, wire: &mut Vec<u8>) -> (u64, u64) {
        if self.rate <= 0.0 {
            return (0, 0);
        }
        let (mut flipped, mut dropped) = (0, 0);
        let (rate, rng) = (self.rate, &mut self.rng);
        wire.retain_mut(|byte| {
            if rng.f64() >= rate {
                return true;
            }
            if rng.bool() {
                *byte ^= 1 << rng.u8(0..8);
                flipped += 1;
                true
            } else {
                dropped += 1;
                false
            }
        });
        (flipped, dropped)
    }
}

/// The network the root module sees: its nodes and their sensors.
pub(super) struct Network {
    pub(super) nodes: Vec<Node>,
}

pub(super) struct Node {
    pub(super) entry: NodeEntry,
    pub(super) sensors: Sensors,
}

impl Network {
    pub(super) fn new(count: u16, seed: u64) -> Network {
        let mut ids = fastrand::Rng::with_seed(seed);
        let nodes = (1..=count)
            .map(|addr| {
                let mut bytes = [0u8; 16];
                ids.fill(&mut bytes);
                Node {
                    entry: NodeEntry {
                        addr,
                        uuid: uuid::Builder::from_random_bytes(bytes).into_uuid(),
                    },
                    sensors: Sensors::new(addr, seed),
                }
            })
            .collect();
        Network { nodes }
    }

    pub(super) fn entries(&self) -> Vec<NodeEntry> {
        self.nodes.iter().map(|node| node.entry.clone()).collect()
    }

    pub(super) fn knows(&self, addr: u16) -> bool {
        self.nodes.iter().any(|node| node.entry.addr == addr)
    }
}

/// One node's readings: slow drifts, a day-like cycle, a little jitter.
pub(super) struct Sensors {
    rng: fastrand::Rng,
    phase: f64,
    temperature: f64,
    humidity: f64,
    battery: f64,
    pressure: f64,
    counter: u32,
}

impl Sensors {
    fn new(addr: u16, seed: u64) -> Sensors {
        let n = f64::from(addr);
        Sensors {
            rng: fastrand::Rng::with_seed(
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(addr),
            ),
            phase: n * 0.7,
            temperature: 19.0 + (n % 7.0) * 0.5,
            humidity: 40.0 + n % 11.0,
            battery: 100.0 - n % 20.0,
            pressure: 101_325.0 - n * 12.0,
            counter: 0,
        }
    }

    /// The next reading: one value for every data type of the table.
    pub(super) fn reading(&mut self) -> Vec<DataValue> {
        self.phase += 0.05;
        self.battery = (self.battery - 0.02).max(1.0);
        self.counter = self.counter.wrapping_add(self.rng.u32(0..4));
        DataType::ALL.iter().map(|&kind| self.value(kind)).collect()
    }

    fn value(&mut self, kind: DataType) -> DataValue {
        let jitter = self.rng.f64() - 0.5;
        match kind {
            DataType::Temperature => {
                let celsius = self.temperature + self.phase.sin() * 1.5 + jitter * 0.1;
                DataValue::Temperature((celsius * 100.0).round() as i16)
            }
            DataType::Humidity => {
                let percent =
                    (self.humidity + (self.phase * 0.7).cos() * 5.0 + jitter).clamp(0.0, 100.0);
                DataValue::Humidity((percent * 100.0).round() as u16)
            }
            DataType::Battery => DataValue::Battery(self.battery.round() as u8),
            DataType::Light => {
                let daylight = (self.phase * 0.3).sin().max(0.0);
                DataValue::Light((daylight * 800.0 + 5.0 + jitter * 4.0).round().max(0.0) as u16)
            }
            DataType::Pressure => {
                let pascal = self.pressure + (self.phase * 0.2).sin() * 150.0 + jitter * 10.0;
                DataValue::Pressure(pascal.round() as u32)
            }
            DataType::Counter => DataValue::Counter(self.counter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_cover_the_table_and_change() {
        let mut sensors = Sensors::new(1, 1);
        let first = sensors.reading();
        let kinds: Vec<DataType> = first.iter().map(DataValue::data_type).collect();
        assert_eq!(kinds, DataType::ALL);
        let later: Vec<Vec<DataValue>> = (0..20).map(|_| sensors.reading()).collect();
        assert!(later.iter().any(|reading| reading != &first));
        for value in later.iter().flatten() {
            match value {
                DataValue::Temperature(t) => assert!((1000..3500).contains(t), "{t}"),
                DataValue::Humidity(h) => assert!(*h <= 10_000),
                DataValue::Battery(b) => assert!(*b <= 100),
                DataValue::Pressure(p) => assert!((95_000..105_000).contains(p)),
                _ => {}
            }
        }
    }

    #[test]
    fn noise_flips_and_drops_about_the_rate() {
        let mut noise = Noise::new(0.1, 3);
        let mut wire = vec![0u8; 10_000];
        let (flipped, dropped) = noise.apply(&mut wire);
        assert!(
            (800..1200).contains(&(flipped + dropped)),
            "{flipped} {dropped}"
        );
        assert_eq!(wire.len() as u64, 10_000 - dropped);
        assert_eq!(wire.iter().filter(|&&b| b != 0).count() as u64, flipped);
        let mut clean = Noise::new(0.0, 3);
        assert_eq!(clean.apply(&mut wire), (0, 0));
    }
}
