//! The configuration document's JSON Schema, derived from the serde types in `types.rs` (so it
//! cannot drift from what the parser reads), and the Kong filter metadata built from it.
//!
//! The schema says what serde checks: member names and types, unknown members refused, enums,
//! `path` and `path_prefix` never together. What validation checks on top (ranges, upstream
//! syntax, keys that parse, cross-field rules) stays in `validate.rs`: `revguard check` is the
//! full check, the schema is what editors and Kong's Admin API can check without revguard.

use schemars::generate::SchemaSettings;
use schemars::transform::{RecursiveTransform, ReplaceBoolSchemas, ReplaceConstValue, Transform};
use schemars::Schema;
use serde_json::{json, Value};

use super::types::Config;

/// The `$id` of the published schema (a name, not a URL anything fetches).
pub const SCHEMA_ID: &str = "urn:revguard:config";

/// Draft 4's identifier: the one draft Kong validates filter configurations with
/// (kong/db/schema/json.lua, `DRAFT_4`, lua-resty-ljsonschema).
const DRAFT_4: &str = "http://json-schema.org/draft-04/schema#";

/// The configuration's JSON Schema (draft 7: `definitions`, understood by every common
/// validator and editor).
pub fn config_schema() -> Value {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Config>();
    schema.insert("$id".into(), SCHEMA_ID.into());
    schema.insert("title".into(), "revguard plugin configuration".into());
    schema.to_value()
}

/// The filter metadata Kong reads from `<filter>.meta.json` next to the `.wasm` (Kong 3.5 and
/// later, kong/runloop/wasm.lua `discover_filter_metadata`):
/// - `config_schema`: a draft 4 JSON Schema for the filter's `config`. Kong then takes `config`
///   as a JSON value (an object in `kong.yaml` or the Admin API), validates it with this schema
///   when the filter chain is created, and hands the filter its JSON encoding
///   (`serialize_configuration`).
/// - `metrics.label_patterns` (Kong 3.9 and later, kong/plugins/prometheus/wasmx.lua
///   `parse_pw_key`): the Prometheus plugin's wasm metrics export cuts each matched part out of
///   the metric name and makes it a label. Each pattern's first group is the part cut (it must
///   end where the match ends), the second the label value; the match position carries over
///   from one matching pattern to the next, so a name's patterns come in name order.
pub fn kong_filter_meta() -> Value {
    json!({
        "config_schema": draft4(config_schema()),
        "metrics": {"label_patterns": crate::metric_names::KONG_LABEL_PATTERNS
            .iter()
            .map(|(label, pattern)| json!({"label": label, "pattern": pattern}))
            .collect::<Vec<_>>()},
    })
}

/// The schema in the dialect Kong validates with: draft 4 has no `const` (an `enum` of one) and
/// no boolean schemas (`{}` for "anything"); the non-standard integer `format`s schemars adds
/// (`uint64`...) are dropped rather than left for a validator to reject.
fn draft4(schema: Value) -> Value {
    let Ok(mut schema) = Schema::try_from(schema) else {
        return Value::Null;
    };
    ReplaceConstValue::default().transform(&mut schema);
    // `additionalProperties: false` is a boolean draft 4 has; only schemas that are booleans go.
    let mut bool_schemas = ReplaceBoolSchemas::default();
    bool_schemas.skip_additional_properties = true;
    bool_schemas.transform(&mut schema);
    RecursiveTransform(drop_integer_format).transform(&mut schema);
    // Draft 4 names it `id`, and Kong registers the schema under the filter's name anyway.
    schema.remove("$id");
    schema.insert("$schema".into(), DRAFT_4.into());
    schema.to_value()
}

fn drop_integer_format(schema: &mut Schema) {
    let is_integer_format = schema
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"));
    if is_integer_format {
        schema.remove("format");
    }
}
