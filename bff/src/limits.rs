//! Limits on a GraphQL document, checked before it runs (beside the engine's depth and
//! complexity limits):
//!
//! - at most [`MAX_ALIASES`] aliases in a document (fragments expanded);
//! - an introspection-only document (GraphiQL, codegen) runs without the data limits but with
//!   its own: at most [`MAX_INTROSPECTION_BYTES`], no aliases at all (the standard
//!   introspection query has none, and aliases are what multiplies an introspection answer),
//!   and lists of the schema (`types`, `fields`, `args`, ...) nested at most
//!   [`MAX_INTROSPECTION_LIST_NESTING`] deep (the standard query needs `types → fields →
//!   args`); its depth and complexity limits are set in `schema::build_introspection_schema`.
//!
//! Refusals name their limit by a message prefix, which `error::engine_error_code` turns into
//! `INTROSPECTION_LIMIT`, `TOO_MANY_ALIASES` or `QUERY_TOO_COMPLEX`.

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::Name;
use std::collections::HashMap;

pub const INTROSPECTION_PREFIX: &str = "introspection limit:";
pub const ALIAS_PREFIX: &str = "too many aliases:";
/// Most aliases in one document.
pub const MAX_ALIASES: usize = 100;
/// Longest introspection-only document.
pub const MAX_INTROSPECTION_BYTES: usize = 16 * 1024;
/// Deepest nesting of the schema's lists in an introspection document.
pub const MAX_INTROSPECTION_LIST_NESTING: usize = 3;
/// Most fields visited while checking (fragments expanded); beyond, the document is refused.
const MAX_VISITS: usize = 10_000;
/// Deepest fragment spreading followed (cycles are refused by validation later).
const MAX_FRAGMENT_DEPTH: usize = 16;

/// The introspection fields that return lists of schema elements.
const LIST_FIELDS: [&str; 8] = [
    "types",
    "fields",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "args",
    "directives",
];

/// What kind of document passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// Only introspection at the root of every operation.
    Introspection,
    /// Anything else (or unparsable: the engine reports that).
    Data,
}

struct Walk<'a> {
    fragments: &'a HashMap<Name, async_graphql::Positioned<FragmentDefinition>>,
    introspection: bool,
    aliases: usize,
    visits: usize,
}

