//! Avro schemas as Confluent's `?format=resolved` answers them: one self-contained schema in
//! which every named type that came from a reference is written out where it is first used and
//! by its full name after, as Avro's own writer prints a schema. The walk is over the JSON as
//! stored, so docs, field order, logical types and custom attributes come out as they were sent.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

/// Avro's primitive type names, which are never references.
const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// `text` with the named types of `dependencies` (the texts of its references, transitively)
/// inlined at their first use.
pub fn resolved(text: &str, dependencies: &[String]) -> Result<String, String> {
    let mut definitions = HashMap::new();
    for dependency in dependencies {
        let value = parse(dependency)?;
        collect_definitions(&value, None, &mut definitions);
    }
    let mut schema = parse(text)?;
    let mut defined = HashSet::new();
    inline(&mut schema, None, &definitions, &mut defined);
    let resolved = schema.to_string();
    apache_avro::Schema::parse_str(&resolved)
        .map_err(|e| format!("the schema's references could not be inlined: {e}"))?;
    Ok(resolved)
}

fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))
}

/// The full name a named type's definition gives itself inside `namespace`.
fn full_name(definition: &Map<String, Value>, namespace: Option<&str>) -> Option<String> {
    let name = definition.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_owned());
    }
    let namespace = match definition.get("namespace").and_then(Value::as_str) {
        Some(own) => Some(own),
        None => namespace,
    };
    Some(match namespace {
        Some(namespace) if !namespace.is_empty() => format!("{namespace}.{name}"),
        _ => name.to_owned(),
    })
}

/// The namespace a full name's definition gives the names written inside it.
fn namespace_of(full_name: &str) -> Option<String> {
    full_name
        .rsplit_once('.')
        .map(|(namespace, _)| namespace.to_owned())
}

/// A reference's full name: a dotted name is already full, a short one is in `namespace`.
fn referenced(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) if !name.contains('.') && !namespace.is_empty() => {
            format!("{namespace}.{name}")
        }
        _ => name.to_owned(),
    }
}

fn is_named(kind: Option<&str>) -> bool {
    matches!(kind, Some("record" | "error" | "enum" | "fixed"))
}

/// Every named type `value` defines, nested ones too, by full name; each standalone, with its
/// namespace written out so the names inside it still mean what they meant in place.
fn collect_definitions(value: &Value, namespace: Option<&str>, out: &mut HashMap<String, Value>) {
    match value {
        Value::Array(branches) => {
            for branch in branches {
                collect_definitions(branch, namespace, out);
            }
        }
        Value::Object(object) => {
            let kind = object.get("type").and_then(Value::as_str);
            if is_named(kind) {
                let Some(full) = full_name(object, namespace) else {
                    return;
                };
                let inner = namespace_of(&full);
                let mut standalone = object.clone();
                standalone.insert(
                    "namespace".into(),
                    Value::String(inner.clone().unwrap_or_default()),
                );
                if let Some(Value::String(name)) = standalone.get_mut("name")
                    && let Some((_, short)) = name.rsplit_once('.')
                {
                    *name = short.to_owned();
                }
                out.entry(full).or_insert(Value::Object(standalone));
                for field in fields(object) {
                    if let Some(kind) = field.get("type") {
                        collect_definitions(kind, inner.as_deref(), out);
                    }
                }
            } else {
                for key in ["type", "items", "values"] {
                    if let Some(inner) = object.get(key) {
                        collect_definitions(inner, namespace, out);
                    }
                }
            }
        }
        _ => {}
    }
}

