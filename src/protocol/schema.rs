//! The protocol as a JSON Schema document, generated from the Rust types, checked into
//! `docs/protocol.schema.json`. A test fails when the file is stale (regenerate it with
//! `AGY_BRIDGE_BLESS=1 cargo test --lib protocol`); the Python worker's tests read the file to
//! check their method table, error codes and constants against it.

use schemars::{SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use super::{Method, codes};

/// Receives each method of the protocol.
pub(crate) trait Visit {
    /// One method.
    fn method<M: Method>(&mut self);
}

struct Collect {
    generator: SchemaGenerator,
    methods: Map<String, Value>,
}

impl Visit for Collect {
    fn method<M: Method>(&mut self) {
        let params = self.generator.subschema_for::<M::Params>();
        let result = self.generator.subschema_for::<M::Result>();
        self.methods.insert(
            M::NAME.to_owned(),
            json!({ "direction": M::DIRECTION, "params": params, "result": result }),
        );
    }
}

/// The whole protocol: versions, error codes, constants both sides share, and every method's
/// params and result.
#[must_use]
pub(crate) fn document() -> Value {
    let mut collect = Collect {
        generator: SchemaSettings::draft2020_12().into_generator(),
        methods: Map::new(),
    };
    super::methods::each(&mut collect);
    let agent_error = collect
        .generator
        .subschema_for::<super::errors::AgentErrorData>();
    let definitions = collect.generator.take_definitions(true);
    let error_codes: Map<String, Value> = codes::ALL
        .iter()
        .map(|(name, code)| ((*name).to_owned(), json!(code)))
        .collect();
    let jsonrpc_codes: Map<String, Value> = crate::rpc::codes::ALL
        .iter()
        .map(|(name, code)| ((*name).to_owned(), json!(code)))
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated from src/protocol by `AGY_BRIDGE_BLESS=1 cargo test --lib protocol`; do not edit.",
        "title": "agy-bridge worker protocol",
        "protocol_version": super::PROTOCOL_VERSION,
        "worker_version": super::WORKER_VERSION,
        "sdk_version": super::SDK_VERSION,
        "error_codes": error_codes,
        "error_data": { "AGENT_ERROR": agent_error },
        "jsonrpc": {
            "codes": jsonrpc_codes,
            "cancel_method": crate::rpc::CANCEL_METHOD,
            "answered_method": crate::rpc::ANSWERED_METHOD,
            "default_max_message_size": crate::rpc::DEFAULT_MAX_MESSAGE_SIZE,
        },
        "read_only_builtins": super::READ_ONLY_BUILTINS,
        "hook_points": super::HOOK_POINTS,
        "methods": collect.methods,
        "$defs": definitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.schema.json");

    #[test]
    fn the_checked_in_schema_is_current() {
        let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("AGY_BRIDGE_BLESS").is_some() {
            std::fs::write(PATH, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(PATH).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/protocol.schema.json is stale: run `AGY_BRIDGE_BLESS=1 cargo test --lib protocol`"
        );
    }

    #[test]
    fn every_method_is_described_with_a_direction() {
        let doc = document();
        let methods = doc["methods"].as_object().unwrap();
        assert!(methods.len() >= 20);
        for (name, method) in methods {
            assert!(method["direction"].is_string(), "{name}");
            assert!(
                method["params"].is_object() || method["params"].is_boolean(),
                "{name}"
            );
        }
    }
}