impl Walk<'_> {
    fn set(&mut self, set: &SelectionSet, lists: usize, depth: usize) -> Result<(), String> {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    self.visits += 1;
                    if self.visits > MAX_VISITS {
                        return Err(format!(
                            "the query is too complex: it expands to more than {MAX_VISITS} fields"
                        ));
                    }
                    let f = &f.node;
                    if f.alias.is_some() {
                        if self.introspection {
                            return Err(format!(
                                "{INTROSPECTION_PREFIX} aliases are not allowed in introspection"
                            ));
                        }
                        self.aliases += 1;
                        if self.aliases > MAX_ALIASES {
                            return Err(format!("{ALIAS_PREFIX} at most {MAX_ALIASES}"));
                        }
                    }
                    let mut lists = lists;
                    if self.introspection
                        && !f.selection_set.node.items.is_empty()
                        && LIST_FIELDS.contains(&f.name.node.as_str())
                    {
                        lists += 1;
                        if lists > MAX_INTROSPECTION_LIST_NESTING {
                            return Err(format!(
                                "{INTROSPECTION_PREFIX} schema lists nested more than {MAX_INTROSPECTION_LIST_NESTING} deep"
                            ));
                        }
                    }
                    self.set(&f.selection_set.node, lists, depth)?;
                }
                Selection::InlineFragment(i) => {
                    self.set(&i.node.selection_set.node, lists, depth)?;
                }
                Selection::FragmentSpread(s) => {
                    if depth >= MAX_FRAGMENT_DEPTH {
                        return Err(format!(
                            "the query is too complex: fragments spread more than {MAX_FRAGMENT_DEPTH} deep"
                        ));
                    }
                    if let Some(frag) = self.fragments.get(&s.node.fragment_name.node) {
                        self.set(&frag.node.selection_set.node, lists, depth + 1)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn is_introspection_only(doc: &ExecutableDocument) -> bool {
    let only_meta = |op: &async_graphql::parser::types::OperationDefinition| {
        op.ty == OperationType::Query
            && !op.selection_set.node.items.is_empty()
            && op.selection_set.node.items.iter().all(|s| match &s.node {
                Selection::Field(f) => f.node.name.node.starts_with("__"),
                _ => false,
            })
    };
    match &doc.operations {
        DocumentOperations::Single(op) => only_meta(&op.node),
        DocumentOperations::Multiple(ops) => ops.values().all(|op| only_meta(&op.node)),
    }
}

/// Checks a document against the limits above; which schema runs it, or why it is refused.
pub fn check_document(query: &str) -> Result<DocumentKind, String> {
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return Ok(DocumentKind::Data);
    };
    let introspection = is_introspection_only(&doc);
    if introspection && query.len() > MAX_INTROSPECTION_BYTES {
        return Err(format!(
            "{INTROSPECTION_PREFIX} an introspection query is at most {MAX_INTROSPECTION_BYTES} bytes"
        ));
    }
    let mut walk = Walk {
        fragments: &doc.fragments,
        introspection,
        aliases: 0,
        visits: 0,
    };
    for (_, op) in doc.operations.iter() {
        walk.set(&op.node.selection_set.node, 0, 0)?;
    }
    Ok(if introspection {
        DocumentKind::Introspection
    } else {
        DocumentKind::Data
    })
}

/// What GraphiQL (graphql-js `getIntrospectionQuery`) sends, for tests.
pub const STANDARD_INTROSPECTION_QUERY: &str = r#"
    query IntrospectionQuery {
      __schema {
        queryType { name }
        mutationType { name }
        subscriptionType { name }
        types { ...FullType }
        directives { name description locations args { ...InputValue } }
      }
    }
    fragment FullType on __Type {
      kind name description
      fields(includeDeprecated: true) {
        name description
        args { ...InputValue }
        type { ...TypeRef }
        isDeprecated deprecationReason
      }
      inputFields { ...InputValue }
      interfaces { ...TypeRef }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
      possibleTypes { ...TypeRef }
    }
    fragment InputValue on __InputValue {
      name description type { ...TypeRef } defaultValue
    }
    fragment TypeRef on __Type {
      kind name
      ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
    }
"#;

/// The aliased introspection bomb of issue 12 (1.25 KB, 4.27 MB of answer), for tests.
pub fn introspection_bomb() -> String {
    let one =
        "__schema { types { name fields { name type { name fields { name type { name } } } } } }";
    let body: Vec<String> = (0..12).map(|i| format!("s{i}: {one}")).collect();
    format!("{{ {} }}", body.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_introspection_query_passes_and_the_bomb_does_not() {
        assert_eq!(
            check_document(STANDARD_INTROSPECTION_QUERY),
            Ok(DocumentKind::Introspection)
        );
        let bomb = introspection_bomb();
        assert!(bomb.len() < 1300, "{}", bomb.len());
        let e = check_document(&bomb).unwrap_err();
        assert!(e.starts_with(INTROSPECTION_PREFIX), "{e}");
        // Without aliases, recursion through the schema's lists is what is left: refused.
        let nested =
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
        assert!(check_document(nested)
            .unwrap_err()
            .starts_with(INTROSPECTION_PREFIX));
        let big = format!("{{ __typename }} # {}", "x".repeat(MAX_INTROSPECTION_BYTES));
        assert!(check_document(&big).is_err());
    }

    #[test]
    fn aliases_are_counted_through_fragments() {
        let fields: Vec<String> = (0..60).map(|i| format!("a{i}: __typename")).collect();
        let frag = format!("fragment F on QueryRoot {{ {} }}", fields.join(" "));
        let doc = format!("{{ cart(id: \"x\") {{ id }} ...F }} {frag}");
        assert_eq!(check_document(&doc), Ok(DocumentKind::Data));
        let doc = format!("{{ cart(id: \"x\") {{ id }} ...F ... {{ ...F }} }} {frag}");
        assert!(check_document(&doc).unwrap_err().starts_with(ALIAS_PREFIX));
    }

    #[test]
    fn only_pure_introspection_escapes_the_data_limits() {
        let kind = |q: &str| check_document(q).unwrap();
        assert_eq!(
            kind("{ __schema { types { name } } }"),
            DocumentKind::Introspection
        );
        assert_eq!(
            kind("query Q { __type(name: \"Cart\") { fields { name } } __typename }"),
            DocumentKind::Introspection
        );
        assert_eq!(
            kind("{ __typename cart(id: \"x\") { id } }"),
            DocumentKind::Data
        );
        assert_eq!(kind("mutation { __typename }"), DocumentKind::Data);
        assert_eq!(
            kind("{ ...F } fragment F on QueryRoot { __typename }"),
            DocumentKind::Data
        );
        assert_eq!(kind("not graphql"), DocumentKind::Data);
    }
}
