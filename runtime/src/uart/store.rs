//! The node store: what the gateway knows about the mesh, learnt from the
//! module's `M` frames, and what it answers `NSTAT`, `[GET]`, `ACT-C` and
//! `NINFO` from.
//!
//! Per node: its UUID, its state (`A` active: announced by `NOD` or listed
//! by the latest `NET`; `D` disconnected: announced before, missing from a
//! later `NET`, or every node after the root's `RST`; `N` never announced:
//! known only from its data), and per data type a time-stamped history of
//! at most [`NodeStore::history`] values, the oldest forgotten first.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use serde_json::{json, Value};
use specwire_protocol::uart::{DataUpdate, NetworkStatus, NodeConnected, NodeState, RootReset};

use super::table::DataTypeTable;

/// One recorded value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// When the gateway received it.
    pub at: SystemTime,
    /// The value's bytes as sent.
    pub raw: Vec<u8>,
}

/// One node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Its address.
    pub addr: u16,
    /// Its UUID, once announced.
    pub uuid: Option<[u8; 16]>,
    /// `A`, `D` or `N`.
    pub state: NodeState,
    /// When anything about it last arrived.
    pub last_seen: SystemTime,
    /// Per data id, oldest first.
    pub history: BTreeMap<u8, VecDeque<Sample>>,
}

/// What a message changed, for listeners such as the monitor.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A node's state (or UUID) is new.
    Node {
        /// The node.
        addr: u16,
        /// Its state now.
        state: NodeState,
        /// Its UUID, if known.
        uuid: Option<[u8; 16]>,
    },
    /// A node reported values: `(dataId, bytes)`.
    Data {
        /// The node.
        addr: u16,
        /// The values.
        values: Vec<(u8, Vec<u8>)>,
    },
}

/// The store.
#[derive(Debug)]
pub struct NodeStore {
    table: DataTypeTable,
    nodes: BTreeMap<u16, Node>,
    /// Values kept per node and data type.
    pub history: usize,
}

impl NodeStore {
    /// An empty store decoding data with `table`, keeping `history` values
    /// per node and data type.
    pub fn new(table: DataTypeTable, history: usize) -> NodeStore {
        NodeStore {
            table,
            nodes: BTreeMap::new(),
            history: history.max(1),
        }
    }

    /// The data-type table.
    pub fn table(&self) -> &DataTypeTable {
        &self.table
    }

    /// Every node, by address.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// One node.
    pub fn node(&self, addr: u16) -> Option<&Node> {
        self.nodes.get(&addr)
    }

    fn entry(&mut self, addr: u16, now: SystemTime) -> &mut Node {
        let node = self.nodes.entry(addr).or_insert_with(|| Node {
            addr,
            uuid: None,
            state: NodeState::NeverAnnounced,
            last_seen: now,
            history: BTreeMap::new(),
        });
        node.last_seen = now;
        node
    }

    fn set_state(
        &mut self,
        addr: u16,
        state: NodeState,
        uuid: Option<[u8; 16]>,
        now: SystemTime,
        changes: &mut Vec<Change>,
    ) {
        let node = self.entry(addr, now);
        let uuid = uuid.or(node.uuid);
        if node.state != state || node.uuid != uuid {
            node.state = state;
            node.uuid = uuid;
            changes.push(Change::Node { addr, state, uuid });
        }
    }

    /// Applies an `M` body (`src(2) opcode(1) payload`, after the kind
    /// byte); what changed. A body the store cannot read (a `DATA_UPDATE`
    /// with an id not in its table, a short `NOD`) is an error and changes
    /// nothing; an opcode it does not know changes nothing.
    pub fn apply(&mut self, body: &[u8], now: SystemTime) -> Result<Vec<Change>, String> {
        let [high, low, opcode, payload @ ..] = body else {
            return Err(format!("an M body of {} bytes", body.len()));
        };
        let src = u16::from_be_bytes([*high, *low]);
        let mut changes = Vec::new();
        match *opcode {
            NodeConnected::OPCODE => {
                let node = NodeConnected::decode(payload).map_err(|error| error.to_string())?;
                let uuid = Some(*node.uuid.as_bytes());
                self.set_state(node.addr, NodeState::Active, uuid, now, &mut changes);
            }
            NetworkStatus::OPCODE => {
                let status = NetworkStatus::decode(payload).map_err(|error| error.to_string())?;
                let listed: BTreeMap<u16, [u8; 16]> = status
                    .nodes
                    .iter()
                    .map(|entry| (entry.addr, *entry.uuid.as_bytes()))
                    .collect();
                let gone: Vec<u16> = self
                    .nodes
                    .values()
                    .filter(|node| {
                        node.state == NodeState::Active && !listed.contains_key(&node.addr)
                    })
                    .map(|node| node.addr)
                    .collect();
                for addr in gone {
                    self.set_state(addr, NodeState::Disconnected, None, now, &mut changes);
                }
                for (addr, uuid) in listed {
                    self.set_state(addr, NodeState::Active, Some(uuid), now, &mut changes);
                }
            }
            RootReset::OPCODE => {
                let active = self.nodes_in(NodeState::Active);
                for (addr, _) in active {
                    self.set_state(addr, NodeState::Disconnected, None, now, &mut changes);
                }
            }
            DataUpdate::OPCODE => {
                let values: Vec<(u8, Vec<u8>)> = self
                    .table
                    .split_update(payload)?
                    .into_iter()
                    .map(|(id, bytes)| (id, bytes.to_vec()))
                    .collect();
                let history = self.history;
                let node = self.entry(src, now);
                for (id, raw) in &values {
                    let samples = node.history.entry(*id).or_default();
                    if samples.len() == history {
                        samples.pop_front();
                    }
                    samples.push_back(Sample {
                        at: now,
                        raw: raw.clone(),
                    });
                }
                changes.push(Change::Data { addr: src, values });
            }
            _ => {}
        }
        Ok(changes)
    }

