//! Aggregates run through the domain's own command service over the in-memory store, and
//! their events collected as one stream, as the projector would read them.

// Each test file uses a part of this module.
#![allow(dead_code)]

use domain::command_service::{CommandInputs, CommandRequest, ExecuteError, Loaded};
use domain::memory::InMemoryStore;
use domain::{CommandError, EventEnvelope, Metadata, Position};
use serde_json::{Value, json};

/// One aggregate instance: its store and its loaded state.
pub struct Instance {
    pub store: InMemoryStore,
    pub loaded: Loaded,
}

/// Several aggregates and the stream of their events in commit order, on one partition.
pub struct World {
    pub instances: Vec<(String, String, Instance)>,
    pub stream: Vec<EventEnvelope>,
    pub now_ms: i64,
    next_event: u64,
}

impl World {
    pub fn new() -> Self {
        World {
            instances: Vec::new(),
            stream: Vec::new(),
            now_ms: projections::testing::T0_MS,
            next_event: 0,
        }
    }

    /// Runs `{type, data}` on `aggregate_type:aggregate_id` a second after the previous
    /// command. A rejection (the command broke a rule) is `false` and appends nothing;
    /// anything else that fails is a bug in the test.
    pub fn send(&mut self, aggregate_type: &str, aggregate_id: &str, command: Value) -> bool {
        self.now_ms += 1000;
        let index = match self
            .instances
            .iter()
            .position(|(t, id, _)| t == aggregate_type && id == aggregate_id)
        {
            Some(index) => index,
            None => {
                let store = InMemoryStore::new();
                let loaded = Loaded::load(&store, aggregate_type, aggregate_id).unwrap();
                let instance = Instance { store, loaded };
                self.instances
                    .push((aggregate_type.to_owned(), aggregate_id.to_owned(), instance));
                self.instances.len() - 1
            }
        };
        let (_, _, instance) = &mut self.instances[index];
        let request = CommandRequest::from_json(&command).unwrap();
        let next_event = &mut self.next_event;
        let mut ids = || {
            *next_event += 1;
            format!("event-{next_event}")
        };
        let inputs = CommandInputs {
            now_ms: self.now_ms,
            metadata: Metadata {
                actor: Some("ana".into()),
                ..Metadata::default()
            },
            idempotency_key: None,
            next_event_id: &mut ids,
            max_events: 100,
        };
        match instance
            .loaded
            .execute(&mut instance.store, request, inputs, 0)
        {
            Ok(outcome) => {
                for event in outcome.events {
                    let mut envelope = event.envelope(aggregate_type, aggregate_id);
                    envelope.position = Some(Position {
                        partition: 0,
                        offset: self.stream.len() as u64 + 1,
                    });
                    self.stream.push(envelope);
                }
                true
            }
            Err(ExecuteError::Command(CommandError::Rejected(_))) => false,
            Err(error) => panic!("{aggregate_type}:{aggregate_id} {command}: {error}"),
        }
    }

    /// Like [`World::send`], and the command must be accepted.
    #[track_caller]
    pub fn ok(
        &mut self,
        aggregate_type: &str,
        aggregate_id: &str,
        command_type: &str,
        data: Value,
    ) {
        let command = json!({"type": command_type, "data": data});
        assert!(
            self.send(aggregate_type, aggregate_id, command.clone()),
            "rejected: {command}"
        );
    }

    /// The aggregate's state as its clients see it (`Loaded.state.to_json()`).
    pub fn state(&self, aggregate_type: &str, aggregate_id: &str) -> Option<(u64, Value)> {
        self.instances
            .iter()
            .find(|(t, id, _)| t == aggregate_type && id == aggregate_id)
            .map(|(_, _, i)| (i.loaded.version, i.loaded.state.to_json()))
    }
}
