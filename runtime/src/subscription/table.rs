//! The hub's one table: who is connected (counted per user and per IP),
//! who subscribes to what, and what the hub learnt about experiments.
//!
//! Everything is behind one mutex in [`Hub`](super::Hub), so a publish
//! sees a consistent set of subscribers and publishes are serialised:
//! every connection receives events in publication order. A publish only
//! pushes a shared buffer into each subscriber's bounded outbox; the
//! writing happens on the connections' own tasks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use specwire_protocol::subscription::ResourceType;

use super::resource::{EventRoute, Resource};
use crate::net::{Outbox, SendError, Text};

/// A connection's id (the server's [`Peer::id`](crate::net::Peer)).
pub(crate) type ConnectionId = u64;

/// The limits the table admits connections under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Admission {
    pub per_user: usize,
    pub per_ip: usize,
    pub total: usize,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    PerUser,
    PerIp,
    Total,
}

impl Refusal {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Refusal::PerUser => "Connection limit exceeded: too many connections for this user",
            Refusal::PerIp => "Connection limit exceeded: too many connections from this address",
            Refusal::Total => "Connection limit exceeded: the server is full",
        }
    }
}

struct Connection {
    outbox: Outbox<Text>,
    user: String,
    ip: IpAddr,
    subscriptions: HashSet<Resource>,
}

/// What one fan-out did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fanout {
    /// Connections the event was queued to.
    pub delivered: usize,
    /// Connections whose outbox was full (they are being closed).
    pub overflowed: usize,
}

#[derive(Default)]
pub(crate) struct Table {
    connections: HashMap<ConnectionId, Connection>,
    subscribers: HashMap<Resource, HashSet<ConnectionId>>,
    /// Connections with at least one `system` subscription, and how many.
    system: HashMap<ConnectionId, usize>,
    per_user: HashMap<String, usize>,
    per_ip: HashMap<IpAddr, usize>,
    experiments: Learnt,
    /// Reused by fan-outs that must not deliver twice.
    seen: HashSet<ConnectionId>,
}

impl Table {
    pub(crate) fn new(known_experiments: usize) -> Table {
        Table {
            experiments: Learnt::new(known_experiments),
            ..Table::default()
        }
    }

    /// Admits a connection for `user` from `ip`, or says which limit it
    /// hits.
    pub(crate) fn admit(
        &mut self,
        id: ConnectionId,
        user: &str,
        ip: IpAddr,
        outbox: Outbox<Text>,
        limits: Admission,
    ) -> Result<(), Refusal> {
        if self.connections.len() >= limits.total {
            return Err(Refusal::Total);
        }
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= limits.per_ip {
            return Err(Refusal::PerIp);
        }
        if self.per_user.get(user).copied().unwrap_or(0) >= limits.per_user {
            return Err(Refusal::PerUser);
        }
        *self.per_ip.entry(ip).or_default() += 1;
        *self.per_user.entry(user.to_owned()).or_default() += 1;
        self.connections.insert(
            id,
            Connection {
                outbox,
                user: user.to_owned(),
                ip,
                subscriptions: HashSet::new(),
            },
        );
        Ok(())
    }

    /// Forgets a connection and its subscriptions.
    pub(crate) fn remove(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections.remove(&id) else {
            return;
        };
        for resource in connection.subscriptions {
            self.drop_subscriber(&resource, id);
        }
        self.system.remove(&id);
        decrement(&mut self.per_ip, &connection.ip);
        decrement(&mut self.per_user, &connection.user);
    }

    /// Subscribes `id` to `resource` (again is fine).
    pub(crate) fn subscribe(&mut self, id: ConnectionId, resource: Resource) {
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        if !connection.subscriptions.insert(resource.clone()) {
            return;
        }
        if resource.kind == ResourceType::System {
            *self.system.entry(id).or_default() += 1;
        }
        self.subscribers.entry(resource).or_default().insert(id);
    }