fn fields(object: &Map<String, Value>) -> impl Iterator<Item = &Map<String, Value>> {
    object
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// Writes out, in `value`, the first use of each type of `definitions` not yet in `defined`;
/// a definition met again (inside an inlined one) becomes its full name.
fn inline(
    value: &mut Value,
    namespace: Option<&str>,
    definitions: &HashMap<String, Value>,
    defined: &mut HashSet<String>,
) {
    match value {
        Value::String(name) if !PRIMITIVES.contains(&name.as_str()) => {
            let full = referenced(name, namespace);
            if defined.contains(&full) {
                return;
            }
            if let Some(definition) = definitions.get(&full) {
                *value = definition.clone();
                inline(value, namespace, definitions, defined);
            }
        }
        Value::Array(branches) => {
            for branch in branches {
                inline(branch, namespace, definitions, defined);
            }
        }
        Value::Object(object) => {
            let kind = object.get("type").and_then(Value::as_str);
            if is_named(kind) {
                let Some(full) = full_name(object, namespace) else {
                    return;
                };
                if !defined.insert(full.clone()) {
                    *value = Value::String(full);
                    return;
                }
                let inner = namespace_of(&full);
                if let Some(Value::Array(fields)) = object.get_mut("fields") {
                    for field in fields.iter_mut().filter_map(Value::as_object_mut) {
                        if let Some(kind) = field.get_mut("type") {
                            inline(kind, inner.as_deref(), definitions, defined);
                        }
                    }
                }
            } else {
                for key in ["type", "items", "values"] {
                    if let Some(inner) = object.get_mut(key) {
                        inline(inner, namespace, definitions, defined);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ADDRESS: &str = r#"{"type":"record","name":"Address","namespace":"shop","doc":"where","fields":[{"name":"city","type":"string","doc":"a town"}]}"#;

    fn resolved_json(text: &str, dependencies: &[&str]) -> Value {
        let dependencies: Vec<String> = dependencies.iter().map(|d| (*d).to_owned()).collect();
        let text = resolved(text, &dependencies).expect("resolves");
        serde_json::from_str(&text).expect("json")
    }

    #[test]
    fn a_reference_is_written_out_at_its_first_use_and_named_after() {
        let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"to","type":"Address","doc":"kept"},{"name":"from","type":["null","shop.Address"],"default":null}]}"#;
        assert_eq!(
            resolved_json(order, &[ADDRESS]),
            json!({"type":"record","name":"Order","namespace":"shop","fields":[
                {"name":"to","type":{"type":"record","name":"Address","namespace":"shop","doc":"where","fields":[{"name":"city","type":"string","doc":"a town"}]},"doc":"kept"},
                {"name":"from","type":["null","shop.Address"],"default":null}]})
        );
    }

    #[test]
    fn references_of_references_nested_types_and_recursion_resolve() {
        // Line refers to Item and defines Unit inside itself; Node refers to itself.
        let item = r#"{"type":"record","name":"Item","namespace":"catalog","fields":[{"name":"sku","type":"string"}]}"#;
        let line = r#"{"type":"record","name":"Line","namespace":"shop","fields":[{"name":"item","type":"catalog.Item"},{"name":"unit","type":{"type":"enum","name":"Unit","symbols":["KG","PIECE"]}}]}"#;
        let node = r#"{"type":"record","name":"Node","namespace":"shop","fields":[{"name":"next","type":["null","Node"]}]}"#;
        let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"unit","type":"Unit"},{"name":"lines","type":{"type":"array","items":"Line"}},{"name":"chain","type":"Node"}]}"#;
        let out = resolved_json(order, &[item, line, node]);
        let text = out.to_string();
        let parsed = apache_avro::Schema::parse_str(&text).expect("self-contained");
        assert_eq!(
            parsed.name().map(|n| n.fullname(None)),
            Some("shop.Order".into())
        );
        // Unit is defined where Order first uses it, so Line names it.
        assert_eq!(out["fields"][0]["type"]["type"], json!("enum"));
        assert_eq!(
            out["fields"][1]["type"]["items"]["fields"][1]["type"],
            json!("shop.Unit")
        );
        assert_eq!(
            out["fields"][1]["type"]["items"]["fields"][0]["type"]["name"],
            json!("Item")
        );
        assert_eq!(
            out["fields"][2]["type"]["fields"][0]["type"],
            json!(["null", "Node"])
        );
    }

    #[test]
    fn a_schema_without_references_comes_back_as_it_was() {
        let plain = r#"{"type":"record","name":"R","fields":[{"name":"n","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
        assert_eq!(resolved_json(plain, &[]), parse(plain).expect("json"));
    }
}