    /// Nodes in `state`, by address: `(addr, uuid)` (zeros when unknown).
    pub fn nodes_in(&self, state: NodeState) -> Vec<(u16, [u8; 16])> {
        self.nodes
            .values()
            .filter(|node| node.state == state)
            .map(|node| (node.addr, node.uuid.unwrap_or_default()))
            .collect()
    }

    /// Active nodes.
    pub fn active_count(&self) -> usize {
        self.nodes
            .values()
            .filter(|node| node.state == NodeState::Active)
            .count()
    }

    /// The latest value of `data_id` from `addr` (`0x0000`: from every node
    /// that has one), by address.
    pub fn latest(&self, data_id: u8, addr: u16) -> Vec<(u16, Vec<u8>)> {
        self.nodes
            .values()
            .filter(|node| addr == 0 || node.addr == addr)
            .filter_map(|node| {
                let sample = node.history.get(&data_id)?.back()?;
                Some((node.addr, sample.raw.clone()))
            })
            .collect()
    }

    /// The network as JSON (`NINFO`'s answer to local clients).
    pub fn describe(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .values()
            .map(|node| {
                let data: serde_json::Map<String, Value> = node
                    .history
                    .iter()
                    .filter_map(|(id, samples)| {
                        let row = self.table.get(*id)?;
                        let latest = samples.back()?;
                        Some((
                            row.name.clone(),
                            json!({
                                "raw": specwire_wire::to_hex(&latest.raw),
                                "value": row.scaled(&latest.raw),
                                "text": row.show(&latest.raw),
                                "at": rfc3339(latest.at),
                            }),
                        ))
                    })
                    .collect();
                json!({
                    "addr": format!("0x{:04X}", node.addr),
                    "uuid": node.uuid.map(|uuid| uuid::Uuid::from_bytes(uuid).to_string()),
                    "state": node.state.as_char().map(String::from),
                    "lastSeen": rfc3339(node.last_seen),
                    "data": data,
                })
            })
            .collect();
        json!({"activeCount": self.active_count(), "nodes": nodes})
    }
}

fn rfc3339(at: SystemTime) -> String {
    crate::clock::rfc3339(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use specwire_protocol::uart::NodeEntry;

    fn body(src: u16, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = src.to_be_bytes().to_vec();
        body.push(opcode);
        body.extend_from_slice(payload);
        body
    }

    fn uuid(n: u8) -> uuid::Uuid {
        uuid::Uuid::from_bytes([n; 16])
    }

    #[test]
    fn states_follow_nod_net_and_rst_and_data_keeps_a_bounded_history() {
        let mut store = NodeStore::new(DataTypeTable::schema_default(), 2);
        let now = SystemTime::now();
        let nod = NodeConnected {
            addr: 1,
            uuid: uuid(1),
        }
        .encode();
        let changes = store
            .apply(&body(0, NodeConnected::OPCODE, &nod), now)
            .unwrap();
        assert_eq!(
            changes,
            [Change::Node {
                addr: 1,
                state: NodeState::Active,
                uuid: Some([1; 16])
            }]
        );
        // Node 2 only sends data: never announced.
        for value in [1u8, 2, 3] {
            store
                .apply(&body(2, DataUpdate::OPCODE, &[1, 3, value]), now)
                .unwrap();
        }
        assert_eq!(store.nodes_in(NodeState::NeverAnnounced), [(2, [0; 16])]);
        assert_eq!(store.latest(3, 0), [(2, vec![3])]);
        assert_eq!(store.node(2).unwrap().history[&3].len(), 2);
        // NET lists 3 only: 1 is disconnected, 3 active.
        let net = NetworkStatus {
            nodes: vec![NodeEntry {
                addr: 3,
                uuid: uuid(3),
            }],
        }
        .encode()
        .unwrap();
        store
            .apply(&body(0, NetworkStatus::OPCODE, &net), now)
            .unwrap();
        assert_eq!(store.nodes_in(NodeState::Disconnected), [(1, [1; 16])]);
        assert_eq!(store.active_count(), 1);
        store.apply(&body(0, RootReset::OPCODE, &[]), now).unwrap();
        assert_eq!(store.active_count(), 0);
        assert_eq!(store.nodes_in(NodeState::Disconnected).len(), 2);
        // What the table cannot read changes nothing.
        assert!(store
            .apply(&body(2, DataUpdate::OPCODE, &[1, 99, 0]), now)
            .is_err());
        assert!(store.apply(&[0, 1], now).is_err());
        assert_eq!(store.apply(&body(0, 0x7F, &[1, 2]), now).unwrap(), []);
        let described = store.describe();
        assert_eq!(described["nodes"][1]["data"]["battery"]["text"], "3 %");
    }
}