    /// Drops `id`'s subscription to `resource` (none is fine).
    pub(crate) fn unsubscribe(&mut self, id: ConnectionId, resource: &Resource) {
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        if !connection.subscriptions.remove(resource) {
            return;
        }
        if resource.kind == ResourceType::System {
            if let Some(count) = self.system.get_mut(&id) {
                *count -= 1;
                if *count == 0 {
                    self.system.remove(&id);
                }
            }
        }
        self.drop_subscriber(resource, id);
    }

    fn drop_subscriber(&mut self, resource: &Resource, id: ConnectionId) {
        if let Some(set) = self.subscribers.get_mut(resource) {
            set.remove(&id);
            if set.is_empty() {
                self.subscribers.remove(resource);
            }
        }
    }

    /// Queues `text` once to every connection `route` reaches (learning
    /// from it first).
    pub(crate) fn fan_out(&mut self, mut route: EventRoute, text: &Text) -> Fanout {
        if let Some((experiment, project, owner)) = route.learn.take() {
            self.experiments.learn(experiment, project, owner);
        }
        if let Some((project, owner)) = route
            .experiment
            .as_deref()
            .and_then(|experiment| self.experiments.get(experiment))
        {
            route
                .resources
                .push(Resource::new(ResourceType::Project, project));
            route
                .resources
                .push(Resource::new(ResourceType::User, owner));
        }
        let mut fanout = Fanout::default();
        let mut deliver = |outbox: &Outbox<Text>| match outbox.send(text.clone()) {
            Ok(()) => fanout.delivered += 1,
            Err(SendError::Full) => fanout.overflowed += 1,
            Err(SendError::Closed) => {}
        };
        if route.everyone {
            self.connections
                .values()
                .for_each(|connection| deliver(&connection.outbox));
            return fanout;
        }
        let mut groups: Vec<&HashSet<ConnectionId>> = route
            .resources
            .iter()
            .filter_map(|resource| self.subscribers.get(resource))
            .collect();
        if route.system_subscribers {
            for id in self.system.keys() {
                if groups.iter().all(|group| !group.contains(id)) {
                    if let Some(connection) = self.connections.get(id) {
                        deliver(&connection.outbox);
                    }
                }
            }
        }
        // One group needs no de-duplication (the common case: one
        // experiment's subscribers); several may overlap.
        if groups.len() == 1 {
            for id in groups.pop().into_iter().flatten() {
                if let Some(connection) = self.connections.get(id) {
                    deliver(&connection.outbox);
                }
            }
            return fanout;
        }
        self.seen.clear();
        for id in groups.into_iter().flatten() {
            if self.seen.insert(*id) {
                if let Some(connection) = self.connections.get(id) {
                    deliver(&connection.outbox);
                }
            }
        }
        fanout
    }

    /// Connections now.
    pub(crate) fn len(&self) -> usize {
        self.connections.len()
    }

    /// Every connection's outbox (for the heartbeat).
    pub(crate) fn outboxes(&self) -> impl Iterator<Item = &Outbox<Text>> {
        self.connections
            .values()
            .map(|connection| &connection.outbox)
    }

    /// Experiments the hub knows the project and owner of.
    pub(crate) fn known_experiments(&self) -> usize {
        self.experiments.len()
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

/// Experiment → (project, owner), the latest heard, bounded: the oldest
/// learnt is forgotten first.
#[derive(Default)]
struct Learnt {
    parents: HashMap<String, (String, String)>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Learnt {
    fn new(capacity: usize) -> Learnt {
        Learnt {
            capacity,
            ..Learnt::default()
        }
    }

    fn learn(&mut self, experiment: String, project: String, owner: String) {
        if self.capacity == 0 {
            return;
        }
        if let Some(parents) = self.parents.get_mut(&experiment) {
            *parents = (project, owner);
            return;
        }
        while self.parents.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.parents.remove(&oldest);
                }
                None => break,
            }
        }
        self.order.push_back(experiment.clone());
        self.parents.insert(experiment, (project, owner));
    }

    fn get(&self, experiment: &str) -> Option<(String, String)> {
        self.parents.get(experiment).cloned()
    }

    fn len(&self) -> usize {
        self.parents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Admission = Admission {
        per_user: 10,
        per_ip: 50,
        total: 1000,
    };

    fn ip() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    fn connect(table: &mut Table, id: ConnectionId, user: &str) -> Outbox<Text> {
        let outbox = Outbox::with_capacity(16);
        table.admit(id, user, ip(), outbox.clone(), OPEN).unwrap();
        outbox
    }

    fn route(resources: &[Resource]) -> EventRoute {
        EventRoute {
            resources: resources.to_vec(),
            ..EventRoute::default()
        }
    }

    fn experiment(id: &str) -> Resource {
        Resource::new(ResourceType::Experiment, id)
    }

    #[test]
    fn overlapping_subscriptions_deliver_once() {
        let mut table = Table::new(10);
        let outbox = connect(&mut table, 1, "alice");
        table.subscribe(1, experiment("e"));
        table.subscribe(1, Resource::new(ResourceType::Task, "t"));
        let text = Text::from("event");
        let fanout = table.fan_out(
            route(&[Resource::new(ResourceType::Task, "t"), experiment("e")]),
            &text,
        );
        assert_eq!(fanout.delivered, 1);
        assert_eq!(outbox.take().len(), 1);
    }

    #[test]
    fn learnt_parents_route_task_events_to_project_and_owner() {
        let mut table = Table::new(10);
        let project = connect(&mut table, 1, "bob");
        table.subscribe(1, Resource::new(ResourceType::Project, "p"));
        let text = Text::from("x");
        let task = EventRoute {
            experiment: Some("e".into()),
            ..route(&[experiment("e")])
        };
        assert_eq!(table.fan_out(task.clone(), &text).delivered, 0);
        let learn = EventRoute {
            learn: Some(("e".into(), "p".into(), "alice".into())),
            ..route(&[experiment("e")])
        };
        table.fan_out(learn, &text);
        project.take();
        assert_eq!(table.fan_out(task, &text).delivered, 1);
        assert_eq!(project.take().len(), 1);
    }

    #[test]
    fn limits_count_per_user_and_ip_and_are_released() {
        let mut table = Table::new(10);
        let limits = Admission {
            per_user: 1,
            per_ip: 2,
            total: 3,
        };
        let admit = |table: &mut Table, id, user: &str| {
            table.admit(id, user, ip(), Outbox::with_capacity(1), limits)
        };
        assert_eq!(admit(&mut table, 1, "a"), Ok(()));
        assert_eq!(admit(&mut table, 2, "a"), Err(Refusal::PerUser));
        assert_eq!(admit(&mut table, 2, "b"), Ok(()));
        assert_eq!(admit(&mut table, 3, "c"), Err(Refusal::PerIp));
        table.remove(1);
        assert_eq!(admit(&mut table, 3, "a"), Ok(()));
    }

    #[test]
    fn system_subscribers_get_worker_events_once_and_everyone_gets_system_events() {
        let mut table = Table::new(10);
        let watcher = connect(&mut table, 1, "a");
        let other = connect(&mut table, 2, "b");
        table.subscribe(1, Resource::new(ResourceType::System, "all"));
        table.subscribe(1, Resource::new(ResourceType::Worker, "w"));
        let worker = EventRoute {
            system_subscribers: true,
            ..route(&[Resource::new(ResourceType::Worker, "w")])
        };
        assert_eq!(table.fan_out(worker, &Text::from("w")).delivered, 1);
        assert_eq!(watcher.take().len(), 1);
        assert!(other.take().is_empty());
        let system = EventRoute {
            everyone: true,
            ..EventRoute::default()
        };
        assert_eq!(table.fan_out(system, &Text::from("s")).delivered, 2);
        table.unsubscribe(1, &Resource::new(ResourceType::System, "all"));
        assert!(table.system.is_empty());
    }

    #[test]
    fn learnt_experiments_are_bounded() {
        let mut learnt = Learnt::new(2);
        for i in 0..5 {
            learnt.learn(format!("e{i}"), "p".into(), "o".into());
        }
        assert_eq!(learnt.len(), 2);
        assert!(learnt.get("e0").is_none());
        assert!(learnt.get("e4").is_some());
    }
}
